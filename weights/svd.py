"""One call from "where are the weights" to three ready networks: `load_svd`.

    svd = load_svd()                                   # the shipped tiny model, weights/tiny/sgi2v-tiny/
    svd = load_svd("hf", device="cuda", dtype=torch.float16)   # official SVD from the Hugging Face cache
    frames = generate(svd.unet, svd.vae, svd.clip, image, ..., scaling_factor=svd.cfg.vae.scaling_factor)

It runs in two phases so that every weights error comes before any heavy work:
  find_svd   locate the files (locate.py), build the config, read the safetensors headers, build the
             networks on the meta device (no memory) and check every name and shape of all three parts;
  .load      stream the tensors into those networks one at a time, converted on the way to the target
             device and dtype (load.py `load_state_dict_into`): one copy in memory, nothing initialised.

Which config (the networks' sizes and the sampling defaults):
  1. `sgi2v_config.json` in the weights' folder (a diffusers folder, or the folder of a single file):
     `SVDConfig.to_dict()` of the model, written by our own exports (weights/tiny/train.py --export);
  2. otherwise the official preset, svd() (14 frames) or svd_xt() (25 frames) by the frame count that
     locate found (unet/config.json, else the file name), with the fields that the diffusers config.json
     files give taken from them (our dataclass fields carry the diffusers / transformers names).
"""
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

import torch

from model.clip import CLIPImageEncoder
from model.config import SVDConfig, svd, svd_xt
from model.dit import DiT
from model.unet import UNet
from model.vae import VAE

from .errors import CorruptFile, WeightsNotFound
from .load import check_keys_and_shapes, load_state_dict_into, open_state
from .locate import DENOISER_DIT, Found, locate

SHIPPED_TINY = Path(__file__).resolve().parent / "tiny" / "sgi2v-tiny"   # the default weights
HF = "hf"                                                              # path meaning: search the HF cache
CONFIG_FILE = "sgi2v_config.json"
PARTS = ("unet", "vae", "clip")


@dataclass
class SVD:
    """The three networks of Stable Video Diffusion, loaded, in eval mode, parameters frozen.
    `unet` is the denoiser: a model.dit.DiT when cfg.backbone is "dit" (the name kept for compatibility)."""
    cfg: SVDConfig
    unet: UNet
    vae: VAE
    clip: CLIPImageEncoder
    source: str                  # one line: what was loaded, from where, with which config
    details: dict                # the same as JSON-able fields (for run records)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype


@dataclass
class SVDFiles:
    """What `find_svd` found and checked: ready to `load`. Reading it cost only headers and configs."""
    found: Found
    cfg: SVDConfig
    config_source: str           # "sgi2v_config.json at ...", "svd_xt preset + config.json", ...
    views: dict                  # part -> load.PartView (header read, no tensor data)
    meta: Optional[tuple] = field(default=None, repr=False)  # (unet, vae, clip) on meta, for the first load

    def describe(self) -> dict:
        files = sorted({str(p) for p in self.found.files.values()})
        return {"name": self.cfg.name, "layout": self.found.layout, "root": str(self.found.root),
                "files": files, "variants": dict(self.found.variants), "config": self.config_source,
                "bytes": sum(Path(f).stat().st_size for f in files)}

    def load(self, device="cpu", dtype=torch.float32) -> SVD:
        """Stream the weights into networks built on the meta device, at `device` and `dtype`."""
        unet, vae, clip = self.meta or build_on_meta(self.cfg)
        self.meta = None                                               # filled by this load: not reusable
        for part, module in zip(PARTS, (unet, vae, clip)):
            load_state_dict_into(module, self.views[part], device=device, dtype=dtype)
            self.views[part].close()
        d = self.describe()
        source = (f"{d['name']}: {d['layout']} at {d['root']}"
                  + (" (fp16 files)" if "fp16" in d["variants"].values() else "") + f"; config: {d['config']}")
        return SVD(self.cfg, unet.eval(), vae.eval(), clip.eval(), source, d)


def build_on_meta(cfg: SVDConfig):
    """(unet, vae, clip) with every tensor on the meta device and requires_grad off (inference: the
    guidance optimises latents, never weights)."""
    denoiser = DiT if cfg.backbone == "dit" else UNet
    with torch.device("meta"):
        modules = denoiser(cfg.unet), VAE(cfg.vae), CLIPImageEncoder(cfg.clip)
    for m in modules:
        m.requires_grad_(False)
    return modules


