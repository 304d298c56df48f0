"""The SVD img2vid U-Net (diffusers' UNetSpatioTemporalConditionModel, parameter for parameter).

Inputs (B, T, 8, h, w) = [c_in-scaled noisy latent, conditioning-image latent]; output a v-prediction
(B, T, 4, h, w). Frames are folded into the batch (B*T, ...), frame-major within each batch item.
Two extra arguments serve guidance (guidance/backbone.py):
  capture    an object with wants(address) and record(address, *tensors); see model/attention.py.
  stop_after a module address ("up_blocks.2" or "up_blocks.2.attentions.2"): the pass returns None
             right after it, so a loss on that layer's features costs no deeper compute.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.attention import FeedForward, TransformerSpatioTemporalModel
from model.config import UNetConfig
from model.layers import Downsample2D, SpatioTemporalResBlock, TimestepEmbedding, Upsample2D, timestep_sinusoid


class DownBlock(nn.Module):
    """resnet -> (transformer) per layer, each output kept as a skip; then a stride-2 conv (not on the last level)."""

    def __init__(self, in_ch, out_ch, temb_ch, layers, heads, context_dim, attention: bool, downsample: bool):
        super().__init__()
        eps = 1e-6 if attention else 1e-5                          # diffusers: 1e-5 in the attention-free level
        self.resnets = nn.ModuleList([SpatioTemporalResBlock(in_ch if i == 0 else out_ch, out_ch, temb_ch, eps)
                                      for i in range(layers)])
        self.attentions = nn.ModuleList([TransformerSpatioTemporalModel(out_ch, heads, context_dim)
                                         for _ in range(layers)]) if attention else None
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if downsample else None

    def forward(self, x, temb, context, num_frames, capture):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames, capture)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """Per layer: concatenate a skip, resnet -> (transformer); then nearest x2 + conv (not on the last level)."""

    def __init__(self, in_chs, out_ch, temb_ch, heads, context_dim, attention: bool, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([SpatioTemporalResBlock(c, out_ch, temb_ch, 1e-6) for c in in_chs])
        self.attentions = nn.ModuleList([TransformerSpatioTemporalModel(out_ch, heads, context_dim)
                                         for _ in in_chs]) if attention else None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if upsample else None
        self.address = ""

    def forward(self, x, skips, temb, context, num_frames, capture, stop_after=None, upsample_size=None):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, context, num_frames, capture)
                if stop_after == self.attentions[i].address:
                    return None
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        if capture is not None and capture.wants(self.address):
            capture.record(self.address, x)
        return x


class MidBlock(nn.Module):
    """resnet, transformer, resnet at the lowest resolution."""

    def __init__(self, ch, temb_ch, heads, context_dim):
        super().__init__()
        self.resnets = nn.ModuleList([SpatioTemporalResBlock(ch, ch, temb_ch, 1e-5) for _ in range(2)])
        self.attentions = nn.ModuleList([TransformerSpatioTemporalModel(ch, heads, context_dim)])

    def forward(self, x, temb, context, num_frames, capture):
        x = self.resnets[0](x, temb, num_frames)
        x = self.attentions[0](x, context, num_frames, capture)
        return self.resnets[1](x, temb, num_frames)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, heads, n = cfg.block_out_channels, cfg.num_attention_heads, len(cfg.block_out_channels)
        temb_ch, ctx, layers = cfg.time_embed_dim, cfg.cross_attention_dim, cfg.layers_per_block
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb_ch)
        self.add_embedding = TimestepEmbedding(cfg.projection_class_embeddings_input_dim, temb_ch)

        self.down_blocks = nn.ModuleList([
            DownBlock(ch[max(i - 1, 0)], ch[i], temb_ch, layers, heads[i], ctx, attention=i < n - 1, downsample=i < n - 1)
            for i in range(n)])
        self.mid_block = MidBlock(ch[-1], temb_ch, heads[-1], ctx)

        # skip channels in the order the up path pops them: conv_in, then each down level's outputs
        skip_chs = [ch[0]] + [c for i, c in enumerate(ch) for _ in range(layers + (i < n - 1))]
        self.up_blocks = nn.ModuleList()
        prev = ch[-1]
        for i in range(n):
            level = n - 1 - i
            in_chs = []
            for j in range(layers + 1):
                in_chs.append((prev if j == 0 else ch[level]) + skip_chs.pop())
            self.up_blocks.append(UpBlock(in_chs, ch[level], temb_ch, heads[level], ctx,
                                          attention=i > 0, upsample=i < n - 1))
            prev = ch[level]

        self.conv_norm_out = nn.GroupNorm(32, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        for name, module in self.named_modules():                # addresses for capture / stop_after
            if hasattr(module, "address"):
                module.address = name

    CHECKPOINTING = ("none", "ff", "transformers", "blocks")

    def set_checkpointing(self, mode: str = "none"):
        """What a forward pass with gradients on (SG-I2V's latent optimisation) recomputes in the
        backward pass instead of storing (model.layers.checkpointed); the gradient is the same.
          none          store everything (fastest, most memory);
          ff            the feed-forward layers: their 4x- and 8x-wide GEGLU activations are most of
                        the stored memory, their recompute one extra input projection per layer;
          transformers  every spatial and temporal transformer block (attention + feed-forward);
          blocks        those and every resnet: least memory, about one more forward pass of compute.
        Measured at 576x1024x14 in bench/perf.py (README, "Speed and memory")."""
        if mode not in self.CHECKPOINTING:
            raise ValueError(f"checkpointing {mode!r}: expected one of {self.CHECKPOINTING}")
        for m in self.modules():
            if isinstance(m, FeedForward):
                m.checkpoint = mode == "ff"
            elif isinstance(m, SpatioTemporalResBlock):
                m.checkpoint = mode == "blocks"
            elif hasattr(m, "checkpoint"):                      # spatial and temporal transformer blocks
                m.checkpoint = mode in ("transformers", "blocks")
        return self

    def embed(self, timestep, added_time_ids, batch: int, dtype):
        """Noise-level embedding + embedding of [fps - 1, motion bucket, noise aug]: (B, 4*C0)."""
        t = timestep.reshape(-1).expand(batch) if timestep.numel() == 1 else timestep.reshape(batch)
        emb = self.time_embedding(timestep_sinusoid(t, self.cfg.block_out_channels[0]).to(dtype))
        ids = timestep_sinusoid(added_time_ids.flatten(), self.cfg.addition_time_embed_dim)  # (B*3, D)
        ids = ids.reshape(batch, -1).to(emb.dtype)                                          # (B, 3*D)
        return emb + self.add_embedding(ids)

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, capture=None, stop_after=None):
        b, t = sample.shape[:2]
        timestep = torch.as_tensor(timestep, device=sample.device)
        temb = self.embed(timestep, added_time_ids, b, sample.dtype).repeat_interleave(t, dim=0)  # (B*T, E)
        context = encoder_hidden_states.repeat_interleave(t, dim=0)                         # (B*T, 1, Cc)
        x = self.conv_in(sample.flatten(0, 1))                                              # (B*T, C0, h, w)

        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, context, t, capture)
            skips += block_skips
        x = self.mid_block(x, temb, context, t, capture)

        for i, block in enumerate(self.up_blocks):
            n_pop = len(block.resnets)
            block_skips, skips = skips[-n_pop:], skips[:-n_pop]
            # sizes that are not multiples of 8 latent pixels: upsample to the skip's exact size
            size = skips[-1].shape[-2:] if skips else None
            x = block(x, block_skips, temb, context, t, capture, stop_after, size)
            if x is None or stop_after == block.address:
                return None
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x.reshape(b, t, *x.shape[1:])                                                # (B, T, 4, h, w)
