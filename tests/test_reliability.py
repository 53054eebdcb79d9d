"""Reliability: argument errors, existing outputs, interrupted runs, safe checkpoint
loading and training health (README, "Reliability")."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fgdiscover
from fgdiscover.cli import cli
from fgdiscover.errors import FGDError
from fgdiscover.train import checkpoint as checkpoint_mod
from fgdiscover.train import gan as gan_mod
from fgdiscover.train.checkpoint import load_checkpoint, save_checkpoint
from fgdiscover.train.config import GANConfig, preset
from fgdiscover.train.encoder import load_encoder
from fgdiscover.train.gan import (CHECKPOINT, build_finegan, child_code_recovery, load_finegan,
                                  train_gan)

TINY = preset("tiny")
REPO = Path(fgdiscover.__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    """Exit status 2, no traceback, and the output ends in one ``Error: ...`` line (after
    whatever progress the command printed before it failed)."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert errors == lines[-1:], result.output
    for f in fragments:
        assert f in errors[0], errors[0]
    assert "Traceback" not in result.output


def tiny_data(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            np.full((n, 4), np.nan, np.float32))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def finished(tmp_path, tiny_cluster_run):
    """A private copy of a finished `cluster` run (tiny preset, k=4 under 2 parents)."""
    out = tmp_path / "run"
    shutil.copytree(tiny_cluster_run, out)
    return out


def cluster_args(synth_small, out, *extra):
    return ("cluster", synth_small.root, "--k", 4, "--k-parent", 2, "--preset", "tiny",
            "--labels", synth_small.root / "labels.csv", "--out", out, *extra)


# ------------------------------------------------------------------------ 2. arguments


def test_argument_errors_are_one_line(tmp_path, synth_small):
    data = synth_small.root
    one_line_error(run("cluster", data, "--k", 1), "--k must be at least 2")
    one_line_error(run("cluster", data, "--k", 4, "--k-parent", 0), "--k-parent")
    one_line_error(run("cluster", data, "--k", 60, "--preset", "tiny", "--out", tmp_path / "x"),
                   "only 48 usable images for --k 60")
    assert not (tmp_path / "x").exists()  # a failed run leaves no empty run directory
    # tied codes: every parent needs the same number of children
    one_line_error(run("train", data, "--out", tmp_path / "t", "--preset", "tiny",
                       "--n-parent", 3, "--n-child", 10), "multiple of --n-parent")
    one_line_error(run("train", data, "--out", tmp_path / "t", "--resume", "--overwrite"),
                   "not both")
    one_line_error(run("train", data, "--out", tmp_path / "t", "--checkpoint-every", 0),
                   "checkpoint_every and log_every must be >= 1")
    one_line_error(run("cluster", tmp_path / "missing", "--k", 4), "no such folder")
    # labels that do not match the images
    (tmp_path / "other.csv").write_text("file,label\nnot/here.png,a\nnor/this.png,b\n")
    one_line_error(run("cluster", data, "--k", 4, "--preset", "tiny", "--out", tmp_path / "l",
                       "--labels", tmp_path / "other.csv"), "no image under", "matches")
    rows = (data / "labels.csv").read_text().splitlines()
    (tmp_path / "half.csv").write_text("\n".join(rows[:25]) + "\n")
    one_line_error(run("cluster", data, "--k", 4, "--preset", "tiny", "--out", tmp_path / "h",
                       "--labels", tmp_path / "half.csv"), "24 of 48 images have no label")
    assert not (tmp_path / "h").exists() and not (tmp_path / "l").exists()


def test_unwritable_output_is_refused_before_any_work(tmp_path, synth_small):
    (tmp_path / "file").write_text("x")
    for cmd in (("cluster", synth_small.root, "--k", 4, "--preset", "tiny"),
                ("train", synth_small.root, "--preset", "tiny"),
                ("embed", synth_small.root, "--model", tmp_path)):
        one_line_error(run(*cmd, "--out", tmp_path / "file/sub"), "cannot write to")
    if os.geteuid() != 0:  # root writes anywhere: only the case above applies to it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        one_line_error(run("cluster", synth_small.root, "--k", 4, "--out", locked / "run"),
                       "cannot write to", "Permission denied")


