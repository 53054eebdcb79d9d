"""Where a FineGAN training step spends its time, and the step before / after our changes.

Two parts, one run, one process:

1. ``torch.profiler`` over ``--profile-steps`` steps of the current step: the operators
   that take the most CPU time (self time), and the share of convolutions and norms.
2. Side by side, in interleaved windows (A B A B ...; a slow moment of a shared machine
   hits both): the step as it was ("before": every discriminator pass separate) and as it
   is ("after": the pairs of passes through one network batched, see
   ``fgdiscover.train.gan.train_step``), for each ``--threads`` value. Optionally
   (``--compile``) the "after" step with ``torch.compile`` on every network, with its
   compile time.

The images are random pixels (the cost of a step does not depend on what they show), as
in ``train_speed.py``, whose timing loop this reuses. Writes a Markdown report
(``--out``, default benchmarks/results/train_profile.md) with the machine, the command and
the commit::

    python benchmarks/train_profile.py                      # cpu preset, threads 1 and 2
    python benchmarks/train_profile.py --compile --windows 7
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (also puts the checkout on sys.path)
from train_speed import make_step  # noqa: E402

DEFAULT_OUT = common.RESULTS_DIR / "train_profile.md"


def profile_steps(step, n_steps: int, rows: int = 15) -> dict:
    """Profile ``n_steps`` calls of ``step``; the top operators by self CPU time.

    Returns
    -------
    dict with ``rows`` (name, self ms per step, share of the total), ``total_ms`` per step
    and ``shares`` of convolutions (forward + backward) and normalisations.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)

    def share(*needles):
        return sum(e.self_cpu_time_total for e in events
                   if any(k in e.key for k in needles)) / total

    return {
        "rows": [(e.key, e.self_cpu_time_total / 1000 / n_steps, e.self_cpu_time_total / total,
                  e.count // n_steps) for e in events[:rows]],
        "total_ms": total / 1000 / n_steps,
        "shares": {"convolution (forward + backward)": share("convolution"),
                   "batch norm (forward + backward)": share("batch_norm"),
                   "optimizer (Adam)": share("Optimizer.step"),
                   "everything else": None},
    }


def interleaved(variants: dict, windows: int, steps: int, log) -> dict:
    """Time ``windows`` windows of ``steps`` calls of each variant's step, interleaved;
    images per second per window, per variant."""
    rates = {name: [] for name in variants}
    for w in range(windows):
        for name, (step, n, threads) in variants.items():
            import torch

            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(steps * n / (time.perf_counter() - t0))
            log(f"window {w + 1}/{windows} {name}: {rates[name][-1]:.1f} img/s")
    return rates


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", help="training preset (default cpu)")
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated torch thread counts to compare (default 1,2)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    ap.add_argument("--windows", type=int, default=5, help="timed windows per variant")
    ap.add_argument("--steps", type=int, default=15, help="steps per window")
    ap.add_argument("--profile-steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true",
                    help="also time the step with torch.compile on every network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
        if not threads or min(threads) < 1:
            raise ValueError
    except ValueError:
        print(f"error: --threads takes positive integers separated by commas, got "
              f"{args.threads!r}", file=sys.stderr)
        return 2
    if args.windows < 1 or args.steps < 1 or args.profile_steps < 1 or args.warmup < 0:
        print("error: --windows, --steps and --profile-steps must be >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    import torch

    from fgdiscover.train.config import preset

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    cfg = preset(args.preset)
    device = torch.device("cpu")
    machine, git = common.machine_info(), common.git_info()
    started = common.now_iso()
    load_start = machine["load_avg"]

    torch.set_num_threads(threads[0])
    log(f"profiling {args.profile_steps} steps ({args.preset} preset, {threads[0]} threads)")
    step, _ = make_step(cfg, device, seed=args.seed)
    for _ in range(args.warmup):
        step()
    prof = profile_steps(step, args.profile_steps)

    variants = {}
    for t in threads:
        for name, batched in (("before", False), ("after", True)):
            s, _ = make_step(cfg, device, seed=args.seed, batched=batched)
            variants[f"{name}, {t} thread{'s' if t > 1 else ''}"] = (s, cfg.batch_size, t)
    compile_s = None
    if args.compile:
        torch.set_num_threads(threads[0])
        s, m = make_step(cfg, device, seed=args.seed, batched=True)
        t0 = time.perf_counter()
        for net in (m.generator, m.d_background, m.d_parent, m.d_child):
            net.compile()
        s()  # compiles
        compile_s = time.perf_counter() - t0
        variants[f"after + torch.compile, {threads[0]} thread{'s' if threads[0] > 1 else ''}"] = (
            s, cfg.batch_size, threads[0])
        log(f"torch.compile: {compile_s:.0f} s")
    for name, (s, _, t) in variants.items():
        torch.set_num_threads(t)
        for _ in range(args.warmup):
            s()
    rates = interleaved(variants, args.windows, args.steps, log)
    machine_end = common.machine_info()

    report = render(args, cfg, prof, rates, compile_s, machine, git, started,
                    load_start, machine_end["load_avg"])
    out = args.out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    print(f"written to {out}")
    return 0


def render(args, cfg, prof, rates, compile_s, machine, git, started, load_start,
           load_end) -> str:
    summaries = {k: common.summarize(v) for k, v in rates.items()}
    base = {}
    rows = []
    for name, s in summaries.items():
        kind, threads = name.split(", ")
        if kind == "before":
            base[threads] = s["median"]
        ref = base.get(threads)
        gain = (f"{100 * (s['median'] / ref - 1):+.1f}%" if ref and kind != "before" else "-")
        rows.append([name, common.format_summary(s, ".1f"), gain])
    profile_rows = [[f"`{k}`", f"{ms:.1f}", f"{100 * sh:.1f}%", str(calls)]
                    for k, ms, sh, calls in prof["rows"]]
    known = sum(v for v in prof["shares"].values() if v is not None)
    shares = "; ".join(f"{k} {100 * (v if v is not None else 1 - known):.0f}%"
                       for k, v in prof["shares"].items())
    lines = [
        f"# FineGAN training step: profile, before / after ({args.preset} preset)",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/train_profile.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('usable_cores')} usable cores, no GPU; "
        f"torch {machine.get('torch')}; load average {load_start} at the start, {load_end} "
        f"at the end (another process busy = slower windows for every variant alike). "
        f"Started {started}; commit {(git.get('commit') or '?')[:10]}"
        f"{' + uncommitted changes' if git.get('dirty') else ''}.",
        "",
        f"Step: {cfg.resolution} px, batch {cfg.batch_size}, N_p = {cfg.n_parent}, "
        f"N_c = {cfg.n_child}, D norm {cfg.d_norm}; random pixels as images.",
        "",
        f"## Where the time goes ({args.profile_steps} steps under torch.profiler, "
        f"{prof['total_ms']:.0f} ms of operator time per step)",
        "",
        shares + ".",
        "",
        common.markdown_table(["operator", "self ms / step", "share", "calls / step"],
                              profile_rows),
        "",
        f"## Before / after, side by side ({args.windows} interleaved windows of "
        f"{args.steps} steps each)",
        "",
        "before: every discriminator pass separate (8 trunk passes per step); after: the "
        "pairs through one network batched (D_b real + fake, D_c real + fake, D_c's trunk "
        "under its two heads; 5 passes).",
        "",
        common.markdown_table(["variant", "img/s median (min-max)", "vs before"], rows),
    ]
    if compile_s is not None:
        lines += ["", f"torch.compile took {compile_s:.0f} s before its first step."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
