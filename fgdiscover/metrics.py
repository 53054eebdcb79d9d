"""Clustering scores: numpy functions of two label arrays.

Every metric takes ``labels_true`` and ``labels_pred``, two 1-D arrays of the same length
holding any hashable labels (ints, strings), and returns a float. Cluster ids are arbitrary:
relabelling the clusters never changes a score.

Conventions follow the tables we compare with:

* ``nmi`` uses scikit-learn's arithmetic normalisation, ``I(Y;C) / ((H(Y) + H(C)) / 2)``,
  as in the FineGAN, JULE and DEPICT tables (C3-GAN divides by the max entropy instead,
  so its NMIs are not directly comparable).
* ``accuracy`` is one-to-one Hungarian matching on the rectangular class x cluster
  contingency table. Unlike SCAN's ``hungarian_evaluate`` it accepts a number of clusters
  different from the number of classes: images in an unmatched cluster or of an unmatched
  class count as errors.
* :func:`overcluster_accuracy` is C3-GAN's protocol (each class may take up to ``m``
  clusters); its results key, ``accuracy_overcluster_m{m}``, says so.

New metrics join the registry with :func:`register_metric`; :func:`score` computes several
at once by name.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

MetricFn = Callable[[np.ndarray, np.ndarray], float]

#: name -> metric function ``f(labels_true, labels_pred) -> float``.
METRICS: Dict[str, MetricFn] = {}

#: Metrics :func:`score` computes when none are named.
DEFAULT_METRICS = ("nmi", "accuracy", "ari", "purity")

_OVERCLUSTER_NAME = re.compile(r"^accuracy_overcluster_m(\d+)$")


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding ``f(labels_true, labels_pred) -> float`` to :data:`METRICS`.

    Parameters
    ----------
    name : str
        Key of the metric in :data:`METRICS` and in the dict :func:`score` returns.

    Raises
    ------
    ValueError
        If ``name`` is already registered (a silent overwrite would change published
        numbers without anyone noticing).
    """

    def decorator(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = fn
        return fn

    return decorator


def _encode(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
    """Check two label arrays and map each to integer codes 0..n_distinct-1.

    Returns
    -------
    y, c : ndarray of shape (n_images,), dtype int64
    """
    true = np.asarray(labels_true)
    pred = np.asarray(labels_pred)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(
            f"labels must be 1-D arrays, got shapes {true.shape} and {pred.shape}"
        )
    if len(true) != len(pred):
        raise ValueError(
            f"labels_true and labels_pred have different lengths: {len(true)} vs {len(pred)}"
        )
    if len(true) == 0:
        raise ValueError("cannot score empty label arrays")
    # factorize accepts any hashable (mixed types included); use_na_sentinel=False keeps a
    # missing label as a class of its own instead of the code -1.
    y, _ = pd.factorize(true, use_na_sentinel=False)
    c, _ = pd.factorize(pred, use_na_sentinel=False)
    return y.astype(np.int64), c.astype(np.int64)


def contingency_matrix(labels_true, labels_pred) -> np.ndarray:
    """Count images per (class, cluster) pair.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)

    Returns
    -------
    counts : ndarray of shape (n_classes, n_clusters), dtype int64
        ``counts[i, j]`` is the number of images of the i-th class (in order of first
        appearance) that fall in the j-th cluster (in order of first appearance).
    """
    y, c = _encode(labels_true, labels_pred)
    n_classes, n_clusters = y.max() + 1, c.max() + 1
    flat = np.bincount(y * n_clusters + c, minlength=n_classes * n_clusters)
    return flat.reshape(n_classes, n_clusters)


def _matched_fraction(counts: np.ndarray, n_images: int) -> float:
    """Fraction of ``n_images`` on a maximum-weight one-to-one matching of rows to columns."""
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / n_images)


@register_metric("nmi")
def nmi(labels_true, labels_pred) -> float:
    """Normalised mutual information, arithmetic normalisation (scikit-learn's default).

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)

    Returns
    -------
    float in [0, 1]; 1 when the clustering equals the classes up to relabelling.
    """
    y, c = _encode(labels_true, labels_pred)
    return float(normalized_mutual_info_score(y, c, average_method="arithmetic"))


@register_metric("accuracy")
def hungarian_accuracy(labels_true, labels_pred) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    Works for any number of clusters: with more clusters than classes the extra clusters
    are matched to nothing, with fewer the extra classes are; their images count as errors.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)

    Returns
    -------
    float in [0, 1]
    """
    counts = contingency_matrix(labels_true, labels_pred)
    return _matched_fraction(counts, counts.sum())


@register_metric("ari")
def ari(labels_true, labels_pred) -> float:
    """Adjusted Rand index (0 for chance, 1 for a perfect match; can be negative).

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)
    """
    y, c = _encode(labels_true, labels_pred)
    return float(adjusted_rand_score(y, c))


@register_metric("purity")
def purity(labels_true, labels_pred) -> float:
    """Fraction of images whose cluster's majority class is their own class.

    Each cluster is matched to its most frequent class (several clusters may share one),
    so purity rewards over-clustering: one cluster per image gives 1.0.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)
    """
    counts = contingency_matrix(labels_true, labels_pred)
    return float(counts.max(axis=0).sum() / counts.sum())


def overcluster_accuracy(labels_true, labels_pred, m: int) -> float:
    """Accuracy when each class may be matched to up to ``m`` clusters (C3-GAN protocol).

    Each cluster is matched to at most one class and each class to at most ``m`` clusters,
    choosing the matching that covers the most images. ``m=1`` is
    :func:`hungarian_accuracy`; for ``m >= n_clusters`` it equals :func:`purity`. Report it
    under :func:`overcluster_metric_name` so that nobody compares it with ``accuracy``.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)
    m : int >= 1
        Most clusters one class may take.

    Returns
    -------
    float in [0, 1]
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    counts = contingency_matrix(labels_true, labels_pred)
    # Each class row repeated m times: a one-to-one matching of the copies to clusters is
    # exactly a matching in which every class takes at most m clusters. More copies than
    # clusters cannot be used, so cap m to keep the matrix small.
    copies = min(int(m), counts.shape[1])
    return _matched_fraction(np.repeat(counts, copies, axis=0), counts.sum())


