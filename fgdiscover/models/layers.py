"""Small building blocks shared by the generator and the discriminators."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)


class GLUBlock(nn.Sequential):
    """conv3x3 -> BN -> GLU: 2*c_out channels gated down to c_out."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv3x3(c_in, c_out * 2), nn.BatchNorm2d(c_out * 2), nn.GLU(dim=1))


class UpBlock(nn.Sequential):
    """Nearest upsampling x2, then conv3x3 -> BN -> GLU (FineGAN's upBlock)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), GLUBlock(c_in, c_out))


class ResBlock(nn.Module):
    """Residual block of two 3x3 convolutions with a GLU between them."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(GLUBlock(c, c), conv3x3(c, c), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def tile(code: torch.Tensor, size: int) -> torch.Tensor:
    """Repeat a (n, k) code over a (size, size) grid: (n, k, size, size)."""
    return code[:, :, None, None].expand(-1, -1, size, size)


def n_doublings(resolution: int) -> int:
    """Number of x2 steps from 4x4 to ``resolution``; resolution must be 4 * 2**k >= 16."""
    k = resolution.bit_length() - 3
    if resolution < 16 or 4 * 2**k != resolution:
        raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")
    return k


def init_orthogonal(module: nn.Module) -> None:
    """FineGAN's initialisation: orthogonal weights for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
