"""Tests for the synthetic hierarchical data set (fgdiscover.data.synthetic)."""

import colorsys
import csv
import json

import numpy as np
import pytest
from PIL import Image

from fgdiscover.data import synthetic as syn
from fgdiscover.data.synthetic import (
    N_BACKGROUNDS,
    SHAPES,
    draw_labels,
    make_synthetic,
    object_mask,
    read_synthetic,
    render_item,
)
from fgdiscover.errors import FGDError

P, C, SIZE = 3, 2, 32


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    return make_synthetic(out, n_parent=P, children_per_parent=C, n=40, size=SIZE, seed=3)


def _pixels(root, file):
    return np.asarray(Image.open(root / file))


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_layout_and_tied_labels(small_set):
    s = small_set
    assert s.files[0] == "images/00.png" and s.files[-1] == "images/39.png"  # width of n = 40
    labels = _read_csv(s.root / "labels.csv")
    assert labels[0] == ["file", "background", "parent", "child"]
    assert [r[0] for r in labels[1:]] == list(s.files)
    lab = np.array([r[1:] for r in labels[1:]], dtype=int)
    np.testing.assert_array_equal(lab, np.stack([s.background, s.parent, s.child], 1))
    # FineGAN's tied codes: global child id k belongs to parent k // C
    np.testing.assert_array_equal(s.child // C, s.parent)
    assert s.child.min() >= 0 and s.child.max() < P * C
    assert s.background.min() >= 0 and s.background.max() < N_BACKGROUNDS
    for f in s.files:
        im = Image.open(s.root / f)
        assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    again = read_synthetic(s.root)
    for name in ("files", "background", "parent", "child", "bboxes"):
        np.testing.assert_array_equal(getattr(again, name), getattr(s, name))
    manifest = json.loads((s.root / "synthetic.json").read_text())
    assert manifest["complete"] is True and manifest["n_parent"] == P


def test_bboxes_match_drawn_object(small_set):
    s = small_set
    rows = _read_csv(s.root / "bboxes.csv")
    assert rows[0] == ["file", "x", "y", "w", "h"]
    boxes = np.array([r[1:] for r in rows[1:]], dtype=int)
    np.testing.assert_array_equal(boxes, s.bboxes)
    for i, f in enumerate(s.files):
        item = render_item(i, background=int(s.background[i]), child=int(s.child[i]),
                           n_parent=P, children_per_parent=C, size=SIZE, seed=3)
        img = _pixels(s.root, f)
        np.testing.assert_array_equal(img, item.image)  # the written file is what was rendered
        x, y, w, h = s.bboxes[i]
        assert x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE and w > 0 and h > 0
        inside = np.zeros((SIZE, SIZE), bool)
        inside[y:y + h, x:x + w] = True
        mask = object_mask(i, background=int(s.background[i]), child=int(s.child[i]),
                           n_parent=P, children_per_parent=C, size=SIZE, seed=3)
        assert mask[~inside].sum() == 0
        # tight: the object touches every side of its box
        box = mask[y:y + h, x:x + w] > 0
        assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
        # outside the box the image is the background alone; inside, the object changed it
        np.testing.assert_array_equal(img[~inside], item.background_image[~inside])
        changed = np.abs(img.astype(int) - item.background_image).sum(-1) > 0
        assert changed[mask > 0.5].mean() > 0.8
        # scale: the object spans roughly 40-65 % of the side (more when rotated)
        assert 0.35 * SIZE <= max(w, h) <= 0.85 * SIZE


def test_background_is_drawn_independently_of_the_object():
    a = render_item(7, background=2, child=0, size=SIZE)
    b = render_item(7, background=2, child=11, size=SIZE)  # other parent and child
    np.testing.assert_array_equal(a.background_image, b.background_image)
    assert not np.array_equal(a.mask, b.mask)
    with pytest.raises(ValueError):
        render_item(0, background=N_BACKGROUNDS, child=0)


def test_all_children_and_backgrounds_appear_balanced():
    k = 4 * 5
    bg, parent, child = draw_labels(3 * k + 7, n_parent=4, children_per_parent=5, seed=1)
    counts = np.bincount(child, minlength=k)
    assert counts.min() >= 3 and counts.max() <= 4
    assert set(np.unique(bg)) == set(range(N_BACKGROUNDS))
    np.testing.assert_array_equal(parent, child // 5)
    # labels are shuffled, not in id order
    assert not np.array_equal(child[:k], np.arange(k))


def test_every_global_child_has_its_own_appearance():
    for n_parent, c in ((4, 3), (len(SHAPES), syn.MAX_CHILDREN_PER_PARENT), (7, 13), (12, 1)):
        looks = {tuple(sorted(syn.child_appearance(k, n_parent, c).items()))
                 for k in range(n_parent * c)}
        assert len(looks) == n_parent * c


def test_hues_are_interleaved_across_parents():
    # each parent's children spread over the colour wheel: the mean hue direction of a
    # parent's primaries is weak, so colour alone does not group images by parent
    n_parent, c = 4, 3
    for p in range(n_parent):
        hues = [colorsys.rgb_to_hsv(*syn.child_appearance(p * c + j, n_parent, c)["primary"])[0]
                for j in range(c)]
        resultant = abs(np.mean(np.exp(2j * np.pi * np.array(hues))))
        assert resultant < 0.2


def test_shapes_differ_at_the_same_placement():
    pl = syn._Placement(cx=32.0, cy=32.0, radius=18.0, angle=0.0)
    masks = [syn._object_layers(p, pl, 64, 1.0)[2] for p in range(len(SHAPES))]
    for a in range(len(SHAPES)):
        for b in range(a):
            ma, mb = masks[a], masks[b]
            h, w = min(ma.shape[0], mb.shape[0]), min(ma.shape[1], mb.shape[1])
            ma, mb = ma[:h, :w], mb[:h, :w]
            iou = (ma & mb).sum() / (ma | mb).sum()
            assert iou < 0.85, (SHAPES[a], SHAPES[b], iou)


def test_deterministic(tmp_path):
    kw = dict(n_parent=2, children_per_parent=2, n=12, size=24)
    a = make_synthetic(tmp_path / "a", seed=5, **kw)
    b = make_synthetic(tmp_path / "b", seed=5, **kw)
    c = make_synthetic(tmp_path / "c", seed=6, **kw)
    names = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert len(names) == 12 + 3
    for name in names:
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes(), name
    differ = sum((a.root / f).read_bytes() != (c.root / f).read_bytes() for f in a.files)
    assert differ == len(a.files)


def test_refuses_foreign_folders_and_replaces_previous_set(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FGDError, match="non-empty"):
        make_synthetic(foreign, n=4, size=16)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert not (foreign / "images").exists()

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FGDError, match="not a folder"):
        make_synthetic(afile, n=4, size=16)

    out = tmp_path / "set"
    make_synthetic(out, n=12, size=16)
    s = make_synthetic(out, n=5, size=16)  # a previous set is replaced, stale images go
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i}.png" for i in range(5)]
    assert len(read_synthetic(out).files) == 5 == len(s.files)

    (out / "extra.txt").write_text("user file")
    with pytest.raises(FGDError, match="extra.txt"):
        make_synthetic(out, n=5, size=16)
    assert (out / "extra.txt").exists() and (out / "labels.csv").exists()


