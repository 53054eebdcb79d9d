"""FaissKMeans (scikit-learn contract, determinism), hierarchical k-means, evaluation."""

import faiss
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from fgdiscover.cluster import (
    FaissKMeans,
    assign_children_to_parents,
    balanced_kmeans,
    hierarchical_kmeans,
    representatives,
)
from fgdiscover.errors import FGDError
from fgdiscover.evaluate import evaluate_assignments
from fgdiscover.metrics import nmi


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=600, centers=6, n_features=8, random_state=0)
    return x, y


@pytest.fixture(scope="module")
def nested_blobs():
    """2 parents x 3 children: children of a parent lie close together, parents far apart."""
    rng = np.random.default_rng(0)
    parent_centres = np.array([[0.0] * 6, [40.0] * 6])
    child_offsets = rng.normal(scale=8.0, size=(6, 6))
    child = np.repeat(np.arange(6), 50)
    parent = child // 3  # children 0-2 under parent 0, 3-5 under parent 1
    centres = parent_centres[parent] + child_offsets[child]
    x = centres + rng.normal(scale=0.5, size=centres.shape)
    return x, child, parent


# -- FaissKMeans -------------------------------------------------------------------------


def test_recovers_blobs(blobs):
    x, y = blobs
    km = FaissKMeans(6, seed=0, device="cpu")
    assert km.fit(x) is km
    assert nmi(y, km.labels_) > 0.99
    assert km.cluster_centers_.shape == (6, 8)
    assert km.labels_.shape == (600,)
    assert km.n_features_in_ == 8


def test_fit_predict_and_predict_match_labels(blobs):
    x, _ = blobs
    km = FaissKMeans(6, seed=3)
    labels = km.fit_predict(x)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(km.predict(x), km.labels_)


def test_transform_and_inertia_are_distances_to_centres(blobs):
    x, _ = blobs
    km = FaissKMeans(6, seed=0).fit(x)
    dist = km.transform(x)
    assert dist.shape == (600, 6)
    np.testing.assert_allclose(
        dist[0], np.linalg.norm(km.cluster_centers_ - x[0], axis=1), rtol=1e-4
    )
    np.testing.assert_array_equal(dist.argmin(axis=1), km.labels_)
    assert km.inertia_ == pytest.approx((dist.min(axis=1) ** 2).sum(), rel=1e-4)


def test_sample_weight_gives_weighted_mean():
    # One cluster: the centre is the weighted mean (0*1 + 1*1 + 4*2) / 4 = 2.25 and the
    # inertia 1 * 2.25^2 + 1 * 1.25^2 + 2 * 1.75^2 = 12.75.
    x = np.array([[0.0], [1.0], [4.0]])
    km = FaissKMeans(1, n_init=1).fit(x, sample_weight=[1, 1, 2])
    assert km.cluster_centers_[0, 0] == pytest.approx(2.25)
    assert km.inertia_ == pytest.approx(12.75)


def test_same_seed_same_result_and_thread_count_does_not_matter(blobs):
    # faiss parallelises k-means with OpenMP; check that the thread count cannot change
    # the result (it would if some reduction depended on the thread schedule).
    x = np.random.default_rng(1).standard_normal((3000, 16))
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        single = FaissKMeans(20, n_init=2, max_iter=20, seed=7).fit(x)
        faiss.omp_set_num_threads(4)
        multi = FaissKMeans(20, n_init=2, max_iter=20, seed=7).fit(x)
        again = FaissKMeans(20, n_init=2, max_iter=20, seed=7).fit(x)
    finally:
        faiss.omp_set_num_threads(threads)
    for other in (multi, again):
        np.testing.assert_array_equal(single.labels_, other.labels_)
        np.testing.assert_array_equal(single.cluster_centers_, other.cluster_centers_)
    # ...and the seed is really used: another seed lands elsewhere on structureless data.
    other_seed = FaissKMeans(20, n_init=2, max_iter=20, seed=8).fit(x)
    assert not np.array_equal(single.cluster_centers_, other_seed.cluster_centers_)


