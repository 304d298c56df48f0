"""Read SVD weights part by part and stream them into a torch module, checking names and shapes first.

A part view ("unet" | "vae" | "clip") maps every diffusers / transformers parameter name to an `Entry`:
its shape (from the file header, after the layout transform) and `get()`, which reads that one tensor.
Views exist for both layouts (a diffusers folder: one file per part; the single file: the mapping of
weights/original_layout.py applied lazily), so `load_state_dict_into` does not care which it reads:

    found = locate(path)                       # weights/locate.py
    views = open_state(found)                  # {"unet": PartView, "vae": ..., "clip": ...}
    load_state_dict_into(unet, views["unet"], device="cuda", dtype=torch.float16)   # unet built on meta

The header is parsed here with the standard library (8-byte little-endian length, JSON), so keys, shapes
and the file size are checked before any tensor data is read; tensors are read with safetensors.safe_open.
"""
import json
import math
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Callable, Mapping

import torch
from safetensors import SafetensorError, safe_open

from .errors import CorruptFile, MissingKeys, ShapeMismatch, UnexpectedKeys, WeightsError, WrongModel, name_some
from .locate import DENOISER_DIT, Found
from .original_layout import UNET, apply, original_to_diffusers, target_shape

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1,
               "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1}
IGNORED_KEYS = {"clip": {"vision_model.embeddings.position_ids"}}  # non-persistent buffer some files carry


@dataclass(frozen=True)
class TensorInfo:
    """One header entry: dtype ('F16', ...), shape, byte range [start, end) inside the data section."""
    dtype: str
    shape: tuple
    start: int
    end: int


