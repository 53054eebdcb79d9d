"""Training the inverse encoder on FineGAN's own images, whose codes are known."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..accel import Accel
from ..errors import FGDError
from ..models.codes import sample_codes
from ..models.encoder import InverseEncoder, paste_objects, random_shift_flip
from ..models.finegan import FineGAN
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .gan import to_tensor

ENCODER = "encoder.pt"
ENCODER_FORMAT = "fgdiscover-encoder-1"


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of the encoder stage, which has two phases.

    1. **Generated images** (FineGAN's recipe): ``iters`` steps of ``batch_size`` images from
       the EMA generator, drawn with a FREE background code (not tied to the child as during
       GAN training) so that the encoder learns to ignore backgrounds; cross-entropy on the
       parent and child codes that made them.
    2. **Real images** (ours; ``real_iters`` steps of ``real_batch_size`` images, only
       images with an object box take part): each image's box is cut out and pasted at a
       random place, resized by a factor in ``paste_scale``, on a background drawn by
       FineGAN's background stage, twice; the two
       views must be recognised as the same image among the batch (SimCLR's contrastive
       loss, ``temperature``) through the embedding. Measured on the synthetic set
       (benchmarks/README.md): the fake-only encoder's clusters still follow the
       background; pasting the real objects onto generated backgrounds removes that.
    """

    iters: int = 500
    batch_size: int = 64
    lr: float = 2e-4
    width: int = 32
    feature_dim: int = 128
    max_shift: int = 4
    real_iters: int = 400
    real_batch_size: int = 128
    temperature: float = 0.2
    paste_scale: tuple[float, float] = (0.75, 1.25)
    seed: int = 0


ENCODER_PRESETS = {
    "paper": EncoderConfig(iters=30_000, batch_size=64, width=64, feature_dim=256, max_shift=16,
                           real_iters=5_000, real_batch_size=256),
    "cpu": EncoderConfig(),
    "tiny": EncoderConfig(iters=3, batch_size=4, width=4, feature_dim=8, max_shift=1,
                          real_iters=2, real_batch_size=4),
}


def fake_batch(gan: FineGAN, n: int, rng: torch.Generator, device):
    """n generated final images with the (free) codes that made them."""
    g = gan.generator_ema
    codes = sample_codes(n, n_parent=g.n_parent, n_child=g.n_child, z_dim=g.z_dim,
                         tie_background=False, generator=rng, device=device)
    with torch.no_grad():
        images = g(codes.z, codes.b, codes.p, codes.c)["child"]
    return images, codes


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each of the 2n views must pick its partner among the 2n - 1 others.

    a, b : Tensors of shape (n, d), the projections of two views of the same n images
    """
    z = F.normalize(torch.cat([a, b]).float(), dim=1)
    sim = z @ z.t() / temperature
    n = len(a)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, target)


def _projection(dim: int) -> nn.Module:
    """SimCLR's projection head; thrown away after training."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 64))


