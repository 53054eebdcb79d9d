"""A synthetic hierarchical data set: parent = shape, child = appearance, background free.

Every image holds one object on a background drawn independently of it:

* the **parent** is the object's shape family (disc, square, triangle, star, plus,
  crescent, heart, ring, diamond, arrow, hourglass, hexagon, tee, ell: up to 14);
* the **child** is its appearance, a hue pair and a pattern (solid, stripes, dots,
  checker, two-tone), distinct for every global child id. Child ids are global and tied
  to the parent as in FineGAN: ``child // children_per_parent == parent``. The hues are
  interleaved across parents (every parent's children spread over the colour wheel), so
  colour alone does not group images by parent;
* the **background** is one of 8 classes (a colour family and a texture: gradient,
  line clutter, mottled noise, stripes, tiles, radial glow, soft blobs, speckle), with
  random variation, drawn independently of the object.

The object sits at a random position, fully inside the image, with a random scale (its
larger side spans 40-65 % of the image before a rotation of at most 15 degrees) and a thin
dark rim so that it stays visible on every background. Shapes and patterns are drawn at
4x and averaged down (anti-aliased).

The backgrounds dominate the pixel variance on purpose: clustering raw pixels finds the
backgrounds, not the fine-grained classes, which is the failure that disentangling the
background, shape and appearance codes is meant to fix. Measured with
``KMeans(n_clusters=12, n_init=4, random_state=0)`` on the flattened float pixels of
``make_synthetic(n=3000, n_parent=4, children_per_parent=3, seed=0)``:

==========  ==============  ==========  =========
image size  NMI background  NMI parent  NMI child
==========  ==============  ==========  =========
32 px       0.873           0.054       0.086
64 px       0.876           0.052       0.090
==========  ==============  ==========  =========

(``random_state`` 1 and 2 give 0.87-0.89 / 0.03-0.06 / 0.06-0.09.) Writing those 3000 images
takes about 2.4 s at 32 px and 3.3 s at 64 px in one process.

Layout written by :func:`make_synthetic` into ``out``::

    images/00000.png ...   zero-padded to the number of digits of n
    labels.csv             file,background,parent,child   (file relative to out)
    bboxes.csv             file,x,y,w,h                   (tight object box, pixels)
    synthetic.json         the arguments and "complete"; marks the folder as a synthetic set
"""

from __future__ import annotations

import colorsys
import csv
import json
import math
import operator
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fgdiscover.errors import FGDError

__all__ = [
    "N_BACKGROUNDS",
    "SHAPES",
    "MAX_CHILDREN_PER_PARENT",
    "PATTERNS",
    "BACKGROUND_NAMES",
    "SyntheticSet",
    "RenderedItem",
    "make_synthetic",
    "read_synthetic",
    "draw_labels",
    "render_item",
    "object_mask",
    "child_appearance",
]

N_BACKGROUNDS = 8
MAX_CHILDREN_PER_PARENT = 24
MIN_SIZE, MAX_SIZE = 16, 1024
SUPERSAMPLE = 4
SCALE_RANGE = (0.40, 0.65)
MAX_ROTATION_DEG = 15.0

_MANIFEST = "synthetic.json"
_GENERATOR = "fgdiscover.data.synthetic"
_FORMAT_VERSION = 1
_OWN_ENTRIES = frozenset({"images", "labels.csv", "bboxes.csv", _MANIFEST})


# --------------------------------------------------------------------------- shapes
# Each shape is a list of (polygon, fill) in unit coordinates (y up, max |coord| = 1);
# fill 0 cuts a hole. Order matters: the first shapes are the most distinct at 32 px,
# because small sets (P = 4) use only them.


def _circle(r: float = 1.0, cx: float = 0.0, cy: float = 0.0, n: int = 48) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _regular(n_vertices: int, r: float = 1.0, phase: float = 0.0) -> np.ndarray:
    t = phase + np.arange(n_vertices) * 2.0 * np.pi / n_vertices
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _heart(n: int = 64) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.abs(pts).max()


