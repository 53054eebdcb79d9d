"""One checkpoint file per run, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..errors import FGDError


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename.

    A run killed mid-write leaves the previous checkpoint intact.
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


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint; FGDError when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FGDError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file: say so in one line
        raise FGDError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
