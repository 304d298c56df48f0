"""Semantically aligned feature maps (SG-I2V paper, Sec. 3.2; docs/method.md §2).

Features of a video diffusion U-Net are not aligned across frames: the same object has different
feature vectors in different frames, so a loss asking features to move along a trajectory is weak.
SG-I2V aligns them by re-running each chosen spatial self-attention with the first frame's keys and
values, for every frame n:

    F~_n = softmax(Q_n K_1^T / sqrt(d)) V_1,        K_1, V_1 from frame 0, stop-gradient,

per head, taken before the output projection, heads concatenated. This is a side computation for the
loss: the layer's own output (ordinary per-frame attention) flows on through the network unchanged.
Each layer's map (F, h', w', C_l) is resized bilinearly (align_corners=False, as the reference's
F.interpolate default) to the latent size and the layers are concatenated on channels: (F, h, w, C).
The paper uses the spatial self-attention of layers (2, 1), (2, 2) of SVD (640 channels each).

Other feature sources, for the paper's Fig. 5 ablation and Table 1 baselines, at the same layers:
  "self_attention"             softmax(Q_n K_n^T / sqrt(d)) V_n: the ordinary attention, same place;
  "temporal_attention"         the layer's temporal self-attention output (over frames, per pixel);
  "upblock_output"             DragDiffusion-style: the U-Net decoder's feature map at that layer,
                               i.e. the output of its spatio-temporal transformer (see below);
  "upblock_output_minus_mean"  MOFT-style: that map minus its mean over the frames.
The DragDiffusion-style baseline puts its loss on "the output feature maps of the 2nd and 3rd up
blocks at middle resolution" (docs/method.md §7). We read "2nd and 3rd" 1-based, inside the middle-resolution up stage,
as the paper's M2, M3: the outputs of up_blocks[2]'s layers 1 and 2 (diffusers addresses
up_blocks.2.attentions.1 / .2), so every source is compared at the same layers, resolution
(latent / 2) and channel count. (The other reading, the outputs of whole up_blocks[1] and [2], puts
the second one at full latent resolution, after its upsampler, which is not "middle resolution".)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from guidance import backbone
from model.attention import attention, merge_heads

SOURCES = ("aligned", "self_attention", "temporal_attention", "upblock_output", "upblock_output_minus_mean")


def first_frame_attention(q, k, v, num_frames: int):
    """softmax(Q_n K_1^T / sqrt(d)) V_1 for every frame n, with K_1, V_1 of frame 0 detached.
    q, k, v: (B*F, heads, L, d), frame-major per batch item. Returns (B*F, heads, L, d)."""
    def first_frame(t):                                              # (B*F, heads, L, d), frame 0 repeated
        t = t.unflatten(0, (-1, num_frames))[:, :1].detach()          # (B, 1, heads, L, d)
        return t.expand(-1, num_frames, -1, -1, -1).flatten(0, 1)
    return attention(q, first_frame(k), first_frame(v))


def to_map(tokens, size):
    """(N, h'*w', C) tokens -> (N, h', w', C) map."""
    return tokens.unflatten(1, tuple(size))


def resize_to_latent(features, latent_size):
    """(N, h', w', C) -> (N, h, w, C) float32, bilinear with align_corners=False (the reference)."""
    nchw = features.float().permute(0, 3, 1, 2)                        # (N, C, h', w')
    nchw = F.interpolate(nchw, size=tuple(latent_size), mode="bilinear", align_corners=False)
    return nchw.permute(0, 2, 3, 1)                                    # (N, h, w, C)


def source_address(source: str, layer) -> str:
    """The module whose tensors the given feature source is computed from."""
    if source in ("aligned", "self_attention"):
        return backbone.spatial_attention(layer)
    if source == "temporal_attention":
        return backbone.temporal_attention(layer)
    if source in ("upblock_output", "upblock_output_minus_mean"):
        return backbone.layer_output(layer)
    raise ValueError(f"unknown feature source {source!r}; expected one of {', '.join(SOURCES)}")


class FeatureCapture:
    """The `capture` object of UNet.forward: for the chosen layers, computes the feature source from
    the tensors the U-Net hands over and keeps only that map (N, h', w', C_l), N = B*F.

    Use one per forward pass: capture = FeatureCapture(...); unet(..., capture=capture);
    capture.features() -> (B*F, h, w, C_total), i.e. (F, h, w, C) for the batch-1 conditional branch.
    """

    def __init__(self, unet, source: str, layers, num_frames: int, latent_size):
        self.source, self.num_frames, self.latent_size = source, num_frames, tuple(latent_size)
        self.layers = [tuple(layer) for layer in layers]
        for layer in self.layers:
            backbone.check_layer(unet.cfg, layer)
        self.addresses = {source_address(source, layer): layer for layer in self.layers}
        self.sizes = {layer: backbone.feature_size(unet, layer, latent_size) for layer in self.layers}
        self.maps = {}                                                 # layer -> (N, h', w', C_l)

    def wants(self, address: str) -> bool:
        return address in self.addresses

    def record(self, address: str, *tensors) -> None:
        layer = self.addresses[address]
        self.maps[layer] = self.compute(self.sizes[layer], *tensors)

    def compute(self, size, *tensors):
        """The feature map (N, h', w', C) of this capture's source from what the module handed over."""
        if self.source == "aligned":                                   # (q, k, v), each (N, heads, L, d)
            return to_map(merge_heads(first_frame_attention(*tensors, self.num_frames)), size)
        if self.source == "self_attention":
            return to_map(merge_heads(attention(*tensors)), size)
        if self.source == "temporal_attention":                       # (q, k, v), each (B*L, heads, F, d)
            out = merge_heads(attention(*tensors))                     # (B*L, F, C)
            out = out.unflatten(0, (-1, *size))                        # (B, h', w', F, C)
            return out.permute(0, 3, 1, 2, 4).flatten(0, 1)            # (B*F, h', w', C)
        (x,) = tensors                                                 # (N, C, h', w') layer output
        x = x.permute(0, 2, 3, 1)                                      # (N, h', w', C)
        if self.source == "upblock_output_minus_mean":
            frames = x.unflatten(0, (-1, self.num_frames))             # (B, F, h', w', C)
            x = (frames - frames.mean(dim=1, keepdim=True)).flatten(0, 1)
        return x

    def features(self):
        """The chosen layers' maps resized to the latent size, concatenated on channels in the order
        of `layers`: (N, h, w, C_total) float32."""
        missing = [layer for layer in self.layers if layer not in self.maps]
        if missing:
            raise RuntimeError(f"layers {missing} were not recorded: was the forward pass stopped too early?")
        return torch.cat([resize_to_latent(self.maps[layer], self.latent_size) for layer in self.layers], dim=-1)


