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
                 batch_size: int = 256, device="cpu", progress: bool = True) -> Embeddings:
    """Encode ``images`` batch by batch straight into memory-mapped .npy files.

    Parameters
    ----------
    images : uint8 array (n, R, R, 3), typically the decode cache's memmap
    files : sequence of n relative paths
    out : folder receiving the files listed in the module docstring
    """
    from .progress import progress_bar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(images)
    enc = encoder.to(device).eval()
    shapes = {"features": enc.feature_dim, "parent_probs": enc.n_parent,
              "child_probs": enc.n_child}
    # written under temporary names, renamed once complete: a killed run leaves no
    # half-written arrays that look finished
    arrays = {k: np.lib.format.open_memmap(out / f"{k}.tmp.npy", mode="w+", dtype=np.float32,
                                           shape=(n, d)) for k, d in shapes.items()}
    with open(out / "embeddings.tmp.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "parent_code", "parent_prob", "child_code", "child_prob"])
        for start in progress_bar(range(0, n, batch_size), enabled=progress, desc="embed",
                                  unit="batch"):
            stop = min(start + batch_size, n)
            h, pl, cl = enc(to_tensor(images[start:stop], device))
            pp, cp = pl.softmax(1).cpu().numpy(), cl.softmax(1).cpu().numpy()
            arrays["features"][start:stop] = h.cpu().numpy()
            arrays["parent_probs"][start:stop] = pp
            arrays["child_probs"][start:stop] = cp
            for i in range(stop - start):
                w.writerow([files[start + i], int(pp[i].argmax()), f"{pp[i].max():.4f}",
                            int(cp[i].argmax()), f"{cp[i].max():.4f}"])
    for k, a in arrays.items():
        a.flush()
        (out / f"{k}.tmp.npy").replace(out / f"{k}.npy")
    arrays.clear()  # release the write maps before the read-only reload below
    (out / "embeddings.tmp.csv").replace(out / "embeddings.csv")
    return Embeddings.load(out)
