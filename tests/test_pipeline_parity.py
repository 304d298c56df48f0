"""Whole image-to-video pipeline vs diffusers' StableVideoDiffusionPipeline, tiny random models, CPU.

Same weights, same seed: checks conditioning, random-draw order, CFG, the Euler loop and chunked
decoding together. Two comparisons:
1. diffusers' own networks behind thin adapters, run through our `generate`: must be bit-identical,
   in float32 and float16 (the sampler and conditioning do exactly the float operations diffusers does);
2. our networks (state dicts loaded with strict=True): tolerance, because the networks themselves
   agree only to ~1e-5 relative (see test_model_parity.py), and the sampler amplifies that: a 3e-6
   change in the image latents alone moves this tiny random model's final latent by 1.7e-4 (scale 23).
   Observed error is ~8e-6 x scale; we allow 1e-4 x scale. A real bug (CFG halves swapped, c_in on the
   wrong half, scaled image latents, fps not reduced) moves the output by O(scale).
"""
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
model = pytest.importorskip("model")
pytest.importorskip("model.unet")

from diffusers import StableVideoDiffusionPipeline  # noqa: E402
from transformers import CLIPImageProcessor  # noqa: E402

from sampler.conditioning import generate  # noqa: E402
from tests.oracles import diffusers_unet, diffusers_vae, random_state_dict, transformers_clip  # noqa: E402
from tests.test_sampler import svd_scheduler  # noqa: E402

SETTINGS = dict(num_frames=4, height=64, width=64, fps=6, motion_bucket_id=100, noise_aug_strength=0.05,
                decode_chunk_size=3)                                  # chunks of 3 + 1 frames
STEPS, MIN_G, MAX_G = 3, 1.2, 2.5
REL_TOL = 1e-4


class RefUNet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids):
        return self.unet(sample, timestep, encoder_hidden_states, added_time_ids, return_dict=False)[0]


class RefCLIP(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        return self.clip(pixel_values).image_embeds


class RecordingVAE(torch.nn.Module):
    """A VAE with our API (diffusers' one adapted, or ours), recording the latents given to decode."""
    def __init__(self, vae, is_diffusers):
        super().__init__()
        self.vae, self.is_diffusers, self.decoded = vae, is_diffusers, []

    def encode(self, x):
        return self.vae.encode(x).latent_dist.mode() if self.is_diffusers else self.vae.encode(x)

    def decode(self, z, num_frames):
        self.decoded.append(z)
        out = self.vae.decode(z, num_frames=num_frames)
        return out.sample if self.is_diffusers else out


def build_models():
    """Tiny diffusers pipeline with random weights, our three networks with the same weights, an image."""
    cfg = model.tiny()
    assert cfg.unet.num_frames == SETTINGS["num_frames"]
    refs = [diffusers_unet(cfg.unet), diffusers_vae(cfg.vae), transformers_clip(cfg.clip)]
    ours = [model.UNet(cfg.unet), model.VAE(cfg.vae), model.CLIPImageEncoder(cfg.clip)]
    for seed, (ref, mine) in enumerate(zip(refs, ours)):
        ref.load_state_dict(random_state_dict(ref, seed), strict=True)
        mine.load_state_dict(ref.state_dict(), strict=True)
        ref.eval(), mine.eval()
    unet, vae, clip = refs
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=clip, unet=unet, scheduler=svd_scheduler(1),
        feature_extractor=CLIPImageProcessor(image_mean=list(cfg.clip.image_mean), image_std=list(cfg.clip.image_std)))
    pipe.set_progress_bar_config(disable=True)
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 100, 3), dtype=np.uint8))
    return pipe, ours, pil


@torch.no_grad()
def run_reference(pipe, pil):
    """diffusers' pipeline: the latents given to the VAE decoder (T, 4, h, w) and uint8 frames (T, H, W, 3)."""
    latents = pipe(pil, generator=torch.Generator().manual_seed(0), num_inference_steps=STEPS,
                   min_guidance_scale=MIN_G, max_guidance_scale=MAX_G, output_type="latent", **SETTINGS).frames
    video = pipe.decode_latents(latents, SETTINGS["num_frames"], SETTINGS["decode_chunk_size"])
    pils = pipe.video_processor.postprocess_video(video, output_type="pil")[0]
    ref_z = latents.flatten(0, 1) * (1 / pipe.vae.config.scaling_factor)
    return ref_z, np.stack([np.array(p) for p in pils])


@pytest.fixture(scope="module")
def setup():
    pipe, ours, pil = build_models()
    return (pipe, ours, pil, *run_reference(pipe, pil))


def run_ours(unet, vae, clip, pil, device="cpu", dtype=torch.float32):
    frames = generate(unet, vae, clip, pil, SETTINGS["num_frames"], SETTINGS["height"], SETTINGS["width"], STEPS,
                      fps=SETTINGS["fps"], motion_bucket_id=SETTINGS["motion_bucket_id"],
                      noise_aug_strength=SETTINGS["noise_aug_strength"], min_guidance=MIN_G, max_guidance=MAX_G,
                      decode_chunk_size=SETTINGS["decode_chunk_size"], generator=torch.Generator().manual_seed(0),
                      device=device, dtype=dtype)
    assert [z.shape[0] for z in vae.decoded] == [3, 1]
    return torch.cat(vae.decoded), frames


def test_generate_with_diffusers_networks_is_bit_identical(setup):
    pipe, _, pil, ref_z, ref_frames = setup
    vae = RecordingVAE(pipe.vae, is_diffusers=True)
    z, frames = run_ours(RefUNet(pipe.unet), vae, RefCLIP(pipe.image_encoder), pil)
    assert torch.equal(z, ref_z)
    assert frames.dtype == np.uint8 and frames.shape == ref_frames.shape == (4, 64, 64, 3)
    assert np.array_equal(frames, ref_frames)


def test_generate_fp16_with_diffusers_networks_is_bit_identical():
    """fp16 networks: fp16 embeddings/latents/time ids, float32 VAE encode (force_upcast), fp16 decode,
    float32 Euler step cast back to fp16; all must follow diffusers' casts exactly."""
    pipe, _, pil = build_models()
    pipe.to(torch.float16)
    ref_z, ref_frames = run_reference(pipe, pil)
    vae = RecordingVAE(pipe.vae, is_diffusers=True)
    z, frames = run_ours(RefUNet(pipe.unet), vae, RefCLIP(pipe.image_encoder), pil, dtype=torch.float16)
    assert z.dtype == ref_z.dtype == torch.float16 and pipe.vae.dtype == torch.float16
    assert torch.equal(z, ref_z)
    assert np.array_equal(frames, ref_frames)


def test_generate_with_our_networks_matches_diffusers(setup):
    _, (unet, vae, clip), pil, ref_z, ref_frames = setup
    z, frames = run_ours(unet, RecordingVAE(vae, is_diffusers=False), clip, pil)
    scale = ref_z.abs().max().item()
    assert (z - ref_z).abs().max().item() <= REL_TOL * scale
    diff = np.abs(frames.astype(int) - ref_frames.astype(int))       # uint8 rounding may flip by 1
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
