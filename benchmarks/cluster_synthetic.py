"""The quality bar: fgdiscover against k-means on raw pixels, on the synthetic set.

For each repeat ``r`` this script

1. writes a synthetic set (``fgdiscover.data.synthetic.make_synthetic``; the same set for
   every repeat, seed ``--seed``, unless ``--vary-data`` draws one per repeat, seed
   ``--seed + r``);
2. runs ``python -m fgdiscover.cli cluster DATA --k P*C --k-parent P --labels
   DATA/labels.csv --out WORK/run-r --seed SEED+r [--preset ...] [--extra ...]`` as a
   child process, measuring its wall-clock time, CPU time and peak resident memory, then
   reads RUN/metrics.json and the training speed from RUN/model/log.jsonl;
3. clusters the flattened raw pixels (floats in [0, 1]) with ``FaissKMeans`` (seed
   ``SEED+r``): k = P*C scored against the child labels, k = P against the parent labels,
   and the k = P*C clustering's NMI against the background labels, which shows that
   pixels group by background, not by the fine-grained class;
4. appends one JSON line with all of it (plus the command lines, the machine, the git
   commit and the date) to the results file.

It then prints a markdown table: median over the repeats, with (min-max) when there are
several. ``--report`` only reads the results file and prints one row per configuration
(data settings, preset, extra arguments) over every recorded run.

Run from the checkout (fgdiscover need not be installed)::

    python benchmarks/cluster_synthetic.py                      # ~15 min on 2 CPU cores
    python benchmarks/cluster_synthetic.py --repeats 3 --extra "--features both"
    python benchmarks/cluster_synthetic.py --report

Timings are only comparable on an otherwise idle machine: the record keeps the load
average at the start, and ``--threads`` pins the child's thread count (OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (also puts the checkout on sys.path)

DEFAULT_RESULTS = common.RESULTS_DIR / "cluster_synthetic.jsonl"

#: Table columns: header, dotted key of the record, number format, scale.
COLUMNS = (
    ("child NMI", "fgdiscover.child.nmi", ".3f", 1.0),
    ("child acc", "fgdiscover.child.accuracy", ".3f", 1.0),
    ("parent NMI", "fgdiscover.parent.nmi", ".3f", 1.0),
    ("parent acc", "fgdiscover.parent.accuracy", ".3f", 1.0),
    ("pixels child NMI", "pixels.child.nmi", ".3f", 1.0),
    ("pixels child acc", "pixels.child.accuracy", ".3f", 1.0),
    ("pixels parent NMI", "pixels.parent.nmi", ".3f", 1.0),
    ("pixels bg NMI", "pixels.background_nmi", ".3f", 1.0),
    ("wall min", "wall_s", ".1f", 1 / 60),
    ("peak RSS GiB", "peak_rss_gib", ".2f", 1.0),
    ("train img/s", "train.img_per_s_median", ".0f", 1.0),
)


# ------------------------------------------------------------------------ measuring
def load_pixels(root: Path, files):
    """Flattened RGB pixels of ``root / f`` for each f in ``files``.

    Returns
    -------
    ndarray of shape (n_images, height * width * 3), float32 in [0, 1]
    """
    import numpy as np
    from PIL import Image

    rows = []
    for f in files:
        with Image.open(Path(root) / f) as im:
            rows.append(np.asarray(im.convert("RGB"), dtype=np.float32).reshape(-1))
    if len({r.size for r in rows}) > 1:
        raise common.BenchmarkError(f"images under {root} differ in size")
    return np.stack(rows) / np.float32(255.0)


def pixel_baseline(pixels, child, parent, background, *, k_child: int, k_parent: int,
                   seed: int) -> dict:
    """k-means on raw pixels, scored at the child and parent levels and by background.

    Parameters
    ----------
    pixels : ndarray of shape (n_images, n_features)
    child, parent, background : ndarrays of shape (n_images,)
        Ground-truth labels.
    k_child, k_parent : int
        Clusters for the child and the parent level.
    seed : int

    Returns
    -------
    dict
        ``child`` and ``parent``: ``{"nmi", "accuracy", "ari", "purity"}`` of the k_child-
        and k_parent-means clusterings against the child and parent labels;
        ``background_nmi``: NMI of the k_child clustering against the background labels;
        ``seconds``: time both k-means took.
    """
    from fgdiscover.cluster import FaissKMeans
    from fgdiscover.metrics import nmi, score

    t0 = time.perf_counter()
    child_pred = FaissKMeans(k_child, seed=seed).fit_predict(pixels)
    parent_pred = FaissKMeans(k_parent, seed=seed).fit_predict(pixels)
    return {"child": score(child, child_pred), "parent": score(parent, parent_pred),
            "background_nmi": float(nmi(background, child_pred)),
            "seconds": time.perf_counter() - t0}


def training_speed(log_path: Path) -> dict | None:
    """Training images per second from a FineGAN run's log.jsonl.

    Each line's ``img_per_s`` is the average since the training call started, so the early
    lines carry the start-up cost; the median over the lines is the steady rate and the
    last line the overall one (checkpoints and the hard-negative phase included).

    Returns
    -------
    dict with ``img_per_s_median``, ``img_per_s_final`` and ``steps``; None without a log
    (e.g. when ``--extra "--model RUN"`` reused a trained model).
    """
    import statistics

    try:
        lines = Path(log_path).read_text().splitlines()
    except OSError:
        return None
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("img_per_s"), (int, float)):
            entries.append(entry)
    if not entries:
        return None
    rates = [float(e["img_per_s"]) for e in entries]
    return {"img_per_s_median": statistics.median(rates), "img_per_s_final": rates[-1],
            "steps": entries[-1].get("step")}


def cluster_command(data: Path, run_dir: Path, *, k: int, k_parent: int, seed: int,
                    preset: str | None, cache_dir: Path, extra: list[str]) -> list[str]:
    """The ``fgdiscover cluster`` command line; ``extra`` comes last, so it wins."""
    cmd = [sys.executable, "-m", "fgdiscover.cli", "cluster", str(data), "--k", str(k),
           "--k-parent", str(k_parent), "--labels", str(data / "labels.csv"),
           "--out", str(run_dir), "--seed", str(seed)]
    if preset:
        cmd += ["--preset", preset]
    if not any(a == "--cache-dir" or a.startswith("--cache-dir=") for a in extra):
        # a cache per run: every run decodes its images itself, in the same conditions
        cmd += ["--cache-dir", str(cache_dir)]
    return cmd + extra


def run_repeat(args, extra: list[str], work: Path, repeat: int, machine: dict, git: dict,
               log=print) -> dict:
    """One repeat: data, ``fgdiscover cluster``, the pixel baseline; returns the record."""
    from fgdiscover.data.synthetic import make_synthetic, read_synthetic

    seed = args.seed + repeat
    data_seed = seed if args.vary_data else args.seed
    data = work / (f"data-{repeat}" if args.vary_data else "data")
    run_dir = work / f"run-{repeat}"
    k, k_parent = args.parents * args.children_per_parent, args.parents
    tag = f"[{repeat + 1}/{args.repeats}]"

    t0 = time.perf_counter()
    if args.vary_data or repeat == 0:  # otherwise repeat 0's set is reused
        log(f"{tag} writing {args.n} images ({args.size} px, seed {data_seed}) to {data}")
        make_synthetic(data, n_parent=args.parents, children_per_parent=args.children_per_parent,
                       n=args.n, size=args.size, seed=data_seed)
    data_s = time.perf_counter() - t0
    truth = read_synthetic(data)

    cmd = cluster_command(data, run_dir, k=k, k_parent=k_parent, seed=seed, preset=args.preset,
                          cache_dir=work / f"cache-{repeat}", extra=extra)
    env = {}
    if args.threads:
        env = {v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    log_path = work / f"run-{repeat}.log"
    log(f"{tag} {shlex.join(cmd)}")
    log(f"{tag} output: {log_path} (follow with: tail -f {log_path})")
    measured = common.run_measured(cmd, log_path, env=common.subprocess_env(env))
    if measured["returncode"] != 0:
        log(common.tail(log_path))
        raise common.BenchmarkError(
            f"fgdiscover cluster exited with status {measured['returncode']}; log: {log_path}")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        run_config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise common.BenchmarkError(f"cannot read the results in {run_dir}: {e}") from None
    model_dir = Path(run_config.get("model") or run_dir / "model")
    train = training_speed(model_dir / "log.jsonl") if model_dir == run_dir / "model" else None

    log(f"{tag} k-means on raw pixels")
    pixels = pixel_baseline(load_pixels(data, truth.files), truth.child, truth.parent,
                            truth.background, k_child=k, k_parent=k_parent, seed=seed)
    return {
        "benchmark": "cluster_synthetic",
        "date": common.now_iso(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cluster_command": shlex.join(cmd),
        "extra": args.extra,
        "settings": {"n": args.n, "parents": args.parents,
                     "children_per_parent": args.children_per_parent, "size": args.size,
                     "preset": args.preset, "threads": args.threads, "repeat": repeat,
                     "seed": seed, "data_seed": data_seed, "vary_data": args.vary_data},
        "machine": machine,
        "git": git,
        "run_dir": str(run_dir),
        "run_config": run_config,
        "fgdiscover": {level: metrics[level] for level in ("child", "parent") if level in metrics},
        "pixels": pixels,
        "train": train,
        "data_s": data_s,
        **{key: measured[key] for key in ("wall_s", "cpu_s", "peak_rss_gib")},
    }


# ------------------------------------------------------------------------- reporting
def group_key(record: dict) -> tuple:
    """Runs with the same data settings, preset, extra arguments and --threads form one
    group."""
    s = record.get("settings", {})
    # the preset the run resolved to: no --preset means 'cpu' on a CPU, 'paper' on a GPU
    preset = common.dig(record, "run_config.preset") or s.get("preset")
    return (s.get("n"), s.get("parents"), s.get("children_per_parent"), s.get("size"),
            preset, record.get("extra") or "", s.get("threads"))


def summary_table(records: list[dict]) -> str:
    """Markdown table: one row per :func:`group_key`, each cell the median (min-max)."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(group_key(rec), []).append(rec)
    rows = []
    for (n, p, c, size, preset, extra, threads), recs in groups.items():
        commits = dict.fromkeys((common.dig(r, "git.commit") or "?")[:7]
                                + ("+" if common.dig(r, "git.dirty") else "") for r in recs)
        cells = []
        for _, key, fmt, scale in COLUMNS:
            vals = [common.dig(r, key) for r in recs]
            cells.append(common.format_summary(
                common.summarize(v * scale if v is not None else None for v in vals), fmt))
        args = " ".join(filter(None, [extra, f"(threads {threads})" if threads else ""]))
        rows.append([f"{n} x {size}px, {p}x{c}", preset or "default", args or "-", len(recs),
                     ", ".join(commits), *cells])
    table = common.markdown_table(
        ["data (n, size, P x C)", "preset", "extra", "runs", "commit", *(c[0] for c in COLUMNS)],
        rows)
    return (table + "\n\nmedian over the runs (min-max); commit+ = with uncommitted changes; "
            "pixels = FaissKMeans on raw pixels, bg NMI = its k = P*C clusters vs backgrounds")


