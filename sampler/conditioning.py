"""SVD image-to-video conditioning and the generation loop (Blattmann et al. 2023, "Stable Video
Diffusion"), following diffusers' StableVideoDiffusionPipeline step by step so that results match
it bit-for-bit on the same hardware (tests/test_sampler.py, tests/test_pipeline_parity.py).

Models are arguments: `clip(pixels) -> (B, 1024)`, `vae.encode(x) -> mode`, `vae.decode(z, num_frames)`,
`unet(sample, c_noise, embeds, time_ids, capture=None, stop_after=None) -> v` (model/unet.py). Settings left
None come from the model's config (`generate(..., config=svd.cfg)`), as `python run.py` takes them.
"""
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.config import SVDConfig, svd

from .euler import sample_euler, v_to_x0
from .schedule import edm_scalings, init_noise_sigma, karras_sigmas, scale_input

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VAE_SCALING_FACTOR = 0.18215           # diffusion latents = VAE mode * this (image latents are NOT scaled)


# ---------------------------------------------------------------- image preprocessing
def pil_to_tensor(pil):
    """PIL image -> (1, C, H, W) float32 in [0, 1] (uint8 / 255 in float32, as diffusers).
    A channels-last view of the (1, H, W, C) array, with the same strides as diffusers' tensor:
    conv2d picks a different kernel for channels-last input, which changes the last bits."""
    array = np.array(pil).astype(np.float32)[None] / 255.0              # (1, H, W, C)
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def preprocess_image(pil, height, width):
    """Image for the VAE branch: PIL Lanczos resize to (width, height), then [0,1] -> [-1,1].
    Returns (1, 3, H, W) float32 (diffusers VideoProcessor.preprocess)."""
    pil = pil.convert("RGB").resize((width, height), resample=Image.Resampling.LANCZOS)
    return 2.0 * pil_to_tensor(pil) - 1.0


def gaussian_kernel1d(size, sigma, dtype):
    """Normalised Gaussian taps at offsets -size//2 .. size//2 (size odd). (size,)"""
    offsets = torch.arange(size, dtype=dtype) - size // 2
    sigma = torch.tensor(sigma, dtype=dtype)
    g = torch.exp(-offsets.pow(2.0) / (2 * sigma.pow(2.0)))
    return g / g.sum()


def blur_along(x, kernel, dim):
    """Depthwise 1-D convolution along dim -1 (width) or -2 (height), reflect padding. x: (B, C, H, W)."""
    c, k, p = x.shape[1], kernel.numel(), (kernel.numel() - 1) // 2
    if dim == -1:
        weight, pad = kernel.view(1, 1, 1, k), (p, p, 0, 0)
    else:
        weight, pad = kernel.view(1, 1, k, 1), (0, 0, p, p)
    weight = weight.to(x.device, x.dtype).expand(c, -1, -1, -1).contiguous()   # (C, 1, kh, kw)
    return F.conv2d(F.pad(x, pad, mode="reflect"), weight, groups=c)


def resize_with_antialiasing(x, size):
    """Gaussian blur (skimage's sigma rule) then bicubic resize with align_corners=True, as the SVD
    pipeline resizes the CLIP input. x: (B, C, H, W); size: (h, w). Aspect ratio is not preserved."""
    h, w = x.shape[-2:]
    sigmas = [max((h / size[0] - 1.0) / 2.0, 0.001), max((w / size[1] - 1.0) / 2.0, 0.001)]
    ks = [int(max(4.0 * s, 3)) for s in sigmas]
    ks = [k + 1 if k % 2 == 0 else k for k in ks]                       # odd kernel sizes
    x = blur_along(x, gaussian_kernel1d(ks[1], sigmas[1], x.dtype), dim=-1)   # x pass first
    x = blur_along(x, gaussian_kernel1d(ks[0], sigmas[0], x.dtype), dim=-2)   # then y
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


def clip_pixels(image, mean=CLIP_MEAN, std=CLIP_STD):
    """Image in [-1, 1] (B, 3, H, W) -> CLIP input (B, 3, 224, 224): antialiased resize,
    back to [0, 1] (no clamp), then (x - mean) / std with float32 statistics. Returned contiguous
    (NCHW), as transformers' image processor returns it: CLIP's patch conv rounds differently on
    a channels-last input."""
    x = (resize_with_antialiasing(image, (224, 224)) + 1.0) / 2.0
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def encode_image_embedding(clip, image):
    """CLIP image embedding of the clean image in [-1, 1] (B, 3, H, W): (B, 1, 1024) in CLIP's dtype.
    The pixels are prepared where `image` lives (diffusers: on the CPU), then moved to CLIP."""
    param = next(clip.parameters())
    pixels = clip_pixels(image.float()).to(param.device, param.dtype)
    return clip(pixels)[:, None]                                         # (B, 1, D)


