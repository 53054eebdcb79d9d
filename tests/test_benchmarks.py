"""The benchmark scripts: tiny end-to-end runs, their records, and the published table.

The scripts run as their users run them (``python benchmarks/x.py``) in a subprocess, with
one thread each: on a loaded 2-core machine, several threads per tiny process spend their
time waiting for each other.
"""

import importlib.util
import json
import math
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    """Import benchmarks/<name>.py (the scripts put benchmarks/ on sys.path for `common`)."""
    key = f"benchmarks_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_script(name, *args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def is_score(x):
    return isinstance(x, float) and 0.0 <= x <= 1.0


# ------------------------------------------------------------------------ published
def test_published_table_holds_finegan_cub_and_keeps_published_precision():
    published = load("published")
    assert published.lookup("FineGAN", "CUB").nmi == 0.403
    assert published.lookup("FineGAN", "CUB").accuracy == 0.126
    table = published.render_table()
    assert "| FineGAN | 0.403 / 0.126 | 0.233 / 0.079 | 0.354 / 0.078 |" in table
    # C3-GAN's table prints two decimals for NMI: 0.36 must not become 0.360
    assert "| IIC [1] | 0.36 / 0.074 |" in table
    c3 = published.lookup("C3-GAN (over-clustered)", "CUB")
    assert "over-clustered" in c3.note
    marker = next(line for line in table.splitlines() if line.startswith("| C3-GAN"))
    note_id = marker.split("[")[1].split("]")[0]
    assert f"[{note_id}] {c3.note}" in table
    with pytest.raises(KeyError):
        published.lookup("FineGAN", "ImageNet")


def test_render_table_puts_our_rows_beside_the_published_ones():
    published = load("published")
    ours = [published.Published("fgdiscover", "CUB", 0.5, 0.25, "this repository"),
            published.Published("fgdiscover", "synthetic", 0.9, 0.8, "this repository")]
    lines = published.render_table(ours=ours).splitlines()
    assert lines[0] == ("| method | CUB NMI / acc | Dogs NMI / acc | Cars NMI / acc "
                        "| synthetic NMI / acc | source |")
    assert "| **fgdiscover** | 0.500 / 0.250 | - | - | 0.900 / 0.800 | this repository |" in lines
    finegan = next(line for line in lines if line.startswith("| FineGAN |"))
    assert finegan.endswith("| 0.354 / 0.078 | - | FineGAN paper (CVPR 2019) |")


def test_published_script_prints_the_table():
    out = run_script("published")
    assert out.returncode == 0, out.stderr
    assert "| FineGAN | 0.403 / 0.126 |" in out.stdout


# ---------------------------------------------------------------------------- common
def test_summarize_skips_unknown_values_and_takes_the_median():
    common = load("common")
    s = common.summarize([3.0, None, 1.0, float("nan"), 10.0, 2.0])
    assert s == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert common.summarize([None]) is None
    assert common.format_summary(s, ".1f") == "2.5 (1.0-10.0)"
    assert common.format_summary(common.summarize([0.1234, 0.1231]), ".3f") == "0.123"