def _poly(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


_SHAPE_PARTS: dict[str, list[tuple[np.ndarray, int]]] = {
    "disc": [(_circle(), 1)],
    "square": [(_poly(-1, -1, 1, -1, 1, 1, -1, 1), 1)],
    "triangle": [(_poly(0, 0.866, 1, -0.866, -1, -0.866) / 0.866 * np.array([0.866, 1.0]), 1)],
    "star": [(_star(), 1)],
    "plus": [(_poly(-0.33, 1, 0.33, 1, 0.33, 0.33, 1, 0.33, 1, -0.33, 0.33, -0.33,
                    0.33, -1, -0.33, -1, -0.33, -0.33, -1, -0.33, -1, 0.33, -0.33, 0.33), 1)],
    "crescent": [(_circle(), 1), (_circle(0.82, 0.42, 0.22), 0)],
    "heart": [(_heart(), 1)],
    "ring": [(_circle(), 1), (_circle(0.52), 0)],
    "diamond": [(_poly(0, 1, 0.72, 0, 0, -1, -0.72, 0), 1)],
    "arrow": [(_poly(-1, 0.28, 0.1, 0.28, 0.1, 0.8, 1, 0, 0.1, -0.8, 0.1, -0.28, -1, -0.28), 1)],
    "hourglass": [(_poly(-0.8, 1, 0.8, 1, 0.14, 0, 0.8, -1, -0.8, -1, -0.14, 0), 1)],
    "hexagon": [(_regular(6), 1)],
    "tee": [(_poly(-1, 1, 1, 1, 1, 0.45, 0.3, 0.45, 0.3, -1, -0.3, -1, -0.3, 0.45, -1, 0.45), 1)],
    "ell": [(_poly(-0.75, 1, -0.15, 1, -0.15, -0.4, 0.75, -0.4, 0.75, -1, -0.75, -1), 1)],
}
SHAPES: tuple[str, ...] = tuple(_SHAPE_PARTS)


# --------------------------------------------------------------------- appearances
_N_HUES = 12
PATTERNS = ("solid", "stripes", "dots", "checker", "two-tone")
# Tiers only separate children that share a hue step and a pattern (large sets):
# (saturation, value, secondary-hue offset in degrees, hue shift in half steps).
# No offset is 180: with it, hue h's pair would be hue h+180's pair with the colours swapped.
_TIERS = (
    (0.85, 0.95, 150, 0), (0.90, 0.62, 120, 1), (0.50, 1.00, 240, 0), (1.00, 0.80, 60, 1),
    (0.65, 0.78, 300, 0), (0.95, 1.00, 210, 1), (0.40, 0.85, 90, 0), (0.75, 0.50, 270, 1),
)


@dataclass(frozen=True)
class _Appearance:
    hue_step: int
    pattern: int
    tier: int

    def colours(self) -> tuple[np.ndarray, np.ndarray]:
        sat, val, offset, shift = _TIERS[self.tier]
        hue = (self.hue_step + 0.5 * shift) / _N_HUES
        primary = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
        # a slightly different value keeps the pattern visible when the hues are close
        secondary = colorsys.hsv_to_rgb((hue + offset / 360.0) % 1.0, sat, min(1.0, val * 0.9 + 0.1))
        return np.asarray(primary, np.float32), np.asarray(secondary, np.float32)


@lru_cache(maxsize=None)
def _appearance_table(n_parent: int, children_per_parent: int) -> tuple[_Appearance, ...]:
    """One distinct appearance per global child id, hues interleaved across parents."""
    c = children_per_parent
    used: set[tuple[int, int, int]] = set()
    table = []
    for parent in range(n_parent):
        for j in range(c):
            # spread a parent's children over the wheel, and shift each parent by one step,
            # so that every parent uses every part of the wheel (colour is not the parent)
            base = (j * _N_HUES) // c if c <= _N_HUES else j % _N_HUES
            hue = (base + parent) % _N_HUES
            pattern = (j + 2 * parent) % len(PATTERNS)
            found = None
            for tier in range(len(_TIERS)):
                for dp in range(len(PATTERNS)):
                    key = (hue, (pattern + dp) % len(PATTERNS), tier)
                    if key not in used:
                        found = key
                        break
                if found:
                    break
            assert found is not None, "appearance space exhausted"  # 480 > 14 * 24
            used.add(found)
            table.append(_Appearance(*found))
    return tuple(table)


def child_appearance(child: int, n_parent: int, children_per_parent: int) -> dict:
    """Describe a global child id: its pattern name and its two RGB colours in [0, 1].

    Returns
    -------
    dict with keys ``pattern`` (str), ``primary`` and ``secondary`` (tuples of 3 floats).
    """
    app = _appearance_table(n_parent, children_per_parent)[child]
    primary, secondary = app.colours()
    return {
        "pattern": PATTERNS[app.pattern],
        "primary": tuple(float(v) for v in primary),
        "secondary": tuple(float(v) for v in secondary),
    }


def _pattern_mask(pattern: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the secondary colour goes, in object coordinates (u, v scaled by the radius)."""
    if pattern == 0:  # solid
        return np.zeros(u.shape, dtype=bool)
    if pattern == 1:  # diagonal stripes, 4 to 5 bands across the object
        return _odd_cell((u + v) * (1 / math.sqrt(2) / 0.25))
    if pattern == 2:  # dots on a grid of spacing 0.66
        du, dv = u * (1 / 0.66), v * (1 / 0.66)
        du -= np.rint(du)
        dv -= np.rint(dv)
        return du * du + dv * dv < (0.2 / 0.66) ** 2
    if pattern == 3:  # checker
        return _odd_cell(u * (1 / 0.55)) ^ _odd_cell(v * (1 / 0.55))
    return v < 0.0  # two-tone: lower half secondary


def _odd_cell(t: np.ndarray) -> np.ndarray:
    """floor(t) is odd; (floor is cheaper than an integer cast and a modulo)."""
    h = t * 0.5
    return h - np.floor(h) >= 0.5


# -------------------------------------------------------------------- backgrounds
BACKGROUND_NAMES = (
    "dusk gradient", "sand with lines", "mottled meadow", "brick stripes",
    "slate tiles", "lilac glow", "lagoon blobs", "sunset speckle",
)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], each of shape (size, size)."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(t, t)  # x varies along columns, y along rows


def _lerp(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    return c0 + (c1 - c0) * t[..., None]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    g = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(g, mode="F").resize((size, size), Image.BICUBIC))


def _background(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Render background class ``kind``: float32 RGB of shape (size, size, 3), ~[0, 1]."""
    x, y = _grid(size)
    # per-image colour variation: brightness and a small tint, shared by both colours
    gain = rng.uniform(0.85, 1.15)
    tint = rng.normal(0.0, 0.025, 3).astype(np.float32)

    def col(*rgb: float) -> np.ndarray:
        return np.asarray(rgb, np.float32) * gain + tint

    if kind == 0:  # dusk: navy to steel blue, top to bottom
        phi = np.deg2rad(90 + rng.uniform(-20, 20))
        t = np.clip((x - 0.5) * np.cos(phi) + (y - 0.5) * np.sin(phi) + 0.5, 0, 1)
        img = _lerp(col(0.07, 0.09, 0.26), col(0.32, 0.42, 0.64), t)
    elif kind == 1:  # pale sand with thin brown lines (clutter that is no closed shape)
        img = np.broadcast_to(col(0.86, 0.80, 0.62), (size, size, 3)).copy()
        f = 2
        canvas = Image.new("L", (size * f, size * f), 0)
        draw = ImageDraw.Draw(canvas)
        width = max(1, round(f * size / 64))
        for _ in range(rng.integers(6, 12)):
            p = rng.uniform(-0.1, 1.1, 4) * size * f
            draw.line([(p[0], p[1]), (p[2], p[3])], fill=int(rng.integers(120, 256)), width=width)
        a = np.asarray(canvas, np.float32).reshape(size, f, size, f).mean((1, 3)) / 255
        img = _lerp(img, col(0.50, 0.40, 0.26), a)
    elif kind == 2:  # meadow: mottled greens
        t = 0.65 * _smooth_noise(rng, size, 5) + 0.35 * _smooth_noise(rng, size, 9)
        img = _lerp(col(0.14, 0.34, 0.10), col(0.42, 0.60, 0.22), np.clip(t, 0, 1))
    elif kind == 3:  # brick: wide soft diagonal stripes
        phi = np.deg2rad(rng.uniform(30, 60))
        period = rng.uniform(0.18, 0.26)
        s = (x * np.cos(phi) + y * np.sin(phi)) / period + rng.uniform(0, 1)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * s)
        img = _lerp(col(0.50, 0.15, 0.10), col(0.68, 0.30, 0.19), t)
    elif kind == 4:  # slate: low-contrast tiles with a soft light from one side
        tile = rng.uniform(0.2, 0.3)
        ox, oy = rng.uniform(0, tile, 2)
        chk = ((np.floor((x + ox) / tile) + np.floor((y + oy) / tile)) % 2).astype(np.float32)
        light = 0.5 + 0.5 * (x if rng.random() < 0.5 else 1 - x)
        img = _lerp(col(0.36, 0.38, 0.41), col(0.52, 0.54, 0.57), 0.35 * chk + 0.65 * light)
    elif kind == 5:  # lilac: radial glow from a random centre
        cx, cy = rng.uniform(0.25, 0.75, 2)
        r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.6, 0.8)
        img = _lerp(col(0.84, 0.76, 0.92), col(0.50, 0.40, 0.60), np.clip(r, 0, 1))
    elif kind == 6:  # lagoon: teal with small soft light blobs
        img = np.broadcast_to(col(0.08, 0.40, 0.43), (size, size, 3)).copy()
        k = rng.integers(10, 20)
        cx, cy = rng.random((2, k, 1), dtype=np.float32)
        sig = rng.uniform(0.015, 0.04, (k, 1)).astype(np.float32)
        amp = rng.uniform(0.4, 0.8, (k, 1)).astype(np.float32)
        t = x[0]  # pixel centres along one axis
        # a gaussian blob is separable: sum_k amp_k * gy_k(y) * gx_k(x) is one matrix product
        gx = np.exp(-((t - cx) ** 2) / (2 * sig * sig))
        gy = np.exp(-((t - cy) ** 2) / (2 * sig * sig)) * amp
        img = _lerp(img, col(0.36, 0.68, 0.64), np.clip(gy.T @ gx, 0, 1))
    else:  # sunset: orange to red, left to right, with fine speckle
        phi = np.deg2rad(rng.uniform(-20, 20))
        t = np.clip((x - 0.5) * np.cos(phi) + (y - 0.5) * np.sin(phi) + 0.5, 0, 1)
        img = _lerp(col(0.94, 0.60, 0.20), col(0.78, 0.28, 0.12), t)
        img = img + rng.normal(0, 0.04, (size, size, 1)).astype(np.float32)
    return img.astype(np.float32, copy=False)


