"""A Wan-2.x-style video diffusion transformer (diffusers' WanTransformer3DModel, parameter for parameter).

The latent video is cut into (1, 2, 2) patches by a Conv3d over (frames, h, w); every token attends to
every other token of the clip (full spatio-temporal self-attention with 3-D rotary positions), then
cross-attends to a context, then runs a feed-forward; the timestep modulates each block through a
learned table plus a projection of its embedding (shift, scale, gate for attention and feed-forward).
Tokens are frame-major: token f*L + y*w' + x is frame f, cell (y, x), with L = h'*w' tokens per frame.

Where ours differs from Wan (all optional extras are absent from a plain Wan config, so diffusers'
tensors load strictly):
  - no text encoder: the context is whatever `encoder_hidden_states` holds (for the tiny world, the
    CLIP image embedding (B, 1, 64), through Wan's `text_embedder` projection);
  - the timestep is SVD's c_noise = 0.25 ln(sigma) (EDM), not a flow-matching timestep in [0, 1000];
    the network itself only sees a number through a sinusoid, as in Wan;
  - `time_ids_embedder` (config time_ids_dim): SVD's added time ids [fps - 1, motion bucket, noise aug]
    embedded like SVD's add_embedding and summed into the timestep embedding (they set the speed);
  - input and output are (B, T, C, h, w) as the SVD pipeline's (sampler/conditioning.py predict_v); the
    patch embedding still sees diffusers' (B, C, F, H, W) internally;
  - Wan 2.1 I2V's CLIP image tokens come as a separate argument `encoder_hidden_states_image` instead of
    being prepended to exactly 512 text tokens; Wan 2.2's per-token timesteps and FLF2V's image position
    embedding are not implemented;
  - the rotary table is computed on the fly for the clip's size (and cached), not held as a buffer, so the
    model can be built on the meta device and loaded tensor by tensor (weights/load.py).

Hooks for guidance (as model/unet.py): `capture` is an object with wants(address) and record(address,
*tensors). "blocks.{i}.attn1" records its (q, k, v) after the q/k RMSNorm and the rotary embedding, each
(B, heads, F*L, d), before the softmax; "blocks.{i}" records block i's output tokens (B, F*L, dim).
`stop_after="blocks.{i}"` ends the pass right after block i and returns None.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import DiTConfig
from model.layers import TimestepEmbedding, checkpointed, timestep_sinusoid


def layer_norm_fp32(x, norm: nn.LayerNorm):
    """LayerNorm computed and returned in float32 (Wan's FP32LayerNorm on a float32 input)."""
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps)


# ---------------------------------------------------------------- 3-D rotary positions
def rope_axis_split(head_dim: int) -> tuple:
    """Head-dim channels given to (frames, height, width): h = w = 2 * (d // 6), frames the rest (Wan)."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def rope_angles(grid: tuple, head_dim: int, theta: float = 10000.0) -> tuple:
    """(cos, sin), each (F*L, d/2) float32, of the rotation applied to channel pairs (2i, 2i+1) of a head.

    grid = (F', h', w') tokens. Each axis owns a slice of the pairs; along an axis of n channels the pair
    j turns by pos * theta^(-2j/n) for the token's position on that axis. Angles are computed in float64
    (as Wan's table) on the CPU and rounded once.
    """
    cos, sin = [], []
    for n_axis, axis_dim in zip(grid, rope_axis_split(head_dim)):
        freqs = 1.0 / theta ** (torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)  # (axis_dim/2,)
        angle = torch.arange(n_axis, dtype=torch.float64)[:, None] * freqs[None]               # (n_axis, axis_dim/2)
        cos.append(angle.cos().float())
        sin.append(angle.sin().float())
    f, h, w = grid

    def spread(parts):                                                  # per axis -> per token (F', h', w', d/2)
        pf = parts[0][:, None, None].expand(f, h, w, -1)
        ph = parts[1][None, :, None].expand(f, h, w, -1)
        pw = parts[2][None, None, :].expand(f, h, w, -1)
        return torch.cat([pf, ph, pw], dim=-1).reshape(f * h * w, -1)  # (F*L, d/2), frame-major
    return spread(cos), spread(sin)


def apply_rope(x, cos, sin):
    """Rotate channel pairs (2i, 2i+1) of x (B, heads, N, d) by the angles (cos, sin), each (N, d/2)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)                        # (B, heads, N, d/2) each
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, heads, N, d/2, 2)
    return out.flatten(-2).type_as(x)                                   # (B, heads, N, d)


