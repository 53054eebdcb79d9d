"""Speed and memory of fgdiscover's steps, side by side in one run, written to perf.md.

Sections (``--only`` picks some, comma-separated; default all):

``kmeans``
    :class:`fgdiscover.cluster.FaissKMeans` against scikit-learn's ``KMeans`` on the same
    float32 blobs (100,000 x 256, k = 200), with the same work: one k-means++ run each,
    at most 50 Lloyd iterations (scikit-learn with ``tol=0``, so it stops only on strict
    convergence). One repeat per seed; time ratio and inertia ratio per seed, medians.
``train``
    Images/s per preset and per stage: the FineGAN training step (``train_speed.py``'s
    :func:`time_training`), the inverse encoder's two phases (``train_encoder`` with only
    that phase, on an untrained FineGAN; the time includes building the encoder and saving
    its checkpoint, a few ms) and embedding (``embed_images``). Random pixels: the cost of
    a step does not depend on what the images show.
``embed``
    ``embed_images`` with the ``cpu`` preset's encoder (untrained) on 10,000 and 100,000
    images, each run in a fresh subprocess so that each gets its own peak memory. The
    images come from a lazy array that serves every batch from a fixed pool of 4,096
    random images (so the input costs no memory and no decoding); the outputs are the
    real memory-mapped .npy files and CSV. Peak memory: ``VmHWM`` (peak resident set,
    anonymous + file-backed pages, which includes the output memmaps' dirty pages) and the
    peak of ``RssAnon`` (anonymous memory only, sampled every 20 ms).
``cache``
    One epoch over a folder written by ``fgdiscover synth`` (3,000 images, 64 px, decoded
    to 32 px as the ``cpu`` preset trains): ``ImageFolder`` (scan, cache key, decode) then
    one pass of batches of 32 through ``BatchSampler`` and ``to_tensor``. Cold: an empty
    cache folder, so every image is decoded and the cache written (what an epoch costs
    without a cache); warm: the cache is found and memory-mapped. The image files stay in
    the OS page cache in both cases (caches are not dropped).
``large``
    Issue #7 part 5: :class:`FaissKMeans` on 1,000,000 x 256 float32 embeddings read from
    a memory-mapped .npy (1 GiB, written in blocks first), k = 1,000, L2-normalised,
    ``max_points_per_centroid=256`` (training on a 256,000-row subsample), every row then
    assigned block by block; then ``confidence`` (hierarchical_kmeans' second-nearest
    ratio) block by block. In a fresh subprocess: time and peak memory as for ``embed``.

Run from the checkout::

    python benchmarks/perf.py                         # everything, ~30-40 min on 2 cores
    python benchmarks/perf.py --only kmeans,large     # some sections
    python benchmarks/perf.py --quick --out /tmp/perf.md --results /tmp/perf.jsonl  # smoke

Writes ``--out`` (default benchmarks/results/perf.md) and appends one JSON line with every
number to ``--results`` (default benchmarks/results/perf.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (also puts the checkout on sys.path)

SECTIONS = ("kmeans", "train", "embed", "cache", "large")
DEFAULT_OUT = common.RESULTS_DIR / "perf.md"
DEFAULT_RESULTS = common.RESULTS_DIR / "perf.jsonl"

#: Sizes of each section, full and --quick.
FULL = {
    "kmeans": {"n": 100_000, "d": 256, "k": 200, "max_iter": 50},
    "train": {"presets": ("tiny", "cpu", "paper")},
    "embed": {"sizes": (10_000, 100_000), "preset": "cpu"},
    "cache": {"n": 3000, "synth_size": 64, "size": 32, "batch": 32},
    "large": {"n": 1_000_000, "d": 256, "k": 1000, "max_points_per_centroid": 256,
              "n_init": 5, "max_iter": 50, "chunk_size": 65_536},
}
QUICK = {
    "kmeans": {"n": 2000, "d": 16, "k": 10, "max_iter": 10},
    "train": {"presets": ("tiny",)},
    "embed": {"sizes": (500, 2000), "preset": "tiny"},
    "cache": {"n": 40, "synth_size": 16, "size": 16, "batch": 8},
    "large": {"n": 20_000, "d": 16, "k": 20, "max_points_per_centroid": 64,
              "n_init": 1, "max_iter": 10, "chunk_size": 4096},
}
#: Steps timed per preset and stage: (warmup, repeats, steps per repeat); the paper
#: preset is slow on a CPU, so only a handful of its steps are timed.
STEPS = {"tiny": (2, 3, 10), "cpu": (3, 3, 10), "paper": (0, 1, 1)}
#: The paper preset's encoder real phase (batch 256 x 2 views at 128 px) would need ~10 GiB
#: of activations on the CPU; it is timed at this batch size instead.
PAPER_REAL_BATCH = 32
QUICK_STEPS = (1, 1, 2)


# ------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (0 where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class AnonPeak:
    """Samples this process's ``RssAnon`` every ``interval`` s in a thread; ``peak_gib``."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_kib = interval, _status_kib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))

    @property
    def peak_gib(self) -> float:
        return self.peak_kib / 2**20


