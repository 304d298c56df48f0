"""The full-size presets have exactly the official parameter names and shapes (built on the meta device)."""
import json
from pathlib import Path

import pytest
import torch

from model import CLIPImageEncoder, UNet, VAE, svd, svd_xt

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
LISTINGS = {"unet": "keys-diffusers-unet.json", "vae": "keys-diffusers-vae.json",
            "clip": "keys-transformers-clip-vision.json"}
BUILD = {"unet": lambda c: UNet(c.unet), "vae": lambda c: VAE(c.vae), "clip": lambda c: CLIPImageEncoder(c.clip)}
PARAMS = {"unet": 1_524_623_082, "vae": 97_742_847, "clip": 632_076_800}   # spec sections 1-3


@pytest.mark.parametrize("preset", [svd, svd_xt])
@pytest.mark.parametrize("part", ["unet", "vae", "clip"])
def test_full_size_keys_and_shapes_are_official(preset, part):
    listing = REFERENCE / LISTINGS[part]
    if not listing.exists():
        pytest.skip(f"{listing} not present (the shared/ folder beside the repository)")
    expected = json.loads(listing.read_text())
    with torch.device("meta"):
        module = BUILD[part](preset())
    ours = {k: list(v.shape) for k, v in module.state_dict().items()}
    assert sorted(set(expected) - set(ours))[:5] == [] and sorted(set(ours) - set(expected))[:5] == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert sum(p.numel() for p in module.parameters()) == PARAMS[part]
