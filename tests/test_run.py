"""run.py end to end on a tiny random model (CPU, 64x64, 4 frames, 3 steps): outputs, record, refusals, errors."""
import hashlib
import json
from dataclasses import replace

import av
import numpy as np
import pytest
from PIL import Image

import run
import weights.svd as svd_module
from model.config import tiny
from sampler.video import read_video
from tests.tiny_weights import tiny_model, write_diffusers_folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    cfg = tiny()
    cfg = replace(cfg, sampling=replace(cfg.sampling, height=64, width=64, num_steps=3, decode_chunk_size=2, fps=6))
    _, _, state = tiny_model(seed=0, cfg=cfg)
    return write_diffusers_folder(tmp_path_factory.mktemp("w") / "tiny", cfg, state)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    y, x = np.mgrid[0:60, 0:80]
    rgb = np.stack([x * 3, y * 4, (x + y) * 2], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "input.png"
    Image.fromarray(rgb).save(path)
    return path


def go(tiny_dir, png, out, *extra):
    """cli() with the tiny model; returns its exit status."""
    return run.cli(["--weights", str(tiny_dir), "--image", str(png), "--out", str(out), "--quiet", *extra])


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_outputs_and_record(tmp_path, tiny_dir, png):
    out = tmp_path / "run1"
    assert run.main(run.parser().parse_args(["--weights", str(tiny_dir), "--image", str(png), "--out", str(out),
                                             "--quiet"])) == out
    assert sorted(p.name for p in out.iterdir()) == ["frames", "run.json", "video.mp4"]
    assert [p.name for p in sorted((out / "frames").iterdir())] == [f"frame_00{i}.png" for i in range(4)]
    video = read_video(out / "video.mp4")
    assert video.shape == (4, 64, 64, 3)
    with av.open(str(out / "video.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].average_rate == 6

    record = json.loads((out / "run.json").read_text())
    s = record["settings"]
    assert (s["frames"], s["steps"], s["height"], s["width"], s["fps"], s["decode_chunk"]) == (4, 3, 64, 64, 6, 2)
    assert (s["seed"], s["device"], s["dtype"]) == (817, "cpu", "fp32") and record["dtype"] == "fp32"
    assert (s["motion_bucket"], s["noise_aug"], s["min_guidance"], s["max_guidance"]) == (127, 0.02, 1.0, 3.0)
    assert record["inputs"]["image"]["sha256"] == hashlib.sha256(png.read_bytes()).hexdigest()
    assert record["inputs"]["image"]["size"] == [80, 60] and record["inputs"]["trajectory"] is None
    assert set(record["versions"]) >= {"torch", "numpy", "av", "pillow", "python"}
    assert set(record["timings_s"]) == {"read_inputs", "find_weights", "load_weights", "generate", "write", "total"}
    assert record["weights"]["root"] == str(tiny_dir) and record["weights"]["name"] == "tiny-test"
    assert "sgi2v_config.json" in record["weights"]["description"]
    assert record["device"]["type"] == "cpu" and record["outputs"]["shape"] == [4, 64, 64, 3]
    assert leftovers(tmp_path) == []


def test_existing_out_needs_overwrite_and_is_left_untouched(tmp_path, tiny_dir, png, capsys):
    out = tmp_path / "run"
    assert go(tiny_dir, png, out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert go(tiny_dir, png, out, "--seed", "1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}: exists and is not empty; pass --overwrite" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    assert go(tiny_dir, png, out, "--seed", "1", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["settings"]["seed"] == 1
    assert not np.array_equal(np.array(Image.open(out / "frames" / "frame_003.png")),
                              np.frombuffer(before[out / "frames" / "frame_003.png"], np.uint8))
    assert leftovers(tmp_path) == []


def test_overwrite_only_replaces_a_previous_run(tmp_path, tiny_dir, png, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert go(tiny_dir, png, out, "--overwrite") == 2
    assert "not a previous run's folder (no run.json)" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert go(tiny_dir, png, empty) == 0 and (empty / "video.mp4").is_file()   # an empty folder is fine


def test_same_seed_same_video(tmp_path, tiny_dir, png):
    assert go(tiny_dir, png, tmp_path / "a", "--seed", "5") == 0
    assert go(tiny_dir, png, tmp_path / "b", "--seed", "5") == 0
    for name in ["video.mp4"] + [f"frames/frame_00{i}.png" for i in range(4)]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("flags, message", [
    (["--height", "100"], "--height 100: expected a positive multiple of 64"),
    (["--width", "0"], "--width 0: expected a positive multiple of 64"),
    (["--frames", "0"], "--frames 0: expected at least 1"),
    (["--steps", "0"], "--steps 0: expected at least 1"),
    (["--decode-chunk", "0"], "--decode-chunk 0: expected at least 1"),
    (["--fps", "0"], "--fps 0: expected a positive number"),
    (["--seed", "-1"], "--seed -1: expected an integer"),
    (["--device", "cuda:0"], "--device cuda:0: CUDA is not available"),
    (["--device", "toaster"], "--device toaster: not a device"),
])
def test_invalid_settings_fail_before_loading(tmp_path, tiny_dir, png, capsys, monkeypatch, flags, message):
    if "cuda" in flags[-1] and run.torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setattr(svd_module.SVDFiles, "load", lambda *a: pytest.fail("loaded weights before validating"))
    assert go(tiny_dir, png, tmp_path / "out", *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("run.py: error: ") and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []                          # nothing written


def test_bad_input_files(tmp_path, tiny_dir, png, capsys):
    assert go(tiny_dir, tmp_path / "nope.png", tmp_path / "out") == 2
    assert f"--image {tmp_path / 'nope.png'}: no such file" in capsys.readouterr().err
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert go(tiny_dir, fake, tmp_path / "out") == 2
    assert f"--image {fake}: cannot read it as an image" in capsys.readouterr().err
    assert go(tmp_path / "no-weights", png, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no SVD weights found" in err and f"{tmp_path / 'no-weights'}: does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png"]


def test_failure_midway_leaves_no_output(tmp_path, tiny_dir, png, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(run, "write_pngs", broken)                 # after the video was written to the temp folder
    with pytest.raises(RuntimeError, match="disk full"):
        go(tiny_dir, png, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_no_arguments_use_the_shipped_model_and_bundled_example(tmp_path, tiny_dir, png, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run, "EXAMPLES", tmp_path / "examples")
    assert run.cli([]) == 2                                        # no example yet: say what is missing
    err = capsys.readouterr().err
    assert f"expected {tmp_path / 'examples'}/<name>.png with its trajectory file" in err

    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "boat.png").write_bytes(png.read_bytes())
    w, h = Image.open(png).size
    box = [w * 0.25, h * 0.25, w * 0.5, h * 0.5]
    (tmp_path / "examples" / "boat.json").write_text(json.dumps(
        {"boxes": [{"box": box, "keyframes": {"3": [w * 0.5, h * 0.4]}}]}))
    monkeypatch.setattr(svd_module, "SHIPPED_TINY", tiny_dir)
    assert run.cli(["--quiet"]) == 0
    out = tmp_path / "outputs" / "boat"
    record = json.loads((out / "run.json").read_text())
    assert record["weights"]["root"] == str(tiny_dir)
    assert record["inputs"]["trajectory"]["path"] == str(tmp_path / "examples" / "boat.json")
    assert record["guidance"]["method"] == "SG-I2V"                # the example's trajectory is used
    assert (out / "condition.png").is_file() and (out / "overlay.mp4").is_file()

    assert run.cli(["--quiet", "--no-trajectory", "--out", "plain"]) == 0
    record = json.loads((tmp_path / "plain" / "run.json").read_text())
    assert record["guidance"] is None and not (tmp_path / "plain" / "condition.png").exists()