def _memory_record(anon: AnonPeak, before_kib: int) -> dict:
    return {"rss_before_gib": before_kib / 2**20, "peak_rss_gib": _status_kib("VmHWM") / 2**20,
            "peak_anon_gib": anon.peak_gib}


def _child(args: list[str], timeout: float = 3600) -> dict:
    """Run this script's ``args`` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                         capture_output=True, text=True, env=common.subprocess_env(),
                         timeout=timeout)
    if out.returncode != 0:
        raise common.BenchmarkError(f"child {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values) -> float:
    return common.summarize(values)["median"]


# ------------------------------------------------------------------------- kmeans
def blobs(n: int, d: int, k: int, seed: int, chunk: int = 65_536, out=None):
    """float32 Gaussian blobs: k centres ~ N(0, 1), unit noise; written in blocks.

    Returns ``out`` (or a new array) of shape (n, d), float32.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d), dtype=np.float32)
    x = np.empty((n, d), dtype=np.float32) if out is None else out
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        x[a:b] = centres[rng.integers(0, k, b - a)]
        x[a:b] += rng.standard_normal((b - a, d), dtype=np.float32)
    return x


def bench_kmeans(n, d, k, max_iter, repeats, log) -> dict:
    from sklearn.cluster import KMeans

    from fgdiscover.cluster import FaissKMeans

    x = blobs(n, d, k, seed=123)
    # untimed warm-up of both (thread pools, BLAS buffers, first-call imports)
    warm = x[: min(n, 20 * k)]
    FaissKMeans(k, n_init=1, max_iter=2, device="cpu").fit(warm)
    KMeans(k, n_init=1, max_iter=2, random_state=0).fit(warm)
    runs = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        ours = FaissKMeans(k, n_init=1, max_iter=max_iter, seed=seed, device="cpu").fit(x)
        t_faiss = time.perf_counter() - t0
        t0 = time.perf_counter()
        sk = KMeans(k, n_init=1, max_iter=max_iter, tol=0.0, random_state=seed,
                    algorithm="lloyd").fit(x)
        t_sk = time.perf_counter() - t0
        # fgdiscover's own setting: 5 restarts (the pipeline's n_init)
        t0 = time.perf_counter()
        ours5 = FaissKMeans(k, n_init=5, max_iter=max_iter, seed=seed, device="cpu").fit(x)
        t_faiss5 = time.perf_counter() - t0
        # scikit-learn's inertia_ comes from its last assignment, ours from the final
        # centres; recompute both the same way (float64) so the ratio compares like with like
        inertia = [float(_inertia(x, m.cluster_centers_)) for m in (ours, sk, ours5)]
        runs.append({"seed": seed, "faiss_s": t_faiss, "sklearn_s": t_sk,
                     "sklearn_n_iter": int(sk.n_iter_), "faiss_inertia": inertia[0],
                     "sklearn_inertia": inertia[1], "time_ratio": t_sk / t_faiss,
                     "inertia_ratio": inertia[0] / inertia[1],
                     "faiss_n_init5_s": t_faiss5, "faiss_n_init5_inertia": inertia[2],
                     "inertia_ratio_n_init5": inertia[2] / inertia[1]})
        log(f"kmeans seed {seed}: faiss {t_faiss:.1f} s, sklearn {t_sk:.1f} s "
            f"({sk.n_iter_} it), inertia ratio {runs[-1]['inertia_ratio']:.4f}; faiss 5 "
            f"restarts {t_faiss5:.1f} s, ratio {runs[-1]['inertia_ratio_n_init5']:.4f}")
    return {"n": n, "d": d, "k": k, "max_iter": max_iter, "runs": runs}


