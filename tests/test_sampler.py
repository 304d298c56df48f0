"""Sampler and conditioning vs diffusers (CPU). Every comparison is exact (torch.equal): our functions
perform the same float operations in the same order and dtypes as diffusers."""
import numpy as np
import pytest
import torch
from PIL import Image

diffusers = pytest.importorskip("diffusers")
from diffusers import EulerDiscreteScheduler  # noqa: E402
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (  # noqa: E402
    _resize_with_antialiasing,
)
from diffusers.video_processor import VideoProcessor  # noqa: E402

from sampler.conditioning import (  # noqa: E402
    added_time_ids, cfg_scales, classifier_free_guidance, clip_pixels, pil_to_tensor, preprocess_image,
    resize_with_antialiasing, to_uint8,
)
from sampler.euler import euler_step, sample_euler, v_to_x0  # noqa: E402
from sampler.schedule import edm_scalings, init_noise_sigma, karras_sigmas, scale_input  # noqa: E402

# The 51 sigmas of SVD's 50-step schedule: diffusers' EulerDiscreteScheduler built with the official
# scheduler_config.json (the arguments of svd_scheduler below), set_timesteps(50), `.sigmas`, each float32
# printed with 9 significant digits (enough to round-trip a float32 exactly).
SIGMAS_50 = (
    700, 620.327759, 548.558105, 484.026703, 426.114685, 374.246277, 327.886475, 286.538849,
    249.743439, 217.074692, 188.139496, 162.575272, 140.048187, 120.251396, 102.903374, 87.7463226,
    74.5446014, 63.0833359, 53.1669426, 44.6178436, 37.2751846, 30.9936085, 25.6421337, 21.1030407,
    17.2708416, 14.0513096, 11.3605442, 9.12409878, 7.2761631, 5.75878191, 4.52113628, 3.51885843,
    2.71339941, 2.07143593, 1.56432056, 1.16757083, 0.860397756, 0.625271022, 0.447519809, 0.314967692,
    0.217600003, 0.147262216, 0.0973876789, 0.0627535209, 0.0392628126, 0.0237517525, 0.0138202356, 0.00768430484,
    0.00404899009, 0.00200000009, 0)


def svd_scheduler(num_steps):
    """diffusers' EulerDiscreteScheduler with the values of SVD's scheduler/scheduler_config.json."""
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="v_prediction", interpolation_type="linear", use_karras_sigmas=True,
        sigma_min=0.002, sigma_max=700.0, timestep_spacing="leading", steps_offset=1, timestep_type="continuous")
    scheduler.set_timesteps(num_steps)
    return scheduler


def test_sigmas_match_the_stored_50_step_table():
    reference = torch.tensor(SIGMAS_50, dtype=torch.float32)
    assert torch.equal(karras_sigmas(50), reference)
    assert torch.equal(svd_scheduler(50).sigmas, reference)   # the table is still what diffusers computes


@pytest.mark.parametrize("n", [25, 50, 7])
def test_schedule_matches_diffusers(n):
    scheduler = svd_scheduler(n)
    sigmas = karras_sigmas(n)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (n + 1,) and sigmas[-1] == 0
    assert torch.equal(sigmas, scheduler.sigmas)
    c_noise = torch.stack([edm_scalings(s)[3] for s in sigmas[:-1]])
    assert torch.equal(c_noise, scheduler.timesteps)
    assert torch.equal(init_noise_sigma(sigmas.max()), torch.as_tensor(scheduler.init_noise_sigma))
    assert torch.equal(init_noise_sigma(700.0), torch.as_tensor(scheduler.init_noise_sigma))


