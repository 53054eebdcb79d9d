"""Grids that show what each FineGAN code controls.

``write_grids(run_dir, out)`` writes, from the EMA generator of a run:

- ``out``: the hierarchy, one row per parent, its children along the row (z, b fixed);
- ``<stem>_background.png``: b changes along each row, z, p, c fixed per row;
- ``<stem>_parent.png``: p changes along each row, z, b, c fixed per row;
- ``<stem>_child.png``: c changes along each row, z, b, p fixed per row;
- ``<stem>_stages.png``: per sample, B | P_f | P_m | P | C_f | C_m | C.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .models.codes import Codes, children_per_parent
from .train.gan import load_finegan, pick_device


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) in [-1, 1] (images) or [0, 1] (masks, C == 1) -> uint8 (n, H, W, 3)."""
    x = x.detach().float().cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1) * 2 - 1
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def tile_images(cells: np.ndarray, row_labels=None, col_labels=None, title=None,
                scale: int = 1, pad: int = 2) -> Image.Image:
    """Lay out uint8 images of shape (rows, cols, H, W, 3) as one labelled picture."""
    rows, cols, h, w, _ = cells.shape
    h, w = h * scale, w * scale
    left = 28 if row_labels else 0
    top = (14 if col_labels else 0) + (16 if title else 0)
    canvas = Image.new("RGB", (left + cols * (w + pad) + pad, top + rows * (h + pad) + pad),
                       "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill="black")
    for j, label in enumerate(col_labels or []):
        draw.text((left + pad + j * (w + pad), top - 13), str(label), fill="black")
    for i in range(rows):
        if row_labels:
            draw.text((2, top + pad + i * (h + pad) + h // 2 - 5), str(row_labels[i]), fill="black")
        for j in range(cols):
            im = Image.fromarray(cells[i, j])
            if scale != 1:
                im = im.resize((w, h), Image.NEAREST)
            canvas.paste(im, (left + pad + j * (w + pad), top + pad + i * (h + pad)))
    return canvas


@torch.no_grad()
def _render(g, codes: Codes, rows: int, cols: int, key="child") -> np.ndarray:
    out = g(codes.z, codes.b, codes.p, codes.c)
    return tensor_to_uint8(out[key]).reshape(rows, cols, *out[key].shape[2:], 3)


def _grid_codes(z, b, p, c) -> Codes:
    """Codes from (rows, cols) index arrays and (rows, cols, z_dim) noise, flattened."""
    def flat(a):
        return torch.from_numpy(np.array(a, dtype=np.int64)).reshape(-1)
    return Codes(z.reshape(-1, z.shape[-1]), flat(b), flat(p), flat(c))


#: What :func:`write_grids` writes beside ``grid.png``, in order: the hierarchy, the three
#: one-factor grids, the stages.
GRID_SUFFIXES = ("", "_background", "_parent", "_child", "_stages")


def grid_paths(out) -> list[Path]:
    """The files :func:`write_grids` writes for the main PNG ``out``, in its order."""
    out = Path(out)
    stem = out.with_suffix("")
    return [out] + [Path(f"{stem}{suffix}.png") for suffix in GRID_SUFFIXES[1:]]


def write_grids(run_dir, out, *, seed: int = 0, max_parents: int = 8, max_children: int = 10,
                n_rows: int = 6, scale: int | None = None, device=None) -> list[Path]:
    """Write the code-factor grids of a trained run; returns the paths written.

    Parameters
    ----------
    run_dir : path of a ``fgdiscover train`` run
    out : path of the main PNG; the others are written beside it
    max_parents, max_children : int
        Largest number of parents (rows) and children (columns) shown in the hierarchy.
    n_rows : int
        Rows of the one-factor grids (each row a different draw of the fixed factors).
    scale : int, optional
        Nearest-neighbour magnification; default makes cells at least 64 px.
    """
    device = pick_device(device)
    m, cfg, _ = load_finegan(run_dir, device)
    g = m.generator_ema
    gen = torch.Generator().manual_seed(seed)
    per = children_per_parent(cfg.n_parent, cfg.n_child)
    scale = scale or max(1, 64 // cfg.resolution)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = dict(zip(GRID_SUFFIXES, grid_paths(out)))
    written = []

    def randz(rows, cols):
        # one noise vector per row, shared along it
        z = torch.randn(rows, 1, cfg.z_dim, generator=gen).expand(rows, cols, cfg.z_dim)
        return z.to(device)

    # hierarchy: rows = parents, columns = that parent's children; z and b fixed throughout
    rows, cols = min(cfg.n_parent, max_parents), min(per, max_children)
    z = torch.randn(1, 1, cfg.z_dim, generator=gen).expand(rows, cols, cfg.z_dim).to(device)
    p = np.repeat(np.arange(rows)[:, None], cols, 1)
    c = p * per + np.arange(cols)[None]
    b = np.full_like(c, int(torch.randint(cfg.n_child, (1,), generator=gen)))
    cells = _render(g, _grid_codes(z, b, p, c).to(device), rows, cols)
    tile_images(cells, [f"p{i}" for i in range(rows)], [f"c+{j}" for j in range(cols)],
                "rows: parent (shape), columns: its children (appearance); z, b fixed",
                scale).save(paths[""])
    written.append(paths[""])

    # one factor at a time
    n_show = min(10, max(cfg.n_parent, per, 2))
    for factor in ("background", "parent", "child"):
        rows = n_rows
        base_c = torch.randint(cfg.n_child, (rows, 1), generator=gen).numpy()
        base = {"b": torch.randint(cfg.n_child, (rows, 1), generator=gen).numpy(),
                "p": base_c // per, "c": base_c}
        if factor == "background":
            cols = min(cfg.n_child, n_show)
            varied = {"b": np.linspace(0, cfg.n_child - 1, cols).round().astype(int)[None]}
        elif factor == "parent":
            cols = min(cfg.n_parent, n_show)
            varied = {"p": np.arange(cols)[None]}
        else:
            cols = min(per, n_show)
            varied = {"c": base["p"] * per + np.arange(cols)[None]}
        codes = {k: np.broadcast_to(varied.get(k, v), (rows, cols)) for k, v in base.items()}
        cells = _render(g, _grid_codes(randz(rows, cols), codes["b"], codes["p"],
                                       codes["c"]).to(device), rows, cols)
        path = paths[f"_{factor}"]
        tile_images(cells, None, None, f"{factor} code changes along each row; the rest fixed",
                    scale).save(path)
        written.append(path)

    # intermediate stages
    rows = n_rows
    c = torch.randint(cfg.n_child, (rows,), generator=gen)
    codes = Codes(torch.randn(rows, cfg.z_dim, generator=gen), c, c // per, c).to(device)
    with torch.no_grad():
        o = g(codes.z, codes.b, codes.p, codes.c)
    keys = ["background", "parent_fg", "parent_mask", "parent", "child_fg", "child_mask", "child"]
    cells = np.stack([tensor_to_uint8(o[k]) for k in keys], axis=1)
    path = paths["_stages"]
    tile_images(cells, None, ["B", "Pf", "Pm", "P", "Cf", "Cm", "C"], None, scale).save(path)
    written.append(path)
    return written
