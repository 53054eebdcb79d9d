"""Training the inverse encoder on FineGAN's own images, whose codes are known."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FGDError
from ..models.codes import sample_codes
from ..models.encoder import InverseEncoder, random_shift_flip
from ..models.finegan import FineGAN
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .gan import BatchSampler, to_tensor

ENCODER = "encoder.pt"


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of the encoder stage.

    ``iters`` steps of ``batch_size`` generated images each, drawn with a FREE background
    code (not tied to the child as during GAN training) so that the encoder learns to
    ignore backgrounds; cross-entropy on the parent and child codes that made them.
    ``real_weight`` > 0 adds a term on real images: the child prediction of two augmented
    views must agree (symmetric KL) while the batch's mean prediction stays spread out
    (entropy of the marginal), as in IIC / SCAN. Measured on the synthetic set it did not
    beat the fake-only encoder on the embedding and costs 1.5x the time, so it is off by
    default (benchmarks/README.md).
    """

    iters: int = 500
    batch_size: int = 64
    lr: float = 2e-4
    width: int = 32
    feature_dim: int = 128
    max_shift: int = 4
    real_weight: float = 0.0
    seed: int = 0


ENCODER_PRESETS = {
    "paper": EncoderConfig(iters=30_000, batch_size=64, width=64, feature_dim=256, max_shift=16),
    "cpu": EncoderConfig(),
    "tiny": EncoderConfig(iters=3, batch_size=4, width=4, feature_dim=8, max_shift=1),
}


def fake_batch(gan: FineGAN, n: int, rng: torch.Generator, device):
    """n generated final images with the (free) codes that made them."""
    g = gan.generator_ema
    codes = sample_codes(n, n_parent=g.n_parent, n_child=g.n_child, z_dim=g.z_dim,
                         tie_background=False, generator=rng, device=device)
    with torch.no_grad():
        images = g(codes.z, codes.b, codes.p, codes.c)["child"]
    return images, codes


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Agreement of two views' predictions minus the entropy of the batch's mean prediction.

    logits_a, logits_b : Tensor of shape (n, k)
    """
    la, lb = F.log_softmax(logits_a, 1), F.log_softmax(logits_b, 1)
    agree = 0.5 * (F.kl_div(la, lb, log_target=True, reduction="batchmean")
                   + F.kl_div(lb, la, log_target=True, reduction="batchmean"))
    mean = 0.5 * (la.exp() + lb.exp()).mean(0)
    entropy = -(mean * mean.clamp_min(1e-8).log()).sum()
    return agree - entropy


def train_encoder(gan: FineGAN, out: Path, cfg: EncoderConfig, *, real_images=None,
                  device="cpu", progress=True) -> InverseEncoder:
    """Train an :class:`InverseEncoder` for ``gan`` and save it to ``out``.

    Parameters
    ----------
    gan : FineGAN (its EMA generator is used, in eval mode)
    out : Path of the encoder checkpoint to write
    real_images : uint8 array (n, R, R, 3), optional; needed when ``cfg.real_weight > 0``
    """
    from ..progress import progress_bar

    g = gan.generator_ema.eval()
    torch.manual_seed(cfg.seed)
    enc = InverseEncoder(resolution=g.resolution, n_parent=g.n_parent, n_child=g.n_child,
                         width=cfg.width, feature_dim=cfg.feature_dim).to(device).train()
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    if cfg.real_weight > 0:
        if real_images is None:
            raise FGDError("the real-image encoder term needs the real images")
        sampler = BatchSampler(real_images, np.full((len(real_images), 4), np.nan),
                               cfg.batch_size, cfg.seed)
    bar = progress_bar(range(cfg.iters), enabled=progress, desc="train encoder", unit="it",
                       dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        images, codes = fake_batch(gan, cfg.batch_size, rng, device)
        images = random_shift_flip(images, cfg.max_shift, rng)
        _, p_logits, c_logits = enc(images)
        loss_p, loss_c = F.cross_entropy(p_logits, codes.p), F.cross_entropy(c_logits, codes.c)
        loss = loss_p + loss_c
        if sampler is not None:
            real = to_tensor(sampler.next()[0], device)
            _, _, ca = enc(random_shift_flip(real, cfg.max_shift, rng))
            _, _, cb = enc(random_shift_flip(real, cfg.max_shift, rng))
            loss = loss + cfg.real_weight * consistency_loss(ca, cb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0:
            acc = (c_logits.argmax(1) == codes.c).float().mean().item()
            rate = (step + 1) * cfg.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(ce_p=f"{loss_p.item():.2f}", ce_c=f"{loss_c.item():.2f}",
                            acc_c=f"{acc:.2f}", img_s=f"{rate:.0f}")
    enc.eval()
    save_checkpoint({"format": "fgdiscover-encoder-1", "dims": enc.dims(),
                     "config": dataclasses.asdict(cfg), "state": enc.state_dict()}, out)
    return enc


def load_encoder(path: Path, device="cpu") -> InverseEncoder:
    """An encoder saved by :func:`train_encoder`, in eval mode (loaded with
    ``weights_only=True``; its dimensions are checked before a network is built)."""
    ckpt = load_checkpoint(path, map_location=device, kind="fgdiscover-encoder-1")
    dims = ckpt.get("dims")
    names = ("resolution", "n_parent", "n_child", "width", "feature_dim")
    if (not isinstance(dims, dict) or set(dims) != set(names)
            or not all(type(dims[k]) is int and dims[k] > 0 for k in names)):
        raise FGDError(f"{path}: invalid encoder dimensions {dims!r}")
    try:
        enc = InverseEncoder(**dims).to(device)
    except (ValueError, TypeError) as e:
        raise FGDError(f"{path}: invalid encoder dimensions {dims!r} ({e})") from None
    load_weights(enc, ckpt.get("state"), path, "encoder")
    return enc.eval()
