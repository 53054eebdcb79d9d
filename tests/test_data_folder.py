"""Tests for the image-folder data layer: tables, image decoding, folder scan and cache."""

from __future__ import annotations

import os
import types
import warnings

import numpy as np
import pytest
from PIL import Image

from fgdiscover.data import folder as folder_mod
from fgdiscover.data import images as images_mod
from fgdiscover.data import tables
from fgdiscover.data.folder import ImageFolder, default_cache_dir, scan_images
from fgdiscover.data.images import (
    ImageDecodeError,
    finegan_crop_box,
    load_image,
    transform_bbox,
)
from fgdiscover.errors import FGDError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def close(pixel, colour, tol=40):
    """True if an RGB pixel is within `tol` of `colour` on every channel (JPEG-safe)."""
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(colour)) <= tol))


def solid(colour, size=(24, 24), mode="RGB"):
    return Image.new(mode, size, colour)


def halves(left, right, size=(24, 24)):
    """RGB image whose left half is `left` and right half `right`."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2 :] = right
    return Image.fromarray(arr)


def write(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


# ---------------------------------------------------------------------------------------
# Fixture: a folder with every mode/format users throw at us, plus broken files
# ---------------------------------------------------------------------------------------

GOOD_FILES = [
    "a/pal.png",
    "a/rgb.jpg",
    "a/rgba.png",
    "b/anim.gif",
    "b/bw.bmp",
    "b/gray.png",
    "b/gray16.png",
    "c/cmyk.jpg",
    "c/pic.webp",
    "c/pic.tiff",
    "c/rot.jpg",
    "d/Mixed.PnG",
    "d/UPPER.JPG",
    "d/e/f/deep.png",
]
BAD_FILES = ["bad/text.png", "bad/trunc.jpg", "bad/zero.jpg"]


def make_rgba(path):
    # left half fully transparent (-> white), right half opaque red
    arr = np.zeros((24, 24, 4), np.uint8)
    arr[:, 12:] = (255, 0, 0, 255)
    arr[:, :12] = (0, 0, 0, 0)
    return write(path, Image.fromarray(arr, "RGBA"))


def make_palette(path):
    # palette index 0 = black but transparent, index 1 = green; left half transparent
    img = Image.new("P", (24, 24), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (12, 0, 24, 24))
    return write(path, img, transparency=0)


def make_gray16(path):
    # 32896 / 257 = 128: a 16-bit mid grey must stay mid grey, not clip to white
    arr = np.full((24, 24), 32896, np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I")
    return write(path, img)


def make_gif(path):
    frames = [solid(RED).convert("P"), solid(BLUE).convert("P")]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


def make_rotated_jpeg(path):
    # Stored 40x20: left half red, right half blue. EXIF orientation 6 means "rotate 90
    # degrees clockwise to display", so displayed 20x40 has red on top, blue below.
    img = halves(RED, BLUE, size=(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return write(path, img, exif=exif.tobytes(), quality=95)


def make_truncated_jpeg(path):
    rng = np.random.default_rng(0)
    full = path.with_name("full.tmp")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full, "JPEG")
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "imgs"
    make_palette(root / "a/pal.png")
    write(root / "a/rgb.jpg", solid(RED), quality=95)
    make_rgba(root / "a/rgba.png")
    (root / "a/readme.txt").write_text("not an image, wrong extension: ignored")
    write(root / "a/.dot.jpg", solid(RED))  # hidden file
    make_gif(root / "b/anim.gif")
    write(root / "b/bw.bmp", halves(0, 255).convert("1"))
    write(root / "b/gray.png", solid(100, mode="L"))
    make_gray16(root / "b/gray16.png")
    write(root / "c/cmyk.jpg", solid((255, 0, 0, 0), mode="CMYK"), quality=95)  # cyan
    write(root / "c/pic.webp", solid(GREEN), quality=95)
    write(root / "c/pic.tiff", solid(BLUE))
    make_rotated_jpeg(root / "c/rot.jpg")
    write(root / "d/Mixed.PnG", solid(GREEN), format="PNG")
    write(root / "d/UPPER.JPG", solid(BLUE), format="JPEG", quality=95)
    write(root / "d/e/f/deep.png", solid(RED))
    write(root / ".hidden/secret.jpg", solid(RED))  # hidden folder
    (root / "bad").mkdir()
    (root / "bad/zero.jpg").write_bytes(b"")
    make_truncated_jpeg(root / "bad/trunc.jpg")
    (root / "bad/text.png").write_text("hello, I am text")
    return root


# ---------------------------------------------------------------------------------------
# tables.py
# ---------------------------------------------------------------------------------------


def test_read_label_table_normalises_paths_and_keeps_strings(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,parent\n./a\\x.jpg,NA,007\nb/y.jpg,cat,1\n")
    table = tables.read_label_table(csv)
    assert list(table.index) == ["a/x.jpg", "b/y.jpg"]
    # "NA" is a class name, "007" keeps its zeros: everything is read as text
    assert table.loc["a/x.jpg", "label"] == "NA"
    assert table.loc["a/x.jpg", "parent"] == "007"
    assert tables.pick_label_column(table) == "label"
    assert tables.pick_label_column(table, "parent") == "parent"


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("", "empty"),
        ("name,label\na.jpg,x\n", "no 'file' column"),
        ("file,label\na.jpg,x\n./a.jpg,y\n", "more than once"),
    ],
)
def test_read_label_table_errors(tmp_path, content, message):
    csv = tmp_path / "labels.csv"
    if content is not None:
        csv.write_text(content)
    with pytest.raises(FGDError, match=message) as info:
        tables.read_label_table(csv)
    assert str(csv) in str(info.value)
    assert "\n" not in str(info.value)


def test_pick_label_column_fallbacks():
    import pandas as pd

    table = pd.DataFrame({"species": ["x"], "child": ["y"]}, index=pd.Index(["a"], name="file"))
    assert tables.pick_label_column(table) == "child"
    table = pd.DataFrame({"species": ["x"], "genus": ["y"]}, index=pd.Index(["a"], name="file"))
    assert tables.pick_label_column(table) == "species"
    with pytest.raises(FGDError, match="available: species, genus"):
        tables.pick_label_column(table, "label")
    with pytest.raises(FGDError, match="no label column"):
        tables.pick_label_column(table[[]])


def test_match_files_exact_then_unique_basename():
    keys = ["x/a.jpg", "b.jpg", "p/c.jpg", "q/c.jpg", "images/d/e.jpg"]
    files = ["x/a.jpg", "y/a.jpg", "z/b.jpg", "r/c.jpg", "p/c.jpg", "d/e.jpg", "nothing.jpg"]
    assert tables.match_files(keys, files) == [0, 0, 1, None, 2, 4, None]


def test_read_bboxes_csv(tmp_path):
    csv = tmp_path / "boxes.csv"
    csv.write_text("file,x,y,w,h\n./a/x.jpg,1,2.5,3,4\n")
    assert tables.read_bboxes_csv(csv) == {"a/x.jpg": (1.0, 2.5, 3.0, 4.0)}


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,x,y,w\na.jpg,1,2,3\n", "lacks column.*h"),
        ("file,x,y,w,h\na.jpg,1,2,3,4\nb.jpg,1,two,3,4\n", "line 3 \\(b.jpg\\).*numbers"),
        ("file,x,y,w,h\na.jpg,1,2,0,4\n", "line 2 \\(a.jpg\\).*> 0"),
        ("file,x,y,w,h\na.jpg,1,2,3,-4\n", "line 2"),
    ],
)
def test_read_bboxes_csv_errors(tmp_path, content, message):
    csv = tmp_path / "boxes.csv"
    csv.write_text(content)
    with pytest.raises(FGDError, match=message):
        tables.read_bboxes_csv(csv)


def test_labels_from_dirs():
    assert tables.labels_from_dirs(["cat/a.jpg", "dog/x/b.jpg"]) == ["cat", "dog"]
    with pytest.raises(FGDError, match="2 image\\(s\\).*first: top.jpg"):
        tables.labels_from_dirs(["cat/a.jpg", "top.jpg", "other.png"])


# ---------------------------------------------------------------------------------------
# images.py: crop arithmetic
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bbox, width, height, expected",
    [
        # r = int(0.75 * 20) = 15, centre (60, 65): fully inside
        ((50, 60, 20, 10), 200, 200, (45, 50, 75, 80)),
        # r = 30, centre (30, 35): left edge exactly 0, top 5
        ((10, 20, 40, 30), 200, 200, (0, 5, 60, 65)),
        # r = int(22.5) = 22, centre (190, 185): clipped at the right and bottom
        ((180, 170, 20, 30), 200, 190, (168, 163, 200, 190)),
        # r = 30, centre (5, 20): clipped at the left, top and bottom
        ((0, 0, 10, 40), 100, 45, (0, 0, 35, 45)),
        # fractional box: r = int(3.75) = 3, centre int(12.1) = 12, int(12.7) = 12
        ((10.6, 10.2, 3.0, 5.0), 50, 50, (9, 9, 15, 15)),
    ],
)
def test_finegan_crop_box(bbox, width, height, expected):
    assert finegan_crop_box(bbox, width, height) == expected


@pytest.mark.parametrize("bbox", [(500, 500, 10, 10), (5, 5, 0, 10), (5, 5, float("nan"), 4)])
def test_finegan_crop_box_rejects_bad_boxes(bbox):
    with pytest.raises(ValueError):
        finegan_crop_box(bbox, 100, 100)


def test_transform_bbox_scales_and_clips():
    # crop (45, 50)-(75, 80) is 30 px, output 60 px: scale 2
    np.testing.assert_allclose(
        transform_bbox((50, 60, 20, 10), (45, 50, 75, 80), 60), [10, 20, 40, 20]
    )
    # box runs past the crop at the bottom: h is cut at the output border
    out = transform_bbox((180, 170, 20, 30), (168, 163, 200, 190), 64)
    np.testing.assert_allclose(out, [24, 7 * 64 / 27, 40, 64 - 7 * 64 / 27], rtol=1e-6)
    assert out.dtype == np.float32


def test_load_image_bbox_crop_and_output_box(tmp_path):
    arr = np.zeros((200, 200, 3), np.uint8)
    arr[:] = BLUE
    arr[60:70, 50:70] = RED  # the object = the box (50, 60, 20, 10)
    path = write(tmp_path / "obj.png", Image.fromarray(arr))
    image, box = load_image(path, 60, bbox=(50, 60, 20, 10))
    assert image.shape == (60, 60, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(box, [10, 20, 40, 20])
    assert close(image[30, 30], RED, 10)  # inside the output box
    assert close(image[5, 5], BLUE, 10) and close(image[50, 55], BLUE, 10)


def test_load_image_centre_crop_without_bbox(tmp_path):
    # 60x20: red | green | blue thirds; the centred 20x20 square is all green
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :20], arr[:, 20:40], arr[:, 40:] = RED, GREEN, BLUE
    image, box = load_image(write(tmp_path / "wide.png", Image.fromarray(arr)), 10)
    assert box is None
    # (bicubic lets a little red/blue bleed into the border columns, hence tol 40)
    assert close(image[0, 0], GREEN) and close(image[9, 9], GREEN)
    assert close(image[5, 5], GREEN, 2)


def test_load_image_large_jpeg_reduced_decoding_keeps_geometry(tmp_path):
    # 800 px photo, 30 px output: decoding uses JPEG draft scaling; the crop must still
    # land on the object.
    arr = np.zeros((800, 800, 3), np.uint8)
    arr[:] = BLUE
    arr[400:500, 400:500] = RED
    path = write(tmp_path / "big.jpg", Image.fromarray(arr), quality=95)
    image, box = load_image(path, 30, bbox=(400, 400, 100, 100))
    # crop: r = 75 around (450, 450) -> (375, 375, 525, 525), 150 px -> 30 px
    np.testing.assert_allclose(box, [5, 5, 20, 20])
    assert close(image[15, 15], RED) and close(image[6, 23], RED)
    assert close(image[2, 2], BLUE) and close(image[27, 15], BLUE)


# ---------------------------------------------------------------------------------------
# images.py: modes and formats
# ---------------------------------------------------------------------------------------


def test_load_image_modes(tree):
    def load(rel):
        image, box = load_image(tree / rel, 16)
        assert image.shape == (16, 16, 3) and image.dtype == np.uint8 and box is None
        return image

    assert close(load("a/rgb.jpg")[8, 8], RED, 10)
    rgba = load("a/rgba.png")
    assert close(rgba[8, 1], WHITE, 2) and close(rgba[8, 14], RED, 2)  # alpha -> white
    pal = load("a/pal.png")
    assert close(pal[8, 1], WHITE, 2) and close(pal[8, 14], GREEN, 2)
    assert close(load("b/gray.png")[8, 8], (100, 100, 100), 1)
    assert close(load("b/gray16.png")[8, 8], (128, 128, 128), 1)  # rescaled, not clipped
    bw = load("b/bw.bmp")
    assert close(bw[8, 1], (0, 0, 0), 2) and close(bw[8, 14], WHITE, 2)
    assert close(load("b/anim.gif")[8, 8], RED, 10)  # first frame, not the blue second
    assert close(load("c/cmyk.jpg")[8, 8], (0, 255, 255))  # CMYK cyan
    assert close(load("c/pic.webp")[8, 8], GREEN)
    assert close(load("c/pic.tiff")[8, 8], BLUE, 2)
    assert close(load("d/UPPER.JPG")[8, 8], BLUE)


def test_load_image_applies_exif_orientation(tree):
    image, _ = load_image(tree / "c/rot.jpg", 16)
    # displayed: red on top, blue below. Unrotated it would be red left, blue right,
    # so each of these pixels would have the other colour.
    assert close(image[3, 12], RED) and close(image[12, 3], BLUE)
    assert close(image[2, 2], RED) and close(image[13, 13], BLUE)


@pytest.mark.parametrize(
    "rel, reason",
    [("bad/zero.jpg", "empty"), ("bad/trunc.jpg", "truncated"), ("bad/text.png", "not an image")],
)
def test_load_image_bad_files(tree, rel, reason):
    with pytest.raises(ImageDecodeError, match=reason) as info:
        load_image(tree / rel, 16)
    assert isinstance(info.value, FGDError)
    assert reason in info.value.reason and "\n" not in info.value.reason


def test_load_image_truncated_png(tmp_path):
    rng = np.random.default_rng(1)
    full = write(tmp_path / "full.png", Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(ImageDecodeError):
        load_image(cut, 16)


def test_load_image_decompression_bomb_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    # 1,600 px, between the limit and twice it (Pillow only warns): a JPEG decodes through
    # draft() at 1/4 scale (100 px, under the limit); a PNG would need all 1,600: refused
    warned = write(tmp_path / "warned.jpg", solid(RED, size=(40, 40)), quality=95)
    over = write(tmp_path / "over.png", solid(RED, size=(40, 40)))
    refused = write(tmp_path / "refused.png", solid(RED, size=(100, 100)))  # > 2x limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, _ = load_image(warned, 8)
    assert close(image[4, 4], RED, 10)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(ImageDecodeError, match="too large.*40x40 = 1600 pixels"):
        load_image(over, 8)
    with pytest.raises(ImageDecodeError, match="too large"):
        load_image(refused, 8)


# ---------------------------------------------------------------------------------------
# folder.py: scanning
# ---------------------------------------------------------------------------------------


def test_scan_images(tree):
    found = scan_images(tree)
    assert found == sorted(GOOD_FILES + BAD_FILES)
    assert not any(".hidden" in f or ".dot" in f for f in found)


def test_scan_images_survives_symlink_loop(tree):
    try:
        os.symlink(tree, tree / "a" / "loop")  # a/loop -> root
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not available")
    assert scan_images(tree) == sorted(GOOD_FILES + BAD_FILES)


def test_scan_images_errors(tmp_path):
    with pytest.raises(FGDError, match="no such folder"):
        scan_images(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(FGDError, match="not a folder"):
        scan_images(tmp_path / "file.jpg")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    write(empty / ".hidden" / "x.jpg", solid(RED))
    with pytest.raises(FGDError, match="no images \\(.*jpg.*\\) found under"):
        scan_images(empty)


# ---------------------------------------------------------------------------------------
# folder.py: ImageFolder
# ---------------------------------------------------------------------------------------


def test_image_folder_keeps_good_skips_bad(tree, tmp_path):
    ds = ImageFolder(tree, size=16, cache_dir=tmp_path / "cache", progress=False)
    assert ds.files == sorted(GOOD_FILES)
    assert len(ds) == len(GOOD_FILES)
    assert ds.root == tree.resolve() and ds.root.is_absolute()
    assert ds.layout == "folder" and ds.labels is None and ds.is_train is None
    assert sorted(f for f, _ in ds.skipped) == BAD_FILES
    reasons = dict(ds.skipped)
    assert "empty" in reasons["bad/zero.jpg"] and "truncated" in reasons["bad/trunc.jpg"]
    assert ds.images.shape == (len(GOOD_FILES), 16, 16, 3) and ds.images.dtype == np.uint8
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable
    assert ds.bboxes.shape == (len(GOOD_FILES), 4) and np.isnan(ds.bboxes).all()
    # rows line up with files: compare with decoding each file directly
    for i, rel in enumerate(ds.files):
        np.testing.assert_array_equal(ds.images[i], load_image(tree / rel, 16)[0])


def test_image_folder_errors(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(FGDError, match="no such folder"):
        ImageFolder(tmp_path / "missing", size=16, cache_dir=cache, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FGDError, match="no images"):
        ImageFolder(tmp_path / "empty", size=16, cache_dir=cache, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"")
    (broken / "b.png").write_text("text")
    with pytest.raises(FGDError, match="none of the 2 image files under .* could be read"):
        ImageFolder(broken, size=16, cache_dir=cache, progress=False)


def test_image_folder_labels_from_dirs(tree, tmp_path):
    ds = ImageFolder(tree, size=8, labels_from_dirs=True, cache_dir=tmp_path / "c", progress=False)
    assert ds.labels == [f.split("/")[0] for f in sorted(GOOD_FILES)]
    write(tree / "loose.png", solid(RED))
    with pytest.raises(FGDError, match="not in a sub-folder.*loose.png"):
        ImageFolder(tree, size=8, labels_from_dirs=True, cache_dir=tmp_path / "c", progress=False)


@pytest.fixture()
def small(tmp_path):
    root = tmp_path / "small"
    write(root / "x/red.png", solid(RED, size=(40, 20)))
    write(root / "x/green.png", solid(GREEN, size=(20, 20)))
    write(root / "y/blue.png", solid(BLUE, size=(20, 40)))
    (root / "y/broken.png").write_text("not a png")
    return root


def test_image_folder_labels_csv(small, tmp_path):
    csv = tmp_path / "labels.csv"
    # three spellings: exact, Windows-style with ./, and basename only; the broken
    # file has no label, which is fine because it is skipped anyway
    csv.write_text("file,kind,colour\nx/red.png,warm,r\n.\\x\\green.png,cold,g\nblue.png,cold,b\n")
    ds = ImageFolder(small, size=8, labels_csv=csv, cache_dir=tmp_path / "c", progress=False)
    assert ds.files == ["x/green.png", "x/red.png", "y/blue.png"]
    assert ds.labels == ["cold", "warm", "cold"]  # first column: no 'label'/'class'/'child'
    ds = ImageFolder(small, size=8, labels_csv=csv, label_column="colour",
                     cache_dir=tmp_path / "c", progress=False)
    assert ds.labels == ["g", "r", "b"]
    assert ds.cache_hit  # labels are not part of the decode cache

    csv.write_text("file,label\nx/red.png,warm\ny/blue.png,cold\n")
    with pytest.raises(FGDError, match="1 of 3 images have no label.*x/green.png"):
        ImageFolder(small, size=8, labels_csv=csv, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(FGDError, match="available: label"):
        ImageFolder(small, size=8, labels_csv=csv, label_column="nope",
                    cache_dir=tmp_path / "c", progress=False)


def test_image_folder_bboxes_csv(small, tmp_path):
    csv = tmp_path / "boxes.csv"
    # red.png is 40x20; box (20, 5, 8, 8): r = 6, centre (24, 9) -> crop (18, 3, 30, 15),
    # 12 px -> 24 px: output box (4, 4, 16, 16)
    csv.write_text("file,x,y,w,h\nx/red.png,20,5,8,8\n")
    ds = ImageFolder(small, size=24, bboxes_csv=csv, cache_dir=tmp_path / "c", progress=False)
    row = ds.files.index("x/red.png")
    np.testing.assert_allclose(ds.bboxes[row], [4, 4, 16, 16])
    others = [i for i in range(len(ds)) if i != row]
    assert np.isnan(ds.bboxes[others]).all()
    assert ds.bboxes.dtype == np.float32

    # a box that misses its (20x20) image: that image is skipped, with the reason
    csv.write_text("file,x,y,w,h\nx/red.png,20,5,8,8\nx/green.png,300,300,5,5\n")
    ds = ImageFolder(small, size=24, bboxes_csv=csv, cache_dir=tmp_path / "c", progress=False)
    assert "x/green.png" not in ds.files
    assert "outside the 20x20 image" in dict(ds.skipped)["x/green.png"]

    csv.write_text("file,x,y,w,h\nnowhere/else.png,1,1,4,4\n")
    with pytest.raises(FGDError, match="none of the 1 boxes"):
        ImageFolder(small, size=24, bboxes_csv=csv, cache_dir=tmp_path / "c", progress=False)


def test_image_folder_uses_known_layout_annotations(small, tmp_path, monkeypatch):
    fake = types.SimpleNamespace(
        name="cub",
        files=["x/red.png", "y/broken.png", "y/blue.png"],
        labels=["r", "broken", "b"],
        bboxes=np.array([[20, 5, 8, 8], [0, 0, 1, 1], [np.nan] * 4]),
        is_train=np.array([True, True, False]),
    )
    monkeypatch.setattr(folder_mod, "_read_known_annotations", lambda root: fake)
    ds = ImageFolder(small, size=24, cache_dir=tmp_path / "c", progress=False)
    assert ds.layout == "cub"
    assert ds.files == ["x/red.png", "y/blue.png"]  # its list, not a scan (no green)
    assert ds.labels == ["r", "b"]
    assert ds.is_train.tolist() == [True, False]
    np.testing.assert_allclose(ds.bboxes[0], [4, 4, 16, 16])
    assert np.isnan(ds.bboxes[1]).all()
    assert [f for f, _ in ds.skipped] == ["y/broken.png"]

    # an explicit CSV, or use_annotations=False, means a plain folder
    ds = ImageFolder(small, size=24, use_annotations=False, cache_dir=tmp_path / "c", progress=False)
    assert ds.layout == "folder" and len(ds) == 3


def test_read_known_annotations_none_for_plain_folder(small):
    assert folder_mod._read_known_annotations(small) is None


def test_image_folder_thread_pool_keeps_order(tmp_path):
    # enough files for the thread pool: row i must be the colour written for file i
    root = tmp_path / "many"
    colours = {}
    for i in range(folder_mod._MIN_FILES_FOR_POOL + 9):
        colour = (i * 5 % 256, 255 - i * 3, (i * 37) % 256)
        colours[f"c{i // 10}/img{i:03d}.png"] = colour
        write(root / f"c{i // 10}/img{i:03d}.png", solid(colour, size=(12 + i % 5, 12)))
    ds = ImageFolder(root, size=4, cache_dir=tmp_path / "c", progress=False)
    assert ds.files == sorted(colours)
    for i, rel in enumerate(ds.files):
        assert close(ds.images[i, 2, 2], colours[rel], 1), rel


# ---------------------------------------------------------------------------------------
# folder.py: the decode cache
# ---------------------------------------------------------------------------------------


def _forbid_decoding(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("an image was decoded on a cache hit")

    monkeypatch.setattr(folder_mod, "_decode", boom)
    monkeypatch.setattr(images_mod, "_decode", boom)
    monkeypatch.setattr(images_mod, "load_image", boom)


def test_cache_hit_decodes_nothing(tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = ImageFolder(tree, size=16, cache_dir=cache, progress=False)
    assert not first.cache_hit
    assert first.cache_path.parent == cache and first.cache_path.suffix == ".npy"
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        second = ImageFolder(tree, size=16, cache_dir=cache, progress=False)
    assert second.cache_hit and second.cache_path == first.cache_path
    assert second.files == first.files and second.skipped == first.skipped
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    np.testing.assert_array_equal(second.bboxes, first.bboxes)
    # no temporary files left behind
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]


def test_cache_rebuilt_on_change(small, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = ImageFolder(small, size=8, cache_dir=cache, progress=False)
    row = first.files.index("x/green.png")
    assert close(first.images[row, 4, 4], GREEN, 2)

    # new content and a new mtime -> new key -> decoded again
    target = small / "x/green.png"
    stat = target.stat()
    write(target, solid(BLUE, size=(20, 20)))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = ImageFolder(small, size=8, cache_dir=cache, progress=False)
    assert not second.cache_hit and second.cache_path != first.cache_path
    assert close(second.images[row, 4, 4], BLUE, 2)

    # an added file -> rebuilt and listed
    write(small / "y/new.png", solid(RED))
    third = ImageFolder(small, size=8, cache_dir=cache, progress=False)
    assert not third.cache_hit and "y/new.png" in third.files and len(third) == len(second) + 1

    # another size -> another entry; the same inputs again -> a hit
    fourth = ImageFolder(small, size=6, cache_dir=cache, progress=False)
    assert not fourth.cache_hit and fourth.images.shape[1:] == (6, 6, 3)
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        assert ImageFolder(small, size=8, cache_dir=cache, progress=False).cache_hit


def test_cache_rebuilt_when_sidecar_missing(small, tmp_path):
    cache = tmp_path / "cache"
    first = ImageFolder(small, size=8, cache_dir=cache, progress=False)
    first.cache_path.with_suffix(".json").unlink()  # e.g. a crash between the two writes
    again = ImageFolder(small, size=8, cache_dir=cache, progress=False)
    assert not again.cache_hit and len(again) == len(first)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FGDISCOVER_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("FGDISCOVER_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "fgdiscover"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fgdiscover"


def test_load_image_full_crop_keeps_the_image_and_maps_the_box(tmp_path):
    arr = np.zeros((200, 200, 3), np.uint8)
    arr[:] = BLUE
    arr[60:70, 50:70] = RED  # the object = the box (50, 60, 20, 10)
    path = write(tmp_path / "obj.png", Image.fromarray(arr))
    image, box = load_image(path, 50, bbox=(50, 60, 20, 10), crop="full")
    np.testing.assert_allclose(box, [12.5, 15, 5, 2.5])   # scale 1/4, no crop
    assert close(image[16, 15], RED, 40) and close(image[40, 40], BLUE, 10)
    with pytest.raises(ValueError):
        load_image(path, 50, crop="tight")


def test_image_folder_full_crop_has_its_own_cache_entry(small, tmp_path):
    csv = tmp_path / "boxes.csv"
    csv.write_text("file,x,y,w,h\nx/red.png,20,5,8,8\n")   # red.png is 40x20
    cropped = ImageFolder(small, size=24, bboxes_csv=csv, cache_dir=tmp_path / "c",
                          progress=False)
    full = ImageFolder(small, size=24, bboxes_csv=csv, cache_dir=tmp_path / "c",
                       crop="full", progress=False)
    assert cropped.cache_path != full.cache_path and not full.cache_hit
    row = full.files.index("x/red.png")
    # centre square of a 40x20 image: x in [10, 30), scale 24/20 -> box (12, 6, 9.6, 9.6)
    np.testing.assert_allclose(full.bboxes[row], [12, 6, 9.6, 9.6], atol=1e-4)
