"""The original single-file layout (svd.safetensors / svd_xt.safetensors) <-> diffusers / transformers names.

The single file is sgm's `DiffusionEngine.state_dict()` (docs/svd.md §3.2). It holds all three networks:

    model.diffusion_model.*                                 -> "unet" (UNetSpatioTemporalConditionModel names)
    conditioner.embedders.3.encoder.{encoder,quant_conv}.*  -> "vae"  encoder + quant_conv (docs/svd.md §3.2)
    first_stage_model.decoder.*                             -> "vae"  decoder (AutoencoderKLTemporalDecoder names)
    conditioner.embedders.0.open_clip.model.visual.*        -> "clip" (CLIPVisionModelWithProjection names)

The other rows (text-tower leftovers, the conditioner's 2-D decoder, first_stage_model.encoder) are unused:
tolerated, never required. Every target tensor comes from one source tensor through one `Piece`:

    COPY       the same tensor
    SQUEEZE    VAE mid-block attention 1x1 conv [C, C, 1, 1] -> Linear weight [C, C]
    TRANSPOSE  CLIP proj [width, embed] -> visual_projection.weight [embed, width]
    ROWS       CLIP in_proj_{weight,bias} [3*width, ...] -> rows of q (chunk 0), k (1), v (2)

The rules are small tables plus index arithmetic (docs/svd.md §3.3-§3.5); each has its inverse next to it, so tests
can write a single file from diffusers-layout tensors. Counts (layers per block, VAE levels, CLIP layers)
come from the keys present, so tiny configs map too.
"""
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from .errors import ShapeMismatch, UnexpectedKeys, WrongModel, name_some

COPY, SQUEEZE, TRANSPOSE, ROWS = "copy", "squeeze", "transpose", "rows"

UNET = "model.diffusion_model."
VAE_ENCODER = "conditioner.embedders.3.encoder."  # only its encoder.* and quant_conv.* are used
VAE_DECODER = "first_stage_model.decoder."
CLIP = "conditioner.embedders.0.open_clip.model.visual."
UNUSED = (  # docs/svd.md §3.2's unused rows (checked after the used prefixes: CLIP lies inside the last one)
    "first_stage_model.encoder.",
    "conditioner.embedders.3.encoder.decoder.",
    "conditioner.embedders.3.encoder.post_quant_conv.",
    "conditioner.embedders.0.open_clip.model.",
)


@dataclass(frozen=True)
class Piece:
    """Where one target tensor comes from: `source` key of the single file and the transform `op`."""
    source: str
    op: str = COPY
    chunk: int = 0  # ROWS only: 0 = q, 1 = k, 2 = v


class _NoRule(Exception):
    """No rule maps this key (reported to the user as an unexpected key)."""


def _rename_head(key: str, table: Mapping[str, str], keep_unknown: bool = False) -> str:
    """Replace the leading dotted path of `key` that `table` lists: ('norm_out.weight', {'norm_out':
    'conv_norm_out'}) -> 'conv_norm_out.weight'. First match in table order wins."""
    for old, new in table.items():
        if key == old or key.startswith(old + "."):
            return new + key[len(old):]
    if keep_unknown:
        return key
    raise _NoRule(key)


def _inverse(table: Mapping[str, str]) -> dict:
    return {new: old for old, new in table.items()}


def _int(text: str) -> int:
    if not text.isdigit():
        raise _NoRule(text)
    return int(text)


# ---------------------------------------------------------------- UNet (docs/svd.md §3.3) ----------------------
UNET_TOP = {
    "time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
    "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
}
RESNET_LEAVES = {  # sgm ResBlock -> diffusers ResnetBlock; also under time_stack -> temporal_res_block
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}
TRANSFORMER_RENAMES = {  # sgm SpatialVideoTransformer -> TransformerSpatioTemporalModel; all else unchanged
    "time_stack": "temporal_transformer_blocks",
    "time_pos_embed.0": "time_pos_embed.linear_1", "time_pos_embed.2": "time_pos_embed.linear_2",
}


