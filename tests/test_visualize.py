"""UMAP map, galleries, model pictures and report.html of a cluster run; progress lines."""

import io
import time
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fgdiscover.cli import cli
from fgdiscover.progress import LineProgress, progress_bar
from fgdiscover.visualize import (RunInfo, sample_rows, spread_points, umap_layout,
                                  visualize_run)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def blobs(n_per=40, n_blobs=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim)) * 5
    y = np.repeat(np.arange(n_blobs), n_per)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


@pytest.fixture
def fake_run(tmp_path, synth_small):
    """A run directory as `cluster` writes it, without a model: clusters = true children
    (4) under true parents (2), features = one noisy blob per child."""
    labels = pd.read_csv(synth_small.root / "labels.csv")
    files = labels["file"].tolist()
    child, parent = labels["child"].to_numpy(), labels["parent"].to_numpy()
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 8)) * 4
    emb = tmp_path / "run" / "embeddings"
    emb.mkdir(parents=True)
    features = centres[child] + rng.normal(size=(len(files), 8))
    np.save(emb / "features.npy", features.astype(np.float32))
    np.save(emb / "child_probs.npy", np.eye(4, dtype=np.float32)[child])
    np.save(emb / "parent_probs.npy", np.eye(2, dtype=np.float32)[parent])
    run_dir = tmp_path / "run"
    conf = rng.uniform(size=len(files)).round(4)
    pd.DataFrame({"file": files, "cluster": child, "parent_cluster": parent,
                  "confidence": conf}).to_csv(run_dir / "assignments.csv", index=False)
    clusters = [{"cluster": c, "parent_cluster": int(parent[child == c][0]),
                 "size": int((child == c).sum()), "representatives": []} for c in range(4)]
    (run_dir / "clusters.json").write_text(json.dumps(
        {"k": 4, "k_parent": 2, "parent_sizes": np.bincount(parent).tolist(),
         "clusters": clusters}))
    (run_dir / "config.json").write_text(json.dumps(
        {"data": str(synth_small.root), "k": 4, "k_parent": 2, "features": "embedding",
         "labels": str(synth_small.root / "labels.csv"), "model": str(run_dir / "model")}))
    return run_dir


def test_sample_rows_is_a_seeded_cap():
    assert np.array_equal(sample_rows(50, 100), np.arange(50))
    rows = sample_rows(1000, 100, seed=3)
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, sample_rows(1000, 100, seed=3))
    assert not np.array_equal(rows, sample_rows(1000, 100, seed=4))


def test_umap_keeps_blobs_apart_and_is_reproducible():
    x, y = blobs()
    xy = umap_layout(x, seed=0, progress=False)
    assert xy.shape == (len(x), 2) and np.isfinite(xy).all()
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (y[d.argmin(1)] == y).mean() >= 0.95  # nearest neighbour in the map: same blob
    assert np.array_equal(xy, umap_layout(x, seed=0, progress=False))
    assert umap_layout(x[:3], progress=False).shape == (3, 2)  # too few for UMAP: PCA


def test_spread_points_cover_the_map():
    xy = np.random.default_rng(0).uniform(size=(500, 2))
    picked = spread_points(xy, 16)
    assert len(picked) == 16 and len(set(picked.tolist())) == 16
    # one per grid quadrant at least
    quads = {(int(a > 0.5), int(b > 0.5)) for a, b in xy[picked]}
    assert len(quads) == 4


def test_visualize_fake_run_with_a_sample(fake_run):
    pics = visualize_run(fake_run, max_points=30, per_cluster=6, thumbnails=5,
                         progress=False, log=lambda m: None)
    table = pd.read_csv(fake_run / "umap.csv")
    assert list(table.columns) == ["file", "x", "y", "cluster", "parent_cluster", "label"]
    assert len(table) == 30 and table["file"].is_unique
    assignments = pd.read_csv(fake_run / "assignments.csv").set_index("file")
    assert (assignments.loc[table["file"], "cluster"].to_numpy() == table["cluster"]).all()
    assert json.loads((fake_run / "umap.json").read_text())["sampled"] is True
    assert "a random sample of 30 of 48 images" in pics.umap_note
    assert Image.open(pics.umap_png).size[0] > 1000  # two panels: clusters, ground truth
    # galleries: the most confident images of each cluster, first the most confident
    assert sorted(pics.children) == [0, 1, 2, 3] and sorted(pics.parents) == [0, 1]
    for c, files in pics.top.items():
        members = assignments[assignments["cluster"] == c]
        ranked = members["confidence"].sort_values(ascending=False, kind="stable")
        assert files == ranked.index[:6].tolist()
        assert Image.open(pics.children[c]).size[0] >= 4 * 64
    assert Image.open(pics.overview).size[1] > Image.open(pics.parents[0]).size[1]
    assert any("no FineGAN checkpoint" in n for n in pics.notes)
    html = pics.report.read_text()
    assert "a random sample of 30 of 48 images" in html and "no FineGAN checkpoint" in html