# ---------------------------------------------------------------- config
def _part_from_diffusers(base, config: dict):
    """`base` dataclass with the fields that a diffusers/transformers config.json also has replaced."""
    values = {}
    for f in fields(base):
        if f.name in config:
            value = config[f.name]
            if isinstance(value, list):
                value = tuple(value)
            elif f.name == "num_attention_heads" and isinstance(base.num_attention_heads, tuple):
                value = (value,) * len(values.get("block_out_channels", base.block_out_channels))  # int = every level
            values[f.name] = value
    return replace(base, **values)


def _denoiser_dir(found: Found):
    """The sub-folder of the denoiser's weights in a diffusers folder ("unet" or "transformer"), else None."""
    path = found.files.get("unet")
    return path.parent.name if found.layout == "diffusers" and path is not None else None


def config_for(found: Found) -> tuple:
    """(SVDConfig, where it came from) for what locate found (see the module docstring)."""
    path = found.root / CONFIG_FILE
    if path.is_file():
        try:
            cfg = SVDConfig.from_dict(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as e:
            raise CorruptFile(f"{path}: not a valid {CONFIG_FILE} (SVDConfig.to_dict()): {e}") from e
        if (cfg.backbone == "dit") != (_denoiser_dir(found) == DENOISER_DIT):
            raise CorruptFile(f"{path}: backbone {cfg.backbone!r}, but the denoiser's weights are "
                              f"{found.files['unet']} (expected {DENOISER_DIT}/ for 'dit', unet/ for 'unet')")
        return cfg, f"{CONFIG_FILE} at {path}"
    if _denoiser_dir(found) == DENOISER_DIT:
        raise CorruptFile(f"{found.root}: a video transformer ({DENOISER_DIT}/) needs {CONFIG_FILE} (SVDConfig with "
                          "backbone 'dit'); no preset describes it")
    preset = svd_xt() if found.num_frames == 25 else svd()
    source = f"{preset.name} preset" + ("" if found.num_frames else " (frame count unknown: 14 assumed)")
    parts = {part: _part_from_diffusers(getattr(preset, part), found.configs.get(part, {})) for part in PARTS}
    cfg = replace(preset, **parts)
    if parts != {part: getattr(preset, part) for part in PARTS}:
        cfg.name = "svd-custom"                    # the config.json files describe other sizes (a test model)
    used = [f"{sub}/config.json" for sub, part in (("unet", "unet"), ("vae", "vae"), ("image_encoder", "clip"))
            if found.configs.get(part)]
    return cfg, source + (f" + {', '.join(used)}" if used else "")


# ---------------------------------------------------------------- the entry points
def find_svd(path=None, model: Optional[str] = None, variant: Optional[str] = "auto") -> SVDFiles:
    """Locate and check SVD weights without reading any tensor. Raises a weights.errors.WeightsError.

    path: None -> the shipped tiny model weights/tiny/sgi2v-tiny/ (never the Hugging Face cache);
          "hf" -> search the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub);
          a diffusers folder, a folder holding svd(_xt).safetensors, a single .safetensors file, or a
          repo-cache folder models--stabilityai--stable-video-diffusion-img2vid[-xt] (see locate.py).
          (A folder literally named "hf" is given as "./hf".)
    model: None, "svd" or "svd_xt" (which official model to look for); variant: "auto" | "fp16" | None.
    """
    if path is None:
        if not SHIPPED_TINY.is_dir():
            raise WeightsNotFound(f"the shipped tiny model {SHIPPED_TINY} does not exist (write it with "
                                  "`python -m weights.tiny.train --export`); or give a weights path, or 'hf' to "
                                  "search the Hugging Face cache")
        path = SHIPPED_TINY
    found = locate(None if str(path) == HF else path, model=model, variant=variant)
    cfg, config_source = config_for(found)
    views = open_state(found)                                          # headers: CorruptFile, WrongModel
    meta = build_on_meta(cfg)
    for part, module in zip(PARTS, meta):                              # names and shapes of all three parts
        check_keys_and_shapes({k: tuple(t.shape) for k, t in module.state_dict().items()}, views[part])
    return SVDFiles(found, cfg, config_source, views, meta)


def load_svd(path=None, device="cpu", dtype=torch.float32, model: Optional[str] = None,
             variant: Optional[str] = "auto") -> SVD:
    """`find_svd(path, model, variant).load(device, dtype)`: the three networks, ready for `generate`."""
    return find_svd(path, model, variant).load(device, dtype)
