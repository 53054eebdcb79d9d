"""Published clustering numbers on CUB, Stanford Dogs and Stanford Cars, as data.

Every number is NMI and accuracy at k = the number of ground-truth classes, copied from
the table of the paper named in ``source`` (see /work/shared/FINEGAN.md), except C3-GAN's
own row, which over-clusters. Use them as a reference for fgdiscover's results, with the
caveats in each entry's ``note``::

    python benchmarks/published.py            # the table, markdown, with its notes
    python benchmarks/published.py --long     # one row per method and data set

From Python, :func:`render_table` puts rows of ours beside the published ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

DATASETS = ("CUB", "Dogs", "Cars")

_FINEGAN = "FineGAN paper (CVPR 2019)"
_C3GAN = "C3-GAN paper (ICLR 2022)"
_C3GAN_NMI = ("from C3-GAN's table, whose NMI divides by the max entropy (fgdiscover's, "
              "like the FineGAN paper's, by the mean)")


@dataclass(frozen=True)
class Published:
    """One published clustering result.

    Attributes
    ----------
    method, dataset : str
    nmi, accuracy : float
        In [0, 1].
    source : str
        The paper whose table the numbers are copied from (not necessarily the method's).
    note : str
        What makes the number not directly comparable, if anything.
    decimals : (int, int)
        Decimals the source printed for NMI and accuracy (0.36 is not 0.360).
    """

    method: str
    dataset: str
    nmi: float
    accuracy: float
    source: str
    note: str = ""
    decimals: tuple[int, int] = (3, 3)

    def cell(self) -> str:
        """``NMI / accuracy`` with as many decimals as the source printed."""
        return f"{self.nmi:.{self.decimals[0]}f} / {self.accuracy:.{self.decimals[1]}f}"


def _rows(method: str, source: str, note: str, cub, dogs, cars) -> list[Published]:
    """Three entries from ``(nmi, accuracy)`` pairs of strings, exactly as published."""
    return [Published(method, d, float(nmi), float(acc), source, note,
                      (len(nmi.split(".")[1]), len(acc.split(".")[1])))
            for d, (nmi, acc) in zip(DATASETS, (cub, dogs, cars))]


#: Every published number, in the order of the tables they come from.
PUBLISHED: tuple[Published, ...] = tuple(
    _rows("JULE", _FINEGAN, "",
          ("0.204", "0.045"), ("0.142", "0.043"), ("0.232", "0.046"))
    + _rows("JULE-ResNet-50", _FINEGAN, "",
            ("0.203", "0.044"), ("0.148", "0.044"), ("0.237", "0.050"))
    + _rows("DEPICT", _FINEGAN, "",
            ("0.290", "0.061"), ("0.182", "0.052"), ("0.329", "0.063"))
    + _rows("DEPICT-Large", _FINEGAN, "",
            ("0.297", "0.061"), ("0.183", "0.054"), ("0.330", "0.062"))
    + _rows("FineGAN", _FINEGAN, "",
            ("0.403", "0.126"), ("0.233", "0.079"), ("0.354", "0.078"))
    + _rows("IIC", _C3GAN, _C3GAN_NMI,
            ("0.36", "0.074"), ("0.18", "0.050"), ("0.27", "0.049"))
    + _rows("SimCLR + k-means", _C3GAN, _C3GAN_NMI,
            ("0.40", "0.084"), ("0.19", "0.068"), ("0.33", "0.067"))
    + _rows("InfoGAN", _C3GAN, _C3GAN_NMI,
            ("0.39", "0.086"), ("0.21", "0.064"), ("0.31", "0.065"))
    + _rows("MixNMatch", _C3GAN, _C3GAN_NMI,
            ("0.41", "0.102"), ("0.30", "0.103"), ("0.34", "0.073"))
    + _rows("SCAN", _C3GAN, _C3GAN_NMI,
            ("0.45", "0.119"), ("0.35", "0.123"), ("0.38", "0.088"))
    + _rows("C3-GAN (over-clustered)", _C3GAN,
            "over-clustered: 2x the classes on CUB, 3x on Dogs and Cars, several clusters "
            "matched to each class; " + _C3GAN_NMI,
            ("0.53", "0.276"), ("0.36", "0.179"), ("0.41", "0.141"))
)


def lookup(method: str, dataset: str) -> Published:
    """The published result of ``method`` on ``dataset`` (exact names, as in the table).

    Raises
    ------
    KeyError
        No such entry.
    """
    for p in PUBLISHED:
        if p.method == method and p.dataset == dataset:
            return p
    raise KeyError(f"no published result for {method!r} on {dataset!r}")


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
