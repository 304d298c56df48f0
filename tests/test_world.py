"""Tests of the procedural video world (weights/tiny/world.py).  CPU only, a few seconds."""

import json
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from weights.tiny import world as W  # noqa: E402

CFG = W.WorldConfig()  # 256 x 256, 8 frames, up to 4 sprites


@pytest.fixture(scope="module")
def hard():
    return W.sample_scenes(CFG, list(range(100, 112)), "cpu", difficulty=1.0)


@pytest.fixture(scope="module")
def easy():
    return W.sample_scenes(CFG, list(range(200, 212)), "cpu", difficulty=0.0)


def test_shapes_and_range(hard):
    N, K, Fr, H, Wd = 12, CFG.max_sprites, CFG.frames, CFG.height, CFG.width
    sc = hard
    assert sc.video.shape == (N, Fr, 3, H, Wd) and sc.video.dtype == torch.float32
    assert torch.isfinite(sc.video).all()
    assert sc.video.min() >= -1.0 and sc.video.max() <= 1.0
    assert sc.centres.shape == (N, K, Fr, 2)
    assert sc.box0.shape == (N, K, 4)
    assert sc.colour.shape == (N, K, 3) and sc.colour.min() >= 0 and sc.colour.max() <= 1
    assert sc.shape.shape == (N, K) and sc.shape.dtype == torch.long
    assert sc.shape.max() < len(W.SHAPE_NAMES)
    assert sc.radius.shape == (N, K) and sc.valid.shape == (N, K) and sc.valid.dtype == torch.bool
    assert sc.velocity.shape == (N, K, 2) and sc.screen_velocity.shape == (N, K, 2)
    assert sc.clear.shape == (N, K, Fr) and sc.static.shape == (N, K)
    assert sc.pan.shape == (N, 2) and sc.speed.shape == (N,) and sc.motion_bucket.shape == (N,)
    assert sc.motion_bucket.min() >= 0 and sc.motion_bucket.max() <= 255
    assert (sc.n_sprites >= 1).all()
    # valid sprites come first; colours are distinct palette entries within a scene
    assert (sc.valid[:, :-1].int() >= sc.valid[:, 1:].int()).all()
    for n in range(N):
        ids = sc.colour_id[n]
        assert len(set(ids.tolist())) == K
        assert torch.equal(sc.colour[n], W.PALETTE[ids])
    # the background is muted: its mean colour is low-saturation mid-grey
    assert (sc.bg_level.amax(1) - sc.bg_level.amin(1)).max() < 0.2


def test_other_sizes():
    cfg = W.WorldConfig(height=128, width=192, frames=4, max_sprites=3, difficulty=1.0)
    sc = W.sample_scenes(cfg, [1, 2, 3], "cpu")
    assert sc.video.shape == (3, 4, 3, 128, 192)
    assert sc.centres.shape == (3, 3, 4, 2)
    assert sc.n_sprites.max() <= 3
    assert (sc.centres[..., 0][sc.valid] >= 0).all() and (sc.centres[..., 0][sc.valid] <= 192).all()
    assert (sc.centres[..., 1][sc.valid] >= 0).all() and (sc.centres[..., 1][sc.valid] <= 128).all()


