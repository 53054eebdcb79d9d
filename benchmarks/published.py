"""Published clustering numbers on CUB, Stanford Dogs and Stanford Cars, as tables.

The numbers live in one data file, ``fgdiscover/published.csv`` (shipped with the package
and read by :mod:`fgdiscover.published`); this script renders them. Every number is NMI
and accuracy at k = the number of ground-truth classes, copied from the table of the paper named in ``source`` (see /work/shared/FINEGAN.md), except C3-GAN's
own row, which over-clusters. Use them as a reference for fgdiscover's results, with the
caveats in each entry's ``note``::

    python benchmarks/published.py            # the table, markdown, with its notes
    python benchmarks/published.py --long     # one row per method and data set

From Python, :func:`render_table` puts rows of ours beside the published ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

# One copy of the numbers: fgdiscover/published.csv, read by fgdiscover.published (the
# installed `fgdiscover benchmark` needs them too); `common` put the checkout on sys.path.
from fgdiscover.published import DATASETS, PUBLISHED, Published, lookup  # noqa: E402,F401


def render_table(rows: Sequence[Published] = PUBLISHED,
                 ours: Iterable[Published] = (), *, datasets: Sequence[str] | None = None,
                 notes: bool = True) -> str:
    """A markdown table, one row per method and one ``NMI / acc`` column per data set.

    Parameters
    ----------
    rows : sequence of Published
        The published results (default: all of :data:`PUBLISHED`).
    ours : iterable of Published
        Our results, appended below the published rows with their method names in bold;
        a data set of ours that no paper used (e.g. ``"synthetic"``) gets its own column.
    datasets : sequence of str, optional
        Columns, in order; default: every data set of ``rows`` and ``ours``, first seen
        first.
    notes : bool, default True
        Number the distinct notes and list them under the table.

    Returns
    -------
    str
        Markdown; a cell without a result is ``-``.
    """
    ours = list(ours)
    everything = list(rows) + ours
    if datasets is None:
        datasets = list(dict.fromkeys(r.dataset for r in everything))
    own = {id(r) for r in ours}
    note_ids: dict[str, int] = {}
    table: dict[tuple[str, bool], dict] = {}  # (method, ours?) -> row; keeps first-seen order
    for r in everything:
        key = (r.method, id(r) in own)
        entry = table.setdefault(key, {"cells": {}, "sources": [], "notes": []})
        entry["cells"][r.dataset] = r.cell()
        if r.source not in entry["sources"]:
            entry["sources"].append(r.source)
        if r.note and r.note not in entry["notes"]:
            entry["notes"].append(r.note)
            note_ids.setdefault(r.note, len(note_ids) + 1)

    body = []
    for (method, is_ours), entry in table.items():
        name = f"**{method}**" if is_ours else method
        if notes and entry["notes"]:
            name += " " + "".join(f"[{note_ids[n]}]" for n in entry["notes"])
        body.append([name, *(entry["cells"].get(d, "-") for d in datasets),
                     "; ".join(entry["sources"])])
    text = markdown_table(["method", *(f"{d} NMI / acc" for d in datasets), "source"], body)
    if notes and note_ids:
        text += "\n\n" + "\n".join(f"[{i}] {n}" for n, i in note_ids.items())
    return text


def render_long(rows: Sequence[Published] = PUBLISHED) -> str:
    """A markdown table with one row per (method, data set), notes spelled out."""
    return markdown_table(
        ["method", "dataset", "NMI", "accuracy", "source", "note"],
        [[r.method, r.dataset, *r.cell().split(" / "), r.source, r.note or "-"]
         for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Print the published clustering numbers "
                                 "(NMI / Hungarian accuracy, k = number of classes).")
    ap.add_argument("--long", action="store_true",
                    help="one row per method and data set, notes spelled out")
    args = ap.parse_args(argv)
    print(render_long() if args.long else render_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
