"""How child clusters are grouped into parents, scored on finished `fgdiscover cluster` runs.

The child clusters of a run are kept as they are (its ``assignments.csv``); only the
grouping of those k child clusters into k_parent parents changes, so every variant is
scored on the same child clustering and the differences are the grouping's alone:

* ``oracle``: each child cluster goes to the true parent most of its members have, the
  best any grouping of these child clusters can score (an upper bound, uses the labels);
* ``run``: the parents the run itself wrote;
* ``silhouette``: what ``cluster`` does when every image has a box, recomputed here: the
  clusters' box-aligned silhouettes (:func:`fgdiscover.silhouette.cluster_silhouettes`:
  median absolute deviation of a sample of 256 members per cluster; each silhouette
  centred and scaled to unit length) grouped by k-means weighted by cluster size into
  parents of equal numbers of child clusters
  (:func:`fgdiscover.cluster.balanced_kmeans`, ``DESCRIPTOR_RESTARTS`` x 5 restarts);
* ``free sizes`` / ``equal, 5 restarts`` / ``mad, not unit`` / ``std, unit``: the default
  with one of its four parts taken back (plain k-means, parents of any size; 5 restarts;
  raw maps; standard deviation over all members);
* ``silhouette ward (free sizes)``: Ward-linkage agglomeration of the same rows;
* ``std, not unit, free, 5 restarts (before)``: the grouping before these four (session 2);
* ``tied``: FineGAN's own hierarchy, read off the encoder: the cluster's mean child-code
  probabilities summed over the child codes of each parent code (child code c belongs to
  parent code c // (N_c / N_p)), each cluster to the parent code holding most of that mass;
* ``parent-probs``: the same with the encoder's parent-code probabilities;
* ``centres``: the child centres into equal parents (the default without boxes), and
  ``centres, free sizes``.

Earlier variants (confident-half silhouettes, other blurs, silhouettes beside the tied
mass) lost to the plain silhouettes on runs 7-8 and were dropped; their numbers are in
results/parents.jsonl and benchmarks/README.md.

All in :func:`variants`; the results are in benchmarks/README.md.

    python benchmarks/parents.py RUN [RUN ...] --results benchmarks/results/parents.jsonl
    python benchmarks/parents.py --corrupt DATA --cache-dir CACHE --trials 8 \
        --results benchmarks/results/parents.jsonl

With ``--corrupt`` the silhouette groupings run on child clusters made from a synth set's
true classes with known errors (:func:`corrupt`: none, 20 % noise, classes mixed into
others' clusters, a merge and a split), several seeds each: no GAN needed, many more child
clusterings than the runs give. Prints the median and minimum parent NMI per grouping.

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

from fgdiscover.cluster import (DESCRIPTOR_RESTARTS,  # noqa: E402
                                assign_children_to_parents, group_rows)
from fgdiscover.embed import Embeddings  # noqa: E402
from fgdiscover.metrics import score  # noqa: E402
from fgdiscover.pipeline import _silhouette_rows, load_images, unit_length_rows  # noqa: E402


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


def kmeans_rows(rows, sizes, k_parent, seed, n_init=5):
    """Weighted k-means of one row per child cluster -> (k, k_parent) one-hot counts."""
    return _counts(group_rows(rows, sizes, k_parent, equal=False, seed=seed, n_init=n_init),
                   sizes, k_parent)


def equal_rows(rows, sizes, k_parent, seed, n_init=DESCRIPTOR_RESTARTS * 5):
    """The same with parents of equal numbers of child clusters (what ``cluster`` does)."""
    return _counts(group_rows(rows, sizes, k_parent, seed=seed, n_init=n_init),
                   sizes, k_parent)


def ward_rows(rows, sizes, k_parent):
    """Ward-linkage agglomeration of one row per child cluster -> (k, k_parent) counts."""
    from sklearn.cluster import AgglomerativeClustering

    lab = AgglomerativeClustering(n_clusters=k_parent, linkage="ward").fit_predict(
        np.asarray(rows, np.float64))
    return _counts(lab, sizes, k_parent)


def silhouette_variants(ctx) -> dict:
    """The silhouette groupings: name -> (k, k_parent) affinity of child to parent."""
    k, kp, sizes, seed = ctx["k"], ctx["k_parent"], ctx["sizes"], ctx["seed"]
    restarts = DESCRIPTOR_RESTARTS * 5
    mad, std, raw, raw_std = (ctx["silhouettes"][name]
                              for name in ("mad unit", "std unit", "mad", "std"))
    return {
        "silhouette": equal_rows(mad, sizes, kp, seed),
        "free sizes": kmeans_rows(mad, sizes, kp, seed, restarts),
        "equal, 5 restarts": equal_rows(mad, sizes, kp, seed, 5),
        "mad, not unit": equal_rows(raw, sizes, kp, seed),
        "std, unit": equal_rows(std, sizes, kp, seed),
        "silhouette ward (free sizes)": ward_rows(mad, sizes, kp),
        "std, not unit, free, 5 restarts (before)": kmeans_rows(raw_std, sizes, kp, seed, 5),
    }


def oracle(ctx):
    """Each child cluster to the true parent most of its members have."""
    return _mass(ctx["child"], np.eye(ctx["n_true_parents"])[ctx["true_parent"]], ctx["k"])


def variants(ctx) -> dict:
    """Every grouping variant: name -> (k, k_parent) affinity of child to parent."""
    k, kp, child, sizes, seed = ctx["k"], ctx["k_parent"], ctx["child"], ctx["sizes"], ctx["seed"]
    out = {"oracle": oracle(ctx), **silhouette_variants(ctx),
           "tied": tied_mass(child, ctx["emb"].child_probs, k, kp),
           "parent-probs": _mass(child, np.asarray(ctx["emb"].parent_probs), k)}
    centres = np.stack([np.asarray(ctx["features"])[child == c].mean(0) if sizes[c] else
                        np.zeros(ctx["features"].shape[1]) for c in range(k)])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    out["centres"] = equal_rows(centres, sizes, kp, seed)
    out["centres, free sizes"] = kmeans_rows(centres, sizes, kp, seed, DESCRIPTOR_RESTARTS * 5)
    return out


def _silhouettes(ds, rows, child, k, seed):
    """The silhouettes of the child clusters: MAD or standard deviation, unit or raw."""
    out = {}
    for spread in ("mad", "std"):
        raw = _silhouette_rows(ds.images[rows], ds.bboxes[rows], k, child, spread=spread,
                               seed=seed, unit=False)
        out[spread], out[f"{spread} unit"] = raw, unit_length_rows(raw.copy())
    return out


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


CORRUPTIONS = ("clean", "noise", "pair-mix", "merge-split")


def corrupt(child, parent, kind, rng):
    """Child clusters made from the true child classes with a known kind of error.

    * ``clean``: the true classes;
    * ``noise``: 20 % of the images moved to a random cluster;
    * ``pair-mix``: three times, 40 % of a random class moved into another class's cluster;
    * ``merge-split``: two classes of different parents in one cluster, a third class
      split over two.
    """
    k = int(child.max()) + 1
    out = child.copy()
    if kind == "noise":
        moved = rng.random(len(out)) < 0.2
        out[moved] = rng.integers(0, k, moved.sum())
    elif kind == "pair-mix":
        for _ in range(3):
            a, b = rng.choice(k, 2, replace=False)
            members = np.flatnonzero(child == b)
            out[members[rng.random(len(members)) < 0.4]] = a
    elif kind == "merge-split":
        parent_of = np.array([np.bincount(parent[child == c]).argmax() for c in range(k)])
        a, b = rng.choice(k, 2, replace=False)
        while parent_of[a] == parent_of[b]:
            a, b = rng.choice(k, 2, replace=False)
        out[child == b] = a
        split = rng.choice([c for c in range(k) if c not in (a, b)])
        members = np.flatnonzero(child == split)
        out[members[rng.random(len(members)) < 0.5]] = b
    elif kind != "clean":
        raise ValueError(kind)
    return out


def corrupted(data: Path, cache_dir, size: int, trials: int, k_parent: int) -> dict:
    """The silhouette groupings on child clusters made from the true classes by
    :func:`corrupt`: name -> corruption -> parent NMI per trial (seeds 0..trials-1)."""
    ds = load_images(data, size, cache_dir=cache_dir, progress=False)
    lab = pd.read_csv(data / "labels.csv").set_index("file").loc[ds.files]
    true_child = pd.factorize(lab["child"], sort=True)[0]
    true_parent = pd.factorize(lab["parent"], sort=True)[0]
    k = int(true_child.max()) + 1
    out = {}
    for kind in CORRUPTIONS:
        for trial in range(trials):
            child = corrupt(true_child, true_parent, kind, np.random.default_rng(trial))
            ctx = {"k": k, "k_parent": k_parent, "child": child, "seed": trial,
                   "sizes": np.bincount(child, minlength=k).astype(np.float64),
                   "silhouettes": _silhouettes(ds, np.arange(len(child)), child, k, trial),
                   "true_parent": true_parent, "n_true_parents": int(true_parent.max()) + 1}
            for name, counts in {"oracle": oracle(ctx), **silhouette_variants(ctx)}.items():
                parents = assign_children_to_parents(counts)[child]
                out.setdefault(name, {}).setdefault(kind, []).append(
                    score(true_parent, parents, ["nmi"])["nmi"])
    return out


def main_corrupted(args):
    res = corrupted(args.corrupt, (args.cache_dir or [None])[0], args.size, args.trials,
                    args.k_parent)
    rec = {"corrupted": str(args.corrupt), "trials": args.trials, "k_parent": args.k_parent,
           "parent_nmi": res, "command": " ".join([sys.executable, *sys.argv]),
           "date": common.now_iso(), "machine": common.machine_info(), "git": common.git_info()}
    if args.results:
        common.append_jsonl(args.results, rec)
    print("| grouping | " + " | ".join(f"{kind} median / min" for kind in CORRUPTIONS) + " |")
    print("|---" * (len(CORRUPTIONS) + 1) + "|")
    for name, by_kind in res.items():
        print(f"| {name} | " + " | ".join(
            f"{np.median(by_kind[kind]):.3f} / {np.min(by_kind[kind]):.3f}"
            for kind in CORRUPTIONS) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="*")
    ap.add_argument("--corrupt", type=Path, metavar="DATA",
                    help="instead of runs: child clusters made from DATA's true classes with "
                         "known errors (see corrupt)")
    ap.add_argument("--trials", type=int, default=8, help="with --corrupt (default 8)")
    ap.add_argument("--size", type=int, default=32, help="with --corrupt: image size (32)")
    ap.add_argument("--k-parent", type=int, default=4, help="with --corrupt (default 4)")
    ap.add_argument("--cache-dir", type=Path, action="append",
                    help="decode cache of each run, in order (default: the default cache)")
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    if args.corrupt:
        return main_corrupted(args)
    if not args.runs:
        ap.error("give RUN directories or --corrupt DATA")
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
            common.append_jsonl(args.results, rec)
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
