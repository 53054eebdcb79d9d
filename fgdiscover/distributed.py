"""Data-parallel runs under ``torchrun``: one process per GPU (or CPU process), on one
node or several.

``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address;
:func:`setup` reads them, joins the process group (NCCL on CUDA, gloo on the CPU) and gives
each process its device (``cuda:LOCAL_RANK``). Without them (a plain ``fgdiscover``
command) every function here is a no-op for a world of one process.

What is synchronised, and how (README, "Scale-out"):

- **gradients**: averaged over the processes by an all-reduce registered as a step
  pre-hook on each optimiser (:func:`average_gradients`), i.e. right before
  ``optimizer.step()``. This is what ``DistributedDataParallel`` does, without its
  module wrapper: FineGAN's step calls discriminator methods other than ``forward``
  (``code_logits``, ``real_fake_logits``), runs each discriminator several times per
  backward and leaves some parameters without gradient in each phase, none of which
  DDP's forward-hooked reducer handles without ``find_unused_parameters`` /
  ``static_graph`` workarounds. The cost is that communication does not overlap the
  backward pass (one flat all-reduce per optimiser step).
- **buffers** (BatchNorm running statistics, spectral-norm vectors, the EMA generator's
  copies of them): broadcast from rank 0 after every step, as DDP broadcasts them before
  every forward pass.
- **weights** start from rank 0's and, since every process applies the same averaged
  gradients, stay identical; :func:`check_in_sync` compares a digest of every process's
  weights before each checkpoint and stops the run if they differ.
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist

from .errors import FGDError


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, logs and progress bars."""
        return self.rank == 0


def world_from_env(env=None) -> World:
    """The :class:`World` that ``torchrun``'s environment variables describe."""
    env = os.environ if env is None else env
    try:
        w = World(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                  local_rank=int(env.get("LOCAL_RANK", 0)))
    except ValueError:
        raise FGDError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") \
            from None
    if w.world_size < 1 or not 0 <= w.rank < w.world_size or w.local_rank < 0:
        raise FGDError(f"inconsistent torchrun environment: RANK={w.rank}, "
                       f"WORLD_SIZE={w.world_size}, LOCAL_RANK={w.local_rank}")
    return w


def current() -> World:
    """The world of the joined process group, or a single process."""
    if tdist.is_available() and tdist.is_initialized():
        return World(rank=tdist.get_rank(), world_size=tdist.get_world_size(),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def process_device(device, world: World) -> torch.device:
    """The device of this process: ``device`` (``"cpu"``, ``"cuda"``; default CUDA when
    available), on CUDA the GPU ``LOCAL_RANK`` when several processes run.

    Raises
    ------
    FGDError
        CUDA asked for where torch sees no GPU, a GPU index that does not exist, or an
        explicit GPU index under torchrun (each process takes ``cuda:LOCAL_RANK``).
    """
    if device:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise FGDError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    else:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise FGDError(f"--device {device} asked for CUDA but torch sees no CUDA GPU here "
                       "(use --device cpu)")
    if world.enabled:
        if dev.index is not None:
            raise FGDError(f"under torchrun give --device cuda, not {device}: each process "
                           "uses the GPU of its LOCAL_RANK")
        dev = torch.device("cuda", world.local_rank)
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise FGDError(f"{dev} does not exist: torch sees {torch.cuda.device_count()} GPU(s)"
                       + (" (more processes per node than GPUs?)" if world.enabled else ""))
    return dev


def setup(device=None, timeout_min: float = 60.0) -> tuple[World, torch.device]:
    """Join the process group of a ``torchrun`` launch (once) and pick this process's device.

    Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised. ``timeout_min``
    bounds how long a process waits for the others at a collective (rank 0 writes
    checkpoints while the others wait).
    """
    world = world_from_env()
    dev = process_device(device, world)
    if not world.enabled:
        return world, dev
    if tdist.is_initialized():
        return current(), dev
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # NCCL and object collectives use the current device
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        tdist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min))
    except (RuntimeError, ValueError) as e:
        raise FGDError(f"cannot join the torchrun process group ({backend}): "
                       f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    atexit.register(_teardown)
    return current(), dev


def _teardown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def barrier() -> None:
    if current().enabled:
        tdist.barrier()


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own random stream: ``seed`` itself on rank 0 (a single
    process draws exactly what it drew before), an independent stream on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def _coalesced(tensors, fn) -> None:
    """Apply the in-place collective ``fn`` to ``tensors`` as one flat tensor per dtype."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault((t.dtype, t.device), []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        fn(flat)
        offset = 0
        for t in group:
            t.detach().copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Make ``optimizer.step()`` first average every gradient over the processes.

    Parameters without a gradient (none in every process, as the step is the same code
    everywhere) are left out, as Adam leaves them out.
    """
    world = current()
    if not world.enabled:
        return

    def hook(opt, args, kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"]
                 if p.grad is not None]
        if grads:
            def mean(flat):
                tdist.all_reduce(flat)
                flat.div_(world.world_size)
            _coalesced(grads, mean)

    optimizer.register_step_pre_hook(hook)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers everywhere (at the start of a run)."""
    if current().enabled:
        _coalesced(list(module.parameters()) + list(module.buffers()),
                   lambda flat: tdist.broadcast(flat, 0))


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics, spectral-norm vectors) everywhere."""
    if current().enabled:
        buffers = list(module.buffers())
        if buffers:
            _coalesced(buffers, lambda flat: tdist.broadcast(flat, 0))


def mean_over_ranks(values, device):
    """The mean over the processes of a dict of floats, or of a tensor (left on its
    device, no host synchronisation). A NaN anywhere is a NaN everywhere, so every process
    stops at the same step."""
    world = current()
    if not world.enabled:
        return values
    if torch.is_tensor(values):
        t = values.detach().clone()
        tdist.all_reduce(t)
        return t.div_(world.world_size)
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return dict(zip(values, (t / world.world_size).tolist()))


def gather_objects(obj) -> list:
    """``obj`` of every process, in rank order (on every process)."""
    world = current()
    if not world.enabled:
        return [obj]
    out = [None] * world.world_size
    tdist.all_gather_object(out, obj)
    return out


def gather_to_main(obj) -> list | None:
    """``obj`` of every process in rank order on rank 0, None on the others."""
    world = current()
    if not world.enabled:
        return [obj]
    out = [None] * world.world_size if world.is_main else None
    tdist.gather_object(obj, out, dst=0)
    return out


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``module`` (bitwise, in state-dict order)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_in_sync(module: torch.nn.Module, what: str = "weights") -> str:
    """The digest of ``module``, the same in every process; FGDError (in every process)
    naming the ranks whose ``what`` differ from rank 0's."""
    digests = gather_objects(state_digest(module))
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise FGDError(f"the processes' {what} have drifted apart: rank(s) "
                       f"{', '.join(map(str, differ))} differ from rank 0")
    return digests[0]
