"""Baseline clustering methods, run in the same harness as fgdiscover (same images, same
k, same metrics): k-means on raw pixels, DEPICT, InfoGAN and JULE.

Every baseline is a module with a frozen config dataclass, ``PRESETS`` (``tiny`` for
tests, ``cpu`` for 2 CPU cores, ``paper`` for a GPU) and one function::

    fit_predict(images, k, *, config, seed=0, device="cpu", progress=False) -> labels

with ``images`` a uint8 array of shape (n, R, R, 3) (R a power of two >= 8) and ``labels``
an int64 array of shape (n,). :data:`BASELINES` registers them by name::

    >>> from fgdiscover.baselines import BASELINES
    >>> labels = BASELINES["depict"].fit_predict(images, k=12, preset="cpu")
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

from fgdiscover.baselines import depict, infogan, jule, pixels
from fgdiscover.errors import FGDError


@dataclass(frozen=True)
class Baseline:
    """One registered baseline.

    Attributes
    ----------
    name : str
        Key in :data:`BASELINES` and the method name in benchmark results.
    module : module
        Defines ``fit_predict`` and ``PRESETS``.
    original : str
        The paper it follows.
    differences : str
        How this implementation differs from the original (printed in reports).
    """

    name: str
    module: ModuleType
    original: str
    differences: str

    def config(self, preset: str = "cpu"):
        """The config of ``preset``; FGDError naming the choices otherwise."""
        try:
            return self.module.PRESETS[preset]
        except KeyError:
            raise FGDError(f"unknown preset {preset!r} for {self.name}; choose from "
                           f"{', '.join(self.module.PRESETS)}") from None

    def fit_predict(self, images: np.ndarray, k: int, *, preset: str = "cpu", config=None,
                    seed: int = 0, device: str = "cpu", progress: bool = False) -> np.ndarray:
        """Labels of shape (n,) for ``images`` of shape (n, R, R, 3); ``config``
        overrides ``preset``."""
        fn: Callable = self.module.fit_predict
        return fn(images, k, config=config or self.config(preset), seed=seed, device=device,
                  progress=progress)


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("pixels", pixels, "k-means on raw pixels",
             "FAISS k-means (k-means++, 5 restarts) on the flattened RGB values of the "
             "same decoded images"),
    Baseline("depict", depict, "DEPICT (Ghasedi Dizaji et al., ICCV 2017)",
             "smaller conv autoencoder and fewer iterations; softmax head initialised from "
             "k-means on the embedding; Gaussian input noise instead of dropout; "
             "reconstruction loss on the output only, not per layer"),
    Baseline("infogan", infogan, "InfoGAN (Chen et al., NeurIPS 2016)",
             "small DCGAN-style networks, spectral norm in D, non-saturating logistic loss, "
             "one k-way categorical code and no continuous codes, few iterations"),
    Baseline("jule", jule, "JULE (Yang et al., CVPR 2016)",
             "initial clusters from k-means on pixels (JULE: k-NN graph); merges by average "
             "linkage of cluster mean features on a fixed geometric schedule (JULE: graph-"
             "degree linkage, unrolling rate); CNN updated with a softmax head over the "
             "current clusters (JULE: weighted triplet loss); small CNN, few iterations"),
)}


def get(name: str) -> Baseline:
    """The baseline called ``name``; FGDError naming the choices otherwise."""
    try:
        return BASELINES[name]
    except KeyError:
        raise FGDError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None
