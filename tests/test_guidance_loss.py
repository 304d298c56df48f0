"""Tests for guidance/loss.py (paper Eq. 1): heatmap values, zero loss along the trajectory, boxes
leaving the latent (against a slow per-pixel reference written here), gradients."""
import math

import numpy as np
import pytest
import torch

from guidance.loss import gaussian_heatmap, has_visible_box, trajectory_loss, uniform_heatmap
from guidance.trajectory import Trajectories, latent_boxes

H, W, C, F = 12, 16, 3, 4


# ---------------------------------------------------------------------------------------------
# Heatmap


def test_heatmap_is_one_at_the_centre_and_exp_minus_half_one_sigma_away():
    g = gaussian_heatmap(5, 15)          # sigma_y = 0.2 * 5 = 1 cell, sigma_x = 0.2 * 15 = 3 cells
    assert g.shape == (5, 15) and g.dtype == torch.float32
    assert g[2, 7] == 1.0 and g.max() == 1.0                            # cell centres 2.5, 7.5
    assert g[2, 10].item() == pytest.approx(math.exp(-0.5), rel=1e-6)  # 3 cells = 1 sigma in x
    assert g[2, 4].item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert g[3, 7].item() == pytest.approx(math.exp(-0.5), rel=1e-6)   # 1 cell = 1 sigma in y
    assert g[4, 13].item() == pytest.approx(math.exp(-0.5 * (4 + 4)), rel=1e-6)  # 2 sigma each


def test_heatmap_sigma_is_a_fifth_of_the_box_size():
    g = gaussian_heatmap(25, 5)          # sigma_y = 5 cells, sigma_x = 1 cell
    assert g[17, 2].item() == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert g[12, 3].item() == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_heatmap_even_and_tiny_sizes():
    assert torch.equal(gaussian_heatmap(1, 1), torch.ones(1, 1))
    assert torch.equal(gaussian_heatmap(2, 2), torch.ones(2, 2))       # four centre cells tie at 1
    g = gaussian_heatmap(1, 4)           # x offsets -1.5, -0.5, 0.5, 1.5; sigma_x = 0.8
    expected = [math.exp(-0.5 * (1.5 ** 2 - 0.5 ** 2) / 0.8 ** 2), 1.0, 1.0,
                math.exp(-0.5 * (1.5 ** 2 - 0.5 ** 2) / 0.8 ** 2)]
    np.testing.assert_allclose(g[0].numpy(), expected, rtol=1e-6)


def reference_heatmap(h, w, heatmap_sigma=0.4):
    """The reference's formula written out per pixel (normalising constant included)."""
    sx, sy = heatmap_sigma * (w / 2), heatmap_sigma * (h / 2)
    g = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            g[y, x] = 1 / (2 * np.pi * sx * sy) * np.exp(
                -0.5 * ((x + 0.5 - w / 2) ** 2 / sx ** 2 + (y + 0.5 - h / 2) ** 2 / sy ** 2))
    return (g / g.max()).astype(np.float32)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 2), (3, 7), (8, 8), (9, 14)])
def test_heatmap_matches_reference_formula(h, w):
    np.testing.assert_allclose(gaussian_heatmap(h, w).numpy(), reference_heatmap(h, w), rtol=1e-6)


def test_uniform_heatmap():
    assert torch.equal(uniform_heatmap(3, 4), torch.ones(3, 4))


# ---------------------------------------------------------------------------------------------
# Loss


def slow_loss(features, boxes, gaussian=True):
    """Eq. 1 pixel by pixel, in float64: the bilinear resize (align_corners=False) and the clip are
    written out by hand; a cell counts when it is inside the latent."""
    features = features.detach().double().numpy()
    num_frames, h, w, _ = features.shape
    numerator = denominator = 0.0
    for n in range(1, num_frames):
        for frames in boxes:
            t0, l0, b0, r0 = frames[0]
            patch = features[0, t0:b0, l0:r0]                           # (hi, wi, C)
            hi, wi = patch.shape[:2]
            top, left, bottom, right = frames[n]
            ho, wo = bottom - top, right - left
            weights = reference_heatmap(ho, wo) if gaussian else np.ones((ho, wo))
            for i in range(ho):
                for j in range(wo):
                    y, x = top + i, left + j
                    if not (0 <= y < h and 0 <= x < w):
                        continue
                    sy = max((i + 0.5) * hi / ho - 0.5, 0.0)
                    sx = max((j + 0.5) * wi / wo - 0.5, 0.0)
                    y0, x0 = int(sy), int(sx)
                    y1, x1 = min(y0 + 1, hi - 1), min(x0 + 1, wi - 1)
                    ly, lx = sy - y0, sx - x0
                    target = ((1 - ly) * (1 - lx) * patch[y0, x0] + (1 - ly) * lx * patch[y0, x1]
                              + ly * (1 - lx) * patch[y1, x0] + ly * lx * patch[y1, x1])
                    error = np.mean((features[n, y, x] - target) ** 2)
                    numerator += weights[i, j] * error
                    denominator += weights[i, j]
    return numerator / max(denominator, 1e-8)


# box 0: 4x5 cells, moves by whole cells and in frame 3 partly leaves the latent (bottom-right);
# box 1: 3x3 cells, its latent size changes between frames and it partly leaves at the top-left.
BOXES = [
    [[2, 3, 6, 8], [3, 5, 7, 10], [5, 2, 9, 7], [10, 13, 14, 18]],
    [[1, 1, 4, 4], [0, -1, 4, 3], [-2, 2, 1, 4], [6, 9, 8, 11]],
]