# ------------------------------------------------------------------------ objects
@dataclass(frozen=True)
class _Placement:
    """Where the object goes: centre and half-size in pixels, rotation in radians."""

    cx: float
    cy: float
    radius: float
    angle: float


def _transform(points: np.ndarray, pl: _Placement) -> np.ndarray:
    """Unit coordinates (y up) -> image pixel coordinates (y down), shape (n, 2)."""
    c, s = math.cos(pl.angle), math.sin(pl.angle)
    u, v = points[:, 0], points[:, 1]
    return np.stack([pl.cx + pl.radius * (c * u - s * v), pl.cy - pl.radius * (s * u + c * v)], 1)


def _place(rng: np.random.Generator, parent: int, size: int) -> _Placement:
    """Random scale, rotation and a position that keeps the object 1 px inside the image."""
    radius = rng.uniform(*SCALE_RANGE) * size / 2
    angle = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    pts = _transform(_SHAPE_PARTS[SHAPES[parent]][0][0], _Placement(0.0, 0.0, radius, angle))
    lo, hi = pts.min(0), pts.max(0)
    # lo < 0 < hi; centre range so that centre + lo >= 1 and centre + hi <= size - 1
    cx = rng.uniform(1 - lo[0], size - 1 - hi[0])
    cy = rng.uniform(1 - lo[1], size - 1 - hi[1])
    return _Placement(cx, cy, radius, angle)


