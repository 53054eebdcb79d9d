"""FineGAN training: one step function, the hard-negative miner and the loop around them."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FGDError
from ..models.codes import Codes, sample_codes
from ..models.finegan import FineGAN, accumulate, ema_decay
from .checkpoint import load_checkpoint, save_checkpoint
from .config import GANConfig
from .losses import (bce, code_log_likelihood, d_adversarial_loss, d_patch_loss,
                     g_adversarial_loss, info_loss, mask_area_loss, mask_binary_loss)

CHECKPOINT = "checkpoints/last.pt"


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def train_step(m: FineGAN, opt: Optimizers, real: torch.Tensor, bboxes: torch.Tensor,
               codes: Codes, cfg: GANConfig, step: int = 10**9) -> dict[str, float]:
    """One FineGAN iteration: a discriminator update, then a generator update.

    Parameters
    ----------
    real : Tensor of shape (n, 3, R, R) in [-1, 1]
    bboxes : Tensor of shape (n, 4), object boxes x, y, w, h in pixels (no NaN)
    codes : Codes for n fakes (b tied to c during training)
    step : int
        Steps done so far (ramps up the EMA decay).

    Returns
    -------
    dict of float losses.
    """
    g, d_b, d_p, d_c = m.generator, m.d_background, m.d_parent, m.d_child
    out = g(codes.z, codes.b, codes.p, codes.c)
    background_patch = (~d_b.geometry.object_overlap(bboxes)).float()  # 1 = background

    # -- discriminators: D_b on real vs generated backgrounds, D_c on real vs final images
    opt.d.zero_grad(set_to_none=True)
    real_rf, real_bg = d_b(real)
    fake_rf, _ = d_b(out["background"].detach())
    loss_db = cfg.bg_weight * (d_patch_loss(real_rf, fake_rf, background_patch)
                               + bce(real_bg, background_patch))
    loss_dc = d_adversarial_loss(d_c.real_fake_logits(real),
                                 d_c.real_fake_logits(out["child"].detach()))
    (loss_db + loss_dc).backward()
    opt.d.step()

    # -- generator (+ D_p and D_c's code head on the information terms)
    opt.g.zero_grad(set_to_none=True)
    fake_rf, fake_bg = d_b(out["background"])
    loss_gb = cfg.bg_weight * g_adversarial_loss(fake_rf) + cfg.bg_aux_weight * bce(fake_bg, 1.0)
    loss_gc = g_adversarial_loss(d_c.real_fake_logits(out["child"]))
    loss_info_p = info_loss(d_p.code_logits(parent_info_input(out, cfg)), codes.p)
    loss_info_c = info_loss(d_c.code_logits(out["child_fg"] * out["child_mask"]), codes.c)
    loss_mask = (cfg.mask_weight * mask_area_loss(out["parent_mask"], *cfg.mask_area)
                 + cfg.binary_weight * (mask_binary_loss(out["parent_mask"])
                                        + mask_binary_loss(out["child_mask"])))
    (loss_gb + loss_gc + loss_info_p + loss_info_c + loss_mask).backward()
    opt.g.step()
    accumulate(m.generator_ema, g, ema_decay(step, cfg.ema_decay))
    return {"d_bg": loss_db.item(), "d_child": loss_dc.item(), "g_bg": loss_gb.item(),
            "g_child": loss_gc.item(), "info_p": loss_info_p.item(), "info_c": loss_info_c.item(),
            "mask": loss_mask.item()}


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


def to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """uint8 images (n, H, W, 3) -> float tensor (n, 3, H, W) in [-1, 1]."""
    # a copy: batches may be read-only views of the decode cache's memmap
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class BatchSampler:
    """Shuffled epochs of indices with random horizontal flips, from a numpy Generator
    whose state goes into the checkpoint (resume continues the same sequence)."""

    def __init__(self, images: np.ndarray, bboxes: np.ndarray, batch_size: int, seed: int):
        if len(images) < 2:
            raise FGDError("training needs at least 2 images")
        self.images, self.bboxes = images, np.asarray(bboxes, dtype=np.float32)
        self.batch_size = min(batch_size, len(images))
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(len(images)), 0

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.images)), 0
        idx = np.sort(self.order[self.pos:self.pos + self.batch_size])
        self.pos += self.batch_size
        imgs, boxes = self.images[idx], self.bboxes[idx].copy()
        flip = self.rng.random(len(idx)) < 0.5
        imgs[flip] = imgs[flip, :, ::-1]
        width = imgs.shape[2]
        boxes[flip, 0] = width - boxes[flip, 0] - boxes[flip, 2]
        return imgs, boxes

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order, "pos": self.pos}

    def load_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]
        self.order, self.pos = np.asarray(s["order"]), int(s["pos"])


def _state(m, opt, cfg, step, code_rng, sampler) -> dict:
    return {
        "format": "fgdiscover-finegan-1",
        "config": cfg.to_json(),
        "step": step,
        "generator": m.generator.state_dict(),
        "generator_ema": m.generator_ema.state_dict(),
        "d_background": m.d_background.state_dict(),
        "d_parent": m.d_parent.state_dict(),
        "d_child": m.d_child.state_dict(),
        "opt_d": opt.d.state_dict(),
        "opt_g": opt.g.state_dict(),
        "rng": {"codes": code_rng.get_state(), "batches": sampler.state(),
                "torch": torch.get_rng_state(), "python": random.getstate()},
    }


def load_finegan(run_dir: Path, device="cpu") -> tuple[FineGAN, GANConfig, dict]:
    """The FineGAN of a run directory (its last checkpoint), in eval mode."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT, map_location=device)
    cfg = GANConfig.from_json(ckpt["config"])
    m = build_finegan(cfg).to(device)
    for name in ("generator", "generator_ema", "d_background", "d_parent", "d_child"):
        getattr(m, name).load_state_dict(ckpt[name])
    return m.eval(), cfg, ckpt


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step``: an interrupted run logged steps its checkpoint lacks."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def ensure_new_run(run_dir: Path) -> None:
    """FGDError when ``run_dir`` already holds a checkpoint (it would be overwritten)."""
    if (Path(run_dir) / CHECKPOINT).exists():
        raise FGDError(f"{run_dir} already holds a training run; pass --resume to continue "
                       "it or choose another --out")


