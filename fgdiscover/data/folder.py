"""A folder of images as one decoded, cropped, resized array on disk.

:class:`ImageFolder` finds the images (a plain folder, or CUB / Stanford Dogs / Stanford
Cars read through :mod:`fgdiscover.data.readers`), attaches optional labels and boxes,
and decodes every image exactly once into a ``uint8`` ``.npy`` file in a cache folder.
Training then reads that file through a read-only memory map, so no epoch decodes a JPEG
again. Files that cannot be used are skipped and listed with a reason.

The cache is keyed by everything the decoded pixels depend on (format version, output
size, Pillow version, the root, and per file its relative path, byte size, modification
time and box), so editing, adding or removing a file, or changing the size or the boxes,
gives a new key and a rebuild.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import tempfile
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import numpy as np
import PIL
from PIL import Image

from fgdiscover.data import tables
from fgdiscover.data.images import CROPS, IMAGE_EXTENSIONS, ImageDecodeError, _decode
from fgdiscover.errors import FGDError

PathArg = Union[str, PathLike]

#: Bump when the decoded pixels for the same inputs change (crop rule, resampling, ...).
CACHE_FORMAT_VERSION = 1

# Below this many images a thread pool costs more than it saves.
_MIN_FILES_FOR_POOL = 32


# --------------------------------------------------------------------------------------
# Finding images
# --------------------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def scan_images(root: PathArg) -> list[str]:
    """List the image files under a folder, recursively.

    Hidden files and folders (names starting with ``'.'``) are skipped; symbolic links
    are followed, but a folder already visited (a link loop) is not entered twice.

    Parameters
    ----------
    root : str or path-like
        Folder to scan.

    Returns
    -------
    list of str
        Sorted relative POSIX paths of the files whose extension (any case) is in
        :data:`~fgdiscover.data.images.IMAGE_EXTENSIONS`.

    Raises
    ------
    FGDError
        ``root`` does not exist, is not a folder, or holds no image file.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FGDError(f"no such folder: {root}")
    if not root.is_dir():
        raise FGDError(f"not a folder: {root}")
    found: list[str] = []
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:  # reached again through a symlink
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if _is_hidden(name) or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            found.append((rel_dir / name).as_posix())
    if not found:
        kinds = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        raise FGDError(f"no images ({kinds}) found under {root}")
    return sorted(found)


# --------------------------------------------------------------------------------------
# The decode cache
# --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where decoded images are cached.

    Returns
    -------
    pathlib.Path
        ``$FGDISCOVER_CACHE`` if set, else ``$XDG_CACHE_HOME/fgdiscover``, else
        ``~/.cache/fgdiscover``.
    """
    explicit = os.environ.get("FGDISCOVER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "fgdiscover"
    return Path.home() / ".cache" / "fgdiscover"


def _box_or_none(row: np.ndarray) -> list[float] | None:
    return None if not np.all(np.isfinite(row)) else [float(v) for v in row]


def cache_key(root: Path, size: int, files: Sequence[str], bboxes: np.ndarray,
              crop: str = "bbox") -> str:
    """Hex digest identifying the decoded array for these inputs.

    Parameters
    ----------
    root : pathlib.Path
        Absolute image root.
    size : int
        Output side in pixels.
    files : sequence of str, length n_files
        Relative paths of the candidate images.
    bboxes : ndarray of shape (n_files, 4)
        Boxes in original pixels, NaN rows for none.

    Returns
    -------
    str
        SHA-256 hex digest over the format version, Pillow version, root, size, crop
        rule and, per file, its path, byte size, ``mtime_ns`` and box.
    """
    digest = hashlib.sha256()
    header = {
        "format": CACHE_FORMAT_VERSION,
        "pillow": PIL.__version__,
        "root": str(root),
        "size": int(size),
        "crop": "finegan-bbox-else-centre-square" if crop == "bbox" else "centre-square",
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for file, box in zip(files, bboxes):
        try:
            st = os.stat(root / file)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = [None, None]  # decodes as skipped; appears later -> new key
        digest.update(json.dumps([file, *stamp, _box_or_none(box)]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _ordered_map(fn: Callable, items: Sequence, workers: int) -> Iterator:
    """``map(fn, items)`` on a thread pool, in order, with a bounded number in flight.

    Threads suffice: Pillow releases the GIL while decoding and resampling. The window
    keeps memory bounded when one slow image holds back the in-order results.
    """
    if workers <= 1 or len(items) < _MIN_FILES_FOR_POOL:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fgd-decode") as pool:
        source = iter(items)
        pending = deque(pool.submit(fn, item) for _, item in zip(range(4 * workers), source))
        while pending:
            future = pending.popleft()
            for item in source:
                pending.append(pool.submit(fn, item))
                break
            yield future.result()


def _decode_worker(root: Path, size: int, crop: str = "bbox"):
    def decode(job: tuple[str, list[float] | None]):
        file, box = job
        try:
            image, box_out = _decode(root / file, size, box, crop)
        except ImageDecodeError as exc:
            return None, None, exc.reason
        return image, box_out, None

    return decode


def _safe_name(root: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", root.name)[:40].strip("._") or "root"


def _write_json_atomic(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _reserve_disk(path: Path) -> None:
    """Allocate a new (sparse) array file's blocks now.

    Writing through a memory map into a sparse file on a full disk kills the process
    with SIGBUS; reserving the space first turns that into an ordinary OSError.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            # EOPNOTSUPP / EINVAL: the file system cannot preallocate; go on without.


