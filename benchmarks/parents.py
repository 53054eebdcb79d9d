"""How child clusters are grouped into parents, scored on finished `fgdiscover cluster` runs.

The child clusters of a run are kept as they are (its ``assignments.csv``); only the
grouping of those k child clusters into k_parent parents changes, so every variant is
scored on the same child clustering and the differences are the grouping's alone:

* ``oracle``: each child cluster goes to the true parent most of its members have, the
  best any grouping of these child clusters can score (an upper bound, uses the labels);
* ``run``: the parents the run itself wrote;
* ``silhouette``: k-means of the clusters' box-aligned silhouettes
  (:func:`fgdiscover.silhouette.cluster_silhouettes`), the default when every image has a
  box, recomputed here;
* ``tied``: FineGAN's own hierarchy, read off the encoder: the cluster's mean child-code
  probabilities summed over the child codes of each parent code (child code c belongs to
  parent code c // (N_c / N_p)), each cluster to the parent code holding most of that mass;
* ``parent-probs``: the same with the encoder's parent-code probabilities;
* ``centres``: k-means of the child centres (the default without boxes);
* ``silhouette-core``: silhouettes from each cluster's more confident half only;
* ``... ward``: Ward-linkage agglomeration of the same rows instead of k-means;
* ``silhouette blur xF``: silhouettes with F times the default blur;
* ``silhouette+tied w=W``: silhouettes beside the ``tied`` mass (weight W), one k-means.

All in :func:`variants`; the results on runs 7 and 8 are in benchmarks/README.md.

    python benchmarks/parents.py RUN [RUN ...] --results benchmarks/results/parents.jsonl

Each RUN is a ``cluster`` run directory whose ``config.json`` names its data folder (a
`fgdiscover synth` set with ``labels.csv``); ``--cache-dir`` is the decode cache it used,
when not the default. Prints one table (parent NMI / accuracy per variant and run, and
the median) and appends one JSON line per run to ``--results``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from fgdiscover.cluster import FaissKMeans, assign_children_to_parents  # noqa: E402
from fgdiscover.embed import Embeddings  # noqa: E402
from fgdiscover.metrics import score  # noqa: E402
from fgdiscover.pipeline import _silhouette_rows, load_images  # noqa: E402


def _mass(child: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """(k, d) sums of ``values`` rows over each child cluster's members."""
    out = np.zeros((k, values.shape[1]))
    np.add.at(out, child, values)
    return out