def test_edm_scalings_formulas():
    c_skip, c_out, c_in, c_noise = edm_scalings(torch.tensor(3.0))
    assert torch.allclose(c_skip, torch.tensor(0.1))
    assert torch.allclose(c_out, torch.tensor(-3.0 / 10**0.5))
    assert torch.allclose(c_in, torch.tensor(1.0 / 10**0.5))
    assert torch.allclose(c_noise, torch.tensor(0.25 * np.log(3.0), dtype=torch.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_scale_input_and_every_euler_step_match_diffusers(dtype):
    n = 7
    sigmas, timesteps = karras_sigmas(n), svd_scheduler(n).timesteps
    g = torch.Generator().manual_seed(0)
    for i in range(n):                                   # includes the last step, to sigma = 0
        x = (torch.randn(2, 3, 4, 5, 6, generator=g) * sigmas[i]).to(dtype)
        v = torch.randn(2, 3, 4, 5, 6, generator=g).to(dtype)
        scheduler = svd_scheduler(n)                     # fresh: the step index comes from the timestep
        assert torch.equal(scale_input(x, sigmas[i]), scheduler.scale_model_input(x, timesteps[i]))
        expected = scheduler.step(v, timesteps[i], x).prev_sample
        ours = euler_step(x, v_to_x0(v, x, sigmas[i]), sigmas[i], sigmas[i + 1])
        assert ours.dtype == expected.dtype == dtype
        assert torch.equal(ours, expected), i


def test_sample_euler_loop_matches_diffusers_loop():
    n = 7
    sigmas = karras_sigmas(n)
    weight = torch.randn(4, 4, generator=torch.Generator().manual_seed(1)) / 2

    def fake_v(x_scaled, c_noise):                      # a smooth deterministic "network"
        return torch.tanh(torch.einsum("btchw,cd->btdhw", x_scaled, weight)) + c_noise

    x_init = torch.randn(1, 3, 4, 5, 6, generator=torch.Generator().manual_seed(2)) * init_noise_sigma(700.0)
    scheduler = svd_scheduler(n)
    x = x_init.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(fake_v(scheduler.scale_model_input(x, t), t), t, x).prev_sample

    calls = []

    def denoise(x, sigma, i):
        return v_to_x0(fake_v(scale_input(x, sigma), edm_scalings(sigma)[3]), x, sigma)

    def on_step(i, x, sigma):
        calls.append((i, float(sigma)))
        return x

    ours = sample_euler(denoise, x_init.clone(), sigmas, on_step=on_step, progress=list)
    assert torch.equal(ours, x)
    assert calls == [(i, float(sigmas[i])) for i in range(n)]


def test_on_step_output_is_used():
    sigmas = karras_sigmas(3)
    out = sample_euler(lambda x, s, i: torch.zeros_like(x), torch.ones(2), sigmas,
                       on_step=lambda i, x, s: x * 0 + 5.0)
    # last step goes to sigma 0, so the result is the x0 of the (replaced) latent: 0
    assert torch.equal(out, torch.zeros(2))


@pytest.mark.parametrize("shape,size", [((1, 3, 576, 1024), (224, 224)), ((2, 3, 40, 60), (224, 224)),
                                        ((1, 3, 64, 96), (16, 24))])
def test_resize_with_antialiasing_matches_diffusers(shape, size):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert torch.equal(resize_with_antialiasing(x, size), _resize_with_antialiasing(x, size))


def random_pil(width, height, seed=4):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_preprocess_matches_video_processor():
    pil = random_pil(150, 100)
    expected = VideoProcessor(do_resize=True, vae_scale_factor=8).preprocess(pil, height=64, width=96)
    ours = preprocess_image(pil, 64, 96)
    assert ours.dtype == torch.float32 and ours.shape == (1, 3, 64, 96)
    assert torch.equal(ours, expected)
    assert ours.stride() == expected.stride()            # channels-last view: conv kernels depend on it


def test_clip_pixels_match_pipeline_preprocessing():
    transformers = pytest.importorskip("transformers")
    pil = random_pil(120, 90)
    processor = VideoProcessor(do_resize=True, vae_scale_factor=8)
    # the pipeline's _encode_image, PIL branch
    image = processor.numpy_to_pt(processor.pil_to_numpy(pil)) * 2.0 - 1.0
    image = (_resize_with_antialiasing(image, (224, 224)) + 1.0) / 2.0
    feature_extractor = transformers.CLIPImageProcessor(
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    expected = feature_extractor(images=image, do_normalize=True, do_center_crop=False, do_resize=False,
                                 do_rescale=False, return_tensors="pt").pixel_values
    ours = clip_pixels(pil_to_tensor(pil) * 2.0 - 1.0)
    assert torch.equal(ours, expected) and ours.is_contiguous()


def test_small_conditioning_helpers():
    ids = added_time_ids(7, 127, 0.02, 2, torch.float16)
    assert ids.shape == (2, 3) and ids.dtype == torch.float16 and ids[0, 0] == 6
    assert torch.equal(ids, torch.tensor([[6, 127, 0.02]] * 2, dtype=torch.float16))
    scales = cfg_scales(14)
    assert scales.shape == (1, 14, 1, 1, 1)
    assert torch.equal(scales.flatten(), torch.linspace(1.0, 3.0, 14))
    v_u, v_c = torch.randn(2, 1, 14, 4, 2, 2).unbind(0)
    assert torch.allclose(classifier_free_guidance(v_u, v_c, scales)[:, 0], v_u[:, 0] + (v_c - v_u)[:, 0])


def test_to_uint8_matches_postprocess():
    frames = torch.randn(3, 3, 8, 10, generator=torch.Generator().manual_seed(5)) * 1.2
    processor = VideoProcessor(do_resize=True, vae_scale_factor=8)
    pils = processor.postprocess_video(frames.permute(1, 0, 2, 3)[None], output_type="pil")[0]
    expected = np.stack([np.array(p) for p in pils])
    ours = to_uint8(frames)
    assert ours.dtype == np.uint8 and ours.shape == (3, 8, 10, 3)
    assert np.array_equal(ours, expected)