def test_whiten_and_normalize_change_the_space(blobs):
    x, y = blobs
    km = FaissKMeans(6, whiten=4, normalize=True, seed=0).fit(x)
    assert km.cluster_centers_.shape == (6, 4)
    assert nmi(y, km.labels_) > 0.99
    # The whitened training data has identity covariance.
    z = (x - km.whitening_mean_) @ km.whitening_components_
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(4), atol=1e-6)
    # Centres are means of unit vectors: inside the unit ball, not on the data's scale.
    assert np.all(np.linalg.norm(km.cluster_centers_, axis=1) <= 1 + 1e-5)

    plain = FaissKMeans(6, normalize=True, seed=0).fit(x)
    assert plain.cluster_centers_.shape == (6, 8)
    assert plain.whitening_components_ is None
    # normalize is applied in predict too: scaling a sample does not move it.
    np.testing.assert_array_equal(plain.predict(x * 10.0), plain.labels_)
    assert not np.array_equal(FaissKMeans(6, seed=0).fit(x).predict(x * 10.0), plain.labels_)


def test_predict_before_fit_raises(blobs):
    with pytest.raises(NotFittedError):
        FaissKMeans(3).predict(blobs[0])
    with pytest.raises(NotFittedError):
        FaissKMeans(3).transform(blobs[0])


def test_predict_checks_feature_count(blobs):
    km = FaissKMeans(3).fit(blobs[0])
    with pytest.raises(ValueError, match="features"):
        km.predict(blobs[0][:, :5])


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"n_clusters": 11}, "larger than the number of samples"),
        ({"n_clusters": 0}, "n_clusters must be"),
        ({"n_init": 0}, "n_init must be"),
        ({"max_iter": 2.5}, "max_iter must be"),
        ({"whiten": 4}, "whiten=4 exceeds 3"),
        ({"seed": -1}, "seed must be"),
        ({"device": "gpu"}, "device must be one of"),
        ({"init": "kmeans++"}, "init must be one of"),
        ({"max_points_per_centroid": 0}, "max_points_per_centroid must be"),
        ({"chunk_size": 0}, "chunk_size must be"),
    ],
)
def test_bad_settings_fail_loudly(settings, message):
    x = np.random.default_rng(0).standard_normal((10, 3))
    kwargs = {"n_clusters": 2, **settings}
    with pytest.raises(ValueError, match=message):
        FaissKMeans(**kwargs).fit(x)


def test_cuda_without_faiss_gpu_is_a_user_error():
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        pytest.skip("faiss sees a GPU here")
    with pytest.raises(FGDError, match="faiss sees no GPU"):
        FaissKMeans(2, device="cuda").fit(np.zeros((4, 2)))


def test_nan_input_is_rejected():
    x = np.ones((5, 2))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FaissKMeans(2).fit(x)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(
        FaissKMeans(3, n_init=1, max_iter=10, device="cpu"),
        on_fail=None,
        expected_failed_checks={
            # As for sklearn's KMeans: the random initialisation depends on the number of
            # rows, so repeating a sample is not the same as doubling its weight.
            "check_sample_weight_equivalence_on_dense_data": "initialisation depends on n",
        },
    )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []


# -- large data: subsampled training, block-by-block preprocessing and assignment --------


@pytest.fixture(scope="module")
def many_blobs():
    x, _ = make_blobs(n_samples=3000, centers=12, n_features=16, cluster_std=3.0,
                      random_state=1)
    return x.astype(np.float32)


@pytest.mark.parametrize("settings", [{}, {"normalize": True}, {"whiten": 8, "normalize": True}])
def test_blocks_smaller_than_the_data_give_the_one_block_result(many_blobs, settings):
    x = many_blobs
    whole = FaissKMeans(12, n_init=2, seed=4, **settings).fit(x)  # 3000 rows < 65536
    blocks = FaissKMeans(12, n_init=2, seed=4, chunk_size=128, **settings).fit(x)
    np.testing.assert_array_equal(blocks.labels_, whole.labels_)
    np.testing.assert_allclose(blocks.cluster_centers_, whole.cluster_centers_, atol=1e-5)
    assert blocks.inertia_ == pytest.approx(whole.inertia_, rel=1e-5)
    np.testing.assert_array_equal(blocks.predict(x), whole.labels_)
    np.testing.assert_allclose(blocks.transform(x), whole.transform(x), rtol=1e-5, atol=1e-6)
    if "whiten" in settings:
        np.testing.assert_allclose(blocks.whitening_components_, whole.whitening_components_,
                                   rtol=1e-6, atol=1e-9)


