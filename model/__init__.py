"""Hand-written networks whose parameter names mirror diffusers (U-Net, VAE, Wan's video transformer) and
transformers (CLIP), their configs and the named presets (svd, svd_xt; tiny for unit tests; tiny_world = the
shipped sgi2v-tiny; tiny_world_dit = the same world with a video DiT as the denoiser)."""
from model.clip import CLIPImageEncoder
from model.config import (PRESETS, CLIPConfig, DiTConfig, SamplingDefaults, SVDConfig, UNetConfig, VAEConfig, svd,
                          svd_xt, tiny, tiny_world, tiny_world_dit)
from model.dit import DiT
from model.unet import UNet
from model.vae import VAE

__all__ = ["CLIPConfig", "CLIPImageEncoder", "DiT", "DiTConfig", "PRESETS", "SVDConfig", "SamplingDefaults", "UNet",
           "UNetConfig", "VAE", "VAEConfig", "svd", "svd_xt", "tiny", "tiny_world", "tiny_world_dit"]
