"""Clustering metrics: hand-computed cases, invariances, k != number of classes."""

import itertools
import math

import numpy as np
import pytest

from fgdiscover import metrics
from fgdiscover.metrics import (
    ari,
    contingency_matrix,
    hungarian_accuracy,
    nmi,
    overcluster_accuracy,
    purity,
    register_metric,
    score,
)

# Classes 0 0 0 | 1 1 1, clusters 0 0 1 | 1 2 2. Contingency (class x cluster):
#   class 0: [2, 1, 0]
#   class 1: [0, 1, 2]
TRUE = [0, 0, 0, 1, 1, 1]
PRED = [0, 0, 1, 1, 2, 2]


def test_hand_computed_case():
    # Hungarian: class 0 -> cluster 0 (2), class 1 -> cluster 2 (2): 4 of 6.
    assert hungarian_accuracy(TRUE, PRED) == pytest.approx(4 / 6)
    # Purity: cluster maxima 2 + 1 + 2 = 5 of 6.
    assert purity(TRUE, PRED) == pytest.approx(5 / 6)
    # Two clusters per class: class 0 -> {0, 1} (3), class 1 -> {2} (2): 5 of 6.
    assert overcluster_accuracy(TRUE, PRED, 2) == pytest.approx(5 / 6)
    # H(Y) = ln 2, H(C) = ln 3; I = 1/3 ln 2 + 1/6 ln 1 + 1/6 ln 1 + 1/3 ln 2 = 2/3 ln 2;
    # arithmetic NMI = I / ((ln 2 + ln 3) / 2) = 4 ln 2 / (3 ln 6).
    assert nmi(TRUE, PRED) == pytest.approx(4 * math.log(2) / (3 * math.log(6)))
    # ARI: sum C(n_ij, 2) = 2, rows 3 + 3 = 6, cols 1 + 1 + 1 = 3, C(6, 2) = 15;
    # expected = 6 * 3 / 15 = 1.2, max = (6 + 3) / 2 = 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 8/33.
    assert ari(TRUE, PRED) == pytest.approx(8 / 33)


def test_contingency_matrix_counts_pairs():
    np.testing.assert_array_equal(contingency_matrix(TRUE, PRED), [[2, 1, 0], [0, 1, 2]])


def test_accuracy_more_clusters_than_classes():
    # 2 classes, 4 clusters: clusters 0 and 3 are matched (3 + 2), clusters 1, 2 unmatched.
    true = [0, 0, 0, 0, 1, 1, 1]
    pred = [0, 0, 0, 1, 2, 3, 3]
    assert hungarian_accuracy(true, pred) == pytest.approx(5 / 7)


def test_accuracy_fewer_clusters_than_classes():
    # 3 classes, 2 clusters: class 1 has no cluster left, its 2 images are errors.
    true = ["a", "a", "b", "b", "c", "c"]
    pred = [0, 0, 0, 0, 1, 1]
    assert hungarian_accuracy(true, pred) == pytest.approx(4 / 6)
    assert purity(true, pred) == pytest.approx(4 / 6)


def test_single_cluster_is_majority_class_fraction():
    true = [0, 0, 0, 1, 2]
    pred = [7, 7, 7, 7, 7]
    assert hungarian_accuracy(true, pred) == pytest.approx(3 / 5)
    assert nmi(true, pred) == pytest.approx(0.0)


def _brute_force_accuracy(true, pred):
    """Best one-to-one matching by trying every injective map (tiny inputs only)."""
    classes, clusters = sorted(set(true)), sorted(set(pred))
    best = 0
    if len(clusters) <= len(classes):
        for image in itertools.permutations(classes, len(clusters)):
            mapping = dict(zip(clusters, image))
            best = max(best, sum(mapping[c] == t for t, c in zip(true, pred)))
    else:
        for image in itertools.permutations(clusters, len(classes)):
            mapping = dict(zip(image, classes))
            best = max(best, sum(mapping.get(c) == t for t, c in zip(true, pred)))
    return best / len(true)


def _brute_force_overcluster(true, pred, m):
    """Every cluster to a class or to nothing, each class at most m clusters."""
    classes, clusters = sorted(set(true)), sorted(set(pred))
    best = 0
    for image in itertools.product(classes + [None], repeat=len(clusters)):
        if any(image.count(c) > m for c in classes):
            continue
        mapping = dict(zip(clusters, image))
        best = max(best, sum(mapping[c] == t for t, c in zip(true, pred)))
    return best / len(true)


