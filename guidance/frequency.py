"""High-frequency restore after latent optimisation (SG-I2V paper, Sec. 3.4, Eq. 2; docs/method.md §5).

Optimising the latent for the trajectory loss also disturbs its high frequencies, which shows up
as artefacts. After the iterations of a denoising step, the optimised latent z* keeps only its low
frequencies and takes the high ones back from the latent z before the optimisation:

    z~ = IFFT2( FFT2(z*) . L  +  FFT2(z) . (1 - L) ),   real part, over the (h, w) axes,

with L a Butterworth low-pass filter of cut-off gamma (0.5) and order n (4) in fftshift-ed
frequency coordinates. Matches the reference (utils.py `butterworth_low_pass_filter`, pipeline.py
`optimize_latent`): d^2 = (2u/h - 1)^2 + (2v/w - 1)^2 for row u, column v (h and w, not h - 1), L =
1 / (1 + (d^2 / gamma^2)^n), an all-zero L for gamma = 0; fftn over (-2, -1), fftshift, mix,
ifftshift, ifftn, real part; all in float32.

About gamma = 1: in this formula (and in the reference) gamma = 1 is NOT "no restore": L is 1 only
at the zero frequency, 0.5 where d^2 = 1 (e.g. the middle of each spectrum edge) and 1/17 at the
corners, so about a quarter of the spectrum's weight still comes from z. The reference's only way
to skip the restore is its flag latent_fft_post_merge=False. Here that is cutoff=None (or inf):
the optimised latent is returned untouched.
"""
from __future__ import annotations

import math

import torch


def butterworth_lowpass(h: int, w: int, cutoff: float = 0.5, order: int = 4, device=None) -> torch.Tensor:
    """(h, w) float32 L(u, v) = 1 / (1 + (d^2 / cutoff^2)^order), d^2 = (2u/h - 1)^2 + (2v/w - 1)^2,
    for the fftshift-ed spectrum (zero frequency at row h // 2, column w // 2). cutoff = 0 gives
    all zeros (the reference's special case). Computed in float64 then cast, as the reference."""
    if cutoff < 0 or order <= 0:
        raise ValueError(f"need cutoff >= 0 and order > 0, got cutoff={cutoff}, order={order}")
    if cutoff == 0:
        return torch.zeros(h, w, dtype=torch.float32, device=device)
    u = 2 * torch.arange(h, dtype=torch.float64) / h - 1               # (h,) in [-1, 1)
    v = 2 * torch.arange(w, dtype=torch.float64) / w - 1               # (w,)
    d2 = u[:, None] ** 2 + v[None, :] ** 2                             # (h, w)
    lowpass = 1 / (1 + (d2 / cutoff ** 2) ** order)
    return lowpass.to(device=device, dtype=torch.float32)


def restore_high_frequency(z_optimised: torch.Tensor, z_original: torch.Tensor,
                           cutoff: float | None = 0.5, order: int = 4) -> torch.Tensor:
    """Eq. 2. z_optimised, z_original (..., h, w) (e.g. (B, F, 4, h, w)); returns the low
    frequencies of z_optimised with the high frequencies of z_original, in z_optimised's dtype.
    cutoff=None or inf: no restore, z_optimised is returned as it is."""
    if cutoff is None or math.isinf(cutoff):
        return z_optimised
    if z_optimised.shape != z_original.shape:
        raise ValueError(f"shapes differ: {tuple(z_optimised.shape)} vs {tuple(z_original.shape)}")
    axes = (-2, -1)
    h, w = z_optimised.shape[-2:]
    lowpass = butterworth_lowpass(h, w, cutoff, order, device=z_optimised.device)  # (h, w)
    spectrum_opt = torch.fft.fftshift(torch.fft.fftn(z_optimised.float(), dim=axes), dim=axes)
    spectrum_orig = torch.fft.fftshift(torch.fft.fftn(z_original.float(), dim=axes), dim=axes)
    mixed = spectrum_opt * lowpass + spectrum_orig * (1 - lowpass)      # (..., h, w) complex64
    restored = torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=axes), dim=axes).real
    return restored.to(z_optimised.dtype)
