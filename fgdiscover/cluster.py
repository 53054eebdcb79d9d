"""k-means on embeddings: a scikit-learn style wrapper around faiss, and a two-level
(parent / child) clustering built on it.

:class:`FaissKMeans` follows the scikit-learn estimator contract (settings in ``__init__``,
learned state ending in ``_``, ``fit`` returns ``self``) so it can stand in for
``sklearn.cluster.KMeans`` in any pipeline, while the heavy lifting is faiss's k-means
(CPU, or GPU when faiss was built with it).

Determinism: on the CPU, faiss-cpu 1.15 (OpenBLAS build) gives bit-identical labels and
centres for the same data and seed, whatever the number of OpenMP threads (checked with
1, 2, 3, 7, 8 and 16 threads, and asserted in tests/test_cluster.py), so we do not pin the
thread count. faiss GPU k-means has not been checked for bitwise reproducibility.

Memory: large embeddings (a million rows and more, often a read-only memmap) are never
copied whole. Preprocessing, assignment, ``transform`` and the confidences of
:func:`hierarchical_kmeans` go ``chunk_size`` rows at a time, and with
``max_points_per_centroid`` the k-means itself trains on a seeded random subsample of
``n_clusters * max_points_per_centroid`` rows (faiss's own default is 256), after which
every row is assigned to its nearest centre. Up to ``chunk_size`` rows the results are
those of the one-block computation; above it they can differ from it in the last bits of
float rounding only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from fgdiscover.errors import FGDError
from fgdiscover.progress import progress_bar

_DEVICES = ("auto", "cpu", "cuda")
_INITS = ("k-means++", "random")
#: Rows of a (rows x n_clusters) float64 distance block in ``transform``-based loops:
#: 4M entries, 32 MiB.
_BLOCK_ENTRIES = 4 * 2**20


def _row_chunks(n: int, size: int):
    """``(start, stop)`` of consecutive blocks of at most ``size`` rows covering ``range(n)``."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _faiss():
    """Import faiss, or say which package provides it."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a core dependency
        raise FGDError(
            "faiss is not installed: pip install faiss-cpu (or faiss-gpu for CUDA)"
        ) from exc
    return faiss


def _faiss_num_gpus() -> int:
    """Number of GPUs faiss can use; 0 for the CPU-only build."""
    faiss = _faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)


def _fit_pca_whitening(x: np.ndarray, n_components: int,
                       chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PCA-whitening as in DeepCluster: project on the top principal axes, unit variance.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features), float32 or float64
        Read ``chunk_size`` rows at a time (two passes) when it has more rows than that;
        the sums are float64 either way.
    n_components : int
    chunk_size : int, optional
        Default: all rows in one block.

    Returns
    -------
    mean : ndarray of shape (n_features,)
    projection : ndarray of shape (n_features, n_components)
        ``(x - mean) @ projection`` has (close to) identity covariance.
    """
    n = len(x)
    if chunk_size is None or n <= chunk_size:
        x = x.astype(np.float64, copy=False)
        mean = x.mean(axis=0)
        centred = x - mean
        # eigh of the (n_features x n_features) covariance is much cheaper than an SVD of
        # the data when n_samples >> n_features, the usual case for image embeddings.
        cov = centred.T @ centred / max(n - 1, 1)
    else:
        # the same two passes, block by block: no float64 copy of the data
        mean = sum(x[a:b].astype(np.float64).sum(axis=0)
                   for a, b in _row_chunks(n, chunk_size)) / n
        cov = np.zeros((x.shape[1], x.shape[1]))
        for a, b in _row_chunks(n, chunk_size):
            centred = x[a:b].astype(np.float64) - mean
            cov += centred.T @ centred
        cov /= max(n - 1, 1)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1][:n_components]
    eigvals, eigvecs = np.clip(eigvals[order], 0.0, None), eigvecs[:, order]
    # Fix each axis' sign (largest coordinate positive) so the space does not depend on
    # LAPACK's arbitrary choice.
    signs = np.sign(eigvecs[np.argmax(np.abs(eigvecs), axis=0), np.arange(eigvecs.shape[1])])
    eigvecs = eigvecs * np.where(signs == 0, 1.0, signs)
    # A floor relative to the top eigenvalue keeps (near) zero-variance axes from turning
    # float noise into unit-variance coordinates; axes above it get exactly unit variance.
    floor = 1e-6 * max(float(eigvals[0]), np.finfo(np.float64).tiny)
    return mean, eigvecs / np.sqrt(np.maximum(eigvals, floor))


