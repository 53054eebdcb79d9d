"""JULE (Yang, Parikh & Batra, CVPR 2016): joint unsupervised learning of CNN features
and agglomerative clusters. Clustering starts from many small clusters; each period
merges clusters by their affinity in the current CNN features (the forward pass), then
updates the CNN on the merged clusters as labels (the backward pass), until k remain.

The steps:

1. initial clusters: k-means on raw pixels into ``n0`` small clusters (about
   ``init_size`` images each);
2. for each period: train the CNN ``period_iters`` steps with a cross-entropy head over
   the current clusters; embed every image (L2-normalised CNN features); merge the
   clusters' mean features by average-linkage agglomeration (cosine distance) down to the
   next count of a geometric schedule from ``n0`` to ``k`` over ``periods`` periods.

How this differs from the original: JULE's initial clusters come from a k-nearest-
neighbour graph and its merges use the graph-degree-linkage affinity between clusters,
merged a fraction at a time (the unrolling rate); here clusters merge by average linkage
of their mean features along a fixed geometric schedule. JULE trains the CNN with a
weighted triplet loss; here a softmax head over the current clusters (re-created after
each merge) does that job. Networks and iterations are scaled down by the presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import AgglomerativeClustering
from torch import nn

from fgdiscover.baselines._torch import (adam, apply_batched, conv_encoder,
                                         prepare, random_batch, step)
from fgdiscover.baselines.pixels import pixel_vectors
from fgdiscover.cluster import FaissKMeans
from fgdiscover.progress import progress_bar


@dataclass(frozen=True)
class JULEConfig:
    """Settings of :func:`fit_predict`.

    Attributes
    ----------
    width : int
        Channels of the CNN's first convolution.
    feature_dim : int
        CNN feature size.
    init_size : int
        Mean size of the initial clusters (``n0 = max(2k, n // init_size)``, at most 1,000).
    periods : int
        Merge periods from n0 down to k.
    period_iters : int
        CNN steps per period (after each merge, and once before the first).
    batch_size : int
    lr : float
    """

    width: int = 16
    feature_dim: int = 64
    init_size: int = 4
    periods: int = 5
    period_iters: int = 150
    batch_size: int = 64
    lr: float = 1e-3


PRESETS = {
    "tiny": JULEConfig(width=8, feature_dim=16, periods=3, period_iters=30, batch_size=16),
    "cpu": JULEConfig(),
    "paper": JULEConfig(width=64, feature_dim=160, periods=20, period_iters=2_000,
                        batch_size=128),
}


def merge_schedule(n0: int, k: int, periods: int) -> list[int]:
    """Cluster counts after each period: geometric from ``n0`` to exactly ``k``,
    strictly decreasing (repeats dropped)."""
    counts = np.geomspace(n0, k, periods + 1)[1:].round().astype(int)
    counts[-1] = k
    return [int(c) for c in dict.fromkeys(counts) if c < n0]


def merge_clusters(features: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Merge the clusters of ``labels`` into ``n_clusters`` by average-linkage
    agglomeration of their mean features (cosine distance).

    Parameters
    ----------
    features : ndarray of shape (n, d)
    labels : ndarray of shape (n,), values 0..m-1 (every value used)
    n_clusters : int <= m

    Returns
    -------
    ndarray of shape (n,), values 0..n_clusters-1
    """
    m = int(labels.max()) + 1
    sums = np.zeros((m, features.shape[1]))
    np.add.at(sums, labels, features)
    means = sums / np.bincount(labels, minlength=m)[:, None]
    merged = AgglomerativeClustering(n_clusters=n_clusters, metric="cosine",
                                     linkage="average").fit_predict(means)
    return merged[labels].astype(np.int64)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..m-1 in order of first value (empty clusters dropped)."""
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def fit_predict(images: np.ndarray, k: int, *, config: JULEConfig = JULEConfig(),
                seed: int = 0, device: str = "cpu", progress: bool = False) -> np.ndarray:
    """Cluster images with JULE's alternation of merges and CNN updates.
    ``images`` (n, R, R, 3) uint8 -> labels (n,) int64 in [0, k) (the contract of
    :mod:`fgdiscover.baselines`)."""
    x, gen = prepare(images, k, seed, device)
    dev = x.device
    n0 = min(len(x), max(2 * k, min(1000, len(x) // config.init_size)))
    labels = _relabel(FaissKMeans(n0, n_init=1, seed=seed).fit_predict(pixel_vectors(images)))
    cnn = conv_encoder(x.shape[-1], config.width, config.feature_dim).to(dev)
    schedule = merge_schedule(int(labels.max()) + 1, k, config.periods)
    bar = progress_bar(total=len(schedule) * config.period_iters, desc="JULE", unit="step",
                       enabled=progress)
    with bar:
        for n_clusters in schedule:
            # backward pass: the CNN learns the current clusters as classes
            head = nn.Linear(config.feature_dim, int(labels.max()) + 1).to(dev)
            opt = adam([*cnn.parameters(), *head.parameters()], config.lr)
            y = torch.as_tensor(labels, device=dev)
            cnn.train()
            for _ in range(config.period_iters):
                idx = random_batch(x, config.batch_size, gen)
                loss = F.cross_entropy(head(F.leaky_relu(cnn(x[idx]), 0.2)), y[idx])
                step(opt, loss)
                bar.update(1)
            # forward pass: merge in the updated feature space
            cnn.eval()
            feats = F.normalize(apply_batched(cnn, x), dim=1).cpu().numpy()
            labels = merge_clusters(feats, labels, n_clusters)
    return labels