# ---------------------------------------------------------------- attention and feed-forward
def split_heads(x, heads):                                              # (B, N, heads*d) -> (B, heads, N, d)
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x):                                                     # (B, heads, N, d) -> (B, N, heads*d)
    return x.transpose(1, 2).flatten(2)


class WanAttention(nn.Module):
    """Biased q/k/v/out projections, RMSNorm of q and k across all heads, optional rotary positions.

    Cross-attention of Wan I2V adds a second key/value set for the image tokens (add_k_proj, add_v_proj,
    norm_added_k): the two attention outputs are summed before the output projection.
    """

    def __init__(self, dim: int, heads: int, eps: float, added_kv_proj_dim: int = None):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.norm_q, self.norm_k = nn.RMSNorm(dim, eps=eps), nn.RMSNorm(dim, eps=eps)
        if added_kv_proj_dim is not None:
            self.add_k_proj = nn.Linear(added_kv_proj_dim, dim)
            self.add_v_proj = nn.Linear(added_kv_proj_dim, dim)
            self.norm_added_k = nn.RMSNorm(dim, eps=eps)
        self.address = ""                                               # module name, for capture

    def forward(self, x, context=None, rope=None, context_img=None, capture=None):
        """x (B, N, dim); context (B, S, dim) or None (self-attention); rope (cos, sin) or None;
        context_img (B, S_img, dim) for I2V cross-attention. Returns (B, N, dim)."""
        context = x if context is None else context
        q = split_heads(self.norm_q(self.to_q(x)), self.heads)          # (B, heads, N, d)
        k = split_heads(self.norm_k(self.to_k(context)), self.heads)    # (B, heads, S, d)
        v = split_heads(self.to_v(context), self.heads)                 # (B, heads, S, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if capture is not None and capture.wants(self.address):
            capture.record(self.address, q, k, v)
        out = F.scaled_dot_product_attention(q, k, v)                   # (B, heads, N, d)
        if context_img is not None:
            k_img = split_heads(self.norm_added_k(self.add_k_proj(context_img)), self.heads)  # (B, heads, S_img, d)
            v_img = split_heads(self.add_v_proj(context_img), self.heads)
            out = out + F.scaled_dot_product_attention(q, k_img, v_img)
        return self.to_out[0](merge_heads(out))                         # (B, N, dim)