def test_existing_results_are_kept_without_overwrite(finished, synth_small):
    before = snapshot(finished)
    one_line_error(run(*cluster_args(synth_small, finished)), "already holds", "--overwrite")
    # --overwrite, but a run that fails after the check: nothing already written changes
    one_line_error(run("cluster", synth_small.root, "--k", 60, "--preset", "tiny",
                       "--out", finished, "--overwrite"), "only 48 usable")
    one_line_error(run("train", synth_small.root, "--out", finished / "model",
                       "--preset", "tiny"), "already holds a training run", "--overwrite")
    one_line_error(run("embed", synth_small.root, "--model", finished / "model",
                       "--out", finished / "embeddings"), "--overwrite")
    assert snapshot(finished) == before


def test_overwrite_with_the_same_settings_reuses_the_model(finished, synth_small):
    ckpt = (finished / "model" / CHECKPOINT).read_bytes()
    assignments = (finished / "assignments.csv").read_text()
    r = run(*cluster_args(synth_small, finished, "--overwrite"))
    assert r.exit_code == 0, r.output
    assert "training FineGAN" not in r.output and "0 files skipped" in r.output
    assert (finished / "model" / CHECKPOINT).read_bytes() == ckpt
    assert (finished / "assignments.csv").read_text() == assignments


def test_model_trained_with_other_settings_needs_overwrite(finished, synth_small):
    (finished / "assignments.csv").unlink()  # a partial run: resumed, if its settings match
    before = snapshot(finished / "model")
    one_line_error(run("cluster", synth_small.root, "--k", 2, "--k-parent", 1, "--preset",
                       "tiny", "--out", finished), "other settings", "--overwrite")
    assert snapshot(finished / "model") == before
    r = run("cluster", synth_small.root, "--k", 2, "--k-parent", 1, "--preset", "tiny",
            "--out", finished, "--overwrite")
    assert r.exit_code == 0, r.output
    assert "removing the FineGAN trained with other settings" in r.output
    _, cfg, ckpt = load_finegan(finished / "model")
    assert (cfg.n_parent, cfg.n_child, ckpt["step"]) == (1, 2, TINY.iters)
    assert not (finished / "metrics.json").exists()  # the old run's scores are gone


def test_train_overwrite_starts_afresh(finished, synth_small):
    out = finished / "model"
    assert (out / "encoder.pt").exists()
    r = run("train", synth_small.root, "--out", out, "--preset", "tiny", "--iters", 2,
            "--overwrite")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert not (out / "encoder.pt").exists()


# ------------------------------------------------------------------ 3. interrupted runs


def test_sigkill_at_a_random_moment_then_resume_reaches_the_final_step(tmp_path, synth_small):
    """A real `fgdiscover train` process killed with SIGKILL after a random number of steps
    (after its first checkpoint), then `--resume`d to the end."""
    iters, every = 16, 2
    target = random.Random().randint(every + 1, iters - 5)  # a step to kill at
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "FGDISCOVER_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "fgdiscover.cli", "train", str(synth_small.root), "--out",
           str(out), "--preset", "tiny", "--iters", str(iters), "--checkpoint-every", str(every)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log, deadline = out / "log.jsonl", time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / CHECKPOINT).exists() and log.exists() and \
                    len(log.read_text().splitlines()) >= target:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"finished before the kill (step {target}): " \
                                    f"{proc.stderr.read().decode()[-500:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    _, _, ckpt = load_finegan(out)  # the last complete checkpoint
    assert ckpt["step"] % every == 0 and 0 < ckpt["step"] < iters, (target, ckpt["step"])
    done = subprocess.run([*cmd[:-4], "--resume"], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    _, _, ckpt = load_finegan(out)
    assert ckpt["step"] == iters
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == list(range(1, iters + 1))  # continued from the checkpoint: no gap, no repeat
    assert not list((out / "checkpoints").glob("*.tmp"))  # a write cut short is cleaned up


def test_truncated_checkpoint_is_reported(finished, synth_small):
    model = finished / "model"
    data = (model / CHECKPOINT).read_bytes()
    (model / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(FGDError, match="truncated or corrupt"):
        load_finegan(model)
    one_line_error(run("train", synth_small.root, "--out", model, "--resume"),
                   "truncated or corrupt", str(model / CHECKPOINT))
    one_line_error(run("generate", model), "truncated or corrupt")


def test_checkpoint_write_is_atomic_and_synced(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"format": "x", "step": 1}, path)
    synced = []
    monkeypatch.setattr(checkpoint_mod.os, "fsync", lambda fd: synced.append(fd))
    save_checkpoint({"format": "x", "step": 2}, path)
    assert len(synced) == 2  # the file, then the folder holding the rename

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(checkpoint_mod.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"format": "x", "step": 3}, path)
    assert load_checkpoint(path)["step"] == 2 and os.listdir(tmp_path) == ["ckpt.pt"]