def extract_features(unet, latent, sigma, cond, source: str = "aligned", layers=((2, 1), (2, 2)),
                     autocast_dtype=None):
    """Features of the conditional branch for the loss: latent (1, F, 4, h, w) -> (F, h, w, C) float32,
    differentiable w.r.t. the latent. The forward pass stops after the deepest chosen layer."""
    num_frames, latent_size = latent.shape[1], latent.shape[-2:]
    capture = FeatureCapture(unet, source, layers, num_frames, latent_size)
    backbone.conditional_forward(unet, latent, sigma, cond, capture, backbone.stop_after(layers), autocast_dtype)
    return capture.features()


_compiled_extract_features = {}                                        # torch.compile backend -> function


def extract_features_compiled(*args, backend: str = "inductor", **kwargs):
    """extract_features through torch.compile (run.py --compile): the truncated forward becomes one
    graph and, through AOTAutograd, so does its backward, each fused by inductor; same results up to
    floating-point rounding (tests/test_fast_path.py; bench/perf.py on the GPU). The first call compiles.

    With activation checkpointing, `capture.record` (a dict write) runs inside the checkpointed
    transformers. Eager checkpointing replays it when the backward recomputes the forward, storing the
    same map again, which nothing reads; dynamo refuses such a side effect unless told to skip it in
    the recompute, which is therefore what it is told."""
    if backend not in _compiled_extract_features:
        _compiled_extract_features[backend] = torch.compile(extract_features, backend=backend)
    with torch._dynamo.config.patch(skip_fwd_side_effects_in_bwd_under_checkpoint=True):
        return _compiled_extract_features[backend](*args, **kwargs)
