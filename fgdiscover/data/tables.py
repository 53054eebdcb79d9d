"""Small CSV side tables that come with a folder of images: labels and bounding boxes.

Users write these by hand or with other tools, so paths arrive in many spellings
(``./a/b.jpg``, ``a\\b.jpg``, just ``b.jpg``). Every key is normalised with
:func:`normalise_path` and matched to the scanned files with :func:`match_files`.
Every user mistake raises :class:`~fgdiscover.errors.FGDError` with one line that names
the file (and the line, where there is one).
"""

from __future__ import annotations

import math
import posixpath
from collections import defaultdict
from os import PathLike
from pathlib import Path
from typing import Sequence, Union

import pandas as pd

from fgdiscover.errors import FGDError

PathArg = Union[str, PathLike]

#: Column names tried, in this order, when no label column is named explicitly.
LABEL_COLUMN_CANDIDATES = ("label", "class", "child")

#: Columns a bounding-box CSV must have (x, y = top-left corner; w, h = size; pixels).
BBOX_COLUMNS = ("file", "x", "y", "w", "h")

# CSV line of the first data row: line 1 is the header.
_FIRST_DATA_LINE = 2


def normalise_path(path: str) -> str:
    """Return a relative image path in one canonical POSIX spelling.

    Parameters
    ----------
    path : str
        A path as written by a user or a tool, e.g. ``'.\\\\birds\\\\a.jpg'``.

    Returns
    -------
    str
        Backslashes turned into ``'/'``, surrounding whitespace and any leading
        ``'./'`` removed, e.g. ``'birds/a.jpg'``.
    """
    text = str(path).strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def read_csv_table(path: PathArg, what: str) -> tuple[Path, pd.DataFrame]:
    """Read a CSV keyed by a ``file`` column, every cell a string; one-line FGDError on any
    failure (missing, empty, unparsable, no ``file`` column, empty or repeated files).
    ``what`` names the file in messages. ``file`` comes back normalised."""
    path = Path(path)
    if not path.exists():
        raise FGDError(f"{what} not found: {path}")
    if not path.is_file():
        raise FGDError(f"{what} is not a file: {path}")
    try:
        # keep_default_na=False: a class literally called "NA" or "null" stays a string.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise FGDError(f"{what} is empty: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FGDError(f"cannot read {what} {path}: {reason}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if "file" not in frame.columns:
        raise FGDError(
            f"{what} {path} has no 'file' column (columns: {', '.join(frame.columns)})"
        )
    if len(frame) == 0:
        raise FGDError(f"{what} {path} has a header but no rows")
    files = frame["file"].map(normalise_path)
    empty = files == ""
    if empty.any():
        line = int(empty.to_numpy().argmax()) + _FIRST_DATA_LINE
        raise FGDError(f"{what} {path}: line {line} has an empty 'file' value")
    duplicated = files.duplicated()
    if duplicated.any():
        first = files[duplicated].iloc[0]
        raise FGDError(
            f"{what} {path} lists {first!r} more than once "
            f"({int(duplicated.sum())} duplicate row(s))"
        )
    frame["file"] = files
    return path, frame


def read_label_table(path: PathArg) -> pd.DataFrame:
    """Read a CSV that maps image files to one or more label columns.

    Parameters
    ----------
    path : str or path-like
        CSV with a header row, a ``file`` column (image path relative to the image
        folder) and any number of label columns.

    Returns
    -------
    pandas.DataFrame of shape (n_rows, n_label_columns)
        Indexed by the normalised ``file`` path (str); every label cell is a str.

    Raises
    ------
    FGDError
        Missing, empty or unreadable file, no ``file`` column, empty or duplicated
        ``file`` values.
    """
    _, frame = read_csv_table(path, "label table")
    return frame.set_index("file")


def pick_label_column(table: pd.DataFrame, column: str | None = None) -> str:
    """Choose the label column to use from a table made by :func:`read_label_table`.

    Parameters
    ----------
    table : pandas.DataFrame
        Label table indexed by file.
    column : str, optional
        Column asked for by the user. Default: the first of ``'label'``, ``'class'``,
        ``'child'`` that exists, else the first column.

    Returns
    -------
    str
        Name of the chosen column.

    Raises
    ------
    FGDError
        The table has no label column, or ``column`` is not one of them.
    """
    available = [str(c) for c in table.columns]
    if not available:
        raise FGDError("the label table has a 'file' column but no label column")
    if column is not None:
        if column not in available:
            raise FGDError(
                f"no label column {column!r} in the label table "
                f"(available: {', '.join(available)})"
            )
        return column
    for candidate in LABEL_COLUMN_CANDIDATES:
        if candidate in available:
            return candidate
    return available[0]


