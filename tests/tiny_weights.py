"""Tiny random SVD weights written to disk in the layouts `load_svd` reads (test helper, CPU, no diffusers).

    cfg, nets, state = tiny_model(seed=0)                      # model.config.tiny(), random weights
    write_diffusers_folder(tmp_path / "m", cfg, state)         # unet/, vae/, image_encoder/ + sgi2v_config.json
    write_single_file(tmp_path / "s" / "svd.safetensors", cfg, state)   # the original (sgm) single file
"""
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from model.clip import CLIPImageEncoder
from model.config import SVDConfig, tiny
from model.unet import UNet
from model.vae import VAE
from tests.oracles import random_state_dict
from weights.original_layout import diffusers_to_original

FILES = {"unet": ("unet", "diffusion_pytorch_model"), "vae": ("vae", "diffusion_pytorch_model"),
         "clip": ("image_encoder", "model")}


def tiny_model(seed: int = 0, cfg: SVDConfig = None):
    """(cfg, {part: module}, {part: state dict}) of a tiny SVD with random weights (float32, CPU)."""
    cfg = cfg or tiny()
    nets = {"unet": UNet(cfg.unet), "vae": VAE(cfg.vae), "clip": CLIPImageEncoder(cfg.clip)}
    state = {}
    for i, (part, net) in enumerate(nets.items()):
        state[part] = random_state_dict(net, seed + i)
        net.load_state_dict(state[part], strict=True)
        net.eval().requires_grad_(False)
    return cfg, nets, state


def write_diffusers_folder(root, cfg: SVDConfig, state: dict, variant: str = "", dtype=torch.float32,
                           sgi2v_config: bool = True) -> Path:
    """The diffusers layout: <sub>/<stem><variant>.safetensors per part (variant "" or ".fp16"), tensors in
    `dtype`, plus sgi2v_config.json = cfg.to_dict() unless sgi2v_config is False."""
    root = Path(root)
    for part, (sub, stem) in FILES.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        save_file({k: t.to(dtype).contiguous() for k, t in state[part].items()},
                  str(root / sub / f"{stem}{variant}.safetensors"))
    if sgi2v_config:
        (root / "sgi2v_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    return root


def write_single_file(path, cfg: SVDConfig, state: dict, sgi2v_config: bool = True) -> Path:
    """The original single-file layout (weights/original_layout.py's inverse mapping), with
    sgi2v_config.json beside it (a tiny model needs its config; official files go by their presets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: t.contiguous() for k, t in diffusers_to_original(state).items()}, str(path))
    if sgi2v_config:
        (path.parent / "sgi2v_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    return path
