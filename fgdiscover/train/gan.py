"""FineGAN training: one step function, the hard-negative miner and the loop around them."""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..accel import Accel
from ..errors import FGDError
from ..models.codes import Codes, parent_of, sample_codes
from ..models.finegan import FineGAN, accumulate, ema_decay
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .config import GANConfig
from .losses import (bce, code_log_likelihood, d_adversarial_loss, d_patch_loss,
                     g_adversarial_loss, info_loss, mask_area_loss, mask_binary_loss)

CHECKPOINT = "checkpoints/last.pt"
CHECKPOINT_FORMAT = "fgdiscover-finegan-2"  # 2: loadable with weights_only=True
NETWORKS = ("generator", "generator_ema", "d_background", "d_parent", "d_child")
LOSS_NAMES = ("d_bg", "d_child", "g_bg", "g_child", "info_p", "info_c", "mask")


def reads_losses_every_step(device: torch.device) -> bool:
    """Whether the training loop reads the losses back at every step (the CPU: free) or
    only at log and checkpoint steps (a GPU: a read waits for the queued work, and the
    next step's kernels could not be queued meanwhile). NaN checks follow the reads."""
    return device.type == "cpu"


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU; FGDError for CUDA
    where torch sees no GPU (a one-line error instead of a CUDA traceback later)."""
    return distributed.process_device(device, distributed.World())


def build_finegan(cfg: GANConfig) -> FineGAN:
    return FineGAN(resolution=cfg.resolution, n_parent=cfg.n_parent, n_child=cfg.n_child,
                   z_dim=cfg.z_dim, ngf=cfg.ngf, ndf=cfg.ndf, n_res=cfg.n_res,
                   child_within_parent=cfg.child_within_parent, d_norm=cfg.d_norm)


@dataclass
class Optimizers:
    """``d``: D_b and D_c (adversarial terms). ``g``: the generator together with D_p and
    D_c's code head, which are trained on the information terms as in FineGAN."""

    d: torch.optim.Optimizer
    g: torch.optim.Optimizer


def make_optimizers(m: FineGAN, cfg: GANConfig) -> Optimizers:
    code_head = set(m.d_child.code_head_parameters())
    d_params = list(m.d_background.parameters()) + [
        p for p in m.d_child.parameters() if p not in code_head]
    g_params = (list(m.generator.parameters()) + list(m.d_parent.parameters())
                + list(m.d_child.code_head_parameters()))
    adam = dict(lr=cfg.lr, betas=tuple(cfg.betas))
    return Optimizers(torch.optim.Adam(d_params, **adam), torch.optim.Adam(g_params, **adam))


def fill_missing_boxes(bboxes: torch.Tensor, resolution: int, band: float) -> torch.Tensor:
    """Replace NaN boxes by the central box left inside a border band.

    Without a bounding box, D_b's auxiliary head learns "background" from the band of
    ``band * resolution`` pixels along each edge and ignores the centre for real/fake.
    """
    margin = band * resolution
    centre = bboxes.new_tensor([margin, margin, resolution - 2 * margin, resolution - 2 * margin])
    missing = torch.isnan(bboxes).any(dim=1, keepdim=True)
    return torch.where(missing, centre.expand_as(bboxes), bboxes)


def parent_info_input(out: dict, cfg: GANConfig) -> torch.Tensor:
    """What D_p sees: P_m * P_f (FineGAN) or the parent mask alone as a grey image."""
    if cfg.parent_info == "mask":
        return (out["parent_mask"] * 2 - 1).expand(-1, 3, -1, -1)
    return out["parent_fg"] * out["parent_mask"]


def _pairs(d, a: torch.Tensor, b: torch.Tensor, batched: bool):
    """``d(a), d(b)`` for a module (or function) ``d`` returning a tensor or a tuple of them:
    with ``batched`` through one pass over ``cat([a, b])`` (half the calls, larger
    convolutions), else through two passes."""
    if not batched:
        return d(a), d(b)
    out, n = d(torch.cat([a, b])), len(a)
    if torch.is_tensor(out):
        return out[:n], out[n:]
    return tuple(o[:n] for o in out), tuple(o[n:] for o in out)


