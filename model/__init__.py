"""Hand-written SVD networks whose parameter names mirror diffusers (U-Net, VAE, Wan's video transformer) and
transformers (CLIP)."""
from model.clip import CLIPImageEncoder
from model.config import CLIPConfig, DiTConfig, SVDConfig, UNetConfig, VAEConfig, svd, svd_xt, tiny, tiny_world_dit
from model.dit import DiT
from model.unet import UNet
from model.vae import VAE
