"""The stages a user runs, as library functions the CLI calls one at a time.

images -> :func:`load_images` (scan, decode cache) -> :func:`train_run` (FineGAN)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.folder import ImageFolder
from .train.config import GANConfig
from .train.gan import train_gan

BBOXES_CSV = "bboxes.csv"


def load_images(data, size: int, *, bboxes=None, no_bboxes: bool = False, labels=None,
                labels_from_dirs: bool = False, label_column=None, cache_dir=None,
                progress: bool = True) -> ImageFolder:
    """Scan and decode the images under ``data`` at ``size`` px (through the cache).

    Boxes come from ``bboxes`` or, unless ``no_bboxes``, from ``data/bboxes.csv`` when it
    exists (the layout ``fgdiscover synth`` writes) or a recognised data set's own
    annotations. The returned dataset gets a ``bbox_missing`` bool array of shape (n,).
    """
    if bboxes is None and not no_bboxes and (Path(data) / BBOXES_CSV).is_file():
        bboxes = Path(data) / BBOXES_CSV
    ds = ImageFolder(data, size=size, bboxes_csv=bboxes, labels_csv=labels,
                     label_column=label_column, labels_from_dirs=labels_from_dirs,
                     cache_dir=cache_dir, use_annotations=not no_bboxes, progress=progress)
    ds.bbox_missing = np.isnan(ds.bboxes).any(axis=1)
    return ds


def train_run(dataset: ImageFolder, run_dir, cfg: GANConfig, *, resume=False, device=None,
              progress=True, stop_after=None) -> Path:
    """Train FineGAN on a loaded dataset into ``run_dir``; returns the checkpoint path."""
    return train_gan(dataset.images, dataset.bboxes, run_dir, cfg, resume=resume,
                     device=device, progress=progress, stop_after=stop_after)