def _unet_resnet(rest: str) -> str:
    """'in_layers.0.weight' -> 'spatial_res_block.norm1.weight'; 'time_stack.in_layers.0.weight' ->
    'temporal_res_block.norm1.weight'; 'time_mixer.mix_factor' unchanged."""
    if rest == "time_mixer.mix_factor":
        return rest
    if rest.startswith("time_stack."):
        return "temporal_res_block." + _rename_head(rest[len("time_stack."):], RESNET_LEAVES)
    return "spatial_res_block." + _rename_head(rest, RESNET_LEAVES)


def _unet_resnet_inv(rest: str) -> str:
    if rest == "time_mixer.mix_factor":
        return rest
    branch, rest = rest.split(".", 1)
    head = {"spatial_res_block": "", "temporal_res_block": "time_stack."}[branch]
    return head + _rename_head(rest, _inverse(RESNET_LEAVES))


def _unet_transformer(rest: str) -> str:
    return _rename_head(rest, TRANSFORMER_RENAMES, keep_unknown=True)


def _unet_transformer_inv(rest: str) -> str:
    return _rename_head(rest, _inverse(TRANSFORMER_RENAMES), keep_unknown=True)


def unet_key(key: str, layers: int) -> str:
    """VideoUNet key (prefix removed) -> diffusers key. `layers` = layers_per_block (2 for SVD).

    input_blocks.i.s (i >= 1): level, l = divmod(i - 1, layers + 1); l == layers is the level's downsampler
    ('input_blocks.3.0.op' -> 'down_blocks.0.downsamplers.0.conv'); else s 0 = resnet l, s 1 = attention l.
    middle_block.0 / .1 / .2 -> mid_block.resnets.0 / attentions.0 / resnets.1.
    output_blocks.j.s: level, l = divmod(j, layers + 1); a child 'conv' is the level's upsampler
    ('output_blocks.2.1.conv' -> 'up_blocks.0.upsamplers.0.conv'); else s 0 = resnet l, s 1 = attention l.
    """
    if key.split(".")[0] in ("time_embed", "label_emb", "out") or key.startswith("input_blocks.0.0."):
        return _rename_head(key, UNET_TOP)
    parts = key.split(".")
    if parts[0] == "middle_block" and len(parts) > 2:
        index, rest = _int(parts[1]), ".".join(parts[2:])
        if index == 1:
            return "mid_block.attentions.0." + _unet_transformer(rest)
        if index in (0, 2):
            return f"mid_block.resnets.{index // 2}." + _unet_resnet(rest)
        raise _NoRule(key)
    if parts[0] not in ("input_blocks", "output_blocks") or len(parts) < 4:
        raise _NoRule(key)
    index, sub, rest = _int(parts[1]), _int(parts[2]), ".".join(parts[3:])
    if parts[0] == "input_blocks":
        level, l = divmod(index - 1, layers + 1)
        if l == layers and sub == 0 and rest.startswith("op."):
            return f"down_blocks.{level}.downsamplers.0.conv." + rest[len("op."):]
        block = f"down_blocks.{level}"
    else:
        level, l = divmod(index, layers + 1)
        if rest.startswith("conv."):
            return f"up_blocks.{level}.upsamplers.0.conv." + rest[len("conv."):]
        block = f"up_blocks.{level}"
    if sub == 0:
        return f"{block}.resnets.{l}." + _unet_resnet(rest)
    if sub == 1:
        return f"{block}.attentions.{l}." + _unet_transformer(rest)
    raise _NoRule(key)


