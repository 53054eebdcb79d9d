"""FineGAN networks: shapes, masks, tied codes, stitching, patch geometry."""

import pytest
import torch

from fgdiscover.models.codes import children_per_parent, parent_of, sample_codes
from fgdiscover.models.discriminators import (PATCH_LAYERS, CodeDiscriminator,
                                              PatchDiscriminator, PatchGeometry)
from fgdiscover.models.generator import FineGANGenerator, stitch


def test_tied_codes_map_child_to_parent_by_integer_division():
    assert parent_of(torch.arange(12), 4, 12).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert parent_of(torch.tensor([199, 10, 9]), 20, 200).tolist() == [19, 1, 0]
    with pytest.raises(ValueError):
        children_per_parent(3, 10)


def test_sampled_codes_are_tied_and_background_follows_child_in_training():
    codes = sample_codes(500, n_parent=4, n_child=12, z_dim=7,
                         generator=torch.Generator().manual_seed(0))
    assert codes.z.shape == (500, 7)
    assert torch.equal(codes.p, codes.c // 3)
    assert torch.equal(codes.b, codes.c)
    assert set(codes.c.tolist()) == set(range(12))
    free = sample_codes(500, n_parent=4, n_child=12, n_background=5, tie_background=False,
                        generator=torch.Generator().manual_seed(0))
    assert free.b.max() == 4 and not torch.equal(free.b[:12], free.c[:12])


def test_stitch_is_alpha_compositing():
    fg, behind = torch.full((1, 3, 2, 2), 1.0), torch.full((1, 3, 2, 2), -1.0)
    mask = torch.tensor([0.0, 0.25, 1.0, 0.5]).view(1, 1, 2, 2)
    out = stitch(mask, fg, behind)
    # 0.25 * 1 + 0.75 * -1 = -0.5; 0.5 * 1 + 0.5 * -1 = 0
    assert out[0, 0].flatten().tolist() == [-1.0, -0.5, 1.0, 0.0]


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_generator_shapes_masks_and_stitching(resolution):
    torch.manual_seed(0)
    g = FineGANGenerator(resolution=resolution, n_parent=2, n_child=6, z_dim=8, ngf=4, n_res=1)
    codes = sample_codes(3, n_parent=2, n_child=6, z_dim=8)
    out = g(codes.z, codes.b, codes.p, codes.c)
    for key in ("background", "parent_fg", "parent", "child_fg", "child"):
        assert out[key].shape == (3, 3, resolution, resolution)
        assert out[key].min() >= -1 and out[key].max() <= 1
    for key in ("parent_mask", "child_mask"):
        assert out[key].shape == (3, 1, resolution, resolution)
        assert 0 <= out[key].min() and out[key].max() <= 1
    pm, cm = out["parent_mask"], out["child_mask"]
    parent = pm * out["parent_fg"] + (1 - pm) * out["background"]
    assert torch.allclose(out["parent"], parent)
    assert torch.allclose(out["child"], cm * out["child_fg"] + (1 - cm) * parent)


def test_generator_codes_change_the_image():
    torch.manual_seed(0)
    g = FineGANGenerator(resolution=16, n_parent=2, n_child=4, z_dim=8, ngf=4, n_res=1).eval()
    z = torch.randn(1, 8).expand(2, 8)
    with torch.no_grad():
        a = g(z, torch.tensor([0, 3]), torch.tensor([0, 0]), torch.tensor([0, 0]))
        b = g(z, torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert not torch.allclose(a["background"][0], a["background"][1])  # b differs
    assert torch.allclose(a["parent_fg"][0], a["parent_fg"][1])        # p same
    assert not torch.allclose(b["parent_fg"][0], b["parent_fg"][1])    # p differs


def test_paper_patch_geometry_matches_finegan():
    geo = PatchGeometry.of(PATCH_LAYERS[128], 128)
    assert (geo.grid, geo.field, geo.jump) == (24, 34, 4)
    d = PatchDiscriminator(resolution=128, ndf=4)
    rf, bg = d(torch.randn(1, 3, 128, 128))
    assert rf.shape == bg.shape == (1, 1, 24, 24)


@pytest.mark.parametrize("resolution", sorted(PATCH_LAYERS))
def test_patch_discriminator_grid_matches_geometry(resolution):
    d = PatchDiscriminator(resolution=resolution, ndf=2)
    rf, _ = d(torch.randn(2, 3, resolution, resolution))
    assert rf.shape[-1] == d.geometry.grid > 1


def test_object_overlap_by_hand():
    geo = PatchGeometry(field=8, jump=2, grid=13)
    # box x in [0, 4), y in [10, 12): cells i see [2i, 2i + 8)
    overlap = geo.object_overlap(torch.tensor([[0.0, 10.0, 4.0, 2.0]]))[0, 0]
    # x: 2i < 4 -> i in {0, 1}; y: 2i < 12 and 10 < 2i + 8 -> i in {2, 3, 4, 5}
    expected = torch.zeros(13, 13, dtype=torch.bool)
    expected[2:6, 0:2] = True
    assert torch.equal(overlap, expected)


def test_code_discriminator_heads():
    d = CodeDiscriminator(resolution=32, n_codes=5, ndf=4)
    x = torch.randn(3, 3, 32, 32)
    assert d.code_logits(x).shape == (3, 5)
    assert d.real_fake_logits(x).shape == (3,)
    assert CodeDiscriminator(resolution=32, n_codes=5, ndf=4, adversarial=False).real_fake is None


def test_child_mask_confined_to_parent_mask_unless_faithful():
    torch.manual_seed(0)
    kw = dict(resolution=16, n_parent=2, n_child=4, z_dim=8, ngf=4, n_res=1)
    codes = sample_codes(3, n_parent=2, n_child=4, z_dim=8)
    out = FineGANGenerator(**kw)(codes.z, codes.b, codes.p, codes.c)
    assert (out["child_mask"] <= out["parent_mask"] + 1e-6).all()
    free = FineGANGenerator(**kw, child_within_parent=False)(codes.z, codes.b, codes.p, codes.c)
    assert (free["child_mask"] > free["parent_mask"] + 1e-3).any()


def test_ema_decay_ramps_up_to_its_ceiling():
    from fgdiscover.models.finegan import accumulate, ema_decay

    assert ema_decay(0, 0.999) == 0.1
    assert ema_decay(10**6, 0.999) == 0.999
    ema, live = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    torch.nn.init.constant_(ema.weight, 0.0)
    torch.nn.init.constant_(live.weight, 1.0)
    accumulate(ema, live, 0.75)
    assert abs(ema.weight.item() - 0.25) < 1e-6
