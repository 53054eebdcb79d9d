"""CUB / Stanford Dogs / Stanford Cars through the whole loading path, crops checked.

The reader fixtures of ``test_data_readers`` (CUB text files, Dogs ``lists/*.mat`` and VOC
XML, Cars ``cars_annos.mat`` and the devkit ``.mat`` files) are built with other row
tables, and their images replaced by real JPEGs painted one background colour with the
object box in another colour (one per image). :func:`fgdiscover.pipeline.load_images`
must then keep the official split, the labels and, for each crop mode, put the expected
share of box colour into the decoded image, as FineGAN's 1.5x box crop (``crop="bbox"``)
or the largest centred square (``crop="full"``) predicts; ``ds.bboxes`` must be the box
in output pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test_data_readers as tdr
from fgdiscover.pipeline import load_images
from test_data_readers import make_cars_annos, make_cars_devkit, make_cub, make_dogs

SIZE = 64
BACKGROUND = (30, 60, 190)
BOX_COLOURS = [(230, 40, 40), (40, 210, 60), (240, 220, 30), (220, 60, 220)]
# Share of box colour: JPEG and the bicubic resize blur a pixel or so of the box edge.
FRACTION_TOL = 0.035
# Output box vs. the extent of the painted box in the decoded image, in output pixels.
EXTENT_TOL = 1.5

LANDSCAPE, PORTRAIT = (200, 160), (160, 200)

# Rows in the formats the test_data_readers builders expect; boxes chosen so that some
# 1.5x crops fit and some are clipped by the image border (a rectangle, stretched).
CUB_ROWS = {  # id: (path under images/, class id, x, y, w, h, is_train) -- ids 1..4, classes 1..2
    1: (tdr.ALBATROSS + "0046_18.jpg", 1, (60.0, 40.0, 80.0, 60.0), False),
    2: (tdr.ALBATROSS + "0009_34.jpg", 1, (30.0, 50.0, 90.0, 110.0), True),
    3: (tdr.LAYSAN + "0002_1027.jpg", 2, (5.0, 8.0, 70.0, 50.0), True),
    4: (tdr.LAYSAN + "0003_1033.jpg", 2, (20.0, 20.0, 160.0, 120.0), False),
}
CUB_SIZES = {1: LANDSCAPE, 2: PORTRAIT, 3: LANDSCAPE, 4: LANDSCAPE}

DOGS_ROWS = [  # (file under Images/, label, boxes (xmin, ymin, xmax, ymax), train)
    ("n02099601-golden_retriever/n02099601_3004.jpg", 1, [(50, 30, 150, 110)], True),
    ("n02099601-golden_retriever/n02099601_7.jpg", 1, [(20, 30, 70, 90), (60, 20, 130, 80)], False),
    ("n02085620-Chihuahua/n02085620_10074.jpg", 2, [(40, 60, 120, 140)], True),
    ("n02085620-Chihuahua/n02085620_588.jpg", 2, [(120, 90, 190, 150)], False),
]
DOGS_SIZES = [LANDSCAPE, LANDSCAPE, PORTRAIT, LANDSCAPE]

CARS_ROWS = [  # (name, x1, y1, x2, y2 MATLAB 1-based inclusive, class 1.., test)
    ("000001.jpg", 41, 31, 160, 110, 1, 0),
    ("000002.jpg", 21, 41, 100, 160, 3, 1),
    ("000003.jpg", 101, 61, 180, 130, 2, 0),
    ("000004.jpg", 61, 51, 140, 110, 3, 1),
]
CARS_SIZES = [LANDSCAPE, PORTRAIT, LANDSCAPE, LANDSCAPE]


# --------------------------------------------------------------------------------------
# Expected geometry, written out independently of fgdiscover.data.images
# --------------------------------------------------------------------------------------


def finegan_crop(box, width, height):
    """FineGAN: square of side 2r, r = int(0.75 max(w, h)), on the (truncated) box centre,
    clipped to the image; (left, top, right, bottom)."""
    x, y, w, h = box
    r = int(0.75 * max(w, h))
    cx, cy = int(x + w / 2), int(y + h / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def centre_square(width, height):
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def painted_area_in(rects, crop):
    """Pixels of the union of ``rects`` (x0, y0, x1, y1) inside ``crop``."""
    left, top, right, bottom = crop
    mask = np.zeros((bottom - top, right - left), dtype=bool)
    for x0, y0, x1, y1 in rects:
        mask[max(y0, top) - top:max(min(y1, bottom) - top, 0),
             max(x0, left) - left:max(min(x1, right) - left, 0)] = True
    return mask.sum() / mask.size


def box_in_output(box, crop, size=SIZE):
    x, y, w, h = box
    left, top, right, bottom = crop
    sx, sy = size / (right - left), size / (bottom - top)
    x0, x1 = np.clip([(x - left) * sx, (x + w - left) * sx], 0, size)
    y0, y1 = np.clip([(y - top) * sy, (y + h - top) * sy], 0, size)
    return np.array([x0, y0, x1 - x0, y1 - y0])


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


def paint(path: Path, size, rects, colour) -> None:
    """Overwrite ``path`` with a JPEG: BACKGROUND with ``rects`` (x0, y0, x1, y1) in ``colour``."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, "box must lie in the image"
        pixels[y0:y1, x0:x1] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, subsampling=0)


