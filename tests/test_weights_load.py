"""Locating, opening and streaming weights (weights/locate.py, weights/load.py), with tiny files in tmp_path."""
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.official_keys import diffusers_listings
from weights.errors import (CorruptFile, MissingKeys, ShapeMismatch, UnexpectedKeys, WeightsError, WeightsNotFound,
                            WrongModel)
from weights.load import load_state_dict_into, open_diffusers_part, open_single_file, open_state
from weights.locate import locate
from weights.original_layout import UNET, diffusers_to_original

DIRS = {"unet": ("unet", "diffusion_pytorch_model"), "vae": ("vae", "diffusion_pytorch_model"),
        "clip": ("image_encoder", "model")}


def tiny_shape(shape) -> tuple:
    return tuple(d if d <= 3 else 4 + d % 3 for d in shape)


@pytest.fixture(scope="module")
def parts() -> dict:
    """{part: diffusers-layout state dict}: the official key structure (tests/official_keys.py), tiny
    random tensors."""
    g = torch.Generator().manual_seed(0)
    return {part: {k: torch.randn(tiny_shape(s), generator=g) for k, s in listing.items()}
            for part, listing in diffusers_listings().items()}


def shapes_module(shapes: dict, device="cpu", fill=0.0) -> torch.nn.Module:
    """A bare module tree whose state_dict has exactly these names and shapes."""
    root = torch.nn.Module()
    for name, shape in shapes.items():
        *path, leaf = name.split(".")
        m = root
        for p in path:
            if p not in m._modules:
                m.add_module(p, torch.nn.Module())
            m = m._modules[p]
        m.register_parameter(leaf, torch.nn.Parameter(torch.full(tuple(shape), fill, device=device)))
    return root


def module_like(sd: dict, device="meta") -> torch.nn.Module:
    return shapes_module({k: tuple(t.shape) for k, t in sd.items()}, device)


def write_diffusers(root: Path, parts: dict, variant: str = ".fp16", frames=25) -> Path:
    for part, (sub, stem) in DIRS.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        save_file({k: t.half() for k, t in parts[part].items()}, str(root / sub / f"{stem}{variant}.safetensors"))
    if frames:
        (root / "unet" / "config.json").write_text(json.dumps({"num_frames": frames}))
    return root


def assert_loaded(module, sd, dtype=torch.float32, stored=torch.float32):
    """Every tensor equals the file's (sd rounded to the `stored` dtype), now in `dtype` on the cpu."""
    got = module.state_dict()
    assert set(got) == set(sd)
    for k, t in sd.items():
        assert got[k].dtype == dtype and got[k].device.type == "cpu", k
        assert torch.equal(got[k], t.to(stored).to(dtype)), k


# ------------------------------------------------------------- happy paths ----------------------------------
def test_diffusers_folder_streams_into_meta_modules(tmp_path, parts):
    found = locate(write_diffusers(tmp_path / "svd", parts))
    assert found.layout == "diffusers" and found.num_frames == 25
    assert found.variants == {"unet": "fp16", "vae": "fp16", "clip": "fp16"}
    views = open_state(found)
    for part, sd in parts.items():
        module = load_state_dict_into(module_like(sd), views[part], dtype=torch.float32)
        assert_loaded(module, sd, stored=torch.float16)  # fp16 on disk -> fp32 params
        assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in module.parameters())


def test_single_file_roundtrip_is_exact(tmp_path, parts):
    """diffusers -> (inverse mapping) -> svd_xt.safetensors -> (forward mapping, lazy) -> identical tensors."""
    original = diffusers_to_original(parts)
    original["first_stage_model.encoder.conv_in.weight"] = torch.zeros(2, 3, 3, 3)  # unused rows: tolerated
    original["conditioner.embedders.0.open_clip.model.logit_scale"] = torch.zeros(())
    original["some_unknown_extra_row"] = torch.zeros(1)
    save_file(original, str(tmp_path / "svd_xt.safetensors"))
    found = locate(tmp_path)
    assert found.layout == "single_file" and found.num_frames == 25
    views = open_state(found)
    assert "some_unknown_extra_row" in views["unet"].skipped
    for part, sd in parts.items():
        for k, t in sd.items():
            assert views[part].entries[k].shape == tuple(t.shape), k
            assert torch.equal(views[part].entries[k].get(), t), k
        assert_loaded(load_state_dict_into(module_like(sd), views[part]), sd)


