"""Regression guard for the shipped tiny model AND the public loader (weights/tiny/sgi2v-tiny/).

Two fixed held-out scenes of the procedural world (seeds never trained on), 8 Euler steps, CPU:
frame 0 must reproduce the input image and every sprite must be found by its palette colour in every
frame, with its colour kept. Measured when these thresholds were set (model at 8,845 U-Net steps,
decoder fine-tuned): frame-0 PSNR 27.4 and 26.6 dB; sprites found in 8/8 frames; colour error <= 0.16.
At 11,609 U-Net steps: 27.5 and 26.6 dB, 8/8 frames, colour error <= 0.16.
At 17,484 U-Net steps (4,961 VAE steps): 25.9 and 31.2 dB, 8/8 frames, colour error <= 0.104.
At 23,865 U-Net steps (6,810 VAE steps): 28.4 and 33.0 dB, 8/8 frames, colour error <= 0.106.
At 33,999 U-Net steps (6,810 VAE steps): 28.7 and 32.8 dB, 8/8 frames, colour error <= 0.109.
At 44,321 U-Net steps (6,810 VAE steps): 28.7 and 32.7 dB, 8/8 frames, colour error <= 0.114.
At 52,371 U-Net steps (9,367 VAE steps; the world with background landmarks): 29.4 and 32.2 dB, 8/8
frames, colour error <= 0.119.
A broken loader or model (wrong key routing, wrong scaling factor, random weights) gives frame-0 PSNR
near 10 dB and no sprite found, so the margins below are wide on the side that matters.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from sampler.conditioning import generate
from weights import load_svd
from weights.svd import SHIPPED_TINY
from weights.tiny import world
from weights.tiny.train import world_config

SEEDS = (1000, 1002)
MIN_FRAME0_PSNR = 21.0
MAX_COLOUR_ERROR = 0.25

pytestmark = pytest.mark.skipif(not (SHIPPED_TINY / "sgi2v_config.json").exists(), reason="no shipped tiny model")


@pytest.fixture(scope="module")
def svd():
    return load_svd()                                              # the default: the shipped tiny model


def generate_scene(svd, scenes, i):
    s = svd.cfg.sampling
    image = Image.fromarray(world.video_to_uint8(scenes.video[i, 0]).numpy())
    return generate(svd.unet, svd.vae, svd.clip, image, svd.cfg.unet.num_frames, s.height, s.width, 8,
                    motion_bucket_id=int(scenes.motion_bucket[i]), max_guidance=s.max_guidance,
                    decode_chunk_size=s.decode_chunk_size, generator=torch.Generator().manual_seed(0),
                    scaling_factor=svd.cfg.vae.scaling_factor)          # (F, H, W, 3) uint8


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_shipped_model_keeps_frame0_and_sprite_colours(svd, index):
    scenes = world.sample_scenes(world_config(svd.cfg), list(SEEDS), "cpu")
    frames = generate_scene(svd, scenes, index)
    truth = world.video_to_uint8(scenes.video[index, 0]).numpy().astype(np.float64)
    psnr = 10 * np.log10(255.0 ** 2 / ((frames[0].astype(np.float64) - truth) ** 2).mean())
    assert psnr >= MIN_FRAME0_PSNR, f"frame 0 PSNR {psnr:.1f} dB"
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    for k in range(scenes.valid.shape[1]):
        if not scenes.valid[index, k]:
            continue
        centres, found, _ = world.find_sprite(video, scenes.colour[index, k])
        assert found.all(), f"sprite {k} not found in frames {torch.nonzero(~found).flatten().tolist()}"
        err = world.mean_colour_error(video, scenes.colour[index, k], centres, float(scenes.radius[index, k]))
        assert err.max() <= MAX_COLOUR_ERROR, f"sprite {k} colour error {err.max():.3f}"


def test_quality_gate_refuses_an_existing_output(tmp_path, monkeypatch, capsys):
    from bench import tiny_quality
    out = tmp_path / "gate.json"
    out.write_text("{}")
    monkeypatch.setattr("sys.argv", ["tiny_quality", "--scenes", "1", "--out", str(out)])
    with pytest.raises(SystemExit):
        tiny_quality.main()
    assert "the file exists" in capsys.readouterr().err and out.read_text() == "{}"


def test_quality_gate_knows_a_sprite_hidden_at_frame_0_is_not_rigid_in_the_truth():
    # Gate scene 1030: sprite 1 starts partly behind sprite 0 and comes out, so its visible area grows 19% in the
    # rendered clip itself. Its rigidity cannot be judged against frame 0 (the truth would fail the 15% line);
    # the gate leaves it out and counts it. Sprite 0 stays in view and is judged.
    from bench import tiny_quality
    from model.config import tiny_world
    scenes = world.sample_scenes(world_config(tiny_world()), [1030], "cpu")
    truth = world.video_to_uint8(scenes.video[0]).numpy()                             # (F, H, W, 3)
    rows = tiny_quality.measure_scene(truth, scenes, 0)["sprites"]
    assert rows[1]["truth_size_change"] > tiny_quality.RIGID > rows[0]["truth_size_change"]
    assert rows[0]["size_change"] == pytest.approx(rows[0]["truth_size_change"], abs=0.02)
