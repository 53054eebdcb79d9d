"""DEPICT (Ghasedi Dizaji et al., ICCV 2017): a convolutional autoencoder whose embedding
feeds a soft-assignment clustering head, trained on the relative entropy between the
head's assignments and a balanced target distribution, with the reconstruction loss.

The steps:

1. pretrain the autoencoder on reconstruction (a noisy encoder path reconstructs the
   clean image, as in DEPICT's denoising setup);
2. k-means on the clean embeddings initialises the head: logits ``-s/2 ||z - mu_j||^2``,
   a linear layer in z (``W = s mu``, ``b = -s/2 ||mu||^2``);
3. alternate: every ``target_every`` steps compute the head's assignments P over all
   images and the target ``Q_ij ∝ P_ij / sqrt(sum_i P_ij)`` (the balanced cluster prior:
   large clusters are damped); then train on ``KL(Q || P) + recon_weight * MSE``.

Clusters are the argmax of P. How this differs from the original: smaller networks and
fewer iterations (presets), a softmax head initialised from k-means rather than DEPICT's
logistic regression fitted on k-means labels, Gaussian input noise instead of dropout, and
the reconstruction loss on the output only (DEPICT also matches every layer of the noisy
path to the clean one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fgdiscover.baselines._torch import (adam, apply_batched, conv_decoder,
                                         conv_encoder, prepare, random_batch, step)
from fgdiscover.cluster import FaissKMeans
from fgdiscover.progress import progress_bar


@dataclass(frozen=True)
class DEPICTConfig:
    """Settings of :func:`fit_predict`.

    Attributes
    ----------
    width : int
        Channels of the first convolution (doubling at each halving).
    embed_dim : int
        Embedding size.
    pretrain_iters, iters : int
        Autoencoder pretraining steps; joint clustering steps.
    batch_size : int
    lr : float
    noise : float
        Std of the Gaussian noise on the encoder's noisy path (images in [-1, 1]).
    recon_weight : float
        Weight of the reconstruction loss in the joint phase.
    target_every : int
        Steps between recomputing the target distribution Q.
    scale : float
        Sharpness ``s`` of the head's initial logits (on L2-normalised embeddings).
    """

    width: int = 16
    embed_dim: int = 32
    pretrain_iters: int = 1000
    iters: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    noise: float = 0.2
    recon_weight: float = 1.0
    target_every: int = 100
    scale: float = 10.0


PRESETS = {
    "tiny": DEPICTConfig(width=8, embed_dim=8, pretrain_iters=150, iters=100, batch_size=16,
                         target_every=25),
    "cpu": DEPICTConfig(),
    "paper": DEPICTConfig(width=32, embed_dim=64, pretrain_iters=20_000, iters=20_000,
                          batch_size=128, target_every=500),
}


class DEPICTNet(nn.Module):
    """Encoder, decoder and soft-assignment head (a linear layer on the normalised
    embedding, softmax over k)."""

    def __init__(self, resolution: int, width: int, embed_dim: int, k: int):
        super().__init__()
        self.encoder = conv_encoder(resolution, width, embed_dim)
        self.decoder = conv_decoder(resolution, width, embed_dim)
        self.head = nn.Linear(embed_dim, k)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, R, R) -> (n, embed_dim), unit L2 norm."""
        return F.normalize(self.encoder(x), dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def balanced_target(p: torch.Tensor) -> torch.Tensor:
    """DEPICT's target: ``Q_ij = P_ij / sqrt(f_j)`` normalised per row, ``f_j = sum_i P_ij``
    (the prior on cluster sizes that keeps every cluster in use).

    p : (n, k) soft assignments; returns (n, k), rows summing to 1.
    """
    q = p / p.sum(0, keepdim=True).clamp_min(1e-12).sqrt()
    return q / q.sum(1, keepdim=True)


def clustering_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(Q || P) per image, averaged; ``logits`` give P."""
    return F.kl_div(F.log_softmax(logits, 1), target, reduction="batchmean")


def fit_predict(images: np.ndarray, k: int, *, config: DEPICTConfig = DEPICTConfig(),
                seed: int = 0, device: str = "cpu", progress: bool = False) -> np.ndarray:
    """Cluster images with DEPICT. ``images`` (n, R, R, 3) uint8 -> labels (n,) int64
    in [0, k) (the contract of :mod:`fgdiscover.baselines`)."""
    x, gen = prepare(images, k, seed, device)
    dev = x.device
    net = DEPICTNet(x.shape[-1], config.width, config.embed_dim, k).to(dev)
    opt = adam(net.parameters(), config.lr)

    def recon_loss(batch):
        noisy = batch + config.noise * torch.randn_like(batch)
        return F.mse_loss(net.decoder(net.encoder(noisy)), batch)

    total = config.pretrain_iters + config.iters
    bar = progress_bar(total=total, desc="DEPICT", unit="step", enabled=progress)
    with bar:
        for _ in range(config.pretrain_iters):
            loss = recon_loss(x[random_batch(x, config.batch_size, gen)])
            step(opt, loss)
            bar.update(1)

        net.eval()
        z = apply_batched(net.embed, x).cpu().numpy()
        km = FaissKMeans(k, n_init=5, seed=seed).fit(z)
        mu = torch.as_tensor(km.cluster_centers_, dtype=torch.float32, device=dev)
        with torch.no_grad():
            net.head.weight.copy_(config.scale * mu)
            net.head.bias.copy_(-0.5 * config.scale * (mu * mu).sum(1))

        target = None
        for i in range(config.iters):
            if i % config.target_every == 0:
                net.eval()
                target = balanced_target(apply_batched(net.logits, x).softmax(1))
                net.train()
            idx = random_batch(x, config.batch_size, gen)
            batch = x[idx]
            loss = (clustering_loss(net.logits(batch), target[idx])
                    + config.recon_weight * recon_loss(batch))
            step(opt, loss)
            bar.update(1)
    net.eval()
    return apply_batched(net.logits, x).argmax(1).cpu().numpy().astype(np.int64)