def train_step(m: FineGAN, opt: Optimizers, real: torch.Tensor, bboxes: torch.Tensor,
               codes: Codes, cfg: GANConfig, step: int = 10**9, *,
               batched: bool | None = None, sync: bool = True,
               autocast=contextlib.nullcontext):
    """One FineGAN iteration: a discriminator update, then a generator update.

    Parameters
    ----------
    real : Tensor of shape (n, 3, R, R) in [-1, 1]
    bboxes : Tensor of shape (n, 4), object boxes x, y, w, h in pixels (no NaN)
    codes : Codes for n fakes (b tied to c during training)
    step : int
        Steps done so far (ramps up the EMA decay).
    batched : bool, optional
        Run the pairs of discriminator passes that share a network (D_b on real and fake
        backgrounds; D_c on real and fake images; D_c's trunk under its real/fake and code
        heads) as one pass over both batches: 3 fewer trunk passes per step, ~5% faster on
        the CPU (benchmarks/train_profile.py). Default: when the discriminators have no
        batch statistics (``d_norm="spectral"``); with batch norm two passes keep FineGAN's
        separate real and fake statistics. The losses are the same either way; only the
        spectral norm's power iteration runs once per pair instead of twice.

    sync : bool
        Read the losses back (one transfer). ``False`` leaves them on the device, so that
        a GPU is not waited for at every step.
    autocast : callable returning a context manager
        Wraps the forward passes (:meth:`fgdiscover.accel.Accel.autocast`: bf16 on CUDA);
        the losses cast their inputs to float32 and the backward passes run outside it.

    Returns
    -------
    dict of float losses (``sync``) or a tensor of them in :data:`LOSS_NAMES` order.
    """
    g, d_b, d_p, d_c = m.generator, m.d_background, m.d_parent, m.d_child
    if batched is None:
        batched = cfg.d_norm == "spectral"
    background_patch = (~d_b.geometry.object_overlap(bboxes)).float()  # 1 = background

    # -- discriminators: D_b on real vs generated backgrounds, D_c on real vs final images
    opt.d.zero_grad(set_to_none=True)
    with autocast():
        out = g(codes.z, codes.b, codes.p, codes.c)
        (real_rf, real_bg), (fake_rf, _) = _pairs(d_b, real, out["background"].detach(),
                                                  batched)
        loss_db = cfg.bg_weight * (d_patch_loss(real_rf, fake_rf, background_patch)
                                   + bce(real_bg, background_patch))
        loss_dc = d_adversarial_loss(*_pairs(d_c.real_fake_logits, real,
                                             out["child"].detach(), batched))
    (loss_db + loss_dc).backward()
    opt.d.step()

    # -- generator (+ D_p and D_c's code head on the information terms)
    opt.g.zero_grad(set_to_none=True)
    with autocast():
        fake_rf, fake_bg = d_b(out["background"])
        loss_gb = (cfg.bg_weight * g_adversarial_loss(fake_rf)
                   + cfg.bg_aux_weight * bce(fake_bg, 1.0))
        h_child, h_fg = _pairs(d_c.trunk, out["child"], out["child_fg"] * out["child_mask"],
                               batched)
        loss_gc = g_adversarial_loss(d_c.real_fake(h_child).flatten())
        loss_info_p = info_loss(d_p.code_logits(parent_info_input(out, cfg)), codes.p)
        loss_info_c = info_loss(d_c.code_head(h_fg).flatten(1), codes.c)
        loss_mask = (cfg.mask_weight * mask_area_loss(out["parent_mask"], *cfg.mask_area)
                     + cfg.binary_weight * (mask_binary_loss(out["parent_mask"])
                                            + mask_binary_loss(out["child_mask"])))
    (loss_gb + loss_gc + loss_info_p + loss_info_c + loss_mask).backward()
    opt.g.step()
    accumulate(m.generator_ema, g, ema_decay(step, cfg.ema_decay))
    values = torch.stack([v.detach().float() for v in (
        loss_db, loss_dc, loss_gb, loss_gc, loss_info_p, loss_info_c, loss_mask)])
    return dict(zip(LOSS_NAMES, values.tolist())) if sync else values