def test_cluster_leaves_pictures_and_a_self_contained_report(tiny_cluster_run):
    run_dir = tiny_cluster_run
    for name in ("report.html", "umap.png", "umap.csv", "summary.json", "galleries/parents.png",
                 "galleries/parent_00.png", "galleries/child_003.png",
                 "generated/grid.png", "generated/grid_stages.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert len(pd.read_csv(run_dir / "umap.csv")) == 48
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_images"] == 48 and summary["wall_s"] > 0
    html = (run_dir / "report.html").read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(srcs) == 1 + 2 + 4 + 5  # map, parent strips, child galleries, model pictures
    assert all(s.startswith("data:image/") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network
    assert "<link" not in html and "<script" not in html
    for href in ("assignments.csv", "clusters.json", "metrics.json"):
        assert f'href="{href}"' in html and (run_dir / href).is_file()
    assert "nmi" in html and "Parent cluster 1" in html
    # the default grouping: silhouettes (the synthetic set has boxes), 2 children per parent
    assert "<td>parents from</td><td>silhouette, equal sizes</td>" in html
    clusters = json.loads((run_dir / "clusters.json").read_text())["clusters"]
    assert sorted(np.bincount([c["parent_cluster"] for c in clusters]).tolist()) == [2, 2]
    info = RunInfo.load(run_dir)
    assert info.labels_source()[0].name == "labels.csv" and info.n_images == 48


def test_visualize_command(fake_run, tmp_path):
    r = run("visualize", fake_run, "--quiet", "--no-model-pictures")
    assert r.exit_code == 0, r.output
    assert r.output == ""
    assert (fake_run / "report.html").is_file()
    r = run("visualize", fake_run, "--no-model-pictures", "--max-points", 20)
    assert r.exit_code == 0, r.output
    assert "report:" in r.output and "random sample of 20 of 48" in r.output
    # pictures drawn earlier stay in the report when they are not redrawn
    (fake_run / "generated").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(fake_run / "generated" / "grid_stages.png")
    r = run("visualize", fake_run, "--quiet", "--no-model-pictures")
    assert r.exit_code == 0, r.output
    assert "No model pictures" not in (fake_run / "report.html").read_text()
    (tmp_path / "empty").mkdir()
    for bad, fragment in ((tmp_path / "nope", "no such run directory"),
                          (tmp_path / "empty", "not a `fgdiscover cluster` run")):
        r = run("visualize", bad)
        assert r.exit_code == 2 and r.output.startswith("Error: ") and fragment in r.output
        assert len(r.output.strip().splitlines()) == 1


def test_cluster_no_report_quiet(tmp_path, synth_small):
    r = run("cluster", synth_small.root, "--k", 4, "--k-parent", 2, "--preset", "tiny",
            "--out", tmp_path / "r", "--no-report", "--quiet")
    assert r.exit_code == 0, r.output
    assert r.output == ""
    assert (tmp_path / "r/assignments.csv").is_file()
    assert not (tmp_path / "r/report.html").exists() and not (tmp_path / "r/galleries").exists()


def test_progress_writes_whole_lines_off_a_terminal():
    buf = io.StringIO()
    bar = progress_bar(range(5), desc="embed", unit="batch", file=buf, interval=0)
    assert isinstance(bar, LineProgress)
    for _ in bar:
        bar.set_postfix(loss="0.5")
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert lines[0].startswith("embed: 0/5 batch") and lines[-1].startswith("embed: 5/5 batch")
    assert "loss=0.5" in lines[-1] and len(lines) == 6  # start + one per step (interval 0)
    quiet = io.StringIO()
    with progress_bar(total=3, desc="x", file=quiet, enabled=False) as b:
        b.update(3)
    assert quiet.getvalue() == ""
    slow = io.StringIO()
    with progress_bar(total=100, desc="k-means", file=slow, interval=3600) as b:
        for _ in range(100):
            b.update()
    assert len(slow.getvalue().splitlines()) == 2  # start and end only


def test_progress_keeps_writing_while_a_step_does_not_move():
    buf = io.StringIO()
    with progress_bar(total=2, desc="k-means", unit="level", file=buf, interval=0.05):
        time.sleep(0.4)  # one long step (k-means, UMAP): lines go on without an update
    after = len(buf.getvalue().splitlines())
    assert after >= 4 and all(line.startswith("k-means: 0/2 level") for line in
                              buf.getvalue().splitlines())
    time.sleep(0.2)
    assert len(buf.getvalue().splitlines()) == after  # nothing after close


def test_report_names_how_parents_were_grouped():
    from fgdiscover.report import _parents_from

    assert _parents_from({"parents": "silhouette", "parent_sizes": "free"}) == \
        "silhouette, free sizes"
    # parent probabilities group images, never in equal sizes
    assert _parents_from({"parents": "features", "features": "child",
                          "parent_sizes": "equal"}) == "features"
    assert _parents_from({"parents": "features"}) == "features"  # before --parent-sizes
