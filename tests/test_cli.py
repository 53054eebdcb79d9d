"""The fgdiscover commands as a user runs them (tiny preset, CPU)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from fgdiscover.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for f in fragments:
        assert f in lines[0]
    assert "Traceback" not in result.output


def test_bad_data_folders_give_one_line_errors(tmp_path):
    one_line_error(run("train", tmp_path / "nope", "--out", tmp_path / "r", "--preset", "tiny"),
                   "no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(run("train", tmp_path / "empty", "--out", tmp_path / "r", "--preset", "tiny"),
                   "no images")
    one_line_error(run("cluster", tmp_path / "nope", "--k", 4), "no such folder")
    assert not (Path.cwd() / "fgdiscover-runs").exists()  # nothing made for a failed run
    one_line_error(run("generate", tmp_path / "r"), "no checkpoint")
    one_line_error(run("synth", tmp_path / "s", "--n", 0), "")


def test_unusable_files_are_skipped_and_listed(tmp_path, synth_small):
    data = tmp_path / "data"
    data.mkdir()
    for f in synth_small.files[:12]:
        (data / f.replace("/", "_")).write_bytes((synth_small.root / f).read_bytes())
    (data / "zero.jpg").write_bytes(b"")
    (data / "notes.png").write_text("not an image")
    r = run("train", data, "--out", tmp_path / "run", "--preset", "tiny")
    assert r.exit_code == 0, r.output
    assert "skipped 2 unusable file(s)" in r.output
    listed = (tmp_path / "run/skipped.csv").read_text()
    assert "zero.jpg" in listed and "notes.png" in listed


def test_train_resume_generate(tmp_path, synth_small):
    run_dir = tmp_path / "run"
    r = run("train", synth_small.root, "--out", run_dir, "--preset", "tiny", "--iters", 2)
    assert r.exit_code == 0, r.output
    assert (run_dir / "checkpoints/last.pt").is_file()
    assert json.loads((run_dir / "config.json").read_text())["iters"] == 2
    # a second plain run would overwrite: refused, checkpoint kept
    one_line_error(run("train", synth_small.root, "--out", run_dir, "--preset", "tiny"),
                   "--resume")
    r = run("train", synth_small.root, "--out", run_dir, "--resume", "--iters", 4)
    assert r.exit_code == 0, r.output
    steps = [json.loads(x)["step"] for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    r = run("generate", run_dir, "--out", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    for name in ("grid", "grid_background", "grid_parent", "grid_child", "grid_stages"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_cluster_end_to_end_is_deterministic_and_hierarchical(tmp_path, synth_small):
    outs = []
    for name in ("a", "b"):
        r = run("cluster", synth_small.root, "--k", 4, "--k-parent", 2, "--preset", "tiny",
                "--labels", synth_small.root / "labels.csv", "--out", tmp_path / name)
        assert r.exit_code == 0, r.output
        assert "nmi=" in r.output and "assignments.csv" in r.output
        outs.append(pd.read_csv(tmp_path / name / "assignments.csv"))
    a, b = outs
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["file", "cluster", "parent_cluster", "confidence"]
    assert len(a) == 48 and a["cluster"].between(0, 3).all()
    # every child cluster belongs to exactly one parent cluster
    assert (a.groupby("cluster")["parent_cluster"].nunique() == 1).all()
    assert a["confidence"].between(0, 1).all()
    clusters = json.loads((tmp_path / "a/clusters.json").read_text())
    assert sum(c["size"] for c in clusters["clusters"]) == 48
    metrics = json.loads((tmp_path / "a/metrics.json").read_text())
    assert 0 <= metrics["child"]["nmi"] <= 1 and "parent" in metrics
    # refusing to overwrite a finished clustering
    one_line_error(run("cluster", synth_small.root, "--k", 4, "--preset", "tiny",
                       "--out", tmp_path / "a"), "already holds")
    # evaluate scores the same file to the same numbers
    r = run("evaluate", tmp_path / "a/assignments.csv", "--labels",
            synth_small.root / "labels.csv", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["child"] == metrics["child"]
    # reusing the trained model: no training, same embeddings shape
    r = run("embed", synth_small.root, "--model", tmp_path / "a/model", "--out", tmp_path / "e")
    assert r.exit_code == 0, r.output
    feats = np.load(tmp_path / "e/features.npy")
    assert feats.shape[0] == 48
    assert np.allclose(np.load(tmp_path / "e/child_probs.npy").sum(1), 1, atol=1e-4)
    assert np.array_equal(feats, np.load(tmp_path / "a/embeddings/features.npy"))


def test_cluster_argument_errors(tmp_path, synth_small):
    one_line_error(run("cluster", synth_small.root, "--k", 4, "--k-parent", 9), "--k-parent")
    one_line_error(run("cluster", synth_small.root, "--k", 4, "--preset", "tiny",
                       "--labels", tmp_path / "missing.csv", "--out", tmp_path / "x"),
                   "missing.csv")
    one_line_error(run("evaluate", tmp_path / "none.csv", "--labels",
                       synth_small.root / "labels.csv"), "none.csv")


def test_interrupt_is_reported_even_with_quiet(tmp_path, monkeypatch):
    import fgdiscover.pipeline

    def interrupted(*args, **kwargs):
        print("progress that --quiet hides")
        raise KeyboardInterrupt

    monkeypatch.setattr(fgdiscover.pipeline, "cluster_folder", interrupted)
    (tmp_path / "d").mkdir()
    for extra in ((), ("--quiet",)):
        r = run("cluster", tmp_path / "d", "--k", 4, *extra)
        assert r.exit_code == 130
        assert r.output.count("interrupted; the last checkpoint is kept") == 1
        assert ("progress that --quiet hides" in r.output) == (not extra)
