"""Tests for guidance/optimize.py (paper Sec. 3.3): the loss goes down on the tiny random U-Net, the
optimiser is fresh at every call, AdamW's settings, the skip when no box is visible, gradient scaling."""
import numpy as np
import pytest
import torch

from guidance.features import extract_features
from guidance.loss import trajectory_loss
from guidance.optimize import optimize_latent
from tests.guidance_helpers import moving_box, noisy_latent, random_cond, tiny_unet


def unet_features(latent, sigma):
    unet, cond = tiny_unet(), random_cond()
    return lambda z: extract_features(unet, z, sigma, cond)


def test_optimisation_lowers_the_loss_and_is_repeatable():
    latent, sigma = noisy_latent(step=5)
    before = latent.clone()
    features_of = unet_features(latent, sigma)
    z1, losses1 = optimize_latent(features_of, latent, moving_box(), iterations=5, lr=0.21)
    assert len(losses1) == 5 and all(b < a for a, b in zip(losses1, losses1[1:]))
    with torch.no_grad():
        final = trajectory_loss(features_of(z1), moving_box()).item()
    assert final < losses1[-1]
    assert torch.equal(latent, before)                                   # the input is not modified
    assert z1.dtype == torch.float32 and not z1.requires_grad and z1.shape == latent.shape
    # a fresh optimiser at each call: the same inputs give the same result (state carried over would not)
    z2, losses2 = optimize_latent(features_of, latent, moving_box(), iterations=5, lr=0.21)
    assert torch.equal(z1, z2) and losses1 == losses2


def smooth_features(z):                                                  # (1, F, 4, h, w) -> (F, h, w, 4)
    return torch.sin(z[0]).permute(0, 2, 3, 1)


def test_matches_a_plain_torch_adamw_loop_with_default_settings():
    latent = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    ours, losses = optimize_latent(smooth_features, latent, moving_box(), iterations=4, lr=0.21)
    z = latent.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([z], lr=0.21)                          # betas (0.9, 0.999), eps 1e-8, wd 0.01
    expected = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = trajectory_loss(smooth_features(z), moving_box())
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert torch.allclose(ours, z.detach(), atol=1e-6) and losses == pytest.approx(expected)
    # weight decay touches every element, also those far from the boxes: z * (1 - lr * 0.01)^4 there
    assert torch.allclose(ours[0, 0, :, 7, 7], latent[0, 0, :, 7, 7] * (1 - 0.21 * 0.01) ** 4)


def test_gradient_scaling_does_not_change_the_result():
    latent = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    plain, _ = optimize_latent(smooth_features, latent, moving_box(), iterations=3)
    scaled, _ = optimize_latent(smooth_features, latent, moving_box(), iterations=3, scale_gradients=True)
    assert torch.equal(plain, scaled)                                    # the scale is a power of two


def test_no_visible_box_means_no_step_at_all():
    def must_not_run(z):
        raise AssertionError("no forward pass is needed when no box is visible")
    boxes = np.array([[[2, 2, 4, 4], [2, 9, 4, 11], [2, 12, 4, 14], [-5, -5, -1, -1]]])   # 8x8 latent
    latent = torch.randn(1, 4, 4, 8, 8, dtype=torch.float16)
    z, losses = optimize_latent(must_not_run, latent, boxes)
    assert losses == [] and z.dtype == torch.float32 and torch.equal(z, latent.float())