class Expected:
    """What load_images should give for one image of a fixture."""

    def __init__(self, file, label, box, rects, size, colour, train):
        self.file, self.label, self.train = file, label, train
        self.box = np.asarray(box, dtype=np.float64)  # x, y, w, h in original pixels
        self.rects, self.size, self.colour = rects, size, colour


def build_cub(tmp_path, monkeypatch):
    monkeypatch.setattr(tdr, "CUB_IMAGES", CUB_ROWS)
    root = make_cub(tmp_path / "CUB_200_2011")
    expected = []
    for i in sorted(CUB_ROWS):
        rel, cls, (x, y, w, h), train = CUB_ROWS[i]
        rect = (int(x), int(y), int(x + w), int(y + h))
        colour = BOX_COLOURS[i - 1]
        paint(root / "images" / rel, CUB_SIZES[i], [rect], colour)
        expected.append(Expected("images/" + rel, tdr.CUB_CLASSES[cls], (x, y, w, h), [rect],
                                 CUB_SIZES[i], colour, train))
    return root, expected


def build_dogs(tmp_path, monkeypatch):
    monkeypatch.setattr(tdr, "DOGS", DOGS_ROWS)
    root = make_dogs(tmp_path / "StanfordDogs", "lists")
    names = {1: "n02099601-golden_retriever", 2: "n02085620-Chihuahua"}
    expected = []
    for i, (file, label, boxes, train) in enumerate(DOGS_ROWS):
        paint(root / "Images" / file, DOGS_SIZES[i], boxes, BOX_COLOURS[i])
        corners = np.array(boxes)
        x0, y0 = corners[:, :2].min(axis=0)
        x1, y1 = corners[:, 2:].max(axis=0)  # the reader's box: union of the dogs
        expected.append(Expected("Images/" + file, names[label], (x0, y0, x1 - x0, y1 - y0),
                                 boxes, DOGS_SIZES[i], BOX_COLOURS[i], train))
    return root, expected


def _cars_expected(files, rows):
    expected = []
    for file, (name, x1, y1, x2, y2, cls, test) in zip(files, rows):
        i = [r[0] for r in CARS_ROWS].index(name)
        rect = (x1 - 1, y1 - 1, x2, y2)  # pixels x1..x2 counted from 1, both included
        expected.append(Expected(file, tdr.CAR_CLASSES[cls - 1],
                                 (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1), [rect],
                                 CARS_SIZES[i], BOX_COLOURS[i], test == 0))
    return expected


def build_cars_annos(tmp_path, monkeypatch):
    root = make_cars_annos(tmp_path / "stanford_cars", rows=CARS_ROWS)
    expected = _cars_expected([f"car_ims/{r[0]}" for r in CARS_ROWS], CARS_ROWS)
    for e in expected:
        paint(root / e.file, e.size, e.rects, e.colour)
    return root, expected


def build_cars_devkit(tmp_path, monkeypatch):
    monkeypatch.setattr(tdr, "CARS", CARS_ROWS)
    root = make_cars_devkit(tmp_path / "stanford_cars", "devkit", ".")
    train = [r for r in CARS_ROWS if r[6] == 0]
    test = [r for r in CARS_ROWS if r[6] == 1]
    files = [f"cars_train/{r[0]}" for r in train] + [f"cars_test/{r[0]}" for r in test]
    expected = _cars_expected(files, train + test)
    for e in expected:
        paint(root / e.file, e.size, e.rects, e.colour)
    assert (root / "devkit" / "cars_train_annos.mat").is_file()
    assert (root / "cars_test_annos_withlabels.mat").is_file()
    return root, expected


