"""Latent optimisation at one denoising step (SG-I2V paper, Sec. 3.3; docs/method.md §4).

At a step inside the optimisation window the noisy latent z_t itself is updated so that the aligned
features follow the boxes: a few iterations of

    z_t <- AdamW step on  L(features(z_t))          (L: the trajectory loss, Eq. 1, loss.py)

with a fresh optimiser at every step (its moments do not carry over from one step to the next), as
the reference creates one per call. AdamW with torch's defaults besides the learning rate: betas
(0.9, 0.999), eps 1e-8, weight decay 0.01 (decay applies to every latent element, also those the
loss does not touch). The latent is optimised in float32; the loss is computed in float32; the
forward pass may run in float16, and then the gradient is computed on a dynamically scaled loss
(torch.amp.GradScaler, as the reference) so that small gradients do not underflow.
"""
from __future__ import annotations

import torch

from guidance.loss import has_visible_box, trajectory_loss

ADAMW_BETAS, ADAMW_EPS, ADAMW_WEIGHT_DECAY = (0.9, 0.999), 1e-8, 0.01   # torch's defaults


def optimize_latent(features_of, latent, latent_boxes, iterations: int = 5, lr: float = 0.21,
                    weighting: str = "gaussian", scale_gradients: bool = False):
    """Optimises one step's latent for the trajectory loss.

    features_of(z) -> (F, h, w, C) features of latent z (1, F, 4, h, w), differentiable w.r.t. z
        (e.g. features.extract_features bound to the U-Net, the step's sigma and the conditioning);
    latent: (1, F, 4, h, w), not modified; latent_boxes: (B, F, 4) [top, left, bottom, right);
    weighting: "gaussian" or "uniform" (loss.HEATMAPS); scale_gradients: use a GradScaler.

    Returns (z*, losses): z* (1, F, 4, h, w) float32 detached, losses the loss before each iteration.
    If no box is visible in any frame n >= 1 the loss has no weight: nothing is done (an AdamW step
    would still move the latent through weight decay) and z* = latent in float32, losses = [].
    """
    z = latent.detach().float().clone().requires_grad_(True)          # (1, F, 4, h, w) float32
    if iterations <= 0 or not has_visible_box(latent_boxes, *latent.shape[-2:]):
        return z.detach(), []
    optimizer = torch.optim.AdamW([z], lr=lr, betas=ADAMW_BETAS, eps=ADAMW_EPS,
                                  weight_decay=ADAMW_WEIGHT_DECAY)   # fresh: no state from earlier steps
    scaler = torch.amp.GradScaler(z.device.type, enabled=scale_gradients)
    losses = []
    for _ in range(iterations):
        with torch.enable_grad():
            loss = trajectory_loss(features_of(z), latent_boxes, weighting)   # 0-dim float32
            # gradient w.r.t. the latent only: no weight gradients are computed or stored
            (z.grad,) = torch.autograd.grad(scaler.scale(loss), z)
        scaler.step(optimizer)                                         # unscales, skips on inf/nan
        scaler.update()
        losses.append(loss.item())
    return z.detach(), losses