def _squared_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, shape (n_samples, n_centers), computed in float64."""
    x = x.astype(np.float64, copy=False)
    c = centers.astype(np.float64, copy=False)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d2, 0.0)


class FaissKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """k-means with faiss, following the scikit-learn estimator contract.

    Optional preprocessing, fitted on the training data and reapplied by ``predict`` and
    ``transform``: PCA-whitening to ``whiten`` dimensions, then L2-normalisation
    (DeepCluster's recipe, ``whiten=256, normalize=True``).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters; at most the number of training samples.
    n_init : int, default=5
        Number of k-means runs with different random initialisations; the run with the
        lowest objective is kept (faiss ``nredo``).
    max_iter : int, default=50
        Lloyd iterations per run (faiss ``niter``).
    seed : int, default=0
        Seed of the initialisations. Same data and seed give identical labels on the CPU.
    init : {"k-means++", "random"}, default="k-means++"
        How each run picks its first centres. faiss defaults to "random" (k samples),
        which on overlapping blobs often lands in a poor local minimum even with 20
        restarts; k-means++ (scikit-learn's default) costs O(n k d) once per run.
    normalize : bool, default=False
        L2-normalise the rows (after whitening, if any) before clustering.
    whiten : int or None, default=None
        If an int, PCA-whiten to that many dimensions before clustering; at most
        ``min(n_samples, n_features)``.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where faiss runs the k-means. "auto" uses faiss's GPUs when it was built with
        them and sees one, else the CPU. Assignment after fitting always runs on the CPU.
    verbose : bool, default=False
        Let faiss print its per-iteration objective.
    max_points_per_centroid : int or None, default=None
        If an int, train on a seeded random subsample of at most
        ``n_clusters * max_points_per_centroid`` rows (faiss's semantics; faiss's own
        default is 256), then assign every row to its nearest centre. None trains on every
        row (scikit-learn's semantics). The whitening is always fitted on every row.
    chunk_size : int, default=65536
        Rows preprocessed and assigned at a time: no (n_samples x n_clusters) distance
        matrix and no float64 copy of ``X`` is made (``transform`` returns one, by
        contract).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_dims), float32
        Centres in the preprocessed space (``n_dims`` is ``whiten`` or ``n_features_in_``).
    labels_ : ndarray of shape (n_samples,), int64
        Cluster of each training sample (the nearest final centre), every sample, also
        with ``max_points_per_centroid``.
    inertia_ : float
        Sum of squared distances of the training samples to their centre (weighted by
        ``sample_weight`` if given), in the preprocessed space.
    n_iter_ : int
        Lloyd iterations per run.
    n_features_in_ : int
        Number of features seen in ``fit``.
    whitening_mean_ : ndarray of shape (n_features_in_,) or None
    whitening_components_ : ndarray of shape (n_features_in_, whiten) or None
        The fitted PCA-whitening, ``(X - whitening_mean_) @ whitening_components_``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(n_samples=300, centers=3, random_state=0)
    >>> km = FaissKMeans(3, seed=0).fit(X)
    >>> km.cluster_centers_.shape
    (3, 2)
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        n_init=5,
        max_iter=50,
        seed=0,
        init="k-means++",
        normalize=False,
        whiten=None,
        device="auto",
        verbose=False,
        max_points_per_centroid=None,
        chunk_size=65_536,
    ):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.seed = seed
        self.init = init
        self.normalize = normalize
        self.whiten = whiten
        self.device = device
        self.verbose = verbose
        self.max_points_per_centroid = max_points_per_centroid
        self.chunk_size = chunk_size

    # -- settings -------------------------------------------------------------------
    def _check_settings(self, n_samples: int, n_features: int) -> bool:
        """Validate the settings against the data; return whether to use faiss GPUs."""

        def positive_int(name, value, upper=None):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            if upper is not None and value > upper:
                raise ValueError(f"{name}={value} exceeds {upper}, the largest possible here")

        positive_int("n_clusters", self.n_clusters)
        if self.n_clusters > n_samples:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the number of samples ({n_samples})"
            )
        positive_int("n_init", self.n_init)
        positive_int("max_iter", self.max_iter)
        if self.whiten is not None:
            positive_int("whiten", self.whiten, upper=min(n_samples, n_features))
        if self.max_points_per_centroid is not None:
            positive_int("max_points_per_centroid", self.max_points_per_centroid)
        positive_int("chunk_size", self.chunk_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not (
            0 <= self.seed < 2**31
        ):
            raise ValueError(f"seed must be an integer in [0, 2**31), got {self.seed!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if self.device not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}, got {self.device!r}")
        if self.device == "cpu":
            return False
        has_gpu = _faiss_num_gpus() > 0
        if self.device == "cuda" and not has_gpu:
            raise FGDError(
                "device='cuda' but faiss sees no GPU (install faiss-gpu, or use device='cpu')"
            )
        return has_gpu

    def _faiss_init(self, faiss) -> dict:
        """faiss keyword selecting the initialisation (older faiss only has random)."""
        if self.init == "random":
            return {}
        if not hasattr(faiss, "ClusteringInitMethod_KMEANS_PLUS_PLUS"):
            raise FGDError(
                "this faiss has no k-means++ initialisation (faiss 1.15 has it); upgrade faiss or use init='random'"
            )
        return {"init_method": faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS}

    # -- preprocessing --------------------------------------------------------------
    def _preprocess(self, X: np.ndarray) -> np.ndarray:
        """Apply the fitted whitening / normalisation; float32, C-contiguous for faiss."""
        x = X.astype(np.float64, copy=False)
        if self.whitening_components_ is not None:
            x = (x - self.whitening_mean_) @ self.whitening_components_
        if self.normalize:
            x = _l2_normalize(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _preprocess_rows(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``_preprocess(X[rows])`` (all rows if None), built ``chunk_size`` rows at a time.

        Up to ``chunk_size`` rows this is exactly ``_preprocess``. Above it, a float32
        C-contiguous ``X`` that needs no preprocessing is returned as it is (no copy);
        otherwise the float32 result is filled block by block, without a float64 copy.
        """
        n = len(X) if rows is None else len(rows)
        if n <= self.chunk_size:
            return self._preprocess(X if rows is None else X[rows])
        plain = self.whitening_components_ is None and not self.normalize
        if (rows is None and plain and X.dtype == np.float32
                and X.flags.c_contiguous):
            return X
        w = self.whitening_components_
        d = X.shape[1] if w is None else w.shape[1]
        out = np.empty((n, d), dtype=np.float32)
        for a, b in _row_chunks(n, self.chunk_size):
            out[a:b] = self._preprocess(X[a:b] if rows is None else X[rows[a:b]])
        return out

    def _nearest(self, X: np.ndarray, *, preprocessed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centre of each row, ``chunk_size`` rows at a time.

        Parameters
        ----------
        X : ndarray of shape (n, d)
            Raw rows (preprocessed here block by block) or, with ``preprocessed``, rows
            already in the centres' space.

        Returns
        -------
        squared_distances : ndarray of shape (n,), float32
        labels : ndarray of shape (n,), int64
        """
        faiss = _faiss()
        index = faiss.IndexFlatL2(self.cluster_centers_.shape[1])
        index.add(self.cluster_centers_)
        n = len(X)
        dist, labels = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.int64)
        for a, b in _row_chunks(n, self.chunk_size):
            x = X[a:b] if preprocessed else self._preprocess(X[a:b])
            d, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
            dist[a:b], labels[a:b] = d[:, 0], idx[:, 0]
        return dist, labels

    # -- scikit-learn API -------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each sample in the k-means objective.

        Returns
        -------
        self : FaissKMeans
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=True)
        n_samples, n_features = X.shape
        use_gpu = self._check_settings(n_samples, n_features)
        weights = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=np.float64)
            if weights.shape != (n_samples,):
                raise ValueError(
                    f"sample_weight must have shape ({n_samples},), got {weights.shape}"
                )
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError("sample_weight must be finite, non-negative and not all zero")

        self.whitening_mean_, self.whitening_components_ = None, None
        if self.whiten is not None:
            self.whitening_mean_, self.whitening_components_ = _fit_pca_whitening(
                X, int(self.whiten), int(self.chunk_size)
            )
        # faiss's subsampling (max_points_per_centroid), done here so that only the
        # subsample is ever preprocessed and copied
        n_train = n_samples
        if self.max_points_per_centroid is not None:
            n_train = min(n_samples, int(self.n_clusters) * int(self.max_points_per_centroid))
        rows = None
        if n_train < n_samples:
            rows = np.sort(np.random.default_rng(int(self.seed)).choice(
                n_samples, n_train, replace=False))
        x = self._preprocess_rows(X, rows)
        train_weights = weights if weights is None or rows is None else weights[rows]

        faiss = _faiss()
        kmeans = faiss.Kmeans(
            x.shape[1],
            int(self.n_clusters),
            niter=int(self.max_iter),
            nredo=int(self.n_init),
            seed=int(self.seed),
            verbose=bool(self.verbose),
            gpu=use_gpu,
            # faiss would otherwise subsample to 256 points per centroid; scikit-learn
            # semantics (and our scores) are about clustering every sample.
            max_points_per_centroid=n_train,
            # We already require n_clusters <= n_samples; this silences faiss's stderr
            # advice to use 39 points per centroid, which small data sets always trigger.
            min_points_per_centroid=1,
            **self._faiss_init(faiss),
        )
        kmeans.train(
            x,
            weights=(None if train_weights is None
                     else np.ascontiguousarray(train_weights, dtype=np.float32)),
        )
        self.cluster_centers_ = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        # Labels come from the final centres (faiss's last internal assignment predates
        # the last centre update), so that predict(X_train) == labels_ always holds.
        if rows is None:
            dist, self.labels_ = self._nearest(x, preprocessed=True)
        else:
            del x  # the subsample; every row is now assigned block by block
            dist, self.labels_ = self._nearest(X, preprocessed=False)
        # faiss has no early stopping by default, so this is max_iter; read it from the
        # run statistics rather than assume it.
        self.n_iter_ = len(kmeans.iteration_stats) // int(self.n_init)
        dist = dist.astype(np.float64)
        self.inertia_ = float(dist.sum() if weights is None else (weights * dist).sum())
        return self

    def predict(self, X):
        """Nearest learned centre of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64
        """
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._nearest(X, preprocessed=False)[1]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``, shape (n_samples,)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distance of each sample to every centre, in the preprocessed space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters), float64
        """
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        out = np.empty((len(X), len(self.cluster_centers_)), dtype=np.float64)
        for a, b in _row_chunks(len(X), self._block_rows()):
            out[a:b] = np.sqrt(_squared_distances(self._preprocess(X[a:b]),
                                                  self.cluster_centers_))
        return out

    def _block_rows(self) -> int:
        """Rows per block of a float64 (rows x n_clusters) distance computation."""
        return max(1, min(int(self.chunk_size), _BLOCK_ENTRIES // len(self.cluster_centers_)))

    def confidence(self, X) -> np.ndarray:
        """``1 - d1 / d2`` per sample (see :class:`HierarchicalResult`), block by block.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        confidence : ndarray of shape (n_samples,), float64 in [0, 1]
            The same as ``_distance_ratio_confidence(self.transform(X))`` without the
            (n_samples, n_clusters) matrix.
        """
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        out = np.empty(len(X), dtype=np.float64)
        for a, b in _row_chunks(len(X), self._block_rows()):
            d = np.sqrt(_squared_distances(self._preprocess(X[a:b]), self.cluster_centers_))
            out[a:b] = _distance_ratio_confidence(d)
        return out


@dataclass(frozen=True)
class HierarchicalResult:
    """Two-level clustering of ``n`` images into ``k`` child clusters under parents.

    Attributes
    ----------
    child : ndarray of shape (n,), int64
        Child cluster of each image, in 0..k-1.
    parent : ndarray of shape (n,), int64
        Parent cluster of each image; always ``child_to_parent[child]``.
    child_to_parent : ndarray of shape (k,), int64
        Parent of each child cluster; uses every id in 0..n_parents-1.
    child_confidence : ndarray of shape (n,), float64 in [0, 1]
        ``1 - d1 / d2`` with ``d1 <= d2`` the distances to the nearest and second nearest
        child centres: 1 on a centre, 0 on the boundary between two clusters (and 1 when
        k == 1). A margin, not a probability.
    """

    child: np.ndarray
    parent: np.ndarray
    child_to_parent: np.ndarray
    child_confidence: np.ndarray

    @property
    def n_children(self) -> int:
        """Number of child clusters k."""
        return len(self.child_to_parent)

    @property
    def n_parents(self) -> int:
        """Number of parent clusters."""
        return int(self.child_to_parent.max()) + 1


def _distance_ratio_confidence(distances: np.ndarray) -> np.ndarray:
    """``1 - d1/d2`` per row of a (n, k) distance matrix; see :class:`HierarchicalResult`."""
    if distances.shape[1] == 1:
        return np.ones(len(distances))
    two = np.partition(distances, 1, axis=1)[:, :2]
    d1, d2 = two[:, 0], two[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = np.where(d2 > 0, 1.0 - d1 / d2, 0.0)
    return np.clip(conf, 0.0, 1.0)


def assign_children_to_parents(counts: np.ndarray) -> np.ndarray:
    """Give each child cluster one parent, using as many parent ids as possible.

    First every child cluster goes to the parent holding most of its members (ties to the
    lowest id). If that leaves some parent with no child, the assignment is repaired
    optimally: among assignments in which every parent gets at least one non-empty child
    cluster, the one keeping the most members with their own parent. Writing the loss of
    moving child ``c`` to parent ``p`` as ``max_q counts[c, q] - counts[c, p]``, that is a
    rectangular assignment problem (one distinct child per parent, all other children keep
    their majority), solved exactly by the Hungarian algorithm.

    Only when there are fewer non-empty child clusters than parents can a parent stay
    without children; parent ids are then renumbered contiguously (in order of the
    original ids), so the result always uses exactly the ids 0..n_parents-1. Empty child
    clusters (possible with duplicated samples) go to parent 0 after renumbering.

    Parameters
    ----------
    counts : ndarray of shape (k, k_parent)
        ``counts[c, p]``: members of child cluster c in parent cluster p (or any
        non-negative affinity).

    Returns
    -------
    child_to_parent : ndarray of shape (k,), int64
    """
    counts = np.asarray(counts, dtype=np.float64)
    k, k_parent = counts.shape
    child_to_parent = np.argmax(counts, axis=1)  # argmax takes the first: ties -> lowest id
    nonempty = counts.sum(axis=1) > 0
    if len(np.unique(child_to_parent[nonempty])) < k_parent and nonempty.any():
        rows = np.flatnonzero(nonempty)
        loss = counts[rows].max(axis=1, keepdims=True) - counts[rows]
        matched_rows, matched_parents = linear_sum_assignment(loss)
        child_to_parent[rows[matched_rows]] = matched_parents
    used = np.unique(child_to_parent[nonempty]) if nonempty.any() else np.array([0])
    renumber = np.zeros(k_parent, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    child_to_parent = renumber[child_to_parent]
    child_to_parent[~nonempty] = 0
    return child_to_parent.astype(np.int64)


def balanced_kmeans(x, n_clusters: int, *, sample_weight=None, seed: int = 0,
                    n_init: int = 10, max_iter: int = 100) -> np.ndarray:
    """k-means of the rows of ``x`` into ``n_clusters`` groups of equal count.

    Every group gets ``n // n_clusters`` or ``n // n_clusters + 1`` rows: size-constrained
    k-means (Bradley, Bennett & Demiriz, "Constrained k-means clustering", 2000). Lloyd's
    iterations with the assignment step solved exactly as a linear assignment of rows to
    slots (:func:`scipy.optimize.linear_sum_assignment`), ``n_init`` weighted k-means++
    starts, the one of least weighted inertia kept. The assignment is O(n^3) per
    iteration: meant for grouping up to a few thousand rows (cluster centres or
    descriptors), not images.

    Parameters
    ----------
    x : array-like of shape (n, d)
    n_clusters : int, 1 <= n_clusters <= n
    sample_weight : array-like of shape (n,), optional
        Positive weights of the rows in the inertia and the centres (default 1).
    seed, n_init, max_iter : the random starts and their iterations

    Returns
    -------
    labels : ndarray of shape (n,), int64
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if isinstance(n_clusters, bool) or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be in 1..{n}, got {n_clusters!r}")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not (w > 0).all():
        raise ValueError(f"sample_weight must hold {n} positive weights")
    lo, extra = divmod(n, n_clusters)
    # lo slots per group, and one more per group of which exactly `extra` are used: a
    # penalty above any possible saving makes the assignment use no more extra slots
    # than it must
    group_of_slot = np.concatenate([np.repeat(np.arange(n_clusters), lo),
                                    np.arange(n_clusters if extra else 0)])
    optional = np.arange(len(group_of_slot)) >= n_clusters * lo
    rng = np.random.default_rng(seed)
    best_inertia, best = np.inf, None
    for _ in range(n_init):
        first = rng.choice(n, p=w / w.sum())
        centres = x[[first]]
        while len(centres) < n_clusters:  # weighted k-means++
            d = w * _squared_distances(x, centres).min(axis=1)
            centres = np.vstack([centres, x[rng.choice(n, p=d / d.sum()) if d.sum() > 0
                                             else rng.integers(n)]])
        labels = None
        for _ in range(max_iter):
            cost = (w[:, None] * _squared_distances(x, centres))[:, group_of_slot]
            cost[:, optional] += n * cost.max() + 1.0
            rows, slots = linear_sum_assignment(cost)
            new = np.empty(n, dtype=np.int64)
            new[rows] = group_of_slot[slots]
            if labels is not None and (new == labels).all():
                break
            labels = new
            centres = np.stack([np.average(x[labels == j], axis=0, weights=w[labels == j])
                                for j in range(n_clusters)])
        inertia = float((w * ((x - centres[labels]) ** 2).sum(axis=1)).sum())
        if inertia < best_inertia:
            best_inertia, best = inertia, labels
    return best


