"""The ``fgdiscover`` command: thin click commands over library functions.

Every command parses its options, calls one library function and prints where the
results went. Mistakes in the input (a missing folder, a bad CSV, an unreadable
checkpoint) end in a one-line ``Error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from .errors import FGDError


class UserError(click.ClickException):
    """One-line error with exit status 2 (click's own usage errors also exit with 2)."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: exit 130 with one line on what was kept. Like every error, click prints it
    after the command returns, outside the streams ``--quiet`` silences (rank 0 only)."""

    exit_code = 130

    def __init__(self):
        super().__init__("interrupted; the last checkpoint is kept (to continue: `train` with "
                         "--resume, `cluster` with the same command and --out)")

    def show(self, file=None) -> None:
        if _is_main_process():
            click.echo("\n" + self.message, file=file, err=file is None)


def user_errors(fn):
    """Turn FGDError and OS errors into one-line messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FGDError as e:
            raise UserError(str(e)) from None
        except OSError as e:  # disk full, permission denied: say which file
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            raise UserError(f"{e.strerror or e}{where}") from None
        except KeyboardInterrupt:
            raise Interrupted() from None

    return wrapper


def quiet_option(fn):
    """Add ``--quiet``: no progress bars and no messages, only errors (which click prints
    after the command returns, outside the silenced streams)."""

    @click.option("--quiet", "-q", is_flag=True,
                  help="Print nothing but errors (no progress bars, no messages).")
    @functools.wraps(fn)
    def wrapper(*args, quiet=False, **kwargs):
        if not quiet and _is_main_process():
            return fn(*args, **kwargs)
        import contextlib
        import os

        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                contextlib.redirect_stderr(null):
            return fn(*args, **kwargs)

    return wrapper


def _is_main_process() -> bool:
    """False in the processes of a torchrun launch other than rank 0: they print nothing
    but errors (as with --quiet)."""
    from .distributed import world_from_env

    try:
        return world_from_env().is_main
    except FGDError:  # reported as a one-line error once the command runs
        return True


precision_option = click.option(
    "--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
    show_default=True,
    help="Forward passes in bf16 (autocast) or fp32; auto: bf16 on CUDA, fp32 on the CPU.")


def _device_default_preset(device) -> str:
    from .pipeline import default_preset
    from .train.gan import pick_device

    return default_preset(pick_device(device))


def _list_skipped(dataset, run_dir: Path | None = None) -> None:
    if not dataset.skipped:
        return
    click.echo(f"skipped {len(dataset.skipped)} unusable file(s):", err=True)
    for f, why in dataset.skipped[:10]:
        click.echo(f"  {f}: {why}", err=True)
    if len(dataset.skipped) > 10:
        click.echo(f"  ... and {len(dataset.skipped) - 10} more", err=True)
    if run_dir is not None:
        from .pipeline import write_skipped

        click.echo(f"  (full list in {write_skipped(run_dir, dataset.skipped)})", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fgdiscover")
def cli():
    """fgdiscover: find the fine-grained categories hidden in a folder of images."""


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--parents", default=4, show_default=True, help="Number of shape families.")
@click.option("--children-per-parent", default=3, show_default=True,
              help="Appearances per shape family.")
@click.option("--n", "n", default=2000, show_default=True, help="Number of images.")
@click.option("--size", default=64, show_default=True, help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True)
@user_errors
def synth(out, parents, children_per_parent, n, size, seed):
    """Write a synthetic hierarchical data set (shape = parent, appearance = child)."""
    from .data.synthetic import make_synthetic

    s = make_synthetic(out, n_parent=parents, children_per_parent=children_per_parent, n=n,
                       size=size, seed=seed, progress=True)
    click.echo(f"wrote {len(s.files)} images to {s.root / 'images'}")
    click.echo(f"labels: {s.root / 'labels.csv'}  boxes: {s.root / 'bboxes.csv'}")


def resolve_gan_config(preset_name, device, **overrides):
    from .train.config import preset

    return preset(preset_name or _device_default_preset(device)).replace(**overrides)


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (config.json, log.jsonl, checkpoints/).")
@click.option("--preset", type=click.Choice(["paper", "cpu", "tiny"]),
              help="Settings preset; default 'paper' on a GPU, 'cpu' otherwise.")
@click.option("--n-parent", type=int, help="Number of parent (shape) codes.")
@click.option("--n-child", type=int, help="Number of child (appearance) codes.")
@click.option("--iters", type=int, help="Training iterations in total.")
@click.option("--batch-size", type=int)
@click.option("--resolution", type=click.Choice(["16", "32", "64", "128", "256"]))
@click.option("--bboxes", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file,x,y,w,h of object boxes (default: DATA/bboxes.csv if present).")
@click.option("--no-bboxes", is_flag=True, help="Ignore DATA/bboxes.csv.")
@click.option("--crop", type=click.Choice(["full", "bbox"]),
              help="Frame images whole (default) or with FineGAN's 1.5x box crop.")
@click.option("--checkpoint-every", type=int,
              help="Steps between checkpoints (default: the preset's).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="Replace a training run already in --out (default: refuse).")
@click.option("--faithful", is_flag=True,
              help="FineGAN's original objective, without fgdiscover's mask constraints.")
@click.option("--seed", type=int)
@click.option("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available; "
              "under torchrun: cuda or cpu, each process on the GPU of its LOCAL_RANK).")
@precision_option
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Decoded-image cache (default: $FGDISCOVER_CACHE or ~/.cache/fgdiscover).")
@quiet_option
@user_errors
def train(data, run_dir, preset, n_parent, n_child, iters, batch_size, resolution, bboxes,
          no_bboxes, crop, checkpoint_every, resume, overwrite, faithful, seed, device,
          precision, cache_dir):
    """Train FineGAN on the images under DATA.

    Under torchrun (several processes) it trains data-parallel: --batch-size per process,
    rank 0 writes the run (README, "Scale-out")."""
    from .distributed import setup
    from .pipeline import ensure_writable, load_images, train_run
    from .train.gan import clear_run, ensure_new_run

    if resume and overwrite:
        raise UserError("give --resume or --overwrite, not both")
    setup(device)  # the device and a torchrun environment are checked before any work
    run_dir = run_dir.resolve()
    cfg = resolve_gan_config(preset, device, n_parent=n_parent, n_child=n_child, iters=iters,
                             batch_size=batch_size, seed=seed, crop=crop,
                             checkpoint_every=checkpoint_every,
                             resolution=int(resolution) if resolution else None)
    if faithful:
        cfg = cfg.faithful()
    if resume:
        cfg = _resumed_config(run_dir, cfg, iters)
    elif not overwrite:
        ensure_new_run(run_dir)
    ensure_writable(run_dir)
    ds = load_images(data, cfg.resolution, bboxes=bboxes, no_bboxes=no_bboxes,
                     cache_dir=cache_dir, crop=cfg.crop)
    main = _is_main_process()  # under torchrun only rank 0 writes files
    if overwrite and main:  # only now that the images loaded: a failed command destroys nothing
        clear_run(run_dir)
    _list_skipped(ds, run_dir if main else None)
    click.echo(f"{len(ds)} images from {ds.root} at {cfg.resolution} px "
               f"({int((~ds.bbox_missing).sum())} with boxes); run: {run_dir}", err=True)
    ckpt = train_run(ds, run_dir, cfg, resume=resume, device=device, precision=precision)
    click.echo(f"checkpoint: {ckpt}")
    click.echo(f"next: fgdiscover generate {run_dir} --out {run_dir / 'grid.png'}")


def _resumed_config(run_dir: Path, cfg, iters):
    """On --resume the run's own config.json wins; only --iters may extend it."""
    from .train.config import GANConfig

    path = run_dir / "config.json"
    if not path.is_file():
        raise FGDError(f"nothing to resume in {run_dir} (no config.json)")
    return GANConfig.load(path).replace(iters=iters)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Main grid PNG (default RUN_DIR/grid.png); the others go beside it.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device")
@user_errors
def generate(run_dir, out, seed, device):
    """Draw grids that change background, parent or child codes one at a time."""
    from .generate import write_grids

    paths = write_grids(run_dir, out or Path(run_dir) / "grid.png", seed=seed, device=device)
    for p in paths:
        click.echo(str(p))


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--k", "k", required=True, type=int, help="Number of (child) clusters.")
@click.option("--k-parent", type=int,
              help="Number of parent clusters (default: the divisor of k closest to k/10).")
@click.option("--model", type=click.Path(file_okay=False, path_type=Path),
              help="A `fgdiscover train` run to use instead of training one on DATA.")
@click.option("--preset", type=click.Choice(["paper", "cpu", "tiny"]),
              help="Training preset; default 'paper' on a GPU, 'cpu' otherwise.")
@click.option("--iters", type=int, help="FineGAN iterations (default: the preset's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: ./fgdiscover-runs/NNNNN-cluster-<DATA>).")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file,label[,parent] used only to score the result.")
@click.option("--labels-from-dirs", is_flag=True,
              help="Score against the sub-folder of each image.")
@click.option("--label-column", help="Column of --labels to score against.")
@click.option("--bboxes", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file,x,y,w,h of object boxes (default: DATA/bboxes.csv if present).")
@click.option("--no-bboxes", is_flag=True, help="Ignore DATA/bboxes.csv.")
@click.option("--crop", type=click.Choice(["full", "bbox"]),
              help="Frame images whole (default) or with FineGAN's 1.5x box crop.")
@click.option("--features", type=click.Choice(["embedding", "child", "both"]),
              default="embedding", show_default=True,
              help="What k-means clusters: the encoder embedding (parents from the child "
                   "centres), the child/parent probabilities, or both.")
@click.option("--parents", type=click.Choice(["auto", "silhouette", "features"]),
              default="auto", show_default=True,
              help="Group child clusters into parents by the outline their members share in "
                   "their boxes (silhouette), or as --features says; auto: silhouette when "
                   "every image has a box.")
@click.option("--parent-sizes", type=click.Choice(["equal", "free"]), default="equal",
              show_default=True,
              help="equal: every parent gets K / K-PARENT child clusters, as FineGAN's tied "
                   "codes give every parent code N_c / N_p child codes; free: any number "
                   "(parents from --features child always group freely).")
@click.option("--overcluster", type=int,
              help="Also report over-clustering accuracy with up to M clusters per class.")
@click.option("--faithful", is_flag=True,
              help="Train with FineGAN's original objective (no mask constraints).")
@click.option("--overwrite", is_flag=True,
              help="Replace the results of a finished run in --out (default: refuse); a "
                   "model there trained with other settings is retrained.")
@click.option("--no-report", is_flag=True,
              help="Skip the pictures and report.html (make them later with `visualize`).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device")
@precision_option
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
@quiet_option
@user_errors
def cluster(data, k, k_parent, model, preset, iters, out, labels, labels_from_dirs,
            label_column, bboxes, no_bboxes, crop, features, parents, parent_sizes, overcluster,
            faithful, overwrite, no_report, seed, device, precision, cache_dir):
    """Discover K fine-grained categories among the images under DATA.

    Under torchrun (--out required) FineGAN and the encoder train data-parallel and the
    images are encoded in shards; rank 0 clusters them all and writes the run."""
    from .pipeline import cluster_folder

    if labels and labels_from_dirs:
        raise UserError("give --labels or --labels-from-dirs, not both")
    r = cluster_folder(data, k=k, k_parent=k_parent, model=model, preset=preset, out=out,
                       labels=labels, labels_from_dirs=labels_from_dirs,
                       label_column=label_column, bboxes=bboxes, no_bboxes=no_bboxes,
                       seed=seed, iters=iters, device=device, cache_dir=cache_dir,
                       features=features, parents=parents, parent_sizes=parent_sizes,
                       overcluster=overcluster,
                       faithful=faithful, crop=crop,
                       overwrite=overwrite, report=not no_report, precision=precision,
                       log=lambda msg: click.echo(msg, err=True))
    if r is None:  # a torchrun process other than rank 0
        return
    click.echo(f"clustered {r.n_images} images into {r.k} clusters under {r.k_parent} parents, "
               + (f"{r.skipped} files skipped (listed in {r.run_dir / 'skipped.csv'})"
                  if r.skipped else "0 files skipped"))
    if r.metrics:
        _print_metrics(r.metrics)
    click.echo(f"assignments: {r.run_dir / 'assignments.csv'}")
    click.echo(f"clusters:    {r.run_dir / 'clusters.json'}")
    if r.metrics:
        click.echo(f"metrics:     {r.run_dir / 'metrics.json'}")
    click.echo(f"model:       {r.model_dir}")
    if not no_report:
        click.echo(f"report:      {r.run_dir / 'report.html'}")


def _print_metrics(m: dict) -> None:
    for level in ("child", "parent"):
        if level in m:
            vals = "  ".join(f"{k}={v:.3f}" for k, v in m[level].items())
            click.echo(f"{level:>6}: {vals}")


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A run directory holding a FineGAN (and its encoder, trained if absent).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--bboxes", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-bboxes", is_flag=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace embeddings already in --out.")
@click.option("--device")
@precision_option
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
@quiet_option
@user_errors
def embed(data, model, out, bboxes, no_bboxes, batch_size, overwrite, device, precision,
          cache_dir):
    """Write encoder features and parent/child probabilities of the images under DATA.

    Under torchrun each process encodes a share of the images (--batch-size per process)
    and rank 0 writes them all, in order."""
    from .pipeline import embed_folder, ensure_writable

    if (out / "features.npy").exists() and not overwrite:
        raise UserError(f"{out} already holds embeddings; pass --overwrite to replace them "
                        "or choose another --out")
    ensure_writable(out)

    e = embed_folder(data, model, out, bboxes=bboxes, no_bboxes=no_bboxes,
                     batch_size=batch_size, device=device, cache_dir=cache_dir,
                     precision=precision, log=lambda msg: click.echo(msg, err=True))
    if e is None:  # a torchrun process other than rank 0
        return
    click.echo(f"embedded {len(e.files)} images ({e.features.shape[1]}-d features) into {out}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--max-points", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Most images in the UMAP map; more are sampled (seeded) down to it.")
@click.option("--thumbnails", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw this many images at points spread over the map.")
@click.option("--per-cluster", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images in each child cluster's gallery.")
@click.option("--no-model-pictures", is_flag=True,
              help="Do not draw the FineGAN grids (the report keeps those already drawn).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device")
@quiet_option
@user_errors
def visualize(run_dir, max_points, thumbnails, per_cluster, no_model_pictures, seed, device):
    """Draw the UMAP map, galleries and model pictures of a `cluster` run, and report.html."""
    from .visualize import visualize_run

    p = visualize_run(run_dir, max_points=max_points, thumbnails=thumbnails,
                      per_cluster=per_cluster, model_pictures=not no_model_pictures,
                      seed=seed, device=device, log=lambda msg: click.echo(msg, err=True))
    click.echo(f"map:       {p.umap_png} ({p.umap_note})")
    click.echo(f"galleries: {p.overview.parent}")
    if p.generated:
        click.echo(f"model:     {p.generated[0].parent}")
    click.echo(f"report:    {p.report}")


@cli.command()
@click.argument("assignments", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--labels", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label-column")
@click.option("--parent-label-column")
@click.option("--overcluster", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@user_errors
def evaluate(assignments, labels, label_column, parent_label_column, overcluster, as_json):
    """Score any CSV of file,cluster[,parent_cluster] against labels."""
    import json

    from .evaluate import evaluate_assignments

    m = evaluate_assignments(assignments, labels, label_column=label_column,
                             parent_label_column=parent_label_column, overcluster=overcluster)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    click.echo(f"{m['n_images']} images scored ({m['n_unmatched']} without a label row), "
               f"{m['n_clusters']} clusters, {m['n_classes']} classes")
    _print_metrics(m)


@cli.command()
@click.option("--dataset", type=click.Choice(["cub", "dogs", "cars", "synthetic"]),
              help="The data set under --root (synthetic: a folder from `fgdiscover synth`).")
@click.option("--root", type=click.Path(path_type=Path),
              help="The data set folder as downloaded and unpacked.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where results.csv, results.json, report.md and runs/ go.")
@click.option("--methods", default="pixels,depict,infogan,jule,fgdiscover", show_default=True,
              help="Comma-separated methods to run.")
@click.option("--preset", type=click.Choice(["paper", "cpu", "tiny"]),
              help="Sizes and iterations of every method; default 'paper' on a GPU, "
                   "'cpu' otherwise.")
@click.option("--split", type=click.Choice(["all", "train", "test"]), default="all",
              show_default=True, help="Official split of CUB / Dogs / Cars to use.")
@click.option("--crop", type=click.Choice(["full", "bbox"]), default="full", show_default=True,
              help="Frame every method's images whole, or crop them to 1.5x the box.")
@click.option("--n-parent", "n_parent",
              help="fgdiscover's parent codes N_p; a comma list (5,10,20,40) runs it once "
                   "per value (the FineGAN paper's ablation). Default: the divisor of k "
                   "closest to k/10.")
@click.option("--iters", type=int, help="FineGAN iterations (default: the preset's).")
@click.option("--report-only", is_flag=True,
              help="Only re-render report.md from OUT/results.json.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
@quiet_option
@user_errors
def benchmark(dataset, root, out, methods, preset, split, crop, n_parent, iters, report_only,
              seed, device, cache_dir):
    """Run fgdiscover and the baselines on the same images; report beside published numbers."""
    from .benchmark import read_results, render_report, run_benchmark

    from .distributed import world_from_env

    if world_from_env().enabled:
        raise UserError("benchmark runs in one process; under torchrun use train, embed or "
                        "cluster")
    if report_only:
        (out / "report.md").write_text(render_report(read_results(out)))
        click.echo(f"report: {out / 'report.md'}")
        return
    if dataset is None or root is None:
        raise UserError("--dataset and --root are required (unless --report-only)")
    try:
        n_parents = ([int(v) for v in n_parent.split(",") if v.strip()] if n_parent else None)
    except ValueError:
        raise UserError(f"--n-parent takes integers separated by commas, got {n_parent!r}")
    preset = preset or _device_default_preset(device)
    command = (f"fgdiscover benchmark --dataset {dataset} --root {root} --out {out} "
               f"--methods {methods} --preset {preset} --split {split} --crop {crop} --seed {seed}"
               + (f" --n-parent {n_parent}" if n_parent else "")
               + (f" --iters {iters}" if iters else ""))
    r = run_benchmark(dataset, root, out, methods=methods, preset=preset, split=split, crop=crop,
                      n_parents=n_parents, seed=seed, iters=iters, device=device,
                      cache_dir=cache_dir, command=command, progress=True,
                      log=lambda msg: click.echo(msg, err=True))
    for rec in r["methods"]:
        click.echo(f"{rec['method']:>10}: NMI {rec['nmi']:.3f}  accuracy {rec['accuracy']:.3f}"
                   + (f"  (N_p = {rec['n_parent']})" if rec.get("n_parent") else ""))
    click.echo(f"results: {out / 'results.csv'}, {out / 'results.json'}")
    click.echo(f"report:  {out / 'report.md'}")


def main():
    cli(prog_name="fgdiscover")


if __name__ == "__main__":
    main()
