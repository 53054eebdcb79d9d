"""Images per second of the FineGAN training step, for a preset, on this machine.

One timed step does what an ordinary step of ``fgdiscover.train.gan.train_gan`` does:
convert a uint8 batch to a tensor on the device, fill missing boxes, sample codes and
run ``train_step`` (a discriminator update, then a generator update and the EMA). The
images are random pixels, since the cost of a step does not depend on what they show, and
no checkpoint or log is written. The hard-negative steps (mining 10x the codes) are not
timed.

After ``--warmup`` untimed steps, ``--windows`` windows of ``--steps`` steps are timed
(synchronising the GPU around each); the median over the windows is the result, their
min-max and spread (``(max - min) / median``) say how steady it was. Peak memory: the
resident set of this process and, on a GPU, ``torch.cuda.max_memory_allocated`` during
the timed windows.

Run from the checkout (fgdiscover need not be installed)::

    python benchmarks/train_speed.py                       # cpu preset, cuda if available
    python benchmarks/train_speed.py --preset paper --device cuda
    python benchmarks/train_speed.py --report              # every recorded run

Each run appends one JSON line to ``--results`` (default
benchmarks/results/train_speed.jsonl) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (also puts the checkout on sys.path)

DEFAULT_RESULTS = common.RESULTS_DIR / "train_speed.jsonl"


def make_step(cfg, device, *, seed: int = 0, batched=None):
    """A FineGAN (``cfg``) on ``device`` and a function running one ordinary training step
    of it on a fixed batch of random pixels.

    Returns
    -------
    (step, model): ``step()`` returns the step's losses; ``batched`` goes to
    ``fgdiscover.train.gan.train_step``.
    """
    import numpy as np
    import torch

    from fgdiscover.models.codes import sample_codes
    from fgdiscover.train.gan import (build_finegan, fill_missing_boxes, make_optimizers,
                                      to_tensor, train_step)

    torch.manual_seed(seed)
    m = build_finegan(cfg).to(device).train()
    m.generator_ema.eval()
    opt = make_optimizers(m, cfg)
    code_rng = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    r, n = cfg.resolution, cfg.batch_size
    images = rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8)
    # the object in the middle half, as the synthetic set's boxes roughly are
    boxes = np.tile(np.float32([[r / 4, r / 4, r / 2, r / 2]]), (n, 1))

    def step():
        real = to_tensor(images, device)
        b = fill_missing_boxes(torch.from_numpy(boxes).to(device), r, cfg.border_band)
        codes = sample_codes(n, n_parent=cfg.n_parent, n_child=cfg.n_child, z_dim=cfg.z_dim,
                             generator=code_rng, device=device)
        return train_step(m, opt, real, b, codes, cfg, batched=batched)

    return step, m


def time_training(cfg, device, *, warmup: int, windows: int, steps: int, seed: int = 0,
                  log=None) -> dict:
    """Time FineGAN training steps.

    Parameters
    ----------
    cfg : GANConfig
        Model size and batch size (``fgdiscover.train.config``).
    device : torch.device
    warmup : int
        Untimed steps first (allocator, cuDNN autotuning, caches).
    windows, steps : int
        Number of timed windows and steps in each.
    seed : int
    log : callable, optional
        Receives one line per window.

    Returns
    -------
    dict
        ``img_per_s`` (list, one per window), ``step_ms`` (list), ``losses`` (of the last
        step), ``cuda_max_allocated_gib`` (None on the CPU).
    """
    import numpy as np
    import torch

    step, _ = make_step(cfg, device, seed=seed)
    n = cfg.batch_size
    cuda = device.type == "cuda"

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rates, step_ms, losses = [], [], {}
    for w in range(windows):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            losses = step()
        if cuda:
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        rates.append(steps * n / dt)
        step_ms.append(1000 * dt / steps)
        if log:
            log(f"window {w + 1}/{windows}: {rates[-1]:.1f} img/s ({step_ms[-1]:.1f} ms/step)")
    if not all(np.isfinite(v) for v in losses.values()):
        raise common.BenchmarkError(f"training diverged while timing: {losses}")
    return {"img_per_s": rates, "step_ms": step_ms, "losses": losses,
            "cuda_max_allocated_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                                       if cuda else None)}


# ------------------------------------------------------------------------- reporting
def _where(rec: dict) -> str:
    """``cuda: NVIDIA H100`` or ``cpu: Intel Xeon, 2 threads``."""
    device = str(rec.get("device"))
    gpus = common.dig(rec, "machine.gpus") or []
    if device.startswith("cuda") and gpus:
        index = int(device.split(":")[1]) if ":" in device else 0
        return f"{device}: {gpus[min(index, len(gpus) - 1)]['name']}"
    threads = common.dig(rec, "settings.threads") or "?"
    return f"{device}: {common.dig(rec, 'machine.cpu') or '?'}, {threads} threads"


def summary_table(records: list[dict]) -> str:
    """Markdown table, one row per record (newest last)."""
    rows = []
    for rec in records:
        s, rates = rec.get("settings", {}), rec.get("img_per_s", {})
        gpu = rec.get("cuda_max_allocated_gib")
        rows.append([
            (rec.get("date") or "")[:10], (common.dig(rec, "git.commit") or "?")[:7]
            + ("+" if common.dig(rec, "git.dirty") else ""),
            s.get("preset"), _where(rec), common.dig(rec, "config.resolution"),
            common.dig(rec, "config.batch_size"),
            common.format_summary(rates, ".1f"),
            f"{rec.get('spread_pct', float('nan')):.1f}%",
            f"{rec.get('step_ms_median', float('nan')):.1f}",
            f"{rec.get('peak_rss_gib', float('nan')):.2f}",
            f"{gpu:.2f}" if gpu is not None else "-",
        ])
    return common.markdown_table(
        ["date", "commit", "preset", "device", "px", "batch", "img/s median (min-max)",
         "spread", "ms/step", "peak RSS GiB", "GPU peak GiB"], rows)


# ------------------------------------------------------------------------------ CLI
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Images per second of FineGAN's training step.")
    ap.add_argument("--preset", default="cpu", help="training preset: cpu, tiny, paper")
    ap.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    ap.add_argument("--batch-size", type=int, help="override the preset's batch size")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--windows", type=int, default=5, help="timed windows (default 5)")
    ap.add_argument("--steps", type=int, default=20, help="steps per window (default 20)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                    help=f"JSON-lines file to append to (default {DEFAULT_RESULTS})")
    ap.add_argument("--report", action="store_true",
                    help="only print the table of every run recorded in --results")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.report:
            print(summary_table(common.read_jsonl(args.results)))
            return 0
        return run(args)
    except common.BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    import torch

    from fgdiscover.errors import FGDError
    from fgdiscover.train.config import preset
    from fgdiscover.train.gan import pick_device

    if args.warmup < 0 or args.windows < 1 or args.steps < 1:
        raise common.BenchmarkError("--warmup must be >= 0, --windows and --steps >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise common.BenchmarkError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    try:
        cfg = preset(args.preset).replace(batch_size=args.batch_size)
        device = pick_device(args.device)
        torch.empty(0, device=device)  # fails here, in one line, on an unusable device
    except FGDError as e:
        raise common.BenchmarkError(str(e)) from None
    except (RuntimeError, ValueError) as e:
        raise common.BenchmarkError(f"cannot use device {args.device!r}: {e}") from None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    machine, git = common.machine_info(), common.git_info()
    log(f"FineGAN '{args.preset}' preset: {cfg.resolution} px, batch {cfg.batch_size}, "
        f"{cfg.n_parent}/{cfg.n_child} codes, on {device} ({torch.get_num_threads()} threads)")
    if machine["load_avg"] and machine["load_avg"][0] > 0.5 * machine["usable_cores"]:
        log(f"warning: load average {machine['load_avg'][0]} on {machine['usable_cores']} "
            "cores: another process is busy, timings will be slow")
    timed = time_training(cfg, device, warmup=args.warmup, windows=args.windows,
                          steps=args.steps, seed=args.seed, log=log)
    rates = common.summarize(timed["img_per_s"])
    record = {
        "benchmark": "train_speed",
        "date": common.now_iso(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {"preset": args.preset, "batch_size": args.batch_size,
                     "warmup": args.warmup, "windows": args.windows, "steps": args.steps,
                     "threads": torch.get_num_threads(), "seed": args.seed},
        "device": str(device),
        "config": cfg.to_json(),
        "machine": machine,
        "git": git,
        "img_per_s": rates,
        "img_per_s_windows": timed["img_per_s"],
        "spread_pct": 100 * (rates["max"] - rates["min"]) / rates["median"],
        "step_ms_median": common.summarize(timed["step_ms"])["median"],
        "peak_rss_gib": common.self_peak_rss_gib(),
        "cuda_max_allocated_gib": timed["cuda_max_allocated_gib"],
        "losses": timed["losses"],
    }
    results = args.results.expanduser().resolve()
    common.append_jsonl(results, record)
    print(summary_table([record]))
    print(f"\nappended to {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