def train_encoder(gan: FineGAN, out: Path, cfg: EncoderConfig, *, real_images=None,
                  boxes=None, device="cpu", progress=True, log=None,
                  precision: str | None = None) -> InverseEncoder:
    """Train an :class:`InverseEncoder` for ``gan`` and save it to ``out``.

    Under ``torchrun`` the processes train it data-parallel, as FineGAN
    (:mod:`fgdiscover.distributed`): each draws its own ``batch_size`` fakes and real
    images, gradients are averaged, rank 0 saves it; every process returns the same
    weights. ``precision`` as in :func:`fgdiscover.train.gan.train_gan`.

    Parameters
    ----------
    gan : FineGAN (its EMA generator is used, in eval mode)
    out : Path of the encoder checkpoint to write
    real_images : uint8 array (n, R, R, 3), optional
        The data set; with ``boxes``, used by the real-image phase.
    boxes : float array (n, 4), optional
        Object boxes x, y, w, h in pixels of ``real_images``, NaN where unknown. Without
        any box the real-image phase is skipped (and ``log`` says so).
    log : callable taking a str, optional
    """
    from ..progress import progress_bar

    g = gan.generator_ema.eval()
    world = distributed.current()
    accel = Accel.for_device(device, precision)
    torch.manual_seed(cfg.seed)
    enc = InverseEncoder(resolution=g.resolution, n_parent=g.n_parent, n_child=g.n_child,
                         width=cfg.width, feature_dim=cfg.feature_dim).to(device).train()
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    distributed.broadcast_parameters(enc)
    distributed.average_gradients(opt)
    rng = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed, world.rank))
    progress = progress and world.is_main
    bar = progress_bar(range(cfg.iters), enabled=progress, desc="train encoder", unit="it",
                       dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        with accel.autocast():
            images, codes = fake_batch(gan, cfg.batch_size, rng, device)
            images = random_shift_flip(images, cfg.max_shift, rng)
            _, p_logits, c_logits = enc(images)
        loss_p = F.cross_entropy(p_logits.float(), codes.p)
        loss_c = F.cross_entropy(c_logits.float(), codes.c)
        loss = loss_p + loss_c
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        distributed.broadcast_buffers(enc)
        if step % 25 == 0:
            acc = (c_logits.argmax(1) == codes.c).float().mean().item()
            rate = (step + 1) * cfg.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(ce_p=f"{loss_p.item():.2f}", ce_c=f"{loss_c.item():.2f}",
                            acc_c=f"{acc:.2f}", img_s=f"{rate:.0f}")

    boxed = np.zeros(0, dtype=np.int64)
    if real_images is not None and boxes is not None:
        boxed = np.flatnonzero(np.isfinite(np.asarray(boxes, dtype=np.float32)).all(1))
    if cfg.real_iters > 0 and len(boxed) >= 2:
        _train_on_real(enc, g, real_images, np.asarray(boxes, np.float32), boxed, cfg, rng,
                       device, progress, accel)
    elif cfg.real_iters > 0 and log is not None and world.is_main:
        log("no object boxes: the encoder's real-image phase is skipped (clusters may follow "
            "backgrounds; give boxes with --bboxes, see README)")
    enc.eval()
    if world.enabled:
        distributed.check_in_sync(enc, "encoder weights")
    if world.is_main:
        save_checkpoint({"format": ENCODER_FORMAT, "dims": enc.dims(),
                         "config": dataclasses.asdict(cfg), "state": enc.state_dict()}, out)
    distributed.barrier()
    return enc


def _train_on_real(enc: InverseEncoder, g, images, boxes: np.ndarray, boxed: np.ndarray,
                   cfg: EncoderConfig, rng: torch.Generator, device, progress: bool,
                   accel: Accel | None = None) -> None:
    """Phase 2 of :class:`EncoderConfig`: contrastive views of real objects on generated
    backgrounds."""
    from ..progress import progress_bar

    accel = accel or Accel.for_device(device)
    head = _projection(enc.feature_dim).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=cfg.lr)
    distributed.broadcast_parameters(head)
    distributed.average_gradients(opt)
    n = min(cfg.real_batch_size, len(boxed))
    bar = progress_bar(range(cfg.real_iters), enabled=progress, desc="encoder on real images",
                       unit="it", dynamic_ncols=True)

    def view(real, box):
        codes = sample_codes(len(real), n_parent=g.n_parent, n_child=g.n_child, z_dim=g.z_dim,
                             tie_background=False, generator=rng, device=device)
        with torch.no_grad():
            backdrop = g.render_background(codes.z, codes.b)
        return paste_objects(real, box, backdrop, rng, scale=tuple(cfg.paste_scale))

    for step in bar:
        pick = boxed[torch.randint(len(boxed), (n,), generator=rng).numpy()]
        real = to_tensor(images[np.sort(pick)], device, accel)
        box = torch.from_numpy(boxes[np.sort(pick)])
        va, vb = view(real, box), view(real, box)
        with accel.autocast():
            pa, pb = head(enc(va)[0]), head(enc(vb)[0])
        loss = nt_xent(pa, pb, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        distributed.broadcast_buffers(enc)
        if step % 25 == 0:
            bar.set_postfix(contrastive=f"{loss.item():.2f}")


def load_encoder(path: Path, device="cpu") -> InverseEncoder:
    """An encoder saved by :func:`train_encoder`, in eval mode (loaded with
    ``weights_only=True``; its dimensions are checked before a network is built)."""
    ckpt = load_checkpoint(path, map_location=device, kind=ENCODER_FORMAT)
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