def test_cluster_killed_after_training_resumes_without_retraining(finished, synth_small):
    """What a `cluster` killed while training its encoder leaves: a finished FineGAN, no
    encoder (written atomically, so absent), no results. The same command continues."""
    ckpt = (finished / "model" / CHECKPOINT).read_bytes()
    for name in ("assignments.csv", "clusters.json", "metrics.json", "model/encoder.pt"):
        (finished / name).unlink()
    shutil.rmtree(finished / "embeddings")
    r = run(*cluster_args(synth_small, finished))
    assert r.exit_code == 0, r.output
    assert "training FineGAN" not in r.output and "training the inverse encoder" in r.output
    assert (finished / "model" / CHECKPOINT).read_bytes() == ckpt
    assert (finished / "assignments.csv").exists()


def test_finished_means_the_checkpoint_step_not_the_log(tmp_path):
    """A run killed between logging its last step and writing its last checkpoint is not
    finished, whatever log.jsonl says."""
    from fgdiscover.pipeline import _finished

    images, boxes = tiny_data()
    train_gan(images, boxes, tmp_path, TINY, progress=False, stop_after=2)
    with open(tmp_path / "log.jsonl", "a") as log:
        log.write(json.dumps({"step": TINY.iters}) + "\n" + '{"step": 3, "d_b')  # cut short
    assert not _finished(tmp_path, TINY)
    train_gan(images, boxes, tmp_path, TINY, progress=False, resume=True)
    assert _finished(tmp_path, TINY)
    steps = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, TINY.iters + 1))


# ------------------------------------------------------------------- 4. safe loading


