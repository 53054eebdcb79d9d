"""``fgdiscover benchmark``: every method on the same images, scored the same way, beside
the published numbers.

One run loads the images of a data set once (CUB-200-2011, Stanford Dogs, Stanford Cars
in their published layouts, or a folder written by ``fgdiscover synth``), clusters them
into k = the number of classes with each method asked for, and writes into ``out``:

- ``results.json``: the protocol (data set, split, k, images, preset, seed), the command,
  the machine, one record per method run and the published rows of that data set;
- ``results.csv``: the method records as a table;
- ``report.md``: :func:`render_report` of ``results.json``;
- ``runs/``: the ``fgdiscover cluster`` run of each fgdiscover variant.

Methods are the baselines of :mod:`fgdiscover.baselines` and ``fgdiscover`` itself
(:func:`fgdiscover.pipeline.cluster_folder`), once per ``n_parent`` given (the FineGAN
paper's N_p ablation). ``results.json`` is rewritten after every method, so an
interrupted run keeps the methods that finished.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fgdiscover import published
from fgdiscover.baselines import BASELINES
from fgdiscover.errors import FGDError
from fgdiscover.markdown import markdown_table
from fgdiscover.metrics import score

#: --dataset name -> (name in the published tables, full name).
DATASETS = {"cub": ("CUB", "CUB-200-2011"), "dogs": ("Dogs", "Stanford Dogs"),
            "cars": ("Cars", "Stanford Cars"), "synthetic": ("synthetic", "synthetic set")}
#: Every method, in report order.
METHODS = (*BASELINES, "fgdiscover")
#: Side of the images the baselines see, per preset.
BASELINE_RESOLUTION = {"tiny": 16, "cpu": 32, "paper": 64}
#: Metrics recorded per method.
SCORES = ("nmi", "accuracy", "ari")
RESULT_COLUMNS = ("method", "n_parent", "nmi", "accuracy", "ari", "parent_nmi",
                  "parent_accuracy", "k", "split", "crop", "n_images", "resolution", "preset",
                  "seed", "wall_s", "error")
FGDISCOVER_DIFFERENCES = (
    "FineGAN (with fgdiscover's mask constraints, README) trained on these images, its "
    "inverse encoder, FAISS k-means on the embedding; the preset sets resolution, widths "
    "and iterations (the FineGAN paper: 128 px, ~440k iterations)")


@dataclass
class BenchmarkData:
    """The images every baseline sees, with the ground truth.

    Attributes
    ----------
    images : ndarray of shape (n, R, R, 3), uint8
    labels : ndarray of shape (n,), str
        Class of each image (the child class on the synthetic set).
    parent_labels : ndarray of shape (n,), str, or None
        The synthetic set's parent class.
    files : list of str
    k : int
        Number of classes among the images.
    """

    images: np.ndarray
    labels: np.ndarray
    parent_labels: np.ndarray | None
    files: list[str]
    k: int


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """``"pixels,fgdiscover"`` -> the names, checked, in :data:`METHODS` order."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise FGDError(f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from "
                       f"{', '.join(METHODS)}")
    return [m for m in METHODS if m in names]


def _synthetic_labels(root: Path) -> Path:
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FGDError(f"{root} is not a folder written by `fgdiscover synth` (no labels.csv)")
    return labels


def load_data(dataset: str, root, *, resolution: int, split: str = "all", crop: str = "full",
              cache_dir=None, progress: bool = False) -> BenchmarkData:
    """The images of ``dataset`` under ``root`` at ``resolution`` px, framed whole
    (``crop="full"``) or cropped to 1.5x the object box (``"bbox"``, FineGAN's crop), the
    official ``split``; FGDError when ``root`` holds another layout."""
    from fgdiscover.data import tables
    from fgdiscover.pipeline import load_images

    if dataset not in DATASETS:
        raise FGDError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    root = Path(root)
    parents = None
    if dataset == "synthetic":
        labels_csv = _synthetic_labels(root)
        ds = load_images(root, resolution, labels=labels_csv, label_column="child",
                         crop=crop, split=split, cache_dir=cache_dir, progress=progress)
        table = tables.read_label_table(labels_csv)
        if "parent" in table.columns:
            rows = tables.match_files(table.index, ds.files)
            parents = np.array([str(table["parent"].iloc[r]).strip() for r in rows])
    else:
        ds = load_images(root, resolution, crop=crop, split=split, cache_dir=cache_dir,
                         progress=progress)
        if ds.layout != dataset:
            found = "a plain image folder" if ds.layout == "folder" else ds.layout
            raise FGDError(f"{root} is not a {DATASETS[dataset][1]} folder (found: {found})")
    labels = np.asarray(ds.labels, dtype=str)
    return BenchmarkData(np.asarray(ds.images), labels, parents, list(ds.files),
                         len(np.unique(labels)))