@pytest.mark.parametrize("n_classes,n_clusters", [(3, 3), (2, 4), (4, 2), (3, 5)])
def test_matchings_agree_with_brute_force(n_classes, n_clusters):
    rng = np.random.default_rng(n_classes * 10 + n_clusters)
    for _ in range(5):
        true = rng.integers(0, n_classes, size=12).tolist()
        pred = rng.integers(0, n_clusters, size=12).tolist()
        assert hungarian_accuracy(true, pred) == pytest.approx(_brute_force_accuracy(true, pred))
        for m in (1, 2):
            assert overcluster_accuracy(true, pred, m) == pytest.approx(
                _brute_force_overcluster(true, pred, m)
            )


def test_permutation_invariance():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=60)
    pred = rng.integers(0, 6, size=60)
    # Relabel clusters by a permutation, and classes by a map to strings.
    relabelled_pred = rng.permutation(6)[pred]
    renamed_true = np.array(["wren", "crow", "jay", "tit"])[true]
    names = ["nmi", "accuracy", "ari", "purity", "accuracy_overcluster_m2"]
    base = score(true, pred, names)
    assert score(true, relabelled_pred, names) == pytest.approx(base)
    assert score(renamed_true, relabelled_pred, names) == pytest.approx(base)
    # A row shuffle applied to both arrays changes nothing either.
    order = rng.permutation(60)
    assert score(true[order], pred[order], names) == pytest.approx(base)


def test_perfect_clustering_scores_one():
    true = ["a", "a", "b", "b", "b", "c"]
    pred = [5, 5, 2, 2, 2, 9]  # same partition, other names
    result = score(true, pred, ["nmi", "accuracy", "ari", "purity", "accuracy_overcluster_m3"])
    assert result == pytest.approx(dict.fromkeys(result, 1.0))


def test_overcluster_bounds():
    rng = np.random.default_rng(1)
    for _ in range(10):
        true = rng.integers(0, 5, size=80)
        pred = rng.integers(0, 15, size=80)
        acc = hungarian_accuracy(true, pred)
        assert overcluster_accuracy(true, pred, 1) == pytest.approx(acc)
        assert overcluster_accuracy(true, pred, 3) >= acc
        assert overcluster_accuracy(true, pred, 3) <= purity(true, pred) + 1e-12
        # With as many copies as clusters, each cluster can go to its majority class.
        assert overcluster_accuracy(true, pred, 15) == pytest.approx(purity(true, pred))


def test_score_defaults_and_order():
    result = score(TRUE, PRED)
    assert list(result) == ["nmi", "accuracy", "ari", "purity"]
    assert all(isinstance(v, float) for v in result.values())
    assert score(TRUE, PRED, ["accuracy_overcluster_m2", "nmi"])["accuracy_overcluster_m2"] == (
        pytest.approx(5 / 6)
    )


def test_registry_adds_and_refuses_duplicates(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))

    @register_metric("error_rate")
    def error_rate(labels_true, labels_pred):
        return 1.0 - hungarian_accuracy(labels_true, labels_pred)

    assert score(TRUE, PRED, ["error_rate"]) == {"error_rate": pytest.approx(2 / 6)}
    with pytest.raises(ValueError, match="already registered"):
        register_metric("nmi")(error_rate)


@pytest.mark.parametrize(
    "true,pred,message",
    [
        ([0, 1, 2], [0, 1], "different lengths: 3 vs 2"),
        ([], [], "empty"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_bad_inputs_raise(true, pred, message):
    for fn in (nmi, hungarian_accuracy, ari, purity, score):
        with pytest.raises(ValueError, match=message):
            fn(true, pred)


def test_unknown_metric_and_bad_m():
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        score(TRUE, PRED, ["f1"])
    with pytest.raises(ValueError, match="unknown metric"):
        score(TRUE, PRED, ["accuracy_overcluster_m0"])
    for m in (0, 1.5, True):
        with pytest.raises(ValueError, match="m must be"):
            overcluster_accuracy(TRUE, PRED, m)
