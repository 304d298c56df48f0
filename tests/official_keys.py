"""The official SVD parameter names and shapes, from oracles that need nothing beside the repository.

Diffusers layout (unet/, vae/, image_encoder/ of stabilityai/stable-video-diffusion-img2vid[-xt]):
diffusers' UNetSpatioTemporalConditionModel and AutoencoderKLTemporalDecoder and transformers'
CLIPVisionModelWithProjection, built on the meta device (no memory) with the values of the official
config.json files, written out below. img2vid and img2vid-xt differ only in num_frames (14 / 25), which
changes no parameter.

Original single-file layout (svd.safetensors / svd_xt.safetensors, sgm's DiffusionEngine.state_dict()):
diffusers has no converter for it, so its listing is a committed fixture, tests/data/sgm_svd_keys.json.gz
(tests/data/README.md says what it is and how it was made).

    unet, vae, clip = diffusers_listings()     # {key: shape tuple}, 1428 / 374 / 520 keys
    sgm = sgm_listing()                        # {key: shape tuple}, 2446 keys
"""
import gzip
import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch

SGM_FIXTURE = Path(__file__).resolve().parent / "data" / "sgm_svd_keys.json.gz"

# unet/config.json of the official repositories (the fields that shape parameters)
UNET_CONFIG = dict(in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                   down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
                   up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
                   layers_per_block=2, num_attention_heads=(5, 10, 20, 20), cross_attention_dim=1024,
                   transformer_layers_per_block=1, addition_time_embed_dim=256,
                   projection_class_embeddings_input_dim=768, num_frames=14)
# vae/config.json
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                  down_block_types=("DownEncoderBlock2D",) * 4, layers_per_block=2, scaling_factor=0.18215)
# image_encoder/config.json (OpenCLIP ViT-H/14 vision tower with its projection)
CLIP_CONFIG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                   patch_size=14, image_size=224, projection_dim=1024, layer_norm_eps=1e-5, hidden_act="gelu")


def _shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(t.shape) for k, t in module.state_dict().items()}


@lru_cache(maxsize=None)
def _diffusers_listings() -> tuple:
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        unet = diffusers.UNetSpatioTemporalConditionModel(**UNET_CONFIG)
        vae = diffusers.AutoencoderKLTemporalDecoder(**VAE_CONFIG)
        clip = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**CLIP_CONFIG))
    return _shapes(unet), _shapes(vae), _shapes(clip)


def diffusers_listings() -> dict:
    """{"unet" | "vae" | "clip": {key: shape}} of the official diffusers-layout files (a fresh copy)."""
    unet, vae, clip = _diffusers_listings()
    return {"unet": dict(unet), "vae": dict(vae), "clip": dict(clip)}


@lru_cache(maxsize=None)
def _sgm_listing() -> tuple:
    return tuple((k, tuple(v)) for k, v in json.loads(gzip.decompress(SGM_FIXTURE.read_bytes())).items())


def sgm_listing() -> dict:
    """{key: shape} of the official single file (tests/data/sgm_svd_keys.json.gz; a fresh copy)."""
    return dict(_sgm_listing())