def _object_layers(parent: int, pl: _Placement, size: int, rim_px: float):
    """Rasterise the object at SUPERSAMPLE x over its box.

    Returns (y0, x0, hi_mask (h*F, w*F) bool, rim (h*F, w*F) bool, u, v (h*F, w*F)),
    where (y0, x0) is the box's top-left pixel in the final image.
    """
    f = SUPERSAMPLE
    parts = [(_transform(p, pl), fill) for p, fill in _SHAPE_PARTS[SHAPES[parent]]]
    outer = parts[0][0]
    x0 = max(0, int(math.floor(outer[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(outer[:, 1].min())) - 1)
    x1 = min(size, int(math.ceil(outer[:, 0].max())) + 1)
    y1 = min(size, int(math.ceil(outer[:, 1].max())) + 1)
    canvas = Image.new("L", ((x1 - x0) * f, (y1 - y0) * f), 0)
    draw = ImageDraw.Draw(canvas)
    for pts, fill in parts:
        # hi-res pixel k has its centre at final coordinate x0 + (k + 0.5) / f
        hi = (pts - np.array([x0, y0])) * f - 0.5
        draw.polygon([tuple(p) for p in hi], fill=255 * fill)
    mask = np.asarray(canvas) > 0
    # rim = mask minus its erosion by r hi-res pixels (separable square min)
    r = max(1, int(round(rim_px * f)))
    core = mask.copy()
    for axis in (0, 1):
        shifted = core.copy()
        for d in range(1, r + 1):
            if axis == 0:
                shifted[d:] &= core[:-d]
                shifted[:-d] &= core[d:]
                shifted[:d] = False
                shifted[-d:] = False
            else:
                shifted[:, d:] &= core[:, :-d]
                shifted[:, :-d] &= core[:, d:]
                shifted[:, :d] = False
                shifted[:, -d:] = False
        core = shifted
    rim = mask & ~core
    hy, hx = mask.shape
    gx = (x0 + (np.arange(hx, dtype=np.float32) + 0.5) / f - pl.cx) / pl.radius
    gy = (pl.cy - y0 - (np.arange(hy, dtype=np.float32) + 0.5) / f) / pl.radius  # y up
    c, s = math.cos(pl.angle), math.sin(pl.angle)
    u = c * gx[None, :] + s * gy[:, None]
    v = -s * gx[None, :] + c * gy[:, None]
    return y0, x0, mask, rim, u, v


def _block_count(a: np.ndarray) -> np.ndarray:
    """Count true values in SUPERSAMPLE x SUPERSAMPLE blocks: (h*F, w*F) bool -> (h, w) float32."""
    f = SUPERSAMPLE
    x = a.view(np.uint8)
    rows = x[0::f].copy()
    for k in range(1, f):
        rows += x[k::f]
    out = rows[:, 0::f].copy()
    for k in range(1, f):
        out += rows[:, k::f]
    return out.astype(np.float32)


def _rim_px(size: int) -> float:
    return max(0.5, size / 64)


# ----------------------------------------------------------------------- per item
@dataclass(frozen=True)
class RenderedItem:
    """One rendered image and what was drawn in it.

    Attributes
    ----------
    image : ndarray of shape (size, size, 3), uint8
        The image as written to disk.
    background_image : ndarray of shape (size, size, 3), uint8
        The same background without the object.
    mask : ndarray of shape (size, size), float32
        Anti-aliased object coverage in [0, 1]; 0 exactly where the object is absent.
    bbox : ndarray of shape (4,), int64
        Tight box ``x, y, w, h`` of ``mask > 0``.
    """

    image: np.ndarray
    background_image: np.ndarray
    mask: np.ndarray
    bbox: np.ndarray


def _item_rng(seed: int, index: int) -> np.random.Generator:
    # one independent stream per image: any image can be re-rendered alone
    return np.random.default_rng([seed, 1, index])


def render_item(index: int, *, background: int, child: int, n_parent: int = 4,
                children_per_parent: int = 3, size: int = 64, seed: int = 0) -> RenderedItem:
    """Render image ``index`` of a synthetic set exactly as :func:`make_synthetic` writes it.

    Parameters
    ----------
    index : int
        Position of the image in the set (selects its random stream).
    background, child : int
        Background class in ``[0, N_BACKGROUNDS)`` and global child id in
        ``[0, n_parent * children_per_parent)``; the parent is ``child // children_per_parent``.
    n_parent, children_per_parent, size, seed : int
        As in :func:`make_synthetic`.

    Returns
    -------
    RenderedItem
    """
    n_child = n_parent * children_per_parent
    if not 0 <= background < N_BACKGROUNDS or not 0 <= child < n_child:
        raise ValueError(f"background must be in [0, {N_BACKGROUNDS}) and child in [0, {n_child}), "
                         f"got {background} and {child}")
    parent = child // children_per_parent
    rng = _item_rng(seed, index)
    bg = _background(background, rng, size)
    pl = _place(rng, parent, size)
    y0, x0, hi_mask, rim, u, v = _object_layers(parent, pl, size, _rim_px(size))

    app = _appearance_table(n_parent, children_per_parent)[child]
    primary, secondary = app.colours()
    second = _pattern_mask(app.pattern, u, v) & hi_mask & ~rim
    # fractions of each final pixel covered by the object, its secondary colour, its rim
    cover = _block_count(hi_mask) * (1.0 / SUPERSAMPLE ** 2)
    frac2 = _block_count(second) * (1.0 / SUPERSAMPLE ** 2)
    frac_rim = _block_count(rim) * (1.0 / SUPERSAMPLE ** 2)
    # dark rim: the object stays visible on any background
    paint = ((cover - frac2 - frac_rim)[..., None] * primary + frac2[..., None] * secondary
             + frac_rim[..., None] * (0.3 * primary))

    h, w = cover.shape
    img = bg.copy()
    region = img[y0:y0 + h, x0:x0 + w]
    img[y0:y0 + h, x0:x0 + w] = region * (1 - cover[..., None]) + paint
    mask = np.zeros((size, size), np.float32)
    mask[y0:y0 + h, x0:x0 + w] = cover

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    bbox = np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], np.int64)
    return RenderedItem(_to_uint8(img), _to_uint8(bg), mask, bbox)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def object_mask(index: int, *, background: int, child: int, n_parent: int = 4,
                children_per_parent: int = 3, size: int = 64, seed: int = 0) -> np.ndarray:
    """The object's anti-aliased coverage in image ``index``, shape (size, size), float32.

    Same arguments as :func:`render_item`; ``mask > 0`` is exactly the object's pixels, and
    its tight box is the row of ``bboxes.csv``.
    """
    return render_item(index, background=background, child=child, n_parent=n_parent,
                       children_per_parent=children_per_parent, size=size, seed=seed).mask