def unet_key_to_original(key: str, layers: int, up_levels_with_attention: set) -> str:
    """Inverse of `unet_key`. The upsampler of up level b is output_blocks.j.2.conv when that level has
    attentions (after resnet and attention), else output_blocks.j.1.conv."""
    if key.split(".")[0] in ("time_embedding", "add_embedding", "conv_in", "conv_norm_out", "conv_out"):
        return _rename_head(key, _inverse(UNET_TOP))
    parts = key.split(".")
    if parts[0] == "mid_block":
        kind, n, rest = parts[1], _int(parts[2]), ".".join(parts[3:])
        if kind == "attentions":
            return "middle_block.1." + _unet_transformer_inv(rest)
        return f"middle_block.{2 * n}." + _unet_resnet_inv(rest)
    level, kind, l, rest = _int(parts[1]), parts[2], _int(parts[3]), ".".join(parts[4:])
    if parts[0] == "down_blocks":
        if kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.* -> input_blocks.i.0.op.*
            return f"input_blocks.{1 + level * (layers + 1) + layers}.0.op." + rest[len("conv."):]
        head = f"input_blocks.{1 + level * (layers + 1) + l}"
    else:
        if kind == "upsamplers":
            sub = 2 if level in up_levels_with_attention else 1
            return f"output_blocks.{level * (layers + 1) + layers}.{sub}.{rest}"
        head = f"output_blocks.{level * (layers + 1) + l}"
    if kind == "resnets":
        return f"{head}.0." + _unet_resnet_inv(rest)
    return f"{head}.1." + _unet_transformer_inv(rest)


# ---------------------------------------------------------------- VAE (docs/svd.md §3.4) ------------------------
VAE_TOP = {  # time_mix_conv before conv_out: first match wins
    "conv_in": "conv_in", "norm_out": "conv_norm_out",
    "conv_out.time_mix_conv": "time_conv_out", "conv_out": "conv_out",
}
VAE_RESNET_LEAVES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
                     "nin_shortcut": "conv_shortcut"}
VAE_TEMPORAL_LEAVES = {  # decoder VideoResBlock extras
    "time_stack.in_layers.0": "temporal_res_block.norm1", "time_stack.in_layers.2": "temporal_res_block.conv1",
    "time_stack.out_layers.0": "temporal_res_block.norm2", "time_stack.out_layers.3": "temporal_res_block.conv2",
    "mix_factor": "time_mixer.mix_factor",
}
VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
VAE_SAMPLERS = {"down": ("down_blocks", "downsample", "downsamplers"), "up": ("up_blocks", "upsample", "upsamplers")}


def _vae_resnet(rest: str, video: bool) -> str:
    """Encoder: 'nin_shortcut.weight' -> 'conv_shortcut.weight'. Decoder (video): spatial leaves gain
    'spatial_res_block.', time_stack leaves become 'temporal_res_block.*', 'mix_factor' 'time_mixer.mix_factor'."""
    if video:
        if rest.startswith("time_stack.") or rest == "mix_factor":
            return _rename_head(rest, VAE_TEMPORAL_LEAVES)
        return "spatial_res_block." + _rename_head(rest, VAE_RESNET_LEAVES)
    return _rename_head(rest, VAE_RESNET_LEAVES)


def _vae_resnet_inv(rest: str, video: bool) -> str:
    if video and rest.startswith(("temporal_res_block.", "time_mixer.")):
        return _rename_head(rest, _inverse(VAE_TEMPORAL_LEAVES))
    if video:
        rest = rest[len("spatial_res_block."):]
    return _rename_head(rest, _inverse(VAE_RESNET_LEAVES))


def vae_key(key: str, levels: int) -> str:
    """'encoder.X' / 'decoder.X' / 'quant_conv.X' (source prefix removed) -> AutoencoderKLTemporalDecoder key.

    down.i.block.j -> encoder.down_blocks.i.resnets.j;  up.i.block.j -> decoder.up_blocks.(levels-1-i).resnets.j
    (sgm numbers up levels from the bottom, diffusers from the top); mid.block_k -> mid_block.resnets.(k-1);
    mid.attn_1 -> mid_block.attentions.0 (its q/k/v/proj_out weights are squeezed: see `vae_op`).
    """
    if key.startswith("quant_conv."):
        return key
    coder, rest = key.split(".", 1)
    video = coder == "decoder"
    parts = rest.split(".")
    if parts[0] in VAE_SAMPLERS and len(parts) > 3:
        blocks, sampler, samplers = VAE_SAMPLERS[parts[0]]
        level = _int(parts[1]) if parts[0] == "down" else levels - 1 - _int(parts[1])
        if parts[2] == sampler:  # 'down.1.downsample.conv.weight'
            return f"{coder}.{blocks}.{level}.{samplers}.0." + ".".join(parts[3:])
        if parts[2] == "block":
            return f"{coder}.{blocks}.{level}.resnets.{_int(parts[3])}." + _vae_resnet(".".join(parts[4:]), video)
        raise _NoRule(key)
    if parts[0] == "mid" and len(parts) > 2:
        if parts[1] == "attn_1":
            return f"{coder}.mid_block.attentions.0." + _rename_head(".".join(parts[2:]), VAE_ATTENTION)
        if parts[1] in ("block_1", "block_2"):
            k = int(parts[1][-1]) - 1
            return f"{coder}.mid_block.resnets.{k}." + _vae_resnet(".".join(parts[2:]), video)
        raise _NoRule(key)
    return f"{coder}." + _rename_head(rest, VAE_TOP)