def _inertia(x, centres, chunk: int = 16_384):
    """Sum of squared distances of each row to its nearest centre, float64, in blocks."""
    import numpy as np

    c = centres.astype(np.float64)
    cc = (c * c).sum(1)
    total = 0.0
    for a in range(0, len(x), chunk):
        xb = x[a:a + chunk].astype(np.float64)
        d2 = (xb * xb).sum(1)[:, None] - 2 * xb @ c.T + cc[None]
        total += np.maximum(d2.min(1), 0).sum()
    return total


def kmeans_markdown(r: dict) -> str:
    rows = [[x["seed"], f"{x['faiss_s']:.2f}", f"{x['sklearn_s']:.2f}", x["sklearn_n_iter"],
             f"{x['time_ratio']:.2f}", f"{x['inertia_ratio']:.4f}",
             f"{x['faiss_n_init5_s']:.2f}", f"{x['inertia_ratio_n_init5']:.4f}"]
            for x in r["runs"]]
    runs = r["runs"]
    rows.append(["**median**", f"{_median(x['faiss_s'] for x in runs):.2f}",
                 f"{_median(x['sklearn_s'] for x in runs):.2f}", "",
                 f"**{_median(x['time_ratio'] for x in runs):.2f}**",
                 f"**{_median(x['inertia_ratio'] for x in runs):.4f}**",
                 f"{_median(x['faiss_n_init5_s'] for x in runs):.2f}",
                 f"**{_median(x['inertia_ratio_n_init5'] for x in runs):.4f}**"])
    return (f"### FaissKMeans vs scikit-learn KMeans: {r['n']:,} x {r['d']} float32, "
            f"k = {r['k']}\n\n"
            f"Both: one k-means++ run, at most {r['max_iter']} Lloyd iterations (faiss always "
            f"runs them all; scikit-learn `algorithm='lloyd', tol=0` stops on strict "
            "convergence). Inertia recomputed the same way for both (float64, nearest final "
            "centre). Time ratio = scikit-learn / faiss (> 1: faiss faster); inertia ratio = "
            "faiss / scikit-learn (< 1: faiss found the better clustering). scikit-learn's "
            "k-means++ is the greedy variant (2 + ln k candidates per centre), faiss's the "
            "plain one. Last two columns: FaissKMeans with 5 restarts (fgdiscover's default, "
            "the pipeline's setting) against the same one-run scikit-learn result. One run "
            "per seed, after an untimed warm-up of both.\n\n"
            + common.markdown_table(["seed", "FaissKMeans s", "sklearn KMeans s",
                                     "sklearn iterations", "time ratio", "inertia ratio",
                                     "FaissKMeans 5 restarts s", "inertia ratio, 5 restarts"],
                                    rows) + "\n")


# -------------------------------------------------------------------------- train
class LazyImages:
    """A read-only stand-in for an (n, R, R, 3) uint8 array: ``x[a:b]`` is served from a
    fixed pool of random images, so n costs no memory. Only ``len`` and slices."""

    def __init__(self, n: int, resolution: int, pool: int = 4096, seed: int = 0):
        import numpy as np

        self.n = n
        self.pool = np.random.default_rng(seed).integers(
            0, 256, (min(pool, n), resolution, resolution, 3), dtype=np.uint8)
        self.shape = (n, resolution, resolution, 3)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item):
        import numpy as np

        if not isinstance(item, slice):
            raise TypeError("LazyImages only serves slices")
        rows = np.arange(*item.indices(self.n))
        return self.pool[rows % len(self.pool)]


