"""Pure loss functions against hand-computed values."""

import math

import torch

from fgdiscover.train.losses import (code_log_likelihood, d_adversarial_loss, d_patch_loss,
                                     g_adversarial_loss, info_loss)


def test_patch_loss_ignores_object_patches_and_renormalises():
    real = torch.tensor([0.0, 100.0, -100.0, 0.0]).view(1, 1, 2, 2)
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2)   # patch 2 overlaps the object
    fake = torch.zeros(1, 1, 2, 2)
    # real term: (log 2 + ~0 + log 2) / 3 unmasked patches; fake term: log 2
    expected = 2 * math.log(2) / 3 + math.log(2)
    assert abs(d_patch_loss(real, fake, weight).item() - expected) < 1e-5


def test_adversarial_losses():
    assert abs(d_adversarial_loss(torch.zeros(4), torch.zeros(4)).item() - 2 * math.log(2)) < 1e-6
    assert g_adversarial_loss(torch.full((3,), 50.0)).item() < 1e-6
    assert g_adversarial_loss(torch.full((3,), -50.0)).item() > 49


def test_info_loss_is_cross_entropy_and_ranks_codes():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    codes = torch.tensor([0, 0])
    ll = code_log_likelihood(logits, codes)
    assert ll[0] > ll[1]
    assert abs(info_loss(logits, codes).item() + ll.mean().item()) < 1e-6


def test_mask_area_hinge_is_zero_inside_the_band():
    from fgdiscover.train.losses import mask_area_loss

    half = torch.zeros(2, 1, 4, 4)
    half[:, :, :2] = 1.0                        # area 0.5
    assert mask_area_loss(half, 0.1, 0.7).item() == 0.0
    full = torch.ones(1, 1, 4, 4)               # area 1.0 -> 0.3 over the top
    assert abs(mask_area_loss(full, 0.1, 0.7).item() - 0.3) < 1e-6
    empty = torch.zeros(1, 1, 4, 4)             # area 0 -> 0.1 under the bottom
    assert abs(mask_area_loss(empty, 0.1, 0.7).item() - 0.1) < 1e-6


def test_mask_binary_loss():
    from fgdiscover.train.losses import mask_binary_loss

    assert mask_binary_loss(torch.tensor([0.0, 1.0])).item() == 0.0
    assert abs(mask_binary_loss(torch.tensor([0.5, 0.2])).item() - 0.35) < 1e-6
