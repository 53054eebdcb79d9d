"""The full FineGAN: generator, its EMA copy and the three discriminators."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .discriminators import CodeDiscriminator, PatchDiscriminator
from .generator import FineGANGenerator


class FineGAN(nn.Module):
    """All networks of one FineGAN, built from plain dimensions.

    Attributes
    ----------
    generator, generator_ema : FineGANGenerator
        The trained generator and its exponential moving average (the one kept for use).
    d_background : PatchDiscriminator   (D_b)
    d_parent : CodeDiscriminator        (D_p: parent code from P_m * P_f, no real/fake head)
    d_child : CodeDiscriminator         (D_c: real/fake on C, child code from C_m * C_f)
    """

    def __init__(self, *, resolution, n_parent, n_child, z_dim=100, ngf=64, ndf=64, n_res=2,
                 child_within_parent=True, d_norm="batch"):
        super().__init__()
        self.generator = FineGANGenerator(resolution=resolution, n_parent=n_parent,
                                          n_child=n_child, z_dim=z_dim, ngf=ngf, n_res=n_res,
                                          child_within_parent=child_within_parent)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.d_background = PatchDiscriminator(resolution=resolution, ndf=ndf, norm=d_norm)
        self.d_parent = CodeDiscriminator(resolution=resolution, n_codes=n_parent, ndf=ndf,
                                          adversarial=False)
        self.d_child = CodeDiscriminator(resolution=resolution, n_codes=n_child, ndf=ndf,
                                         norm=d_norm)


def ema_decay(step: int, decay: float) -> float:
    """The EMA decay at a step, ramped up as (1 + step) / (10 + step) until ``decay``.

    A fixed 0.999 keeps ~5 % of the random initialisation after 3,000 steps and blurs
    short CPU runs; long runs reach the paper's 0.999 after ~9,000 steps."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)
