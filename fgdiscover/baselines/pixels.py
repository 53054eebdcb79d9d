"""k-means on raw pixels: the floor every discovery method must clear.

Each image is flattened to a vector of its RGB values in [0, 1] (optionally after
downsampling by block averages) and clustered with :class:`~fgdiscover.cluster.FaissKMeans`
(k-means++, several restarts, the best objective kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fgdiscover.baselines._torch import check_images
from fgdiscover.cluster import FaissKMeans


@dataclass(frozen=True)
class PixelsConfig:
    """Settings of :func:`fit_predict`.

    Attributes
    ----------
    side : int or None
        Downsample to ``side`` x ``side`` by block averaging first (None: as given).
    n_init : int
        k-means restarts.
    max_iter : int
        Lloyd iterations per restart.
    """

    side: int | None = None
    n_init: int = 5
    max_iter: int = 50


PRESETS = {"tiny": PixelsConfig(n_init=2, max_iter=20), "cpu": PixelsConfig(),
           "paper": PixelsConfig(side=32)}


def pixel_vectors(images: np.ndarray, side: int | None = None) -> np.ndarray:
    """Flattened pixels in [0, 1].

    Parameters
    ----------
    images : ndarray of shape (n, R, R, 3), uint8
    side : int, optional
        Block-average down to ``side`` px first; must divide R.

    Returns
    -------
    ndarray of shape (n, side * side * 3), float32
    """
    x = np.asarray(images, dtype=np.float32) / 255.0
    if side is not None and side != x.shape[1]:
        f = x.shape[1] // side
        if f * side != x.shape[1]:
            raise ValueError(f"side {side} does not divide the image side {x.shape[1]}")
        x = x.reshape(len(x), side, f, side, f, 3).mean(axis=(2, 4))
    return x.reshape(len(x), -1)


def fit_predict(images: np.ndarray, k: int, *, config: PixelsConfig = PixelsConfig(),
                seed: int = 0, device: str = "cpu", progress: bool = False) -> np.ndarray:
    """Cluster images by their raw pixels.

    Parameters
    ----------
    images : ndarray of shape (n, R, R, 3), uint8
    k : int
        Number of clusters.

    Returns
    -------
    labels : ndarray of shape (n,), int64, values in [0, k)
    """
    images = check_images(images, k)
    # faiss picks its own GPU when it has one; ``device`` is for the torch baselines
    km = FaissKMeans(k, n_init=config.n_init, max_iter=config.max_iter, seed=seed)
    return km.fit_predict(pixel_vectors(images, config.side)).astype(np.int64)