def overcluster_metric_name(m: int) -> str:
    """Results key of :func:`overcluster_accuracy` with ``m`` clusters per class."""
    return f"accuracy_overcluster_m{m}"


def _resolve(name: str) -> MetricFn:
    """Registered metric, or an over-clustering accuracy named ``accuracy_overcluster_m{m}``."""
    if name in METRICS:
        return METRICS[name]
    match = _OVERCLUSTER_NAME.match(name)
    if match and int(match.group(1)) >= 1:
        m = int(match.group(1))
        return lambda labels_true, labels_pred: overcluster_accuracy(labels_true, labels_pred, m)
    known = ", ".join(sorted(METRICS)) + ", accuracy_overcluster_m<m>"
    raise ValueError(f"unknown metric {name!r}; known metrics: {known}")


def score(
    labels_true, labels_pred, metrics: Optional[Iterable[str]] = None
) -> Dict[str, float]:
    """Compute several metrics by name.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_images,)
    metrics : iterable of str, optional
        Names in :data:`METRICS`, or ``accuracy_overcluster_m{m}`` for any ``m >= 1``.
        Defaults to :data:`DEFAULT_METRICS` (nmi, accuracy, ari, purity).

    Returns
    -------
    dict
        ``{name: value}`` in the order the names were given.

    Raises
    ------
    ValueError
        On an unknown metric name, labels of different lengths, or empty labels.
    """
    names = list(DEFAULT_METRICS if metrics is None else metrics)
    fns = [_resolve(name) for name in names]  # fail on a bad name before any work
    _encode(labels_true, labels_pred)  # same errors even when no metric is asked for
    return {name: float(fn(labels_true, labels_pred)) for name, fn in zip(names, fns)}
