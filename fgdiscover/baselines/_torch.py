"""Pieces the neural baselines share: image tensors, small conv nets, batched inference.

Networks take dimensions, never a config object (STYLE.md habit 1). Every net works at any
power-of-two resolution >= 8: stride-2 convolutions halve the side down to 4 x 4.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fgdiscover.errors import FGDError


def check_images(images: np.ndarray, k: int) -> np.ndarray:
    """``images`` as a uint8 array of shape (n, R, R, 3), R a power of two >= 8, n >= k.

    Raises
    ------
    FGDError
        Wrong shape or dtype, a side that is not a power of two, or fewer images than k.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise FGDError(f"images must have shape (n, R, R, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise FGDError(f"images must be uint8, got {images.dtype}")
    side = images.shape[1]
    if side < 8 or side & (side - 1):
        raise FGDError(f"image side must be a power of two >= 8, got {side}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= len(images):
        raise FGDError(f"k must be an integer between 2 and the number of images "
                       f"({len(images)}), got {k!r}")
    return images


def to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """uint8 (n, R, R, 3) -> float (n, 3, R, R) in [-1, 1] on ``device``."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)  # a writable copy
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def n_halvings(resolution: int) -> int:
    """Stride-2 steps from ``resolution`` down to 4 x 4."""
    return int(math.log2(resolution)) - 2


def conv_encoder(resolution: int, width: int, out_dim: int, *, norm: bool = True) -> nn.Sequential:
    """(n, 3, R, R) -> (n, out_dim): 4x4 stride-2 convolutions (channels doubling from
    ``width``), LeakyReLU, BatchNorm after the first unless ``norm`` is False, a linear
    layer on the flattened 4 x 4 map."""
    layers: list[nn.Module] = []
    c_in, c = 3, width
    for i in range(n_halvings(resolution)):
        layers.append(nn.Conv2d(c_in, c, 4, 2, 1))
        if norm and i > 0:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.LeakyReLU(0.2))
        c_in, c = c, c * 2
    layers += [nn.Flatten(), nn.Linear(c_in * 16, out_dim)]
    return nn.Sequential(*layers)


def conv_decoder(resolution: int, width: int, in_dim: int) -> nn.Sequential:
    """(n, in_dim) -> (n, 3, R, R) in [-1, 1]: the mirror of :func:`conv_encoder`
    (linear to a 4 x 4 map, 4x4 stride-2 transposed convolutions with BatchNorm and ReLU,
    tanh)."""
    n = n_halvings(resolution)
    c = width * 2 ** (n - 1)
    layers: list[nn.Module] = [nn.Linear(in_dim, c * 16), nn.Unflatten(1, (c, 4, 4)),
                               nn.BatchNorm2d(c), nn.ReLU()]
    for i in range(n):
        last = i == n - 1
        c_out = 3 if last else c // 2
        layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1))
        layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU()]
        c = c_out
    return nn.Sequential(*layers)


def prepare(images: np.ndarray, k: int, seed: int, device) -> tuple[torch.Tensor, torch.Generator]:
    """The start of every neural baseline's ``fit_predict``: check the images
    (:func:`check_images`), seed torch, and return them as a float tensor on ``device``
    (:func:`to_tensor`) with a CPU generator for batch sampling."""
    images = check_images(images, k)
    torch.manual_seed(seed)
    return to_tensor(images, torch.device(device)), torch.Generator().manual_seed(seed)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def random_batch(x: torch.Tensor, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of a random batch (without replacement) of the rows of ``x``."""
    return torch.randperm(len(x), generator=gen)[:batch_size].to(x.device)


@torch.no_grad()
def apply_batched(fn, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``fn`` over ``x`` in batches (eval mode is the caller's business), concatenated."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the GAN betas (0.5, 0.999) every baseline uses."""
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