def test_subsampled_training_assigns_every_row_to_its_nearest_centre(many_blobs):
    x = many_blobs
    km = FaissKMeans(12, n_init=2, seed=5, normalize=True, max_points_per_centroid=40,
                     chunk_size=100).fit(x)  # trains on 480 of 3000 rows
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    d2 = ((z[:, None, :] - km.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(km.labels_, d2.argmin(1))  # all 3000 rows, full assignment
    assert km.labels_.shape == (3000,)
    assert km.inertia_ == pytest.approx(d2.min(1).sum(), rel=1e-4)
    # the block size changes nothing; the subsample is seeded
    one_block = FaissKMeans(12, n_init=2, seed=5, normalize=True, max_points_per_centroid=40,
                            chunk_size=10**6).fit(x)
    np.testing.assert_array_equal(one_block.labels_, km.labels_)
    np.testing.assert_array_equal(one_block.cluster_centers_, km.cluster_centers_)
    # the subsample is really used: training on every row lands elsewhere
    full = FaissKMeans(12, n_init=2, seed=5, normalize=True).fit(x)
    assert not np.array_equal(full.cluster_centers_, km.cluster_centers_)
    # ...and a cap above the data size is the ordinary fit
    capped = FaissKMeans(12, n_init=2, seed=5, normalize=True, max_points_per_centroid=1000,
                         chunk_size=100).fit(x)
    np.testing.assert_array_equal(capped.labels_, full.labels_)
    assert nmi(full.labels_, km.labels_) > 0.9


def test_large_plain_float32_input_is_not_copied(many_blobs):
    km = FaissKMeans(3, chunk_size=100).fit(many_blobs)
    assert km._preprocess_rows(many_blobs) is many_blobs
    assert FaissKMeans(3).fit(many_blobs)._preprocess_rows(many_blobs) is not many_blobs


def test_confidence_in_blocks_is_the_distance_ratio_of_transform(many_blobs):
    from fgdiscover.cluster import _distance_ratio_confidence

    km = FaissKMeans(12, seed=0, chunk_size=7).fit(many_blobs)
    np.testing.assert_allclose(km.confidence(many_blobs),
                               _distance_ratio_confidence(km.transform(many_blobs)),
                               rtol=1e-12)


# -- hierarchical_kmeans -------------------------------------------------------------------


def _assert_consistent(result, n, k, k_parent):
    assert result.child.shape == result.parent.shape == result.child_confidence.shape == (n,)
    assert result.child_to_parent.shape == (k,)
    np.testing.assert_array_equal(result.parent, result.child_to_parent[result.child])
    assert set(result.child_to_parent) == set(range(k_parent))
    assert np.all((result.child_confidence >= 0) & (result.child_confidence <= 1))


@pytest.mark.parametrize("use_parent_features", [False, True])
def test_hierarchy_recovers_nested_blobs(nested_blobs, use_parent_features):
    x, child, parent = nested_blobs
    parent_features = x[:, :3] if use_parent_features else None
    result = hierarchical_kmeans(x, parent_features, k=6, k_parent=2, seed=0)
    _assert_consistent(result, len(x), 6, 2)
    assert nmi(child, result.child) > 0.99
    assert nmi(parent, result.parent) > 0.99
    assert result.n_children == 6 and result.n_parents == 2


def test_hierarchy_groups_children_by_their_descriptors(nested_blobs):
    x, child, parent = nested_blobs
    seen = []

    def descriptors(labels):
        # one row per child cluster: the mean of a feature that only the parent sets
        seen.append(labels)
        return np.stack([np.eye(2)[parent[labels == c]].mean(0) for c in range(6)])

    result = hierarchical_kmeans(x, k=6, k_parent=2, seed=0, child_descriptors=descriptors)
    _assert_consistent(result, len(x), 6, 2)
    np.testing.assert_array_equal(seen[0], result.child)
    assert nmi(parent, result.parent) > 0.99
    with pytest.raises(ValueError, match="not both"):
        hierarchical_kmeans(x, x, k=6, k_parent=2, child_descriptors=descriptors)
    with pytest.raises(ValueError, match="finite rows"):
        hierarchical_kmeans(x, k=6, k_parent=2, child_descriptors=lambda c: np.full((6, 2), np.nan))


def test_equal_parents_keep_an_outlying_child_cluster_from_taking_a_parent(nested_blobs):
    """A child cluster whose descriptor is far from all others takes a parent of its own
    in free k-means, merging two true parents; with equal parents (3 + 3) it cannot."""
    x, child, parent = nested_blobs

    def rows(labels):
        r = np.stack([np.eye(2)[parent[labels == c]].mean(0) for c in range(6)])
        r[np.bincount(labels, minlength=6).argmax()] = [0.5, -4.0]  # the odd one
        return r

    free = hierarchical_kmeans(x, k=6, k_parent=2, seed=0, child_descriptors=rows,
                               equal_parents=False)
    equal = hierarchical_kmeans(x, k=6, k_parent=2, seed=0, child_descriptors=rows)
    assert sorted(np.bincount(free.child_to_parent)) == [1, 5]
    assert np.bincount(equal.child_to_parent).tolist() == [3, 3]
    _assert_consistent(equal, len(x), 6, 2)
    odd = np.bincount(equal.child, minlength=6).argmax()
    others = equal.child != odd
    assert nmi(parent[others], equal.parent[others]) > 0.99


def test_balanced_kmeans_gives_equal_groups_of_least_inertia():
    rng = np.random.default_rng(0)
    # three tight blobs of 5, 3 and 1 points: groups of 3 must split the first blob
    x = np.concatenate([rng.normal(0, 0.01, (5, 2)), rng.normal((100, 0), 0.01, (3, 2)),
                        [[0.0, 3.0]]])
    labels = balanced_kmeans(x, 3, seed=0)
    assert np.bincount(labels).tolist() == [3, 3, 3]
    assert len(set(labels[5:8])) == 1  # the blob of 3 stays whole
    # the best of all 280 partitions into three groups of three
    import itertools

    def inertia(lab):
        return sum(((x[lab == j] - x[lab == j].mean(0)) ** 2).sum() for j in range(3))

    best = min(inertia(np.array(p)) for p in itertools.product(range(3), repeat=9)
               if sorted(np.bincount(p, minlength=3)) == [3, 3, 3])
    assert inertia(labels) == pytest.approx(best)
    # 10 rows into 4 groups: sizes 3, 3, 2, 2; the same seed gives the same labels
    y = rng.normal(size=(10, 3))
    assert sorted(np.bincount(balanced_kmeans(y, 4, seed=1))) == [2, 2, 3, 3]
    np.testing.assert_array_equal(balanced_kmeans(y, 4, seed=1), balanced_kmeans(y, 4, seed=1))


def test_balanced_kmeans_weights_pull_the_centres():
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    labels = balanced_kmeans(x, 2, sample_weight=[1, 100, 1, 1], seed=0)
    assert labels[0] == labels[1] != labels[2] == labels[3]
    with pytest.raises(ValueError, match="n_clusters"):
        balanced_kmeans(x, 5)
    with pytest.raises(ValueError, match="positive"):
        balanced_kmeans(x, 2, sample_weight=[1, 0, 1, 1])


def test_hierarchy_uses_every_parent_even_against_the_majority(nested_blobs):
    # Parent features with 4 well separated groups, one holding 70% of every child
    # cluster: by majority all 6 child clusters would go to that one parent. All 4 parent
    # ids must still be used, consistently, which takes moving 3 child clusters.
    x, child, _ = nested_blobs
    rng = np.random.default_rng(0)
    group = np.where(rng.random(len(x)) < 0.7, 0, rng.integers(1, 4, size=len(x)))
    corners = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    parent_features = corners[group] + rng.normal(scale=1.0, size=(len(x), 2))
    result = hierarchical_kmeans(x, parent_features, k=6, k_parent=4, seed=1)
    _assert_consistent(result, len(x), 6, 4)
    assert sorted(np.bincount(result.child_to_parent)) == [1, 1, 1, 3]


def test_confidence_is_one_on_a_centre_and_low_on_a_boundary():
    # Optimal centres 1 (points 0, 0, 0, 4) and 10: inertia 12, against 27 with 4 joining
    # the 10s. Confidence 1 - d1/d2: point 10 -> 1 - 0/9 = 1, point 0 -> 1 - 1/10 = 0.9,
    # point 4 -> 1 - 3/6 = 0.5.
    x = np.array([[0.0], [0.0], [0.0], [10.0], [10.0], [10.0], [4.0]])
    result = hierarchical_kmeans(x, k=2, k_parent=1, n_init=3)
    np.testing.assert_allclose(result.child_confidence, [0.9] * 3 + [1.0] * 3 + [0.5])
    np.testing.assert_array_equal(result.parent, 0)


def test_assign_children_to_parents_majority_and_ties():
    counts = np.array([[3, 3], [0, 2], [1, 0]])
    # Child 0 is a tie -> lowest parent id; all parents used, so no repair.
    np.testing.assert_array_equal(assign_children_to_parents(counts), [0, 1, 0])


def test_assign_children_to_parents_repairs_optimally():
    # Every child's majority is parent 0; parent 1 must take one child. Moving child c
    # loses counts[c, 0] - counts[c, 1] = 5, 3, 1, 6 members: child 2 is the cheapest.
    counts = np.array([[5, 0], [4, 1], [3, 2], [6, 0]])
    np.testing.assert_array_equal(assign_children_to_parents(counts), [0, 0, 1, 0])
    # Three parents: the best one-child-each choice loses 0 + 3 + 1 = 4 members.
    counts = np.array([[5, 0, 0], [4, 1, 0], [3, 0, 2]])
    np.testing.assert_array_equal(assign_children_to_parents(counts), [0, 1, 2])


def test_assign_children_to_parents_renumbers_when_parents_cannot_all_be_used():
    # One non-empty child cluster, 3 parents: only one parent can be used; it becomes 0
    # and the empty child cluster goes to parent 0 too.
    counts = np.array([[0, 0, 4], [0, 0, 0]])
    np.testing.assert_array_equal(assign_children_to_parents(counts), [0, 0])


def test_hierarchy_bad_arguments(nested_blobs):
    x, _, _ = nested_blobs
    with pytest.raises(ValueError, match="k_parent=7 exceeds k=6"):
        hierarchical_kmeans(x, k=6, k_parent=7)
    with pytest.raises(ValueError, match="rows"):
        hierarchical_kmeans(x, x[:10], k=6, k_parent=2)


# -- representatives ---------------------------------------------------------------------


def test_representatives_nearest_first():
    features = np.array([[0.0], [3.0], [1.0], [10.0], [12.0], [11.5]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    centers = np.array([[0.5], [11.0], [50.0]])
    reps = representatives(features, labels, centers, n=2)
    # Cluster 0: distances 0.5, 2.5, 0.5 -> tie between 0 and 2 broken by index.
    # Cluster 1: distances 1, 1, 0.5 -> 5 first, then the tie 3/4 goes to 3.
    assert reps == {0: [0, 2], 1: [5, 3], 2: []}
    # Without centres, cluster means: 4/3 (nearest 2, then 0) and 33.5/3.
    assert representatives(features, labels, n=1) == {0: [2], 1: [5]}


def test_representatives_bad_input():
    with pytest.raises(ValueError, match="labels must lie in"):
        representatives(np.zeros((2, 1)), [0, 3], np.zeros((2, 1)))


# -- evaluate_assignments ------------------------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def csvs(tmp_path):
    # Child level as in the metrics hand case (classes x x x y y y, clusters 0 0 1 1 2 2):
    # accuracy 4/6, purity 5/6. Parent level perfect under renaming.
    # Assigned files spelled differently ("./", base name only); "ghost.jpg" has no label,
    # "unused.jpg" is labelled but not assigned.
    assignments = _write(
        tmp_path / "assign.csv",
        "file,cluster,parent_cluster\n"
        "./birds/a.jpg,0,1\nbirds/b.jpg,0,1\nc.jpg,1,1\n"
        "birds/d.jpg,1,0\nbirds/e.jpg,2,0\nbirds/f.jpg,2,0\nghost.jpg,2,0\n",
    )
    labels = _write(
        tmp_path / "labels.csv",
        "file,parent,label\n"
        "birds/a.jpg,P,x\nbirds/b.jpg,P,x\nbirds/c.jpg,P,x\n"
        "birds/d.jpg,Q,y\nbirds/e.jpg,Q,y\nbirds/f.jpg,Q,y\nbirds/unused.jpg,Q,z\n",
    )
    return assignments, labels


def test_evaluate_assignments_hand_checked(csvs):
    result = evaluate_assignments(*csvs, overcluster=2)
    assert result["n_images"] == 6
    assert result["n_unmatched"] == 1
    assert result["n_unlabelled"] == 0
    assert result["n_clusters"] == 3 and result["n_classes"] == 2
    assert result["label_column"] == "label"  # not "parent", although it comes first
    assert result["child"]["accuracy"] == pytest.approx(4 / 6)
    assert result["child"]["purity"] == pytest.approx(5 / 6)
    assert result["child"]["accuracy_overcluster_m2"] == pytest.approx(5 / 6)
    assert result["parent_label_column"] == "parent"
    assert result["n_parent_clusters"] == 2 and result["n_parent_classes"] == 2
    assert result["parent"]["accuracy"] == pytest.approx(1.0)
    assert result["parent"]["nmi"] == pytest.approx(1.0)


def test_evaluate_assignments_explicit_column_and_no_parent(tmp_path, csvs):
    _, labels = csvs
    assignments = _write(tmp_path / "other_tool.csv", "file,cluster,score\nbirds/a.jpg,5,0.1\n"
                         "birds/b.jpg,5,0.2\nbirds/d.jpg,6,0.3\nbirds/e.jpg,5,0.4\n")
    result = evaluate_assignments(assignments, labels, label_column="parent")
    # Clusters 5 5 6 5 vs parents P P Q Q: matching 5->P, 6->Q gets 3 of 4.
    assert result["child"]["accuracy"] == pytest.approx(3 / 4)
    assert "parent" not in result


def test_evaluate_assignments_empty_labels_are_left_out(tmp_path):
    assignments = _write(tmp_path / "a.csv", "file,cluster\na.jpg,0\nb.jpg,1\nc.jpg,1\n")
    labels = _write(tmp_path / "l.csv", "file,label\na.jpg,x\nb.jpg,\nc.jpg,y\n")
    result = evaluate_assignments(assignments, labels)
    assert result["n_images"] == 2 and result["n_unlabelled"] == 1
    assert result["child"]["accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "assign_text,kwargs,message",
    [
        ("file,label\na.jpg,0\n", {}, "lacks column\\(s\\) cluster"),
        ("file,cluster\nzzz.jpg,0\n", {}, "no file of"),
        ("file,cluster\na.jpg,\n", {}, "line 2 has an empty 'cluster'"),
        ("file,cluster\na.jpg,0\na.jpg,1\n", {}, "more than once"),
        ("file,cluster\na.jpg,0\n", {"parent_label_column": "label"}, "no 'parent_cluster'"),
        ("file,cluster\na.jpg,0\n", {"label_column": "species"}, "species"),
        ("file,cluster\na.jpg,0\n", {"overcluster": 0}, "overcluster must be"),
        ("file,cluster\n", {}, "no rows"),
    ],
)
def test_evaluate_assignments_errors(tmp_path, assign_text, kwargs, message):
    assignments = _write(tmp_path / "a.csv", assign_text)
    labels = _write(tmp_path / "l.csv", "file,label\na.jpg,x\n")
    with pytest.raises(FGDError, match=message):
        evaluate_assignments(assignments, labels, **kwargs)


def test_evaluate_assignments_missing_file(tmp_path):
    labels = _write(tmp_path / "l.csv", "file,label\na.jpg,x\n")
    with pytest.raises(FGDError, match="not found"):
        evaluate_assignments(tmp_path / "nope.csv", labels)
