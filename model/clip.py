"""CLIP ViT-H/14 image tower with its projection (transformers' CLIPVisionModelWithProjection).

forward(pixel_values (B, 3, 224, 224), already CLIP-normalised) -> image_embeds (B, projection_dim).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.attention import merge_heads, split_heads
from model.config import CLIPConfig


class CLIPAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):                                          # (B, L, C)
        q, k, v = (split_heads(f(x), self.heads) for f in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


class CLIPMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))                      # exact (erf) GELU, not quick_gelu


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = CLIPAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        num_positions = (cfg.image_size // cfg.patch_size) ** 2 + 1
        self.class_embedding = nn.Parameter(torch.zeros(cfg.hidden_size))
        self.patch_embedding = nn.Conv2d(3, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.position_embedding = nn.Embedding(num_positions, cfg.hidden_size)

    def forward(self, pixels):                                     # (B, 3, 224, 224)
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)            # (B, 256, C)
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)  # (B, 1, C)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight      # (B, 257, C)


class CLIPVisionTransformer(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)  # (sic) the official name
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([CLIPEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, pixels):
        x = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x[:, 0])                        # the class token: (B, C)


class CLIPImageEncoder(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_model = CLIPVisionTransformer(cfg)
        self.visual_projection = nn.Linear(cfg.hidden_size, cfg.projection_dim, bias=False)

    def forward(self, pixel_values):
        return self.visual_projection(self.vision_model(pixel_values))