class Projection(nn.Module):
    """Linear then GELU (`proj` holds the linear: diffusers' GELU activation module)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(self.proj(x), approximate=self.approximate)


class FeedForward(nn.Module):
    """Linear + GELU to `inner` width, then back to `dim_out` (keys net.0.proj and net.2, as in diffusers)."""

    def __init__(self, dim: int, inner: int, dim_out: int = None, approximate: str = "tanh"):
        super().__init__()
        self.net = nn.ModuleList([Projection(dim, inner, approximate), nn.Identity(),
                                  nn.Linear(inner, dim_out or dim)])
        self.checkpoint = False

    def forward(self, x):
        return checkpointed(self, self._forward, x)

    def _forward(self, x):
        return self.net[2](self.net[0](x))


# ---------------------------------------------------------------- blocks and embeddings
class WanTransformerBlock(nn.Module):
    """Modulated self-attention (rotary, all tokens), cross-attention to the context, modulated feed-forward.

    Modulation: (scale_shift_table + the block's slice of the timestep projection) -> shift, scale, gate
    for the attention and for the feed-forward; x + gate * f((1 + scale) * norm(x) + shift).
    """

    def __init__(self, dim: int, ffn_dim: int, heads: int, cross_attn_norm: bool, eps: float,
                 added_kv_proj_dim: int = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps, elementwise_affine=False)
        self.attn1 = WanAttention(dim, heads, eps)
        self.attn2 = WanAttention(dim, heads, eps, added_kv_proj_dim)
        self.norm2 = nn.LayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else None
        self.ffn = FeedForward(dim, ffn_dim, approximate="tanh")
        self.norm3 = nn.LayerNorm(dim, eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        self.checkpoint = False
        self.address = ""

    def forward(self, x, context, modulation, rope, context_img=None, capture=None):
        return checkpointed(self, self._forward, x, context, modulation, rope, context_img, capture)

    def _forward(self, x, context, modulation, rope, context_img, capture):
        """x (B, N, dim); context (B, S, dim); modulation (B, 6, dim) float32; rope (cos, sin) (N, d/2)."""
        shift, scale, gate, c_shift, c_scale, c_gate = (self.scale_shift_table + modulation.float()).chunk(6, dim=1)
        h = (layer_norm_fp32(x, self.norm1) * (1 + scale) + shift).type_as(x)          # (B, N, dim)
        x = (x.float() + self.attn1(h, rope=rope, capture=capture) * gate).type_as(x)
        h = layer_norm_fp32(x, self.norm2).type_as(x) if self.norm2 is not None else x
        x = x + self.attn2(h, context, context_img=context_img)
        h = (layer_norm_fp32(x, self.norm3) * (1 + c_scale) + c_shift).type_as(x)
        return (x.float() + self.ffn(h).float() * c_gate).type_as(x)


class TextProjection(nn.Module):
    """Linear, GELU (tanh), Linear: the context into the model width (Wan's text_embedder)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


class ImageEmbedding(nn.Module):
    """Wan I2V's image tokens into the model width: LayerNorm, Linear + GELU, Linear, LayerNorm (fp32 norms)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)
        self.ff = FeedForward(in_dim, in_dim, dim, approximate="none")
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x):                                                # (B, S_img, in_dim) -> (B, S_img, dim)
        h = self.ff(layer_norm_fp32(x, self.norm1).type_as(x))
        return layer_norm_fp32(h, self.norm2).type_as(h)


class ConditionEmbedder(nn.Module):
    """Timestep -> (temb (B, dim), its block projection (B, 6*dim)); context and image tokens -> model width."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim, self.freq_dim = cfg.dim, cfg.freq_dim
        self.time_embedder = TimestepEmbedding(cfg.freq_dim, dim)
        self.time_proj = nn.Linear(dim, 6 * dim)
        self.text_embedder = TextProjection(cfg.text_dim, dim)
        self.image_embedder = ImageEmbedding(cfg.image_dim, dim) if cfg.image_dim is not None else None

    def time(self, timestep):
        """(B,) -> temb (B, dim), float32 sinusoid through the embedder in its own dtype."""
        sinusoid = timestep_sinusoid(timestep, self.freq_dim)           # (B, freq_dim): [cos, sin]
        return self.time_embedder(sinusoid.to(self.time_embedder.linear_1.weight.dtype))


# ---------------------------------------------------------------- the model
class DiT(nn.Module):
    """WanTransformer3DModel with the SVD pipeline's interface (model/unet.py UNet.forward)."""

    CHECKPOINTING = ("none", "ff", "transformers", "blocks")

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        if cfg.qk_norm != "rms_norm_across_heads":
            raise ValueError(f"qk_norm {cfg.qk_norm!r}: only 'rms_norm_across_heads' (Wan's) is implemented")
        if cfg.attention_head_dim % 2 or min(rope_axis_split(cfg.attention_head_dim)) < 2:
            raise ValueError(f"attention_head_dim {cfg.attention_head_dim}: the 3-D rotary embedding needs an even "
                             "head width of at least 8")
        self.cfg = cfg
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
        self.condition_embedder = ConditionEmbedder(cfg)
        if cfg.time_ids_dim is not None:                                # ours (SVD's add_embedding)
            self.time_ids_embedder = TimestepEmbedding(3 * cfg.time_ids_dim, dim)
        self.blocks = nn.ModuleList([
            WanTransformerBlock(dim, cfg.ffn_dim, cfg.num_attention_heads, cfg.cross_attn_norm, cfg.eps,
                                cfg.added_kv_proj_dim) for _ in range(cfg.num_layers)])
        self.norm_out = nn.LayerNorm(dim, cfg.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, cfg.out_channels * math.prod(cfg.patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)
        for name, module in self.named_modules():                        # addresses for capture / stop_after
            if hasattr(module, "address"):
                module.address = name
        self._rope_cache = {}

    def init_weights(self):
        """From-scratch initialisation for training (Wan's, with DiT's zero-initialised modulation):
        Xavier-uniform linear and patch weights, zero biases; the timestep projection (time_proj) and the
        blocks' gate rows of scale_shift_table at zero, so every block starts as the identity and learns
        how far to open; the output projection at zero, so the first prediction is v = 0. Shift/scale rows
        keep Wan's N(0, 1/dim)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.xavier_uniform_(m.weight.flatten(1))            # a Conv3d as (out, in * kernel)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.condition_embedder.time_proj.weight)
        nn.init.zeros_(self.proj_out.weight)
        for block in self.blocks:
            with torch.no_grad():
                block.scale_shift_table[:, 2::3].zero_()                  # gate and c_gate (rows 2 and 5)
        return self

    def set_checkpointing(self, mode: str = "none"):
        """What a forward pass with gradients on recomputes in the backward pass instead of storing:
        none; ff (each block's feed-forward); transformers or blocks (each whole block). The same
        gradient for less memory (model.layers.checkpointed); modes named as UNet.set_checkpointing's."""
        if mode not in self.CHECKPOINTING:
            raise ValueError(f"checkpointing {mode!r}: expected one of {self.CHECKPOINTING}")
        for block in self.blocks:
            block.ffn.checkpoint = mode == "ff"
            block.checkpoint = mode in ("transformers", "blocks")
        return self

    def rope(self, grid: tuple, device) -> tuple:
        """(cos, sin) of the 3-D rotary embedding for a (F', h', w') token grid, each (F*L, d/2), cached."""
        key = (grid, str(device))
        if key not in self._rope_cache:
            cos, sin = rope_angles(grid, self.cfg.attention_head_dim)
            self._rope_cache[key] = (cos.to(device), sin.to(device))
        return self._rope_cache[key]

    def embed(self, timestep, added_time_ids, batch: int, dtype):
        """temb (B, dim) and the blocks' modulation (B, 6, dim)."""
        t = timestep.reshape(-1).expand(batch) if timestep.numel() == 1 else timestep.reshape(batch)
        temb = self.condition_embedder.time(t).to(dtype)                 # (B, dim)
        if self.cfg.time_ids_dim is not None:
            if added_time_ids is None:
                raise ValueError("this DiT has time_ids_dim set: added_time_ids (B, 3) are required")
            ids = timestep_sinusoid(added_time_ids.flatten(), self.cfg.time_ids_dim)    # (B*3, D)
            temb = temb + self.time_ids_embedder(ids.reshape(batch, -1).to(dtype))      # (B, dim)
        elif added_time_ids is not None:
            raise ValueError("added_time_ids given, but this DiT config has no time_ids_dim (a plain Wan model)")
        modulation = self.condition_embedder.time_proj(F.silu(temb)).unflatten(1, (6, -1))  # (B, 6, dim)
        return temb, modulation

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids=None, capture=None, stop_after=None,
                encoder_hidden_states_image=None):
        """sample (B, T, C_in, h, w); timestep 0-dim or (B,); encoder_hidden_states (B, S, text_dim);
        added_time_ids (B, 3) (required iff time_ids_dim); encoder_hidden_states_image (B, S_img, image_dim)
        for a Wan I2V config. Returns (B, T, C_out, h, w), or None after `stop_after`."""
        b, t, _, h, w = sample.shape
        pt, ph, pw = self.cfg.patch_size
        if t % pt or h % ph or w % pw:
            raise ValueError(f"sample {tuple(sample.shape)}: frames, height and width must be multiples of the "
                             f"patch size {self.cfg.patch_size}")
        grid = (t // pt, h // ph, w // pw)                               # (F', h', w') tokens
        timestep = torch.as_tensor(timestep, device=sample.device)
        temb, modulation = self.embed(timestep, added_time_ids, b, sample.dtype)
        context = self.condition_embedder.text_embedder(encoder_hidden_states)          # (B, S, dim)
        context_img = None
        if encoder_hidden_states_image is not None:
            if self.condition_embedder.image_embedder is None:
                raise ValueError("encoder_hidden_states_image given, but this DiT config has no image_dim")
            context_img = self.condition_embedder.image_embedder(encoder_hidden_states_image)  # (B, S_img, dim)
        rope = self.rope(grid, sample.device)

        x = self.patch_embedding(sample.transpose(1, 2))                  # (B, dim, F', h', w')
        x = x.flatten(2).transpose(1, 2).contiguous()                    # (B, F'*h'*w', dim), frame-major
        if torch.is_autocast_enabled(sample.device.type):               # mixed precision: the residual stream
            x = x.float()                                                # stays float32 (blocks keep its dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, context, modulation, rope, context_img, capture)
            if capture is not None and capture.wants(block.address):
                capture.record(block.address, x)
            if stop_after == block.address:
                return None

        shift, scale = (self.scale_shift_table + temb[:, None]).chunk(2, dim=1)       # (B, 1, dim) each
        x = (layer_norm_fp32(x, self.norm_out) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)                                             # (B, N, C_out*pt*ph*pw)
        x = x.reshape(b, *grid, pt, ph, pw, -1)                          # (B, F', h', w', pt, ph, pw, C)
        x = x.permute(0, 1, 4, 7, 2, 5, 3, 6)                            # (B, F', pt, C, h', ph, w', pw)
        return x.reshape(b, t, -1, h, w)                                 # (B, T, C_out, h, w)
