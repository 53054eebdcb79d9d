"""Silhouettes of clusters: what the members of a cluster have in common inside their boxes.

A child cluster holds one kind of object on many different backgrounds. Aligned by their
boxes, its members agree where the object is and disagree where the background shows, so
the per-pixel spread of the cluster's box crops outlines the object's shape. FineGAN's
parent is the shape; ``fgdiscover cluster`` groups child clusters into parents by these
outlines when every image has a box (benchmarks/README.md: parent NMI on the synthetic set).

Memory does not grow with the number of images: a bounded sample per cluster (the
robust default) or running sums (``spread="std"``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (n, C, H, W), reflect padding."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def square_boxes(boxes: np.ndarray, resolution: int) -> np.ndarray:
    """x, y, w, h boxes -> x0, y0, x1, y1 squares of side max(w, h) around the same centre,
    moved (not cut) to lie inside the image."""
    boxes = np.asarray(boxes, dtype=np.float64)
    side = np.minimum(np.maximum(boxes[:, 2], boxes[:, 3]), resolution).clip(min=1.0)
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    x0 = np.clip(cx - side / 2, 0, resolution - side)
    y0 = np.clip(cy - side / 2, 0, resolution - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def cluster_silhouettes(images: np.ndarray, boxes: np.ndarray, labels: np.ndarray, k: int, *,
                        size: int = 16, blur: float | None = None, spread: str = "mad",
                        max_members: int = 256, seed: int = 0,
                        batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, how consistent its members' box crops are at each pixel.

    Parameters
    ----------
    images : uint8 array (n, R, R, 3), e.g. the decode cache's memmap
    boxes : float array (n, 4), x, y, w, h in pixels; rows with NaN are left out
    labels : int array (n,), cluster of each image in [0, k)
    size : side of the crops the statistics are taken on
    blur : Gaussian sigma in pixels of the images, applied before cropping so that
        patterns inside the object do not count as disagreement; default ``R / 32``
    spread : how disagreement at a pixel is measured, averaged over the colour channels

        * ``"mad"`` (default): the median absolute deviation from the per-pixel median of
          at most ``max_members`` members per cluster (a seeded random sample). Robust:
          members of another shape that the clustering mixed in (up to half of the
          cluster) do not blur the outline (benchmarks/README.md, parent grouping);
        * ``"std"``: the standard deviation over all boxed members, streamed by running
          sums in batches of ``batch_size``.

    max_members, seed : the sample ``"mad"`` takes of each cluster

    Returns
    -------
    maps : float32 array (k, size * size), 1 where the members agree most, 0 where least
        (rows of clusters with fewer than 2 boxed members are NaN)
    counts : int array (k,), boxed members per cluster (all of them, sampled or not)

    Memory is O(k * size^2), and O(max_members * size^2) more for ``"mad"``, whatever the
    number of images.
    """
    if spread not in ("mad", "std"):
        raise ValueError(f"spread must be 'mad' or 'std', got {spread!r}")
    res = images.shape[1]
    blur = res / 32 if blur is None else blur
    labels = np.asarray(labels)
    boxes = np.asarray(boxes, dtype=np.float64)
    boxed = np.isfinite(boxes).all(axis=1)
    counts = np.bincount(labels[boxed], minlength=k).astype(np.int64)
    maps = np.full((k, size * size), np.nan, dtype=np.float32)
    if spread == "std":
        spreads = _std_spreads(images, boxes, labels, boxed, counts, size, blur, batch_size)
    else:
        rng = np.random.default_rng(seed)
        spreads = {}
        # boxed images grouped by cluster, in index order within each: one sort, not k scans
        boxed_idx = np.flatnonzero(boxed)
        by_cluster = np.split(boxed_idx[np.argsort(labels[boxed_idx], kind="stable")],
                              np.cumsum(counts)[:-1])
        for c in np.flatnonzero(counts >= 2):
            members = by_cluster[c]
            if len(members) > max_members:
                members = np.sort(rng.choice(members, max_members, replace=False))
            crops = _box_crops(images, boxes, members, size, blur)
            dev = np.abs(crops - np.median(crops, axis=0))
            spreads[c] = np.median(dev, axis=0).mean(axis=0)
    for c, sp in spreads.items():
        maps[c] = (1 - sp / max(sp.max(), 1e-8)).ravel()
    return maps, counts


def _box_crops(images, boxes, idx, size, blur) -> np.ndarray:
    """(len(idx), 3, size, size) float64 crops of the square boxes of images ``idx``."""
    from torchvision.ops import roi_align

    res = images.shape[1]
    x = torch.from_numpy(np.array(images[idx], dtype=np.float32)).permute(0, 3, 1, 2) / 255
    if blur > 0:
        x = _blur(x, blur)
    rois = torch.from_numpy(np.concatenate(
        [np.arange(len(idx))[:, None], square_boxes(boxes[idx], res)], axis=1)).float()
    return roi_align(x, rois, output_size=size, aligned=True).double().numpy()


def _std_spreads(images, boxes, labels, boxed, counts, size, blur, batch_size) -> dict:
    """Cluster -> (size, size) per-pixel standard deviation, by running sums
    (``counts``: boxed members per cluster)."""
    k = len(counts)
    total = np.zeros((k, 3, size, size))
    total_sq = np.zeros((k, 3, size, size))
    for start in range(0, len(images), batch_size):
        idx = np.flatnonzero(boxed[start:start + batch_size]) + start
        if len(idx) == 0:
            continue
        crops = _box_crops(images, boxes, idx, size, blur)
        lab = labels[idx]
        np.add.at(total, lab, crops)
        np.add.at(total_sq, lab, crops ** 2)
    out = {}
    for c in np.flatnonzero(counts >= 2):
        mean = total[c] / counts[c]
        out[c] = np.sqrt(np.maximum(total_sq[c] / counts[c] - mean ** 2, 0)).mean(axis=0)
    return out