def draw_labels(n: int, n_parent: int = 4, children_per_parent: int = 3,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of a synthetic set: balanced children and backgrounds, drawn independently.

    Every child appears ``n // K`` or ``n // K + 1`` times (K = n_parent *
    children_per_parent), so all appear once ``n >= K``; likewise the backgrounds.

    Returns
    -------
    background, parent, child : ndarrays of shape (n,), int64
    """
    rng = np.random.default_rng([seed, 0])
    k = n_parent * children_per_parent
    child = rng.permutation(np.arange(n) % k)
    background = rng.permutation(np.arange(n) % N_BACKGROUNDS)
    child = child.astype(np.int64)
    # tied codes: child k belongs to parent k // children_per_parent
    return background.astype(np.int64), child // children_per_parent, child


# ------------------------------------------------------------------------ the set
@dataclass(frozen=True)
class SyntheticSet:
    """A synthetic set on disk.

    Attributes
    ----------
    root : Path
        The folder; ``files`` are relative to it.
    files : ndarray of shape (n,), str
        ``images/00000.png`` ...
    background, parent, child : ndarrays of shape (n,), int64
        Background class, parent (shape) and global child id (``child // C == parent``).
    bboxes : ndarray of shape (n, 4), int64
        Tight object box ``x, y, w, h`` in pixels.
    """

    root: Path
    files: np.ndarray
    background: np.ndarray
    parent: np.ndarray
    child: np.ndarray
    bboxes: np.ndarray


def _as_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise FGDError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise FGDError(f"{name} must be an integer, got {value!r}") from None


def _check_args(n, n_parent, children_per_parent, size, seed) -> tuple[int, int, int, int, int]:
    n, n_parent, children_per_parent, size, seed = (
        _as_int("n", n), _as_int("parents", n_parent),
        _as_int("children per parent", children_per_parent), _as_int("size", size),
        _as_int("seed", seed))
    if n < 1:
        raise FGDError(f"n must be at least 1, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise FGDError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    if not 1 <= n_parent <= len(SHAPES):
        raise FGDError(f"parents must be between 1 and {len(SHAPES)} (one shape family each), got {n_parent}")
    if not 1 <= children_per_parent <= MAX_CHILDREN_PER_PARENT:
        raise FGDError(f"children per parent must be between 1 and {MAX_CHILDREN_PER_PARENT}, "
                       f"got {children_per_parent}")
    if seed < 0:
        raise FGDError(f"seed must be non-negative, got {seed}")
    return n, n_parent, children_per_parent, size, seed


def _is_previous_set(out: Path) -> str | None:
    """None if ``out`` holds only a previous synthetic set, else why it does not."""
    try:
        manifest = json.loads((out / _MANIFEST).read_text())
    except (OSError, ValueError):
        return "it is not a synthetic set (no readable synthetic.json)"
    if not isinstance(manifest, dict) or manifest.get("generator") != _GENERATOR:
        return "its synthetic.json was not written by fgdiscover synth"
    extra = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
    if extra:
        return f"it also holds {extra[0]!r}"
    images = out / "images"
    if images.exists():
        if not images.is_dir():
            return "its 'images' is not a folder"
        odd = sorted(p.name for p in images.iterdir() if not re.fullmatch(r"\d+\.png", p.name))
        if odd:
            return f"images/ also holds {odd[0]!r}"
    return None


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FGDError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        why = _is_previous_set(out)
        if why is not None:
            raise FGDError(f"refusing to write into non-empty folder {out}: {why}")
        # a previous synthetic set: remove it entirely so no stale image survives a smaller n
        for name in ("labels.csv", "bboxes.csv", _MANIFEST):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "images", ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)


def _write_manifest(out: Path, manifest: dict) -> None:
    (out / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def make_synthetic(out, *, n_parent: int = 4, children_per_parent: int = 3, n: int = 2000,
                   size: int = 64, seed: int = 0, progress: bool = False) -> SyntheticSet:
    """Write a synthetic hierarchical data set into the folder ``out``.

    Parameters
    ----------
    out : str or Path
        Destination folder: absent, empty, or a previous synthetic set (replaced).
    n_parent : int, default 4
        Number of parents (shape families), 1 to 14.
    children_per_parent : int, default 3
        Children (appearances) per parent, 1 to 24; global child ids run to
        ``n_parent * children_per_parent - 1``.
    n : int, default 2000
        Number of images (children and backgrounds are balanced).
    size : int, default 64
        Side of the square images in pixels, 16 to 1024.
    seed : int, default 0
        Same arguments give byte-identical files.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    SyntheticSet

    Raises
    ------
    FGDError
        Bad arguments, or ``out`` is non-empty and not a previous synthetic set.
    """
    n, n_parent, children_per_parent, size, seed = _check_args(
        n, n_parent, children_per_parent, size, seed)
    out = Path(out).expanduser().absolute()
    _prepare(out)

    background, parent, child = draw_labels(n, n_parent, children_per_parent, seed)
    width = len(str(n))  # as many digits as n itself
    files = np.array([f"images/{i:0{width}d}.png" for i in range(n)])
    bboxes = np.zeros((n, 4), np.int64)
    manifest = {
        "generator": _GENERATOR, "format": _FORMAT_VERSION, "n": n, "n_parent": n_parent,
        "children_per_parent": children_per_parent, "n_background": N_BACKGROUNDS,
        "size": size, "seed": seed, "shapes": list(SHAPES[:n_parent]), "complete": False,
    }
    # written first, so that an interrupted run is still recognised (and replaced) as ours
    _write_manifest(out, manifest)
    indices = range(n)
    if progress:
        from ..progress import progress_bar

        indices = progress_bar(indices, desc="synth", unit="img")
    for i in indices:
        item = render_item(i, background=int(background[i]), child=int(child[i]),
                           n_parent=n_parent, children_per_parent=children_per_parent,
                           size=size, seed=seed)
        Image.fromarray(item.image).save(out / files[i], format="PNG", compress_level=1)
        bboxes[i] = item.bbox

    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "background", "parent", "child"])
        w.writerows(zip(files, background, parent, child))
    with open(out / "bboxes.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "x", "y", "w", "h"])
        w.writerows([f, *b] for f, b in zip(files, bboxes.tolist()))
    _write_manifest(out, {**manifest, "complete": True})
    return SyntheticSet(out, files, background, parent, child, bboxes)


def read_synthetic(root) -> SyntheticSet:
    """Read a set written by :func:`make_synthetic` (labels.csv and bboxes.csv).

    Raises
    ------
    FGDError
        The folder or its CSV files are missing or malformed.
    """
    root = Path(root).expanduser().absolute()
    rows = {}
    for name, cols in (("labels.csv", ["file", "background", "parent", "child"]),
                       ("bboxes.csv", ["file", "x", "y", "w", "h"])):
        path = root / name
        try:
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header != cols:
                    raise FGDError(f"{path}: expected header {','.join(cols)}, got {header}")
                body = [r for r in reader if r]
        except OSError as e:
            raise FGDError(f"cannot read {path}: {e.strerror or e}") from None
        if any(len(r) != len(cols) for r in body):
            raise FGDError(f"{path}: every row must have {len(cols)} fields")
        rows[name] = body
    labels, boxes = rows["labels.csv"], rows["bboxes.csv"]
    if [r[0] for r in labels] != [r[0] for r in boxes]:
        raise FGDError(f"{root}: labels.csv and bboxes.csv list different files")
    try:
        lab = np.array([r[1:] for r in labels], dtype=np.int64).reshape(-1, 3)
        box = np.array([r[1:] for r in boxes], dtype=np.int64).reshape(-1, 4)
    except ValueError:
        raise FGDError(f"{root}: non-integer label or box value") from None
    return SyntheticSet(root, np.array([r[0] for r in labels]), lab[:, 0], lab[:, 1], lab[:, 2], box)
