"""The trajectory loss (SG-I2V paper, Sec. 3.3, Eq. 1; docs/method.md §3).

Given semantically aligned features of all frames (guidance/features.py), the loss asks the
features inside each box's position in frame n >= 1 to equal the features inside the box in
frame 0 (a stop-gradient target), with a Gaussian weight that favours the box centre:

    L = sum_{b, n >= 1, pixels} G_b * mean_c (F_n[box_b(n)] - sg(F_0[box_b(0)]))^2
        / sum_{b, n >= 1, pixels} G_b

Details follow the reference implementation (pipeline.py `optimize_latent`), checked line by line:
- boxes are integer latent cells [top, left, bottom, right) from trajectory.latent_boxes;
- the frame-0 target is `features[0, top:bottom, left:right]`, detached, taken from the same
  forward pass (so it changes at every iteration);
- in frame n the box is clipped to the latent; a box entirely outside is skipped (contributes
  nothing); otherwise the target is resized with F.interpolate(mode="bilinear", align_corners
  False, no antialias) to the UNCLIPPED size of the frame-n box, which can differ by one cell
  from the frame-0 size, and cropped by the same offsets as the box;
- per-pixel error = squared difference averaged over channels; the weight is the Gaussian heatmap
  of the unclipped box size, cropped like the box;
- sums run over frames (outer) and boxes (inner) as in the reference; the result is divided by
  max(1e-8, sum of weights). When no box is visible in any frame n >= 1 the reference takes no
  optimiser step and ends that step's iterations: see `has_visible_box`.
- everything is computed in float32 (the reference casts the features to float32 first).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=1024)
def _gaussian_cpu(h: int, w: int, sigma_fraction: float) -> torch.Tensor:
    y = torch.arange(h, dtype=torch.float64) + 0.5 - h / 2             # (h,) pixel centre - box centre
    x = torch.arange(w, dtype=torch.float64) + 0.5 - w / 2             # (w,)
    sy, sx = sigma_fraction * h, sigma_fraction * w
    g = torch.exp(-1 / 2 * (x[None, :] ** 2 / sx ** 2 + y[:, None] ** 2 / sy ** 2))  # (h, w)
    return (g / g.max()).to(torch.float32)


def gaussian_heatmap(h: int, w: int, sigma_fraction: float = 0.2, device=None) -> torch.Tensor:
    """(h, w) float32 weights G(y, x) = exp(-((x + 0.5 - w/2)^2 / (2 sx^2) + (y + 0.5 - h/2)^2 /
    (2 sy^2))) / max, sx = 0.2 w, sy = 0.2 h.

    Same values as the reference's get_gaussian_heatmap (heatmap_sigma 0.4 times half the box
    size; float64, normalised to max 1, then float32). The maximum is 1 at the centre cell (the
    four centre cells for even sizes); a 1-cell box gets the single weight 1, so a size-1 axis
    never divides by zero.
    """
    if h < 1 or w < 1:
        raise ValueError(f"heatmap size must be at least 1x1, got {h}x{w}")
    return _gaussian_cpu(int(h), int(w), float(sigma_fraction)).to(device=device, copy=True)


def uniform_heatmap(h: int, w: int, device=None) -> torch.Tensor:
    """(h, w) float32 ones: the paper's "uniform weights" ablation (Table 2)."""
    return torch.ones(h, w, dtype=torch.float32, device=device)


HEATMAPS = {"gaussian": gaussian_heatmap, "uniform": uniform_heatmap}


def clip_box(box, h: int, w: int):
    """Clips [top, left, bottom, right) to an h x w latent. Returns (rows, cols) slices of the
    latent and (rows, cols) slices of the unclipped box that survive, or None if nothing does."""
    top, left, bottom, right = box
    top_c, left_c, bottom_c, right_c = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if top_c >= bottom_c or left_c >= right_c:
        return None
    in_latent = (slice(top_c, bottom_c), slice(left_c, right_c))
    in_box = (slice(top_c - top, bottom_c - top), slice(left_c - left, right_c - left))
    return in_latent, in_box


def has_visible_box(latent_boxes, h: int, w: int) -> bool:
    """Whether any box overlaps the h x w latent in some frame n >= 1, i.e. whether the loss has
    any weight. The reference stops optimising at a step where it has none."""
    boxes = torch.as_tensor(np.asarray(latent_boxes)).tolist()         # B x F x [t, l, b, r]
    return any(clip_box(frames[n], h, w) is not None for frames in boxes for n in range(1, len(frames)))


def resize_box_features(patch: torch.Tensor, size) -> torch.Tensor:
    """(hb, wb, C) -> (size[0], size[1], C), bilinear, align_corners=False as in the reference."""
    chw = patch.permute(2, 0, 1)[None]                                  # (1, C, hb, wb)
    out = F.interpolate(chw, size=tuple(size), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0)                                      # (h', w', C)


def trajectory_loss(features: torch.Tensor, latent_boxes, weighting: str = "gaussian") -> torch.Tensor:
    """Eq. 1. features (F, h, w, C) aligned features of all frames; latent_boxes (B, F, 4) integer
    [top, left, bottom, right) per box and frame (trajectory.latent_boxes). Returns a 0-dim float32
    tensor. Every first-frame box must lie inside the latent (trajectory.validate ensures it)."""
    heatmap = HEATMAPS[weighting]
    features = features.float()                                         # (F, h, w, C)
    num_frames, h, w, _ = features.shape
    boxes = torch.as_tensor(np.asarray(latent_boxes)).tolist()         # B x F x [t, l, b, r]
    if any(len(frames) != num_frames for frames in boxes):
        raise ValueError(f"latent_boxes has {[len(f) for f in boxes]} frames per box, "
                         f"features have {num_frames}")

    targets = []                                                        # B x (hb0, wb0, C)
    for b, frames in enumerate(boxes):
        top, left, bottom, right = frames[0]
        if not (0 <= top < bottom <= h and 0 <= left < right <= w):
            raise ValueError(f"box {b}: first-frame latent box {frames[0]} is not inside the "
                             f"{h}x{w} latent")
        targets.append(features[0, top:bottom, left:right].detach())

    weighted_error = features[1:, :0].sum()  # a 0 that stays connected to the graph when no box is visible
    total_weight = 0.0
    for n in range(1, num_frames):
        for b, frames in enumerate(boxes):
            top, left, bottom, right = frames[n]
            clipped = clip_box(frames[n], h, w)
            if clipped is None:
                continue                                                # entirely outside: no loss
            (rows, cols), (box_rows, box_cols) = clipped
            size = (bottom - top, right - left)                         # unclipped box of frame n
            target = resize_box_features(targets[b], size)[box_rows, box_cols]  # (h', w', C)
            source = features[n, rows, cols]                            # (h', w', C)
            error = (source - target).pow(2).mean(dim=-1)               # (h', w')
            weight = heatmap(*size, device=features.device)[box_rows, box_cols]  # (h', w')
            weighted_error = weighted_error + (weight * error).sum()
            total_weight = total_weight + weight.sum()
    return weighted_error / max(1e-8, total_weight)
