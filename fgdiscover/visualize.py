"""Pictures of a clustering run: UMAP map, cluster galleries, model pictures, report.html.

``visualize_run(run_dir)`` reads what ``fgdiscover cluster`` left in ``run_dir``
(config.json, assignments.csv, clusters.json, embeddings/, model/, metrics.json) and the
images of the data folder recorded in config.json, and writes beside them::

    umap.png            the embeddings in 2-D, coloured by discovered cluster and, when the
                        run has labels, by ground truth (second panel)
    umap.csv            file, x, y, cluster, parent_cluster[, label] of the points drawn
    galleries/child_CCC.png   the most confident images of each child cluster
    galleries/parent_PP.png   one parent cluster: its child clusters side by side
    galleries/parents.png     every parent cluster, one row each (the overview)
    generated/grid*.png       FineGAN pictures (:func:`fgdiscover.generate.write_grids`)
    report.html               all of the above in one self-contained page (report.py)

Beyond ``max_points`` images (default 100,000) the map is computed and drawn on a seeded
random sample, which the figure title, umap.json and the report state; the embeddings
are read from their memory-mapped files row by row and assignments.csv in chunks, so
memory does not grow with the number of images.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FGDError
from .progress import is_terminal, messages, progress_bar

#: Most points given to UMAP and drawn; more images are sampled down to it.
UMAP_MAX_POINTS = 100_000
_CHUNK_ROWS = 100_000


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunInfo:
    """What a ``fgdiscover cluster`` run directory holds, read without loading images.

    Attributes
    ----------
    run_dir : Path
    config : dict
        config.json (``data``, ``k``, ``k_parent``, ``features``, ``labels``, ...).
    clusters : dict
        clusters.json: ``k``, ``k_parent``, ``parent_sizes`` and per cluster ``cluster``,
        ``parent_cluster``, ``size``, ``representatives``.
    n_images : int
        Rows of assignments.csv.
    n_skipped : int
        Files listed in skipped.txt.
    summary : dict or None
        summary.json (image counts, wall time), absent in runs made before it existed.
    metrics : dict or None
        metrics.json, when the run was scored.
    """

    run_dir: Path
    config: dict
    clusters: dict
    n_images: int
    n_skipped: int
    summary: dict | None
    metrics: dict | None

    @classmethod
    def load(cls, run_dir) -> "RunInfo":
        run_dir = Path(run_dir).resolve()
        if not run_dir.is_dir():
            raise FGDError(f"no such run directory: {run_dir}")
        for name in ("assignments.csv", "clusters.json", "config.json"):
            if not (run_dir / name).is_file():
                raise FGDError(f"{run_dir} is not a `fgdiscover cluster` run (no {name})")
        config = _read_json(run_dir / "config.json")
        clusters = _read_json(run_dir / "clusters.json")
        with open(run_dir / "assignments.csv", "rb") as f:
            n_images = max(sum(1 for _ in f) - 1, 0)
        optional = {name: _read_json(run_dir / f"{name}.json")
                    if (run_dir / f"{name}.json").is_file() else None
                    for name in ("summary", "metrics")}
        return cls(run_dir, config, clusters, n_images, _count_skipped(run_dir), **optional)

    @property
    def data_root(self) -> Path | None:
        """The data folder the run clustered (files in assignments.csv are relative to it)."""
        return Path(self.config["data"]) if self.config.get("data") else None

    @property
    def model_dir(self) -> Path:
        """The FineGAN run: the run's own model/ when it has one (also in a copied run
        directory), else the ``--model`` recorded in config.json."""
        own = self.run_dir / "model"
        if (own / "config.json").is_file() or not self.config.get("model"):
            return own
        return Path(self.config["model"])

    @property
    def child_to_parent(self) -> dict[int, int]:
        return {int(c["cluster"]): int(c["parent_cluster"]) for c in self.clusters["clusters"]}

    @property
    def sizes(self) -> dict[int, int]:
        return {int(c["cluster"]): int(c["size"]) for c in self.clusters["clusters"]}

    def labels_source(self) -> tuple[Path, str | None] | None:
        """(label CSV, column) the run was scored against, or None when it had no labels:
        the run's own labels.csv (labels from sub-folders or a known data set's
        annotations), else the ``--labels`` file recorded in config.json."""
        if (self.run_dir / "labels.csv").is_file():
            return self.run_dir / "labels.csv", "label"
        given = self.config.get("labels")
        if given and given != "from-dirs" and Path(given).is_file():
            return Path(given), self.config.get("label_column")
        return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FGDError(f"cannot read {path}: {e}") from None


def skipped_list(run_dir: Path) -> Path | None:
    """The run's list of unusable files (skipped.csv; skipped.txt in older runs)."""
    return next((run_dir / n for n in ("skipped.csv", "skipped.txt")
                 if (run_dir / n).is_file()), None)


