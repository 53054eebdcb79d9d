"""FineGAN training: steps change weights, losses stay finite, checkpoints resume exactly."""

import json

import numpy as np
import pytest
import torch

from fgdiscover.errors import FGDError
from fgdiscover.models.codes import sample_codes
from fgdiscover.train.config import GANConfig, preset
from fgdiscover.train.gan import (BatchSampler, build_finegan, fill_missing_boxes, load_finegan,
                                  make_optimizers, mine_hard_codes, train_gan, train_step)

TINY = preset("tiny")


def tiny_data(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    boxes = np.tile(np.float32([[4, 4, 8, 8]]), (n, 1))
    boxes[::3] = np.nan  # some images without a box
    return images, boxes


def test_train_step_changes_weights_and_keeps_losses_finite():
    torch.manual_seed(0)
    m = build_finegan(TINY)
    opt = make_optimizers(m, TINY)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    boxes = fill_missing_boxes(torch.tensor([[4.0, 4, 8, 8]] * 4), 16, TINY.border_band)
    for _ in range(2):
        codes = sample_codes(4, n_parent=2, n_child=4, z_dim=TINY.z_dim)
        losses = train_step(m, opt, real, boxes, codes, TINY)
    assert all(np.isfinite(v) for v in losses.values())
    after = m.state_dict()
    for prefix in ("generator.", "generator_ema.", "d_background.", "d_parent.", "d_child."):
        changed = [k for k in before if k.startswith(prefix) and k.endswith("weight")
                   and not torch.equal(before[k], after[k])]
        assert changed, f"no weight of {prefix} changed"



def test_batched_discriminator_passes_give_the_same_step():
    """One pass over real + fake (or over both inputs of D_c's two heads) is the same
    computation as two passes: same losses, same updated weights. In eval mode, so that
    the spectral norm's power iteration (once per pass in training) runs in neither."""
    cfg = TINY.replace(d_norm="spectral")
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    boxes = fill_missing_boxes(torch.tensor([[4.0, 4, 8, 8]] * 4), 16, cfg.border_band)
    results = []
    for batched in (False, True):
        torch.manual_seed(0)
        m = build_finegan(cfg).eval()
        opt = make_optimizers(m, cfg)
        codes = sample_codes(4, n_parent=cfg.n_parent, n_child=cfg.n_child, z_dim=cfg.z_dim,
                             generator=torch.Generator().manual_seed(1))
        losses = [train_step(m, opt, real, boxes, codes, cfg, batched=batched)
                  for _ in range(2)]
        results.append((losses, m.state_dict()))
    (l0, w0), (l1, w1) = results
    for a, b in zip(l0, l1):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5)
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=1e-4, atol=1e-5)

def test_missing_boxes_become_the_central_box():
    boxes = torch.tensor([[1.0, 2, 3, 4], [float("nan")] * 4])
    out = fill_missing_boxes(boxes, 32, 0.25)
    assert out.tolist() == [[1, 2, 3, 4], [8, 8, 16, 16]]


def test_hard_negatives_are_the_worst_recognised_codes():
    torch.manual_seed(0)
    m = build_finegan(TINY)
    cfg = TINY.replace(hard_negative_factor=5)
    hard = mine_hard_codes(m, 3, cfg, torch.Generator().manual_seed(1), "cpu")
    pool = mine_hard_codes(m, 15, cfg.replace(hard_negative_factor=1),
                           torch.Generator().manual_seed(1), "cpu")
    assert len(hard) == 3
    # the same pool of 15 was drawn (same seed), so the 3 hardest are its first 3
    assert torch.equal(hard.c, pool.c[:3]) and torch.equal(hard.z, pool.z[:3])


def test_batch_sampler_flips_boxes_with_images():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[:, :, :2] = 255  # left columns bright
    boxes = np.float32([[0, 0, 2, 8]] * 2)
    s = BatchSampler(images, boxes, 2, seed=0)
    for _ in range(10):
        imgs, bb = s.next()
        for im, b in zip(imgs, bb):
            x0, w = int(b[0]), int(b[2])
            assert (im[:, x0:x0 + w] == 255).all()


def test_checkpoint_resume_continues_at_the_same_step(tmp_path):
    images, boxes = tiny_data()
    cfg = TINY.replace(iters=4, checkpoint_every=2)
    train_gan(images, boxes, tmp_path / "straight", cfg, progress=False)
    train_gan(images, boxes, tmp_path / "split", cfg, progress=False, stop_after=2)
    half = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert half["step"] == 2
    # an interrupted run may have logged steps past its checkpoint: they are dropped
    with open(tmp_path / "split/log.jsonl", "a") as log:
        log.write(json.dumps({"step": 3, "d_bg": 0.0}) + "\n")
    train_gan(images, boxes, tmp_path / "split", cfg, progress=False, resume=True)
    a, _, ca = load_finegan(tmp_path / "straight")
    b, _, cb = load_finegan(tmp_path / "split")
    assert ca["step"] == cb["step"] == 4
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    steps = [json.loads(line)["step"] for line in open(tmp_path / "split/log.jsonl")]
    assert steps == [1, 2, 3, 4]
    assert GANConfig.from_json(json.load(open(tmp_path / "split/config.json"))) == cfg


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    images, boxes = tiny_data()
    train_gan(images, boxes, tmp_path, TINY, progress=False)
    stamp = (tmp_path / "checkpoints/last.pt").stat().st_mtime_ns
    with pytest.raises(FGDError, match="--resume"):
        train_gan(images, boxes, tmp_path, TINY, progress=False)
    assert (tmp_path / "checkpoints/last.pt").stat().st_mtime_ns == stamp


def test_resume_refuses_changed_settings(tmp_path):
    images, boxes = tiny_data()
    train_gan(images, boxes, tmp_path, TINY, progress=False, stop_after=1)
    with pytest.raises(FGDError, match="other settings"):
        train_gan(images, boxes, tmp_path, TINY.replace(lr=1e-3), progress=False, resume=True)


def test_config_validation_and_short_runs():
    with pytest.raises(FGDError, match="multiple"):
        GANConfig(n_parent=3, n_child=10)
    assert preset("cpu").replace(iters=50).hard_negative_iters == 5  # 100 > 50: a tenth
    with pytest.raises(FGDError, match="unknown preset"):
        preset("huge")
