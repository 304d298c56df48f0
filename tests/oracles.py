"""Reference modules (diffusers / transformers) built from OUR configs, and random weights for parity.

Used by the parity tests (tiny configs, CPU) and by bench/ (full configs, GPU). Never imported at run time.
"""
import torch

from model.config import CLIPConfig, UNetConfig, VAEConfig


def diffusers_unet(cfg: UNetConfig):
    from diffusers import UNetSpatioTemporalConditionModel
    return UNetSpatioTemporalConditionModel(
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, block_out_channels=cfg.block_out_channels,
        num_attention_heads=cfg.num_attention_heads, layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim, addition_time_embed_dim=cfg.addition_time_embed_dim,
        projection_class_embeddings_input_dim=cfg.projection_class_embeddings_input_dim, num_frames=cfg.num_frames)


def diffusers_vae(cfg: VAEConfig):
    from diffusers import AutoencoderKLTemporalDecoder
    n = len(cfg.block_out_channels)
    return AutoencoderKLTemporalDecoder(
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, scaling_factor=cfg.scaling_factor)


def transformers_clip(cfg: CLIPConfig):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, patch_size=cfg.patch_size, image_size=cfg.image_size,
        projection_dim=cfg.projection_dim, layer_norm_eps=cfg.layer_norm_eps, hidden_act="gelu"))


@torch.no_grad()
def random_state_dict(module: torch.nn.Module, seed: int, device="cpu") -> dict:
    """Random weights that keep activations O(1) at any depth, and exercise every parameter.

    Matrices and kernels: N(0, 1/fan_in); norm weights 1 + N(0, 0.1); biases N(0, 0.1); mix factors N(0, 1)
    (so the spatial/temporal blends are not all 0.5). Drawn in sorted key order, in fp32, on `device`
    (the CPU for tests; the GPU for full-size benchmarks, where drawing 2.3e9 values on the CPU is slow).
    """
    g = torch.Generator(device).manual_seed(seed)
    out = {}
    for key, t in sorted(module.state_dict().items()):
        if t.ndim >= 2:
            fan_in = t[0].numel()
            value = torch.randn(t.shape, generator=g, device=device) / fan_in ** 0.5
        elif "norm" in key and key.endswith("weight"):
            value = 1 + 0.1 * torch.randn(t.shape, generator=g, device=device)
        elif "mix_factor" in key:
            value = torch.randn(t.shape, generator=g, device=device)
        else:
            value = 0.1 * torch.randn(t.shape, generator=g, device=device)
        out[key] = value
    return out