def vae_op(target: str) -> str:
    """SQUEEZE for the mid-block attention weights (1x1 convs in sgm, Linear in diffusers), else COPY."""
    squeezed = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")
    return SQUEEZE if ".mid_block.attentions." in target and target.endswith(squeezed) else COPY


def vae_key_to_original(key: str, levels: int) -> str:
    """Inverse of `vae_key`."""
    if key.startswith("quant_conv."):
        return key
    coder, rest = key.split(".", 1)
    video = coder == "decoder"
    parts = rest.split(".")
    if parts[0] in ("down_blocks", "up_blocks"):
        short = "down" if parts[0] == "down_blocks" else "up"
        _, sampler, samplers = VAE_SAMPLERS[short]
        level = _int(parts[1]) if short == "down" else levels - 1 - _int(parts[1])
        if parts[2] == samplers:  # '...downsamplers.0.conv.weight'
            return f"{coder}.{short}.{level}.{sampler}." + ".".join(parts[4:])
        return f"{coder}.{short}.{level}.block.{parts[3]}." + _vae_resnet_inv(".".join(parts[4:]), video)
    if parts[0] == "mid_block":
        if parts[1] == "attentions":
            return f"{coder}.mid.attn_1." + _rename_head(".".join(parts[3:]), _inverse(VAE_ATTENTION))
        return f"{coder}.mid.block_{_int(parts[2]) + 1}." + _vae_resnet_inv(".".join(parts[3:]), video)
    return f"{coder}." + _rename_head(rest, _inverse(VAE_TOP))


# ---------------------------------------------------------------- CLIP (docs/svd.md §3.5) ----------------------
CLIP_TOP = {
    "class_embedding": "vision_model.embeddings.class_embedding",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "conv1": "vision_model.embeddings.patch_embedding",
    "ln_pre": "vision_model.pre_layrnorm",  # sic: transformers' spelling
    "ln_post": "vision_model.post_layernorm",
}
CLIP_LAYER = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
              "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
CLIP_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")  # in_proj row thirds, in this order
CLIP_LAYERS_SRC, CLIP_LAYERS_DST = "transformer.resblocks.", "vision_model.encoder.layers."


def clip_pieces(key: str) -> list:
    """open_clip visual key (prefix removed) -> [(transformers key, op, chunk)]: three for in_proj, else one."""
    if key == "proj":
        return [("visual_projection.weight", TRANSPOSE, 0)]
    if not key.startswith(CLIP_LAYERS_SRC):
        return [(_rename_head(key, CLIP_TOP), COPY, 0)]
    index, rest = key[len(CLIP_LAYERS_SRC):].split(".", 1)
    head = f"{CLIP_LAYERS_DST}{_int(index)}."
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        leaf = rest[len("attn.in_proj_"):]  # weight | bias
        return [(f"{head}{name}.{leaf}", ROWS, chunk) for chunk, name in enumerate(CLIP_QKV)]
    return [(head + _rename_head(rest, CLIP_LAYER), COPY, 0)]