@torch.no_grad()
def child_code_recovery(m: FineGAN, cfg: GANConfig, device, seed: int = 0) -> dict:
    """Collapse indicator: how many child codes D_c's code head tells apart in EMA images.

    Every child code is drawn equally often (at least twice, at least a batch in all), with
    fixed noise from ``seed``; a code counts as recovered when most of its images are
    predicted as that code. A generator whose children all look alike scores few codes.
    Reads the networks in eval mode and restores their modes: no training state (batch
    statistics, spectral-norm vectors, random streams) changes.

    Returns
    -------
    dict with ``codes_recovered`` (int, out of ``cfg.n_child``) and ``code_acc`` (float,
    the fraction of probe images whose child code is predicted correctly).
    """
    reps = max(2, -(-cfg.batch_size // cfg.n_child))
    rng = torch.Generator().manual_seed(seed)
    c = torch.arange(cfg.n_child).repeat(reps)
    codes = Codes(torch.randn(len(c), cfg.z_dim, generator=rng), c.clone(),
                  parent_of(c, cfg.n_parent, cfg.n_child), c).to(device)
    g, d_c = m.generator_ema, m.d_child
    modes = g.training, d_c.training
    g.eval(), d_c.eval()
    try:
        out = g(codes.z, codes.b, codes.p, codes.c)
        pred = d_c.code_logits(out["child_fg"] * out["child_mask"]).argmax(1).cpu()
    finally:
        g.train(modes[0]), d_c.train(modes[1])
    hits = (pred == c).float().view(reps, cfg.n_child).mean(0)
    return {"codes_recovered": int((hits > 0.5).sum()), "code_acc": float(hits.mean())}


def _check_finite(losses: dict, step: int, ckpt_path: Path) -> None:
    """FGDError naming the non-finite losses at ``step``; the last checkpoint is kept."""
    bad = [k for k, v in losses.items() if not np.isfinite(v)]
    if bad:
        shown = ", ".join(f"{k}={losses[k]}" for k in bad)
        raise FGDError(f"training diverged at step {step} ({shown}); the last good checkpoint "
                       f"{ckpt_path} is kept (see README, 'Training health')")


def _weights_finite(m: FineGAN) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in m.state_dict().values()
               if t.is_floating_point())


@torch.no_grad()
def mine_hard_codes(m: FineGAN, n: int, cfg: GANConfig, rng: torch.Generator,
                    device) -> Codes:
    """FineGAN's hard negatives: of ``hard_negative_factor * n`` sampled codes, the ``n``
    whose own child code D_c's code head scores lowest on the generated child foreground."""
    pool = sample_codes(n * cfg.hard_negative_factor, n_parent=cfg.n_parent,
                        n_child=cfg.n_child, z_dim=cfg.z_dim, generator=rng, device=device)
    was_training = m.training
    m.eval()
    out = m.generator(pool.z, pool.b, pool.p, pool.c)
    score = code_log_likelihood(m.d_child.code_logits(out["child_fg"] * out["child_mask"]),
                                pool.c)
    m.train(was_training)
    return pool.index(torch.argsort(score)[:n])


def to_tensor(images: np.ndarray, device, accel: Accel | None = None) -> torch.Tensor:
    """uint8 images (n, H, W, 3) -> float tensor (n, 3, H, W) in [-1, 1] on ``device``
    (sent as uint8, pinned and non-blocking on CUDA: see :mod:`fgdiscover.accel`)."""
    # a copy: batches may be read-only views of the decode cache's memmap
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    x = (accel or Accel.for_device(device)).to_device(x)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class BatchSampler:
    """Shuffled epochs of indices with random horizontal flips, from a numpy Generator
    whose state goes into the checkpoint (resume continues the same sequence).

    With ``world_size`` processes (torchrun) it behaves as ``DistributedSampler``: every
    process draws the same shuffled order and flips (same seed), takes a global batch of
    ``batch_size * world_size`` indices and keeps every ``world_size``-th of them from
    ``rank`` on; ``batch_size`` is per process. Rank 0's state is every rank's state, so
    one checkpoint resumes them all. One process draws exactly what it drew before.
    """

    def __init__(self, images: np.ndarray, bboxes: np.ndarray, batch_size: int, seed: int,
                 *, rank: int = 0, world_size: int = 1):
        if len(images) < 2 * world_size:
            raise FGDError(f"training needs at least 2 images per process ({2 * world_size} "
                           f"for {world_size}), got {len(images)}")
        self.images, self.bboxes = images, np.asarray(bboxes, dtype=np.float32)
        self.rank, self.world_size = rank, world_size
        self.batch_size = min(batch_size * world_size, len(images))  # the global batch
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(len(images)), 0

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.images)), 0
        idx = np.sort(self.order[self.pos:self.pos + self.batch_size])
        self.pos += self.batch_size
        flip = self.rng.random(len(idx)) < 0.5
        idx, flip = idx[self.rank::self.world_size], flip[self.rank::self.world_size]
        imgs, boxes = self.images[idx], self.bboxes[idx].copy()
        imgs[flip] = imgs[flip, :, ::-1]
        width = imgs.shape[2]
        boxes[flip, 0] = width - boxes[flip, 0] - boxes[flip, 2]
        return imgs, boxes

    def state(self) -> dict:
        """Plain values and a tensor only (checkpoints load with ``weights_only=True``)."""
        return {"rng": self.rng.bit_generator.state,
                "order": torch.from_numpy(np.asarray(self.order, dtype=np.int64).copy()),
                "pos": int(self.pos)}

    def load_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]
        self.order, self.pos = torch.as_tensor(s["order"]).numpy(), int(s["pos"])


