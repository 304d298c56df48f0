"""run.py with --trajectory on a tiny random model (CPU, 64x64, 4 frames, 5 steps): SG-I2V's settings and
losses in run.json, the flags, and errors in the trajectory file or the guidance flags."""
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import run
from model.config import tiny
from tests.tiny_weights import tiny_model, write_diffusers_folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    cfg = tiny()
    cfg = replace(cfg, sampling=replace(cfg.sampling, height=64, width=64, num_steps=5, decode_chunk_size=2))
    _, _, state = tiny_model(seed=0, cfg=cfg)
    return write_diffusers_folder(tmp_path_factory.mktemp("w") / "tiny", cfg, state)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    """An 80x60 input image."""
    y, x = np.mgrid[0:60, 0:80]
    path = tmp_path_factory.mktemp("img") / "input.png"
    Image.fromarray(np.stack([x * 3, y * 4, (x + y) * 2], -1).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def trajectory(tmp_path):
    """One 30x20 box on the 80x60 image, moving right 6 px per frame."""
    path = tmp_path / "traj.json"
    path.write_text(json.dumps({"boxes": [{"box": [20, 20, 50, 40], "keyframes": {"3": [53, 30]}}]}))
    return path


def go(tiny_dir, png, out, *extra):
    return run.cli(["--weights", str(tiny_dir), "--image", str(png), "--out", str(out), "--quiet", *extra])


def test_guided_run_records_settings_and_losses(tmp_path, tiny_dir, png, trajectory):
    out = tmp_path / "guided"
    assert go(tiny_dir, png, out, "--trajectory", str(trajectory), "--iterations", "2", "--layers", "2.2",
              "--gamma", "none") == 0
    record = json.loads((out / "run.json").read_text())
    g = record["guidance"]
    assert g["method"] == "SG-I2V" and g["trajectory"] == str(trajectory)
    assert g["settings"] == {"layers": [[2, 2]], "feature_source": "aligned", "window": [0.1, 0.4],
                             "iterations": 2, "lr": 0.21, "cutoff": None, "order": 4, "weighting": "gaussian",
                             "baseline": None}
    assert g["optimised_steps"] == [1, 2] and list(g["loss_per_step"]) == ["1", "2"]   # i / 5 in [0.1, 0.4]
    assert all(len(v) == 2 and all(x >= 0 for x in v) for v in g["loss_per_step"].values())
    assert record["inputs"]["trajectory"]["used"] is True


def test_freetraj_baseline_run(tmp_path, tiny_dir, png, trajectory):
    out = tmp_path / "freetraj"
    assert go(tiny_dir, png, out, "--trajectory", str(trajectory), "--baseline", "freetraj") == 0
    g = json.loads((out / "run.json").read_text())["guidance"]
    assert g["method"] == "freetraj baseline" and g["loss_per_step"] == {} and g["optimised_steps"] == []


@pytest.mark.parametrize("flags, message", [
    (["--trajectory", "missing.json"], "--trajectory missing.json: no such file"),
    (["--trajectory", "BAD"], "box 0: field box"),
    (["--trajectory", "TRAJ", "--lr", "0"], "--lr 0.0: expected a learning rate > 0"),
    (["--trajectory", "TRAJ", "--layers", "0.1"], "--layers 0.1: layer (0, 1): expected"),
    (["--trajectory", "TRAJ", "--gamma", "-1"], "--gamma -1.0: expected a cut-off >= 0"),
])
def test_guidance_errors_fail_before_loading(tmp_path, tiny_dir, png, trajectory, capsys, monkeypatch,
                                             flags, message):
    import weights.svd as svd_module
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"boxes": [{"box": [70, 20, 90, 40], "keyframes": {}}]}))   # x1 = 90 > 80
    flags = [{"TRAJ": str(trajectory), "BAD": str(bad)}.get(f, f) for f in flags]
    monkeypatch.setattr(svd_module.SVDFiles, "load", lambda *a: pytest.fail("loaded weights before validating"))
    monkeypatch.chdir(tmp_path)
    assert go(tiny_dir, png, tmp_path / "out", *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("run.py: error: ") and message in err, err


@pytest.mark.parametrize("flag, value", [("--layers", "2"), ("--window", "0.5,0.2"), ("--gamma", "low")])
def test_malformed_guidance_flags_are_refused_by_the_parser(flag, value, capsys):
    with pytest.raises(SystemExit):
        run.parser().parse_args([flag, value])
    assert f"argument {flag}" in capsys.readouterr().err


def test_flag_parsers():
    assert run.parse_layers("2.1,2.2") == ((2, 1), (2, 2)) and run.parse_window("0,1") == (0.0, 1.0)
    assert run.parse_gamma("None") is None and run.parse_gamma("0.25") == 0.25
    args = run.parser().parse_args([])
    assert (args.layers, args.gamma, args.window, args.iterations, args.lr) == (None, run.GAMMA_UNSET, None, None, None)


def test_guidance_defaults_come_from_the_model_config_else_the_paper(tmp_path):
    from model.config import svd, tiny_world
    paper = run.guidance_settings(run.parser().parse_args([]), svd(), tmp_path)
    assert (paper.layers, paper.window, paper.iterations, paper.lr, paper.cutoff) == (((2, 1), (2, 2)), (0.1, 0.4), 5, 0.21, 0.5)
    tiny = run.guidance_settings(run.parser().parse_args([]), tiny_world(), tmp_path)
    assert (tiny.layers, tiny.window, tiny.iterations, tiny.lr, tiny.cutoff) == (((2, 1), (2, 2), (3, 1), (3, 2)),
                                                                                (0.2, 0.6), 10, 0.3, 0.75)
    for flag, cutoff in (("none", None), ("0.5", 0.5)):   # --gamma beats the config, and 'none' is not "unset"
        assert run.guidance_settings(run.parser().parse_args(["--gamma", flag]), tiny_world(), tmp_path).cutoff == cutoff
    no_restore = tiny_world()
    no_restore.guidance = dict(no_restore.guidance, cutoff=None)       # a config's null: no restore
    assert run.guidance_settings(run.parser().parse_args([]), no_restore, tmp_path).cutoff is None
    flags = run.guidance_settings(run.parser().parse_args(["--lr", "0.5", "--layers", "2.1,2.2"]), tiny_world(), tmp_path)
    assert (flags.layers, flags.iterations, flags.lr) == (((2, 1), (2, 2)), 10, 0.5)
    odd = tiny_world()
    odd.guidance = {"layers": [[2, 1, 0]]}
    with pytest.raises(run.RunError, match="guidance layers \\[\\[2, 1, 0\\]\\]: expected"):
        run.guidance_settings(run.parser().parse_args([]), odd, tmp_path)
    odd.guidance = {"lr": -1.0}                          # a bad config value is named as the config's, not a flag's
    with pytest.raises(run.RunError, match="^model config sgi2v-tiny: guidance lr -1.0: expected"):
        run.guidance_settings(run.parser().parse_args([]), odd, tmp_path)
    with pytest.raises(run.RunError, match="^--lr -1.0: expected"):
        run.guidance_settings(run.parser().parse_args(["--lr", "-1"]), tiny_world(), tmp_path)
    odd.guidance = {"cutoff": -0.5}
    with pytest.raises(run.RunError, match="^model config sgi2v-tiny: guidance cutoff -0.5: expected a cut-off"):
        run.guidance_settings(run.parser().parse_args([]), odd, tmp_path)
    bad = tiny_world()
    bad.guidance = {"gamma": 1.0}                        # the flag's name is not the config field's (cutoff)
    with pytest.raises(run.RunError, match="guidance fields \\['gamma'\\]"):
        run.guidance_settings(run.parser().parse_args([]), bad, tmp_path)
