"""FineGAN's discriminators.

- :class:`PatchDiscriminator` (D_b): real/fake and background-vs-object logits per patch.
- :class:`CodeDiscriminator`: a down-sampling trunk with an optional real/fake head and a
  code head. D_p is one with ``adversarial=False`` on the masked parent foreground; D_c
  has both heads (real/fake on the final image, child code on the masked child
  foreground).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import init_orthogonal, n_doublings

# (kernel, stride) of D_b's convolutions (padding 0) per resolution. 128 px is the
# paper's: a 24 x 24 grid of patches that each see 34 x 34 pixels. Smaller images keep
# the patch near a quarter of the side.
PATCH_LAYERS = {
    16: [(3, 1), (3, 1)],
    32: [(4, 2), (3, 1)],
    64: [(4, 2), (4, 2), (3, 1)],
    128: [(4, 2), (4, 2), (4, 1), (4, 1)],
    256: [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)],
}


@dataclass(frozen=True)
class PatchGeometry:
    """Where each output cell of a padding-free conv stack looks in the input.

    Cell ``i`` (along one axis) sees input pixels ``[i * jump, i * jump + field)``.
    """

    field: int
    jump: int
    grid: int

    @classmethod
    def of(cls, layers, size: int) -> "PatchGeometry":
        field, jump = 1, 1
        for k, s in layers:
            field += (k - 1) * jump
            jump *= s
            size = (size - k) // s + 1
        return cls(field, jump, size)

    def object_overlap(self, bboxes: torch.Tensor) -> torch.Tensor:
        """Which patches overlap each object box.

        Parameters
        ----------
        bboxes : Tensor of shape (n, 4)
            x, y, w, h in input pixels.

        Returns
        -------
        BoolTensor of shape (n, 1, grid, grid); True where the patch's field overlaps the box.
        """
        start = torch.arange(self.grid, device=bboxes.device, dtype=bboxes.dtype) * self.jump
        end = start + self.field
        x0, y0 = bboxes[:, 0:1], bboxes[:, 1:2]
        x1, y1 = x0 + bboxes[:, 2:3], y0 + bboxes[:, 3:4]
        # half-open intervals [start, end) and [x0, x1) overlap when start < x1 and x0 < end
        ox = (start[None] < x1) & (x0 < end[None])  # (n, grid) along x
        oy = (start[None] < y1) & (y0 < end[None])  # (n, grid) along y
        return (oy[:, :, None] & ox[:, None, :])[:, None]


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


def _conv_block(c_in, c_out, k, s, p, first: bool, norm: str) -> list[nn.Module]:
    """conv [+ BN] + LeakyReLU. ``norm="spectral"`` wraps the conv in spectral
    normalisation instead of following it with BN (our default: with BN, a batch of
    near-identical fakes is rescaled into noise and D_b stops teaching G_b; FineGAN uses BN,
    ``norm="batch"``)."""
    conv = nn.Conv2d(c_in, c_out, k, s, p, bias=first or norm == "spectral")
    if norm == "spectral":
        return [nn.utils.parametrizations.spectral_norm(conv), _lrelu()]
    return [conv] + ([] if first else [nn.BatchNorm2d(c_out)]) + [_lrelu()]


class PatchDiscriminator(nn.Module):
    """D_b: a patch discriminator with a real/fake head and a background/object head.

    Parameters
    ----------
    resolution : int
    ndf : int
        Width of the first convolution; doubles per layer, at most ``8 * ndf``.
    norm : {"batch", "spectral"}
        BatchNorm after each conv but the first (FineGAN), or spectral normalisation.
    """

    def __init__(self, *, resolution=128, ndf=64, norm="batch"):
        super().__init__()
        if resolution not in PATCH_LAYERS:
            raise ValueError(f"no patch layout for resolution {resolution}")
        layers, c_in, convs = PATCH_LAYERS[resolution], 3, []
        for i, (k, s) in enumerate(layers):
            c_out = ndf * 2 ** min(i, 3)
            convs += _conv_block(c_in, c_out, k, s, 0, i == 0, norm)
            c_in = c_out
        self.trunk = nn.Sequential(*convs)
        self.real_fake = nn.Conv2d(c_in, 1, 1)
        self.background = nn.Conv2d(c_in, 1, 1)
        self.geometry = PatchGeometry.of(layers, resolution)
        init_orthogonal(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of shape (n, 1, grid, grid): real-vs-fake, and background (1) vs object (0)."""
        h = self.trunk(x)
        return self.real_fake(h), self.background(h)


class CodeDiscriminator(nn.Module):
    """A strided trunk to 4x4, then a code head and (optionally) a real/fake head.

    Parameters
    ----------
    resolution : int
    n_codes : int
        Number of categories the code head predicts.
    ndf : int
    adversarial : bool
        Build the real/fake head (D_c) or not (D_p).
    norm : {"batch", "spectral"}
        Normalisation of the trunk (see :class:`PatchDiscriminator`).
    """

    def __init__(self, *, resolution=128, n_codes=200, ndf=64, adversarial=True, norm="batch"):
        super().__init__()
        steps = n_doublings(resolution)
        convs, c_in = [], 3
        for i in range(steps):
            c_out = ndf * 2 ** min(i, 3)
            convs += _conv_block(c_in, c_out, 4, 2, 1, i == 0, norm)
            c_in = c_out
        self.trunk = nn.Sequential(*convs)
        self.code_head = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, 1, 1, bias=False), nn.BatchNorm2d(c_in), _lrelu(),
            nn.Conv2d(c_in, n_codes, 4, 1, 0),
        )
        self.real_fake = nn.Conv2d(c_in, 1, 4, 1, 0) if adversarial else None
        self.n_codes, self.feature_dim = n_codes, c_in * 16
        init_orthogonal(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features, shape (n, C, 4, 4)."""
        return self.trunk(x)

    def code_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Code logits, shape (n, n_codes)."""
        return self.code_head(self.trunk(x)).flatten(1)

    def real_fake_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits, shape (n,)."""
        return self.real_fake(self.trunk(x)).flatten()

    def code_head_parameters(self):
        return self.code_head.parameters()
