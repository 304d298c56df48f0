"""Euler sampler for the EDM probability-flow ODE (Karras et al. 2022, Algorithm 1 without the
second-order correction and with S_churn = 0; k-diffusion `sample_euler`).

Numerics follow diffusers' EulerDiscreteScheduler.step: the step is computed in float32 and
the new latent is cast back to the latent's dtype.
"""

def v_to_x0(v, x, sigma):
    """Denoised estimate from a v-prediction: x0 = c_skip x + c_out v (EDM, sigma_data = 1).

    v, x: (B, T, C, h, w); sigma: 0-dim float32 CPU tensor. Returns float32 x0 and does NOT cast it
    back: the Euler step consumes it in float32. Written exactly as diffusers does (v times c_out in
    v's own dtype, x upcast and divided by sigma^2 + 1) so that the result is bit-identical.
    """
    c_out = -sigma / (sigma**2 + 1) ** 0.5
    return v * c_out + x.float() / (sigma**2 + 1)


def euler_step(x, x0, sigma, sigma_next):
    """One Euler step from sigma to sigma_next: d = (x - x0)/sigma, x' = x + (sigma_next - sigma) d.
    Computed in float32, returned in x's dtype. With sigma_next = 0 this gives x' = x0 (up to rounding)."""
    x32 = x.float()
    d = (x32 - x0) / sigma                                               # ODE derivative dx/dsigma
    return (x32 + d * (sigma_next - sigma)).to(x.dtype)


def sample_euler(denoise, x, sigmas, on_step=None, progress=None):
    """Integrate the probability-flow ODE from sigmas[0] down to sigmas[-1] (= 0) with Euler steps.

    denoise(x, sigma, i) -> x0 estimate, same shape as x (float32 or x's dtype).
    x: initial latent, already scaled to sigmas[0] (e.g. randn * init_noise_sigma).
    sigmas: (N+1,) float32 CPU tensor from `karras_sigmas`.
    on_step(i, x, sigma) -> x: optional hook called BEFORE the denoiser at step i; it may return a
        modified latent (latent-optimisation guidance plugs in here).
    progress: optional wrapper of an iterable, e.g. `tqdm`.
    """
    steps = range(len(sigmas) - 1)
    if progress is not None:
        steps = progress(steps)
    for i in steps:
        sigma, sigma_next = sigmas[i], sigmas[i + 1]                     # 0-dim float32 CPU tensors
        if on_step is not None:
            x = on_step(i, x, sigma)
        x0 = denoise(x, sigma, i)
        x = euler_step(x, x0, sigma, sigma_next)
    return x