def clip_key_to_original(key: str) -> tuple:
    """Inverse of `clip_pieces` for one target: -> (open_clip key, op, chunk)."""
    if key == "visual_projection.weight":
        return "proj", TRANSPOSE, 0
    if not key.startswith(CLIP_LAYERS_DST):
        return _rename_head(key, _inverse(CLIP_TOP)), COPY, 0
    index, rest = key[len(CLIP_LAYERS_DST):].split(".", 1)
    head = f"{CLIP_LAYERS_SRC}{_int(index)}."
    for chunk, name in enumerate(CLIP_QKV):
        if rest.startswith(name + "."):
            return f"{head}attn.in_proj_{rest[len(name) + 1:]}", ROWS, chunk
    return head + _rename_head(rest, _inverse(CLIP_LAYER)), COPY, 0


# ---------------------------------------------------------------- whole file --------------------------------
def split_source_key(key: str) -> tuple:
    """Single-file key -> (part, key inside the part) with part 'unet' | 'vae' | 'clip' | 'unused' | None
    (None: a key this layout does not know at all)."""
    if key.startswith(UNET):
        return "unet", key[len(UNET):]
    if key.startswith(VAE_DECODER):
        return "vae", "decoder." + key[len(VAE_DECODER):]
    if key.startswith((VAE_ENCODER + "encoder.", VAE_ENCODER + "quant_conv.")):
        return "vae", key[len(VAE_ENCODER):]
    if key.startswith(CLIP):
        return "clip", key[len(CLIP):]
    if key.startswith(UNUSED):
        return "unused", key
    return None, key


def _unet_layers(unet_keys: list) -> int:
    """layers_per_block = (index of the first downsampler 'input_blocks.i.0.op') - 1."""
    ops = [int(k.split(".")[1]) for k in unet_keys if k.startswith("input_blocks.") and ".0.op." in k]
    if not ops:
        raise WrongModel("the single file's model.diffusion_model.* has no downsampler "
                         "(input_blocks.i.0.op.*): not an SVD VideoUNet")
    return min(ops) - 1


def _decoder_levels(vae_keys: list) -> int:
    """Number of decoder levels = 1 + largest i in 'decoder.up.i.*'."""
    ups = [int(k.split(".")[2]) for k in vae_keys if k.startswith("decoder.up.")]
    return 1 + max(ups) if ups else 0


def original_to_diffusers(source_keys: Iterable[str]) -> tuple:
    """Route every key of a single file. Returns ({part: {target key: Piece}}, [unused keys], [unknown keys]).

    Raises UnexpectedKeys for keys under a used prefix that no rule maps. Guards that every target is
    produced once and every (source, chunk) is used once. Completeness against a module is checked by
    the loader (weights/load.py) or the tests (reference key listings)."""
    routed = {"unet": [], "vae": [], "clip": []}
    unused, unknown = [], []
    for key in source_keys:
        part, rest = split_source_key(key)
        if part in routed:
            routed[part].append((key, rest))
        else:
            (unused if part == "unused" else unknown).append(key)
    layers = _unet_layers([r for _, r in routed["unet"]]) if routed["unet"] else 0
    levels = _decoder_levels([r for _, r in routed["vae"]])
    result, unmapped = {"unet": {}, "vae": {}, "clip": {}}, []
    for part, items in routed.items():
        for key, rest in items:
            try:
                if part == "unet":
                    targets = [(unet_key(rest, layers), COPY, 0)]
                elif part == "vae":
                    target = vae_key(rest, levels)
                    targets = [(target, vae_op(target), 0)]
                else:
                    targets = clip_pieces(rest)
            except _NoRule:
                unmapped.append(key)
                continue
            for target, op, chunk in targets:
                if target in result[part]:
                    raise UnexpectedKeys(f"{key} and {result[part][target].source} both map to {part} {target}")
                result[part][target] = Piece(key, op, chunk)
    if unmapped:
        raise UnexpectedKeys(f"{len(unmapped)} single-file keys match no mapping rule: {name_some(unmapped)}")
    used = {p.source for pieces in result.values() for p in pieces.values()}
    if len(used) != sum(len(items) for items in routed.values()):  # each routed key visited once, mapped once
        raise UnexpectedKeys("internal: a routed single-file key was not used exactly once")
    return result, unused, unknown