def encode_image_latents(vae, image):
    """VAE posterior mode of image (B, 3, H, W), computed in float32 like diffusers' force_upcast
    (the VAE is moved to float32 for the call and back). NOT multiplied by the scaling factor."""
    dtype = next(vae.parameters()).dtype
    vae.float()
    try:
        return vae.encode(image.float())                                 # (B, 4, H/8, W/8) float32
    finally:
        vae.to(dtype)


# ---------------------------------------------------------------- conditioning tensors
def added_time_ids(fps, motion_bucket_id, noise_aug_strength, batch, dtype):
    """SVD micro-conditioning [fps - 1, motion bucket, noise augmentation], (batch, 3)."""
    ids = torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], dtype=dtype)
    return ids.repeat(batch, 1)


def cfg_scales(num_frames, min_g=1.0, max_g=3.0):
    """Per-frame guidance scale, linear from min_g (frame 0) to max_g: (1, T, 1, 1, 1) float32."""
    return torch.linspace(min_g, max_g, num_frames).view(1, num_frames, 1, 1, 1)


def classifier_free_guidance(v_uncond, v_cond, scales):
    """Classifier-free guidance (Ho & Salimans 2022): v_u + g (v_c - v_u), g per frame."""
    return v_uncond + scales * (v_cond - v_uncond)


@dataclass
class Conditioning:
    """U-Net conditioning, batch [uncond, cond] (or cond only after `.cond()`)."""
    embeds: torch.Tensor           # (B, 1, 1024) CLIP image embedding; zeros for uncond
    latents: torch.Tensor          # (B, T, 4, h, w) first-frame VAE latents; zeros for uncond
    time_ids: torch.Tensor         # (B, 3) added time ids, the same in both halves

    def cond(self):
        return Conditioning(self.embeds[1:], self.latents[1:], self.time_ids[1:])


def predict_v(unet, x, sigma, c, **unet_kwargs):
    """One U-Net call on noisy latents x (B, T, 4, h, w) at noise level sigma (0-dim float32 CPU).
    c_in scales the noisy half only; channels are [noisy(4), cond(4)]. Returns v (B, T, 4, h, w)
    (or None when unet_kwargs has stop_after)."""
    c_noise = edm_scalings(sigma)[3].to(x.device)
    sample = torch.cat([scale_input(x, sigma), c.latents], dim=2)        # (B, T, 8, h, w)
    return unet(sample, c_noise, c.embeds, c.time_ids, **unet_kwargs)


def cfg_denoiser(unet, c, scales):
    """denoise(x, sigma, i) -> x0 for sample_euler: one batched [uncond, cond] call, per-frame CFG,
    v -> x0 with the EDM scalings. x: (1, T, 4, h, w)."""
    @torch.no_grad()
    def denoise(x, sigma, i):
        v_uncond, v_cond = predict_v(unet, torch.cat([x, x]), sigma, c).chunk(2)
        return v_to_x0(classifier_free_guidance(v_uncond, v_cond, scales), x, sigma)
    return denoise


def randn(shape, generator, device, dtype):
    """torch.randn on the generator's device (CPU generator -> CPU draw), then moved to device."""
    draw_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_device, dtype=dtype).to(device)


def decode_latents(vae, latents, chunk_size=None, scaling_factor=VAE_SCALING_FACTOR):
    """(B, T, 4, h, w) latents -> (B, T, 3, H, W) float32 in [-1, 1]-ish, decoding chunk_size frames
    at a time (temporal mixing stays inside a chunk, so the result depends on chunk_size)."""
    b, t = latents.shape[:2]
    z = latents.flatten(0, 1) * (1 / scaling_factor)                     # (B*T, 4, h, w)
    z = z.to(next(vae.parameters()).dtype)
    chunk_size = chunk_size or t
    frames = [vae.decode(chunk, num_frames=chunk.shape[0]) for chunk in z.split(chunk_size)]
    return torch.cat(frames).reshape(b, t, *frames[0].shape[1:]).float()


