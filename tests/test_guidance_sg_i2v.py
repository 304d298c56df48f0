"""Tests for guidance/sg_i2v.py (the step hook, the step window) and guidance/freetraj.py, and a whole
guided generation with the tiny random models through sampler.conditioning.generate."""
import numpy as np
import pytest
import torch
from PIL import Image

import model
from guidance.features import extract_features
from guidance.frequency import restore_high_frequency
from guidance.freetraj import copy_noise_along_boxes
from guidance.optimize import optimize_latent
from guidance.sg_i2v import SGI2VConfig, make_step_hook, optimised_steps
from guidance.trajectory import Trajectories, latent_boxes
from sampler.conditioning import Conditioning, generate
from tests.guidance_helpers import FRAMES, moving_box, noisy_latent, random_cond, tiny_unet
from tests.oracles import random_state_dict


# ---------------------------------------------------------------------------------------------
# Configuration and window


@pytest.mark.parametrize("num_steps, expected", [
    (50, list(range(5, 21))),        # the paper: t = 50 - i in 30..45
    (25, list(range(3, 11))),        # i / 25 in [0.1, 0.4]: 2.5 rounds up, 10 is included
    (16, list(range(2, 7))),         # 1.6 .. 6.4
    (4, [1]),
])
def test_window_as_a_fraction_of_the_schedule(num_steps, expected):
    assert optimised_steps(num_steps, SGI2VConfig().window) == expected


def test_config_defaults_and_checks():
    cfg = SGI2VConfig(layers=[[2, 1], [2, 2]])
    assert cfg.layers == ((2, 1), (2, 2)) and cfg.feature_source == "aligned"
    assert (cfg.iterations, cfg.lr, cfg.cutoff, cfg.order, cfg.weighting, cfg.baseline) == \
        (5, 0.21, 0.5, 4, "gaussian", None)
    for bad in [dict(feature_source="keys"), dict(weighting="box"), dict(baseline="moft"), dict(window=(0.5, 0.2))]:
        with pytest.raises(ValueError):
            SGI2VConfig(**bad)


# ---------------------------------------------------------------------------------------------
# The step hook


def full_conditioning(cond):
    """generate's [uncond, cond] layout around a conditional half."""
    return Conditioning(torch.cat([torch.zeros_like(cond.embeds), cond.embeds]),
                        torch.cat([torch.zeros_like(cond.latents), cond.latents]), cond.time_ids.repeat(2, 1))


@pytest.mark.parametrize("cutoff", [0.5, None])
def test_hook_optimises_inside_the_window_then_restores_high_frequencies(cutoff):
    unet, cond = tiny_unet(), random_cond()
    cfg = SGI2VConfig(iterations=2, cutoff=cutoff)
    losses, reported = {}, []
    hook = make_step_hook(cfg, unet, full_conditioning(cond), moving_box(), num_steps=10, losses=losses,
                          on_loss=lambda i, step_losses: reported.append((i, step_losses)))
    x, sigma = noisy_latent(step=2)
    assert hook(0, x, sigma) is x and hook(5, x, sigma) is x              # outside i = 1..4
    out = hook(2, x, sigma)
    z, expected_losses = optimize_latent(lambda z: extract_features(unet, z, sigma, cond), x, moving_box(),
                                         iterations=2)
    expected = z if cutoff is None else restore_high_frequency(z, x, cutoff)
    assert torch.equal(out, expected) and out.dtype == x.dtype
    assert losses == {2: expected_losses} and reported == [(2, expected_losses)]


def test_freetraj_hook_edits_only_the_initial_noise():
    hook = make_step_hook(SGI2VConfig(baseline="freetraj"), tiny_unet(), full_conditioning(random_cond()),
                          moving_box(), num_steps=10)
    x, sigma = noisy_latent(step=0)
    assert torch.equal(hook(0, x, sigma), copy_noise_along_boxes(x, moving_box()))
    assert hook(2, x, sigma) is x                                        # no optimisation in the window


def test_freetraj_copies_first_frame_noise_along_the_boxes():
    x = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    boxes = np.array([[[2, 1, 5, 4], [3, 2, 6, 6], [2, 6, 5, 9], [-1, 0, 2, 3]]])  # grows, leaves right, top
    out = copy_noise_along_boxes(x, boxes)
    first = x[0, 0, :, 2:5, 1:4]                                        # (C, 3, 3)
    assert torch.equal(out[0, 0], x[0, 0])                              # frame 0 untouched
    assert torch.equal(out[0, 1, :, 3:6, 2:5], first)                   # frame-0 box size, moved by (1, 1)
    assert torch.equal(out[0, 1, :, 3:6, 5], x[0, 1, :, 3:6, 5])        # the extra column of frame 1 is not
    assert torch.equal(out[0, 2, :, 2:5, 6:8], first[:, :, :2])          # clipped on the right
    assert torch.equal(out[0, 3, :, 0:2, 0:3], first[:, 1:])             # clipped at the top
    changed = (out != x).any(dim=2)[0]                                  # (F, h, w)
    assert changed[1].sum() <= 9 and not changed[1, :3].any() and not changed[2, :, :6].any()


# ---------------------------------------------------------------------------------------------
# A whole guided generation (tiny random models, 64x64, 4 frames, 8 steps: optimised i = 1, 2, 3)


@pytest.fixture(scope="module")
def tiny_models():
    cfg = model.tiny()
    nets = [model.UNet(cfg.unet), model.VAE(cfg.vae), model.CLIPImageEncoder(cfg.clip)]
    for seed, net in enumerate(nets):
        net.load_state_dict(random_state_dict(net, seed), strict=True)
        net.eval()
    image = np.full((64, 64, 3), 40, dtype=np.uint8)
    image[16:40, 16:40] = (220, 120, 30)                                 # an orange square to move
    traj = Trajectories(boxes=[[16, 16, 40, 40]], centres=[[[28 + 8 * n, 28] for n in range(FRAMES)]],
                        image_size=(64, 64))
    return nets, Image.fromarray(image), latent_boxes(traj)


def run_generation(tiny_models, cfg=None, seed=0):
    (unet, vae, clip), image, boxes = tiny_models
    losses = {}

    def make_on_step(c, sigmas):
        return make_step_hook(cfg, unet, c, boxes, len(sigmas) - 1, losses=losses)
    frames = generate(unet, vae, clip, image, FRAMES, 64, 64, num_steps=8, decode_chunk_size=2,
                      generator=torch.Generator().manual_seed(seed), make_on_step=make_on_step if cfg else None)
    return frames, losses


def test_guided_generation_is_deterministic_and_differs_from_unguided(tiny_models):
    first, losses = run_generation(tiny_models, SGI2VConfig(iterations=3))
    again, losses_again = run_generation(tiny_models, SGI2VConfig(iterations=3))
    plain, no_losses = run_generation(tiny_models)
    assert first.shape == (FRAMES, 64, 64, 3) and first.dtype == np.uint8
    assert sorted(losses) == [1, 2, 3] and all(len(v) == 3 for v in losses.values())
    assert np.array_equal(first, again) and losses == losses_again      # bit-identical for a seed
    assert not np.array_equal(first, plain) and no_losses == {}