def _count_skipped(run_dir: Path) -> int:
    path = skipped_list(run_dir)
    if path is None:
        return 0
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return len(lines) - (1 if lines and lines[0].startswith("file,") else 0)


def read_labels(info: RunInfo, files) -> tuple[list[str | None], str] | None:
    """Ground-truth label of each of ``files`` (None where the table has no row) and the
    column used; None when the run has no labels."""
    from .data import tables

    source = info.labels_source()
    if source is None:
        return None
    path, column = source
    table = tables.read_label_table(path)
    column = tables.pick_label_column(table, column)
    values = table[column].tolist()
    matches = tables.match_files(table.index, files)
    return [None if m is None else str(values[m]) for m in matches], column


def scan_assignments(path: Path, rows: np.ndarray, top_n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read assignments.csv in chunks.

    Parameters
    ----------
    rows : ndarray of shape (m,), sorted row numbers to keep (the UMAP sample)
    top_n : int
        Images kept per child cluster, the most confident first (ties: file order).

    Returns
    -------
    sampled : DataFrame of the ``rows``, columns file, cluster, parent_cluster, confidence
    top : DataFrame of at most ``top_n`` rows per cluster, sorted by cluster then rank
    """
    sampled, top = [], None
    dtypes = {"file": str, "cluster": np.int64, "parent_cluster": np.int64, "confidence": float}
    try:
        chunks = pd.read_csv(path, dtype=dtypes, keep_default_na=False, chunksize=_CHUNK_ROWS)
        start = 0
        for chunk in chunks:
            chunk.index = np.arange(start, start + len(chunk))
            lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
            sampled.append(chunk.loc[rows[lo:hi]])
            top = _top_per_cluster(chunk if top is None else pd.concat([top, chunk]), top_n)
            start += len(chunk)
    except (OSError, ValueError, KeyError) as e:
        raise FGDError(f"cannot read {path}: {e}") from None
    if top is None:
        raise FGDError(f"{path} lists no image")
    return pd.concat(sampled), top


def _top_per_cluster(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    order = np.lexsort((frame.index.to_numpy(), -frame["confidence"].to_numpy(),
                        frame["cluster"].to_numpy()))
    return frame.iloc[order].groupby("cluster", sort=False).head(n)


# --------------------------------------------------------------------------- UMAP


def sample_rows(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted row numbers: all of 0..n-1, or a seeded random ``max_points`` of them."""
    if max_points < 1:
        raise FGDError(f"the UMAP point cap must be at least 1, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def umap_layout(x: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                progress: bool = True) -> np.ndarray:
    """2-D UMAP coordinates of the L2-normalised rows of ``x``.

    Parameters
    ----------
    x : ndarray of shape (m, d)

    Returns
    -------
    xy : ndarray of shape (m, 2), float32
        Seeded, hence reproducible (umap-learn then runs on one thread). With fewer than
        5 points, where UMAP is undefined, the first two principal axes instead.
    """
    x = np.asarray(x, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if len(x) < 5:
        centred = x - x.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = np.zeros((len(x), 2), np.float32)
        proj = centred @ vt[:2].T
        xy[:, :proj.shape[1]] = proj
        return xy
    with warnings.catch_warnings():
        # numba's and umap's chatter (n_jobs overridden by random_state, tiny-graph notes)
        warnings.simplefilter("ignore")
        import umap

        tty = progress and is_terminal()
        with progress_bar(total=1, desc=f"UMAP of {len(x):,} points", unit="map",
                          enabled=progress and not tty) as bar:
            reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist,
                                random_state=seed, init="spectral" if len(x) > 50 else "random",
                                tqdm_kwds={"disable": not tty, "desc": "UMAP layout",
                                           "unit": "epoch", "leave": False})
            xy = reducer.fit_transform(x)
            bar.update()
    return np.asarray(xy, dtype=np.float32)


def category_colours(n: int) -> np.ndarray:
    """``n`` distinguishable RGBA colours, shape (n, 4): tab10/tab20, else spread hues."""
    import matplotlib

    if n <= 10:
        return matplotlib.colormaps["tab10"](np.arange(n))
    if n <= 20:
        return matplotlib.colormaps["tab20"](np.arange(n))
    # golden-ratio hue steps keep neighbouring ids apart; two lightness levels double it
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    rgb = matplotlib.colors.hsv_to_rgb(np.stack(
        [hues, np.where(np.arange(n) % 2, 0.55, 0.85), np.where(np.arange(n) % 3, 0.9, 0.6)], 1))
    return np.hstack([rgb, np.ones((n, 1))])


def spread_points(xy: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` points spread over the map: on a grid of about ``n`` cells,
    the point nearest each occupied cell's centre."""
    if n < 1 or len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    side = max(1, int(np.ceil(np.sqrt(n))))
    lo, span = xy.min(0), np.maximum(np.ptp(xy, 0), 1e-9)
    cell = np.minimum(((xy - lo) / span * side).astype(int), side - 1)
    centre = lo + (cell + 0.5) * span / side
    dist = ((xy - centre) ** 2).sum(1)
    cell_id = cell[:, 0] * side + cell[:, 1]
    order = np.lexsort((np.arange(len(xy)), dist, cell_id))
    first = order[np.r_[True, cell_id[order][1:] != cell_id[order][:-1]]]
    return np.sort(first)[:n]


def plot_umap(xy: np.ndarray, clusters: np.ndarray, out: Path, *, title: str,
              labels=None, label_name: str = "label", thumbs=None) -> Path:
    """Scatter the map, coloured by discovered cluster (and by ``labels`` in a second
    panel); ``thumbs``: optional list of (point index, uint8 image (h, w, 3)) drawn on the
    cluster panel. Returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    panels = [("discovered clusters", np.asarray(clusters))]
    if labels is not None:
        panels.append((f"ground truth ({label_name})", np.asarray(labels, dtype=object)))
    size = float(np.clip(15000 / max(len(xy), 1), 0.3, 20))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 7), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels):
        known = np.array([v is not None for v in values], dtype=bool)
        cats, codes = np.unique(np.array([str(v) for v in values[known]]), return_inverse=True)
        if _all_int(cats):  # 2 before 10
            order = np.argsort(cats.astype(float), kind="stable")
            cats, codes = cats[order], np.argsort(order)[codes]
        colours = category_colours(len(cats))
        if (~known).any():
            ax.scatter(*xy[~known].T, s=size, c="lightgrey", linewidths=0, label="unlabelled")
        ax.scatter(*xy[known].T, s=size, c=colours[codes], linewidths=0, rasterized=True)
        if len(cats) <= 60:  # name each category at its median point
            for j, cat in enumerate(cats):
                mx, my = np.median(xy[known][codes == j], 0)
                ax.text(mx, my, cat, fontsize=8, ha="center", va="center", weight="bold", zorder=4,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})
        ax.set_title(f"{name}: {len(cats)}")
        ax.set_xticks([])
        ax.set_yticks([])
    for i, image in thumbs or []:
        box = OffsetImage(image, zoom=24 / image.shape[0])
        axes[0, 0].add_artist(AnnotationBbox(box, xy[i], frameon=True, pad=0.1, zorder=3,
                                             bboxprops={"lw": 0.5}))
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _all_int(values) -> bool:
    try:
        return all(float(v).is_integer() for v in values)
    except ValueError:
        return False


# --------------------------------------------------------------------------- galleries


class Thumbnails:
    """Square thumbnails of the run's images, each decoded once (grey when unreadable)."""

    def __init__(self, root: Path | None, size: int):
        self.root, self.size, self._cache = root, size, {}

    def __call__(self, file: str) -> np.ndarray:
        if file not in self._cache:
            from .data.images import load_image

            try:
                if self.root is None:
                    raise FGDError("no data folder recorded")
                self._cache[file] = load_image(self.root / file, self.size, crop="full")[0]
            except (FGDError, OSError, ValueError):
                self._cache[file] = np.full((self.size, self.size, 3), 200, np.uint8)
        return self._cache[file]

    def grid(self, files, cols: int) -> np.ndarray:
        """uint8 cells of shape (rows, cols, size, size, 3); white past the last file."""
        rows = max(1, -(-len(files) // cols))
        cells = np.full((rows * cols, self.size, self.size, 3), 255, np.uint8)
        for i, f in enumerate(files):
            cells[i] = self(f)
        return cells.reshape(rows, cols, self.size, self.size, 3)


def write_galleries(info: RunInfo, top: pd.DataFrame, out_dir: Path, *, thumb: int = 64,
                    cols: int = 4, per_child_in_parent: int = 4,
                    progress: bool = True) -> dict:
    """Montages of the most confident images of each child cluster, one picture per
    parent cluster with its children side by side, and the overview of all parents.

    Parameters
    ----------
    top : DataFrame from :func:`scan_assignments` (file, cluster, confidence; ranked)

    Returns
    -------
    dict
        ``children``: {cluster: path}, ``parents``: {parent: path}, ``overview``: path,
        ``top``: {cluster: [files]}.
    """
    from PIL import Image

    from .generate import tile_images

    out_dir.mkdir(parents=True, exist_ok=True)
    thumbs = Thumbnails(info.data_root, thumb)
    small = Thumbnails(info.data_root, thumb // 2)
    sizes, parent_of = info.sizes, info.child_to_parent
    ranked = {int(c): g["file"].tolist() for c, g in top.groupby("cluster")}
    children, parents = {}, {}
    for c in progress_bar(sorted(parent_of), desc="galleries", unit="cluster", enabled=progress):
        files = ranked.get(c, [])
        path = out_dir / f"child_{c:03d}.png"
        tile_images(thumbs.grid(files, cols), title=f"cluster {c}: {sizes.get(c, 0)} img, "
                    f"parent {parent_of[c]}").save(path)
        children[c] = path
    for p in sorted(set(parent_of.values())):
        kids = [c for c in sorted(parent_of) if parent_of[c] == p]
        blocks = [tile_images(small.grid(ranked.get(c, [])[:per_child_in_parent], 2),
                              title=f"c{c} ({sizes.get(c, 0)})", pad=1) for c in kids]
        n_img = sum(sizes.get(c, 0) for c in kids)
        strip = _side_by_side(blocks, f"parent {p}: {len(kids)} clusters, {n_img} images")
        parents[p] = out_dir / f"parent_{p:02d}.png"
        strip.save(parents[p])
    overview = _stacked([Image.open(parents[p]).convert("RGB") for p in sorted(parents)])
    overview.save(out_dir / "parents.png")
    return {"children": children, "parents": parents, "overview": out_dir / "parents.png",
            "top": ranked}


def _side_by_side(images, title: str, gap: int = 6):
    from PIL import Image, ImageDraw

    width = sum(im.width for im in images) + gap * (len(images) + 1)
    height = max(im.height for im in images) + 18
    canvas = Image.new("RGB", (max(width, 8 * len(title)), height), "white")
    ImageDraw.Draw(canvas).text((gap, 2), title, fill="black")
    x = gap
    for im in images:
        canvas.paste(im, (x, 16))
        x += im.width + gap
    return canvas


def _stacked(images, gap: int = 4):
    from PIL import Image

    canvas = Image.new("RGB", (max(im.width for im in images),
                               sum(im.height for im in images) + gap * (len(images) - 1)),
                       "white")
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + gap
    return canvas


# --------------------------------------------------------------------------- the whole job


@dataclass
class Pictures:
    """What :func:`visualize_run` wrote (absolute paths; ``children`` and ``parents`` map
    cluster ids to gallery files, ``top`` to their files, best first), and notes for the
    report (what is missing and why)."""

    run_dir: Path
    umap_png: Path | None = None
    umap_csv: Path | None = None
    umap_note: str = ""
    children: dict = field(default_factory=dict)
    parents: dict = field(default_factory=dict)
    overview: Path | None = None
    top: dict = field(default_factory=dict)
    generated: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    report: Path | None = None


def visualize_run(run_dir, *, max_points: int = UMAP_MAX_POINTS, thumbnails: int = 0,
                  per_cluster: int = 16, seed: int = 0, model_pictures: bool = True,
                  device=None, progress: bool = True, log=None) -> Pictures:
    """Write the UMAP map, galleries, model pictures and report.html of a cluster run.

    Parameters
    ----------
    run_dir : a ``fgdiscover cluster`` output folder
    max_points : int
        Most images in the map; beyond it a random sample (seeded by ``seed``).
    thumbnails : int
        Images drawn at points spread over the map (0: none).
    per_cluster : int
        Images in each child cluster's gallery.
    model_pictures : bool
        Draw the FineGAN grids from the run's model (when it has a checkpoint).
    """
    from .report import write_report

    log = log or messages(progress)
    info = RunInfo.load(run_dir)
    run_dir = info.run_dir
    pics = Pictures(run_dir)
    if info.data_root is None or not info.data_root.is_dir():
        pics.notes.append(f"the data folder {info.data_root} is missing: galleries show grey "
                          "squares")

    feats = _clustered_features(info)
    n = len(feats["features"])
    if n != info.n_images:
        raise FGDError(f"{run_dir}: embeddings/ has {n} rows but assignments.csv "
                       f"{info.n_images}; the run is incomplete")
    rows = sample_rows(n, max_points, seed)
    sampled, top = scan_assignments(run_dir / "assignments.csv", rows, per_cluster)

    from .pipeline import FEATURES

    x = FEATURES[info.config.get("features", "embedding")](_SampledRows(feats, rows))[0]
    xy = umap_layout(x, seed=seed, progress=progress)
    files = sampled["file"].tolist()
    try:
        labels = read_labels(info, files)
    except FGDError as e:  # a label file changed since the run: the map without it
        labels = None
        pics.notes.append(f"no ground-truth panel: {e}")
    pics.umap_note = (f"all {n:,} images" if len(rows) == n else
                      f"a random sample of {len(rows):,} of {n:,} images (seed {seed})")
    table = pd.DataFrame({"file": files, "x": xy[:, 0], "y": xy[:, 1],
                          "cluster": sampled["cluster"].to_numpy(),
                          "parent_cluster": sampled["parent_cluster"].to_numpy()})
    if labels is not None:
        table["label"] = labels[0]
    pics.umap_csv = run_dir / "umap.csv"
    table.to_csv(pics.umap_csv, index=False, float_format="%.5f", quoting=csv.QUOTE_MINIMAL)
    (run_dir / "umap.json").write_text(json.dumps(
        {"n_images": n, "n_points": len(rows), "sampled": len(rows) < n, "seed": seed,
         "max_points": max_points, "features": info.config.get("features", "embedding")},
        indent=2) + "\n")
    thumbs = []
    if thumbnails:
        t = Thumbnails(info.data_root, 32)
        thumbs = [(int(i), t(files[i])) for i in spread_points(xy, thumbnails)]
    pics.umap_png = plot_umap(
        xy, table["cluster"].to_numpy(), run_dir / "umap.png",
        title=f"UMAP of the clustered features\n{pics.umap_note}",
        labels=None if labels is None else np.array(labels[0], dtype=object),
        label_name=None if labels is None else labels[1], thumbs=thumbs)

    g = write_galleries(info, top, run_dir / "galleries", progress=progress)
    pics.children, pics.parents, pics.overview, pics.top = (g["children"], g["parents"],
                                                            g["overview"], g["top"])
    if model_pictures:
        _model_pictures(info, pics, seed, device, log)
    else:  # keep the pictures an earlier run drew
        pics.generated = _existing_model_pictures(run_dir / "generated")
    pics.report = write_report(info, pics, run_dir / "report.html")
    for note in pics.notes:
        log(f"note: {note}")
    return pics


class _SampledRows:
    """The sampled rows of each embedding array, read from disk only when asked for (the
    ``FEATURES`` recipes of pipeline.py take attributes of an Embeddings)."""

    def __init__(self, arrays: dict, rows: np.ndarray):
        self._arrays, self._rows = arrays, rows

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in self._arrays:
            raise AttributeError(name)
        return np.asarray(self._arrays[name][self._rows])


def _clustered_features(info: RunInfo) -> dict:
    """The run's embeddings as read-only memory maps, keyed as in :class:`Embeddings`."""
    folder = info.run_dir / "embeddings"
    try:
        return {k: np.load(folder / f"{k}.npy", mmap_mode="r")
                for k in ("features", "parent_probs", "child_probs")}
    except (OSError, ValueError) as e:
        raise FGDError(f"cannot read the embeddings of {info.run_dir}: {e}") from None


def _existing_model_pictures(folder: Path) -> list:
    """The FineGAN pictures already in ``folder``, in :func:`write_grids`'s order."""
    from .generate import grid_paths

    return [p for p in grid_paths(folder / "grid.png") if p.is_file()]


def _model_pictures(info: RunInfo, pics: Pictures, seed: int, device, log) -> None:
    from .generate import write_grids
    from .train.gan import CHECKPOINT

    if not (info.model_dir / CHECKPOINT).is_file():
        pics.notes.append(f"no FineGAN checkpoint in {info.model_dir}: no model pictures")
        return
    log(f"FineGAN pictures from {info.model_dir}")
    try:
        pics.generated = write_grids(info.model_dir, info.run_dir / "generated" / "grid.png",
                                     seed=seed, device=device)
    except FGDError as e:
        pics.notes.append(f"model pictures failed: {e}")