def group_rows(rows, sizes, k_parent: int, *, equal: bool = True, seed: int = 0,
               n_init: int = 5, **kmeans_kwargs) -> np.ndarray:
    """Parent of each of k rows (one per child cluster), by k-means weighted by the
    clusters' ``sizes``: into groups of equal numbers of rows (:func:`balanced_kmeans`)
    or, with ``equal=False``, of any size (:class:`FaissKMeans` with ``kmeans_kwargs``).
    Empty clusters weigh (almost) nothing but keep their place among the rows."""
    weight = np.maximum(np.asarray(sizes, dtype=np.float64), 1e-6)
    if equal:
        return balanced_kmeans(rows, k_parent, sample_weight=weight, seed=seed, n_init=n_init)
    return FaissKMeans(k_parent, seed=seed, n_init=n_init, **kmeans_kwargs).fit_predict(
        np.asarray(rows, dtype=np.float32), sample_weight=weight)


#: Restarts of the k-means that groups the k child clusters' rows (descriptors or centres)
#: into parents, as a multiple of the child level's.
DESCRIPTOR_RESTARTS = 10


def hierarchical_kmeans(
    child_features,
    parent_features=None,
    *,
    k: int,
    k_parent: int,
    seed: int = 0,
    progress: bool = False,
    child_descriptors=None,
    equal_parents: bool = True,
    **kmeans_kwargs,
) -> HierarchicalResult:
    """Cluster images into ``k`` child clusters, each belonging to one of ``k_parent`` parents.

    The child level is k-means on ``child_features``. The parent level is

    * with ``parent_features``: k-means with ``k_parent`` on them, then each child cluster
      goes to the parent cluster holding most of its members;
    * with ``child_descriptors``: k-means, weighted by cluster sizes, of one row per child
      cluster that this function computes from the child labels (e.g. the clusters'
      silhouettes, :func:`fgdiscover.silhouette.cluster_silhouettes`);
    * otherwise: k-means of the child centres, weighted by cluster sizes, into ``k_parent``
      groups (in the child clustering's preprocessed space, so ``whiten``/``normalize``
      are not applied a second time).

    The last two group k rows, weighted by cluster sizes, into parents of equal numbers of
    child clusters (``equal_parents``), with :data:`DESCRIPTOR_RESTARTS` times the
    restarts of the child level (benchmarks/README.md, parent grouping).

    Either way the children are then given to parents by :func:`assign_children_to_parents`,
    which makes sure every parent id is used (renumbering contiguously in the degenerate
    case of fewer non-empty child clusters than parents). An image's parent is its child
    cluster's parent, so the two levels are always consistent:
    ``parent[i] == child_to_parent[child[i]]``.

    Parameters
    ----------
    child_features : array-like of shape (n_images, d_child)
    parent_features : array-like of shape (n_images, d_parent), optional
    k : int
        Number of child clusters.
    k_parent : int
        Number of parent clusters, at most ``k``.
    seed : int, default=0
    progress : bool, default=False
        Report each level as it finishes (:func:`fgdiscover.progress.progress_bar`).
    child_descriptors : callable, optional
        ``child_descriptors(child_labels) -> array (k, d)`` without NaN; excludes
        ``parent_features``.
    equal_parents : bool, default=True
        Without ``parent_features``: every parent gets ``k // k_parent`` or one more child
        clusters (:func:`balanced_kmeans`), as FineGAN's tied codes give every parent code
        ``N_c / N_p`` child codes; False: plain weighted k-means, parents of any size.
    **kmeans_kwargs
        Further :class:`FaissKMeans` settings (n_init, max_iter, normalize, whiten,
        device, verbose, max_points_per_centroid, chunk_size), used at both levels.

    Returns
    -------
    HierarchicalResult
    """
    if isinstance(k_parent, bool) or not isinstance(k_parent, (int, np.integer)) or k_parent < 1:
        raise ValueError(f"k_parent must be an integer >= 1, got {k_parent!r}")
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k_parent > k:
        raise ValueError(
            f"k_parent={k_parent} exceeds k={k}: each child cluster has one parent, "
            "so at most k parents can be used"
        )
    child_features = np.asarray(child_features)
    bar = progress_bar(total=2, desc=f"k-means ({k} clusters, then {k_parent} parents)",
                       unit="level", enabled=progress)
    child_km = FaissKMeans(k, seed=seed, **kmeans_kwargs).fit(child_features)
    bar.update()
    child = child_km.labels_
    sizes = np.bincount(child, minlength=k)

    if parent_features is not None and child_descriptors is not None:
        raise ValueError("give parent_features or child_descriptors, not both")
    if parent_features is not None:
        parent_features = np.asarray(parent_features)
        if len(parent_features) != len(child_features):
            raise ValueError(
                f"parent_features has {len(parent_features)} rows but child_features has "
                f"{len(child_features)}"
            )
        image_parent = FaissKMeans(k_parent, seed=seed, **kmeans_kwargs).fit_predict(
            parent_features
        )
        counts = np.zeros((k, k_parent), dtype=np.int64)
        np.add.at(counts, (child, image_parent), 1)
    else:
        if child_descriptors is not None:
            rows = np.asarray(child_descriptors(child), dtype=np.float32)
            if rows.shape[0] != k or rows.ndim != 2 or not np.isfinite(rows).all():
                raise ValueError(
                    f"child_descriptors must return {k} finite rows, got {rows.shape}")
        else:  # already in the child level's whitened / normalised space
            rows = child_km.cluster_centers_
        # k rows are cheap to group and a poor local optimum costs a whole parent
        settings = {key: v for key, v in kmeans_kwargs.items()
                    if key not in ("whiten", "normalize")}
        settings["n_init"] = DESCRIPTOR_RESTARTS * kmeans_kwargs.get("n_init", 5)
        row_parent = group_rows(rows, sizes, k_parent, equal=equal_parents, seed=seed,
                                **settings)
        counts = np.zeros((k, k_parent), dtype=np.float64)
        counts[np.arange(k), row_parent] = np.maximum(sizes, 1e-6)

    bar.update()
    bar.close()
    child_to_parent = assign_children_to_parents(counts)
    confidence = child_km.confidence(child_features)
    return HierarchicalResult(
        child=child,
        parent=child_to_parent[child],
        child_to_parent=child_to_parent,
        child_confidence=confidence,
    )


