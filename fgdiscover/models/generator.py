"""FineGAN's three-stage generator: background, parent (shape), child (appearance).

Each stage is tied to one hard one-hot code. The parent and child stages draw a foreground
and a mask that are stitched onto the image of the stage before::

    P = P_m * P_f + (1 - P_m) * B
    C = C_m * C_f + (1 - C_m) * P

The child stage has no noise of its own: it refines the parent stage's features.

``child_within_parent`` (our addition, on by default) makes the child stage repaint exactly
the parent's object, ``C_m <- P_m``: the parent code decides the silhouette, the child code
the appearance inside it, the background code the rest. FineGAN leaves C_m free; on short
runs its child stage learns to paint the whole image (or nothing) and the stages stop meaning
anything (benchmarks/README.md shows the grids).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import GLUBlock, ResBlock, UpBlock, init_orthogonal, n_doublings, tile


def stitch(mask: torch.Tensor, foreground: torch.Tensor, behind: torch.Tensor) -> torch.Tensor:
    """Alpha-composite ``foreground`` over ``behind``.

    Parameters
    ----------
    mask : Tensor of shape (n, 1, h, w), values in [0, 1]
    foreground, behind : Tensor of shape (n, 3, h, w)
    """
    return mask * foreground + (1 - mask) * behind


class InitStage(nn.Module):
    """Noise + code -> fc to 4x4 -> up-blocks to ``resolution``; widths halve per step."""

    def __init__(self, in_dim: int, resolution: int, ngf: int):
        super().__init__()
        steps = n_doublings(resolution)
        widths = [ngf * 2 ** min(steps - i, 4) for i in range(steps + 1)]
        self.c0 = widths[0]
        self.fc = nn.Sequential(
            nn.Linear(in_dim, widths[0] * 16 * 2, bias=False),
            nn.BatchNorm1d(widths[0] * 16 * 2),
            nn.GLU(dim=1),
        )
        self.up = nn.Sequential(*[UpBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.fc(x).view(-1, self.c0, 4, 4))


class NextStage(nn.Module):
    """Features + a code tiled over them -> joint conv -> residual blocks (same size)."""

    def __init__(self, channels: int, code_dim: int, out_channels: int, n_res: int):
        super().__init__()
        self.joint = GLUBlock(channels + code_dim, channels)
        self.res = nn.Sequential(*[ResBlock(channels) for _ in range(n_res)])
        self.out = GLUBlock(channels, out_channels)

    def forward(self, h: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.joint(torch.cat([h, tile(code, h.shape[-1])], dim=1))
        return self.out(self.res(h))


def to_image(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Tanh())


def to_mask(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 1, 3, 1, 1), nn.Sigmoid())


class FineGANGenerator(nn.Module):
    """Generator of FineGAN.

    Parameters
    ----------
    resolution : int
        Output side in pixels (a power of two >= 16; the paper uses 128).
    n_parent, n_child, n_background : int
        Code sizes; ``n_child`` is a multiple of ``n_parent``; ``n_background`` defaults to
        ``n_child`` (FineGAN ties b to c during training).
    z_dim : int
        Noise size (100 in the paper).
    ngf : int
        Width at full resolution of the parent stage; 4x4 features have ``16 * ngf`` channels
        at 64 px and above (the paper's 64 gives 1024).
    n_res : int
        Residual blocks in the child stage.
    child_within_parent : bool
        The child stage paints inside the parent mask (see the module docstring).
    """

    def __init__(self, *, resolution=128, n_parent=20, n_child=200, n_background=None,
                 z_dim=100, ngf=64, n_res=2, child_within_parent=True):
        super().__init__()
        self.child_within_parent = child_within_parent
        self.resolution, self.z_dim, self.ngf, self.n_res = resolution, z_dim, ngf, n_res
        self.n_parent, self.n_child = n_parent, n_child
        self.n_background = n_child if n_background is None else n_background
        self.background = InitStage(z_dim + self.n_background, resolution, ngf)
        self.background_image = to_image(self.background.out_channels)
        self.parent = InitStage(z_dim + n_parent, resolution, ngf)
        c = self.parent.out_channels
        self.parent_image, self.parent_mask = to_image(c), to_mask(c)
        self.child = NextStage(c, n_child, max(c // 2, 4), n_res)
        self.child_image, self.child_mask = to_image(max(c // 2, 4)), to_mask(max(c // 2, 4))
        init_orthogonal(self)

    def render_background(self, z, b) -> torch.Tensor:
        """The background stage alone: (n, 3, R, R) in [-1, 1], free of objects."""
        code = nn.functional.one_hot(b, self.n_background).float()
        return self.background_image(self.background(torch.cat([z, code], 1)))

    def forward(self, z, b, p, c) -> dict[str, torch.Tensor]:
        """Generate images from noise and code indices.

        Parameters
        ----------
        z : Tensor of shape (n, z_dim)
        b, p, c : LongTensor of shape (n,)

        Returns
        -------
        dict of Tensors; images have shape (n, 3, R, R) in [-1, 1], masks (n, 1, R, R) in
        [0, 1]: ``background``, ``parent_fg``, ``parent_mask``, ``parent``, ``child_fg``,
        ``child_mask``, ``child`` (the final image).
        """
        oh = nn.functional.one_hot
        bg = self.render_background(z, b)
        h = self.parent(torch.cat([z, oh(p, self.n_parent).float()], 1))
        p_fg, p_mask = self.parent_image(h), self.parent_mask(h)
        parent = stitch(p_mask, p_fg, bg)
        h = self.child(h, oh(c, self.n_child).float())
        c_fg = self.child_image(h)
        # in the default mode the child paints exactly inside the parent mask, so its own
        # mask head is not evaluated (kept for --faithful checkpoints' shape)
        c_mask = p_mask if self.child_within_parent else self.child_mask(h)
        return {
            "background": bg,
            "parent_fg": p_fg,
            "parent_mask": p_mask,
            "parent": parent,
            "child_fg": c_fg,
            "child_mask": c_mask,
            "child": stitch(c_mask, c_fg, parent),
        }
