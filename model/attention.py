"""Attention and the spatio-temporal transformer of the SVD U-Net.

The capture hook: an `Attention` whose `address` (its module name, set by the U-Net) is wanted by the
`capture` object hands it its heads-split (q, k, v) before the softmax; its own output is computed as
usual. This is all SG-I2V needs from a backbone's attention; the key/value swap lives in guidance/.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.layers import AlphaBlender, TimestepEmbedding, checkpointed, timestep_sinusoid

# Fused attention kernels launch one CUDA block row per sequence; grids above 65,535 rows fail
# ("invalid argument"), so larger batches of sequences are split.
MAX_SEQUENCES_PER_CALL = 65535


def attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v over (N, heads, L, d) tensors, split along N when N is large."""
    if q.shape[0] <= MAX_SEQUENCES_PER_CALL:
        return F.scaled_dot_product_attention(q, k, v)
    chunks = [F.scaled_dot_product_attention(qc, kc, vc) for qc, kc, vc in
              zip(q.split(MAX_SEQUENCES_PER_CALL), k.split(MAX_SEQUENCES_PER_CALL), v.split(MAX_SEQUENCES_PER_CALL))]
    return torch.cat(chunks)


def split_heads(x, heads):                                         # (N, L, heads*d) -> (N, heads, L, d)
    n, length, _ = x.shape
    return x.reshape(n, length, heads, -1).transpose(1, 2)


def merge_heads(x):                                                # (N, heads, L, d) -> (N, L, heads*d)
    n, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * d)


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v and a biased output projection (`to_out.0`)."""

    def __init__(self, dim: int, heads: int, context_dim: int = None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.address = ""                                          # module name in the U-Net, for capture

    def forward(self, x, context=None, capture=None):              # x (N, L, C), context (N, S, Cc)
        context = x if context is None else context
        q = split_heads(self.to_q(x), self.heads)                  # (N, heads, L, d)
        k = split_heads(self.to_k(context), self.heads)            # (N, heads, S, d)
        v = split_heads(self.to_v(context), self.heads)
        if capture is not None and capture.wants(self.address):
            capture.record(self.address, q, k, v)
        return self.to_out[0](merge_heads(attention(q, k, v)))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU to 4x width, then back (keys net.0.proj and net.2, as in diffusers)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])
        self.checkpoint = False

    def forward(self, x):
        return checkpointed(self, self._forward, x)

    def _forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Spatial block, per frame: self-attention over h*w tokens, cross-attention to the image token, FF."""

    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, heads, context_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)
        self.checkpoint = False

    def forward(self, x, context, capture=None):
        return checkpointed(self, self._forward, x, context, capture)

    def _forward(self, x, context, capture=None):                  # x (B*T, h*w, C), context (B*T, 1, Cc)
        x = x + self.attn1(self.norm1(x), capture=capture)
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class TemporalBasicTransformerBlock(nn.Module):
    """Temporal block, per pixel: FF in, self-attention across the T frames, cross-attention, FF."""

    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        self.norm_in, self.ff_in = nn.LayerNorm(dim), FeedForward(dim)
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, heads, context_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)
        self.checkpoint = False

    def forward(self, x, num_frames, context, capture=None):
        return checkpointed(self, self._forward, x, num_frames, context, capture)

    def _forward(self, x, num_frames, context, capture=None):      # x (B*T, L, C), context (B*L, 1, Cc)
        bt, length, c = x.shape
        x = x.reshape(bt // num_frames, num_frames, length, c).permute(0, 2, 1, 3).reshape(-1, num_frames, c)  # (B*L, T, C)
        x = x + self.ff_in(self.norm_in(x))
        x = x + self.attn1(self.norm1(x), capture=capture)
        x = x + self.attn2(self.norm2(x), context)
        x = x + self.ff(self.norm3(x))
        return x.reshape(bt // num_frames, length, num_frames, c).permute(0, 2, 1, 3).reshape(bt, length, c)  # (B*T, L, C)


class TransformerSpatioTemporalModel(nn.Module):
    """GN, proj_in, [spatial block, temporal block on (x + frame-index embedding), learned blend], proj_out, + x."""

    def __init__(self, ch: int, heads: int, context_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(32, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(ch, heads, context_dim)])
        self.temporal_transformer_blocks = nn.ModuleList([TemporalBasicTransformerBlock(ch, heads, context_dim)])
        self.time_pos_embed = TimestepEmbedding(ch, 4 * ch, ch)
        self.time_mixer = AlphaBlender(0.5)
        self.proj_out = nn.Linear(ch, ch)
        self.address = ""

    def forward(self, x, context, num_frames: int, capture=None):  # x (B*T, C, h, w), context (B*T, 1, Cc)
        bt, c, h, w = x.shape
        b = bt // num_frames
        # the temporal cross-attention sees frame 0's context at every pixel
        time_context = context.reshape(b, num_frames, *context.shape[1:])[:, 0]           # (B, 1, Cc)
        time_context = time_context.repeat_interleave(h * w, dim=0)                        # (B*h*w, 1, Cc)

        residual = x
        x = self.norm(x).permute(0, 2, 3, 1).reshape(bt, h * w, c)                         # (B*T, h*w, C)
        x = self.proj_in(x)
        frame_index = torch.arange(num_frames, device=x.device).repeat(b)                  # (B*T,)
        frame_emb = self.time_pos_embed(timestep_sinusoid(frame_index, c).to(x.dtype))[:, None]  # (B*T, 1, C)
        for spatial, temporal in zip(self.transformer_blocks, self.temporal_transformer_blocks):
            x = spatial(x, context, capture)
            x_t = temporal(x + frame_emb, num_frames, time_context, capture)
            x = self.time_mixer(x, x_t)
        x = self.proj_out(x).reshape(bt, h, w, c).permute(0, 3, 1, 2)                      # (B*T, C, h, w)
        out = x + residual
        if capture is not None and capture.wants(self.address):
            capture.record(self.address, out)
        return out
