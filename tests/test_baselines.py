"""The baselines of fgdiscover.baselines: each learns something on a tiny separable set."""

import numpy as np
import pytest
import torch

from fgdiscover.baselines import BASELINES, get
from fgdiscover.baselines.depict import balanced_target
from fgdiscover.baselines.jule import merge_clusters, merge_schedule
from fgdiscover.baselines.pixels import pixel_vectors
from fgdiscover.errors import FGDError
from fgdiscover.metrics import score

COLOURS = np.array([[230, 30, 30], [30, 200, 30], [40, 40, 230], [230, 230, 40]], np.uint8)


@pytest.fixture(scope="module")
def squares():
    """48 images of 16 px: a square of one of 4 colours (the class) at a random place and
    size on a noisy grey background."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for c, colour in enumerate(COLOURS):
        for _ in range(12):
            im = np.clip(128 + rng.integers(-20, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            s = int(rng.integers(6, 10))
            x, y = rng.integers(0, 16 - s, 2)
            im[y:y + s, x:x + s] = colour
            images.append(im)
            labels.append(c)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_beats_chance_on_separable_squares(name, squares, one_thread):
    images, labels = squares
    pred = BASELINES[name].fit_predict(images, 4, preset="tiny", seed=0)
    assert pred.shape == (48,) and pred.dtype == np.int64
    assert pred.min() >= 0 and pred.max() < 4
    s = score(labels, pred, ["nmi", "accuracy"])
    # chance: accuracy ~0.25-0.3 and NMI ~0.05 for 4 classes of 12
    assert s["accuracy"] >= 0.45, s
    assert s["nmi"] >= 0.25, s


@pytest.mark.parametrize("name", ["depict", "jule"])
def test_baseline_is_deterministic_on_the_cpu(name, squares, one_thread):
    images, _ = squares
    a = BASELINES[name].fit_predict(images, 4, preset="tiny", seed=3)
    b = BASELINES[name].fit_predict(images, 4, preset="tiny", seed=3)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_refused(squares):
    images, _ = squares
    with pytest.raises(FGDError, match="between 2 and the number of images"):
        BASELINES["pixels"].fit_predict(images[:3], 4, preset="tiny")
    with pytest.raises(FGDError, match="power of two"):
        BASELINES["depict"].fit_predict(images[:, :12, :12], 4, preset="tiny")
    with pytest.raises(FGDError, match="uint8"):
        BASELINES["infogan"].fit_predict(images.astype(np.float32), 4, preset="tiny")
    with pytest.raises(FGDError, match="unknown preset 'huge' for jule"):
        BASELINES["jule"].fit_predict(images, 4, preset="huge")
    with pytest.raises(FGDError, match="unknown baseline 'sift'; choose from"):
        get("sift")


def test_every_baseline_has_the_three_presets_and_says_how_it_differs():
    for b in BASELINES.values():
        assert set(b.module.PRESETS) == {"tiny", "cpu", "paper"}
        assert b.original and len(b.differences) > 20


def test_pixel_vectors_block_average():
    images = np.zeros((1, 4, 4, 3), np.uint8)
    images[0, :2, :2] = 255  # top-left block white
    v = pixel_vectors(images, side=2).reshape(2, 2, 3)
    np.testing.assert_allclose(v[..., 0], [[1.0, 0.0], [0.0, 0.0]])


def test_depict_balanced_target_damps_large_clusters():
    # three images sure of cluster 0, one unsure between 0 and 1
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    q = balanced_target(p)
    # f = (3.5, 0.5): the unsure image's target is 0.5/sqrt(3.5) vs 0.5/sqrt(0.5)
    expected = (1 / np.sqrt(0.5)) / (1 / np.sqrt(3.5) + 1 / np.sqrt(0.5))
    assert q[3, 1].item() == pytest.approx(expected)
    assert q[3, 1] > 0.5
    np.testing.assert_allclose(q.sum(1).numpy(), 1.0, rtol=1e-6)


def test_jule_schedule_ends_at_k_and_decreases():
    assert merge_schedule(100, 10, 3) == [46, 22, 10]
    assert merge_schedule(12, 4, 3)[-1] == 4
    assert merge_schedule(5, 4, 6) == [4]  # repeats dropped


def test_jule_merge_joins_the_clusters_with_close_features():
    # four clusters: 0 and 2 point one way, 1 and 3 the other
    feats = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9], [1, 0.05], [0.05, 1]], float)
    labels = np.array([0, 1, 2, 3, 0, 1])
    merged = merge_clusters(feats, labels, 2)
    assert merged[0] == merged[2] == merged[4] and merged[1] == merged[3] == merged[5]
    assert merged[0] != merged[1]