def test_copy_into_materialised_module_keeps_its_dtype(tmp_path, parts):
    path = tmp_path / "clip.safetensors"
    save_file(parts["clip"], str(path))
    module = module_like(parts["clip"], device="cpu").double()
    load_state_dict_into(module, open_diffusers_part(path, "clip"))
    assert_loaded(module, parts["clip"], dtype=torch.float64)


def test_position_ids_in_a_clip_file_are_ignored(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    save_file({**parts["clip"], "vision_model.embeddings.position_ids": torch.arange(5)[None]}, str(path))
    view = open_diffusers_part(path, "clip")
    assert view.skipped == ["vision_model.embeddings.position_ids"]
    load_state_dict_into(module_like(parts["clip"]), view)


def test_meta_buffer_left_over_is_reported(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    save_file(parts["clip"], str(path))
    module = module_like(parts["clip"])
    module.register_buffer("freqs", torch.empty(4, device="meta"), persistent=False)
    with pytest.raises(WeightsError, match="freqs"):
        load_state_dict_into(module, open_diffusers_part(path, "clip"))


# ------------------------------------------------------------- locate ---------------------------------------
def test_hf_cache_snapshot_found_from_env_and_repo_folder(tmp_path, parts, monkeypatch):
    repo = tmp_path / "hub" / "models--stabilityai--stable-video-diffusion-img2vid-xt"
    write_diffusers(repo / "snapshots" / "old", {p: {k: t[..., :1] for k, t in sd.items()} for p, sd in parts.items()},
                    variant="", frames=None)
    write_diffusers(repo / "snapshots" / "abc123", parts, variant="", frames=None)
    os.utime(repo / "snapshots" / "old", (4e9, 4e9))  # newest on disk, but refs/main names abc123
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for found in (locate(), locate(repo), locate(tmp_path / "hub")):
        assert found.root == repo / "snapshots" / "abc123"
        assert found.variants["unet"] is None and found.num_frames == 25  # no config: from the repo name
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFound, match=str(tmp_path / "home" / "hub")):
        locate()


def test_not_found_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFound) as e:
        locate()
    for name in ("models--stabilityai--stable-video-diffusion-img2vid/snapshots",
                 "models--stabilityai--stable-video-diffusion-img2vid-xt/snapshots"):
        assert str(tmp_path / "hub" / name) in str(e.value)
    (tmp_path / "w" / "unet").mkdir(parents=True)
    with pytest.raises(WeightsNotFound) as e:
        locate(tmp_path / "w")
    for place in ("unet/diffusion_pytorch_model{.fp16,}.safetensors", "image_encoder/model{.fp16,}.safetensors",
                  str(tmp_path / "w" / "svd.safetensors"), str(tmp_path / "w" / "svd_xt.safetensors")):
        assert place in str(e.value)
    with pytest.raises(WeightsNotFound, match="does not exist"):
        locate(tmp_path / "nowhere")


