"""Hand-written SVD networks whose parameter names mirror diffusers (U-Net, VAE) and transformers (CLIP)."""
from model.clip import CLIPImageEncoder
from model.config import CLIPConfig, SVDConfig, UNetConfig, VAEConfig, svd, svd_xt, tiny
from model.unet import UNet
from model.vae import VAE
