"""Silhouettes of clusters: what the members of a cluster have in common inside their boxes.

A child cluster holds one kind of object on many different backgrounds. Aligned by their
boxes, its members agree where the object is and disagree where the background shows, so
the per-pixel spread of the cluster's box crops outlines the object's shape. FineGAN's
parent is the shape; ``fgdiscover cluster`` groups child clusters into parents by these
outlines when every image has a box (benchmarks/README.md: parent NMI on the synthetic set).

Streaming: running sums per cluster, so memory is O(k * size^2) whatever the number of
images.
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
                        size: int = 16, blur: float | None = None,
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

    Returns
    -------
    maps : float32 array (k, size * size), 1 where the members agree most, 0 where least
        (rows of clusters with fewer than 2 boxed members are NaN)
    counts : int array (k,), boxed members per cluster
    """
    from torchvision.ops import roi_align

    n, res = len(images), images.shape[1]
    blur = res / 32 if blur is None else blur
    labels = np.asarray(labels)
    boxed = np.isfinite(np.asarray(boxes, dtype=np.float64)).all(axis=1)
    total = np.zeros((k, 3, size, size))
    total_sq = np.zeros((k, 3, size, size))
    counts = np.zeros(k, dtype=np.int64)
    for start in range(0, n, batch_size):
        idx = np.flatnonzero(boxed[start:start + batch_size]) + start
        if len(idx) == 0:
            continue
        x = torch.from_numpy(np.array(images[idx], dtype=np.float32)).permute(0, 3, 1, 2) / 255
        if blur > 0:
            x = _blur(x, blur)
        rois = torch.from_numpy(np.concatenate(
            [np.arange(len(idx))[:, None], square_boxes(boxes[idx], res)], axis=1)).float()
        crops = roi_align(x, rois, output_size=size, aligned=True).double().numpy()
        lab = labels[idx]
        np.add.at(total, lab, crops)
        np.add.at(total_sq, lab, crops ** 2)
        np.add.at(counts, lab, 1)
    maps = np.full((k, size * size), np.nan, dtype=np.float32)
    for c in np.flatnonzero(counts >= 2):
        mean = total[c] / counts[c]
        spread = np.sqrt(np.maximum(total_sq[c] / counts[c] - mean ** 2, 0)).mean(axis=0)
        maps[c] = (1 - spread / max(spread.max(), 1e-8)).ravel()
    return maps, counts
