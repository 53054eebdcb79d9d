"""`fgdiscover benchmark`: every method on the same images, results files, the report."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fgdiscover import published
from fgdiscover.benchmark import load_data, parse_methods, read_results, render_report
from fgdiscover.cli import cli
from fgdiscover.errors import FGDError
from fgdiscover.pipeline import load_images
from test_data_readers import CUB_IMAGES, make_cub


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in lines[-1]


def test_benchmark_end_to_end_on_a_tiny_synthetic_set(tmp_path, synth_small, one_thread):
    out = tmp_path / "bench"
    r = run("benchmark", "--dataset", "synthetic", "--root", synth_small.root, "--out", out,
            "--preset", "tiny", "--n-parent", "1,2")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(row["method"], row["n_parent"]) for row in rows] == [
        ("pixels", ""), ("depict", ""), ("infogan", ""), ("jule", ""),
        ("fgdiscover", "1"), ("fgdiscover", "2")]
    for row in rows:
        assert row["k"] == "4" and row["n_images"] == "48" and row["split"] == "all"
        assert 0.0 <= float(row["nmi"]) <= 1.0 and 0.0 <= float(row["accuracy"]) <= 1.0
        assert row["resolution"] == "16" and not row["error"]
    results = json.loads((out / "results.json").read_text())
    assert results["k"] == 4 and results["published"] == []  # no paper used this set
    assert "--n-parent 1,2" in results["command"]
    assert results["synthetic"].endswith("--n 48 --size 16 --seed 0")
    assert (out / "runs/fgdiscover-np2/assignments.csv").is_file()
    # fgdiscover's row is its own cluster run's scores, nothing recomputed
    run_metrics = json.loads((out / "runs/fgdiscover-np2/metrics.json").read_text())
    assert float(rows[-1]["nmi"]) == pytest.approx(run_metrics["child"]["nmi"], abs=1e-4)
    report = (out / "report.md").read_text()
    assert "| **fgdiscover** (N_p = 2) |" in report and "| jule |" in report
    assert "JULE (Yang et al., CVPR 2016)" in report  # how each differs from its original


def test_baselines_see_the_same_images_as_the_folder_loader(synth_small):
    data = load_data("synthetic", synth_small.root, resolution=16)
    ds = load_images(synth_small.root, 16, labels=synth_small.root / "labels.csv",
                     label_column="child", crop="full", progress=False)
    np.testing.assert_array_equal(data.images, ds.images)
    assert data.k == 4 and data.parent_labels is not None
    assert set(data.parent_labels) == {"0", "1"}


def test_report_renders_from_a_results_file_with_the_published_rows(tmp_path):
    results = {
        "dataset": "cub", "split": "test", "crop": "bbox", "k": 200, "n_images": 5794,
        "preset": "paper", "seed": 0, "command": "fgdiscover benchmark --dataset cub",
        "methods": [
            {"method": "pixels", "nmi": 0.1, "accuracy": 0.03, "ari": 0.01, "k": 200,
             "split": "test", "n_images": 5794, "resolution": 64, "wall_s": 30.0},
            {"method": "fgdiscover", "n_parent": 20, "nmi": 0.3, "accuracy": 0.08,
             "ari": 0.02, "k": 200, "split": "test", "n_images": 5794, "resolution": 128,
             "wall_s": 7200.0},
            {"method": "jule", "error": "RuntimeError: out of memory", "k": 200,
             "split": "test", "n_images": 5794}],
        "published": [{"method": p.method, "cell": p.cell(), "source": p.source,
                       "protocol": p.protocol(), "note": p.note}
                      for p in published.for_dataset("CUB")]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    r = run("benchmark", "--out", tmp_path, "--report-only")
    assert r.exit_code == 0, r.output
    report = (tmp_path / "report.md").read_text()
    assert report == render_report(read_results(tmp_path))
    assert "5794 images (test split), k = 200" in report
    assert "| pixels | 0.100 | 0.030 | 0.010 | 200 | test | 5794 | 64 px | 30 s |" in report
    assert "| **fgdiscover** (N_p = 20) | 0.300 | 0.080 |" in report and "120.0 min" in report
    assert "failed: RuntimeError: out of memory" in report
    assert "| FineGAN | 0.403 | 0.126 | FineGAN paper (CVPR 2019) | k = 200, split not stated |" in report
    c3 = next(line for line in report.splitlines() if line.startswith("| C3-GAN"))
    assert "k = 400, over-clustered" in c3 and "C3-GAN paper (ICLR 2022)" in c3
    assert "1.5x the object box" in report


def make_cub_photos(base):
    """The readers' CUB fixture with its images replaced by 420 x 420 JPEGs (one colour per
    class), so that every box lies inside its image and FineGAN's crop applies."""
    root = make_cub(base)
    for rel, cls, _, _ in CUB_IMAGES.values():
        Image.new("RGB", (420, 420), (200, 40, 40) if cls == 1 else (40, 40, 200)).save(
            root / "images" / rel, format="JPEG")
    return root