def _new_array(path: Path, shape: tuple[int, ...]) -> np.memmap:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    _reserve_disk(path)
    return array


def _cache_write_error(folder: Path, exc: OSError) -> str:
    return (
        f"cannot write the decode cache in {folder}: {exc.strerror or exc} "
        "(set FGDISCOVER_CACHE or cache_dir to another folder)"
    )


def _remove_quietly(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _read_cache(npy: Path, meta: Path, key: str, size: int):
    """Return (images memmap, sidecar dict) for a valid entry with this key, else None."""
    try:
        with open(meta, encoding="utf-8") as fh:
            sidecar = json.load(fh)
        if sidecar.get("key") != key:
            return None
        images = np.lib.format.open_memmap(npy, mode="r")
    except (OSError, ValueError):
        return None
    n = len(sidecar.get("files", []))
    if images.dtype != np.uint8 or images.shape != (n, size, size, 3):
        return None
    if len(sidecar.get("bboxes", [])) != n:
        return None
    return images, sidecar


def build_cache(
    root: Path,
    size: int,
    files: Sequence[str],
    bboxes: np.ndarray,
    npy: Path,
    meta: Path,
    key: str,
    *,
    workers: int,
    progress: bool,
    crop: str = "bbox",
) -> dict:
    """Decode every file once into ``npy`` and describe the result in ``meta``.

    Both files are written under temporary names and moved into place with
    :func:`os.replace`; the sidecar goes last, so a reader never sees a sidecar whose
    array is incomplete.

    Parameters
    ----------
    root : pathlib.Path
        Image root.
    size : int
        Output side in pixels.
    files : sequence of str, length n_files
        Candidate images, relative to ``root``.
    bboxes : ndarray of shape (n_files, 4)
        Boxes in original pixels, NaN rows for none.
    npy, meta : pathlib.Path
        Destination array (``(n_kept, size, size, 3)`` uint8) and JSON sidecar.
    key : str
        Cache key stored in the sidecar.
    workers : int
        Decoding threads.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    dict
        The sidecar: ``key``, ``size``, ``root``, ``files`` (kept), ``skipped``
        (``[file, reason]`` pairs) and ``bboxes`` (output-pixel boxes or None, per kept
        file).

    Raises
    ------
    FGDError
        No file could be decoded, or the cache folder cannot be written.
    """
    from ..progress import progress_bar

    n = len(files)
    jobs = [(file, _box_or_none(box)) for file, box in zip(files, bboxes)]
    kept: list[str] = []
    kept_boxes: list[list[float] | None] = []
    skipped: list[list[str]] = []
    try:
        fd, tmp_name = tempfile.mkstemp(dir=npy.parent, prefix=npy.stem + "-", suffix=".tmp.npy")
    except OSError as exc:
        raise FGDError(_cache_write_error(npy.parent, exc)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    compact = tmp.with_name(tmp.stem + "-compact.npy")
    try:
        # Rows are written in file order; skipped files leave the tail unused and the
        # array is compacted at the end (only then, to avoid a second copy normally).
        array = _new_array(tmp, (n, size, size, 3))
        bar = progress_bar(total=n, desc=f"decoding {n} images", unit="img", enabled=progress,
                           file=sys.stderr, leave=False)
        with bar, warnings.catch_warnings():
            # Set once here, not per image: warning filters are process-wide and the
            # decoding threads would race to save and restore them.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            results = _ordered_map(_decode_worker(root, size, crop), jobs, workers)
            for (file, _), (image, box_out, reason) in zip(jobs, results):
                bar.update(1)
                if reason is not None:
                    skipped.append([file, reason])
                    continue
                array[len(kept)] = image
                kept.append(file)
                kept_boxes.append(None if box_out is None else [float(v) for v in box_out])
        if not kept:
            first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
            raise FGDError(f"none of the {n} image files under {root} could be read{first}")
        array.flush()
        if len(kept) < n:
            final = _new_array(compact, (len(kept), size, size, 3))
            step = 256  # rows per copy: bounded memory at any image size
            for start in range(0, len(kept), step):
                stop = min(start + step, len(kept))
                final[start:stop] = array[start:stop]
            final.flush()
            del final
            del array
            os.replace(compact, tmp)
        else:
            del array
        os.replace(tmp, npy)
        sidecar = {
            "key": key,
            "format": CACHE_FORMAT_VERSION,
            "size": int(size),
            "root": str(root),
            "files": kept,
            "skipped": skipped,
            "bboxes": kept_boxes,
        }
        _write_json_atomic(meta, sidecar)
        return sidecar
    except OSError as exc:
        raise FGDError(_cache_write_error(npy.parent, exc)) from None
    finally:
        _remove_quietly(tmp)
        _remove_quietly(compact)


# --------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------


def _read_known_annotations(root: Path):
    """``readers.read_annotations(root)``, or None if that module is not available."""
    try:
        from fgdiscover.data import readers
    except ModuleNotFoundError as exc:
        if exc.name in ("fgdiscover.data.readers",):
            return None
        raise
    return readers.read_annotations(root)


def _bboxes_from_csv(path: PathArg, files: Sequence[str]) -> np.ndarray:
    boxes = tables.read_bboxes_csv(path)
    keys = list(boxes)
    out = np.full((len(files), 4), np.nan)
    matches = tables.match_files(keys, files)
    for row, match in enumerate(matches):
        if match is not None:
            out[row] = boxes[keys[match]]
    if all(m is None for m in matches):
        raise FGDError(
            f"none of the {len(keys)} boxes in {path} matches an image file "
            f"(first box: {keys[0]}, first image: {files[0]})"
        )
    return out


class ImageFolder:
    """Every usable image under a folder, decoded once to ``size x size`` RGB.

    Parameters
    ----------
    root : str or path-like
        Image folder; a CUB-200-2011, Stanford Dogs or Stanford Cars folder is
        recognised and read with its own file list, labels and boxes.
    size : int
        Side of the square output images, in pixels.
    bboxes_csv : str or path-like, optional
        CSV ``file,x,y,w,h`` of object boxes in original pixels. Images with a box are
        cropped FineGAN-style around it; images without one are centre-cropped.
    labels_csv : str or path-like, optional
        CSV with a ``file`` column and label column(s), for scoring only.
    label_column : str, optional
        Column of ``labels_csv`` to use (default: ``label``, ``class``, ``child``, or
        the first column).
    labels_from_dirs : bool, default False
        Use each image's top-level sub-folder name as its label.
    cache_dir : str or path-like, optional
        Where the decoded array is kept; default :func:`default_cache_dir`.
    crop : {"bbox", "full"}, default "bbox"
        ``"bbox"``: FineGAN's crop around each image's box. ``"full"``: every image
        centre-cropped to a square; boxes are only carried into output pixels (D_b then
        sees real background around the object).
    use_annotations : bool, default True
        Read a recognised data set's own annotations when none of ``bboxes_csv``,
        ``labels_csv``, ``labels_from_dirs`` is given.
    progress : bool, default True
        Show a progress bar on stderr while decoding.

    Attributes
    ----------
    root : pathlib.Path
        Absolute image root.
    size : int
        Output side in pixels.
    files : list of str, length n_images
        Usable images, relative POSIX paths, in order.
    images : numpy.memmap of shape (n_images, size, size, 3), uint8, read-only
        Decoded, cropped, resized RGB images.
    bboxes : ndarray of shape (n_images, 4), float32
        Object boxes ``x, y, w, h`` in output pixels, clipped to the image; NaN rows
        where no box is known.
    labels : list of str, length n_images, or None
        Ground-truth labels, for scoring only.
    is_train : ndarray of shape (n_images,), bool, or None
        Official training split of a recognised data set; None for a plain folder.
    skipped : list of (str, str)
        Files that could not be used and the reason.
    layout : str
        ``'folder'``, or the recognised data set (``'cub'``, ``'dogs'``, ``'cars'``).
    cache_path : pathlib.Path
        The ``.npy`` file behind ``images``.
    cache_hit : bool
        True when the decoded array was already in the cache.
    """

    def __init__(
        self,
        root: PathArg,
        *,
        size: int,
        bboxes_csv: PathArg | None = None,
        labels_csv: PathArg | None = None,
        label_column: str | None = None,
        labels_from_dirs: bool = False,
        cache_dir: PathArg | None = None,
        use_annotations: bool = True,
        crop: str = "bbox",
        progress: bool = True,
    ):
        if crop not in CROPS:
            raise FGDError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise FGDError(f"image size must be a positive integer, got {size!r}")
        if labels_csv is not None and labels_from_dirs:
            raise FGDError("give either a labels CSV or labels from sub-folders, not both")
        if label_column is not None and labels_csv is None:
            raise FGDError(f"label column {label_column!r} given without a labels CSV")
        self.root = Path(root).expanduser().resolve()
        self.size = int(size)
        if not self.root.exists():
            raise FGDError(f"no such folder: {root}")
        if not self.root.is_dir():
            raise FGDError(f"not a folder: {root}")

        files, boxes, labels, is_train, self.layout = self._gather(
            bboxes_csv, labels_csv, label_column, labels_from_dirs, use_annotations
        )

        cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FGDError(f"cannot create the cache folder {cache_dir}: {exc.strerror or exc}") from None
        key = cache_key(self.root, self.size, files, boxes, crop)
        stem = f"{_safe_name(self.root)}-{self.size}px-{key[:24]}"
        npy, meta = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"

        cached = _read_cache(npy, meta, key, self.size)
        self.cache_hit = cached is not None
        if cached is None:
            sidecar = build_cache(
                self.root, self.size, files, boxes, npy, meta, key,
                workers=min(4, os.cpu_count() or 1), progress=progress, crop=crop,
            )
            images = np.lib.format.open_memmap(npy, mode="r")
        else:
            images, sidecar = cached
        self.cache_path = npy
        self.images = images
        self.files = list(sidecar["files"])
        self.skipped = [(str(f), str(r)) for f, r in sidecar["skipped"]]
        self.bboxes = np.array(
            [[np.nan] * 4 if b is None else b for b in sidecar["bboxes"]], dtype=np.float32
        ).reshape(len(self.files), 4)

        position = {file: i for i, file in enumerate(files)}
        kept = [position[file] for file in self.files]
        self.is_train = None if is_train is None else np.asarray(is_train, dtype=bool)[kept]
        if labels_from_dirs:
            self.labels = tables.labels_from_dirs(self.files)
        elif labels is not None:
            self.labels = self._kept_labels(labels, kept, labels_csv)
        else:
            self.labels = None

    def _gather(self, bboxes_csv, labels_csv, label_column, labels_from_dirs, use_annotations):
        """Candidate files with their boxes (original pixels), labels, split and layout."""
        explicit = bboxes_csv is not None or labels_csv is not None or labels_from_dirs
        annotations = None
        if use_annotations and not explicit:
            annotations = _read_known_annotations(self.root)
        if annotations is not None:
            files = [tables.normalise_path(f) for f in annotations.files]
            if not files:
                raise FGDError(f"the {annotations.name} annotations under {self.root} list no image")
            boxes = np.asarray(annotations.bboxes, dtype=np.float64).reshape(len(files), 4)
            return (files, boxes, [str(label) for label in annotations.labels],
                    annotations.is_train, annotations.name)

        files = scan_images(self.root)
        boxes = (np.full((len(files), 4), np.nan) if bboxes_csv is None
                 else _bboxes_from_csv(bboxes_csv, files))
        labels: list[str | None] | None = None
        if labels_csv is not None:
            table = tables.read_label_table(labels_csv)
            column = tables.pick_label_column(table, label_column)
            values = table[column].tolist()
            matches = tables.match_files(table.index, files)
            if all(m is None for m in matches):
                raise FGDError(
                    f"no image under {self.root} matches a 'file' in {labels_csv} "
                    f"(first image: {files[0]}, first row: {table.index[0]})"
                )
            # Unlabelled files are only an error if they turn out to be usable images.
            labels = [None if m is None or values[m].strip() == "" else values[m].strip()
                      for m in matches]
        return files, boxes, labels, None, "folder"

    def _kept_labels(self, labels, kept, labels_csv) -> list[str]:
        """Labels of the usable files; FGDError if any of them has none."""
        chosen = [labels[i] for i in kept]
        missing = [file for file, label in zip(self.files, chosen) if label is None]
        if missing:
            raise FGDError(
                f"{len(missing)} of {len(self.files)} images have no label in "
                f"{labels_csv} (first: {missing[0]})"
            )
        return chosen

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root={str(self.root)!r}, size={self.size}, n_images={len(self)}, "
            f"layout={self.layout!r}, skipped={len(self.skipped)})"
        )
