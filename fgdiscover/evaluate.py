"""Score a cluster assignment file against ground-truth labels.

The assignment file is a CSV with a ``file`` and a ``cluster`` column (and optionally
``parent_cluster``), as written by fgdiscover, but any other tool's output with those
columns works too, so that every method is scored by the same code. Cluster ids are
compared as strings: ``-1`` (a noise label, for instance) is one more cluster.
"""

from __future__ import annotations

from os import PathLike
from typing import Optional, Union

import pandas as pd

from fgdiscover.data.tables import (
    match_files,
    pick_label_column,
    read_label_table,
    read_csv_table,
)
from fgdiscover.errors import FGDError
from fgdiscover.metrics import overcluster_metric_name, score

PathArg = Union[str, PathLike]

#: Default column of the label table scored against ``parent_cluster``.
DEFAULT_PARENT_COLUMN = "parent"


def read_assignments(path: PathArg) -> pd.DataFrame:
    """Read a cluster assignment CSV.

    Parameters
    ----------
    path : str or path-like
        CSV with a header and the columns ``file`` and ``cluster``, optionally
        ``parent_cluster``; other columns are ignored.

    Returns
    -------
    pandas.DataFrame of shape (n_rows, 2 or 3)
        Columns ``file`` (normalised relative path), ``cluster`` and, when present,
        ``parent_cluster``; every cell a str.

    Raises
    ------
    FGDError
        Missing or unreadable file, a missing column, an empty cell, a duplicated file.
    """
    path, frame = read_csv_table(path, "assignment CSV")
    missing = [c for c in ("file", "cluster") if c not in frame.columns]
    if missing:
        raise FGDError(
            f"assignment CSV {path} lacks column(s) {', '.join(missing)} "
            f"(columns: {', '.join(frame.columns)})"
        )
    columns = [c for c in ("file", "cluster", "parent_cluster") if c in frame.columns]
    frame = frame[columns].apply(lambda col: col.str.strip())
    for column in columns[1:]:
        empty = frame[column] == ""
        if empty.any():
            line = int(empty.to_numpy().argmax()) + 2  # line 1 is the header
            raise FGDError(f"assignment CSV {path}: line {line} has an empty {column!r} value")
    return frame.reset_index(drop=True)


def evaluate_assignments(
    assignments_csv: PathArg,
    labels_csv: PathArg,
    *,
    label_column: Optional[str] = None,
    parent_label_column: Optional[str] = None,
    overcluster: Optional[int] = None,
) -> dict:
    """Score the clusters of an assignment CSV against the labels of a label CSV.

    Files are joined with :func:`fgdiscover.data.tables.match_files` (same relative
    path, else a unique base name); assigned files without a label row, or with an
    empty label, are left out of the scores and counted.

    Parameters
    ----------
    assignments_csv : str or path-like
        CSV with ``file``, ``cluster`` and optionally ``parent_cluster``.
    labels_csv : str or path-like
        CSV with ``file`` and label columns.
    label_column : str, optional
        Label column scored against ``cluster``. Default: the first of ``label``,
        ``class``, ``child``, else the first column that is not the parent column.
    parent_label_column : str, optional
        Label column scored against ``parent_cluster``. Default ``'parent'`` when the
        table has it. Naming one requires the assignment CSV to have ``parent_cluster``.
    overcluster : int, optional
        Also report ``accuracy_overcluster_m{overcluster}`` at every level scored (each
        class may take up to that many clusters, as in C3-GAN).

    Returns
    -------
    dict
        ``n_images`` (images scored at the child level), ``n_unmatched`` (assigned files
        with no row in the label table), ``n_unlabelled`` (matched but with an empty
        label), ``n_clusters`` and ``n_classes`` (distinct values among the scored
        images), ``label_column``, ``child`` (``{metric: value}``), and when the parent
        level is scored ``parent_label_column``, ``n_parent_clusters``,
        ``n_parent_classes`` and ``parent``.

    Raises
    ------
    FGDError
        Unreadable CSVs, missing columns, no file in common, a bad ``overcluster``.
    """
    metrics = None
    if overcluster is not None:
        if isinstance(overcluster, bool) or not isinstance(overcluster, int) or overcluster < 1:
            raise FGDError(f"overcluster must be an integer >= 1, got {overcluster!r}")
        metrics = ["nmi", "accuracy", "ari", "purity", overcluster_metric_name(overcluster)]

    assignments = read_assignments(assignments_csv)
    table = read_label_table(labels_csv)
    has_parent_clusters = "parent_cluster" in assignments.columns

    if parent_label_column is not None:
        parent_label_column = pick_label_column(table, parent_label_column)
        if not has_parent_clusters:
            raise FGDError(
                f"parent label column {parent_label_column!r} given but assignment CSV "
                f"{assignments_csv} has no 'parent_cluster' column"
            )
    elif has_parent_clusters and DEFAULT_PARENT_COLUMN in table.columns:
        parent_label_column = DEFAULT_PARENT_COLUMN

    # The parent column is not a candidate for the child labels unless it is all there is.
    candidates = table
    if label_column is None and parent_label_column is not None and len(table.columns) > 1:
        candidates = table.drop(columns=[parent_label_column])
    label_column = pick_label_column(candidates, label_column)

    rows = match_files(list(table.index), list(assignments["file"]))
    matched = [i for i, row in enumerate(rows) if row is not None]
    if not matched:
        raise FGDError(
            f"no file of {assignments_csv} appears in {labels_csv} "
            f"(e.g. {assignments['file'].iloc[0]!r} vs {table.index[0]!r})"
        )
    assigned = assignments.iloc[matched].reset_index(drop=True)
    labels = table.iloc[[rows[i] for i in matched]].reset_index(drop=True)

    result: dict = {"n_unmatched": len(assignments) - len(matched)}
    child = _score_level(assigned["cluster"], labels[label_column], metrics)
    if child is None:
        raise FGDError(f"label column {label_column!r} is empty for every matched file")
    result.update(
        n_images=child["n"],
        n_unlabelled=len(matched) - child["n"],
        n_clusters=child["n_clusters"],
        n_classes=child["n_classes"],
        label_column=label_column,
        child=child["scores"],
    )
    if parent_label_column is not None:
        parent = _score_level(assigned["parent_cluster"], labels[parent_label_column], metrics)
        if parent is not None:
            result.update(
                parent_label_column=parent_label_column,
                n_parent_clusters=parent["n_clusters"],
                n_parent_classes=parent["n_classes"],
                parent=parent["scores"],
            )
    return result


def _score_level(clusters: pd.Series, labels: pd.Series, metrics) -> Optional[dict]:
    """Scores of one level over the rows with a non-empty label; None if there are none."""
    keep = (labels.str.strip() != "").to_numpy()
    if not keep.any():
        return None
    clusters, labels = clusters.to_numpy()[keep], labels.str.strip().to_numpy()[keep]
    return {
        "n": int(keep.sum()),
        "n_clusters": int(pd.unique(clusters).size),
        "n_classes": int(pd.unique(labels).size),
        "scores": score(labels, clusters, metrics),
    }