def representatives(features, labels, centers=None, n: int = 8) -> Dict[int, List[int]]:
    """Indices of the images closest to each cluster centre, nearest first.

    Parameters
    ----------
    features : array-like of shape (n_images, d)
    labels : array-like of shape (n_images,), int
        Cluster of each image.
    centers : array-like of shape (k, d), optional
        Centres in the same space as ``features`` (for a :class:`FaissKMeans` with
        ``whiten``/``normalize`` its ``cluster_centers_`` are not). If omitted, each
        cluster's mean feature is used, which works in any space.
    n : int, default=8
        Most indices per cluster.

    Returns
    -------
    dict
        ``{cluster: [image indices]}``; with ``centers``, every cluster 0..k-1 is a key
        (empty clusters map to ``[]``), otherwise the clusters present in ``labels``.
        Ties are broken by the lower image index.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(
            f"features must be (n_images, d) and labels (n_images,), got {features.shape} "
            f"and {labels.shape}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != features.shape[1]:
            raise ValueError(
                f"centers must have shape (k, {features.shape[1]}), got {centers.shape}"
            )
        clusters = range(len(centers))
        if len(labels) and (labels.min() < 0 or labels.max() >= len(centers)):
            raise ValueError(f"labels must lie in 0..{len(centers) - 1} when centers are given")
    else:
        clusters = np.unique(labels)
    result: Dict[int, List[int]] = {}
    for j in clusters:
        members = np.flatnonzero(labels == j)
        if len(members) == 0:
            result[int(j)] = []
            continue
        center = centers[j] if centers is not None else features[members].mean(axis=0)
        dist = ((features[members] - center) ** 2).sum(axis=1)
        order = np.lexsort((members, dist))  # stable: distance, then image index
        result[int(j)] = [int(i) for i in members[order[:n]]]
    return result
