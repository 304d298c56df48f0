"""FreeTraj-style baseline (SG-I2V paper, Sec. 4, Table 1; after Qiu et al. 2024, "FreeTraj:
Tuning-Free Trajectory Control in Video Diffusion Models", noise-level trajectory injection).

No optimisation: the initial noise is edited once, before the first denoising step. For every box
and frame n >= 1, the first frame's noise inside the frame-0 box is copied to where the box is in
frame n, so the same noise pattern travels along the trajectory:

    z_T[n, :, box_b(n)] = z_T[0, :, box_b(0)]

The frame-n region is the frame-0 box (its latent size) moved by the shift of its top-left corner
(latent boxes can differ by one cell in size between frames, trajectory.latent_boxes), clipped to the
latent. Boxes are written in order, so a later box wins where two overlap. Copying keeps every value
an N(0, sigma^2) draw, so the noise statistics are unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

from guidance.loss import clip_box


def copy_noise_along_boxes(latent: torch.Tensor, latent_boxes) -> torch.Tensor:
    """latent (B, F, C, h, w) initial noise; latent_boxes (nb, F, 4) [top, left, bottom, right).
    Returns a copy with frame 0's noise inside each box pasted along the box's path."""
    out = latent.clone()
    h, w = latent.shape[-2:]
    for frames in torch.as_tensor(np.asarray(latent_boxes)).tolist():  # nb x F x [t, l, b, r]
        top, left, bottom, right = frames[0]
        source = latent[:, 0, :, top:bottom, left:right]              # (B, C, hb, wb) frame-0 noise
        for n in range(1, len(frames)):
            dy, dx = frames[n][0] - top, frames[n][1] - left
            clipped = clip_box((top + dy, left + dx, bottom + dy, right + dx), h, w)
            if clipped is None:
                continue                                              # the box has left the latent
            (rows, cols), (box_rows, box_cols) = clipped
            out[:, n, :, rows, cols] = source[:, :, box_rows, box_cols]
    return out