def to_uint8(frames):
    """(T, 3, H, W) in [-1, 1] -> uint8 numpy (T, H, W, 3), rounding half to even like diffusers."""
    x = (frames * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().float().numpy()
    return (x * 255).round().astype(np.uint8)


# ---------------------------------------------------------------- the pipeline
def sampling_defaults(config: SVDConfig = None) -> dict:
    """generate()'s default for each of its settings, from a model config (None: SVD's, model.config.svd()):
    num_frames from config.unet, scaling_factor from config.vae, the rest from config.sampling (height,
    width, num_steps, fps, motion_bucket_id, noise_aug_strength, min/max_guidance, decode_chunk_size)."""
    config = config or svd()
    return dict(asdict(config.sampling), num_frames=config.unet.num_frames, scaling_factor=config.vae.scaling_factor)


def generate(unet, vae, clip, pil_image, num_frames=None, height=None, width=None, num_steps=None, fps=None,
             motion_bucket_id=None, noise_aug_strength=None, min_guidance=None, max_guidance=None,
             decode_chunk_size=None, generator=None, dtype=None, device=None, on_step=None, progress=None,
             scaling_factor=None, make_on_step=None, offload=False, config: SVDConfig = None):
    """Image -> video with SVD, step by step as diffusers' StableVideoDiffusionPipeline
    (random draws in the same order and shapes). Returns uint8 frames (T, H, W, 3).
    config: the model's SVDConfig (`svd.cfg` of weights.load_svd); every setting left None takes its
    default from it (sampling_defaults; the shipped tiny model: 128x128, 8 frames, 16 steps, motion bucket
    80, ...). Without a config, SVD's (576x1024, 14 frames, 50 steps, motion bucket 127, ...).
    dtype: the models' dtype (embeddings, latents, time ids) and device: where sampling runs; None: the
    U-Net's. on_step/progress go to sample_euler;
    `scaling_factor` is the VAE's (cfg.vae.scaling_factor: 0.18215 for SVD, its own for sgi2v-tiny);
    decode_chunk_size: frames the VAE decodes at once (SVD's default 8).
    `make_on_step(c, sigmas) -> on_step`, instead of on_step, builds the hook once the Conditioning c and
    the schedule exist (guidance that runs the U-Net's conditional branch, e.g. guidance/sg_i2v.py).
    Gradients are off except inside on_step (which may enable them for latent optimisation).
    offload: each network on `device` only while it works (CLIP and the VAE on the CPU during sampling,
    the U-Net on the CPU during decoding), for GPUs with little memory; they stay where they were last
    moved (CLIP and the U-Net on the CPU)."""
    given = dict(num_frames=num_frames, height=height, width=width, num_steps=num_steps, fps=fps,
                 motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength, min_guidance=min_guidance,
                 max_guidance=max_guidance, decode_chunk_size=decode_chunk_size, scaling_factor=scaling_factor)
    defaults = sampling_defaults(config)
    s = {k: defaults[k] if v is None else v for k, v in given.items()}           # every setting, now known
    weight = next(unet.parameters())
    dtype, device = dtype or weight.dtype, torch.device(device or weight.device)
    pil_image = pil_image.convert("RGB")
    # 1. CLIP embedding of the clean, full-size image (prepared on the CPU); [uncond = zeros, cond]
    with torch.no_grad():
        embeds = encode_image_embedding(clip, pil_to_tensor(pil_image) * 2.0 - 1.0).to(dtype)
    embeds = torch.cat([torch.zeros_like(embeds), embeds])                         # (2, 1, D)

    # 2. VAE latents of the noise-augmented image (random draw #1), float32 encode, not scaled
    image = preprocess_image(pil_image, s["height"], s["width"]).to(device)       # (1, 3, H, W)
    image = image + s["noise_aug_strength"] * randn(image.shape, generator, device, image.dtype)
    with torch.no_grad():
        image_latents = encode_image_latents(vae, image).to(dtype)                 # (1, 4, h, w)
    image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
    image_latents = image_latents[:, None].repeat(1, s["num_frames"], 1, 1, 1)     # (2, T, 4, h, w)

    if offload:
        clip.to("cpu"), vae.to("cpu"), unet.to(device)
    time_ids = added_time_ids(s["fps"], s["motion_bucket_id"], s["noise_aug_strength"], 2, dtype).to(device)  # (2, 3)
    c = Conditioning(embeds, image_latents, time_ids)

    # 3. schedule and initial latent (random draw #2)
    sigmas = karras_sigmas(s["num_steps"])                                         # (N+1,) CPU float32
    shape = (1, s["num_frames"], *image_latents.shape[2:])                         # (1, T, 4, h, w)
    x = randn(shape, generator, device, dtype) * init_noise_sigma(sigmas.max())

    # 4. Euler sampling with per-frame classifier-free guidance
    scales = cfg_scales(s["num_frames"], s["min_guidance"], s["max_guidance"]).to(device, dtype)
    if make_on_step is not None:
        if on_step is not None:
            raise ValueError("give on_step or make_on_step, not both")
        on_step = make_on_step(c, sigmas)
    x = sample_euler(cfg_denoiser(unet, c, scales), x, sigmas, on_step=on_step, progress=progress)

    # 5. decode
    if offload:
        unet.to("cpu"), vae.to(device)
    with torch.no_grad():
        frames = decode_latents(vae, x.detach(), s["decode_chunk_size"], s["scaling_factor"])  # (1, T, 3, H, W)
    return to_uint8(frames[0])
