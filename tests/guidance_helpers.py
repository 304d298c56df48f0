"""Shared pieces of the guidance tests: the tiny random U-Net (model.config.tiny()), a random batch-1
conditioning and a 1-box trajectory. CPU, float32."""
import functools

import numpy as np
import torch

import model
from sampler.conditioning import Conditioning
from sampler.schedule import karras_sigmas
from tests.oracles import random_state_dict

FRAMES = 4                                   # model.config.tiny() is built for 4 frames


@functools.lru_cache(maxsize=None)
def tiny_unet(seed: int = 0):
    """The tiny U-Net with random weights (up_blocks[2]: 32 channels, 2 heads of 16)."""
    unet = model.UNet(model.tiny().unet)
    unet.load_state_dict(random_state_dict(unet, seed), strict=True)
    return unet.eval()


def random_cond(size=(8, 8), seed=1):
    """A batch-1 (conditional half) Conditioning for the tiny U-Net."""
    g = torch.Generator().manual_seed(seed)
    return Conditioning(torch.randn(1, 1, 32, generator=g), torch.randn(1, FRAMES, 4, *size, generator=g),
                        torch.tensor([[6.0, 127.0, 0.02]]))


def noisy_latent(size=(8, 8), step=3, num_steps=10, seed=2):
    """(latent (1, F, 4, h, w) at the noise level of `step`, sigma of that step)."""
    sigma = karras_sigmas(num_steps)[step]
    return torch.randn(1, FRAMES, 4, *size, generator=torch.Generator().manual_seed(seed)) * sigma, sigma


def moving_box():
    """(1, F, 4) latent boxes [top, left, bottom, right): a 3x3 box moving right one cell per frame."""
    return np.array([[[2, 1, 5, 4], [2, 2, 5, 5], [2, 3, 5, 6], [2, 4, 5, 7]]])