# ------------------------------------------------------------- errors ---------------------------------------
def test_missing_keys_named_then_counted(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    save_file(parts["clip"], str(path))
    shapes = {k: tuple(t.shape) for k, t in parts["clip"].items()}
    shapes.update({f"extra.layer{i}.weight": (2,) for i in range(7)})
    with pytest.raises(MissingKeys, match=r"7 missing keys: extra\.layer0\.weight, .*extra\.layer4\.weight and 2 more"):
        load_state_dict_into(shapes_module(shapes, "meta"), open_diffusers_part(path, "clip"))


def test_unexpected_keys(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    save_file({**parts["clip"], "vision_model.surprise": torch.zeros(1)}, str(path))
    with pytest.raises(UnexpectedKeys, match=r"1 unexpected keys: vision_model\.surprise"):
        load_state_dict_into(module_like(parts["clip"]), open_diffusers_part(path, "clip"))


def test_shape_mismatch_names_key_and_shapes_and_changes_nothing(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    sd = dict(parts["clip"])
    sd["visual_projection.weight"] = torch.ones(7, 6)
    save_file(sd, str(path))
    module = module_like(parts["clip"], device="cpu")
    with pytest.raises(ShapeMismatch, match=r"visual_projection\.weight: expected \[5, 6\], got \[7, 6\]"):
        load_state_dict_into(module, open_diffusers_part(path, "clip"))
    assert all(t.eq(0).all() for t in module.state_dict().values())  # checked before any copy


def test_truncated_file_is_corrupt(tmp_path, parts):
    path = tmp_path / "svd.safetensors"
    save_file(diffusers_to_original(parts), str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFile, match=r"svd\.safetensors: truncated"):
        open_state(locate(path))


def test_corrupt_header(tmp_path, parts):
    path = tmp_path / "model.safetensors"
    save_file(parts["clip"], str(path))
    data = bytearray(path.read_bytes())
    data[8:20] = b"#not json!#{"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match=r"model\.safetensors: corrupt safetensors header"):
        open_diffusers_part(path, "clip")
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CorruptFile, match="not a safetensors file"):
        open_diffusers_part(path, "clip")


def test_sd_single_file_is_wrong_model(tmp_path):
    path = tmp_path / "sd15.safetensors"
    save_file({UNET + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": torch.zeros(4, 4),
               UNET + "input_blocks.3.0.op.weight": torch.zeros(4, 4, 3, 3),
               "first_stage_model.decoder.conv_in.weight": torch.zeros(4, 4, 3, 3),
               "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(4)}, str(path))
    with pytest.raises(WrongModel, match=r"expected an SVD single file.*image-only Stable Diffusion"):
        open_state(locate(path))


def test_image_unet_in_diffusers_folder_is_wrong_model(tmp_path, parts):
    root = write_diffusers(tmp_path, parts)
    save_file({"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": torch.zeros(4, 4)},
              str(root / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    with pytest.raises(WrongModel, match=r"UNetSpatioTemporalConditionModel.*UNet2DConditionModel"):
        open_state(locate(root))


def test_diffusers_part_given_as_single_file_is_wrong_model(tmp_path, parts):
    path = tmp_path / "unet.safetensors"
    save_file(parts["unet"], str(path))
    with pytest.raises(WrongModel, match="looks like a diffusers SVD UNet"):
        open_single_file(path)


def test_tiny_reference_modules_roundtrip_through_a_single_file(tmp_path):
    """Tiny diffusers / transformers models (other widths, 3 CLIP layers): their state dicts go through the
    inverse mapping into a single file and back into fresh copies of the same classes, exactly."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64, 64, 64), num_attention_heads=(2, 2, 2, 2), cross_attention_dim=32,
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=24)
    vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32, 64, 64, 64))
    config = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=3,
                                           num_attention_heads=4, projection_dim=16, image_size=28, patch_size=14)
    clip = transformers.CLIPVisionModelWithProjection(config)
    models = {"unet": unet, "vae": vae, "clip": clip}
    save_file(diffusers_to_original({p: m.state_dict() for p, m in models.items()}), str(tmp_path / "svd.safetensors"))
    views = open_single_file(tmp_path / "svd.safetensors")
    with torch.device("meta"):
        fresh = {"unet": type(unet).from_config(unet.config), "vae": type(vae).from_config(vae.config),
                 "clip": type(clip)(config)}
    with pytest.raises(WeightsError, match="position_ids"):  # transformers' non-persistent buffer stays on meta
        load_state_dict_into(fresh["clip"], views["clip"])
    fresh["clip"] = type(clip)(config)  # built on the cpu: copied in place
    for part, model in models.items():
        load_state_dict_into(fresh[part], views[part])
        got = fresh[part].state_dict()
        assert all(torch.equal(got[k], t) for k, t in model.state_dict().items()), part