@pytest.mark.parametrize("kw", [
    dict(n=0), dict(size=15), dict(n_parent=0), dict(n_parent=len(SHAPES) + 1),
    dict(children_per_parent=0), dict(children_per_parent=syn.MAX_CHILDREN_PER_PARENT + 1),
    dict(n=2.5), dict(seed=-1),
])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(FGDError):
        make_synthetic(tmp_path / "out", **{"n": 4, "size": 16, **kw})
    assert not (tmp_path / "out").exists()


def test_read_synthetic_reports_bad_folders(tmp_path):
    with pytest.raises(FGDError, match="cannot read"):
        read_synthetic(tmp_path)
    (tmp_path / "labels.csv").write_text("file,background,parent,child\nimages/0.png,1,x,2\n")
    (tmp_path / "bboxes.csv").write_text("file,x,y,w,h\nimages/0.png,1,2,3,4\n")
    with pytest.raises(FGDError, match="non-integer"):
        read_synthetic(tmp_path)


def test_pixel_kmeans_finds_backgrounds_not_children(tmp_path):
    """The property the set exists for: raw pixels cluster by background."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    s = make_synthetic(tmp_path / "set", n=240, size=SIZE, seed=0)
    x = np.stack([_pixels(s.root, f).ravel() for f in s.files]).astype(np.float32) / 255
    pred = KMeans(n_clusters=12, n_init=2, random_state=0).fit_predict(x)
    nmi_bg, nmi_child = nmi(s.background, pred), nmi(s.child, pred)
    assert nmi_bg > 0.7
    assert nmi_child < 0.3
    assert nmi_bg > nmi_child + 0.4
