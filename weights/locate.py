"""Find the official SVD weights on disk (no downloads).

Three layouts are recognised (docs/svd.md §3.1, §3.2):
  (a) a diffusers folder (stabilityai/stable-video-diffusion-img2vid[-xt]):
      unet/diffusion_pytorch_model{.fp16,}.safetensors, vae/diffusion_pytorch_model{.fp16,}.safetensors,
      image_encoder/model{.fp16,}.safetensors, each next to an optional config.json;
  (b) a single file svd.safetensors / svd_xt.safetensors, given as a path or found in a given folder;
  (c) a Hugging Face cache snapshot: <hub>/models--stabilityai--stable-video-diffusion-img2vid[-xt]/snapshots/<rev>/
      (refs/main first), where <hub> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub;
      searched when no path is given, or when the path is such a repo-cache folder or the hub folder.
If nothing is found, WeightsNotFound lists every place looked at and why it did not do.
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import CorruptFile, WeightsNotFound

PARTS = {"unet": ("unet", "diffusion_pytorch_model"), "vae": ("vae", "diffusion_pytorch_model"),
         "clip": ("image_encoder", "model")}  # part -> (sub-folder, file stem)
DENOISER_DIT = "transformer"   # the sub-folder of a video transformer's weights, in place of unet/
REPOS = {"svd": "stabilityai/stable-video-diffusion-img2vid", "svd_xt": "stabilityai/stable-video-diffusion-img2vid-xt"}
SINGLE_FILES = {"svd": "svd.safetensors", "svd_xt": "svd_xt.safetensors"}
FRAMES_BY_MODEL = {"svd": 14, "svd_xt": 25}  # docs/svd.md §1, used when no unet/config.json says otherwise


@dataclass
class Found:
    """What `locate` found.

    layout: "diffusers" or "single_file".  files: part ("unet" | "vae" | "clip") -> file; one path for all
    three in a single file.  variants: part -> "fp16" or None (diffusers layout only).  configs: part ->
    dict read from its config.json ({} where absent).  num_frames: from unet/config.json, else guessed from
    the single file's name (svd 14, svd_xt 25), else None.  looked_at: every place considered, in order.
    """
    layout: str
    files: dict
    root: Path
    variants: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)
    num_frames: Optional[int] = None
    looked_at: list = field(default_factory=list)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
    else ~/.cache/huggingface/hub (huggingface_hub's own order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def repo_cache_dir(hub: Path, repo: str) -> Path:
    """<hub>/models--stabilityai--stable-video-diffusion-img2vid for repo 'stabilityai/...img2vid'."""
    return hub / ("models--" + repo.replace("/", "--"))


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(f"{path}: cannot read this config.json ({e})") from e


def _model_from_name(name: str) -> Optional[str]:
    return "svd_xt" if "svd_xt" in name else "svd" if "svd" in name else None


def _try_diffusers(folder: Path, variant: str, looked: list) -> Optional[Found]:
    """unet/, vae/, image_encoder/ with one weight file each; variant 'auto' prefers .fp16 files.
    A video transformer (model/dit.py) sits in transformer/ instead of unet/ (diffusers' name for Wan's);
    it still fills the "unet" slot (the denoiser)."""
    names = {"auto": (".fp16", ""), "fp16": (".fp16",), None: ("",)}[variant]
    files, variants, missing = {}, {}, []
    parts = dict(PARTS)
    if not (folder / "unet").is_dir() and (folder / DENOISER_DIT).is_dir():
        parts["unet"] = (DENOISER_DIT, PARTS["unet"][1])
    for part, (sub, stem) in parts.items():
        hits = [folder / sub / f"{stem}{v}.safetensors" for v in names]
        hit = next((p for p in hits if p.is_file()), None)
        if hit is None:
            choices = "{" + ",".join(names) + "}" if len(names) > 1 else names[0]  # {.fp16,} as in the docs
            missing.append(f"{sub}/{stem}{choices}.safetensors")
        else:
            files[part], variants[part] = hit, ("fp16" if hit.name.endswith(".fp16.safetensors") else None)
    if missing:
        looked.append(f"{folder}: diffusers layout: missing {', '.join(missing)}")
        return None
    configs = {part: _read_config(folder / sub / "config.json") for part, (sub, _) in parts.items()}
    frames = configs["unet"].get("num_frames")
    looked.append(f"{folder}: diffusers layout: found")
    return Found("diffusers", files, folder, variants, configs, frames, looked)


def _single(path: Path, looked: list) -> Found:
    looked.append(f"{path}: single file: found")
    frames = FRAMES_BY_MODEL.get(_model_from_name(path.name))
    return Found("single_file", {part: path for part in PARTS}, path.parent, num_frames=frames, looked_at=looked)


def _try_folder(folder: Path, models: tuple, variant: str, looked: list) -> Optional[Found]:
    """A folder in the diffusers layout, else one holding svd.safetensors / svd_xt.safetensors."""
    found = _try_diffusers(folder, variant, looked)
    if found:
        return found
    for model in models:
        path = folder / SINGLE_FILES[model]
        if path.is_file():
            return _single(path, looked)
        looked.append(f"{path}: no such file")
    return None


def _snapshots(repo_dir: Path, looked: list) -> list:
    """Snapshot folders of one repo cache: the one refs/main names first, then the others, newest first."""
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        looked.append(f"{snaps}: no such folder")
        return []
    ordered = sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        main = snaps / ref.read_text().strip()
        ordered = [main] + [p for p in ordered if p != main]
    if not ordered:
        looked.append(f"{snaps}: no snapshots")
    return ordered


def _try_repo_cache(repo_dir: Path, model: str, variant: str, looked: list) -> Optional[Found]:
    """Each snapshot of one repo cache in turn; model ('svd' | 'svd_xt') names the repo's single file and
    its frame count when no unet/config.json gives one."""
    for snap in _snapshots(repo_dir, looked):
        if not snap.is_dir():
            looked.append(f"{snap}: named by refs/main but missing")
            continue
        found = _try_folder(snap, (model,), variant, looked)
        if found:
            found.num_frames = found.num_frames or FRAMES_BY_MODEL[model]
            return found
    return None


def locate(path=None, model: Optional[str] = None, variant: Optional[str] = "auto") -> Found:
    """Find SVD weights. path: None (search the HF cache), a single .safetensors file, a diffusers folder,
    a folder holding svd(_xt).safetensors, a repo-cache folder (models--stabilityai--...) or the hub folder.
    model: None (both, img2vid first), "svd" (img2vid, 14 frames) or "svd_xt" (img2vid-xt, 25 frames).
    variant: "auto" (fp16 files where present), "fp16" or None (full-precision files only).
    Raises WeightsNotFound listing every place looked at."""
    if model not in (None, "svd", "svd_xt"):
        raise ValueError(f"model must be None, 'svd' or 'svd_xt', not {model!r}")
    if variant not in ("auto", "fp16", None):
        raise ValueError(f"variant must be 'auto', 'fp16' or None, not {variant!r}")
    models = (model,) if model else ("svd", "svd_xt")
    looked, found = [], None
    path = None if path is None else Path(path).expanduser()
    if path is None or (path.is_dir() and not (path / "snapshots").is_dir()
                        and any(repo_cache_dir(path, REPOS[m]).is_dir() for m in models)):
        hub = path or hub_cache_dir()  # the hub folder: try each repo cache in it
        for m in models:
            found = found or _try_repo_cache(repo_cache_dir(hub, REPOS[m]), m, variant, looked)
    elif path.is_file() and path.suffix != ".safetensors":
        looked.append(f"{path}: not a .safetensors file (no other format is read)")
    elif path.is_file():
        found = _single(path, looked)
    elif not path.is_dir():
        looked.append(f"{path}: does not exist")
    elif (path / "snapshots").is_dir():  # one repo cache, models--stabilityai--stable-video-diffusion-img2vid[-xt]
        found = _try_repo_cache(path, model or ("svd_xt" if path.name.endswith("-xt") else "svd"), variant, looked)
    else:
        found = _try_folder(path, models, variant, looked)
    if found is None:
        raise WeightsNotFound("no SVD weights found. Looked at:\n  " + "\n  ".join(looked) +
                              "\nGive a diffusers folder, an svd(_xt).safetensors file, or download "
                              f"{' or '.join(REPOS[m] for m in models)} into the Hugging Face cache.")
    if found.num_frames is None and model:
        found.num_frames = FRAMES_BY_MODEL[model]
    return found
