"""Encode images with the inverse encoder, streaming: memory does not grow with n.

``embed_images`` writes into ``out``::

    features.npy      float32 (n, feature_dim)   encoder embedding
    parent_probs.npy  float32 (n, n_parent)      softmax of the parent head
    child_probs.npy   float32 (n, n_child)       softmax of the child head
    embeddings.csv    file, parent_code, parent_prob, child_code, child_prob
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .accel import Accel
from .models.encoder import InverseEncoder
from .train.gan import to_tensor


@dataclass(frozen=True)
class Embeddings:
    """Memory-mapped outputs of :func:`embed_images` (read-only)."""

    files: list[str]
    features: np.ndarray
    parent_probs: np.ndarray
    child_probs: np.ndarray

    @classmethod
    def load(cls, out: Path) -> "Embeddings":
        from .errors import FGDError

        out = Path(out)
        try:
            with open(out / "embeddings.csv", newline="") as f:
                files = [row["file"] for row in csv.DictReader(f)]
            arrays = [np.load(out / f"{k}.npy", mmap_mode="r")
                      for k in ("features", "parent_probs", "child_probs")]
        except (OSError, ValueError, KeyError) as e:
            raise FGDError(f"cannot read embeddings in {out}: {e}") from None
        return cls(files, *arrays)


@torch.no_grad()
def embed_images(encoder: InverseEncoder, images: np.ndarray, files, out: Path, *,
                 batch_size: int = 256, device="cpu", progress: bool = True,
                 precision: str | None = None) -> Embeddings | None:
    """Encode ``images`` batch by batch straight into memory-mapped .npy files.

    Under ``torchrun`` the work is sharded: of each run of ``batch_size * world_size``
    images, process ``rank`` encodes every ``world_size``-th from ``rank`` on (so over the
    whole set, ``images[rank::world_size]``), rank 0 gathers the shards and writes them in
    the original order; the other processes return None.

    Parameters
    ----------
    images : uint8 array (n, R, R, 3), typically the decode cache's memmap
    files : sequence of n relative paths
    out : folder receiving the files listed in the module docstring
    precision : {"auto", "bf16", "fp32"}, optional
        bf16 autocast by default on CUDA (:mod:`fgdiscover.accel`); outputs are float32.
    """
    from .progress import progress_bar

    world = distributed.current()
    accel = Accel.for_device(device, precision)
    out = Path(out)
    n = len(images)
    enc = encoder.to(device).eval()
    if not world.is_main:  # encode this process's shard, send it to rank 0
        chunk = batch_size * world.world_size
        for start in range(0, n, chunk):
            distributed.gather_to_main(
                _encode(enc, images[start + world.rank:min(start + chunk, n):world.world_size],
                        device, accel))
        distributed.barrier()
        return None
    out.mkdir(parents=True, exist_ok=True)
    shapes = {"features": enc.feature_dim, "parent_probs": enc.n_parent,
              "child_probs": enc.n_child}
    # written under temporary names, renamed once complete: a killed run leaves no
    # half-written arrays that look finished
    arrays = {k: np.lib.format.open_memmap(out / f"{k}.tmp.npy", mode="w+", dtype=np.float32,
                                           shape=(n, d)) for k, d in shapes.items()}
    with open(out / "embeddings.tmp.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "parent_code", "parent_prob", "child_code", "child_prob"])
        chunk, step = batch_size * world.world_size, world.world_size
        for start in progress_bar(range(0, n, chunk), enabled=progress, desc="embed",
                                  unit="batch"):
            stop = min(start + chunk, n)
            shards = distributed.gather_to_main(
                _encode(enc, images[start:stop:step], device, accel))
            for r, (h, pp, cp) in enumerate(shards):  # rank r holds start + r, + 2r, ...
                arrays["features"][start + r:stop:step] = h
                arrays["parent_probs"][start + r:stop:step] = pp
                arrays["child_probs"][start + r:stop:step] = cp
            pp = arrays["parent_probs"][start:stop]
            cp = arrays["child_probs"][start:stop]
            for i in range(stop - start):
                w.writerow([files[start + i], int(pp[i].argmax()), f"{pp[i].max():.4f}",
                            int(cp[i].argmax()), f"{cp[i].max():.4f}"])
    for k, a in arrays.items():
        a.flush()
        (out / f"{k}.tmp.npy").replace(out / f"{k}.npy")
    arrays.clear()  # release the write maps before the read-only reload below
    (out / "embeddings.tmp.csv").replace(out / "embeddings.csv")
    distributed.barrier()
    return Embeddings.load(out)


def _encode(enc: InverseEncoder, images: np.ndarray, device,
            accel: Accel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 features (m, d), parent and child probabilities of m images (m may be 0)."""
    if len(images) == 0:
        return (np.zeros((0, enc.feature_dim), np.float32), np.zeros((0, enc.n_parent),
                np.float32), np.zeros((0, enc.n_child), np.float32))
    with accel.autocast():
        h, pl, cl = enc(to_tensor(images, device, accel))
    return (h.float().cpu().numpy(), pl.float().softmax(1).cpu().numpy(),
            cl.float().softmax(1).cpu().numpy())
