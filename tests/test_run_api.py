"""run.py's API: prepare (no tensor read) -> load_model -> execute(on_progress), the same video as main()."""
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import run
import weights.svd as svd_module
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
    y, x = np.mgrid[0:64, 0:64]
    path = tmp_path_factory.mktemp("img") / "input.png"
    Image.fromarray(np.stack([x * 3, y * 4, (x + y) * 2], -1).astype(np.uint8)).save(path)
    return path


def flags(tiny_dir, png, out, *extra):
    return run.parser().parse_args(["--weights", str(tiny_dir), "--image", str(png), "--out", str(out), "--quiet",
                                    *extra])


def test_prepare_load_execute_with_progress_events(tmp_path, tiny_dir, png, monkeypatch):
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"boxes": [{"box": [16, 16, 40, 40], "keyframes": {"3": [36, 28]}}]}))
    args = flags(tiny_dir, png, tmp_path / "api", "--trajectory", str(traj), "--iterations", "2")

    load = svd_module.SVDFiles.load
    monkeypatch.setattr(svd_module.SVDFiles, "load", lambda *a: pytest.fail("prepare read a tensor"))
    job = run.prepare(args)
    assert isinstance(job, run.Job) and job.settings["steps"] == 5 and job.boxes.shape == (1, 4, 4)
    assert not (tmp_path / "api").exists()                   # nothing written before execute
    monkeypatch.setattr(svd_module.SVDFiles, "load", load)

    events = []
    out = run.execute(job, run.load_model(job), on_progress=events.append)
    denoise = [e for e in events if e["stage"] == "denoise"]
    assert denoise == [{"stage": "denoise", "step": i, "steps": 5} for i in range(5)]
    losses = [e for e in events if e["stage"] == "loss"]
    assert [e["step"] for e in losses] == [1, 2] and all(len(e["losses"]) == 2 for e in losses)  # i / 5 in [0.1, 0.4]
    record = json.loads((out / "run.json").read_text())
    assert record["guidance"]["loss_per_step"] == {str(e["step"]): e["losses"] for e in losses}
    assert set(record["timings_s"]) >= {"read_inputs", "find_weights", "load_weights", "generate", "write"}

    # main() is execute(prepare(args), load_model(job)): the same frames (PNG, lossless). The mp4 bytes are not
    # compared: this libx264 build encodes these 64x64 noise-like frames differently after other torch work
    # in the same process (heap-dependent), though the frames are equal
    assert run.main(flags(tiny_dir, png, tmp_path / "main", "--trajectory", str(traj), "--iterations", "2")) \
        == tmp_path / "main"
    for name in ["condition.png"] + [f"frames/frame_00{i}.png" for i in range(4)]:
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "main" / name).read_bytes(), name


def test_one_loaded_model_serves_several_jobs(tmp_path, tiny_dir, png):
    files = svd_module.find_svd(str(tiny_dir))
    svd = run.load_model(files, device="cpu", dtype="fp32")
    for seed in (1, 2):
        out = run.execute(run.prepare(flags(tiny_dir, png, tmp_path / f"s{seed}", "--seed", str(seed))), svd)
        assert json.loads((out / "run.json").read_text())["settings"]["seed"] == seed
    assert (tmp_path / "s1" / "video.mp4").read_bytes() != (tmp_path / "s2" / "video.mp4").read_bytes()
