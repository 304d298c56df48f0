"""bench.objmc_tiny --shard / --pool (the shards of a run, pooled, are that run) and box_contrast."""
import json

import numpy as np
import pytest

from bench import objmc_tiny


def test_pooled_shards_equal_the_whole_run(tmp_path):
    # 4 tasks (one of them a camera task), no control, 2 Euler steps: the cheapest real run of the bench.
    common = ["--scenes", "4", "--variants", "none", "--steps", "2", "--device", "cpu"]
    objmc_tiny.main(common + ["--out", str(tmp_path / "whole.json")])
    for i in range(2):
        objmc_tiny.main(common + ["--shard", f"{i}/2", "--out", str(tmp_path / f"shard{i}.json")])
    shards = [json.load(open(tmp_path / f"shard{i}.json")) for i in range(2)]
    assert [t["index"] for t in shards[0]["tasks"]] == [0, 2] and [t["index"] for t in shards[1]["tasks"]] == [1, 3]
    objmc_tiny.main(["--pool", str(tmp_path / "shard1.json"), str(tmp_path / "shard0.json"),
                     "--out", str(tmp_path / "pooled.json")])
    whole, pooled = (json.load(open(tmp_path / f)) for f in ("whole.json", "pooled.json"))
    assert pooled["tasks"] == whole["tasks"]
    assert pooled["per_task"] == whole["per_task"]          # each task's generation is seeded on its own
    for k in ("objmc", "objmc_by_role", "found", "frame0_psnr", "points"):
        assert pooled["summary"]["none"][k] == pytest.approx(whole["summary"]["none"][k]), k


def test_pool_refuses_overlapping_or_foreign_files(tmp_path):
    record = {"command": "x", "model": "m", "steps": 2, "seed": 0, "motion_bucket": "scene",
              "tasks": [{"index": 0}], "summary": {"none": {"seconds": 1.0, "settings": None, "optimised_steps": []}},
              "per_task": {"none": [{"index": 0, "frame0_psnr": 30.0, "sprites": []}]}}
    a, b, c = (tmp_path / n for n in ("a.json", "b.json", "c.json"))
    a.write_text(json.dumps(record))
    b.write_text(json.dumps(record))
    c.write_text(json.dumps(dict(record, steps=16)))
    with pytest.raises(SystemExit, match="appears in two files"):
        objmc_tiny.pool([str(a), str(b)], str(tmp_path / "out.json"))
    with pytest.raises(SystemExit, match="differ in one of"):
        objmc_tiny.pool([str(a), str(c)], str(tmp_path / "out.json"))
    with pytest.raises(SystemExit, match="no such result file"):
        objmc_tiny.pool([str(a), str(tmp_path / "missing.json")], str(tmp_path / "out.json"))


def test_shard_must_be_i_of_n():
    for bad in ("2/2", "1", "a/3", "-1/2"):
        with pytest.raises(SystemExit):
            objmc_tiny.main(["--shard", bad, "--scenes", "1"])


def test_box_contrast_is_the_pixel_std_in_levels():
    image = np.full((8, 8, 3), 100, np.uint8)
    assert objmc_tiny.box_contrast(image, (0, 0, 8, 8)) == 0.0
    image[:, 4:] = 200                                                 # half 100, half 200: std 50
    assert objmc_tiny.box_contrast(image, (0, 0, 8, 8)) == pytest.approx(50.0)
    assert objmc_tiny.box_contrast(image, (4.2, 0, 8, 8)) == 0.0      # rounded to pixel edges: all 200


def test_an_existing_output_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "done.json"
    out.write_text("{}")
    for argv in (["--scenes", "1", "--variants", "none", "--out", str(out)],
                 ["--pool", str(out), "--out", str(out)], ["--scenes", "1", "--strip", str(out)]):
        with pytest.raises(SystemExit):
            objmc_tiny.main(argv)
        assert "the file exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_camera_probe_finds_a_known_shift():
    """bench.camera_probe.patch_shift: a world frame moved by a known integer offset is found at it."""
    from bench.camera_probe import patch_shift
    from weights.tiny import world
    frame = world.video_to_uint8(world.sample_scenes(world.WorldConfig(height=128, width=128), [5], "cpu").video[0, 0]).numpy()
    for dx, dy in ((7, -3), (0, 0), (-12, 5)):
        moved = np.roll(frame, (dy, dx), axis=(0, 1))
        assert patch_shift(frame, moved, (40, 40, 72, 72)).tolist() == [dx, dy]


def test_probe_and_vae_recon_refuse_an_existing_output(tmp_path, monkeypatch, capsys):
    from bench import camera_probe, vae_recon
    out = tmp_path / "done.json"
    out.write_text("{}")
    with pytest.raises(SystemExit):
        camera_probe.main(["--out", str(out)])
    monkeypatch.setattr("sys.argv", ["vae_recon", "--out", str(out)])
    with pytest.raises(SystemExit):
        vae_recon.main()
    assert capsys.readouterr().err.count("the file exists") == 2 and out.read_text() == "{}"