def test_determinism_and_batch_independence():
    cfg = W.WorldConfig(difficulty=0.7)
    a = W.sample_scenes(cfg, [3, 7, 11], "cpu")
    b = W.sample_scenes(cfg, torch.tensor([3, 7, 11]), "cpu")
    assert torch.equal(a.video, b.video)
    assert torch.equal(a.centres, b.centres)
    # scene 7 alone, and inside another batch, is the same scene
    c = W.sample_scenes(cfg, [7], "cpu")
    d = W.sample_scenes(cfg, [50, 51, 7, 52, 53], "cpu")
    for f in ("centres", "box0", "colour", "shape", "radius", "valid", "pan", "velocity", "depth",
              "bg_waves", "bg_level", "texture_params", "landmarks"):
        assert torch.equal(getattr(a, f)[1], getattr(c, f)[0]), f
        assert torch.equal(getattr(a, f)[1], getattr(d, f)[2]), f
    assert torch.allclose(a.video[1], c.video[0], atol=1e-5)
    assert torch.allclose(a.video[1], d.video[2], atol=1e-5)
    # different seeds give different scenes
    assert (a.video[0] - a.video[1]).abs().mean() > 0.02
    assert not torch.equal(a.centres[0], a.centres[2])
    # draw_scenes + render == sample_scenes; both paste paths agree
    p = W.draw_scenes(cfg, [3, 7, 11])
    assert p.video is None
    v_loop = W.render(p, cfg, "cpu", paste="loop")
    v_index = W.render(p, cfg, "cpu", paste="index")
    assert torch.allclose(v_loop, a.video, atol=1e-6)
    assert torch.allclose(v_loop, v_index, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cpu_gpu_same_scene():
    cpu = W.sample_scenes(CFG, [5, 6], "cpu")
    gpu = W.sample_scenes(CFG, [5, 6], "cuda")
    assert gpu.video.device.type == "cuda"
    assert torch.equal(cpu.centres, gpu.centres.cpu())
    assert torch.allclose(cpu.video, gpu.video.cpu(), atol=1e-3)


def test_difficulty_knob():
    seeds = list(range(64))
    e = W.draw_scenes(CFG, seeds, difficulty=0.0)
    h = W.draw_scenes(CFG, seeds, difficulty=1.0)
    assert set(e.n_sprites.tolist()) <= {1, 2}
    assert h.n_sprites.min() >= 2 and h.n_sprites.max() == CFG.max_sprites
    assert h.n_sprites.float().mean() > e.n_sprites.float().mean() + 0.8
    assert (e.pan == 0).all()
    assert (h.pan.norm(dim=1) > 0).float().mean() > 0.2
    assert h.radius[h.valid].mean() < 0.75 * e.radius[e.valid].mean()
    # more background contrast / detail
    amp_e = e.bg_waves[..., 3:].abs().sum((1, 2)).mean()
    amp_h = h.bg_waves[..., 3:].abs().sum((1, 2)).mean()
    assert amp_h > 1.8 * amp_e
    freq_e = e.bg_waves[..., :2].norm(dim=-1).max(1).values.mean()
    freq_h = h.bg_waves[..., :2].norm(dim=-1).max(1).values.mean()
    assert freq_h > 1.5 * freq_e
    # per-scene difficulty
    m = W.draw_scenes(CFG, [1, 2], difficulty=[0.0, 1.0])
    assert torch.equal(m.centres[0], e.centres[1]) and torch.equal(m.centres[1], h.centres[2])


def test_landmarks_leave_every_other_parameter_unchanged():
    """Landmarks have their own random stream: the world without them ((0, 0)) draws the same scenes."""
    import dataclasses
    bare = W.WorldConfig(difficulty=0.6, landmarks=(0, 0))
    a = W.draw_scenes(dataclasses.replace(bare, landmarks=(8, 16)), list(range(20)))
    b = W.draw_scenes(bare, list(range(20)))
    assert b.landmarks.shape == (20, 0, 8) and a.landmarks.shape == (20, 16, 8)
    for f in dataclasses.fields(W.Scenes):
        if f.name not in ("video", "landmarks"):
            assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
    count = (a.landmarks[..., 5:8].abs().sum(-1) > 0).sum(1)
    assert count.min() >= 8 and count.max() <= 16 and len(set(count.tolist())) > 3


def test_landmarks_move_only_with_the_pan():
    """Frame t of the landmark layer is frame 0's, moved by pan * t: the same layer drawn at t = 0 with every
    landmark moved by pan * t matches it (the pan is sub-pixel, so this checks the rendering, not a roll)."""
    import dataclasses
    cfg = W.WorldConfig(height=64, width=96, difficulty=1.0, p_pan=1.0)
    sc = W.draw_scenes(cfg, list(range(30, 38)))
    assert (sc.pan.norm(dim=1) > 0).all()
    layer = W.landmark_layer(sc, cfg, "cpu")                                   # (N, F, 3, H, W)
    assert layer.abs().amax() > 0.2
    for t in (1, cfg.frames - 1):
        moved = sc.landmarks.clone()
        moved[..., :2] += sc.pan[:, None, :] * t
        still = dataclasses.replace(sc, landmarks=moved, pan=torch.zeros_like(sc.pan))
        assert torch.allclose(W.landmark_layer(still, cfg, "cpu")[:, 0], layer[:, t], atol=1e-4)
    # the video is the world without landmarks plus this layer, away from the sprites
    bare = W.render(dataclasses.replace(sc, landmarks=sc.landmarks[:, :0]), cfg, "cpu")
    video = W.render(sc, cfg, "cpu")
    away = (video - bare - layer).abs().amax(2) < 1e-4                         # clamping and sprites excluded
    assert away.float().mean() > 0.6


def test_landmarks_are_far_from_the_palette(hard):
    """A landmark is grey-ish (a luminance offset with a small tint), so the colour tracker (threshold 0.3) never
    takes one for a sprite: the background with its landmarks (no sprites) stays > 0.45 from every palette colour."""
    background = (W._background_frames(hard, CFG, "cpu", CFG.frames).clamp(-1, 1) + 1) / 2   # (N, F, 3, H, W)
    on = W.landmark_layer(hard, CFG, "cpu").abs().amax(2) > 0.1                  # (N, F, H, W)
    pixels = background.permute(0, 1, 3, 4, 2)[on]                              # (P, 3)
    assert pixels.shape[0] > 1000
    dist = torch.cdist(pixels, W.PALETTE).amin(1)
    assert dist.min() > 0.45, dist.min()


def test_motion_ground_truth(hard, easy):
    for sc in (hard, easy):
        t = torch.arange(CFG.frames, dtype=torch.float32)
        pred = sc.centres[:, :, :1] + t[None, None, :, None] * sc.screen_velocity[:, :, None]
        assert torch.allclose(pred, sc.centres, atol=1e-3)  # constant velocity
        assert torch.allclose(sc.screen_velocity, sc.velocity + sc.pan[:, None], atol=1e-5)
        st = sc.static
        assert (sc.velocity[st] == 0).all()
        steps = sc.centres[:, :, 1:] - sc.centres[:, :, :-1]
        assert torch.allclose(steps[st], sc.pan[:, None, None].expand_as(steps)[st], atol=1e-4)
        # box of frame 0 contains the centre, has the radius' scale
        b, c0 = sc.box0, sc.centres[:, :, 0]
        assert ((b[..., 0] < c0[..., 0]) & (c0[..., 0] < b[..., 2]) & (b[..., 1] < c0[..., 1]) & (c0[..., 1] < b[..., 3])).all()
        wdt = b[..., 2] - b[..., 0]
        assert ((wdt / sc.radius)[sc.valid] > 1.5).all() and ((wdt / sc.radius)[sc.valid] < 3.0).all()
        # speed statistic and motion bucket
        sp = (sc.screen_velocity.norm(dim=-1) * sc.valid).sum(1) / sc.valid.sum(1)
        assert torch.allclose(sp, sc.speed, atol=1e-4)
        assert torch.equal(sc.motion_bucket, W.speed_to_motion_bucket(sc.speed, CFG))
        # mostly visible: centres stay inside the frame
        cv = sc.centres[sc.valid]
        assert (cv[..., 0] > 0).all() and (cv[..., 0] < CFG.width).all()
        assert (cv[..., 1] > 0).all() and (cv[..., 1] < CFG.height).all()
    # easy scenes keep every sprite fully inside the frame
    bx = easy.box0[easy.valid]
    assert (bx[:, :2] >= 0).all() and (bx[:, 2] <= CFG.width).all() and (bx[:, 3] <= CFG.height).all()


def test_static_sprite_pixels_do_not_move():
    # p_static=1 and no pan (difficulty 0): every sprite and the whole video stay put
    cfg = W.WorldConfig(p_static=1.0, difficulty=0.0)
    sc = W.sample_scenes(cfg, [1, 2, 3], "cpu")
    assert sc.static[sc.valid].all() and (sc.velocity == 0).all() and (sc.speed == 0).all()
    assert (sc.motion_bucket == 0).all()
    assert (sc.video - sc.video[:, :1]).abs().max() < 1e-5
    hits = 0
    for n in range(sc.n):
        for k in range(cfg.max_sprites):
            if sc.valid[n, k] and sc.clear[n, k].all():
                c, found, size = W.find_sprite(sc.video[n], sc.colour[n, k])
                assert found.all() and (c - c[0]).abs().max() < 1e-4
                hits += 1
    assert hits >= 1
    # the default p_static produces some static sprites
    assert W.draw_scenes(CFG, list(range(40)), 0.0).static.any()


def test_motion_bucket_roundtrip():
    s = torch.linspace(0, 12, 50)
    b = W.speed_to_motion_bucket(s, CFG)
    assert b.dtype == torch.long and b.min() >= 0 and b.max() <= 255
    back = W.motion_bucket_to_speed(b, CFG)
    step = W.motion_bucket_to_speed(1, CFG)
    assert ((back - s).abs() <= step / 2 + 1e-6).all()
    assert W.speed_to_motion_bucket(1e6, CFG) == 255
    assert (b[1:] >= b[:-1]).all()


def test_tracker_recovers_true_centres(hard, easy):
    n_checked = 0
    for sc in (hard, easy):
        for n in range(sc.n):
            present = set(sc.colour_id[n][sc.valid[n]].tolist())
            for k in range(CFG.max_sprites):
                if not sc.valid[n, k]:
                    continue
                c, found, size = W.find_sprite(sc.video[n], sc.colour[n, k])
                clear = sc.clear[n, k]
                if clear.any():
                    assert found[clear].all()
                    err = (c - sc.centres[n, k]).norm(dim=-1)[clear]
                    assert err.max() < 1.0, (n, k, err)
                    # area is about the shape's area (at least a disc of 0.6 radius)
                    assert (size[clear] > math.pi * (0.6 * sc.radius[n, k]) ** 2).all()
                    ce = W.mean_colour_error(sc.video[n], sc.colour[n, k], sc.centres[n, k], float(sc.radius[n, k]))
                    assert (ce[clear] <= CFG.texture_strength + 0.02).all()
                    n_checked += int(clear.sum())
            # palette colours absent from the scene are not found anywhere (background is far)
            for cid in set(range(len(W.PALETTE))) - present:
                _, found, size = W.find_sprite(sc.video[n], W.PALETTE[cid], largest_blob=False)
                assert not found.any() and size.max() <= 6, (n, cid, size)
    assert n_checked > 100


def test_tracker_largest_blob_and_not_found():
    video = torch.full((2, 3, 64, 64), -0.1)
    red = W.PALETTE[0]
    video[:, :, 10:20, 10:20] = (2 * red - 1)[:, None, None]  # big blob centred (15, 15)
    video[:, :, 50:53, 50:53] = (2 * red - 1)[:, None, None]  # small distractor
    c, found, size = W.find_sprite(video, red)
    assert found.all() and torch.allclose(c, torch.tensor([[15.0, 15.0]] * 2)) and (size == 100).all()
    c, found, size = W.find_sprite(video, W.PALETTE[1])
    assert not found.any() and torch.isnan(c).all()
    e = W.mean_colour_error(video, red, torch.tensor([[15.0, 15.0], [float("nan"), 0.0]]), 4.0)
    assert e[0] < 1e-6 and torch.isnan(e[1])


def test_trajectory_export(tmp_path, hard):
    sc = hard
    d = W.scene_to_trajectory_dict(sc, 2)
    assert len(d["boxes"]) == int(sc.n_sprites[2])
    for item, k in zip(d["boxes"], range(CFG.max_sprites)):
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 < x1 <= CFG.width and 0 <= y0 < y1 <= CFG.height
        assert len(item["path"]) == CFG.frames
        assert item["path"][0] == pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2], abs=2e-3)
        disp = torch.tensor(item["path"]) - torch.tensor(item["path"][0])
        true = sc.centres[2, k] - sc.centres[2, k, 0]
        assert torch.allclose(disp.float(), true, atol=2e-3)
    png, js = W.write_example(sc, 2, str(tmp_path), "scene")
    from PIL import Image

    im = Image.open(png)
    assert im.size == (CFG.width, CFG.height)
    assert json.load(open(js))["boxes"] == json.loads(json.dumps(d["boxes"]))


def test_strip_png():
    sc = W.sample_scenes(CFG, [1, 2, 3, 4], "cpu", difficulty=[0.0, 0.33, 0.67, 1.0])
    W.save_strip(sc.video, "/tmp/world_strip.png")
    from PIL import Image

    im = Image.open("/tmp/world_strip.png")
    assert im.size == (8 * CFG.width + 7 * 2, 4 * CFG.height + 3 * 2)