class Payload:
    """Pickles to a call that creates ``marker``: what a malicious model file does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    evil = {"format": gan_mod.CHECKPOINT_FORMAT, "config": json.dumps(TINY.to_json()),
            "generator": Payload(marker)}
    torch.save(evil, run_dir / CHECKPOINT)
    torch.save({"format": "fgdiscover-encoder-1", "dims": Payload(marker)},
               run_dir / "encoder.pt")
    with pytest.raises(FGDError, match="refused to load .*nothing in it was run"):
        load_finegan(run_dir)
    with pytest.raises(FGDError, match="refused to load"):
        load_encoder(run_dir / "encoder.pt")
    one_line_error(run("generate", run_dir), "refused to load")
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    torch.load(run_dir / CHECKPOINT, weights_only=False)
    assert marker.is_dir()


def test_checkpoints_load_with_weights_only_and_a_validated_config(tmp_path, finished):
    shutil.copytree(finished / "model/checkpoints", tmp_path / "checkpoints")
    path = tmp_path / CHECKPOINT
    ckpt = torch.load(path, weights_only=True)  # nothing but tensors and plain values
    assert isinstance(ckpt["config"], str)
    for change, message in [({"n_child": "4"}, "must be int"), ({"lr": True}, "must be float"),
                            ({"betas": [0.5]}, "betas"), ({"bogus": 1}, "unknown settings"),
                            ({"seed": None}, "must be int")]:
        bad = dict(ckpt, config=json.dumps({**json.loads(ckpt["config"]), **change}))
        torch.save(bad, tmp_path / "bad.pt")
        shutil.copy(tmp_path / "bad.pt", path)
        with pytest.raises(FGDError, match=message):
            load_finegan(tmp_path)
    cfg = TINY.to_json()
    del cfg["ngf"]
    with pytest.raises(FGDError, match="missing from config: ngf"):
        GANConfig.from_json(cfg)
    # a format-1 checkpoint (numpy arrays inside) is refused with a clear message
    torch.save({"format": "fgdiscover-finegan-1", "rng": {"order": np.arange(3)}}, path)
    with pytest.raises(FGDError, match="refused to load .*older fgdiscover"):
        load_finegan(tmp_path)


def test_encoder_checkpoint_is_validated(tmp_path, finished):
    enc = torch.load(finished / "model/encoder.pt", weights_only=True)
    for dims in ({**enc["dims"], "width": -1}, {**enc["dims"], "extra": 1},
                 {k: v for k, v in enc["dims"].items() if k != "width"}, "not a dict"):
        torch.save({**enc, "dims": dims}, tmp_path / "e.pt")
        with pytest.raises(FGDError, match="invalid encoder dimensions"):
            load_encoder(tmp_path / "e.pt")
    torch.save({**enc, "dims": {**enc["dims"], "feature_dim": 5}}, tmp_path / "e.pt")
    with pytest.raises(FGDError, match="do not fit"):
        load_encoder(tmp_path / "e.pt")


# ----------------------------------------------------------------- 5. training health


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    images, boxes = tiny_data()
    cfg = TINY.replace(iters=6, checkpoint_every=2)
    calls = []
    real_info_loss = gan_mod.info_loss

    def poisoned(logits, codes):  # two calls per step (parent, child): step 3's parent term
        calls.append(1)
        loss = real_info_loss(logits, codes)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(gan_mod, "info_loss", poisoned)
    with pytest.raises(FGDError, match=r"diverged at step 3 \(info_p=nan\).*last good"):
        train_gan(images, boxes, tmp_path, cfg, progress=False)
    m, _, ckpt = load_finegan(tmp_path)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in m.state_dict().values())
    steps = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_gpu_style_loss_reads_catch_nan_by_the_next_check(tmp_path, monkeypatch):
    """On a GPU the losses stay on the device between log / checkpoint steps (no wait per
    step): a NaN at step 3 is caught at step 4, before its checkpoint; the result of a run
    without NaN is the same as with a read at every step."""
    images, boxes = tiny_data()
    cfg = TINY.replace(iters=4, checkpoint_every=2, log_every=2)
    train_gan(images, boxes, tmp_path / "eager", cfg, progress=False)
    monkeypatch.setattr(gan_mod, "reads_losses_every_step", lambda device: False)
    train_gan(images, boxes, tmp_path / "lazy", cfg, progress=False)
    eager, lazy = (load_finegan(tmp_path / d)[0].state_dict() for d in ("eager", "lazy"))
    assert all(torch.equal(eager[k], lazy[k]) for k in eager)

    calls = []
    real_info_loss = gan_mod.info_loss

    def poisoned(logits, codes):
        calls.append(1)
        loss = real_info_loss(logits, codes)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(gan_mod, "info_loss", poisoned)
    with pytest.raises(FGDError,
                       match=r"diverged (at step 4|after step 2, by step 4).*last good"):
        train_gan(images, boxes, tmp_path / "nan", cfg, progress=False)
    assert load_finegan(tmp_path / "nan")[2]["step"] == 2


def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    """The EMA generator feeds no loss: an overflow there shows only in the weights."""
    images, boxes = tiny_data()
    cfg = TINY.replace(iters=6, checkpoint_every=2)
    steps = []
    real_accumulate = gan_mod.accumulate

    def overflowing(ema, model, decay):
        real_accumulate(ema, model, decay)
        steps.append(1)
        if len(steps) == 3:
            next(ema.parameters()).data.fill_(float("inf"))

    monkeypatch.setattr(gan_mod, "accumulate", overflowing)
    with pytest.raises(FGDError, match="step 4 \\(non-finite weights\\)"):
        train_gan(images, boxes, tmp_path, cfg, progress=False)
    assert load_finegan(tmp_path)[2]["step"] == 2


def test_collapse_indicator_is_logged_and_leaves_training_untouched(finished, monkeypatch):
    for line in (finished / "model/log.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert 0 <= row["codes_recovered"] <= TINY.n_child and 0 <= row["code_acc"] <= 1
    torch.manual_seed(0)
    m = build_finegan(TINY).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng_state = torch.get_rng_state()
    child_code_recovery(m, TINY, "cpu")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng_state) and m.d_child.training
    # a code head that always answers child 0: one code recovered out of n_child
    monkeypatch.setattr(m.d_child, "code_logits",
                        lambda x: torch.nn.functional.one_hot(
                            torch.zeros(len(x), dtype=torch.long), TINY.n_child).float())
    health = child_code_recovery(m, TINY, "cpu")
    assert health == {"codes_recovered": 1, "code_acc": 1 / TINY.n_child}
