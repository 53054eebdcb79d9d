"""FineGAN's losses as small pure functions of logits.

Each casts its inputs to float32 (a no-op for float32 tensors): under bf16 autocast the
networks' outputs may be bfloat16, the losses are always computed in float32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy with logits against a constant or a tensor target."""
    logits = logits.float()
    if not torch.is_tensor(target):
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target.float())


def d_patch_loss(real_logits, fake_logits, real_weight) -> torch.Tensor:
    """D_b's real/fake loss.

    Real patches that overlap an object get weight 0 and the real term is renormalised by
    the number of unmasked patches; every fake patch counts.

    Parameters
    ----------
    real_logits, fake_logits : Tensor of shape (n, 1, g, g)
    real_weight : Tensor of shape (n, 1, g, g), 1 for background patches, 0 otherwise
    """
    real_logits = real_logits.float()
    per_patch = F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits), reduction="none")
    real = (per_patch * real_weight).sum() / real_weight.sum().clamp(min=1.0)
    return real + bce(fake_logits, 0.0)


def d_adversarial_loss(real_logits, fake_logits) -> torch.Tensor:
    """Non-saturating GAN loss of a discriminator: real -> 1, fake -> 0."""
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def g_adversarial_loss(fake_logits) -> torch.Tensor:
    """Generator side of the non-saturating GAN loss: fake -> 1."""
    return bce(fake_logits, 1.0)


def info_loss(code_logits, codes) -> torch.Tensor:
    """InfoGAN's bound on I(code; image) for a categorical code: cross-entropy.

    Parameters
    ----------
    code_logits : Tensor of shape (n, n_codes)
    codes : LongTensor of shape (n,)
    """
    return F.cross_entropy(code_logits.float(), codes)


def code_log_likelihood(code_logits, codes) -> torch.Tensor:
    """log q(code | image) per sample, shape (n,); the hard-negative phase ranks by it."""
    return -F.cross_entropy(code_logits.float(), codes, reduction="none")


def mask_area_loss(mask: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Hinge on each mask's mean: zero while the covered fraction lies in [low, high].

    mask : Tensor of shape (n, 1, h, w) in [0, 1]. Keeps the parent mask from covering
    the whole image (the parent would paint the background) or vanishing.
    """
    area = mask.float().mean(dim=(1, 2, 3))
    return (F.relu(area - high) + F.relu(low - area)).mean()


def mask_binary_loss(mask: torch.Tensor) -> torch.Tensor:
    """Mean distance of mask values from {0, 1}: pushes soft masks to crisp ones."""
    mask = mask.float()
    return torch.minimum(mask, 1 - mask).mean()