def test_jsonl_round_trip_and_a_bad_line_names_its_number(tmp_path):
    common = load("common")
    path = tmp_path / "sub" / "r.jsonl"
    common.append_jsonl(path, {"a": 1})
    common.append_jsonl(path, {"b": [1.5]})
    assert common.read_jsonl(path) == [{"a": 1}, {"b": [1.5]}]
    with open(path, "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(common.BenchmarkError, match=r"r\.jsonl:3"):
        common.read_jsonl(path)
    with pytest.raises(ValueError):
        common.append_jsonl(path, {"x": float("nan")})  # not valid JSON for other readers


def test_run_measured_reports_each_childs_own_peak_memory(tmp_path):
    common = load("common")
    big = common.run_measured(
        [sys.executable, "-c",
         "import sys, time; x = b'x' * (200 * 2**20); time.sleep(0.6); sys.exit(3)"],
        tmp_path / "big.log")
    small = common.run_measured([sys.executable, "-c", "import time; time.sleep(0.5); print('hi')"],
                                tmp_path / "small.log")
    assert big["returncode"] == 3 and small["returncode"] == 0
    assert big["peak_rss_gib"] > 0.19
    # getrusage(RUSAGE_CHILDREN) would still report the big child's peak here
    assert small["peak_rss_gib"] < 0.1
    assert (tmp_path / "small.log").read_text() == "hi\n"
    assert small["wall_s"] > 0


def test_markdown_table_rejects_ragged_rows():
    common = load("common")
    assert common.markdown_table(["a", "b"], [[1, "x|y"]]).splitlines() == [
        "| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError):
        common.markdown_table(["a", "b"], [[1]])


# ------------------------------------------------------------------ cluster_synthetic
def test_pixel_baseline_scores_each_level_against_its_own_labels():
    cs = load("cluster_synthetic")
    rng = np.random.default_rng(0)
    child = np.repeat(np.arange(4), 10)
    parent = child // 2
    background = rng.integers(0, 3, child.size)
    # pixels that are the child id, far apart, plus noise: k-means finds the children
    pixels = np.eye(4, dtype=np.float32)[child] * 10 + rng.normal(0, 0.1, (40, 4)).astype(
        np.float32)
    res = cs.pixel_baseline(pixels, child, parent, background, k_child=4, k_parent=2, seed=0)
    assert res["child"]["nmi"] == pytest.approx(1.0)
    assert res["child"]["accuracy"] == pytest.approx(1.0)
    assert res["background_nmi"] < 0.3
    assert set(res["parent"]) == {"nmi", "accuracy", "ari", "purity"}


def test_training_speed_reads_the_median_and_last_rate(tmp_path):
    cs = load("cluster_synthetic")
    log = tmp_path / "log.jsonl"
    lines = [{"step": s, "d_bg": 1.0, "img_per_s": r} for s, r in
             [(25, 10.0), (50, 20.0), (75, 30.0), (100, 100.0)]]
    log.write_text("\n".join(map(json.dumps, lines[:2])) + "\ngarbage\n"
                   + "\n".join(map(json.dumps, lines[2:])) + "\n")
    assert cs.training_speed(log) == {"img_per_s_median": 25.0, "img_per_s_final": 100.0,
                                      "steps": 100}
    assert cs.training_speed(tmp_path / "missing.jsonl") is None


def test_cluster_synthetic_end_to_end(tmp_path):
    results, work = tmp_path / "results.jsonl", tmp_path / "work"
    args = ["--n", 60, "--size", 16, "--parents", 2, "--children-per-parent", 2,
            "--preset", "tiny", "--threads", 1, "--seed", 3, "--work", work,
            "--results", results]
    out = run_script("cluster_synthetic", *args)
    assert out.returncode == 0, out.stderr[-3000:]

    [rec] = [json.loads(line) for line in results.read_text().splitlines()]
    assert rec["benchmark"] == "cluster_synthetic"
    assert "--k 4 --k-parent 2" in rec["cluster_command"]
    assert "--preset tiny" in rec["cluster_command"] and "--seed 3" in rec["cluster_command"]
    assert rec["settings"]["n"] == 60 and rec["settings"]["seed"] == 3
    assert rec["run_config"]["preset"] == "tiny" and rec["run_config"]["k"] == 4
    assert rec["machine"]["cpu"] and rec["machine"]["torch"] and rec["machine"]["faiss"]
    assert rec["machine"]["thread_env"]["OMP_NUM_THREADS"] == "1"
    assert rec["date"][:2] == "20" and "commit" in rec["git"]
    # the record holds exactly what the run wrote
    metrics = json.loads((work / "run-0" / "metrics.json").read_text())
    assert rec["fgdiscover"]["child"] == metrics["child"]
    assert rec["fgdiscover"]["parent"] == metrics["parent"]
    for level in ("fgdiscover", "pixels"):
        for sub in ("child", "parent"):
            assert set(rec[level][sub]) >= {"nmi", "accuracy"}
            assert all(is_score(v) or (k == "ari" and -1 <= v <= 1)
                       for k, v in rec[level][sub].items())
    # the synthetic set's backgrounds dominate its pixels: k-means on them finds backgrounds
    assert is_score(rec["pixels"]["background_nmi"])
    assert rec["pixels"]["background_nmi"] > rec["pixels"]["child"]["nmi"] + 0.2
    assert rec["wall_s"] > 0 and rec["cpu_s"] > 0
    assert 0.05 < rec["peak_rss_gib"] < 16  # a python process with torch: not KiB, not bytes
    assert rec["train"]["steps"] == 4 and rec["train"]["img_per_s_median"] > 0
    # the printed table
    assert "| child NMI |" in out.stdout
    assert f"{rec['fgdiscover']['child']['nmi']:.3f}" in out.stdout

    report = run_script("cluster_synthetic", "--report", "--results", results)
    assert report.returncode == 0, report.stderr
    row = next(line for line in report.stdout.splitlines() if line.startswith("| 60 x 16px"))
    assert "| tiny | (threads 1) | 1 |" in row
    assert f"| {rec['pixels']['background_nmi']:.3f} |" in row

    again = run_script("cluster_synthetic", *args)  # the same --work: refused up front
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr


def test_cluster_synthetic_report_without_results_is_one_line(tmp_path):
    out = run_script("cluster_synthetic", "--report", "--results", tmp_path / "none.jsonl")
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: no results file at {tmp_path / 'none.jsonl'}"


# ------------------------------------------------------------------------ train_speed
def test_train_speed_tiny(tmp_path):
    results = tmp_path / "speed.jsonl"
    out = run_script("train_speed", "--preset", "tiny", "--warmup", 1, "--windows", 3,
                     "--steps", 1, "--threads", 1, "--device", "cpu", "--results", results)
    assert out.returncode == 0, out.stderr[-3000:]
    [rec] = [json.loads(line) for line in results.read_text().splitlines()]
    windows = rec["img_per_s_windows"]
    assert len(windows) == 3 and all(w > 0 for w in windows)
    assert rec["img_per_s"]["median"] == sorted(windows)[1]
    assert rec["spread_pct"] == pytest.approx(
        100 * (max(windows) - min(windows)) / sorted(windows)[1])
    # one step of batch 4: ms/step and img/s describe the same windows
    assert rec["step_ms_median"] == pytest.approx(1000 * 4 / rec["img_per_s"]["median"])
    assert rec["config"]["resolution"] == 16 and rec["config"]["batch_size"] == 4
    assert rec["settings"]["threads"] == 1 and rec["device"] == "cpu"
    assert rec["cuda_max_allocated_gib"] is None and rec["peak_rss_gib"] > 0.05
    assert all(math.isfinite(v) for v in rec["losses"].values())
    assert "| tiny | cpu:" in out.stdout


# ---------------------------------------------------------------------- train_profile
def test_train_profile_tiny_writes_the_profile_and_the_side_by_side_table(tmp_path):
    out_md = tmp_path / "profile.md"
    out = run_script("train_profile", "--preset", "tiny", "--threads", 1, "--windows", 2,
                     "--steps", 1, "--profile-steps", 2, "--warmup", 1, "--out", out_md)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out_md.read_text()
    assert "## Where the time goes (2 steps under torch.profiler" in text
    assert "`aten::convolution_backward`" in text
    rows = [line for line in text.splitlines() if line.startswith(("| before", "| after"))]
    assert [r.split(" | ")[0] for r in rows] == ["| before, 1 thread", "| after, 1 thread"]
    assert rows[0].endswith("| - |") and re.search(r"\| [+-]\d+\.\d% \|$", rows[1])
    bad = run_script("train_profile", "--threads", "0,x")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --threads")


# ------------------------------------------------------------------------------ perf
def test_perf_quick_writes_every_table(tmp_path):
    out, results = tmp_path / "perf.md", tmp_path / "perf.jsonl"
    run = run_script("perf", "--quick", "--out", out, "--results", results, "--work",
                     tmp_path / "work")
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "- commit: " in text and "- machine: " in text and "load average" in text
    assert "--quick" in text  # labelled as a smoke run, not a measurement
    for title, header in [
        ("### FaissKMeans vs scikit-learn KMeans", "| seed | FaissKMeans s |"),
        ("### Training and embedding images/s", "| preset | px | stage |"),
        ("### Embedding: `embed_images`", "| images | runs |"),
        ("### Decode cache", "| epoch | seconds | images/s |"),
        ("### Large cluster step", "| step | seconds |"),
    ]:
        assert title in text and header in text
    assert "| tiny | 16 px | FineGAN training step | 4 |" in text
    [rec] = [json.loads(line) for line in results.read_text().splitlines()]
    assert rec["settings"]["quick"] and rec["git"]["commit"] is not None
    res = rec["results"]
    assert [r["n"] for r in res["embed"]["runs"]] == [500, 2000]
    assert all(r["peak_rss_gib"] >= r["peak_anon_gib"] > 0 for r in res["embed"]["runs"])
    assert res["large"]["n_train"] == 20 * 64 and res["large"]["n"] == 20_000
    assert all(r["inertia_ratio"] > 0 for r in res["kmeans"]["runs"])


def test_perf_rejects_an_unknown_section(tmp_path):
    run = run_script("perf", "--only", "kmeans,gpu", "--out", tmp_path / "p.md")
    assert run.returncode == 2
    assert run.stderr.startswith("error: unknown section(s) ['gpu']")
    assert not (tmp_path / "p.md").exists()


def test_parents_corruptions_make_the_errors_they_name():
    parents = load("parents")
    child = np.repeat(np.arange(6), 50)
    parent = child // 3
    rng = np.random.default_rng
    assert (parents.corrupt(child, parent, "clean", rng(0)) == child).all()
    noisy = parents.corrupt(child, parent, "noise", rng(0))
    assert 0.1 < (noisy != child).mean() < 0.2  # 20 % moved, a sixth of them to their own
    merged = parents.corrupt(child, parent, "merge-split", rng(0))
    assert len(np.unique(merged)) == 6  # one class emptied, one split: still 6 clusters
    pure = [len(np.unique(parent[merged == c])) == 1 for c in np.unique(merged)]
    assert pure.count(False) == 1  # the merged cluster mixes two parents
    with pytest.raises(ValueError):
        parents.corrupt(child, parent, "typo", rng(0))


def test_parents_corrupted_mode_scores_every_grouping(tmp_path):
    from fgdiscover.data.synthetic import make_synthetic

    data = tmp_path / "data"
    make_synthetic(data, n=80, n_parent=2, children_per_parent=2, size=16, seed=0)
    results = tmp_path / "parents.jsonl"
    proc = run_script("parents", "--corrupt", data, "--cache-dir", tmp_path / "cache",
                      "--trials", 1, "--size", 16, "--k-parent", 2, "--results", results)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(results.read_text())
    assert {"oracle", "silhouette", "free sizes", "std, not unit, free, 5 restarts (before)"} <= set(
        rec["parent_nmi"])
    for by_kind in rec["parent_nmi"].values():
        assert set(by_kind) == {"clean", "noise", "pair-mix", "merge-split"}
        assert all(0 <= v <= 1 for v in sum(by_kind.values(), []))
    assert rec["parent_nmi"]["oracle"]["clean"] == [1.0]
    assert "| silhouette |" in proc.stdout