BUILDERS = {
    "cub": build_cub,
    "dogs": build_dogs,
    "cars_annos": build_cars_annos,
    "cars_devkit": build_cars_devkit,
}


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def box_colour_mask(image: np.ndarray, colour) -> np.ndarray:
    """Pixels nearer to ``colour`` than to BACKGROUND."""
    pixels = image.astype(np.float64)
    to_box = np.sum((pixels - colour) ** 2, axis=-1)
    to_background = np.sum((pixels - BACKGROUND) ** 2, axis=-1)
    return to_box < to_background


def check_image(image, bbox_out, e: Expected, crop_mode: str) -> None:
    width, height = e.size
    crop = (finegan_crop(e.box, width, height) if crop_mode == "bbox"
            else centre_square(width, height))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    where = f"{e.file} crop={crop_mode}"

    # ds.bboxes: the object box in output pixels of this crop.
    want_box = box_in_output(e.box, crop)
    np.testing.assert_allclose(bbox_out, want_box, atol=1e-3, err_msg=where)

    # Share of box colour = share of the crop covered by the painted box(es), since the
    # crop (a rectangle when clipped) is stretched onto the whole output.
    mask = box_colour_mask(image, e.colour)
    want = painted_area_in(e.rects, crop)
    assert abs(mask.mean() - want) < FRACTION_TOL, (where, mask.mean(), want)

    # The painted extent in the output is where ds.bboxes says the box is.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x, y, w, h = want_box
    extent = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
    np.testing.assert_allclose(extent, [x, y, x + w, y + h], atol=EXTENT_TOL, err_msg=where)

    if crop_mode == "bbox":
        # The crop is centred on the box: the middle of the output is the object.
        left, top, right, bottom = crop
        mid = ((left + right) / 2, (top + bottom) / 2)
        assert any(x0 <= mid[0] < x1 and y0 <= mid[1] < y1 for x0, y0, x1, y1 in e.rects)
        centre = image[SIZE // 2 - 3:SIZE // 2 + 3, SIZE // 2 - 3:SIZE // 2 + 3].reshape(-1, 3)
        assert np.abs(centre.astype(int) - e.colour).max() < 30, where
        assert want > 0.3, where  # a 1.5x crop: the object fills much of the frame


@pytest.mark.parametrize("crop_mode", ["bbox", "full"])
@pytest.mark.parametrize("layout", list(BUILDERS))
def test_load_images_split_labels_and_crop(tmp_path, monkeypatch, layout, crop_mode):
    root, expected = BUILDERS[layout](tmp_path / "data", monkeypatch)
    cache = tmp_path / "cache"
    wanted = {
        "all": expected,
        "train": [e for e in expected if e.train],
        "test": [e for e in expected if not e.train],
    }
    assert len(wanted["train"]) == 2 and len(wanted["test"]) == 2
    for split, want in wanted.items():
        ds = load_images(root, SIZE, split=split, crop=crop_mode, progress=False,
                         cache_dir=cache)
        assert ds.layout == layout.split("_")[0]
        assert ds.skipped == []
        assert ds.files == [e.file for e in want], split
        assert ds.labels == [e.label for e in want], split
        assert ds.is_train.tolist() == [e.train for e in want], split
        assert ds.images.shape == (len(want), SIZE, SIZE, 3)
        assert ds.bboxes.shape == (len(want), 4) and not ds.bbox_missing.any()
        for image, bbox_out, e in zip(ds.images, ds.bboxes, want):
            check_image(np.asarray(image), bbox_out, e, crop_mode)


@pytest.mark.parametrize("layout", list(BUILDERS))
def test_bbox_crop_zooms_in_on_the_object(tmp_path, monkeypatch, layout):
    """Where the 1.5x crop is a square inside the image, it shows more object than the
    full frame does, and the two modes decode different pixels from the same files."""
    root, expected = BUILDERS[layout](tmp_path / "data", monkeypatch)
    cache = tmp_path / "cache"
    full = load_images(root, SIZE, crop="full", progress=False, cache_dir=cache)
    bbox = load_images(root, SIZE, crop="bbox", progress=False, cache_dir=cache)
    assert full.files == bbox.files == [e.file for e in expected]
    zoomed = 0
    for e, a, b in zip(expected, full.images, bbox.images):
        width, height = e.size
        left, top, right, bottom = finegan_crop(e.box, width, height)
        if right - left == bottom - top:  # not clipped
            zoomed += 1
            assert (box_colour_mask(b, e.colour).mean()
                    > box_colour_mask(a, e.colour).mean() + 0.1), e.file
    assert zoomed >= 1
    assert not np.array_equal(np.asarray(full.images), np.asarray(bbox.images))
