"""One checkpoint file per run: written atomically, read without running pickled code.

A checkpoint holds only tensors and plain Python values (dicts, lists, tuples, strings,
numbers), so :func:`load_checkpoint` reads it with ``torch.load(..., weights_only=True)``:
a file carrying any other Python object (a pickle that would import or call something) is
refused before anything in it runs.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from ..errors import FGDError


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` to ``path``: temporary file, fsync, atomic rename, fsync of the folder.

    A run killed mid-write leaves the previous checkpoint intact, and a machine that loses
    power right after the rename still finds one whole file under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location="cpu", *, kind: str | None = None) -> dict:
    """Read a checkpoint safely (``weights_only=True``).

    Parameters
    ----------
    path : Path
    map_location : torch device for the tensors
    kind : str, optional
        The ``"format"`` the file must declare (e.g. ``"fgdiscover-finegan-2"``).

    Raises
    ------
    FGDError
        Missing file; truncated or corrupt file; a file holding Python objects other than
        tensors and plain values (refused without running them; also what checkpoints of
        fgdiscover before format 2 look like); a file of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FGDError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise FGDError(f"refused to load {path}: it holds Python objects other than weights "
                       f"(untrusted, or written by an older fgdiscover); nothing in it was run "
                       f"({_first_line(e)})") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError) as e:
        raise FGDError(f"cannot read checkpoint {path}: the file is truncated or corrupt "
                       f"({type(e).__name__})") from None
    if not isinstance(ckpt, dict):
        raise FGDError(f"{path} is not an fgdiscover checkpoint")
    if kind is not None and ckpt.get("format") != kind:
        found = ckpt.get("format")
        raise FGDError(f"{path} is not a {kind} checkpoint (format: {found!r}); "
                       "checkpoints of older fgdiscover versions must be retrained")
    return ckpt


def load_weights(module: torch.nn.Module, state, path: Path, name: str) -> None:
    """``module.load_state_dict(state)``, with FGDError when the shapes or keys differ."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise FGDError(f"{path}: the {name} weights do not fit its config "
                       f"({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
