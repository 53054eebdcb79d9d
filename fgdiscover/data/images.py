"""Decode one image file into a square RGB array, optionally cropped around its object.

Whatever a user's folder holds (palette PNGs with transparency, 16-bit grayscale, CMYK
JPEGs, animated GIFs, phone photos rotated by an EXIF tag) comes out as the same thing:
a ``uint8`` array of shape ``(size, size, 3)``. A file that cannot be decoded raises
:class:`ImageDecodeError` with a short reason, so a folder loader can skip it and say why.

Coordinates: boxes are ``(x, y, w, h)`` in pixels of the image *as displayed*, i.e. after
its EXIF orientation has been applied (for the many images without an orientation tag this
is simply the stored pixel grid).
"""

from __future__ import annotations

import math
import os
import warnings
from os import PathLike
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fgdiscover.errors import FGDError

PathArg = Union[str, PathLike]

#: File name endings (lower case) treated as images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# FineGAN crops real images to a square of side 2r with r = 0.75 * the longer bbox side,
# i.e. 1.5x the object, so the object fills the frame but keeps some context.
FINEGAN_CROP_RATIO = 0.75

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# EXIF orientations 5..8 are transposes/rotations by 90 degrees: width and height swap.
_EXIF_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


class ImageDecodeError(FGDError):
    """An image file that cannot be used (empty, truncated, not an image, bad box).

    Parameters
    ----------
    path : str or path-like
        The offending file.
    reason : str
        One short line saying what is wrong, shown to the user next to the file name.
    """

    def __init__(self, path: PathArg, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def finegan_crop_box(
    bbox: Sequence[float], width: int, height: int
) -> tuple[int, int, int, int]:
    """FineGAN's crop around an object box.

    A square of side ``2r``, ``r = int(0.75 * max(w, h))``, centred on the box centre
    (truncated to integers as FineGAN's code does), then clipped to the image, so near
    a border the crop is a rectangle.

    Parameters
    ----------
    bbox : sequence of 4 floats
        ``(x, y, w, h)``: top-left corner, width and height in pixels.
    width, height : int
        Image size in pixels.

    Returns
    -------
    tuple of 4 int
        ``(left, top, right, bottom)`` in pixels, right/bottom exclusive, with
        ``0 <= left < right <= width`` and ``0 <= top < bottom <= height``.

    Raises
    ------
    ValueError
        The box is not 4 finite numbers with ``w, h > 0``, or the crop misses the image.
    """
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"invalid bounding box ({x:g}, {y:g}, {w:g}, {h:g})")
    # max(1, ...): a box under 4/3 px would give r = 0 and an empty crop.
    r = max(1, int(FINEGAN_CROP_RATIO * max(w, h)))
    cx = int((2 * x + w) / 2)
    cy = int((2 * y + h) / 2)
    left, top = max(0, cx - r), max(0, cy - r)
    right, bottom = min(width, cx + r), min(height, cy + r)
    if right <= left or bottom <= top:
        raise ValueError(
            f"bounding box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the "
            f"{width}x{height} image"
        )
    return left, top, right, bottom


def centre_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Largest centred square of a ``width x height`` image as ``(left, top, right, bottom)``."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def transform_bbox(
    bbox: Sequence[float], crop: Sequence[int], size: int
) -> np.ndarray:
    """Map a box from image pixels into the pixels of the resized crop.

    Parameters
    ----------
    bbox : sequence of 4 floats
        ``(x, y, w, h)`` in image pixels.
    crop : sequence of 4 int
        ``(left, top, right, bottom)`` of the region resized to ``size x size``.
    size : int
        Output side in pixels.

    Returns
    -------
    ndarray of shape (4,), float32
        ``(x, y, w, h)`` in output pixels, clipped to ``[0, size]``.
    """
    x, y, w, h = (float(v) for v in bbox)
    left, top, right, bottom = crop
    sx, sy = size / (right - left), size / (bottom - top)
    x0, x1 = np.clip([(x - left) * sx, (x + w - left) * sx], 0, size)
    y0, y1 = np.clip([(y - top) * sy, (y + h - top) * sy], 0, size)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    mode = img.mode
    if mode in _UINT16_MODES or mode in ("I", "F"):
        # Pillow's own conversion clips these to 0..255 instead of rescaling, which
        # turns a 16-bit scan into a white sheet.
        values = np.asarray(img, dtype=np.float64)
        peak = float(np.nanmax(values)) if values.size else 0.0
        if mode in _UINT16_MODES or 255 < peak <= 65535:
            values = values / 257.0
        elif mode == "F" and peak <= 1.0:
            values = values * 255.0
        elif peak > 65535:
            values = values * (255.0 / peak)
        grey = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")


CROPS = ("bbox", "full")


