"""The full-size presets have exactly the official parameter names and shapes (built on the meta device;
the official listing from diffusers' / transformers' classes with the official configs, tests/official_keys.py)."""
import pytest
import torch

from model import CLIPImageEncoder, UNet, VAE, svd, svd_xt
from tests.official_keys import diffusers_listings

BUILD = {"unet": lambda c: UNet(c.unet), "vae": lambda c: VAE(c.vae), "clip": lambda c: CLIPImageEncoder(c.clip)}
PARAMS = {"unet": 1_524_623_082, "vae": 97_742_847, "clip": 632_076_800}   # the official models' sizes


@pytest.mark.parametrize("preset", [svd, svd_xt])
@pytest.mark.parametrize("part", ["unet", "vae", "clip"])
def test_full_size_keys_and_shapes_are_official(preset, part):
    expected = {k: list(v) for k, v in diffusers_listings()[part].items()}
    with torch.device("meta"):
        module = BUILD[part](preset())
    ours = {k: list(v.shape) for k, v in module.state_dict().items()}
    assert sorted(set(expected) - set(ours))[:5] == [] and sorted(set(ours) - set(expected))[:5] == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert sum(p.numel() for p in module.parameters()) == PARAMS[part]
