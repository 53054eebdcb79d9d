"""Readers for CUB-200-2011, Stanford Dogs and Stanford Cars, read as they come on disk.

Each reader turns one of the standard fine-grained data sets, unpacked from its official
archives and left as it is (no conversion step), into one :class:`Annotations` record:
image paths, class names, bounding boxes and the official train/test split.

Where the files are looked for
------------------------------
``root`` may be the data set folder itself or the folder that holds it (for instance the
folder that ``CUB_200_2011.tgz`` was unpacked into, which holds ``CUB_200_2011/``). Only
one level is searched. Image paths in the result are always relative to the ``root`` that
was given, so ``Path(root) / files[i]`` is the image.

- CUB-200-2011: ``images.txt``, ``image_class_labels.txt``, ``classes.txt``,
  ``bounding_boxes.txt``, ``train_test_split.txt`` and ``images/``.
- Stanford Dogs: ``file_list.mat`` and ``train_list.mat`` (from ``lists.tar``; at the top
  or in ``lists/``), ``Annotation/`` and ``Images/``.
- Stanford Cars: ``cars_annos.mat`` with ``car_ims/``; or the devkit form,
  ``cars_train_annos.mat``, ``cars_test_annos_withlabels.mat`` and ``cars_meta.mat`` (at
  the top, in ``devkit/`` or in ``car_devkit/devkit/``) with ``cars_train/`` and
  ``cars_test/`` (a doubly nested ``cars_train/cars_train/`` is accepted too).

A layout that is recognised but broken (a missing file, ids that do not line up, a
malformed line, a ``.mat`` file without a needed field, listed images that are not there)
raises :class:`~fgdiscover.errors.FGDError` with one line that names the file.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.io

from fgdiscover.errors import FGDError

__all__ = [
    "Annotations",
    "detect_layout",
    "read_annotations",
    "read_cars",
    "read_cub",
    "read_dogs",
]


@dataclass(frozen=True)
class Annotations:
    """Images, labels, boxes and split of one fine-grained data set.

    Attributes
    ----------
    name : str
        ``'cub'``, ``'dogs'`` or ``'cars'``.
    files : list of str, length n_images
        Image paths relative to the root given to the reader, POSIX separators.
    labels : list of str, length n_images
        Class name of each image, an entry of ``class_names``.
    bboxes : ndarray of shape (n_images, 4), float64
        Object box ``x, y, w, h`` in pixels of the original image, with ``x, y`` the
        top-left corner on a 0-based pixel grid. Boxes are not clipped to the image.
    is_train : ndarray of shape (n_images,), bool
        True for the official training images.
    class_names : list of str, length n_classes
        Class names in the order of the data set's own class index (1, 2, ...).
    """

    name: str
    files: list[str]
    labels: list[str]
    bboxes: np.ndarray
    is_train: np.ndarray
    class_names: list[str]


# --------------------------------------------------------------------------------------
# Finding the data set folder
# --------------------------------------------------------------------------------------

_DOGS_LIST_DIRS = ("", "lists")
_CARS_DEVKIT_DIRS = ("", "devkit", "car_devkit/devkit")


def _in_dirs(dirs: Sequence[str], name: str) -> list[str]:
    """``name`` inside each of ``dirs`` ('' is the folder itself), as relative paths."""
    return [f"{d}/{name}" if d else name for d in dirs]


# Each layout is recognised by any one of its marker sets (all files of the set present).
# A marker is only as much as it takes to be sure of the data set; everything else the
# reader needs is checked when reading, so that a half-unpacked data set gets an error
# naming what is missing instead of being taken for a plain image folder. CUB's
# images.txt is a common name, so it only counts beside another CUB file.
_MARKERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "cub": tuple(
        ("images.txt", other)
        for other in (
            "image_class_labels.txt", "classes.txt", "bounding_boxes.txt", "train_test_split.txt"
        )
    ),
    "dogs": tuple(
        (marker,)
        for name in ("file_list.mat", "train_list.mat")
        for marker in _in_dirs(_DOGS_LIST_DIRS, name)
    ),
    "cars": (("cars_annos.mat",),)
    + tuple(
        (marker,)
        for name in ("cars_meta.mat", "cars_train_annos.mat")
        for marker in _in_dirs(_CARS_DEVKIT_DIRS, name)
    ),
}

_FULL_NAMES = {"cub": "CUB-200-2011", "dogs": "Stanford Dogs", "cars": "Stanford Cars"}


def _layouts_in(folder: Path) -> list[str]:
    """Names of the layouts whose marker files are in ``folder``."""
    return [
        name
        for name, markers in _MARKERS.items()
        if any(all((folder / f).is_file() for f in marker) for marker in markers)
    ]


def _is_dir(entry: os.DirEntry) -> bool:
    """``entry.is_dir()``, False for an entry that cannot be followed (a symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _locate(root) -> tuple[str, Path] | None:
    """Find the layout at ``root`` or in exactly one of its immediate subfolders.

    Returns
    -------
    (name, base) or None
        The layout name and the folder that holds its files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FGDError(f"data set folder not found: {root}")
    here = _layouts_in(root)
    if len(here) > 1:
        raise FGDError(
            f"{root} holds the files of several data sets ({', '.join(here)}); "
            "put each in its own folder"
        )
    if here:
        return here[0], root
    try:
        children = sorted(
            entry.path
            for entry in os.scandir(root)
            if _is_dir(entry) and not entry.name.startswith(".")
        )
    except OSError as err:
        raise FGDError(f"cannot list {root}: {_one_line(err)}") from None
    found = [(name, Path(child)) for child in children for name in _layouts_in(Path(child))]
    if len(found) > 1:
        listed = ", ".join(f"{base.name}/ ({name})" for name, base in found)
        raise FGDError(f"{root} holds several data sets: {listed}; point at one of them")
    return found[0] if found else None


def _base_for(root, name: str) -> Path:
    """The folder holding data set ``name`` under ``root``, or FGDError."""
    located = _locate(root)
    if located is None or located[0] != name:
        wanted = " or ".join(" with ".join(marker) for marker in _MARKERS[name][:2])
        found = "" if located is None else f" (found {_FULL_NAMES[located[0]]} instead)"
        raise FGDError(f"no {_FULL_NAMES[name]} data set in {root}: no {wanted}{found}")
    return located[1]


def _prefix(root, base: Path) -> str:
    """POSIX path of ``base`` relative to ``root``, with a trailing slash ('' if equal)."""
    rel = base.relative_to(Path(root)).as_posix()
    return "" if rel == "." else rel + "/"


def detect_layout(root) -> str | None:
    """Say which standard data set ``root`` holds, from its marker files.

    Parameters
    ----------
    root : str or path-like
        The data set folder or the folder that holds it.

    Returns
    -------
    str or None
        ``'cub'`` (``images.txt`` beside another CUB text file), ``'dogs'``
        (``file_list.mat`` or ``train_list.mat``)
        or ``'cars'`` (``cars_annos.mat``, ``cars_meta.mat`` or ``cars_train_annos.mat``);
        None when no marker is found.

    Raises
    ------
    FGDError
        If ``root`` is not a folder, or it holds several data sets.
    """
    located = _locate(root)
    return None if located is None else located[0]


def read_annotations(root) -> Annotations | None:
    """Read whichever standard data set ``root`` holds.

    Parameters
    ----------
    root : str or path-like
        The data set folder or the folder that holds it.

    Returns
    -------
    Annotations or None
        None when ``root`` is not a known layout (a plain image folder, say).
    """
    name = detect_layout(root)
    if name is None:
        return None
    return _READERS[name](root)


# --------------------------------------------------------------------------------------
# Small helpers shared by the readers
# --------------------------------------------------------------------------------------


def _one_line(err: BaseException) -> str:
    """An exception's message squeezed onto one line."""
    return " ".join(str(err).split()) or type(err).__name__


def _check_images_exist(root, files: Sequence[str], listed_in: str) -> None:
    """Fail, naming the first one, if any listed image is not a file under ``root``."""
    root_str = os.fspath(root)
    missing = [f for f in files if not os.path.isfile(os.path.join(root_str, f))]
    if missing:
        raise FGDError(
            f"{len(missing)} of {len(files)} images listed in {listed_in} are missing "
            f"under {root_str}, first: {missing[0]}"
        )


def _first_existing(base: Path, candidates: Sequence[str], is_dir: bool = False) -> Path | None:
    """The first of ``base / c`` that exists (as a folder when ``is_dir``), else None."""
    for candidate in candidates:
        path = base / candidate
        if (path.is_dir() if is_dir else path.is_file()):
            return path
    return None


# --------------------------------------------------------------------------------------
# CUB-200-2011
# --------------------------------------------------------------------------------------


def _parse_rows(path: Path, form: str, converters: Sequence[Callable]) -> list[tuple]:
    """Parse a whitespace-separated text file, one row per non-blank line.

    The last field takes the rest of the line, so image paths may hold spaces.

    Returns
    -------
    list of (line_number, value_0, value_1, ...)
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FGDError(f"missing file: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FGDError(f"cannot read {path}: {_one_line(err)}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=len(converters) - 1)
        try:
            if len(parts) != len(converters):
                raise ValueError
            values = tuple(convert(part) for convert, part in zip(converters, parts))
        except ValueError:
            raise FGDError(
                f"{path} line {number}: expected '{form}', got {line.strip()!r}"
            ) from None
        rows.append((number,) + values)
    return rows


def _rows_by_id(path: Path, rows: list[tuple], what: str) -> dict[int, tuple]:
    """Index rows by their first value, refusing duplicate ids."""
    by_id: dict[int, tuple] = {}
    for row in rows:
        number, key = row[0], row[1]
        if key in by_id:
            raise FGDError(f"{path} line {number}: {what} id {key} appears twice")
        by_id[key] = row
    return by_id


def _match_image_ids(path: Path, by_id: dict[int, tuple], image_ids: list[int]) -> None:
    """Require ``by_id`` to hold exactly the image ids of images.txt."""
    known = set(image_ids)
    for key, row in by_id.items():
        if key not in known:
            raise FGDError(f"{path} line {row[0]}: image id {key} is not in images.txt")
    missing = [key for key in image_ids if key not in by_id]
    if missing:
        raise FGDError(
            f"{path}: no line for {len(missing)} image ids of images.txt, first: {missing[0]}"
        )


def _split_flag(text: str) -> bool:
    """``'1'`` -> True (train), ``'0'`` -> False (test)."""
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


def read_cub(root) -> Annotations:
    """Read CUB-200-2011 from its text files.

    Parameters
    ----------
    root : str or path-like
        ``CUB_200_2011/`` (holding ``images.txt`` and ``images/``) or its parent.

    Returns
    -------
    Annotations
        In ``images.txt`` order. Labels are ``classes.txt`` names such as
        ``'001.Black_footed_Albatross'``; boxes are ``bounding_boxes.txt`` as written
        (``x, y, w, h`` floats, pixels); ``is_train`` from ``train_test_split.txt``.

    Raises
    ------
    FGDError
        A missing file, a malformed line, ids that do not line up, a missing image.
    """
    base = _base_for(root, "cub")
    images_path = base / "images.txt"
    labels_path = base / "image_class_labels.txt"
    classes_path = base / "classes.txt"
    boxes_path = base / "bounding_boxes.txt"
    split_path = base / "train_test_split.txt"

    image_rows = _parse_rows(images_path, "<image_id> <path>", (int, str))
    if not image_rows:
        raise FGDError(f"{images_path} lists no images")
    images = _rows_by_id(images_path, image_rows, "image")
    image_ids = [row[1] for row in image_rows]

    class_rows = _parse_rows(classes_path, "<class_id> <name>", (int, str))
    classes = _rows_by_id(classes_path, class_rows, "class")
    if not classes:
        raise FGDError(f"{classes_path} lists no classes")
    class_ids = sorted(classes)

    label_rows = _parse_rows(labels_path, "<image_id> <class_id>", (int, int))
    labels = _rows_by_id(labels_path, label_rows, "image")
    _match_image_ids(labels_path, labels, image_ids)
    for number, image_id, class_id in label_rows:
        if class_id not in classes:
            raise FGDError(f"{labels_path} line {number}: class {class_id} is not in classes.txt")

    box_rows = _parse_rows(boxes_path, "<image_id> <x> <y> <width> <height>", (int,) + (float,) * 4)
    boxes = _rows_by_id(boxes_path, box_rows, "image")
    _match_image_ids(boxes_path, boxes, image_ids)

    split_rows = _parse_rows(split_path, "<image_id> <1=train|0=test>", (int, _split_flag))
    split = _rows_by_id(split_path, split_rows, "image")
    _match_image_ids(split_path, split, image_ids)

    prefix = _prefix(root, base)
    files = [prefix + "images/" + images[i][2].replace("\\", "/") for i in image_ids]
    _check_images_exist(root, files, str(images_path))
    return Annotations(
        name="cub",
        files=files,
        labels=[classes[labels[i][2]][2] for i in image_ids],
        bboxes=np.array([boxes[i][2:] for i in image_ids], dtype=np.float64).reshape(-1, 4),
        is_train=np.array([split[i][2] for i in image_ids], dtype=bool),
        class_names=[classes[c][2] for c in class_ids],
    )


# --------------------------------------------------------------------------------------
# MATLAB v5 files (Dogs and Cars)
# --------------------------------------------------------------------------------------


def _load_mat(path: Path) -> dict:
    """``scipy.io.loadmat`` with squeezed arrays; unreadable files become FGDError."""
    if not path.is_file():
        raise FGDError(f"missing file: {path}")
    try:
        return scipy.io.loadmat(path, squeeze_me=True)
    except NotImplementedError:
        # scipy says this for MATLAB v7.3 (HDF5) files, which it cannot read.
        raise FGDError(f"{path} is a MATLAB v7.3 file; only MATLAB v5 files are read") from None
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise FGDError(f"cannot read {path}: {_one_line(err)}") from None


def _mat_variable(mat: dict, key: str, path: Path) -> np.ndarray:
    """Variable ``key`` of a loaded .mat file, at least 1-D."""
    if key not in mat:
        raise FGDError(f"{path} has no variable '{key}'")
    # squeeze_me turns a one-element cell or struct array into a scalar; undo that.
    return np.atleast_1d(mat[key])


def _mat_struct_fields(mat: dict, key: str, path: Path, fields: Sequence[str]) -> dict:
    """Fields of the struct array ``key``, each an object array of shape (n,)."""
    array = _mat_variable(mat, key, path)
    names = array.dtype.names
    if names is None:
        raise FGDError(f"{path}: '{key}' is not a struct array")
    for field in fields:
        if field not in names:
            raise FGDError(f"{path}: '{key}' has no field '{field}'")
    return {field: np.atleast_1d(array[field]).ravel() for field in fields}


def _as_strings(values: np.ndarray, path: Path, what: str) -> list[str]:
    """A MATLAB cell array of strings (squeezed or not) as a list of str."""
    out = []
    for i, value in enumerate(values.ravel()):
        # Unsqueezed cells hold 1-element string arrays; squeezed ones hold str.
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        if not isinstance(value, str):
            raise FGDError(f"{path}: {what} entry {i + 1} is not a string")
        out.append(value)
    return out


def _mat_strings(mat: dict, key: str, path: Path) -> list[str]:
    """Variable ``key`` of a loaded .mat file, a cell array of strings, as a list."""
    return _as_strings(_mat_variable(mat, key, path), path, key)


def _as_numbers(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Numeric MATLAB values as float64 (MATLAB stores the Cars boxes as uint8/uint16)."""
    try:
        return np.asarray(values.ravel().tolist(), dtype=np.float64)
    except (TypeError, ValueError):
        raise FGDError(f"{path}: {what} holds values that are not single numbers") from None


def _as_class_index(values: np.ndarray, n_classes: int, path: Path, what: str) -> np.ndarray:
    """1-based MATLAB class numbers, checked to lie in 1..n_classes, as 0-based ints."""
    numbers = _as_numbers(values, path, what)
    bad = np.flatnonzero((numbers != np.round(numbers)) | (numbers < 1) | (numbers > n_classes))
    if bad.size:
        raise FGDError(
            f"{path}: {what} entry {bad[0] + 1} is {numbers[bad[0]]:g}, "
            f"not a class in 1..{n_classes}"
        )
    return numbers.astype(np.int64) - 1


# --------------------------------------------------------------------------------------
# Stanford Dogs
# --------------------------------------------------------------------------------------


_BNDBOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def _dogs_union_box(path: Path) -> tuple[float, float, float, float]:
    """Union of every ``<object><bndbox>`` in a Dogs annotation, as ``x, y, w, h``."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise FGDError(f"missing annotation file: {path}") from None
    except (ET.ParseError, OSError) as err:
        raise FGDError(f"cannot read {path}: {_one_line(err)}") from None
    corners = []
    for box in tree.getroot().iter("bndbox"):
        try:
            corners.append([float(box.findtext(t).strip()) for t in _BNDBOX_TAGS])
        except (AttributeError, ValueError):
            raise FGDError(f"{path}: a <bndbox> lacks a numeric xmin, ymin, xmax or ymax") from None
    if not corners:
        raise FGDError(f"{path}: no <object><bndbox>")
    corners = np.array(corners)
    x0, y0 = corners[:, 0].min(), corners[:, 1].min()
    x1, y1 = corners[:, 2].max(), corners[:, 3].max()
    return x0, y0, x1 - x0, y1 - y0


def read_dogs(root) -> Annotations:
    """Read Stanford Dogs from ``file_list.mat``, ``train_list.mat`` and ``Annotation/``.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``Images/``, ``Annotation/`` and the list files (at the top or
        in ``lists/``), or its parent.

    Returns
    -------
    Annotations
        In ``file_list.mat`` order. Labels are the breed folder names
        (``'n02085620-Chihuahua'``); ``class_names[k]`` is the folder of label ``k + 1``.
        ``is_train`` is membership of ``train_list.mat``. A box is
        ``xmin, ymin, xmax - xmin, ymax - ymin`` of the annotation XML, taken as written;
        for an image with several dogs it is the union box of all its objects (the
        smallest box holding every dog), since the crop must hold the whole subject.

    Raises
    ------
    FGDError
        A missing file or field, list lengths that disagree, a label given to two
        breed folders, a train file not in ``file_list.mat``, a bad XML file, a
        missing image.
    """
    base = _base_for(root, "dogs")
    file_list_path = _first_existing(base, _in_dirs(_DOGS_LIST_DIRS, "file_list.mat"))
    train_list_path = _first_existing(base, _in_dirs(_DOGS_LIST_DIRS, "train_list.mat"))
    if file_list_path is None or train_list_path is None:
        missing = "file_list.mat" if file_list_path is None else "train_list.mat"
        raise FGDError(f"missing file: {missing} in {base} or {base / 'lists'}")
    images_dir = _first_existing(base, ("Images", "images"), is_dir=True)
    annotation_dir = _first_existing(
        base, ("Annotation", "annotation", "Annotations", "annotations"), is_dir=True
    )
    if images_dir is None:
        raise FGDError(f"missing folder: {base / 'Images'}")
    if annotation_dir is None:
        raise FGDError(f"missing folder: {base / 'Annotation'}")

    mat = _load_mat(file_list_path)
    files = _mat_strings(mat, "file_list", file_list_path)
    annotation_names = _mat_strings(mat, "annotation_list", file_list_path)
    label_numbers = _as_numbers(
        _mat_variable(mat, "labels", file_list_path), file_list_path, "labels"
    )
    if not (len(files) == len(annotation_names) == len(label_numbers)):
        raise FGDError(
            f"{file_list_path}: file_list, annotation_list and labels have "
            f"{len(files)}, {len(annotation_names)} and {len(label_numbers)} entries"
        )
    if not files:
        raise FGDError(f"{file_list_path} lists no images")
    files = [f.replace("\\", "/") for f in files]
    annotation_names = [a.replace("\\", "/") for a in annotation_names]

    # The label number is the class index; its name is the breed folder of its images.
    folder_of_label: dict[int, str] = {}
    for i, (file, number) in enumerate(zip(files, label_numbers)):
        if number != round(number) or number < 1:
            raise FGDError(
                f"{file_list_path}: labels entry {i + 1} is {number:g}, "
                "not a class number 1, 2, ..."
            )
        folder = file.rsplit("/", 1)[0] if "/" in file else ""
        if not folder:
            raise FGDError(
                f"{file_list_path}: file_list entry {i + 1} ({file!r}) has no breed folder"
            )
        known = folder_of_label.setdefault(int(number), folder)
        if known != folder:
            raise FGDError(
                f"{file_list_path}: label {int(number)} is given to both {known!r} and {folder!r}"
            )
    class_names = [folder_of_label[k] for k in sorted(folder_of_label)]

    train_mat = _load_mat(train_list_path)
    train_files = _mat_strings(train_mat, "file_list", train_list_path)
    train_set = {f.replace("\\", "/") for f in train_files}
    unknown = sorted(train_set.difference(files))
    if unknown:
        raise FGDError(
            f"{train_list_path}: {len(unknown)} files are not in {file_list_path.name}, "
            f"first: {unknown[0]}"
        )

    prefix = _prefix(root, base)
    image_prefix = prefix + images_dir.name + "/"
    rel_files = [image_prefix + f for f in files]
    _check_images_exist(root, rel_files, str(file_list_path))
    bboxes = np.array([_dogs_union_box(annotation_dir / a) for a in annotation_names], float)
    return Annotations(
        name="dogs",
        files=rel_files,
        labels=[folder_of_label[int(n)] for n in label_numbers],
        bboxes=bboxes.reshape(-1, 4),
        is_train=np.array([f in train_set for f in files], dtype=bool),
        class_names=class_names,
    )


# --------------------------------------------------------------------------------------
# Stanford Cars
# --------------------------------------------------------------------------------------

_CARS_BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _cars_boxes(fields: dict, path: Path) -> np.ndarray:
    """``x, y, w, h`` from the Cars inclusive 1-based corners, shape (n, 4).

    The Cars boxes are MATLAB pixel indices: pixel ``x1`` through pixel ``x2``, both
    included, counted from 1. On the 0-based grid used everywhere else pixel ``i``
    covers ``[i - 1, i)``, so the box starts at ``x1 - 1`` and is ``x2 - x1 + 1`` wide.
    """
    # float64 before subtracting: MATLAB stored these as uint8/uint16, which would wrap.
    x1, y1, x2, y2 = (_as_numbers(fields[f], path, f) for f in _CARS_BOX_FIELDS)
    return np.stack([x1 - 1.0, y1 - 1.0, x2 - x1 + 1.0, y2 - y1 + 1.0], axis=1)


def _read_cars_annos(root, base: Path) -> Annotations:
    """Cars from ``cars_annos.mat`` (all 16,185 images, split in field ``test``)."""
    path = base / "cars_annos.mat"
    mat = _load_mat(path)
    fields = _mat_struct_fields(
        mat, "annotations", path, ("relative_im_path",) + _CARS_BOX_FIELDS + ("class", "test")
    )
    class_names = _mat_strings(mat, "class_names", path)
    files = _as_strings(fields["relative_im_path"], path, "relative_im_path")
    if not files:
        raise FGDError(f"{path} lists no images")
    classes = _as_class_index(fields["class"], len(class_names), path, "class")
    test = _as_numbers(fields["test"], path, "test")
    bad = np.flatnonzero((test != 0) & (test != 1))
    if bad.size:
        raise FGDError(f"{path}: test entry {bad[0] + 1} is {test[bad[0]]:g}, not 0 or 1")
    prefix = _prefix(root, base)
    rel_files = [prefix + f.replace("\\", "/") for f in files]
    _check_images_exist(root, rel_files, str(path))
    return Annotations(
        name="cars",
        files=rel_files,
        labels=[class_names[c] for c in classes],
        bboxes=_cars_boxes(fields, path),
        is_train=test == 0,
        class_names=class_names,
    )


def _devkit_file(base: Path, name: str) -> Path:
    """``name`` at the top of ``base``, in ``devkit/`` or in ``car_devkit/devkit/``."""
    found = _first_existing(base, _in_dirs(_CARS_DEVKIT_DIRS, name))
    if found is None:
        hint = ""
        if name == "cars_test_annos_withlabels.mat":
            # The devkit's own cars_test_annos.mat has no classes; the labelled file
            # was published separately.
            hint = " (the devkit's cars_test_annos.mat has no labels)"
        raise FGDError(f"missing file: {name} in {base} or {base / 'devkit'}{hint}")
    return found


def _devkit_images_dir(base: Path, name: str) -> Path:
    """``base/name``, or ``base/name/name`` as some re-uploads nest it."""
    for folder in (base / name / name, base / name):
        if folder.is_dir():
            return folder
    raise FGDError(f"missing folder: {base / name}")


def _read_cars_devkit(root, base: Path) -> Annotations:
    """Cars from the devkit: train and labelled test annotations, ``cars_meta.mat``."""
    meta_path = _devkit_file(base, "cars_meta.mat")
    class_names = _mat_strings(_load_mat(meta_path), "class_names", meta_path)
    files, labels, boxes, is_train = [], [], [], []
    splits = (("train", "cars_train_annos.mat"), ("test", "cars_test_annos_withlabels.mat"))
    for split, annos_name in splits:
        path = _devkit_file(base, annos_name)
        images_dir = _devkit_images_dir(base, f"cars_{split}")
        fields = _mat_struct_fields(
            _load_mat(path), "annotations", path, _CARS_BOX_FIELDS + ("class", "fname")
        )
        names = _as_strings(fields["fname"], path, "fname")
        classes = _as_class_index(fields["class"], len(class_names), path, "class")
        folder = _prefix(root, images_dir)
        split_files = [folder + n.replace("\\", "/") for n in names]
        _check_images_exist(root, split_files, str(path))
        files += split_files
        labels += [class_names[c] for c in classes]
        boxes.append(_cars_boxes(fields, path))
        is_train += [split == "train"] * len(names)
    if not files:
        raise FGDError(f"{base}: the Cars annotation files list no images")
    return Annotations(
        name="cars",
        files=files,
        labels=labels,
        bboxes=np.concatenate(boxes).reshape(-1, 4),
        is_train=np.array(is_train, dtype=bool),
        class_names=class_names,
    )


def read_cars(root) -> Annotations:
    """Read Stanford Cars, from ``cars_annos.mat`` or from the devkit files.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``cars_annos.mat`` and ``car_ims/``, or the devkit form
        (``cars_train/``, ``cars_test/``, the devkit ``.mat`` files at the top or in
        ``devkit/``, ``cars_test_annos_withlabels.mat``), or its parent.

    Returns
    -------
    Annotations
        ``cars_annos.mat`` form: in file order, ``is_train`` is ``test == 0``.
        Devkit form: the training images then the test images, each in file order.
        Labels are ``class_names`` entries. Boxes come from the MATLAB corners
        ``bbox_x1..bbox_x2`` (1-based, both ends included) as
        ``x = x1 - 1, y = y1 - 1, w = x2 - x1 + 1, h = y2 - y1 + 1``.

    Raises
    ------
    FGDError
        A missing file or field, a class outside ``class_names``, a missing image.

    Notes
    -----
    When both forms are present, ``cars_annos.mat`` is used if the image folder its
    paths name (``car_ims/``) is there, else the devkit.
    """
    base = _base_for(root, "cars")
    annos_path = base / "cars_annos.mat"
    has_devkit = any(
        _first_existing(base, _in_dirs(_CARS_DEVKIT_DIRS, name)) is not None
        for name in ("cars_meta.mat", "cars_train_annos.mat")
    )
    if annos_path.is_file() and ((base / "car_ims").is_dir() or not has_devkit):
        return _read_cars_annos(root, base)
    return _read_cars_devkit(root, base)


_READERS: dict[str, Callable[..., Annotations]] = {
    "cub": read_cub,
    "dogs": read_dogs,
    "cars": read_cars,
}