def pasted_features(seed=0):
    """Random features in which box 0's frame-0 content is pasted at its box of every frame."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(F, H, W, C, generator=g)
    top, left, bottom, right = BOXES[0][0]
    patch = features[0, top:bottom, left:right].clone()
    for n in range(1, F):
        top, left, bottom, right = BOXES[0][n]
        rows = slice(max(top, 0), min(bottom, H))
        cols = slice(max(left, 0), min(right, W))
        features[n, rows, cols] = patch[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
    return features


def test_loss_is_zero_when_features_move_along_the_trajectory():
    features = pasted_features()
    assert trajectory_loss(features, [BOXES[0]]).item() == 0.0
    assert trajectory_loss(features, [BOXES[0]], weighting="uniform").item() == 0.0


def test_loss_is_positive_when_a_moved_box_differs():
    features = pasted_features()
    features[2, 6, 4] += 1.0                                            # inside box 0 of frame 2
    assert trajectory_loss(features, [BOXES[0]]).item() > 1e-4


def test_loss_ignores_cells_outside_the_boxes_and_the_latent():
    features = pasted_features()
    features[1, 0, 0] += 5.0                                            # outside every box
    features[3, 11, 12] += 5.0                                          # left of box 0 in frame 3
    features[0, 11, 0] += 5.0                                           # frame 0, outside the box
    assert trajectory_loss(features, [BOXES[0]]).item() == 0.0


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
def test_loss_matches_slow_reference_with_partly_outside_boxes(weighting):
    features = torch.randn(F, H, W, C, generator=torch.Generator().manual_seed(1))
    got = trajectory_loss(features, BOXES, weighting=weighting).item()
    expected = slow_loss(features, BOXES, gaussian=weighting == "gaussian")
    assert got == pytest.approx(expected, rel=1e-5)


def test_boxes_entirely_outside_contribute_nothing():
    features = torch.randn(F, H, W, C, generator=torch.Generator().manual_seed(2))
    inside = [BOXES[0][0], BOXES[0][1], BOXES[0][2], BOXES[0][1]]
    outside = [BOXES[0][0], BOXES[0][1], BOXES[0][2], [-9, 3, -5, 8]]   # frame 3 above the latent
    frames_1_2 = trajectory_loss(features[:3], [inside[:3]])
    assert trajectory_loss(features, [outside]).item() == pytest.approx(frames_1_2.item(), rel=1e-6)
    assert trajectory_loss(features, [inside]).item() != pytest.approx(frames_1_2.item(), rel=1e-3)


def test_no_visible_box_gives_zero_loss_and_a_usable_graph():
    features = torch.randn(F, H, W, C, requires_grad=True)
    gone = [[[2, 3, 6, 8], [12, 0, 14, 2], [0, 16, 2, 20], [-3, -3, 0, 0]]]
    assert not has_visible_box(gone, H, W)
    assert has_visible_box(BOXES, H, W)
    loss = trajectory_loss(features, gone)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(features.grad) == 0


def test_gradient_reaches_later_frames_inside_boxes_only():
    features = torch.randn(F, H, W, C, requires_grad=True)
    trajectory_loss(features, [BOXES[0]]).backward()
    grad = features.grad.abs().sum(-1)                                  # (F, H, W)
    assert torch.count_nonzero(grad[0]) == 0                            # the target is detached
    assert (grad[1, 3:7, 5:10] > 0).all()
    outside = grad[1].clone()
    outside[3:7, 5:10] = 0
    assert torch.count_nonzero(outside) == 0                            # nothing outside the box
    assert (grad[3, 10:12, 13:16] > 0).all()                            # clipped part of frame 3


def test_gradient_reaches_a_latent_through_a_differentiable_feature_map():
    z = torch.randn(F, 4, H, W, requires_grad=True)
    mix = torch.randn(4, C)
    features = torch.tanh(torch.einsum("fchw,cd->fhwd", z, mix))        # (F, H, W, C)
    loss = trajectory_loss(features, BOXES)
    loss.backward()
    assert loss.item() > 0 and z.grad.abs().sum() > 0
    assert torch.count_nonzero(z.grad[0]) == 0


def test_half_precision_features_give_a_float32_loss():
    features = torch.randn(F, H, W, C).half()
    loss = trajectory_loss(features, BOXES)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(slow_loss(features.float(), BOXES), rel=1e-5)


def test_first_frame_box_outside_the_latent_is_an_error():
    with pytest.raises(ValueError, match="box 0: first-frame latent box"):
        trajectory_loss(torch.zeros(F, H, W, C), [[[-1, 0, 2, 2]] * F])


def test_frame_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="frames"):
        trajectory_loss(torch.zeros(F, H, W, C), [BOXES[0][:3]])


def test_loss_from_pixel_trajectories():
    """End to end: pixel boxes moved by whole cells (8 px) give zero loss on pasted features."""
    traj = Trajectories([[24, 16, 64, 48]], [[[44, 32], [60, 40], [36, 56], [124, 88]]], (W * 8, H * 8))
    boxes = latent_boxes(traj)
    assert boxes[0].tolist() == [[2, 3, 6, 8], [3, 5, 7, 10], [5, 2, 9, 7], [9, 13, 13, 18]]
    features = torch.randn(F, H, W, C)
    patch = features[0, 2:6, 3:8].clone()
    features[1, 3:7, 5:10] = patch
    features[2, 5:9, 2:7] = patch
    features[3, 9:12, 13:16] = patch[:3, :3]
    assert trajectory_loss(features, boxes).item() == 0.0
