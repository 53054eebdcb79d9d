"""The stages a user runs, as library functions the CLI calls one at a time.

images -> :func:`load_images` (scan, decode cache) -> :func:`train_run` (FineGAN)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FGDError
from .data.folder import ImageFolder, scan_images
from .train.config import GANConfig
from .train.gan import train_gan

BBOXES_CSV = "bboxes.csv"
SKIPPED_CSV = "skipped.csv"


def load_images(data, size: int, *, bboxes=None, no_bboxes: bool = False, labels=None,
                labels_from_dirs: bool = False, label_column=None, cache_dir=None,
                crop: str = "full", split: str = "all", progress: bool = True) -> ImageFolder:
    """Scan and decode the images under ``data`` at ``size`` px (through the cache).

    Boxes come from ``bboxes`` or, unless ``no_bboxes``, from ``data/bboxes.csv`` when it
    exists (the layout ``fgdiscover synth`` writes) or a recognised data set's own
    annotations. The returned dataset gets a ``bbox_missing`` bool array of shape (n,).

    ``crop="full"`` (default) keeps the whole (centre-square) image and uses boxes only to
    tell D_b which patches are background; ``crop="bbox"`` is FineGAN's crop to 1.5x the
    box, after which a patch of D_b rarely lies clear of the object (see README).

    ``split`` (``"all"``, ``"train"``, ``"test"``) keeps the official split of a CUB,
    Stanford Dogs or Stanford Cars folder (:func:`select_split`).
    """
    if bboxes is None and not no_bboxes and (Path(data) / BBOXES_CSV).is_file():
        bboxes = Path(data) / BBOXES_CSV
    ds = ImageFolder(data, size=size, bboxes_csv=bboxes, labels_csv=labels,
                     label_column=label_column, labels_from_dirs=labels_from_dirs,
                     cache_dir=cache_dir, use_annotations=not no_bboxes, crop=crop,
                     progress=progress)
    ds = select_split(ds, split)
    ds.bbox_missing = np.isnan(ds.bboxes).any(axis=1)
    return ds


SPLITS = ("all", "train", "test")


def select_split(ds: ImageFolder, split: str) -> ImageFolder:
    """Keep only the official ``"train"`` or ``"test"`` images of a recognised data set
    (``ds.is_train``), in place; ``"all"`` keeps everything. The kept images are copied
    into memory. FGDError for an unknown split or a folder without an official split."""
    if split not in SPLITS:
        raise FGDError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if split == "all":
        return ds
    if ds.is_train is None:
        raise FGDError(f"split {split!r} needs a CUB, Stanford Dogs or Stanford Cars folder "
                       f"with its official split; {ds.root} is a plain image folder")
    keep = np.flatnonzero(ds.is_train if split == "train" else ~ds.is_train)
    if len(keep) == 0:
        raise FGDError(f"the {split} split of {ds.root} holds no usable image")
    ds.images = np.ascontiguousarray(ds.images[keep])
    ds.files = [ds.files[i] for i in keep]
    ds.bboxes = ds.bboxes[keep]
    ds.labels = None if ds.labels is None else [ds.labels[i] for i in keep]
    ds.is_train = ds.is_train[keep]
    return ds


def train_run(dataset: ImageFolder, run_dir, cfg: GANConfig, *, resume=False, device=None,
              progress=True, stop_after=None, precision=None) -> Path:
    """Train FineGAN on a loaded dataset into ``run_dir``; returns the checkpoint path."""
    return train_gan(dataset.images, dataset.bboxes, run_dir, cfg, resume=resume,
                     device=device, progress=progress, stop_after=stop_after,
                     precision=precision)


# --------------------------------------------------------------------------- discovery
# images -> FineGAN (trained unless given) -> encoder -> embeddings -> FAISS k-means


def default_k_parent(k: int) -> int:
    """FineGAN's ratio (20 parents for 200 children): the divisor of k closest to k / 10,
    at least 2 when k allows it."""
    divisors = [d for d in range(1, k + 1) if k % d == 0]
    floor = 2 if k >= 4 else 1
    return min((d for d in divisors if d >= floor), key=lambda d: (abs(d - k / 10), d))


def code_counts(k: int, k_parent: int) -> tuple[int, int]:
    """FineGAN code sizes for k child / k_parent parent clusters: n_parent = k_parent and
    n_child = k rounded up to a multiple of it (tied codes need whole families)."""
    return k_parent, -(-k // k_parent) * k_parent


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` (and parents) and prove a file can be written there, before any
    work; FGDError naming the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fgdiscover-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FGDError(f"cannot write to {folder}: {e.strerror or e}") from None


def write_skipped(run_dir: Path, skipped) -> Path | None:
    """List unusable files as ``run_dir/skipped.csv`` (header ``file,reason``, CSV-quoted,
    UTF-8); None, and an earlier list removed, when nothing was skipped."""
    path = Path(run_dir) / SKIPPED_CSV
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    _write_csv(path, ["file", "reason"], skipped)
    return path


def check_model_dir(model_dir: Path, cfg: GANConfig, *, overwrite: bool) -> bool:
    """Whether the training run in ``model_dir`` (an earlier ``cluster`` with the same
    --out) must be cleared before training with ``cfg``.

    Same settings (``--iters`` may grow): False, the run is resumed or reused. Other
    settings: FGDError, or True with ``overwrite``. Nothing is removed here.
    """
    from .train.gan import CHECKPOINT

    if not (model_dir / "config.json").exists() and not (model_dir / CHECKPOINT).exists():
        return False
    try:
        saved = GANConfig.load(model_dir / "config.json")
    except FGDError:
        saved = None
    if saved is not None and saved.replace(iters=cfg.iters) == cfg:
        return False
    if not overwrite:
        raise FGDError(f"{model_dir} holds a FineGAN trained with other settings; pass "
                       "--overwrite to retrain it, or choose another --out")
    return True


def next_run_dir(base: Path, name: str) -> Path:
    """A new numbered directory ``base/NNNNN-name`` (never an existing one)."""
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[:5]) for p in base.iterdir() if p.name[:5].isdigit()]
    return base / f"{max(taken, default=0) + 1:05d}-{name}"


@dataclass(frozen=True)
class ClusterResult:
    run_dir: Path
    model_dir: Path
    n_images: int
    skipped: int
    k: int
    k_parent: int
    metrics: dict | None
    trained_gan: bool
    trained_encoder: bool


def cluster_folder(data, *, k: int, k_parent: int | None = None, model=None, preset=None,
                   out=None, labels=None, labels_from_dirs=False, label_column=None,
                   bboxes=None, no_bboxes=False, seed: int = 0, iters=None, device=None,
                   cache_dir=None, features: str = "embedding", overcluster=None,
                   faithful: bool = False, crop=None, overwrite: bool = False, progress=True,
                   report: bool = True, parents: str = "auto", split: str = "all",
                   parent_sizes: str = "equal", precision=None,
                   log=print) -> ClusterResult | None:
    """The main job: discover k categories (and k_parent super-categories) under ``data``.

    Without ``model`` a FineGAN is first trained on ``data`` into ``out/model`` (resumed
    if that folder already holds a partial run) and its encoder trained; with ``model``
    (a ``fgdiscover train`` run directory) its encoder is reused or trained once and kept
    there. Writes into ``out``: config.json, embeddings/, assignments.csv, clusters.json,
    metrics.json (when labels are given), skipped.csv (when files were skipped).

    An ``out`` holding a finished clustering is refused unless ``overwrite``; one holding
    a partial run with the same settings is resumed (a model that finished training is
    reused, never retrained). ``overwrite`` also retrains a model trained with other
    settings; nothing is removed before the images have loaded.

    ``parents`` chooses how child clusters are grouped into parents: ``"silhouette"`` by
    the outline their members share inside their boxes (:mod:`fgdiscover.silhouette`;
    needs a box for every image), ``"features"`` as ``features`` says (:data:`FEATURES`),
    ``"auto"`` the first when every image has a box, else the second. ``parent_sizes``:
    ``"equal"`` gives every parent ``k // k_parent`` (or one more) child clusters, as
    FineGAN's tied codes do; ``"free"`` lets the grouping choose (not with parent
    probabilities, ``features="child"``, which always group freely).

    ``split`` keeps the official train or test images of CUB / Dogs / Cars
    (:func:`select_split`); FineGAN is then trained and the images clustered on those only.

    Under torchrun (``out`` required) every process trains FineGAN and the encoder
    data-parallel and encodes its share of the images; rank 0 writes every file, runs
    k-means over all the embeddings and draws the report, the others return None.
    ``precision``: bf16 or fp32 forward passes (:mod:`fgdiscover.accel`).
    """
    from . import distributed
    from .cluster import hierarchical_kmeans, representatives
    from .embed import embed_images
    from .train.config import GANConfig, preset as get_preset
    from .train.encoder import ENCODER, ENCODER_PRESETS, load_encoder, train_encoder
    from .train.gan import CHECKPOINT, load_finegan

    started = time.perf_counter()
    if k < 2:
        raise FGDError("--k must be at least 2")
    k_parent = default_k_parent(k) if k_parent is None else k_parent
    if not 1 <= k_parent <= k:
        raise FGDError(f"--k-parent must lie between 1 and --k ({k}), got {k_parent}")
    if features not in FEATURES:
        raise FGDError(f"unknown features {features!r}; choose from {', '.join(FEATURES)}")
    if parents not in PARENTS:
        raise FGDError(f"unknown parents {parents!r}; choose from {', '.join(PARENTS)}")
    if parent_sizes not in PARENT_SIZES:
        raise FGDError(f"unknown parent sizes {parent_sizes!r}; choose from "
                       f"{', '.join(PARENT_SIZES)}")
    scan_images(data)  # a missing or empty folder fails here, before any directory is made
    world, dev = distributed.setup(device)
    if world.enabled and out is None:
        raise FGDError("under torchrun give --out: every process must use the same run "
                       "directory")
    if not world.is_main:  # rank 0 reports and writes the files
        log = _silent
    preset_name = preset or default_preset(dev)
    out = Path(out).resolve() if out else next_run_dir(Path.cwd() / "fgdiscover-runs",
                                                       f"cluster-{Path(data).name or 'data'}")
    if (out / "assignments.csv").exists() and not overwrite:
        raise FGDError(f"{out} already holds a clustering; pass --overwrite to replace it or "
                       "choose another --out")
    created = not out.exists()
    ensure_writable(out)
    with _drop_if_left_empty(out, created):
        if model is None:
            n_parent, n_child = code_counts(k, k_parent)
            cfg = get_preset(preset_name).replace(n_parent=n_parent, n_child=n_child, seed=seed,
                                                  iters=iters, crop=crop)
            if faithful:
                cfg = cfg.faithful()
            model_dir = out / "model"
        else:
            model_dir = Path(model).resolve()
            if not (model_dir / CHECKPOINT).is_file():
                raise FGDError(f"{model_dir} is not a trained run (no {CHECKPOINT})")
            cfg = GANConfig.load(model_dir / "config.json")
        clear_model = model is None and check_model_dir(model_dir, cfg, overwrite=overwrite)
        # the images first: an error here leaves an earlier run's files (config.json included)
        # as they were
        ds = load_images(data, cfg.resolution, bboxes=bboxes, no_bboxes=no_bboxes, labels=labels,
                         labels_from_dirs=labels_from_dirs, label_column=label_column,
                         cache_dir=cache_dir, crop=cfg.crop, split=split, progress=progress)
        if len(ds) < k:
            raise FGDError(f"only {len(ds)} usable images for --k {k}")
        all_boxed = bool(np.isfinite(ds.bboxes).all())
        if parents == "silhouette" and not all_boxed:
            raise FGDError(f"--parents silhouette needs a box for every image; "
                           f"{int((~np.isfinite(ds.bboxes).all(1)).sum())} have none")
        parents = "silhouette" if parents == "auto" and all_boxed else (
            "features" if parents == "auto" else parents)
        enc_cfg = dataclasses.replace(ENCODER_PRESETS[preset_name], seed=seed)
        if world.is_main:
            _start_run_files(out, ds, model_dir, clear_model, log, {
                "data": str(Path(data).resolve()), "k": k, "k_parent": k_parent, "seed": seed,
                "features": features, "parents": parents, "parent_sizes": parent_sizes,
                "preset": preset_name, "split": split,
                "model": str(model_dir),
                "gan": cfg.to_json(), "encoder": dataclasses.asdict(enc_cfg),
                "labels": str(Path(labels).resolve()) if labels else (
                    "from-dirs" if labels_from_dirs else None),
                "label_column": label_column, "device": str(dev),
                "precision": precision or "auto", "processes": world.world_size})
        distributed.barrier()  # an --overwrite'n model is gone before anyone looks at it
        log(f"{len(ds)} images from {ds.root} at {cfg.resolution} px "
            f"({int((~ds.bbox_missing).sum())} with boxes), {len(ds.skipped)} skipped")

        trained_gan = model is None and not _finished(model_dir, cfg)
        if trained_gan:
            log(f"training FineGAN ({preset_name} preset, {cfg.n_parent} parent / "
                f"{cfg.n_child} child codes, {cfg.iters} iterations) into {model_dir}")
            resume = (model_dir / CHECKPOINT).exists()
            distributed.barrier()  # every process has looked before rank 0 removes anything
            if world.is_main:
                (model_dir / ENCODER).unlink(missing_ok=True)  # an encoder of the earlier weights
            train_run(ds, model_dir, cfg, resume=resume, device=dev, progress=progress,
                      precision=precision)
        gan, cfg, _ = load_finegan(model_dir, dev)
        enc_path = model_dir / ENCODER
        trained_encoder = not enc_path.exists()
        if trained_encoder:
            log(f"training the inverse encoder into {enc_path}")
            encoder = train_encoder(gan, enc_path, enc_cfg, real_images=ds.images,
                                    boxes=ds.bboxes, device=dev, progress=progress, log=log,
                                    precision=precision)
        else:
            encoder = load_encoder(enc_path, dev)
        emb = embed_images(encoder, ds.images, ds.files, out / "embeddings", device=dev,
                           progress=progress, precision=precision)
        if not world.is_main:  # k-means, files and report: rank 0, over all the embeddings
            return None

        child_x, parent_x = FEATURES[features](emb)
        rows = None
        if parents == "silhouette":
            parent_x, rows = None, functools.partial(_silhouette_rows, ds.images, ds.bboxes, k,
                                                    seed=seed)
        res = hierarchical_kmeans(child_x, parent_x, k=k, k_parent=k_parent, seed=seed,
                                  n_init=5, normalize=True, progress=progress,
                                  max_points_per_centroid=KMEANS_POINTS_PER_CENTROID,
                                  child_descriptors=rows,
                                  equal_parents=parent_sizes == "equal")
        _write_assignments(out / "assignments.csv", ds.files, res)
        reps = representatives(child_x, res.child, n=8)
        sizes = np.bincount(res.child, minlength=k)
        clusters = [{"cluster": int(c), "parent_cluster": int(res.child_to_parent[c]),
                     "size": int(sizes[c]),
                     "representatives": [ds.files[i] for i in reps.get(c, [])]}
                    for c in range(k)]
        (out / "clusters.json").write_text(json.dumps(
            {"k": k, "k_parent": k_parent,
             "parent_sizes": np.bincount(res.parent, minlength=k_parent).tolist(),
             "clusters": clusters}, indent=2) + "\n")

        metrics = None
        if ds.labels is not None:
            from .evaluate import evaluate_assignments

            labels_csv = labels
            if labels_csv is None:  # labels from sub-folders or a known data set's annotations
                labels_csv = out / "labels.csv"
                _write_csv(labels_csv, ["file", "label"], zip(ds.files, ds.labels))
            metrics = evaluate_assignments(out / "assignments.csv", labels_csv,
                                           label_column=label_column, overcluster=overcluster)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        else:
            (out / "metrics.json").unlink(missing_ok=True)  # an overwritten run's scores
        (out / "summary.json").write_text(json.dumps({
            "n_images": len(ds), "n_skipped": len(ds.skipped), "k": k, "k_parent": k_parent,
            "wall_s": round(time.perf_counter() - started, 1), "trained_gan": trained_gan,
            "trained_encoder": trained_encoder}, indent=2) + "\n")
        if report:  # umap.png/csv, galleries/, generated/, report.html (fgdiscover.visualize)
            from .visualize import visualize_run

            visualize_run(out, device=dev, progress=progress, log=log)
        return ClusterResult(out, model_dir, len(ds), len(ds.skipped), k, k_parent, metrics,
                             trained_gan, trained_encoder)


@contextlib.contextmanager
def _drop_if_left_empty(folder: Path, created: bool):
    """On an error, remove ``folder`` again if this run made it and nothing was written in
    it (a failed command leaves no empty run directory behind; files are never removed)."""
    try:
        yield
    except BaseException:
        if created:
            try:
                folder.rmdir()  # only succeeds on an empty folder
            except OSError:
                pass
        raise


def default_preset(device) -> str:
    """The preset a run gets when none is named: ``paper`` on a GPU, ``cpu`` otherwise."""
    return "paper" if device.type == "cuda" else "cpu"


def _silent(msg: str) -> None:
    """The log of torchrun processes other than rank 0."""


def _start_run_files(out: Path, ds, model_dir: Path, clear_model: bool, log,
                     config: dict) -> None:
    """skipped.csv and config.json of a cluster run, and an outdated model removed."""
    from .train.gan import clear_run

    write_skipped(out, ds.skipped)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if clear_model:
        log(f"--overwrite: removing the FineGAN trained with other settings in {model_dir}")
        clear_run(model_dir)


def embed_folder(data, model, out, *, bboxes=None, no_bboxes=False, batch_size=256,
                 device=None, cache_dir=None, progress=True, preset=None, precision=None,
                 log=print):
    """Encode the images under ``data`` with the encoder of run ``model`` into ``out``
    (the encoder is trained and kept in ``model`` first if it has none, with the encoder
    settings of ``preset``, by default the device's as in :func:`cluster_folder`).

    Under torchrun every process takes part (the encoder trained data-parallel, the
    images encoded in shards); rank 0 writes ``out`` and the others return None."""
    from . import distributed
    from .embed import embed_images
    from .train.encoder import ENCODER, ENCODER_PRESETS, load_encoder, train_encoder
    from .train.gan import load_finegan

    world, dev = distributed.setup(device)
    gan, cfg, _ = load_finegan(model, dev)
    ds = load_images(data, cfg.resolution, bboxes=bboxes, no_bboxes=no_bboxes,
                     cache_dir=cache_dir, crop=cfg.crop, progress=progress)
    enc_path = Path(model) / ENCODER
    if enc_path.exists():
        encoder = load_encoder(enc_path, dev)
    else:
        if world.is_main:
            log(f"training the inverse encoder into {enc_path}")
        encoder = train_encoder(gan, enc_path, ENCODER_PRESETS[preset or default_preset(dev)],
                                real_images=ds.images, boxes=ds.bboxes, device=dev,
                                progress=progress, log=log, precision=precision)
    return embed_images(encoder, ds.images, ds.files, out, batch_size=batch_size, device=dev,
                        progress=progress, precision=precision)


def _finished(run_dir: Path, cfg: GANConfig) -> bool:
    """True when ``run_dir`` holds a checkpoint that completed ``cfg.iters`` steps.

    The log is read only up to the checkpoint's step: a run killed after it logged steps
    its checkpoint lacks is not finished (resuming trims those lines).
    """
    from .train.checkpoint import load_checkpoint
    from .train.gan import CHECKPOINT

    if not (run_dir / CHECKPOINT).exists():
        return False
    return int(load_checkpoint(run_dir / CHECKPOINT).get("step", -1)) >= cfg.iters


def _write_csv(path: Path, header, rows) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)


def _write_assignments(path: Path, files, res) -> None:
    _write_csv(path, ["file", "cluster", "parent_cluster", "confidence"],
               ((f, int(c), int(p), f"{q:.4f}") for f, c, p, q in
                zip(files, res.child, res.parent, res.child_confidence)))


# What k-means clusters: (child-level features, parent-level features or None). With None
# the parent clusters group the child clusters' centres (FaissKMeans on centroids); with the
# parent probabilities, each child cluster joins the parent cluster holding most of its
# images. Measured on the synthetic set (benchmarks/README.md): the embedding with
# centroid parents scored best, so it is the default.
PARENTS = ("auto", "silhouette", "features")
PARENT_SIZES = ("equal", "free")

#: k-means in ``cluster`` trains on at most this many images per cluster (a seeded random
#: subsample, as faiss does by default with 256), then assigns every image: exact on any
#: folder below k * 1,024 images (200,000 for k = 200), bounded time and memory above
#: (1,000,000 x 256 with k = 1,000 at 256: benchmarks/results/perf.md).
KMEANS_POINTS_PER_CENTROID = 1024


def _silhouette_rows(images, boxes, k: int, child: np.ndarray, blur=None, spread="mad",
                     seed: int = 0, unit: bool = True) -> np.ndarray:
    """One silhouette per child cluster (clusters with too few members get the mean one),
    with ``unit``, centred and scaled to unit length: the grouping compares outlines, not
    how sharp they are (a cluster that mixes shapes has a fainter one)."""
    from .silhouette import cluster_silhouettes

    maps, counts = cluster_silhouettes(images, boxes, child, k, blur=blur, spread=spread,
                                       seed=seed)
    ok = np.isfinite(maps).all(axis=1)
    maps[~ok] = np.average(maps[ok], axis=0, weights=counts[ok])
    return unit_length_rows(maps) if unit else maps


def unit_length_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` centred (each on its own mean) and scaled to unit length, in place."""
    rows -= rows.mean(axis=1, keepdims=True)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-8)
    return rows


FEATURES = {
    "embedding": lambda e: (np.asarray(e.features), None),
    "child": lambda e: (np.asarray(e.child_probs), np.asarray(e.parent_probs)),
    "both": lambda e: (np.hstack([e.child_probs, e.features / (
        np.linalg.norm(e.features, axis=1, keepdims=True) + 1e-8)]), None),
}
