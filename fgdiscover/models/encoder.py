"""The inverse encoder: an image -> parent and child logits and a feature embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import init_orthogonal, n_doublings


class InverseEncoder(nn.Module):
    """phi: image -> (features, parent logits, child logits).

    Parameters
    ----------
    resolution : int
        Input side in pixels.
    n_parent, n_child : int
        Code sizes of the FineGAN it inverts.
    width : int
        Channels of the first convolution; doubling per down-sampling, at most ``8 * width``.
    feature_dim : int
        Size of the embedding.
    """

    def __init__(self, *, resolution, n_parent, n_child, width=32, feature_dim=128):
        super().__init__()
        layers, c_in = [], 3
        for i in range(n_doublings(resolution)):
            c_out = width * 2 ** min(i, 3)
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True),
                       nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 16, feature_dim),
                                     nn.BatchNorm1d(feature_dim), nn.LeakyReLU(0.2, inplace=True))
        self.parent_head = nn.Linear(feature_dim, n_parent)
        self.child_head = nn.Linear(feature_dim, n_child)
        self.resolution, self.n_parent, self.n_child = resolution, n_parent, n_child
        self.width, self.feature_dim = width, feature_dim
        init_orthogonal(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Parameters
        ----------
        x : Tensor of shape (n, 3, R, R) in [-1, 1]

        Returns
        -------
        features (n, feature_dim), parent logits (n, n_parent), child logits (n, n_child)
        """
        h = self.project(self.trunk(x))
        return h, self.parent_head(h), self.child_head(h)

    def dims(self) -> dict:
        return {"resolution": self.resolution, "n_parent": self.n_parent,
                "n_child": self.n_child, "width": self.width, "feature_dim": self.feature_dim}


def random_shift_flip(x: torch.Tensor, max_shift: int, generator=None) -> torch.Tensor:
    """Random horizontal flips and translations by up to ``max_shift`` px (reflect padding).

    x : Tensor of shape (n, C, H, W); returns the same shape.
    """
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    if max_shift <= 0:
        return x
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).tolist()
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def paste_objects(images: torch.Tensor, boxes: torch.Tensor, backgrounds: torch.Tensor,
                  generator=None, scale=(1.0, 1.0)) -> torch.Tensor:
    """Cut each image's object box out and paste it, randomly flipped and resized by a
    factor drawn from ``scale``, at a random place on its background: the same object on
    a different backdrop.

    images, backgrounds : Tensors of shape (n, C, H, W)
    boxes : Tensor of shape (n, 4), x, y, w, h in pixels (finite)
    """
    n, _, h, w = images.shape
    out = backgrounds.clone()
    b = boxes.round().long().tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    u = torch.rand(n, 2, generator=generator).tolist()
    factors = (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)).tolist()
    for i, (x0, y0, bw, bh) in enumerate(b):
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        bw, bh = max(1, min(bw, w - x0)), max(1, min(bh, h - y0))
        patch = images[i, :, y0:y0 + bh, x0:x0 + bw]
        if flips[i]:
            patch = patch.flip(-1)
        if factors[i] != 1.0:
            bw = max(1, min(w, round(bw * factors[i])))
            bh = max(1, min(h, round(bh * factors[i])))
            patch = F.interpolate(patch[None], size=(bh, bw), mode="bilinear",
                                  align_corners=False, antialias=True)[0]
        nx, ny = int(u[i][0] * (w - bw + 1)), int(u[i][1] * (h - bh + 1))
        out[i, :, ny:ny + bh, nx:nx + bw] = patch
    return out
