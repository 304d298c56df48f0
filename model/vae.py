"""SVD's VAE: the SD image encoder and the temporal decoder (diffusers' AutoencoderKLTemporalDecoder).

encode(x):  (B, 3, H, W) in [-1, 1] -> posterior mode (B, 4, H/8, W/8), unscaled.
decode(z, num_frames): (B*T, 4, h, w), already divided by the scaling factor -> (B*T, 3, H, W).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import VAEConfig
from model.layers import Downsample2D, ResnetBlock2D, SpatioTemporalResBlock, Upsample2D


class SelfAttention2D(nn.Module):
    """Single-head attention over all pixels with a residual (the VAE mid-block attention)."""

    def __init__(self, ch: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(32, ch, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(ch, ch), nn.Linear(ch, ch), nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x):                                          # (N, C, H, W)
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # (N, H*W, C)
        q, k, v = (f(t)[:, None] for f in (self.to_q, self.to_k, self.to_v))  # (N, 1, H*W, C)
        out = self.to_out[0](F.scaled_dot_product_attention(q, k, v)[:, 0])
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class EncoderDownBlock(nn.Module):
    def __init__(self, in_ch, out_ch, layers, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch, asymmetric_pad=True)]) if downsample else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return self.downsamplers[0](x) if self.downsamplers is not None else x


class EncoderMidBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch), ResnetBlock2D(ch, ch)])
        self.attentions = nn.ModuleList([SelfAttention2D(ch)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, n = cfg.block_out_channels, len(cfg.block_out_channels)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([EncoderDownBlock(ch[max(i - 1, 0)], ch[i], cfg.layers_per_block, i < n - 1)
                                          for i in range(n)])
        self.mid_block = EncoderMidBlock(ch[-1])
        self.conv_norm_out = nn.GroupNorm(32, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def decoder_resblock(in_ch, out_ch):
    """A SpatioTemporalResBlock without time embedding, blended (1-a)*spatial + a*temporal, a = sigmoid(0) at init."""
    return SpatioTemporalResBlock(in_ch, out_ch, None, eps=1e-6, temporal_eps=1e-5,
                                  spatial_weight_is_alpha=False, mix_init=0.0)


class DecoderMidBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.resnets = nn.ModuleList([decoder_resblock(ch, ch), decoder_resblock(ch, ch)])
        self.attentions = nn.ModuleList([SelfAttention2D(ch)])

    def forward(self, x, num_frames):
        x = self.resnets[0](x, None, num_frames)
        return self.resnets[1](self.attentions[0](x), None, num_frames)


class DecoderUpBlock(nn.Module):
    def __init__(self, in_ch, out_ch, layers, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([decoder_resblock(in_ch if i == 0 else out_ch, out_ch) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if upsample else None

    def forward(self, x, num_frames):
        for resnet in self.resnets:
            x = resnet(x, None, num_frames)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class TemporalDecoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = list(reversed(cfg.block_out_channels))                # (512, 512, 256, 128) for SVD
        n = len(ch)
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1)
        self.mid_block = DecoderMidBlock(ch[0])
        self.up_blocks = nn.ModuleList([DecoderUpBlock(ch[max(i - 1, 0)], ch[i], cfg.layers_per_block + 1, i < n - 1)
                                        for i in range(n)])
        self.conv_norm_out = nn.GroupNorm(32, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], cfg.out_channels, 3, padding=1)
        self.time_conv_out = nn.Conv3d(cfg.out_channels, cfg.out_channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, z, num_frames: int):                         # (B*T, 4, h, w)
        x = self.mid_block(self.conv_in(z), num_frames)
        for block in self.up_blocks:
            x = block(x, num_frames)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))           # (B*T, 3, H, W)
        bt, c, h, w = x.shape
        x = x.reshape(bt // num_frames, num_frames, c, h, w).transpose(1, 2)  # (B, 3, T, H, W)
        x = self.time_conv_out(x)
        return x.transpose(1, 2).reshape(bt, c, h, w)


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1)
        self.decoder = TemporalDecoder(cfg)

    def encode(self, x):
        """Posterior mode (= mean): the first half of the moment channels."""
        moments = self.quant_conv(self.encoder(x))                 # (B, 8, h, w): mean, log-variance
        return moments[:, : self.cfg.latent_channels]

    def decode(self, z, num_frames: int):
        return self.decoder(z, num_frames)

    def decode_chunked(self, z, chunk_size: int = None):
        """Decode (B, T, 4, h, w) latents (divided by the scaling factor) in chunks of frames.

        Temporal mixing never crosses a chunk, so the result depends on chunk_size (the reference uses 8).
        Returns (B, T, 3, H, W).
        """
        b, t = z.shape[:2]
        chunk_size = chunk_size or t
        frames = []
        for item in z:                                             # (T, 4, h, w)
            frames.append(torch.cat([self.decode(c, c.shape[0]) for c in item.split(chunk_size)]))
        return torch.stack(frames)