class LazyNames:
    """``names[i] == f"synthetic/{i:07d}.png"`` for i < n, without a list."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        return f"synthetic/{i:07d}.png"


def _encoder_for(preset_name: str):
    """An untrained encoder of ``preset_name``'s size, in eval mode."""
    from fgdiscover.models.encoder import InverseEncoder
    from fgdiscover.train.config import preset
    from fgdiscover.train.encoder import ENCODER_PRESETS

    cfg, ecfg = preset(preset_name), ENCODER_PRESETS[preset_name]
    return InverseEncoder(resolution=cfg.resolution, n_parent=cfg.n_parent,
                          n_child=cfg.n_child, width=ecfg.width,
                          feature_dim=ecfg.feature_dim).eval()


def bench_train(presets, work: Path, log, quick: bool = False) -> dict:
    import dataclasses

    import numpy as np
    import torch

    import train_speed
    from fgdiscover.embed import embed_images
    from fgdiscover.train.config import preset
    from fgdiscover.train.encoder import ENCODER_PRESETS, train_encoder
    from fgdiscover.train.gan import build_finegan

    device = torch.device("cpu")
    out = {}
    for name in presets:
        cfg, ecfg = preset(name), ENCODER_PRESETS[name]
        warmup, repeats, steps = QUICK_STEPS if quick else STEPS[name]
        rows = {}
        log(f"{name}: FineGAN step ({warmup} warm-up, {repeats} x {steps} steps)")
        gan_t = train_speed.time_training(cfg, device, warmup=warmup, windows=repeats,
                                          steps=steps, log=log)
        rows["FineGAN training step"] = {"batch": cfg.batch_size,
                                         "img_per_s": gan_t["img_per_s"]}

        torch.manual_seed(0)
        gan = build_finegan(cfg).eval()
        r = cfg.resolution
        n_real = max(ecfg.real_batch_size, 64)
        real = np.random.default_rng(0).integers(0, 256, (n_real, r, r, 3), dtype=np.uint8)
        boxes = np.tile(np.float32([[r / 4, r / 4, r / 2, r / 2]]), (n_real, 1))
        real_batch = PAPER_REAL_BATCH if name == "paper" else ecfg.real_batch_size
        phases = {
            "encoder, fake phase": (dataclasses.replace(ecfg, real_iters=0, iters=steps),
                                    ecfg.batch_size),
            "encoder, real phase (2 views)": (dataclasses.replace(
                ecfg, iters=0, real_iters=steps, real_batch_size=real_batch), real_batch),
        }
        for label, (phase_cfg, batch) in phases.items():
            if warmup:
                warm = dataclasses.replace(phase_cfg, iters=min(phase_cfg.iters, 1),
                                           real_iters=min(phase_cfg.real_iters, 1))
                train_encoder(gan, work / "enc.pt", warm, real_images=real, boxes=boxes,
                              progress=False)
            rates = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                train_encoder(gan, work / "enc.pt", phase_cfg, real_images=real, boxes=boxes,
                              progress=False)
                rates.append(steps * batch / (time.perf_counter() - t0))
            rows[label] = {"batch": batch, "img_per_s": rates}
            log(f"{name}: {label}: {_median(rates):.1f} img/s")

        enc = _encoder_for(name)
        n_embed = 256 if quick else {"tiny": 2048, "cpu": 4096, "paper": 256}[name]
        images, names = LazyImages(n_embed, r), LazyNames(n_embed)
        if warmup:
            embed_images(enc, LazyImages(256, r), LazyNames(256), work / "emb-warm",
                         progress=False)
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            embed_images(enc, images, names, work / "emb", progress=False)
            rates.append(n_embed / (time.perf_counter() - t0))
        rows[f"embedding ({n_embed} images, batch 256)"] = {"batch": 256, "img_per_s": rates}
        log(f"{name}: embedding: {_median(rates):.1f} img/s")
        out[name] = {"resolution": r, "steps": {"warmup": warmup, "repeats": repeats,
                                                "steps": steps},
                     "stages": rows}
    return {"presets": out, "torch_threads": torch.get_num_threads()}