# ------------------------------------------------------------------------------ CLI
def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="fgdiscover cluster vs k-means on raw pixels, on the synthetic set.")
    ap.add_argument("--n", type=int, default=3000, help="images (default 3000)")
    ap.add_argument("--parents", type=int, default=4, help="parents P (default 4)")
    ap.add_argument("--children-per-parent", type=int, default=3,
                    help="children per parent C (default 3); k = P*C")
    ap.add_argument("--size", type=int, default=32, help="image side in px (default 32)")
    ap.add_argument("--repeats", type=int, default=1, help="runs, seeds SEED..SEED+R-1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vary-data", action="store_true",
                    help="a new synthetic set per repeat (seed SEED+r) instead of one for all")
    ap.add_argument("--preset", choices=["cpu", "tiny", "paper"],
                    help="fgdiscover cluster --preset (default: the CLI's own default)")
    ap.add_argument("--extra", default="",
                    help='more arguments for fgdiscover cluster, one string: "--iters 500"')
    ap.add_argument("--threads", type=int,
                    help="OMP_NUM_THREADS / MKL_NUM_THREADS for the clustering process")
    ap.add_argument("--work", type=Path,
                    help="folder for the data and run outputs (default: a new temporary "
                         "folder); kept afterwards")
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
    from fgdiscover.errors import FGDError

    for name in ("n", "parents", "children_per_parent", "size", "repeats"):
        if getattr(args, name) < 1:
            raise common.BenchmarkError(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise common.BenchmarkError("--threads must be at least 1")
    try:
        extra = shlex.split(args.extra)
    except ValueError as e:
        raise common.BenchmarkError(f"cannot parse --extra: {e}") from None
    if args.work is None:
        work = Path(tempfile.mkdtemp(prefix="fgd-cluster-synthetic-")).resolve()
    else:
        work = args.work.expanduser().resolve()
        taken = [work / f"run-{r}" for r in range(args.repeats) if (work / f"run-{r}").exists()]
        if taken:
            raise common.BenchmarkError(f"{taken[0]} already exists; choose another --work")
        work.mkdir(parents=True, exist_ok=True)
    results = args.results.expanduser().resolve()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    log(f"work folder: {work}")
    machine, git = common.machine_info(), common.git_info()
    if machine["load_avg"] and machine["load_avg"][0] > 0.5 * machine["usable_cores"]:
        log(f"warning: load average {machine['load_avg'][0]} on {machine['usable_cores']} "
            "cores: another process is busy, timings will be slow")
    records = []
    for r in range(args.repeats):
        try:
            rec = run_repeat(args, extra, work, r, machine, git, log=log)
        except FGDError as e:
            raise common.BenchmarkError(str(e)) from None
        common.append_jsonl(results, rec)
        records.append(rec)
        log(f"[{r + 1}/{args.repeats}] child NMI {rec['fgdiscover']['child']['nmi']:.3f} "
            f"(pixels {rec['pixels']['child']['nmi']:.3f}) in {rec['wall_s'] / 60:.1f} min")
    print(summary_table(records))
    print(f"\n{len(records)} run(s) appended to {results}; outputs kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
