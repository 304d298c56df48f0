"""`python -m weights.tiny.train --backbone dit` on the CPU: a step at batch 1 trains (finite loss, weights
move), saves the state and a loadable model folder, and a second call resumes from it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.dit import DiT
from weights import load_svd
from weights.tiny.train import DIT_MODEL_DIR, MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "sgi2v_config.json").exists(), reason="no shipped tiny model")


def train(state, model, steps, *extra):
    cmd = [sys.executable, "-m", "weights.tiny.train", "--backbone", "dit", "--device", "cpu", "--batch", "1",
           "--prep-chunk", "1", "--workers", "0", "--max-steps", str(steps), "--log-every", "1",
           "--state", str(state), "--model-dir", str(model), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_dit_trains_saves_and_resumes(tmp_path):
    state, model = tmp_path / "state", tmp_path / "model"
    out = train(state, model, 1)
    assert "from scratch" in out
    meta = json.loads((state / "meta.json").read_text())
    assert meta["dit_steps"] == 1 and meta["next_seed"] > 1_000_000
    loss = meta["log"][-1]["loss"]
    assert loss == loss and 0 < loss < 100                  # finite (EDM-weighted MSE of a fresh model is ~1)
    raw = {k: v for path in sorted(state.glob("dit_raw-*.safetensors")) for k, v in load_file(str(path)).items()}
    fresh = DiT(load_svd(model).cfg.unet).init_weights()
    # the first step moved the zero-initialised output projection (AdamW's first step is lr-sized per weight)
    assert raw["proj_out.weight"].abs().max() > 0 and fresh.proj_out.weight.abs().max() == 0

    out = train(state, model, 1)
    assert "resumed at step 1" in out
    meta2 = json.loads((state / "meta.json").read_text())
    assert meta2["dit_steps"] == 2 and meta2["next_seed"] > meta["next_seed"]
    assert [e["step"] for e in meta2["log"]] == [1, 2]
    svd = load_svd(model)                                   # the model folder loads as a DiT with the base VAE
    assert isinstance(svd.unet, DiT) and svd.cfg.name == "sgi2v-tiny-dit"
    assert (model / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (MODEL_DIR / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert json.loads((model / "TRAINING.json").read_text())["dit_steps"] == 2


def test_dit_flags_are_checked_before_work(tmp_path):
    cmd = [sys.executable, "-m", "weights.tiny.train", "--backbone", "dit", "--stage", "vae"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--backbone dit trains the denoiser only" in done.stderr
    cmd = [sys.executable, "-m", "weights.tiny.train", "--backbone", "dit", "--model-dir", str(MODEL_DIR)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is the --base-model" in done.stderr
    assert DIT_MODEL_DIR != MODEL_DIR