def target_shape(piece: Piece, shape: tuple) -> tuple:
    """Shape after the transform: SQUEEZE [C,C,1,1]->[C,C], TRANSPOSE [a,b]->[b,a], ROWS [3n,...]->[n,...]."""
    shape = tuple(shape)
    if piece.op == SQUEEZE:
        if len(shape) != 4 or shape[2:] != (1, 1):
            raise ShapeMismatch(f"{piece.source}: expected a 1x1 conv weight [C, C, 1, 1], got {list(shape)}")
        return shape[:2]
    if piece.op == TRANSPOSE:
        if len(shape) != 2:
            raise ShapeMismatch(f"{piece.source}: expected a matrix, got {list(shape)}")
        return shape[::-1]
    if piece.op == ROWS:
        if not shape or shape[0] % 3:
            raise ShapeMismatch(f"{piece.source}: expected 3*width rows (q, k, v), got {list(shape)}")
        return (shape[0] // 3,) + shape[1:]
    return shape


def apply(piece: Piece, tensor: torch.Tensor) -> torch.Tensor:
    """The transform on the whole source tensor; the result owns its memory (no view of a larger tensor)."""
    if piece.op == SQUEEZE:
        return tensor.reshape(tensor.shape[:2])
    if piece.op == TRANSPOSE:
        return tensor.t().contiguous()
    if piece.op == ROWS:
        n = tensor.shape[0] // 3
        return tensor[piece.chunk * n:(piece.chunk + 1) * n].clone()
    return tensor


def map_shapes(source_shapes: Mapping[str, tuple]) -> dict:
    """{single-file key: shape} -> {part: {diffusers/transformers key: shape}} (names and shapes only)."""
    pieces, _, _ = original_to_diffusers(source_shapes)
    return {part: {t: target_shape(p, source_shapes[p.source]) for t, p in items.items()}
            for part, items in pieces.items()}


def diffusers_to_original(parts: Mapping[str, Mapping[str, torch.Tensor]]) -> dict:
    """Inverse mapping, for tests and tools: {'unet'|'vae'|'clip': diffusers-layout state dict} ->
    single-file state dict (used rows only). Raises UnexpectedKeys for keys no rule maps."""
    out, rows, bad = {}, {}, []
    unet = parts.get("unet", {})
    layers = len({k.split(".")[3] for k in unet if k.startswith("down_blocks.0.resnets.")})
    up_attn = {int(k.split(".")[1]) for k in unet if k.startswith("up_blocks.") and ".attentions." in k}
    levels = len({k.split(".")[2] for k in parts.get("vae", {}) if k.startswith("decoder.up_blocks.")})
    for part, tensors in parts.items():
        for key, tensor in tensors.items():
            try:
                if part == "unet":
                    src, op, chunk = UNET + unet_key_to_original(key, layers, up_attn), COPY, 0
                elif part == "vae":
                    src, op, chunk = vae_key_to_original(key, levels), vae_op(key), 0
                    src = (VAE_DECODER + src[len("decoder."):]) if src.startswith("decoder.") else VAE_ENCODER + src
                else:
                    src, op, chunk = clip_key_to_original(key)
                    src = CLIP + src
            except (_NoRule, KeyError, IndexError, ValueError):
                bad.append(f"{part}:{key}")
                continue
            if op == ROWS:
                rows.setdefault(src, {})[chunk] = tensor
            elif op == SQUEEZE:
                out[src] = tensor.reshape(tuple(tensor.shape) + (1, 1))
            elif op == TRANSPOSE:
                out[src] = tensor.t().contiguous()
            else:
                out[src] = tensor
    if bad:
        raise UnexpectedKeys(f"{len(bad)} diffusers keys match no mapping rule: {name_some(bad)}")
    for src, chunks in rows.items():
        if sorted(chunks) != [0, 1, 2]:
            raise UnexpectedKeys(f"{src}: needs q, k and v, got chunks {sorted(chunks)}")
        out[src] = torch.cat([chunks[0], chunks[1], chunks[2]], dim=0)
    return out
