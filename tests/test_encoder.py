"""The inverse encoder: it learns FineGAN's codes; the real-image phase's pieces."""

import dataclasses

import numpy as np
import torch

from fgdiscover.models.codes import sample_codes
from fgdiscover.models.encoder import paste_objects
from fgdiscover.train.config import preset
from fgdiscover.train.encoder import ENCODER_PRESETS, load_encoder, nt_xent, train_encoder
from fgdiscover.train.gan import build_finegan

TINY = preset("tiny")


def test_encoder_learns_the_codes_of_generated_images(tmp_path):
    torch.manual_seed(0)
    gan = build_finegan(TINY).eval()
    cfg = dataclasses.replace(ENCODER_PRESETS["tiny"], iters=150, batch_size=32, width=8,
                              feature_dim=16, real_iters=0, lr=1e-3)
    enc = train_encoder(gan, tmp_path / "e.pt", cfg, progress=False)
    g = gan.generator_ema
    codes = sample_codes(256, n_parent=g.n_parent, n_child=g.n_child, z_dim=g.z_dim,
                         tie_background=False, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        _, p_logits, c_logits = enc(g(codes.z, codes.b, codes.p, codes.c)["child"])
    # fresh samples, not the training batches; chance is 1/2 and 1/4
    assert (p_logits.argmax(1) == codes.p).float().mean() > 0.9
    assert (c_logits.argmax(1) == codes.c).float().mean() > 0.75
    assert torch.equal(load_encoder(tmp_path / "e.pt").child_head.weight, enc.child_head.weight)


def test_real_image_phase_changes_the_embedding(tmp_path):
    torch.manual_seed(0)
    gan = build_finegan(TINY).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    boxes = np.tile(np.float32([[2, 3, 8, 6]]), (10, 1))
    boxes[::2] = np.nan  # only boxed images take part
    cfg = ENCODER_PRESETS["tiny"]
    fake_only = train_encoder(gan, tmp_path / "a.pt", dataclasses.replace(cfg, real_iters=0),
                              real_images=images, boxes=boxes, progress=False)
    both = train_encoder(gan, tmp_path / "b.pt", cfg, real_images=images, boxes=boxes,
                         progress=False)
    # the same fake phase (same seed), then the real phase moved the trunk
    assert not torch.equal(fake_only.trunk[0].weight, both.trunk[0].weight)
    assert torch.equal(load_encoder(tmp_path / "b.pt").trunk[0].weight, both.trunk[0].weight)


def test_real_image_phase_is_skipped_without_boxes(tmp_path):
    gan = build_finegan(TINY).eval()
    images = np.zeros((4, 16, 16, 3), np.uint8)
    said = []
    train_encoder(gan, tmp_path / "e.pt", ENCODER_PRESETS["tiny"], real_images=images,
                  boxes=np.full((4, 4), np.nan, np.float32), progress=False, log=said.append)
    assert len(said) == 1 and "no object boxes" in said[0]


def test_paste_objects_moves_the_box_onto_the_background():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    backgrounds = torch.full((2, 3, 8, 8), -5.0)
    boxes = torch.tensor([[1.0, 2.0, 3.0, 2.0], [0.0, 0.0, 8.0, 8.0]])
    out = paste_objects(images, boxes, backgrounds, torch.Generator().manual_seed(0))
    # image 0: exactly a 3x2 box of its pixels (maybe mirrored), the rest background
    pasted = out[0] != -5.0
    assert pasted.sum() == 3 * 3 * 2
    ys, xs = pasted[0].nonzero(as_tuple=True)
    patch = out[0, :, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = images[0, :, 2:4, 1:4]
    assert torch.equal(patch, box) or torch.equal(patch, box.flip(-1))
    # image 1: the box is the whole image, so nothing of the background is left
    assert torch.equal(out[1], images[1]) or torch.equal(out[1], images[1].flip(-1))


def test_paste_objects_resizes_by_the_drawn_factor():
    images = torch.rand(6, 3, 16, 16)
    boxes = torch.tensor([[2.0, 2.0, 8.0, 6.0]]).repeat(6, 1)
    out = paste_objects(images, boxes, torch.full((6, 3, 16, 16), -5.0),
                        torch.Generator().manual_seed(0), scale=(1.5, 1.5))
    for i in range(6):  # 8 x 6 -> 12 x 9
        assert (out[i, 0] != -5.0).sum() == 12 * 9
    big = paste_objects(images, torch.tensor([[0.0, 0.0, 16.0, 16.0]]).repeat(6, 1),
                        torch.zeros(6, 3, 16, 16), scale=(2.0, 2.0))
    assert big.shape == (6, 3, 16, 16)  # never larger than the image


def test_nt_xent_prefers_matching_views():
    torch.manual_seed(0)
    a = torch.randn(16, 8)
    matched = nt_xent(a, a + 0.01 * torch.randn(16, 8), 0.2)
    shuffled = nt_xent(a, a[torch.randperm(16)], 0.2)
    assert matched < 1.0 < 2.0 < shuffled
    assert torch.isfinite(nt_xent(a[:1], a[:1], 0.2))
