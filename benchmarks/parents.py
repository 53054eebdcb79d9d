"""How child clusters are grouped into parents, scored on finished `fgdiscover cluster` runs.

The child clusters of a run are kept as they are (its ``assignments.csv``); only the
grouping of those k child clusters into k_parent parents changes, so every variant is
scored on the same child clustering and the differences are the grouping's alone:

* ``oracle``: each child cluster goes to the true parent most of its members have, the
  best any grouping of these child clusters can score (an upper bound, uses the labels);
* ``run``: the parents the run itself wrote;
* ``silhouette``: what ``cluster`` does when every image has a box, recomputed here:
  k-means (``DESCRIPTOR_RESTARTS`` x 5 restarts) of the clusters' box-aligned silhouettes
  (:func:`fgdiscover.silhouette.cluster_silhouettes`; median absolute deviation of a
  sample of 256 members per cluster, each silhouette centred and scaled to unit length);
  clusters whose members agree on no outline (:func:`fgdiscover.silhouette.shapeless`)
  do not move the parent centres, they join the nearest;
* ``silhouette ward``: Ward-linkage agglomeration of the same rows instead of k-means;
* ``shapeless kept`` / ``mad, 5 restarts`` / ``mad, not unit`` / ``std, unit``: the
  default with one of its four parts taken back (shapeless clusters shape the centres;
  5 restarts; raw maps; standard deviation over all members);
* ``std, not unit, 5 restarts, shapeless kept (before)``: the grouping before these four
  (session 2);
* ``tied``: FineGAN's own hierarchy, read off the encoder: the cluster's mean child-code
  probabilities summed over the child codes of each parent code (child code c belongs to
  parent code c // (N_c / N_p)), each cluster to the parent code holding most of that mass;
* ``parent-probs``: the same with the encoder's parent-code probabilities;
* ``centres``: k-means of the child centres (the default without boxes).

Earlier variants (confident-half silhouettes, other blurs, silhouettes beside the tied
mass) lost to the plain silhouettes on runs 7-8 and were dropped; their numbers are in
results/parents.jsonl and benchmarks/README.md.

All in :func:`variants`; the results are in benchmarks/README.md.

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

from fgdiscover.cluster import DESCRIPTOR_RESTARTS, FaissKMeans, assign_children_to_parents  # noqa: E402
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


def kmeans_rows(rows, sizes, k_parent, seed, n_init=5, left_out=None):
    """Weighted k-means of one row per child cluster -> (k, k_parent) one-hot counts; rows
    in ``left_out`` do not move the centres, they join the nearest."""
    fit = np.ones(len(rows), bool) if left_out is None else ~np.asarray(left_out)
    rows = np.asarray(rows, np.float32)
    lab = FaissKMeans(k_parent, seed=seed, n_init=n_init).fit(
        rows[fit], sample_weight=np.maximum(sizes[fit], 1e-6)).predict(rows)
    return _counts(lab, sizes, k_parent)


def ward_rows(rows, sizes, k_parent):
    """Ward-linkage agglomeration of one row per child cluster -> (k, k_parent) counts."""
    from sklearn.cluster import AgglomerativeClustering

    lab = AgglomerativeClustering(n_clusters=k_parent, linkage="ward").fit_predict(
        np.asarray(rows, np.float64))
    return _counts(lab, sizes, k_parent)


def variants(ctx) -> dict:
    """Every grouping variant: name -> (k, k_parent) affinity of child to parent."""
    k, kp, child, sizes, seed = ctx["k"], ctx["k_parent"], ctx["child"], ctx["sizes"], ctx["seed"]
    sil = ctx["silhouettes"]
    tied = tied_mass(child, ctx["emb"].child_probs, k, kp)
    restarts = DESCRIPTOR_RESTARTS * 5
    (mad, shapeless), (std, std_shapeless), (raw, _), (raw_std, _) = (
        sil[name] for name in ("mad unit", "std unit", "mad", "std"))
    out = {
        "oracle": _mass(child, np.eye(ctx["n_true_parents"])[ctx["true_parent"]], k),
        "silhouette": kmeans_rows(mad, sizes, kp, seed, restarts, shapeless),
        "silhouette ward": ward_rows(mad, sizes, kp),
        "shapeless kept": kmeans_rows(mad, sizes, kp, seed, restarts),
        "mad, 5 restarts": kmeans_rows(mad, sizes, kp, seed, 5, shapeless),
        "mad, not unit": kmeans_rows(raw, sizes, kp, seed, restarts, shapeless),
        "std, unit": kmeans_rows(std, sizes, kp, seed, restarts, std_shapeless),
        "std, not unit, 5 restarts, shapeless kept (before)": kmeans_rows(raw_std, sizes, kp,
                                                                          seed, 5),
        "tied": tied,
        "parent-probs": _mass(child, np.asarray(ctx["emb"].parent_probs), k),
    }
    centres = np.stack([np.asarray(ctx["features"])[child == c].mean(0) if sizes[c] else
                        np.zeros(ctx["features"].shape[1]) for c in range(k)])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    out["centres"] = kmeans_rows(centres, sizes, kp, seed, restarts)
    return out


def _silhouettes(ds, rows, child, k, seed):
    """The silhouettes of the child clusters: MAD or standard deviation, unit or raw."""
    return {f"{spread}{' unit' if unit else ''}": _silhouette_rows(
        ds.images[rows], ds.bboxes[rows], k, child, spread=spread, seed=seed, unit=unit)
        for spread in ("mad", "std") for unit in (True, False)}


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
           "silhouettes": _silhouettes(ds, rows, child, k, seed),
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