def test_pan_probe_measures_the_true_pan_of_a_rendered_clip():
    """bench.pan_probe's background cells avoid the sprites and find the world's known pan (the background
    content moves by pan * t) to within rounding, on scenes forced to pan."""
    import dataclasses
    from bench.pan_probe import background_cells, background_shift
    from weights.tiny import world
    cfg = dataclasses.replace(world.WorldConfig(height=128, width=128), p_pan=1e6)
    checked = 0
    for seed in range(1200, 1206):
        scenes = world.sample_scenes(cfg, [seed], "cpu", difficulty=0.3)
        truth = world.video_to_uint8(scenes.video[0]).numpy()
        boxes = background_cells(scenes, truth)
        if not boxes:
            continue
        want = scenes.pan[0].double().numpy() * (cfg.frames - 1)
        assert np.abs(background_shift(truth, boxes) - want).max() <= 1.0, (seed, want)
        checked += 1
    assert checked >= 4


def test_camera_tasks_take_the_asked_box_count_and_speed():
    from weights.tiny.train import world_config
    from model.config import tiny_world
    wcfg = world_config(tiny_world())
    default = [t for t in objmc_tiny.build_tasks(8, wcfg, 13000) if t.kind == "camera"]
    asked = [t for t in objmc_tiny.build_tasks(8, wcfg, 13000, camera_boxes=4, camera_speed=1.0) if t.kind == "camera"]
    assert [t.seed for t in asked] == [t.seed for t in default]
    assert all(np.isclose(np.linalg.norm(t.shift), 1.0, atol=1e-3) for t in asked)
    assert max(len(t.traj.boxes) for t in asked) == 4 > max(len(t.traj.boxes) for t in default)


def test_pan_probe_refuses_an_existing_output_and_bad_counts(tmp_path, capsys):
    from bench import pan_probe
    out = tmp_path / "done.json"
    out.write_text("{}")
    for argv in (["--out", str(out)], ["--scenes", "0"], ["--samples", "-1"]):
        with pytest.raises(SystemExit):
            pan_probe.main(argv)
    err = capsys.readouterr().err
    assert "the file exists" in err and "--scenes 0" in err and "--samples -1" in err and out.read_text() == "{}"


def test_camera_probe_refuses_bad_box_counts_and_speeds(capsys):
    from bench import camera_probe
    for argv in (["--camera-boxes", "0"], ["--camera-speed", "-1"], ["--camera-speed", "nan"]):
        with pytest.raises(SystemExit):
            camera_probe.main(argv)
    err = capsys.readouterr().err
    assert "--camera-boxes 0: expected at least 1" in err and "--camera-speed -1.0: expected" in err
    assert "--camera-speed nan: expected" in err


def test_camera_tasks_hold_their_sprites_still_in_the_world():
    # Session 9: with sprites moving on their own, camera control could not score below ~0.8x however well it
    # moved the background. "still" renders a camera task's scene with p_static = 1: its sprites move by the
    # scene's pan only, so centre_0 + u * t is where a correctly panned video puts them. Object tasks are untouched.
    from weights.tiny import world
    from weights.tiny.train import world_config
    from model.config import tiny_world
    wcfg = world_config(tiny_world())
    still = objmc_tiny.build_tasks(8, wcfg, 13000)
    moving = objmc_tiny.build_tasks(8, wcfg, 13000, camera_scene="moving")
    t = np.arange(wcfg.frames)[:, None]
    for a, b in zip(still, moving):
        if a.kind == "object":
            assert a.seed == b.seed and np.array_equal(a.traj.boxes, b.traj.boxes)
            continue
        pan = world.sample_scenes(wcfg, [a.seed], "cpu", difficulty=a.difficulty).pan[0].double().numpy()
        for s in a.sprites:
            own = np.asarray(s.own)
            assert np.abs(own - own[0] - t * pan).max() < 1e-3, (a.seed, s.k)
    moved = [np.abs(np.asarray(s.own)[-1] - np.asarray(s.own)[0]).max() for b in moving if b.kind == "camera"
             for s in b.sprites]
    assert max(moved) > 4                                      # the old camera scenes did move their sprites
    # perfect_pan_floor (bench --describe) reads the same thing off the tasks: 0 px left for a perfect pan on still
    # scenes, several px on the old ones (8.1 px over 64 tuning tasks)
    assert objmc_tiny.perfect_pan_floor(still)["objmc"] < 1e-3 < 1 < objmc_tiny.perfect_pan_floor(moving)["objmc"]
    with pytest.raises(ValueError, match="camera_scene 'x'"):
        objmc_tiny.build_tasks(1, wcfg, 13000, camera_scene="x")