def train_markdown(r: dict) -> str:
    rows = []
    for name, p in r["presets"].items():
        for stage, s in p["stages"].items():
            rows.append([name, f"{p['resolution']} px", stage, s["batch"],
                         common.format_summary(common.summarize(s["img_per_s"]), ".1f"),
                         len(s["img_per_s"])])
    steps = "; ".join(f"{k}: {p['steps']['warmup']} warm-up, {p['steps']['repeats']} x "
                      f"{p['steps']['steps']} steps" for k, p in r["presets"].items())
    return ("### Training and embedding images/s per preset and stage\n\n"
            f"CPU, torch {r['torch_threads']} threads, untrained networks, random pixels. "
            f"Median (min-max) over the repeats ({steps}; embedding: as many passes over the "
            "images in its row, after one warm-up call of 256). With 0 warm-up steps the one "
            "timed step includes first-call costs. Encoder real phase: images/s counts each "
            "real image once (two views are encoded per image); the `paper` preset's is timed "
            f"at batch {PAPER_REAL_BATCH} instead of 256 (256 x 2 views at 128 px would "
            "need, by our estimate, ~10 GiB of activations on the CPU).\n\n"
            + common.markdown_table(["preset", "px", "stage", "batch",
                                     "img/s median (min-max)", "repeats"], rows) + "\n")


# -------------------------------------------------------------------------- embed
def embed_child(n: int, preset_name: str, work: Path) -> dict:
    import torch

    from fgdiscover.embed import embed_images

    enc = _encoder_for(preset_name)
    r = enc.resolution
    embed_images(enc, LazyImages(256, r), LazyNames(256), work / "warm", progress=False)
    images, names = LazyImages(n, r), LazyNames(n)
    before = _status_kib("VmRSS")
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        emb = embed_images(enc, images, names, work / "out", progress=False)
        wall = time.perf_counter() - t0
    assert emb.features.shape == (n, enc.feature_dim)
    return {"n": n, "wall_s": wall, "img_per_s": n / wall, "threads": torch.get_num_threads(),
            **_memory_record(anon, before)}


def bench_embed(sizes, preset_name, repeats, work: Path, log) -> dict:
    runs = []
    for n in sizes:
        for rep in range(repeats):
            folder = work / f"embed-{n}-{rep}"
            rec = _child(["--embed-child", str(n), "--preset", preset_name,
                          "--work", str(folder)])
            runs.append(rec)
            log(f"embed {n}: {rec['img_per_s']:.0f} img/s, peak RSS "
                f"{rec['peak_rss_gib']:.3f} GiB, peak anon {rec['peak_anon_gib']:.3f} GiB")
            _rmtree(folder)
    return {"preset": preset_name, "runs": runs}


def embed_markdown(r: dict) -> str:
    rows = []
    for n in dict.fromkeys(x["n"] for x in r["runs"]):
        runs = [x for x in r["runs"] if x["n"] == n]
        rows.append([f"{n:,}", len(runs),
                     common.format_summary(common.summarize(x["img_per_s"] for x in runs), ".0f"),
                     f"{_median(x['wall_s'] for x in runs):.1f}",
                     f"{_median(x['rss_before_gib'] for x in runs):.3f}",
                     f"{_median(x['peak_rss_gib'] for x in runs):.3f}",
                     f"{_median(x['peak_anon_gib'] for x in runs):.3f}"])
    return (f"### Embedding: `embed_images`, `{r['preset']}` preset encoder, in a fresh "
            "process per run\n\n"
            "Input: a lazy array serving batches from a pool of 4,096 random images (no "
            "input memory, no decoding); output: the real memory-mapped .npy files and "
            "embeddings.csv. RSS before = after importing torch, building the encoder and one "
            "warm-up call; peak RSS = `VmHWM` (anonymous + file-backed pages, including the "
            "output memmaps); peak anon = sampled peak of `RssAnon`.\n\n"
            + common.markdown_table(["images", "runs", "img/s median (min-max)", "wall s",
                                     "RSS before GiB", "peak RSS GiB", "peak anon GiB"],
                                    rows) + "\n")


