"""Latent codes of FineGAN: sampling and the parent/child tie.

FineGAN draws three hard one-hot codes and a noise vector for every image: background b,
parent p (shape) and child c (appearance). Children are tied to parents: with
``n_child = n_parent * m`` child ``k`` belongs to parent ``k // m``. During training the
background code equals the child code (``n_background == n_child``) so that the object and
its usual background are not learned as one; at sampling time b is free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def children_per_parent(n_parent: int, n_child: int) -> int:
    """Number of child codes under each parent code.

    Raises ValueError unless ``n_child`` is a positive multiple of ``n_parent``.
    """
    if n_parent < 1 or n_child < n_parent or n_child % n_parent:
        raise ValueError(
            f"n_child ({n_child}) must be a positive multiple of n_parent ({n_parent})"
        )
    return n_child // n_parent


def parent_of(child: torch.Tensor, n_parent: int, n_child: int) -> torch.Tensor:
    """Parent index of each child index.

    Parameters
    ----------
    child : LongTensor of shape (n,)

    Returns
    -------
    LongTensor of shape (n,)
    """
    # tied codes: child k belongs to parent k // (n_child // n_parent); integer division,
    # the original code's `/` is a Python 2 relic.
    return torch.div(child, children_per_parent(n_parent, n_child), rounding_mode="floor")


@dataclass
class Codes:
    """One batch of latent codes, as indices and noise.

    Attributes
    ----------
    z : FloatTensor of shape (n, z_dim)
    b, p, c : LongTensor of shape (n,)
        Background, parent and child indices.
    """

    z: torch.Tensor
    b: torch.Tensor
    p: torch.Tensor
    c: torch.Tensor

    def __len__(self) -> int:
        return self.z.shape[0]

    def to(self, device) -> "Codes":
        return Codes(self.z.to(device), self.b.to(device), self.p.to(device), self.c.to(device))

    def index(self, idx) -> "Codes":
        """The codes at positions ``idx`` (a LongTensor or slice)."""
        return Codes(self.z[idx], self.b[idx], self.p[idx], self.c[idx])


def sample_codes(
    n: int,
    *,
    n_parent: int,
    n_child: int,
    n_background: int | None = None,
    z_dim: int = 100,
    tie_background: bool = True,
    generator: torch.Generator | None = None,
    device="cpu",
) -> Codes:
    """Draw ``n`` code tuples: uniform child, its tied parent, and a background.

    Parameters
    ----------
    tie_background : bool
        Training mode (FineGAN): background code = child code, which needs
        ``n_background == n_child``. When False, b is drawn uniformly on its own.
    generator : torch.Generator, optional
        Source of randomness (on the CPU) for reproducible draws.
    """
    n_background = n_child if n_background is None else n_background
    z = torch.randn(n, z_dim, generator=generator)
    c = torch.randint(n_child, (n,), generator=generator)
    p = parent_of(c, n_parent, n_child)
    if tie_background:
        if n_background != n_child:
            raise ValueError("tied background codes need n_background == n_child")
        b = c.clone()
    else:
        b = torch.randint(n_background, (n,), generator=generator)
    return Codes(z, b, p, c).to(device)


def one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    """Float one-hot rows, shape (len(index), n)."""
    return F.one_hot(index, n).float()
