"""Published clustering numbers on CUB, Stanford Dogs and Stanford Cars, read from the one
data file that holds them, ``published.csv`` beside this module (shipped with the package,
so ``fgdiscover benchmark`` finds it; ``benchmarks/published.py`` prints it).

``published.csv`` columns: ``method, dataset, nmi, accuracy`` (as printed by the source:
``0.36`` is not ``0.360``), ``source`` (the paper whose table the numbers are copied from,
not necessarily the method's), ``k`` (clusters used), ``overclustered`` (``yes`` when k is
larger than the number of classes and several clusters are matched to a class), ``split``
(the images clustered: ``all``, ``train`` or ``test``; empty where the source's table does
not say, which is the case for every row so far: the report then says so) and ``note``
(what else makes the number not directly comparable). Sources: /work/shared/FINEGAN.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from fgdiscover.errors import FGDError

#: The data file.
PUBLISHED_CSV = Path(__file__).with_name("published.csv")
#: Data sets the published tables cover, in table order.
DATASETS = ("CUB", "Dogs", "Cars")
#: Number of classes of each.
N_CLASSES = {"CUB": 200, "Dogs": 120, "Cars": 196}


@dataclass(frozen=True)
class Published:
    """One published clustering result.

    Attributes
    ----------
    method, dataset : str
    nmi, accuracy : float
        In [0, 1].
    source : str
        The paper whose table the numbers are copied from.
    note : str
        What makes the number not directly comparable, if anything.
    decimals : (int, int)
        Decimals the source printed for NMI and accuracy.
    k : int or None
        Clusters used (None: unknown).
    overclustered : bool
        More clusters than classes, several matched to a class.
    split : str
        Images clustered (``all`` / ``train`` / ``test``), ``""`` when the source does not say.
    """

    method: str
    dataset: str
    nmi: float
    accuracy: float
    source: str
    note: str = ""
    decimals: tuple[int, int] = (3, 3)
    k: int | None = None
    overclustered: bool = False
    split: str = ""

    def cell(self) -> str:
        """``NMI / accuracy`` with as many decimals as the source printed."""
        return f"{self.nmi:.{self.decimals[0]}f} / {self.accuracy:.{self.decimals[1]}f}"

    def protocol(self) -> str:
        """``k = 200, split not stated`` or ``k = 400, over-clustered, test split``."""
        k = f"k = {self.k}" if self.k else "k = ?"
        split = f"{self.split} split" if self.split else "split not stated"
        return k + (", over-clustered" if self.overclustered else "") + ", " + split


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def load_published(path=PUBLISHED_CSV) -> tuple[Published, ...]:
    """Every row of the data file, in file order.

    Raises
    ------
    FGDError
        A missing column or a malformed line (the file and line are named).
    """
    path = Path(path)
    needed = ("method", "dataset", "nmi", "accuracy", "source", "k", "overclustered", "split",
              "note")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise FGDError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append(Published(
                    r["method"], r["dataset"], float(r["nmi"]), float(r["accuracy"]),
                    r["source"], r["note"] or "", (_decimals(r["nmi"]), _decimals(r["accuracy"])),
                    int(r["k"]) if r["k"] else None,
                    {"yes": True, "no": False}[r["overclustered"]],
                    {"": "", "all": "all", "train": "train", "test": "test"}[r["split"]]))
            except (KeyError, TypeError, ValueError):
                raise FGDError(f"{path}: line {line} is malformed: {r}") from None
    return tuple(rows)


#: Every published number, in the order of the tables they come from.
PUBLISHED: tuple[Published, ...] = load_published()


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


def for_dataset(dataset: str) -> list[Published]:
    """The published rows of one data set (``CUB``, ``Dogs`` or ``Cars``; any case)."""
    return [p for p in PUBLISHED if p.dataset.lower() == dataset.lower()]