def read_header(path: Path) -> dict:
    """name -> TensorInfo, from the header alone. Raises CorruptFile (naming the file) if the header is
    unreadable or the file is shorter than the data the header declares (a truncated download)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 0 or n > size - 8:
            raise CorruptFile(f"{path}: not a safetensors file or truncated (header length {n}, file size {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(f"{path}: corrupt safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise CorruptFile(f"{path}: corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    infos = {}
    for name, entry in header.items():
        try:
            start, end = (int(x) for x in entry["data_offsets"])
            info = TensorInfo(entry["dtype"], tuple(int(x) for x in entry["shape"]), start, end)
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptFile(f"{path}: corrupt safetensors header entry {name!r} ({e!r})") from e
        width = DTYPE_BYTES.get(info.dtype)
        if width is not None and end - start != width * math.prod(info.shape):
            raise CorruptFile(f"{path}: header entry {name!r} has {end - start} bytes "
                              f"for {info.dtype} {list(info.shape)}")
        infos[name] = info
    needed = 8 + n + max((i.end for i in infos.values()), default=0)
    if size < needed:
        raise CorruptFile(f"{path}: truncated: the header needs {needed} bytes, the file has {size}")
    return infos


class _File:
    """One safetensors file: header parsed now, safe_open handle opened at the first read."""

    def __init__(self, path):
        self.path = Path(path)
        self.header = read_header(self.path)
        self._handle = None

    def read(self, name: str) -> torch.Tensor:
        try:
            if self._handle is None:
                self._handle = safe_open(str(self.path), framework="pt")
            return self._handle.get_tensor(name)
        except SafetensorError as e:
            raise CorruptFile(f"{self.path}: cannot read {name!r} ({e})") from e

    def close(self) -> None:
        self._handle = None  # safe_open releases its memory map when dropped


@dataclass(frozen=True)
class Entry:
    """A tensor on disk: shape after the layout transform, and `get()` -> that tensor (cpu, file dtype)."""
    shape: tuple
    get: Callable[[], torch.Tensor]


@dataclass
class PartView:
    """One network's tensors as stored. entries: parameter name -> Entry. source: the file, for messages.
    skipped: file keys deliberately not used (docs/svd.md §3.2 unused rows, position_ids, unknown extra rows)."""
    part: str
    source: str
    entries: dict
    skipped: list = field(default_factory=list)
    file: object = None

    def shapes(self) -> dict:
        return {name: entry.shape for name, entry in self.entries.items()}

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# ------------------------------------------------------------- what a key set looks like --------------------
EXPECTED = {
    "unet": "a diffusers UNetSpatioTemporalConditionModel (keys with 'temporal_transformer_blocks')",
    "dit": "a diffusers WanTransformer3DModel (keys 'patch_embedding.weight', 'blocks.N.scale_shift_table')",
    "vae": "a diffusers AutoencoderKLTemporalDecoder (keys 'decoder.time_conv_out.*', 'temporal_res_block')",
    "clip": "a transformers CLIPVisionModelWithProjection (keys 'vision_model.*' and 'visual_projection.weight')",
    "single": "an SVD single file (sgm keys 'model.diffusion_model.*' with temporal 'time_stack' layers)",
}


def describe_keys(keys) -> str:
    """A guess at which model a key set belongs to, for WrongModel messages."""
    keys = list(keys)
    def has(text):
        return any(text in k for k in keys)
    if has("model.diffusion_model."):
        if has(".time_stack."):
            return "an SVD single file (sgm layout)"
        return "an image-only Stable Diffusion single file (model.diffusion_model.* without 'time_stack')"
    if "patch_embedding.weight" in keys and has(".scale_shift_table"):
        return "a diffusers WanTransformer3DModel (video transformer)"
    if has("temporal_transformer_blocks"):
        return "a diffusers SVD UNet (UNetSpatioTemporalConditionModel)"
    if any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in keys):
        return "an image-only diffusers UNet2DConditionModel (no 'temporal_transformer_blocks')"
    if has("temporal_res_block") or has("time_conv_out"):
        return "a diffusers SVD VAE (AutoencoderKLTemporalDecoder)"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        return "an image-only diffusers VAE (AutoencoderKL, no temporal decoder)"
    if any(k.startswith("vision_model.") for k in keys):
        return "a transformers CLIP vision model" + ("" if "visual_projection.weight" in keys else
                                                     " without 'visual_projection' (CLIPVisionModel)")
    if any(k.startswith("text_model.") for k in keys):
        return "a transformers CLIP text model"
    return f"an unknown model (keys such as {name_some(keys, 3)})" if keys else "an empty file"


def _looks_right(kind: str, keys) -> bool:
    if kind == "unet":
        return any("temporal_transformer_blocks" in k for k in keys)
    if kind == "dit":
        return "patch_embedding.weight" in keys and any(k.startswith("blocks.") for k in keys)
    if kind == "vae":
        return any(k.startswith("decoder.") and "temporal_res_block" in k for k in keys)
    if kind == "clip":
        return "visual_projection.weight" in keys and any(k.startswith("vision_model.") for k in keys)
    return any(k.startswith(UNET) and ".time_stack." in k for k in keys)


def _check_model(kind: str, keys, path) -> None:
    if not _looks_right(kind, keys):
        raise WrongModel(f"{path}: expected {EXPECTED[kind]}, but this looks like {describe_keys(keys)}")


# ------------------------------------------------------------- views ----------------------------------------
def open_diffusers_part(path, part: str) -> PartView:
    """View of one diffusers-layout file (unet/diffusion_pytorch_model*.safetensors etc.): names as stored."""
    f = _File(path)
    _check_model(part, f.header, f.path)
    skipped = sorted(k for k in f.header if k in IGNORED_KEYS.get(part, ()))
    entries = {k: Entry(info.shape, partial(f.read, k)) for k, info in f.header.items() if k not in skipped}
    return PartView(part, str(f.path), entries, skipped, f)


def _read_piece(f: _File, piece) -> torch.Tensor:
    return apply(piece, f.read(piece.source))


def open_single_file(path) -> dict:
    """Views {"unet", "vae", "clip"} of one svd(_xt).safetensors, with names and shapes already mapped to the
    diffusers / transformers layout; each get() reads its source tensor and applies squeeze/transpose/rows."""
    f = _File(path)
    _check_model("single", f.header, f.path)
    try:
        pieces, unused, unknown = original_to_diffusers(f.header)
        views = {}
        for part, items in pieces.items():
            entries = {name: Entry(target_shape(p, f.header[p.source].shape), partial(_read_piece, f, p))
                       for name, p in items.items()}
            views[part] = PartView(part, str(f.path), entries, sorted(unused + unknown), f)
    except WeightsError as e:
        raise type(e)(f"{f.path}: {e}") from e
    return views


def open_state(found: Found) -> dict:
    """{"unet", "vae", "clip"} -> PartView for what `locate` found, in either layout. A denoiser in a
    transformer/ folder is checked as a video transformer ("dit") but keeps the "unet" slot."""
    if found.layout == "single_file":
        return open_single_file(found.files["unet"])
    return {part: open_diffusers_part(path, "dit" if part == "unet" and path.parent.name == DENOISER_DIT else part)
            for part, path in found.files.items()}


# ------------------------------------------------------------- checking and copying -------------------------
def check_keys_and_shapes(expected: Mapping[str, tuple], view: PartView) -> None:
    """Compare the module's names/shapes with the view's (header only, no tensor data). Reports every problem
    in one message; the class is MissingKeys, else UnexpectedKeys, else ShapeMismatch."""
    found = view.shapes()
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [(k, tuple(expected[k]), tuple(found[k])) for k in sorted(expected)
             if k in found and tuple(expected[k]) != tuple(found[k])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {name_some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {name_some(unexpected)}")
    if wrong:
        listed = "; ".join(f"{k}: expected {list(e)}, got {list(g)}" for k, e, g in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        problems.append(f"{len(wrong)} shape mismatches: {listed}{more}")
    if problems:
        cls = MissingKeys if missing else UnexpectedKeys if unexpected else ShapeMismatch
        raise cls(f"{view.source} ({view.part}): " + "; ".join(problems))


def load_state_dict_into(module: torch.nn.Module, view: PartView, device=None, dtype=None) -> torch.nn.Module:
    """Fill every entry of module.state_dict() from `view`, one tensor at a time; returns the module.

    Names and shapes are checked first (`check_keys_and_shapes`): on any mismatch nothing is read or changed.
    Tensors on the meta device are replaced (assign): the file tensor is converted to `device` (default cpu)
    and, for floating tensors, `dtype` (default: the meta tensor's dtype), and becomes the parameter or
    buffer (requires_grad kept). This allocates each tensor once and initialises nothing in vain. We do not
    use `module.to_empty()`: it would leave non-persistent buffers as uninitialised memory without a word;
    here a tensor still on meta afterwards raises WeightsError. Tensors already on a real device are copied
    in place (`copy_`), keeping their device and dtype. At most one tensor is in flight at a time.
    """
    targets = module.state_dict(keep_vars=True)
    check_keys_and_shapes({name: tuple(t.shape) for name, t in targets.items()}, view)
    for name, current in targets.items():
        tensor = view.entries[name].get()  # cpu, file dtype
        if current.is_meta:
            to_dtype = dtype if dtype is not None and current.is_floating_point() else current.dtype
            # copy=True: on the CPU in the file's dtype, .to() would return the memory-mapped tensor itself,
            # leaving the parameter inside the file mapping at unaligned offsets (other kernel paths, a
            # model that breaks if the file changes). One tensor at a time, so still one copy in memory.
            tensor = tensor.to(device=device or "cpu", dtype=to_dtype, copy=True)
            owner_name, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_name)
            if isinstance(current, torch.nn.Parameter):
                tensor = torch.nn.Parameter(tensor, requires_grad=current.requires_grad)
            setattr(owner, attr, tensor)
        else:
            with torch.no_grad():
                current.copy_(tensor)
        del tensor
    left = [n for n, t in chain(module.named_parameters(), module.named_buffers()) if t.is_meta]
    if left:
        raise WeightsError(f"still on the meta device after loading {view.source} ({view.part}): {name_some(left)}. "
                           "Non-persistent buffers are not in weight files: create them on the target device.")
    return module
