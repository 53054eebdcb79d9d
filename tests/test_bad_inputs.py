"""What a real folder holds: broken, odd and hostile files. Each is used correctly or
skipped and listed in skipped.csv with its reason; the run completes and says how many
were skipped. The image loader is fuzzed with random and mutated bytes."""

from __future__ import annotations

import csv
import io
import os
import resource
import signal
import struct
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fgdiscover.cli import cli
from fgdiscover.data.folder import ImageFolder
from fgdiscover.data.images import ImageDecodeError, load_image
from fgdiscover.pipeline import write_skipped

pytestmark = pytest.mark.usefixtures("one_thread")
rng = np.random.default_rng(0)


def encoded(fmt: str, size=(32, 32), **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(
        buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header announcing width x height 1-bit pixels, with 64 bytes of data:
    tiny on disk, gigabytes once decoded."""
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def animated_gif() -> bytes:
    buf = io.BytesIO()
    red, blue = Image.new("P", (24, 24), 0), Image.new("P", (24, 24), 1)
    for frame in (red, blue):
        frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    red.save(buf, "GIF", save_all=True, append_images=[blue], duration=100)
    return buf.getvalue()


def rotated_jpeg() -> bytes:
    # stored 40x20, red left / blue right; EXIF orientation 6 displays it 20x40, red on top
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20], arr[:, 20:] = (255, 0, 0), (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def palette_with_transparency() -> bytes:
    img = Image.new("P", (24, 24), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (12, 0, 24, 24))
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def to_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


JPEG, PNG = encoded("JPEG"), encoded("PNG")


def corrupt_middle(data: bytes) -> bytes:
    cut = bytearray(data)
    mid = len(cut) // 2
    cut[mid:mid + 200] = rng.integers(0, 256, len(cut[mid:mid + 200]), dtype=np.uint8).tobytes()
    return bytes(cut)


def broken_png_header() -> bytes:
    bad = bytearray(PNG)
    bad[29] ^= 0xFF  # IHDR's CRC
    return bytes(bad)


# name -> (bytes, expected: "used", "skipped: <reason fragment>" or "either")
CASES = {
    "corrupt.jpg": (corrupt_middle(JPEG), "either"),
    "corrupt-data.png": (corrupt_middle(PNG), "either"),
    "corrupt-header.png": (broken_png_header(), "skipped: "),
    "truncated.jpg": (JPEG[: len(JPEG) // 2], "skipped: truncated"),
    "truncated.png": (PNG[: len(PNG) // 2], "skipped: truncated"),
    "zero.jpg": (b"", "skipped: empty"),
    "text.png": (b"hello, I am text, not a picture\n" * 4, "skipped: not an image"),
    "gray16.png": (to_bytes(Image.fromarray(np.full((20, 20), 32896, np.uint16)), "PNG"), "used"),
    "cmyk.jpg": (to_bytes(Image.new("CMYK", (20, 20), (255, 0, 0, 0)), "JPEG"), "used"),
    "palette-alpha.png": (palette_with_transparency(), "used"),
    "animated.gif": (animated_gif(), "used"),
    "bomb.png": (png_bomb(100_000, 100_000), "skipped: too large"),
    "one-pixel.png": (to_bytes(Image.new("RGB", (1, 1), (10, 200, 10)), "PNG"), "used"),
    "exif-rotated.jpg": (rotated_jpeg(), "used"),
    "vögel, 1 bird \"α\".png": (encoded("PNG"), "used"),
    "with space.jpg": (encoded("JPEG"), "used"),
}


def build_bad_folder(root: Path, good: Path, n_good: int = 12) -> dict[str, str]:
    """``root`` with ``n_good`` synthetic images, every case of CASES, a symlink loop (a
    file linking to itself and a folder linking to its parent) and an unreadable file;
    returns the expected outcome per file."""
    root.mkdir(parents=True)
    expected = {}
    for i, f in enumerate(sorted(good.glob("images/**/*.png"))[:n_good]):
        (root / f"good {i:02d}.png").write_bytes(f.read_bytes())
        expected[f"good {i:02d}.png"] = "used"
    for name, (data, outcome) in CASES.items():
        (root / name).write_bytes(data)
        expected[name] = outcome
    os.symlink("loop.jpg", root / "loop.jpg")
    expected["loop.jpg"] = "skipped: symbolic links"
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder loop: scanned once
    (root / "locked.png").write_bytes(encoded("PNG"))
    os.chmod(root / "locked.png", 0)
    expected["locked.png"] = "skipped: Permission denied"
    return expected


@contextmanager
def unreadable_as_root(path: Path):
    """chmod 000 does not stop root: make Pillow's open of ``path`` fail as it would."""
    if os.geteuid() != 0:
        yield
        return
    real_open = Image.builtins.open

    def guarded(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(file, *args, **kwargs)

    Image.builtins.open = guarded
    try:
        yield
    finally:
        Image.builtins.open = real_open


def check_outcomes(used: list[str], skipped: dict[str, str], expected: dict[str, str]):
    for name, outcome in expected.items():
        if outcome == "used":
            assert name in used, (name, skipped.get(name))
        elif outcome.startswith("skipped: "):
            assert name in skipped, name
            assert outcome[len("skipped: "):].lower() in skipped[name].lower(), (name, skipped[name])
        else:
            assert (name in used) != (name in skipped), name
    assert set(used) | set(skipped) == set(expected)


def test_every_bad_input_is_used_or_skipped_with_its_reason(tmp_path, synth_small):
    data = tmp_path / "data"
    expected = build_bad_folder(data, synth_small.root)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with unreadable_as_root(data / "locked.png"):
        ds = ImageFolder(data, size=16, cache_dir=tmp_path / "cache", progress=False)
    # the 10-gigapixel PNG was refused from its header, never allocated (kB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start < 300_000
    skipped = dict(ds.skipped)
    check_outcomes(ds.files, skipped, expected)
    assert all("\n" not in why for why in skipped.values())

    def pixels(name):
        return ds.images[ds.files.index(name)].astype(int)

    assert np.abs(pixels("gray16.png")[8, 8] - 128).max() <= 1  # rescaled, not clipped
    assert np.abs(pixels("cmyk.jpg")[8, 8] - (0, 255, 255)).max() <= 40
    pal = pixels("palette-alpha.png")
    assert np.abs(pal[8, 1] - 255).max() <= 2 and np.abs(pal[8, 14] - (0, 255, 0)).max() <= 2
    assert np.abs(pixels("animated.gif")[8, 8] - (255, 0, 0)).max() <= 10  # first frame
    assert (pixels("one-pixel.png") == (10, 200, 10)).all()
    rot = pixels("exif-rotated.jpg")  # displayed orientation: red on top, blue below
    assert rot[2, 8, 0] > 200 and rot[2, 8, 2] < 60 and rot[13, 8, 2] > 200


def test_cluster_run_completes_lists_skipped_files_and_counts_them(tmp_path, synth_small):
    data = tmp_path / "data"
    expected = build_bad_folder(data, synth_small.root)
    with unreadable_as_root(data / "locked.png"):
        r = CliRunner().invoke(cli, ["cluster", str(data), "--k", "4", "--k-parent", "2",
                                     "--preset", "tiny", "--no-report", "--out",
                                     str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    listed = pd.read_csv(tmp_path / "run/skipped.csv", keep_default_na=False)
    assert list(listed.columns) == ["file", "reason"]
    skipped = dict(zip(listed["file"], listed["reason"]))
    used = pd.read_csv(tmp_path / "run/assignments.csv")["file"].tolist()
    check_outcomes(used, skipped, expected)
    assert f"{len(skipped)} files skipped (listed in " in r.output


def test_skipped_csv_quotes_commas_quotes_and_unicode(tmp_path):
    rows = [("a, b \"c\".png", "cannot decode: x, y"), ("ü/ñ 漢.jpg", "empty file (0 bytes)")]
    path = write_skipped(tmp_path, rows)
    with open(path, newline="", encoding="utf-8") as f:
        assert [tuple(r) for r in csv.reader(f)] == [("file", "reason"), *rows]
    assert write_skipped(tmp_path, []) is None and not path.exists()  # no stale list


def test_unreadable_file_gives_permission_reason(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(PNG)
    os.chmod(path, 0)
    with unreadable_as_root(path), pytest.raises(ImageDecodeError, match="Permission denied"):
        load_image(path, 16)


# ------------------------------------------------------------------------------ fuzzing
# The loader must return a (16, 16, 3) uint8 array or raise ImageDecodeError: no other
# exception, no hang (an alarm fails any example taking over 10 s), no memory blow-up.

SEEDS = {".png": PNG, ".jpg": JPEG, ".gif": animated_gif(),
         ".bmp": to_bytes(Image.new("RGB", (8, 8), (1, 2, 3)), "BMP")}


@contextmanager
def alarm(seconds: int):
    def hung(*_):
        raise AssertionError(f"load_image took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def load_or_refuse(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            with alarm(10):
                image, box = load_image(path, 16)
        except ImageDecodeError as e:
            assert e.reason and "\n" not in e.reason
            return
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8 and box is None


FUZZ = settings(max_examples=400, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(sorted(SEEDS)))
def test_fuzz_random_bytes(data, suffix):
    load_or_refuse(data, suffix)


@st.composite
def mutated(draw):
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80]))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data), suffix


@FUZZ
@given(case=mutated())
def test_fuzz_mutated_valid_files(case):
    load_or_refuse(*case)
