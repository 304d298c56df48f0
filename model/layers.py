"""Convolutional building blocks of SVD: embeddings, resnets, the spatial/temporal blender, resamplers.

Shapes: images are (B*T, C, H, W) with frames folded into the batch, frame-major per batch item.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint


def checkpointed(module: nn.Module, fn, *args):
    """fn(*args); with `module.checkpoint` set and gradients on (SG-I2V's latent optimisation), its
    activations are not kept for the backward pass but recomputed there (torch.utils.checkpoint):
    the same gradient for less memory and one more forward of this piece. UNet.set_checkpointing
    sets the flags."""
    if module.checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding [cos(t w_i), sin(t w_i)], w_i = 10000^(-i / (dim/2)); fp32. (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    arg = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


class TimestepEmbedding(nn.Module):
    """Linear, SiLU, Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_dim)
        self.linear_2 = nn.Linear(hidden_dim, out_dim or hidden_dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """GN, SiLU, conv3x3, (+ time embedding), GN, SiLU, conv3x3, plus a (1x1-conv) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int = None, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch) if temb_ch else None
        self.norm2 = nn.GroupNorm(32, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x, temb=None):                               # x (N, C, H, W), temb (N, E)
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class TemporalResnetBlock(nn.Module):
    """The same resnet over time: Conv3d with kernel (3, 1, 1) on (B, C, T, H, W).

    GroupNorm on the 5-D tensor pools its statistics over (C/32, T, H, W): across frames.
    """

    def __init__(self, ch: int, temb_ch: int = None, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, ch, eps=eps)
        self.conv1 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))
        self.time_emb_proj = nn.Linear(temb_ch, ch) if temb_ch else None
        self.norm2 = nn.GroupNorm(32, ch, eps=eps)
        self.conv2 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x, temb=None):                               # x (B, C, T, H, W), temb (B, T, E)
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb)).permute(0, 2, 1)[:, :, :, None, None]  # (B, C, T, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class AlphaBlender(nn.Module):
    """alpha * spatial + (1 - alpha) * temporal with alpha = sigmoid(mix_factor).

    The VAE decoder swaps the roles (`spatial_weight_is_alpha=False`): (1 - alpha) * spatial + alpha * temporal.
    """

    def __init__(self, init: float = 0.5, spatial_weight_is_alpha: bool = True):
        super().__init__()
        self.mix_factor = nn.Parameter(torch.tensor([float(init)]))
        self.spatial_weight_is_alpha = spatial_weight_is_alpha

    def forward(self, x_spatial, x_temporal):
        alpha = torch.sigmoid(self.mix_factor).to(x_spatial.dtype)
        if not self.spatial_weight_is_alpha:
            alpha = 1.0 - alpha
        return alpha * x_spatial + (1.0 - alpha) * x_temporal


class SpatioTemporalResBlock(nn.Module):
    """A 2-D resnet per frame, then a temporal resnet across frames, blended by a learned alpha."""

    def __init__(self, in_ch, out_ch, temb_ch=None, eps=1e-6, temporal_eps=None, spatial_weight_is_alpha=True,
                 mix_init=0.5):
        super().__init__()
        self.spatial_res_block = ResnetBlock2D(in_ch, out_ch, temb_ch, eps)
        self.temporal_res_block = TemporalResnetBlock(out_ch, temb_ch, temporal_eps if temporal_eps else eps)
        self.time_mixer = AlphaBlender(mix_init, spatial_weight_is_alpha)
        self.checkpoint = False

    def forward(self, x, temb, num_frames: int):
        return checkpointed(self, self._forward, x, temb, num_frames)

    def _forward(self, x, temb, num_frames: int):                  # x (B*T, C, H, W), temb (B*T, E) or None
        x = self.spatial_res_block(x, temb)
        bt, c, h, w = x.shape
        x_s = x.reshape(bt // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
        temb_t = temb.reshape(bt // num_frames, num_frames, -1) if temb is not None else None  # (B, T, E)
        x_t = self.temporal_res_block(x_s, temb_t)
        x = self.time_mixer(x_s, x_t)
        return x.permute(0, 2, 1, 3, 4).reshape(bt, c, h, w)


class Downsample2D(nn.Module):
    """conv3x3 stride 2. The U-Net pads by 1 on every side; the VAE encoder pads (0, 1, 0, 1) instead."""

    def __init__(self, ch: int, asymmetric_pad: bool = False):
        super().__init__()
        self.asymmetric_pad = asymmetric_pad
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0 if asymmetric_pad else 1)

    def forward(self, x):
        if self.asymmetric_pad:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest-neighbour x2 (or to an explicit size), then conv3x3."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, size=None):
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)
