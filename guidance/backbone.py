"""The backbone adapter: all that SG-I2V knows about the video U-Net (SG-I2V paper, Sec. 3.2-3.3;
docs/method.md §2 and §4). A port to another video backbone rewrites this file and nothing else.

The method needs three things from a backbone:
1. where its features live: the module addresses of the spatial self-attention, the temporal
   self-attention and the output of a "layer", and the spatial size of that layer's feature map;
2. a forward pass of the conditional branch that hands those modules' tensors to a capture object
   (guidance/features.py) and stops right after the deepest one (nothing later affects the loss);
3. the latent axes of the FFT restore: (h, w) are the last two axes of the (B, F, 4, h, w) latent,
   which guidance/frequency.py assumes.

SVD (our model/unet.py, diffusers' UNetSpatioTemporalConditionModel names). A layer is a pair
(l, s): up block l (0-based; up_blocks[0] has no attention), its s-th resnet + spatio-temporal
transformer (0-based, 3 per up block). up_blocks[l] runs at the resolution of down level
n_levels - 1 - l, i.e. latent / 2**(n_levels - 1 - l): the paper's layers M2, M3 of the middle stage
are (2, 1), (2, 2) at latent / 2.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from sampler.conditioning import Conditioning, predict_v

Layer = tuple  # (up block l, transformer s), both 0-based


def check_layer(unet_cfg, layer: Layer) -> None:
    """Raises ValueError unless `layer` names a spatio-temporal transformer of the up path of a U-Net
    with config `unet_cfg` (model.config.UNetConfig: usable before the weights are loaded)."""
    n_levels, per_block = len(unet_cfg.block_out_channels), unet_cfg.layers_per_block + 1
    l, s = layer
    if not (1 <= l < n_levels and 0 <= s < per_block):
        raise ValueError(f"layer {layer}: expected (up block l, transformer s) with 1 <= l < {n_levels} "
                         f"(up_blocks[0] has no attention) and 0 <= s < {per_block}")


def layer_output(layer: Layer) -> str:
    """Address of layer (l, s)'s output (its spatio-temporal transformer, after the residual),
    recorded as (B*F, C, h', w'). This is the up-block feature map the DragDiffusion- and MOFT-style
    baselines use (see features.py)."""
    l, s = layer
    return f"up_blocks.{l}.attentions.{s}"


def spatial_attention(layer: Layer) -> str:
    """Address of the spatial self-attention (per frame, over h'*w' tokens) of layer (l, s);
    recorded as (q, k, v), each (B*F, heads, h'*w', d)."""
    return layer_output(layer) + ".transformer_blocks.0.attn1"


def temporal_attention(layer: Layer) -> str:
    """Address of the temporal self-attention (per pixel, over the F frames) of layer (l, s);
    recorded as (q, k, v), each (B*h'*w', heads, F, d)."""
    return layer_output(layer) + ".temporal_transformer_blocks.0.attn1"


def stop_after(layers) -> str:
    """The module after which the forward pass can end: the output of the deepest chosen layer."""
    return layer_output(max([tuple(layer) for layer in layers]))


def feature_size(unet, layer: Layer, latent_size) -> tuple:
    """(h', w') of layer (l, s)'s feature maps for a latent of size (h, w): latent / 2**(n_levels-1-l),
    rounded up at every halving, as the stride-2 convolutions of the down path do."""
    halvings = len(unet.cfg.block_out_channels) - 1 - layer[0]
    h, w = latent_size
    for _ in range(halvings):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def feature_channels(unet, layer: Layer) -> int:
    """Channels of layer (l, s)'s features (heads * head dim of its attention): 640 at SVD's (2, s)."""
    return unet.cfg.block_out_channels[len(unet.cfg.block_out_channels) - 1 - layer[0]]


def conditional_forward(unet, latent, sigma, cond: Conditioning, capture, stop_after: str,
                        autocast_dtype=None) -> None:
    """The conditional branch of the U-Net at one denoising step, for the loss only: batch 1, the
    c_in-scaled noisy latent concatenated with the conditioning-image latents, the step's c_noise and
    added time ids (sampler.conditioning.predict_v), no classifier-free guidance. The chosen modules
    hand their tensors to `capture`; the pass returns nothing after `stop_after`.

    latent (1, F, 4, h, w), any float dtype (cast to the U-Net's); cond: the conditional half
    (`Conditioning.cond()`); sigma: 0-dim float32 CPU tensor; autocast_dtype: e.g. torch.float16 to
    run under torch.autocast (the reference: float32 weights, float16 autocast), None for the U-Net's
    own dtype.
    """
    if cond.embeds.shape[0] != 1:
        raise ValueError(f"expected the conditional half (batch 1), got batch {cond.embeds.shape[0]}; "
                         "pass Conditioning.cond()")
    dtype = next(unet.parameters()).dtype
    cond = Conditioning(cond.embeds.to(dtype), cond.latents.to(dtype), cond.time_ids.to(dtype))
    autocast = (torch.autocast(latent.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else nullcontext())
    with autocast:
        predict_v(unet, latent.to(dtype), sigma, cond, capture=capture, stop_after=stop_after)