def match_files(keys: Sequence[str], files: Sequence[str]) -> list[int | None]:
    """Match scanned image paths to the rows of a table.

    A file matches the key with the same relative path; failing that, the one key
    with the same base name (so a CSV written as ``images/x/a.jpg`` or just ``a.jpg``
    still works). A base name shared by several keys matches nothing: guessing
    would silently attach the wrong label.

    Parameters
    ----------
    keys : sequence of str, length n_keys
        Table keys, e.g. ``table.index`` (normalised with :func:`normalise_path`).
    files : sequence of str, length n_files
        Relative POSIX paths of the images.

    Returns
    -------
    list of (int or None), length n_files
        For each file, the position in ``keys`` of its row, or None.
    """
    keys = [normalise_path(k) for k in keys]
    exact = {key: i for i, key in enumerate(keys)}
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_name[posixpath.basename(key)].append(i)
    matches: list[int | None] = []
    for file in files:
        file = normalise_path(file)
        if file in exact:
            matches.append(exact[file])
            continue
        candidates = by_name.get(posixpath.basename(file), [])
        matches.append(candidates[0] if len(candidates) == 1 else None)
    return matches


def read_bboxes_csv(path: PathArg) -> dict[str, tuple[float, float, float, float]]:
    """Read object bounding boxes from a CSV with columns ``file,x,y,w,h``.

    Parameters
    ----------
    path : str or path-like
        CSV in original-image pixel coordinates: ``x, y`` the top-left corner,
        ``w, h`` the width and height (both > 0).

    Returns
    -------
    dict of str to (float, float, float, float)
        Normalised relative path -> ``(x, y, w, h)``.

    Raises
    ------
    FGDError
        Missing/unreadable file, a missing column, a duplicated file, or a row with a
        non-numeric value or ``w``/``h`` <= 0 (the message gives its line number).
    """
    path, frame = read_csv_table(path, "bounding-box CSV")
    missing = [c for c in BBOX_COLUMNS if c not in frame.columns]
    if missing:
        raise FGDError(
            f"bounding-box CSV {path} lacks column(s) {', '.join(missing)} "
            f"(needs {','.join(BBOX_COLUMNS)})"
        )
    boxes: dict[str, tuple[float, float, float, float]] = {}
    rows = frame[list(BBOX_COLUMNS)].itertuples(index=False, name=None)
    for line, (file, *cells) in enumerate(rows, start=_FIRST_DATA_LINE):
        try:
            x, y, w, h = (float(c) for c in cells)
        except ValueError:
            raise FGDError(
                f"bounding-box CSV {path}, line {line} ({file}): "
                f"x,y,w,h must be numbers, got {','.join(map(repr, cells))}"
            ) from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise FGDError(f"bounding-box CSV {path}, line {line} ({file}): non-finite value")
        if w <= 0 or h <= 0:
            raise FGDError(
                f"bounding-box CSV {path}, line {line} ({file}): "
                f"width and height must be > 0, got w={w:g}, h={h:g}"
            )
        boxes[file] = (x, y, w, h)
    return boxes


def labels_from_dirs(files: Sequence[str]) -> list[str]:
    """Use each image's top-level sub-folder as its label (``cat/a.jpg`` -> ``cat``).

    Parameters
    ----------
    files : sequence of str, length n_files
        Relative POSIX paths of the images.

    Returns
    -------
    list of str, length n_files
        First path component of each file.

    Raises
    ------
    FGDError
        A file sits directly in the root folder, so it has no sub-folder label.
    """
    labels = []
    loose = []
    for file in files:
        parts = normalise_path(file).split("/")
        if len(parts) < 2:
            loose.append(file)
        else:
            labels.append(parts[0])
    if loose:
        raise FGDError(
            f"labels from sub-folders: {len(loose)} image(s) are not in a sub-folder "
            f"(first: {loose[0]})"
        )
    return labels
