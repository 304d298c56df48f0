"""Hand-written SVD networks whose parameter names mirror diffusers (U-Net, VAE) and transformers (CLIP),
their configs and the named presets (svd, svd_xt; tiny for unit tests; tiny_world = the shipped sgi2v-tiny)."""
from model.clip import CLIPImageEncoder
from model.config import (PRESETS, CLIPConfig, SamplingDefaults, SVDConfig, UNetConfig, VAEConfig, svd, svd_xt, tiny,
                          tiny_world)
from model.unet import UNet
from model.vae import VAE

__all__ = ["CLIPConfig", "CLIPImageEncoder", "PRESETS", "SVDConfig", "SamplingDefaults", "UNet", "UNetConfig", "VAE",
           "VAEConfig", "svd", "svd_xt", "tiny", "tiny_world"]