# -------------------------------------------------------------------------- cache
def bench_cache(n, synth_size, size, batch, repeats, work: Path, log) -> dict:
    import numpy as np

    from fgdiscover.data.folder import ImageFolder
    from fgdiscover.train.gan import BatchSampler, to_tensor

    data = work / "synth"
    synth_cmd = [sys.executable, "-m", "fgdiscover.cli", "synth", str(data), "--n", str(n),
                 "--size", str(synth_size), "--seed", "0"]
    done = subprocess.run(synth_cmd, capture_output=True, text=True,
                          env=common.subprocess_env())
    if done.returncode != 0:
        raise common.BenchmarkError(f"fgdiscover synth failed: {done.stderr[-2000:]}")

    def epoch(cache_dir: Path) -> tuple[float, bool]:
        t0 = time.perf_counter()
        ds = ImageFolder(data, size=size, bboxes_csv=data / "bboxes.csv", cache_dir=cache_dir,
                         crop="full", progress=False)
        sampler = BatchSampler(ds.images, ds.bboxes, batch, seed=0)
        total = 0.0
        for _ in range(len(ds) // sampler.batch_size):
            imgs, _ = sampler.next()
            total += float(to_tensor(imgs, "cpu").mean())
        assert np.isfinite(total)
        return time.perf_counter() - t0, ds.cache_hit

    runs = []
    for rep in range(repeats):
        cache = work / f"cache-{rep}"
        cold, hit_cold = epoch(cache)
        warm, hit_warm = epoch(cache)
        if hit_cold or not hit_warm:
            raise common.BenchmarkError("the decode cache did not behave as expected")
        runs.append({"cold_s": cold, "warm_s": warm})
        log(f"cache: cold {cold:.2f} s, warm {warm:.2f} s")
        _rmtree(cache)
    return {"n": n, "synth_size": synth_size, "size": size, "batch": batch,
            "synth_command": shlex.join(["fgdiscover", *synth_cmd[3:]]), "runs": runs}


def cache_markdown(r: dict) -> str:
    runs, n = r["runs"], r["n"]
    cold, warm = [x["cold_s"] for x in runs], [x["warm_s"] for x in runs]
    rows = [["cold: empty cache (decode every image, write the cache)",
             common.format_summary(common.summarize(cold), ".2f"), f"{n / _median(cold):.0f}"],
            ["warm: cache found (memory-mapped)",
             common.format_summary(common.summarize(warm), ".2f"), f"{n / _median(warm):.0f}"]]
    return (f"### Decode cache: one epoch over {n:,} images\n\n"
            f"`{r['synth_command']}` ({r['synth_size']} px PNG), decoded to {r['size']} px; "
            f"an epoch = `ImageFolder(...)` + one pass of batches of {r['batch']} "
            "(`BatchSampler.next`, `to_tensor`). The image files are in the OS page cache in "
            f"both cases. Median (min-max) of {len(runs)} repeats; cold / warm = "
            f"**{_median(cold) / _median(warm):.1f}x**.\n\n"
            + common.markdown_table(["epoch", "seconds", "images/s"], rows) + "\n")


# -------------------------------------------------------------------------- large
def large_child(path: Path, k: int, mppc: int, n_init: int, max_iter: int,
                chunk_size: int) -> dict:
    import numpy as np

    from fgdiscover.cluster import FaissKMeans

    x = np.load(path, mmap_mode="r")
    before = _status_kib("VmRSS")
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        km = FaissKMeans(k, n_init=n_init, max_iter=max_iter, seed=0, normalize=True,
                         max_points_per_centroid=mppc, chunk_size=chunk_size,
                         device="cpu").fit(x)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        labels = km.predict(x)
        predict_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        conf = km.confidence(x)
        confidence_s = time.perf_counter() - t0
    assert np.array_equal(labels, km.labels_) and conf.shape == (len(x),)
    sizes = np.bincount(km.labels_, minlength=k)
    return {"n": len(x), "d": x.shape[1], "k": k, "fit_s": fit_s, "predict_s": predict_s,
            "confidence_s": confidence_s, "n_train": min(len(x), k * mppc),
            "empty_clusters": int((sizes == 0).sum()), "inertia": km.inertia_,
            **_memory_record(anon, before)}


def bench_large(n, d, k, max_points_per_centroid, n_init, max_iter, chunk_size, work: Path,
                log) -> dict:
    import numpy as np

    path = work / "large.npy"
    t0 = time.perf_counter()
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    blobs(n, d, k, seed=7, out=arr)
    arr.flush()
    del arr
    gen_s = time.perf_counter() - t0
    log(f"large: wrote {n:,} x {d} float32 to {path} in {gen_s:.1f} s")
    rec = _child(["--large-child", str(path), "--k", str(k), "--mppc",
                  str(max_points_per_centroid), "--n-init", str(n_init), "--max-iter",
                  str(max_iter), "--chunk-size", str(chunk_size)])
    log(f"large: fit {rec['fit_s']:.1f} s, predict {rec['predict_s']:.1f} s, confidence "
        f"{rec['confidence_s']:.1f} s, peak RSS {rec['peak_rss_gib']:.2f} GiB, peak anon "
        f"{rec['peak_anon_gib']:.2f} GiB")
    path.unlink()
    return {**rec, "generate_s": gen_s, "max_points_per_centroid": max_points_per_centroid,
            "n_init": n_init, "max_iter": max_iter, "chunk_size": chunk_size,
            "data_gib": n * d * 4 / 2**30}


def large_markdown(r: dict) -> str:
    rows = [["fit (L2-normalise, train on the subsample, assign every row)",
             f"{r['fit_s']:.1f}"],
            ["predict (every row again, block by block)", f"{r['predict_s']:.1f}"],
            ["confidence (nearest / second-nearest ratio, block by block)",
             f"{r['confidence_s']:.1f}"]]
    return (f"### Large cluster step: {r['n']:,} x {r['d']} float32 ({r['data_gib']:.2f} GiB, "
            f"memory-mapped .npy), k = {r['k']:,}\n\n"
            f"`FaissKMeans({r['k']}, normalize=True, n_init={r['n_init']}, "
            f"max_iter={r['max_iter']}, max_points_per_centroid="
            f"{r['max_points_per_centroid']}, chunk_size={r['chunk_size']})`: k-means on a "
            f"seeded subsample of {r['n_train']:,} rows, then all {r['n']:,} rows assigned "
            f"{r['chunk_size']:,} at a time. One run, fresh process. Memory: RSS before "
            f"(numpy, faiss, scikit-learn imported) {r['rss_before_gib']:.2f} GiB; peak RSS "
            f"(`VmHWM`, counts the memmap's file pages read) **{r['peak_rss_gib']:.2f} GiB**; "
            f"peak anonymous memory (`RssAnon`, what the code allocates) "
            f"**{r['peak_anon_gib']:.2f} GiB**. Empty clusters: {r['empty_clusters']}. "
            f"Writing the data took {r['generate_s']:.1f} s (not included).\n\n"
            + common.markdown_table(["step", "seconds"], rows) + "\n")


# ---------------------------------------------------------------------------- run
def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def _machine() -> dict:
    import faiss
    import sklearn

    m = common.machine_info()
    m["mem_total_gib"] = _mem_total_gib()
    m["sklearn"] = sklearn.__version__
    m["faiss_omp_threads"] = faiss.omp_get_max_threads()
    return m


def _changed_files() -> list[str]:
    """Files of the checkout that differ from its commit (``git status --porcelain``)."""
    try:
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(common.REPO_ROOT),
                              "status", "--porcelain"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def _header(rec: dict) -> str:
    m, git = rec["machine"], rec["git"]
    commit = (git.get("commit") or "?")[:10] + (" + uncommitted changes" if git.get("dirty")
                                                 else "")
    mem = f"{m['mem_total_gib']:.1f} GiB" if m.get("mem_total_gib") else "?"
    return "\n".join([
        "# fgdiscover performance" + (" (--quick smoke run, not a measurement)"
                                      if rec["settings"]["quick"] else ""),
        "",
        "Written by `benchmarks/perf.py` (see its docstring for exactly what each section "
        "measures); every number is also in the JSON line appended to `perf.jsonl`.",
        "",
        f"- command: `{rec['command']}`",
        f"- date: {rec['date_start']} to {rec['date_end']} (UTC)",
        f"- commit: {commit}"
        + (f" (changed: {', '.join(rec['changed_files'])})" if rec.get("changed_files")
           else ""),
        f"- checkout: `{common.REPO_ROOT}`",
        f"- machine: {m['cpu']}, {m['cpu_count']} cores ({m['usable_cores']} usable), "
        f"{mem} RAM, no GPU used; {m['platform']}",
        f"- software: Python {m['python']}, numpy {m['numpy']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), faiss {m['faiss']} ({m['faiss_omp_threads']} OpenMP "
        f"threads), scikit-learn {m['sklearn']}; thread variables: "
        f"{m['thread_env'] or 'none set'}",
        f"- load average (1, 5, 15 min): {rec['load_start']} at the start, {rec['load_end']} "
        "at the end. The machine is shared: other engineers may have been running tests "
        "meanwhile, so timings are upper bounds; repeats and medians are given where the "
        "section affords them.",
        "",
    ])


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="fgdiscover speed and memory, one report.")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, one repeat: checks the script, measures nothing")
    ap.add_argument("--repeats", type=int, help="repeats per measurement (default 3; 1 quick)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"markdown report to write (default {DEFAULT_OUT})")
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                    help=f"JSON-lines file to append to (default {DEFAULT_RESULTS})")
    ap.add_argument("--work", type=Path,
                    help="scratch folder (default: a temporary one, removed at the end)")
    # internal: the measured subprocesses
    ap.add_argument("--embed-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--large-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mppc", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n-init", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--max-iter", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--chunk-size", type=int, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.embed_child is not None:
        print(json.dumps(embed_child(args.embed_child, args.preset, args.work)))
        return 0
    if args.large_child is not None:
        print(json.dumps(large_child(args.large_child, args.k, args.mppc, args.n_init,
                                     args.max_iter, args.chunk_size)))
        return 0
    try:
        return run(args)
    except common.BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown or not only:
        raise common.BenchmarkError(f"unknown section(s) {unknown}; choose from "
                                    f"{', '.join(SECTIONS)}")
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        raise common.BenchmarkError("--repeats must be at least 1")
    sizes = QUICK if args.quick else FULL

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    rec = {"benchmark": "perf", "date_start": common.now_iso(),
           "command": shlex.join(["python", "benchmarks/perf.py", *sys.argv[1:]]),
           "settings": {"sections": only, "quick": args.quick, "repeats": repeats,
                        "sizes": {s: sizes[s] for s in only}},
           "load_start": [round(x, 2) for x in os.getloadavg()],
           "machine": _machine(), "git": common.git_info(),
           "changed_files": _changed_files()}
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="fgd-perf-")
        work = Path(tmp.name)
    else:
        work = args.work.expanduser().resolve()
        work.mkdir(parents=True, exist_ok=True)
    try:
        results, parts = {}, []
        for name in SECTIONS:
            if name not in only:
                continue
            s = sizes[name]
            log(f"== {name}")
            if name == "kmeans":
                results[name] = bench_kmeans(s["n"], s["d"], s["k"], s["max_iter"], repeats, log)
                parts.append(kmeans_markdown(results[name]))
            elif name == "train":
                results[name] = bench_train(s["presets"], work, log, quick=args.quick)
                parts.append(train_markdown(results[name]))
            elif name == "embed":
                results[name] = bench_embed(s["sizes"], s["preset"], repeats, work, log)
                parts.append(embed_markdown(results[name]))
            elif name == "cache":
                results[name] = bench_cache(s["n"], s["synth_size"], s["size"], s["batch"],
                                            repeats, work, log)
                parts.append(cache_markdown(results[name]))
            elif name == "large":
                results[name] = bench_large(**s, work=work, log=log)
                parts.append(large_markdown(results[name]))
    finally:
        if tmp is not None:
            tmp.cleanup()
    rec.update(results=results, date_end=common.now_iso(),
               load_end=[round(x, 2) for x in os.getloadavg()])
    text = _header(rec) + "\n" + "\n".join(parts)
    out = args.out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    common.append_jsonl(args.results.expanduser().resolve(), rec)
    print(text)
    log(f"wrote {out}; appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