def train_gan(images: np.ndarray, bboxes: np.ndarray, run_dir: Path, cfg: GANConfig, *,
              resume: bool = False, device=None, progress: bool = True,
              stop_after: int | None = None) -> Path:
    """Train (or continue training) FineGAN on decoded images.

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

    Returns
    -------
    Path of the checkpoint.
    """
    run_dir = Path(run_dir).resolve()
    ckpt_path = run_dir / CHECKPOINT
    device = pick_device(device)
    if images.shape[1] != cfg.resolution:
        raise FGDError(f"images are {images.shape[1]} px, the model wants {cfg.resolution} px")
    if not resume:
        ensure_new_run(run_dir)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    m = build_finegan(cfg).to(device).train()
    opt = make_optimizers(m, cfg)
    code_rng = torch.Generator().manual_seed(cfg.seed)
    sampler = BatchSampler(images, bboxes, cfg.batch_size, cfg.seed)
    step = 0
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        saved = GANConfig.from_json(ckpt["config"])
        if saved.replace(iters=cfg.iters) != cfg:
            raise FGDError(f"{run_dir} was trained with other settings; only --iters may change "
                           "on --resume")
        for name in ("generator", "generator_ema", "d_background", "d_parent", "d_child"):
            getattr(m, name).load_state_dict(ckpt[name])
        opt.d.load_state_dict(ckpt["opt_d"])
        opt.g.load_state_dict(ckpt["opt_g"])
        step = int(ckpt["step"])
        code_rng.set_state(ckpt["rng"]["codes"])
        sampler.load_state(ckpt["rng"]["batches"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        random.setstate(ckpt["rng"]["python"])
        _truncate_log(run_dir / "log.jsonl", step)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    m.generator_ema.eval()

    from tqdm.auto import tqdm

    end = cfg.iters if stop_after is None else min(cfg.iters, step + stop_after)
    bar = tqdm(total=cfg.iters, initial=step, disable=not progress, unit="it",
               desc="train FineGAN", dynamic_ncols=True)
    hard_start = cfg.iters - cfg.hard_negative_iters
    t0, seen = time.perf_counter(), 0
    with open(run_dir / "log.jsonl", "a") as log:
        while step < end:
            imgs, boxes = sampler.next()
            real = to_tensor(imgs, device)
            boxes = fill_missing_boxes(torch.from_numpy(boxes).to(device), cfg.resolution,
                                       cfg.border_band)
            n = real.shape[0]
            if step >= hard_start and (step - hard_start) % 2 == 1:
                codes = mine_hard_codes(m, n, cfg, code_rng, device)
            else:
                codes = sample_codes(n, n_parent=cfg.n_parent, n_child=cfg.n_child,
                                     z_dim=cfg.z_dim, generator=code_rng, device=device)
            losses = train_step(m, opt, real, boxes, codes, cfg, step)
            step += 1
            seen += n
            if not all(np.isfinite(v) for v in losses.values()):
                raise FGDError(f"training diverged at step {step}: {losses}")
            rate = seen / (time.perf_counter() - t0)
            if step % cfg.log_every == 0 or step == end:
                log.write(json.dumps({"step": step, **losses, "img_per_s": rate}) + "\n")
                log.flush()
                bar.set_postfix({k: f"{v:.2f}" for k, v in losses.items()} | {"img/s": f"{rate:.0f}"})
            bar.update(1)
            if step % cfg.checkpoint_every == 0 or step == end:
                save_checkpoint(_state(m, opt, cfg, step, code_rng, sampler), ckpt_path)
    bar.close()
    return ckpt_path
