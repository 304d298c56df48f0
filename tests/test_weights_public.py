"""weights.load_svd / find_svd: tiny random models written to disk in each layout load to identical networks."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import weights
import weights.svd as svd_module
from model.config import SVDConfig, svd, tiny
from sampler.conditioning import generate
from tests.tiny_weights import FILES, tiny_model, write_diffusers_folder, write_single_file
from weights import (CorruptFile, MissingKeys, SVD, WeightsNotFound, WrongModel, find_svd, load_svd)


@pytest.fixture(scope="module")
def tiny_nets():
    return tiny_model(seed=0)


def image(size=64):
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def run_generate(nets, cfg, steps=2):
    return generate(nets["unet"], nets["vae"], nets["clip"], image(), num_frames=cfg.unet.num_frames, height=64,
                    width=64, num_steps=steps, decode_chunk_size=2, generator=torch.Generator().manual_seed(3),
                    scaling_factor=cfg.vae.scaling_factor)


def assert_same(loaded: SVD, state, dtype=torch.float32, stored=torch.float32):
    for part in ("unet", "vae", "clip"):
        got = getattr(loaded, part).state_dict()
        assert set(got) == set(state[part])
        for k, t in state[part].items():
            assert got[k].dtype == dtype and got[k].device.type == "cpu", (part, k)
            assert torch.equal(got[k], t.to(stored).to(dtype)), (part, k)
        module = getattr(loaded, part)
        assert not module.training
        assert not any(p.requires_grad or p.is_meta for p in module.parameters())
        assert all(p.data_ptr() % 64 == 0 for p in module.parameters())   # owned memory, not the file's mmap


# ------------------------------------------------------------- layouts -----------------------------------------
def test_diffusers_folder_loads_identical_modules_and_outputs(tmp_path, tiny_nets):
    cfg, nets, state = tiny_nets
    root = write_diffusers_folder(tmp_path / "tiny", cfg, state)
    loaded = load_svd(root)
    assert loaded.cfg == cfg and loaded.cfg.name == "tiny-test"
    assert_same(loaded, state)
    assert loaded.details["layout"] == "diffusers" and loaded.details["config"].startswith("sgi2v_config.json")
    assert str(root) in loaded.source and loaded.device.type == "cpu" and loaded.dtype == torch.float32
    with torch.no_grad():
        ours = run_generate({p: getattr(loaded, p) for p in FILES}, loaded.cfg)
    assert np.array_equal(ours, run_generate(nets, cfg))


def test_single_file_loads_identical_modules_and_outputs(tmp_path, tiny_nets):
    cfg, nets, state = tiny_nets
    path = write_single_file(tmp_path / "single" / "tiny.safetensors", cfg, state)
    loaded = load_svd(path)
    assert loaded.cfg == cfg and loaded.details["layout"] == "single_file"
    assert_same(loaded, state)
    assert np.array_equal(run_generate({p: getattr(loaded, p) for p in FILES}, cfg), run_generate(nets, cfg))


def test_fp16_variant_folder(tmp_path, tiny_nets):
    cfg, _, state = tiny_nets
    root = write_diffusers_folder(tmp_path / "fp16", cfg, state, variant=".fp16", dtype=torch.float16)
    loaded = load_svd(root)                                        # variant "auto" picks the .fp16 files
    assert set(loaded.details["variants"].values()) == {"fp16"} and "fp16 files" in loaded.source
    assert_same(loaded, state, stored=torch.float16)               # fp16 on disk -> fp32 parameters
    half = load_svd(root, dtype=torch.float16)
    assert_same(half, state, dtype=torch.float16, stored=torch.float16)
    with pytest.raises(WeightsNotFound, match="missing"):
        load_svd(root, variant=None)                               # full-precision files only: none there


def test_config_from_diffusers_config_json(tmp_path, tiny_nets):
    """No sgi2v_config.json: the preset, with the fields that diffusers / transformers config.json files give."""
    diffusers = pytest.importorskip("diffusers")  # noqa: F841 (only to write real config.json files)
    pytest.importorskip("transformers")
    from tests.oracles import diffusers_unet, diffusers_vae, transformers_clip
    cfg, _, state = tiny_nets
    root = write_diffusers_folder(tmp_path / "cfgjson", cfg, state, sgi2v_config=False)
    diffusers_unet(cfg.unet).save_config(root / "unet")
    diffusers_vae(cfg.vae).save_config(root / "vae")
    transformers_clip(cfg.clip).config.save_pretrained(root / "image_encoder")
    files = find_svd(root)
    assert (files.cfg.unet, files.cfg.vae, files.cfg.clip) == (cfg.unet, cfg.vae, cfg.clip)
    assert files.cfg.name == "svd-custom" and files.cfg.sampling == svd().sampling
    assert "unet/config.json" in files.config_source
    assert_same(files.load(), state)


def test_official_preset_by_frame_count(tmp_path):
    """Frame count -> svd / svd_xt, without touching any tensor (a header-only fake is enough)."""
    found = weights.Found("diffusers", {}, tmp_path, num_frames=25)
    cfg, source = svd_module.config_for(found)
    assert cfg.name == "svd_xt" and cfg.unet.num_frames == 25 and source == "svd_xt preset"
    found = weights.Found("single_file", {}, tmp_path, num_frames=None)
    cfg, source = svd_module.config_for(found)
    assert cfg.name == "svd" and "14 assumed" in source


# ------------------------------------------------------------- errors ------------------------------------------
def test_not_found_lists_places(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFound) as e:
        load_svd(tmp_path / "empty")
    text = str(e.value)
    assert "Looked at" in text and f"{tmp_path / 'empty'}: diffusers layout: missing" in text
    assert "svd.safetensors: no such file" in text and "svd_xt.safetensors: no such file" in text


def test_hf_searches_the_cache_and_default_is_the_shipped_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFound) as e:
        load_svd("hf")
    assert str(tmp_path / "hub" / "models--stabilityai--stable-video-diffusion-img2vid") in str(e.value)
    monkeypatch.setattr(svd_module, "SHIPPED_TINY", tmp_path / "no-tiny")
    with pytest.raises(WeightsNotFound, match=r"shipped tiny model .*no-tiny does not exist.*'hf'"):
        load_svd()


def test_default_path_is_the_shipped_tiny_folder(tmp_path, monkeypatch, tiny_nets):
    cfg, _, state = tiny_nets
    root = write_diffusers_folder(tmp_path / "sgi2v-tiny", cfg, state)
    monkeypatch.setattr(svd_module, "SHIPPED_TINY", root)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))      # never consulted
    assert find_svd().found.root == root


def test_errors_come_before_any_tensor_is_read(tmp_path, tiny_nets, monkeypatch):
    """A key missing in the LAST part (clip) is reported by find_svd, before the U-Net is streamed."""
    cfg, _, state = tiny_nets
    broken = dict(state, clip={k: v for k, v in state["clip"].items() if "post_layernorm" not in k})
    root = write_diffusers_folder(tmp_path / "broken", cfg, broken)
    reads = []
    monkeypatch.setattr(svd_module, "load_state_dict_into", lambda *a, **k: reads.append(a))
    with pytest.raises(MissingKeys, match="post_layernorm"):
        load_svd(root)
    assert reads == []


def test_wrong_model_and_bad_config(tmp_path, tiny_nets):
    cfg, _, state = tiny_nets
    root = write_diffusers_folder(tmp_path / "swapped", cfg, dict(state, unet=state["vae"]))
    with pytest.raises(WrongModel, match="unet"):
        find_svd(root)
    root = write_diffusers_folder(tmp_path / "badcfg", cfg, state)
    (root / "sgi2v_config.json").write_text(json.dumps(dict(cfg.to_dict(), colour="blue")))
    with pytest.raises(CorruptFile, match="sgi2v_config.json.*colour"):
        find_svd(root)


def test_shipped_config_roundtrip():
    assert SVDConfig.from_dict(json.loads(json.dumps(tiny().to_dict()))) == tiny()