def _state(m, opt, cfg, step, code_rng, sampler, code_states=None) -> dict:
    """The checkpoint; ``code_states``: every process's code generator state (torchrun)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(cfg.to_json()),  # validated by GANConfig.from_json on load
        "step": step,
        "generator": m.generator.state_dict(),
        "generator_ema": m.generator_ema.state_dict(),
        "d_background": m.d_background.state_dict(),
        "d_parent": m.d_parent.state_dict(),
        "d_child": m.d_child.state_dict(),
        "opt_d": opt.d.state_dict(),
        "opt_g": opt.g.state_dict(),
        "rng": {"codes": code_rng.get_state(), "batches": sampler.state(),
                "torch": torch.get_rng_state(), "python": random.getstate(),
                "world_size": sampler.world_size,
                **({"codes_by_rank": code_states} if code_states else {})},
    }


def _read_checkpoint(path: Path, device) -> tuple[dict, GANConfig]:
    """A FineGAN checkpoint loaded safely, with its validated config."""
    ckpt = load_checkpoint(path, map_location=device, kind=CHECKPOINT_FORMAT)
    try:
        cfg = GANConfig.from_json(json.loads(ckpt["config"]))
    except (KeyError, TypeError, ValueError, FGDError) as e:
        raise FGDError(f"{path}: invalid config ({e})") from None
    missing = [k for k in (*NETWORKS, "step", "opt_d", "opt_g", "rng") if k not in ckpt]
    if missing:
        raise FGDError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return ckpt, cfg


def _load_networks(m: FineGAN, ckpt: dict, path: Path) -> None:
    for name in NETWORKS:
        load_weights(getattr(m, name), ckpt[name], path, name)


def load_finegan(run_dir: Path, device="cpu") -> tuple[FineGAN, GANConfig, dict]:
    """The FineGAN of a run directory (its last checkpoint), in eval mode."""
    path = Path(run_dir) / CHECKPOINT
    ckpt, cfg = _read_checkpoint(path, device)
    m = build_finegan(cfg).to(device)
    _load_networks(m, ckpt, path)
    return m.eval(), cfg, ckpt


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step``: an interrupted run logged steps its checkpoint lacks."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill
            continue
    path.write_text("".join(line + "\n" for line in keep))


def ensure_new_run(run_dir: Path) -> None:
    """FGDError when ``run_dir`` already holds a checkpoint (it would be overwritten)."""
    if (Path(run_dir) / CHECKPOINT).exists():
        raise FGDError(f"{run_dir} already holds a training run; pass --resume to continue "
                       "it, --overwrite to replace it, or choose another --out")


# what a training run writes into its directory (the encoder depends on the GAN)
RUN_FILES = (CHECKPOINT, "log.jsonl", "config.json", "encoder.pt")


def clear_run(run_dir: Path) -> None:
    """Remove a training run's files from ``run_dir`` (``--overwrite``); others stay."""
    for name in RUN_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)