def tied_mass(child, child_probs, k, k_parent):
    """(k, k_parent): each cluster's child-code probability mass per parent code."""
    n_child = child_probs.shape[1]
    per_parent = np.asarray(child_probs).reshape(len(child_probs), k_parent,
                                                 n_child // k_parent).sum(2)
    return _mass(child, per_parent, k)


def _counts(lab, sizes, k_parent):
    """(k, k_parent): each child cluster's size in the column of its parent ``lab``."""
    counts = np.zeros((len(lab), k_parent))
    counts[np.arange(len(lab)), lab] = sizes
    return counts


def kmeans_rows(rows, sizes, k_parent, seed):
    """Weighted k-means of one row per child cluster -> (k, k_parent) one-hot counts."""
    lab = FaissKMeans(k_parent, seed=seed, n_init=5).fit_predict(
        np.asarray(rows, np.float32), sample_weight=np.maximum(sizes, 1e-6))
    return _counts(lab, sizes, k_parent)


def ward_rows(rows, sizes, k_parent):
    """Ward-linkage agglomeration of one row per child cluster -> (k, k_parent) counts."""
    from sklearn.cluster import AgglomerativeClustering

    lab = AgglomerativeClustering(n_clusters=k_parent, linkage="ward").fit_predict(
        np.asarray(rows, np.float64))
    return _counts(lab, sizes, k_parent)


def _unit_rows(x):
    x = np.asarray(x, np.float64)
    x = x - x.mean(0)
    return x / max(np.sqrt((x ** 2).sum(1)).mean(), 1e-12)


def variants(ctx) -> dict:
    """Every grouping variant: name -> (k, k_parent) affinity of child to parent."""
    k, kp, child, sizes, seed = ctx["k"], ctx["k_parent"], ctx["child"], ctx["sizes"], ctx["seed"]
    sil = ctx["silhouettes"]
    tied = tied_mass(child, ctx["emb"].child_probs, k, kp)
    pprob = _mass(child, np.asarray(ctx["emb"].parent_probs), k)
    tied_dist = tied / np.maximum(tied.sum(1, keepdims=True), 1e-12)
    out = {
        "oracle": _mass(child, np.eye(ctx["n_true_parents"])[ctx["true_parent"]], k),
        "silhouette": kmeans_rows(sil, sizes, kp, seed),
        "tied": tied,
        "parent-probs": pprob,
        "tied-kmeans": kmeans_rows(tied_dist, sizes, kp, seed),
    }
    core = ctx["silhouettes_core"]
    out["silhouette-core"] = kmeans_rows(core, sizes, kp, seed)
    out["silhouette ward"] = ward_rows(sil, sizes, kp)
    out["silhouette-core ward"] = ward_rows(core, sizes, kp)
    for name, rows in ctx["silhouettes_blur"].items():
        out[f"silhouette {name}"] = kmeans_rows(rows, sizes, kp, seed)
        out[f"silhouette {name} ward"] = ward_rows(rows, sizes, kp)
    centres = np.stack([np.asarray(ctx["features"])[child == c].mean(0) if sizes[c] else
                        np.zeros(ctx["features"].shape[1]) for c in range(k)])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    out["centres"] = kmeans_rows(centres, sizes, kp, seed)
    for w in (0.5, 1.0, 2.0):
        out[f"silhouette+tied w={w}"] = kmeans_rows(
            np.hstack([_unit_rows(sil), w * _unit_rows(tied_dist)]), sizes, kp, seed)
    return out


def _core_silhouettes(ds, rows, child, assign, k):
    """Silhouettes from each cluster's more confident half (confidence >= its median)."""
    conf = assign["confidence"].to_numpy()
    med = np.array([np.median(conf[child == c]) if (child == c).any() else 0.0
                    for c in range(k)])
    keep = conf >= med[child]
    return _silhouette_rows(ds.images[rows[keep]], ds.bboxes[rows[keep]], k, child[keep])


def _blur_silhouettes(ds, rows, child, k):
    """Silhouettes with other blurs (default R / 32)."""
    res = ds.images.shape[1]
    return {f"blur x{f}": _silhouette_rows(ds.images[rows], ds.bboxes[rows], k, child,
                                          blur=res / 32 * f)
            for f in (0.5, 2.0)}


def run_one(run: Path, cache_dir, seed_override=None) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    data = Path(cfg["data"])
    k, kp = int(cfg["k"]), int(cfg["k_parent"])
    seed = int(cfg["seed"] if seed_override is None else seed_override)
    gan = json.loads((run / "model" / "config.json").read_text())
    ds = load_images(data, int(gan["resolution"]), cache_dir=cache_dir, progress=False)
    assign = pd.read_csv(run / "assignments.csv")
    labels = pd.read_csv(data / "labels.csv")
    index = {f: i for i, f in enumerate(ds.files)}
    rows = np.array([index[f] for f in assign["file"]])
    lab = labels.set_index("file").loc[assign["file"]]
    child = assign["cluster"].to_numpy()
    emb = Embeddings.load(run / "embeddings")
    order = {f: i for i, f in enumerate(emb.files)}
    erows = np.array([order[f] for f in assign["file"]])
    emb = Embeddings(list(assign["file"]), np.asarray(emb.features)[erows],
                     np.asarray(emb.parent_probs)[erows], np.asarray(emb.child_probs)[erows])
    true_parent = pd.factorize(lab["parent"])[0]
    ctx = {"k": k, "k_parent": kp, "child": child, "seed": seed,
           "sizes": np.bincount(child, minlength=k).astype(np.float64),
           "silhouettes": _silhouette_rows(ds.images[rows], ds.bboxes[rows], k, child),
           "silhouettes_core": _core_silhouettes(ds, rows, child, assign, k),
           "silhouettes_blur": _blur_silhouettes(ds, rows, child, k),
           "emb": emb, "features": emb.features, "true_parent": true_parent,
           "n_true_parents": int(true_parent.max()) + 1}
    scores = {"run": score(true_parent, assign["parent_cluster"].to_numpy(), ["nmi", "accuracy"])}
    for name, counts in variants(ctx).items():
        c2p = assign_children_to_parents(counts)
        scores[name] = score(true_parent, c2p[child], ["nmi", "accuracy"])
    return {"run": str(run), "k": k, "k_parent": kp, "seed": seed,
            "child": score(lab["child"].to_numpy(), child, ["nmi", "accuracy"]),
            "parents": scores}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--cache-dir", type=Path, action="append",
                    help="decode cache of each run, in order (default: the default cache)")
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    caches = args.cache_dir or [None] * len(args.runs)
    if len(caches) != len(args.runs):
        ap.error("give one --cache-dir per run, or none")
    records = []
    for run, cache in zip(args.runs, caches):
        rec = run_one(run.resolve(), cache)
        rec.update({"command": " ".join([sys.executable, *sys.argv]), "date": common.now_iso(),
                    "machine": common.machine_info(), "git": common.git_info()})
        records.append(rec)
        if args.results:
            with open(args.results, "a") as f:
                f.write(json.dumps(rec) + "\n")
    names = list(records[0]["parents"])
    print("| grouping | " + " | ".join(f"run {i + 1} NMI / acc" for i in range(len(records)))
          + " | median NMI |")
    print("|---" * (len(records) + 2) + "|")
    for name in names:
        cells = [f"{r['parents'][name]['nmi']:.3f} / {r['parents'][name]['accuracy']:.3f}"
                 for r in records]
        med = np.median([r["parents"][name]["nmi"] for r in records])
        print(f"| {name} | " + " | ".join(cells) + f" | {med:.3f} |")
    print("child NMI: " + ", ".join(f"{r['child']['nmi']:.3f}" for r in records))


if __name__ == "__main__":
    main()