def machine() -> dict:
    """Where the numbers were measured: OS, CPU, cores, torch, GPU."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh
                        if ln.lower().startswith("model name")), cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg")
            else None,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _scores(truth: np.ndarray, pred, prefix: str = "") -> dict:
    return {prefix + name: round(v, 4) for name, v in score(truth, pred, SCORES).items()}


def run_baseline(name: str, data: BenchmarkData, *, preset: str, seed: int, device: str,
                 progress: bool) -> dict:
    """One baseline on ``data``: its scores (child level) and wall time."""
    started = time.perf_counter()
    pred = BASELINES[name].fit_predict(data.images, data.k, preset=preset, seed=seed,
                                       device=device, progress=progress)
    rec = {"wall_s": round(time.perf_counter() - started, 1), **_scores(data.labels, pred)}
    if data.parent_labels is not None:  # a flat clustering scored at the parent level too
        rec.update({k: v for k, v in _scores(data.parent_labels, pred, "parent_").items()
                    if k != "parent_ari"})
    return rec


def run_fgdiscover(dataset: str, root, out: Path, *, k: int, n_parent: int | None,
                   preset: str, split: str, crop: str, seed: int, iters: int | None, device,
                   cache_dir, progress: bool, log: Callable) -> dict:
    """``cluster_folder`` on the same folder into ``out``; its scores and wall time."""
    from fgdiscover.pipeline import cluster_folder

    labels = _synthetic_labels(Path(root)) if dataset == "synthetic" else None
    started = time.perf_counter()
    r = cluster_folder(root, k=k, k_parent=n_parent, preset=preset, out=out, labels=labels,
                       label_column="child" if labels else None, seed=seed, iters=iters,
                       device=device, cache_dir=cache_dir, overwrite=True, progress=progress,
                       report=False, split=split, crop=crop, log=log)
    gan = json.loads((r.run_dir / "config.json").read_text())["gan"]
    rec = {"wall_s": round(time.perf_counter() - started, 1), "n_parent": r.k_parent,
           "resolution": gan["resolution"], "run": str(r.run_dir)}
    rec.update({name: round(r.metrics["child"][name], 4) for name in SCORES})
    if "parent" in r.metrics:
        rec.update({f"parent_{m}": round(r.metrics["parent"][m], 4)
                    for m in ("nmi", "accuracy")})
    return rec


def run_benchmark(dataset: str, root, out, *, methods=METHODS, preset: str = "cpu",
                  split: str = "all", crop: str = "full",
                  n_parents: Sequence[int] | None = None, seed: int = 0,
                  iters: int | None = None, device: str | None = None, cache_dir=None,
                  command: str = "", progress: bool = False, log: Callable = print) -> dict:
    """Run ``methods`` on ``dataset`` and write results.json, results.csv and report.md
    into ``out``.

    Parameters
    ----------
    dataset : {"cub", "dogs", "cars", "synthetic"}
    root : path
        The data set folder as downloaded (or written by ``fgdiscover synth``).
    methods : sequence of str
        Names from :data:`METHODS`.
    preset : {"tiny", "cpu", "paper"}
        Sizes and iterations of every method (and the baselines' resolution,
        :data:`BASELINE_RESOLUTION`).
    crop : {"full", "bbox"}
        How every method frames the images: whole (fgdiscover's default; boxes only tell
        its D_b where the object is) or FineGAN's crop to 1.5x the object box.
    n_parents : sequence of int, optional
        fgdiscover runs once per value (N_p, the parent codes and clusters); default one
        run with the number of parent classes when the data set has them (synthetic), else
        :func:`fgdiscover.pipeline.default_k_parent` (20 on CUB, as in the paper).
    iters : int, optional
        FineGAN iterations (default: the preset's).

    Returns
    -------
    dict
        The content of results.json. A method that fails is recorded with its ``error``
        and the others still run; FGDError at the end names the failures.
    """
    from fgdiscover.train.gan import pick_device

    started = time.perf_counter()
    methods = parse_methods(methods)
    if preset not in BASELINE_RESOLUTION:
        raise FGDError(f"unknown preset {preset!r}; choose from {', '.join(BASELINE_RESOLUTION)}")
    if n_parents is not None and "fgdiscover" not in methods:
        raise FGDError("--n-parent sweeps fgdiscover; add it to --methods")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dev = str(pick_device(device))
    resolution = BASELINE_RESOLUTION[preset]
    data = load_data(dataset, root, resolution=resolution, split=split, crop=crop,
                     cache_dir=cache_dir, progress=progress)
    if data.k < 2:
        raise FGDError(f"the {split} images under {root} hold {data.k} class; clustering "
                       "needs at least 2")
    log(f"{len(data.files)} images of {DATASETS[dataset][1]} ({split}), k = {data.k}")
    results = {
        "dataset": dataset, "root": str(Path(root).resolve()), "split": split, "crop": crop,
        "k": data.k, "n_images": len(data.files), "preset": preset,
        "baseline_resolution": resolution,
        "seed": seed, "iters": iters, "device": dev, "command": command, "machine": machine(),
        "started": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "methods": [], "published": [
            {"method": p.method, "nmi": p.nmi, "accuracy": p.accuracy, "cell": p.cell(),
             "source": p.source, "protocol": p.protocol(), "note": p.note}
            for p in published.for_dataset(DATASETS[dataset][0])]}
    made = Path(root) / "synthetic.json"  # how `fgdiscover synth` made the set
    if dataset == "synthetic" and made.is_file():
        a = json.loads(made.read_text())
        results["synthetic"] = (f"fgdiscover synth OUT --parents {a.get('n_parent')} "
                                f"--children-per-parent {a.get('children_per_parent')} "
                                f"--n {a.get('n')} --size {a.get('size')} --seed {a.get('seed')}")
    if n_parents is None and data.parent_labels is not None:
        n_parents = [len(np.unique(data.parent_labels))]
    common = {"k": data.k, "split": split, "crop": crop, "n_images": len(data.files),
              "preset": preset, "seed": seed}
    jobs: list[tuple[str, int | None]] = [(m, None) for m in methods if m != "fgdiscover"]
    if "fgdiscover" in methods:
        jobs += [("fgdiscover", n) for n in (n_parents or [None])]
    for method, n_parent in jobs:
        log(f"-- {method}" + (f" (N_p = {n_parent})" if n_parent else ""))
        rec = {"method": method, **common}
        try:
            if method == "fgdiscover":
                run_dir = out / "runs" / (f"fgdiscover-np{n_parent}" if n_parent else "fgdiscover")
                rec.update(run_fgdiscover(dataset, root, run_dir, k=data.k, n_parent=n_parent,
                                          preset=preset, split=split, crop=crop, seed=seed,
                                          iters=iters, device=device, cache_dir=cache_dir,
                                          progress=progress, log=log))
            else:
                rec["resolution"] = resolution
                rec.update(run_baseline(method, data, preset=preset, seed=seed, device=dev,
                                        progress=progress))
        except Exception as e:  # noqa: BLE001 - recorded; the other methods still run
            rec["error"] = f"{type(e).__name__}: {e}"
            log(f"{method} failed: {rec['error']}\n{traceback.format_exc(limit=3)}")
        else:
            log(f"{method}: NMI {rec['nmi']:.3f}, accuracy {rec['accuracy']:.3f} "
                f"({rec['wall_s']:.0f} s)")
        results["methods"].append(rec)
        results["wall_s"] = round(time.perf_counter() - started, 1)
        write_results(out, results)
    failed = [r["method"] for r in results["methods"] if r.get("error")]
    if failed:
        raise FGDError(f"{', '.join(failed)} failed (see {out / 'results.json'}); the other "
                       "methods' results are there")
    return results


def write_results(out: Path, results: dict) -> None:
    """results.json, results.csv and report.md of ``results`` into ``out``."""
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(results["methods"])
    (out / "report.md").write_text(render_report(results))


def read_results(path) -> dict:
    """A results.json (or the folder holding one); FGDError when missing or malformed."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise FGDError(f"no results file at {path}") from None
    except ValueError as e:
        raise FGDError(f"{path} is not valid JSON: {e}") from None
    missing = [key for key in ("dataset", "split", "k", "n_images", "methods")
               if key not in results]
    if missing:
        raise FGDError(f"{path} is not a benchmark results file (no {', '.join(missing)})")
    return results


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


_FRAMING = {
    "full": "framed whole (centre square); fgdiscover uses the object boxes only to tell "
            "its background discriminator which patches are background.",
    "bbox": "cropped to a square of 1.5x the object box, as in FineGAN.",
}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _row_name(rec: dict) -> str:
    if rec["method"] == "fgdiscover" and rec.get("n_parent"):
        return f"**fgdiscover** (N_p = {rec['n_parent']})"
    return f"**{rec['method']}**" if rec["method"] == "fgdiscover" else rec["method"]


def render_report(results: dict) -> str:
    """The Markdown report of a results.json: the methods measured here, the published
    numbers beside them (with source and protocol), how each method differs from its
    original."""
    name = DATASETS.get(results["dataset"], (results["dataset"],) * 2)[1]
    recs = results["methods"]
    has_parent = any("parent_nmi" in r for r in recs)
    header = ["method", "NMI", "accuracy", "ARI"] + (
        ["parent NMI", "parent acc"] if has_parent else []) + [
        "k", "split", "images", "input", "wall"]
    rows = []
    for r in recs:
        if r.get("error"):
            rows.append([_row_name(r), f"failed: {r['error']}", *["-"] * (len(header) - 2)])
            continue
        rows.append([_row_name(r), _fmt(r.get("nmi")), _fmt(r.get("accuracy")),
                     _fmt(r.get("ari"))]
                    + ([_fmt(r.get("parent_nmi")), _fmt(r.get("parent_accuracy"))]
                       if has_parent else [])
                    + [r["k"], r["split"], r["n_images"], f"{r['resolution']} px",
                       _duration(r["wall_s"])])
    m = results.get("machine") or {}
    lines = [
        f"# Benchmark: {name}",
        "",
        f"{results['n_images']} images ({results['split']} split), k = {results['k']} "
        f"clusters = the number of classes; preset `{results.get('preset')}`, seed "
        f"{results.get('seed')}" + (f", FineGAN iterations {results['iters']}"
                                    if results.get("iters") else "") + ".",
        "",
    ]
    if results.get("synthetic"):
        lines += [f"Data: `{results['synthetic']}`", ""]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    if m:
        lines += [f"Machine: {m.get('cpu')}, {m.get('cores')} cores, "
                  f"{m.get('gpu') or 'no GPU'}; torch {m.get('torch')}; {m.get('platform')}; "
                  f"started {results.get('started')}"
                  + (f", load average {m['load_avg'][0]} at the start" if m.get("load_avg")
                     else "")
                  + (f"; all methods together {_duration(results['wall_s'])}"
                     if results.get("wall_s") else "") + ".", ""]
    lines += ["## Measured here (same images, same metrics)", "", markdown_table(header, rows), "",
              "NMI: arithmetic-mean normalisation (as in the FineGAN paper). Accuracy: "
              "one-to-one Hungarian matching. Every method sees the same images, "
              + _FRAMING.get(results.get("crop"), "") + " The baselines read them decoded "
              "at the resolution given, fgdiscover at its preset's resolution."]
    if has_parent:
        lines += ["", "Parent NMI / acc: the same clusters (fgdiscover: its parent clusters) "
                      "scored against the parent classes."]
    lines += ["", "## Published (not run here)", ""]
    pub = results.get("published") or []
    if pub:
        notes: dict[str, int] = {}
        prow = []
        for p in pub:
            mark = ""
            if p.get("note"):
                mark = f" [{notes.setdefault(p['note'], len(notes) + 1)}]"
            prow.append([p["method"] + mark, p["cell"].split(" / ")[0],
                         p["cell"].split(" / ")[1], p["source"], p["protocol"]])
        lines += [markdown_table(["method", "NMI", "accuracy", "source", "protocol"], prow)]
        if notes:
            lines += [""] + [f"[{i}] {n}" for n, i in notes.items()]
        lines += ["", "Published numbers come from the full-size methods (long GPU training, "
                      "128 px); compare the protocol before the numbers."]
    else:
        lines += ["None: no paper reports this data set."]
    lines += ["", "## How each method here differs from its original", ""]
    seen = list(dict.fromkeys(r["method"] for r in recs))
    for method in seen:
        if method == "fgdiscover":
            lines.append(f"- **fgdiscover**: {FGDISCOVER_DIFFERENCES}.")
        elif method in BASELINES:
            b = BASELINES[method]
            lines.append(f"- **{method}** ({b.original}): {b.differences}.")
    return "\n".join(lines) + "\n"