def _decode(
    path: PathArg, size: int, bbox: Sequence[float] | None, crop: str = "bbox"
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`load_image` without its warning filter (safe to call from worker threads)."""
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError(path, "empty file (0 bytes)")
    except OSError as exc:
        raise ImageDecodeError(path, f"cannot open: {exc.strerror or _one_line(exc)}") from None
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc) from None
    except OSError as exc:
        raise ImageDecodeError(path, f"cannot open: {exc.strerror or _one_line(exc)}") from None
    with img:
        try:
            return _decode_opened(img, size, bbox, crop)
        except ImageDecodeError:
            raise
        except Image.DecompressionBombError as exc:
            raise _too_large(path, exc) from None
        except ValueError as exc:
            if bbox is not None and "bounding box" in str(exc):
                raise ImageDecodeError(path, _one_line(exc)) from None
            raise ImageDecodeError(path, f"cannot decode: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001
            # Pillow reports broken files through many types (OSError, SyntaxError,
            # EOFError, struct.error, IndexError, ...); any of them means "skip this file".
            raise ImageDecodeError(path, f"cannot decode: {_one_line(exc)}") from None


def _too_large(path: PathArg, exc: Exception) -> ImageDecodeError:
    return ImageDecodeError(path, f"too large to decode safely ({_one_line(exc)})")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
        return 1


def _crop_for(bbox, width: int, height: int, crop: str = "bbox") -> tuple[int, int, int, int]:
    if bbox is None or crop == "full":
        return centre_crop_box(width, height)
    return finegan_crop_box(bbox, width, height)


def _decode_opened(
    img: Image.Image, size: int, bbox: Sequence[float] | None, crop_mode: str = "bbox"
) -> tuple[np.ndarray, np.ndarray | None]:
    img.seek(0)  # GIF / TIFF / WebP animations: the first frame
    raw_w, raw_h = img.size
    # Size of the full-resolution image once EXIF orientation is applied.
    swapped = _orientation(img) in _SWAPPING_ORIENTATIONS
    full_w, full_h = (raw_h, raw_w) if swapped else (raw_w, raw_h)
    crop = _crop_for(bbox, full_w, full_h, crop_mode)

    # JPEG can decode at 1/2, 1/4 or 1/8 scale directly (DCT scaling): a 12-megapixel
    # photo reduced to 128 px decodes ~10x faster. Ask only for a reduction that keeps
    # the crop at least `size` pixels wide. Other formats ignore draft().
    reduction = min(crop[2] - crop[0], crop[3] - crop[1]) / size
    if reduction >= 2:
        img.draft(None, (math.ceil(raw_w / reduction), math.ceil(raw_h / reduction)))
    # Decompression bombs: Pillow refuses at open() only above twice its limit. Refuse
    # anything whose pixels, as they would be decoded (after JPEG's draft reduction), exceed
    # the limit, before a single pixel is allocated.
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.size[0] * img.size[1] > limit:
        raise Image.DecompressionBombError(
            f"{img.size[0]}x{img.size[1]} = {img.size[0] * img.size[1]} pixels to decode, "
            f"limit {limit} (PIL.Image.MAX_IMAGE_PIXELS)")
    # Decode now: Pillow is lazy, and only load() notices truncated data.
    img.load()
    drawn_w, drawn_h = img.size
    scale_x, scale_y = raw_w / drawn_w, raw_h / drawn_h

    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001 - unreadable orientation: keep the stored pixels
        pass
    if img.size != (drawn_w, drawn_h):
        scale_x, scale_y = scale_y, scale_x
        full_w, full_h = raw_h, raw_w
    else:
        full_w, full_h = raw_w, raw_h
    crop = _crop_for(bbox, full_w, full_h, crop_mode)

    rgb = _to_rgb(img)
    left, top, right, bottom = crop
    # resize(box=...) crops and resamples in one pass; float coordinates map the
    # full-resolution crop onto the (possibly reduced) decoded pixels.
    out = rgb.resize(
        (size, size),
        Image.Resampling.BICUBIC,  # area-aware when shrinking, i.e. antialiased
        box=(left / scale_x, top / scale_y, right / scale_x, bottom / scale_y),
    )
    array = np.asarray(out, dtype=np.uint8)
    if array.shape != (size, size, 3):  # defensive: never hand out a wrong shape
        raise ImageDecodeError(getattr(img, "filename", "?"), f"decoded to shape {array.shape}")
    box_out = None if bbox is None else transform_bbox(bbox, crop, size)
    return np.ascontiguousarray(array), box_out


def load_image(
    path: PathArg, size: int, bbox: Sequence[float] | None = None, *, crop: str = "bbox"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an image file into a ``size x size`` RGB array.

    Steps: open with Pillow, take the first frame, apply the EXIF orientation, convert
    any mode to RGB (alpha composited on white, 16-bit rescaled), crop, resize with an
    antialiased bicubic filter. With ``bbox`` and ``crop="bbox"`` the crop is
    :func:`finegan_crop_box`; without a box, or with ``crop="full"`` (the box is then only
    carried into output pixels), the largest centred square.

    Parameters
    ----------
    path : str or path-like
        Image file.
    size : int
        Output side in pixels.
    bbox : sequence of 4 floats, optional
        Object box ``(x, y, w, h)`` in pixels of the (EXIF-oriented) image.

    Returns
    -------
    image : ndarray of shape (size, size, 3), uint8
        RGB pixels.
    bbox_out : ndarray of shape (4,), float32, or None
        ``bbox`` in output pixels ``(x, y, w, h)``, clipped to the output; None without
        ``bbox``.

    Raises
    ------
    ImageDecodeError
        Missing, empty, truncated or corrupt file, not an image, too large for
        Pillow's decompression-bomb limit, or a box that misses the image.
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    with warnings.catch_warnings():
        # Pillow only warns between Image.MAX_IMAGE_PIXELS and twice it; _decode_opened
        # refuses those itself unless JPEG's draft() decodes them under the limit.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _decode(path, size, bbox, crop)
