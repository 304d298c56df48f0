"""Noise schedule and EDM preconditioning for SVD (Karras et al. 2022, "Elucidating the Design
Space of Diffusion-Based Generative Models", Eq. 5 and Table 1, with sigma_data = 1 and the
v-prediction sign of SVD).

Bit-parity notes (vs diffusers EulerDiscreteScheduler, SVD config):
- the sigma table is computed in numpy float64 (np.linspace ramp), then rounded once to float32;
- per-step scalars are 0-dim float32 CPU tensors, as in diffusers. Keep `sigmas` on the CPU: a
  0-dim CPU tensor acts as a scalar inside CUDA kernels, and that changes the last bit.
"""
import numpy as np
import torch


def karras_sigmas(num_steps, sigma_min=0.002, sigma_max=700.0, rho=7.0):
    """EDM time steps (Karras et al. 2022, Eq. 5), with a final 0 appended.

    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0..N-1.
    Returns a float32 tensor (num_steps + 1,). Computed in float64 with numpy, like diffusers
    (torch.linspace in float64 differs from np.linspace in the last bit for some i).
    """
    ramp = np.linspace(0, 1, num_steps)                                  # (N,) float64
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)          # (N+1,)
    return torch.from_numpy(sigmas)


def edm_scalings(sigma):
    """EDM preconditioning for v-prediction, sigma_data = 1 (Karras et al. 2022, Table 1;
    sgm `VScalingWithEDMcNoise`): D(x; s) = c_skip x + c_out F(c_in x; c_noise).

    c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1), c_in = 1/sqrt(s^2+1), c_noise = 0.25 ln s.
    `sigma` is a float or 0-dim tensor; each result is a 0-dim float32 tensor.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    c_skip = 1 / (sigma**2 + 1)
    c_out = -sigma / (sigma**2 + 1) ** 0.5
    c_in = 1 / (sigma**2 + 1) ** 0.5
    c_noise = 0.25 * sigma.log()
    return c_skip, c_out, c_in, c_noise


def scale_input(x, sigma):
    """c_in * x, written as x / sqrt(sigma^2 + 1) to match diffusers' scale_model_input bit-for-bit.
    x keeps its dtype; sigma is a 0-dim float32 tensor."""
    return x / (sigma**2 + 1) ** 0.5


def init_noise_sigma(sigma_max):
    """Std of the initial latent noise, sqrt(sigma_max^2 + 1) (the latent is x / c_in at sigma_max;
    diffusers' "leading" spacing). 0-dim float32 tensor: 700.000732 for sigma_max = 700."""
    sigma_max = torch.as_tensor(sigma_max, dtype=torch.float32)
    return (sigma_max**2 + 1) ** 0.5