def test_split_selects_the_official_cub_images(tmp_path):
    root = make_cub_photos(tmp_path / "CUB_200_2011")
    out = tmp_path / "bench"
    r = run("benchmark", "--dataset", "cub", "--root", root, "--out", out, "--methods",
            "pixels", "--preset", "tiny", "--split", "train", "--crop", "bbox")
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    n_train = sum(v[3] for v in CUB_IMAGES.values())
    assert results["n_images"] == n_train and results["k"] == 2
    assert [p["method"] for p in results["published"]][:2] == ["JULE", "JULE-ResNet-50"]
    test = load_images(root, 16, split="test", progress=False)
    assert sorted(test.files) == sorted(f"images/{v[0]}" for v in CUB_IMAGES.values() if not v[3])
    assert test.labels == [{1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross"}[
        next(v[1] for v in CUB_IMAGES.values() if f"images/{v[0]}" == f)] for f in test.files]
    assert len(test.images) == len(test.files) == len(test.bboxes)


def test_benchmark_mistakes_are_one_line_errors(tmp_path, synth_small):
    root = make_cub(tmp_path / "cub")
    one_line_error(run("benchmark", "--dataset", "dogs", "--root", root, "--out", tmp_path / "o",
                       "--methods", "pixels", "--preset", "tiny"),
                   "is not a Stanford Dogs folder", "found: cub")
    one_line_error(run("benchmark", "--dataset", "synthetic", "--root", root, "--out",
                       tmp_path / "o", "--preset", "tiny"), "no labels.csv")
    one_line_error(run("benchmark", "--dataset", "synthetic", "--root", synth_small.root,
                       "--out", tmp_path / "o", "--split", "test", "--methods", "pixels",
                       "--preset", "tiny"), "official split", "plain image folder")
    one_line_error(run("benchmark", "--dataset", "synthetic", "--root", synth_small.root,
                       "--out", tmp_path / "o", "--methods", "pixels,sift"),
                   "unknown method(s) sift")
    one_line_error(run("benchmark", "--dataset", "synthetic", "--root", synth_small.root,
                       "--out", tmp_path / "o", "--n-parent", "a,b"), "--n-parent")
    one_line_error(run("benchmark", "--out", tmp_path / "none", "--report-only"),
                   "no results file")
    one_line_error(run("benchmark", "--out", tmp_path / "o"), "--dataset and --root")


def test_parse_methods_keeps_report_order():
    assert parse_methods("fgdiscover, pixels") == ["pixels", "fgdiscover"]
    with pytest.raises(FGDError):
        parse_methods("")


def test_published_numbers_live_in_one_file_with_sources(tmp_path):
    rows = published.load_published()
    assert len(rows) == 33 and all(r.source for r in rows)
    assert published.lookup("DEPICT", "Dogs").cell() == "0.182 / 0.052"
    assert published.lookup("SCAN", "Cars").cell() == "0.38 / 0.088"
    # benchmarks/published.csv is the same file, not a copy
    here = Path(__file__).resolve().parent.parent / "benchmarks" / "published.csv"
    assert here.resolve() == (Path(published.__file__).parent / "published.csv").resolve()
    bad = tmp_path / "p.csv"
    bad.write_text("method,dataset,nmi,accuracy,source,k,overclustered,split,note\n"
                   "JULE,CUB,0.204,0.045,x,200,no,,\nJULE,Dogs,oops,0.043,x,120,no,,\n")
    with pytest.raises(FGDError, match="line 3 is malformed"):
        published.load_published(bad)


def test_fgdiscover_defaults_to_the_synthetic_sets_parent_count(tmp_path, synth_small,
                                                                 one_thread):
    from fgdiscover.benchmark import run_benchmark

    r = run_benchmark("synthetic", synth_small.root, tmp_path / "b", methods="fgdiscover",
                      preset="tiny", log=lambda msg: None)
    assert [(m["method"], m["n_parent"]) for m in r["methods"]] == [("fgdiscover", 2)]
    assert "parent_nmi" in r["methods"][0]
    with pytest.raises(FGDError, match="--n-parent sweeps fgdiscover"):
        run_benchmark("synthetic", synth_small.root, tmp_path / "c", methods="pixels",
                      n_parents=[2])
