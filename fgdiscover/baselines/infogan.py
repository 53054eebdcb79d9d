"""InfoGAN (Chen et al., NeurIPS 2016) as a clustering method: a single-stage GAN whose
generator takes noise z and one categorical code c of k values, with a head Q on the
discriminator's trunk that recovers c from an image (the variational bound on the mutual
information I(c; G(z, c)) is a cross-entropy). Real images are clustered by the argmax of
Q: the cluster is the code that would have drawn the image.

How this differs from the original: DCGAN-style networks scaled down by the presets
(InfoGAN's CelebA / SVHN networks are wider), the non-saturating logistic loss, no
continuous codes, spectral normalisation in the discriminator for stability on short
runs, and far fewer iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fgdiscover.baselines._torch import (adam, apply_batched, conv_decoder,
                                         conv_encoder, prepare, random_batch, step)
from fgdiscover.progress import progress_bar


@dataclass(frozen=True)
class InfoGANConfig:
    """Settings of :func:`fit_predict`.

    Attributes
    ----------
    width : int
        Channels of the discriminator's first convolution (generator mirrors it).
    z_dim : int
        Noise size.
    feature_dim : int
        Discriminator trunk output, shared by the real/fake and Q heads.
    iters, batch_size : int
    lr : float
    info_weight : float
        Weight of the information (code cross-entropy) term.
    """

    width: int = 16
    z_dim: int = 32
    feature_dim: int = 64
    iters: int = 1500
    batch_size: int = 64
    lr: float = 2e-4
    info_weight: float = 1.0


PRESETS = {
    "tiny": InfoGANConfig(width=8, z_dim=8, feature_dim=16, iters=200, batch_size=16,
                          lr=1e-3),
    "cpu": InfoGANConfig(),
    "paper": InfoGANConfig(width=64, z_dim=100, feature_dim=256, iters=50_000,
                           batch_size=64),
}


class Discriminator(nn.Module):
    """Shared trunk with a real/fake logit and Q's k code logits."""

    def __init__(self, resolution: int, width: int, feature_dim: int, k: int):
        super().__init__()
        self.trunk = conv_encoder(resolution, width, feature_dim, norm=False)
        for m in self.trunk.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.utils.parametrizations.spectral_norm(m)
        self.real_fake = nn.Linear(feature_dim, 1)
        self.q = nn.Linear(feature_dim, k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.trunk(x), 0.2)
        return self.real_fake(h).squeeze(1), self.q(h)


def d_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def g_loss(fake_logit: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss."""
    return F.softplus(-fake_logit).mean()


def info_loss(code_logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of Q's prediction against the code that drew the image (InfoGAN's
    lower bound on I(c; G(z, c)), up to the constant H(c))."""
    return F.cross_entropy(code_logits, codes)


def fit_predict(images: np.ndarray, k: int, *, config: InfoGANConfig = InfoGANConfig(),
                seed: int = 0, device: str = "cpu", progress: bool = False) -> np.ndarray:
    """Train InfoGAN with one k-way categorical code; cluster images by Q's argmax.
    ``images`` (n, R, R, 3) uint8 -> labels (n,) int64 in [0, k) (the contract of
    :mod:`fgdiscover.baselines`)."""
    x, gen = prepare(images, k, seed, device)
    dev = x.device
    res = x.shape[-1]
    g = conv_decoder(res, config.width, config.z_dim + k).to(dev)
    d = Discriminator(res, config.width, config.feature_dim, k).to(dev)
    opt_g, opt_d = adam(g.parameters(), config.lr), adam(d.parameters(), config.lr)

    def fake(n):
        codes = torch.randint(k, (n,), generator=gen).to(dev)
        z = torch.randn(n, config.z_dim, generator=gen).to(dev)
        return g(torch.cat([z, F.one_hot(codes, k).float()], 1)), codes

    with progress_bar(total=config.iters, desc="InfoGAN", unit="step", enabled=progress) as bar:
        for _ in range(config.iters):
            real = x[random_batch(x, config.batch_size, gen)]
            images_fake, codes = fake(len(real))
            real_logit, _ = d(real)
            fake_logit, code_logits = d(images_fake.detach())
            loss_d = (d_loss(real_logit, fake_logit)
                      + config.info_weight * info_loss(code_logits, codes))
            step(opt_d, loss_d)

            fake_logit, code_logits = d(images_fake)
            loss_g = g_loss(fake_logit) + config.info_weight * info_loss(code_logits, codes)
            step(opt_g, loss_g)
            bar.update(1)
    d.eval()
    return apply_batched(lambda b: d(b)[1], x).argmax(1).cpu().numpy().astype(np.int64)