def train_gan(images: np.ndarray, bboxes: np.ndarray, run_dir: Path, cfg: GANConfig, *,
              resume: bool = False, device=None, progress: bool = True,
              stop_after: int | None = None, precision: str | None = None) -> Path:
    """Train (or continue training) FineGAN on decoded images.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this function on its own
    device and its own share of each batch (``cfg.batch_size`` images per process); the
    gradients are averaged, rank 0 writes the log and the checkpoints
    (:mod:`fgdiscover.distributed`, README "Scale-out").

    Parameters
    ----------
    images : uint8 array of shape (n, R, R, 3) (a memmap is fine: batches are copied)
    bboxes : float array of shape (n, 4), x, y, w, h in pixels, NaN rows where unknown
    run_dir : Path
        Receives config.json, log.jsonl, checkpoints/last.pt and samples/.
    resume : bool
        Continue from ``run_dir``'s checkpoint (same config, same step, same RNG streams).
    stop_after : int, optional
        Stop after this many steps in this call (the run stays resumable).
    precision : {"auto", "bf16", "fp32"}, optional
        Forward passes under bf16 autocast or in float32; default bf16 on CUDA, fp32 on
        the CPU (:mod:`fgdiscover.accel`).

    Returns
    -------
    Path of the checkpoint.

    Raises
    ------
    FGDError
        A loss (checked every step) or a weight (checked before each checkpoint) is NaN or
        Inf: the run stops at that step and the last good checkpoint is kept.
    """
    run_dir = Path(run_dir).resolve()
    ckpt_path = run_dir / CHECKPOINT
    world, device = distributed.setup(device)
    accel = Accel.for_device(device, precision)
    if images.shape[1] != cfg.resolution:
        raise FGDError(f"images are {images.shape[1]} px, the model wants {cfg.resolution} px")
    if not resume:
        ensure_new_run(run_dir)
    for stale in (ckpt_path.parent.glob(f"{ckpt_path.name}*.tmp")  # a write cut short
                  if world.is_main else ()):
        stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    m = build_finegan(cfg).to(device).train()
    opt = make_optimizers(m, cfg)
    # the codes of each process's fakes are its own (rank 0's are a single process's)
    code_rng = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed, world.rank))
    sampler = BatchSampler(images, bboxes, cfg.batch_size, cfg.seed, rank=world.rank,
                           world_size=world.world_size)
    step = 0
    if resume and ckpt_path.exists():
        ckpt, saved = _read_checkpoint(ckpt_path, device)
        if saved.replace(iters=cfg.iters) != cfg:
            raise FGDError(f"{run_dir} was trained with other settings; only --iters may change "
                           "on --resume")
        _load_networks(m, ckpt, ckpt_path)
        opt.d.load_state_dict(ckpt["opt_d"])
        opt.g.load_state_dict(ckpt["opt_g"])
        step = int(ckpt["step"])
        saved_world = int(ckpt["rng"].get("world_size", 1))
        if saved_world != world.world_size:
            raise FGDError(f"{run_dir} was trained by {saved_world} process(es); resume it "
                           f"with as many (now {world.world_size})")
        code_rng.set_state(ckpt["rng"]["codes_by_rank"][world.rank] if world.enabled
                           else ckpt["rng"]["codes"])
        sampler.load_state(ckpt["rng"]["batches"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        random.setstate(ckpt["rng"]["python"])
        if world.is_main:
            _truncate_log(run_dir / "log.jsonl", step)
    elif world.is_main:  # no checkpoint: lines an attempt killed before its first one logged
        (run_dir / "log.jsonl").unlink(missing_ok=True)  # are void
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / "config.json")
    m.generator_ema.eval()
    distributed.broadcast_parameters(m)  # every process starts from rank 0's weights
    distributed.average_gradients(opt.d)
    distributed.average_gradients(opt.g)

    from ..progress import progress_bar

    end = cfg.iters if stop_after is None else min(cfg.iters, step + stop_after)
    bar = progress_bar(total=cfg.iters, initial=step, enabled=progress and world.is_main,
                       unit="it",
                       desc="train FineGAN", dynamic_ncols=True)
    hard_start = cfg.iters - cfg.hard_negative_iters
    t0, seen = time.perf_counter(), 0
    every_step, ok, since = reads_losses_every_step(device), None, 0
    with open(run_dir / "log.jsonl" if world.is_main else os.devnull, "a") as log:
        while step < end:
            imgs, boxes = sampler.next()
            real = to_tensor(imgs, device, accel)
            boxes = fill_missing_boxes(accel.to_device(torch.from_numpy(boxes)),
                                       cfg.resolution, cfg.border_band)
            n = real.shape[0]
            if step >= hard_start and (step - hard_start) % 2 == 1:
                codes = mine_hard_codes(m, n, cfg, code_rng, device)
            else:
                codes = sample_codes(n, n_parent=cfg.n_parent, n_child=cfg.n_child,
                                     z_dim=cfg.z_dim, generator=code_rng, device=device)
            values = train_step(m, opt, real, boxes, codes, cfg, step, sync=every_step,
                                autocast=accel.autocast)
            if world.enabled:  # losses averaged over processes: all stop at the same NaN
                values = distributed.mean_over_ranks(values, device)
                distributed.broadcast_buffers(m)
            step += 1
            seen += sampler.batch_size  # images of all processes (img/s is the global rate)
            if every_step:
                losses = values
                _check_finite(losses, step, ckpt_path)
            else:  # a running flag on the device, read with the losses at log/checkpoints
                ok = torch.isfinite(values).all() & (True if ok is None else ok)
                if (step % cfg.log_every == 0 or step % cfg.checkpoint_every == 0
                        or step == end):
                    losses = dict(zip(LOSS_NAMES, values.tolist()))
                    _check_finite(losses, step, ckpt_path)
                    if not bool(ok):
                        raise FGDError(f"training diverged after step {step - since}, by step "
                                       f"{step} (a non-finite loss); the last good checkpoint "
                                       f"{ckpt_path} is kept")
                    ok, since = None, 0
                since += 1
            rate = seen / (time.perf_counter() - t0)
            if world.is_main and (step % cfg.log_every == 0 or step == end):
                health = child_code_recovery(m, cfg, device, seed=cfg.seed)
                log.write(json.dumps({"step": step, **losses, **health, "img_per_s": rate})
                          + "\n")
                log.flush()
                bar.set_postfix({k: f"{v:.2f}" for k, v in losses.items()}
                                | {"codes": f"{health['codes_recovered']}/{cfg.n_child}",
                                   "img/s": f"{rate:.0f}"})
            bar.update(1)
            if step % cfg.checkpoint_every == 0 or step == end:
                if not _weights_finite(m):  # finite losses, but the last update overflowed
                    raise FGDError(f"training diverged at step {step} (non-finite weights); "
                                   f"the last good checkpoint {ckpt_path} is kept")
                code_states = None
                if world.enabled:
                    distributed.check_in_sync(m)  # FGDError if the weights drifted apart
                    code_states = distributed.gather_objects(code_rng.get_state())
                if world.is_main:
                    save_checkpoint(_state(m, opt, cfg, step, code_rng, sampler, code_states),
                                    ckpt_path)
                distributed.barrier()  # nobody reads the checkpoint before it is whole
    bar.close()
    return ckpt_path
