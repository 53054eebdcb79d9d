"""Cluster silhouettes: the outline that a cluster's members share inside their boxes."""

import numpy as np
import pytest

from fgdiscover.silhouette import cluster_silhouettes, square_boxes


def shapes_on_noise(n=40, res=32, seed=0):
    """Half discs, half squares (one colour per shape), on noise, with their boxes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    labels = np.repeat([0, 1], n // 2)
    colours = [(220, 40, 40), (40, 40, 220)]
    boxes = []
    for i in range(n):
        s = int(rng.integers(12, 18))
        x, y = (int(v) for v in rng.integers(0, res - s, 2))
        yy, xx = np.mgrid[:s, :s]
        inside = np.ones((s, s), bool)
        if labels[i] == 0:
            inside = (yy - (s - 1) / 2) ** 2 + (xx - (s - 1) / 2) ** 2 <= (s / 2) ** 2
        images[i, y:y + s, x:x + s][inside] = colours[labels[i]]
        boxes.append([x, y, s, s])
    return images, np.float32(boxes), labels


@pytest.mark.parametrize("spread", ["mad", "std"])
def test_silhouettes_outline_the_shared_shape(spread):
    images, boxes, labels = shapes_on_noise()
    boxes[0] = np.nan  # left out
    maps, counts = cluster_silhouettes(images, boxes, labels, 3, size=8, batch_size=7,
                                       spread=spread)
    assert counts.tolist() == [19, 20, 0] and np.isnan(maps[2]).all()
    disc, square = maps[0].reshape(8, 8), maps[1].reshape(8, 8)
    corners = ([1, 1, 6, 6], [1, 6, 1, 6])  # the outermost ring blurs into the background
    # inside both shapes the members agree; in the box corners only the squares do
    assert disc[3:5, 3:5].min() > 0.9 and square[3:5, 3:5].min() > 0.9
    assert square[corners].mean() > disc[corners].mean() + 0.1
    assert maps[:2].max() <= 1 and maps[:2].min() >= 0


def test_silhouettes_stream_the_same_at_any_batch_size():
    images, boxes, labels = shapes_on_noise(n=12)
    a, _ = cluster_silhouettes(images, boxes, labels, 2, batch_size=5, spread="std")
    b, _ = cluster_silhouettes(images, boxes, labels, 2, batch_size=512, spread="std")
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_mad_silhouettes_shrug_off_mixed_in_members():
    """A disc cluster that the clustering filled with 30 % squares: the robust silhouette
    stays the discs' own, the standard deviation's drifts towards the squares'."""
    images, boxes, labels = shapes_on_noise(n=200, seed=1)
    pure = labels.copy()
    mixed = labels.copy()
    mixed[np.flatnonzero(labels == 1)[:43]] = 0  # 100 discs + 43 squares
    drift = {}
    for spread in ("mad", "std"):
        ref, _ = cluster_silhouettes(images, boxes, pure, 2, size=8, spread=spread)
        got, _ = cluster_silhouettes(images, boxes, mixed, 2, size=8, spread=spread)
        drift[spread] = np.abs(got[0] - ref[0]).mean()
    assert drift["mad"] < 0.05 and drift["std"] > 0.3  # measured: 0.02 and 0.62


def test_mad_silhouettes_sample_at_most_max_members_reproducibly():
    images, boxes, labels = shapes_on_noise(n=60)
    a, counts = cluster_silhouettes(images, boxes, labels, 2, max_members=10, seed=3)
    b, _ = cluster_silhouettes(images, boxes, labels, 2, max_members=10, seed=3)
    c, _ = cluster_silhouettes(images, boxes, labels, 2, max_members=10, seed=4)
    assert counts.tolist() == [30, 30]  # all members are counted, 10 are looked at
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_silhouettes_refuse_an_unknown_spread():
    images, boxes, labels = shapes_on_noise(n=4)
    with pytest.raises(ValueError, match="spread"):
        cluster_silhouettes(images, boxes, labels, 2, spread="iqr")


def test_square_boxes_keep_the_centre_and_stay_inside():
    sq = square_boxes(np.float32([[10, 10, 4, 8], [0, 0, 40, 6], [28, 1, 4, 4]]), 32)
    np.testing.assert_allclose(sq[0], [8, 10, 16, 18])
    np.testing.assert_allclose(sq[1], [0, 0, 32, 32])  # larger than the image: all of it
    np.testing.assert_allclose(sq[2], [28, 1, 32, 5])

