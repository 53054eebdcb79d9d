"""How tensors reach the device and at which precision networks run, decided from the device.

Every choice is a plain function of a ``torch.device`` (and the user's ``precision``), so
the CUDA branches are exercised by the tests on a machine without a GPU:

- **precision**: ``"bf16"`` runs the networks' forward passes under
  ``torch.autocast(dtype=torch.bfloat16)`` (convolutions and matrix products in bfloat16,
  weights, gradients, optimiser state and losses in float32; bfloat16 has float32's range,
  so no loss scaling is needed); ``"fp32"`` runs everything in float32. The default
  (``None`` or ``"auto"``) is bf16 on CUDA and fp32 elsewhere: CPU results stay
  bit-identical to fgdiscover's float32 runs. bf16 on the CPU is used only when asked for.
- **host-to-device copies**: on CUDA a batch is copied into page-locked (pinned) memory
  and sent with ``non_blocking=True``, so the copy overlaps the previous step's kernels;
  on the CPU the tensor is used as it is.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import FGDError

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(device, precision: str | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: ``precision`` as given, or by default bf16 on CUDA only.

    Raises
    ------
    FGDError
        An unknown precision.
    """
    if precision is None:
        precision = "auto"
    if precision not in PRECISIONS:
        raise FGDError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


@dataclass(frozen=True)
class Accel:
    """The decisions for one device: autocast dtype (None: float32) and copy strategy.

    Build it with :meth:`for_device`; it holds no CUDA state, so it can be built (and
    tested) for ``torch.device("cuda")`` on a machine without a GPU.
    """

    device: torch.device
    precision: str
    autocast_dtype: torch.dtype | None
    pin_memory: bool
    non_blocking: bool

    @classmethod
    def for_device(cls, device, precision: str | None = None) -> "Accel":
        device = torch.device(device)
        precision = resolve_precision(device, precision)
        cuda = device.type == "cuda"
        return cls(device=device, precision=precision,
                   autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
                   pin_memory=cuda, non_blocking=cuda)

    def autocast(self):
        """Context manager for forward passes: bf16 autocast, or nothing under fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (a CPU tensor) on the device: pinned and non-blocking on CUDA."""
        if self.pin_memory:
            x = x.pin_memory()
        return x.to(self.device, non_blocking=self.non_blocking)
