"""The single-file (sgm) <-> diffusers/transformers mapping of weights/original_layout.py.

Oracles (tests/official_keys.py): the diffusers-layout names and shapes come from diffusers' and
transformers' own classes built with the official configs on the meta device; the single file's from
the committed listing tests/data/sgm_svd_keys.json.gz."""
import pytest
import torch

from tests.official_keys import diffusers_listings, sgm_listing
from weights.errors import UnexpectedKeys, WrongModel
from weights.original_layout import (CLIP, UNET, UNUSED, VAE_DECODER, VAE_ENCODER, diffusers_to_original,
                                     map_shapes, original_to_diffusers)


def tiny_shape(shape) -> tuple:
    """Same rank, tiny sizes; equal real sizes stay equal, so q/k/v and transposes stay consistent."""
    return tuple(d if d <= 3 else 4 + d % 3 for d in shape)


def tiny_parts(seed: int = 0) -> dict:
    """{part: diffusers-layout state dict} with the real key structure and tiny random tensors."""
    g = torch.Generator().manual_seed(seed)
    return {part: {k: torch.randn(tiny_shape(s), generator=g) for k, s in listing.items()}
            for part, listing in diffusers_listings().items()}


@pytest.fixture(scope="module")
def sgm():
    return sgm_listing()


def test_full_listing_maps_to_exact_diffusers_keys_and_shapes(sgm):
    mapped = map_shapes(sgm)
    for part, expected in diffusers_listings().items():
        assert len(expected) == {"unet": 1428, "vae": 374, "clip": 520}[part]   # the official counts
        assert set(mapped[part]) == set(expected), part
        assert mapped[part] == expected, part


def test_unused_rows_are_reported_and_not_required(sgm):
    _, unused, unknown = original_to_diffusers(sgm)
    assert unknown == []
    assert sorted(unused) == sorted(k for k in sgm if k.startswith(UNUSED) and not k.startswith(CLIP))
    assert len(unused) == 106 + 6 + 138 + 2 + 0  # first-stage encoder, text leftovers, conditioner decoder
    without = {k: s for k, s in sgm.items() if k not in set(unused)}
    assert map_shapes(without) == map_shapes(sgm)


@pytest.mark.parametrize("source, part, target, op", [  # op "rows" is followed by its chunk (0 q, 1 k, 2 v)
    (UNET + "input_blocks.0.0.weight", "unet", "conv_in.weight", "copy"),
    (UNET + "input_blocks.3.0.op.weight", "unet", "down_blocks.0.downsamplers.0.conv.weight", "copy"),
    (UNET + "input_blocks.5.1.time_stack.0.attn1.to_q.weight", "unet",
     "down_blocks.1.attentions.1.temporal_transformer_blocks.0.attn1.to_q.weight", "copy"),
    (UNET + "input_blocks.4.0.time_stack.in_layers.2.weight", "unet",
     "down_blocks.1.resnets.0.temporal_res_block.conv1.weight", "copy"),
    (UNET + "middle_block.2.out_layers.3.bias", "unet", "mid_block.resnets.1.spatial_res_block.conv2.bias", "copy"),
    (UNET + "middle_block.1.time_pos_embed.2.weight", "unet", "mid_block.attentions.0.time_pos_embed.linear_2.weight", "copy"),
    (UNET + "output_blocks.2.1.conv.weight", "unet", "up_blocks.0.upsamplers.0.conv.weight", "copy"),
    (UNET + "output_blocks.8.2.conv.bias", "unet", "up_blocks.2.upsamplers.0.conv.bias", "copy"),
    (UNET + "output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight", "unet",
     "up_blocks.2.attentions.1.transformer_blocks.0.attn1.to_k.weight", "copy"),
    (UNET + "output_blocks.11.0.skip_connection.weight", "unet", "up_blocks.3.resnets.2.spatial_res_block.conv_shortcut.weight", "copy"),
    (VAE_DECODER + "up.0.block.1.conv1.weight", "vae", "decoder.up_blocks.3.resnets.1.spatial_res_block.conv1.weight", "copy"),
    (VAE_DECODER + "up.3.upsample.conv.weight", "vae", "decoder.up_blocks.0.upsamplers.0.conv.weight", "copy"),
    (VAE_DECODER + "up.2.block.0.mix_factor", "vae", "decoder.up_blocks.1.resnets.0.time_mixer.mix_factor", "copy"),
    (VAE_DECODER + "conv_out.time_mix_conv.weight", "vae", "decoder.time_conv_out.weight", "copy"),
    (VAE_DECODER + "mid.attn_1.proj_out.weight", "vae", "decoder.mid_block.attentions.0.to_out.0.weight", "squeeze"),
    (VAE_ENCODER + "encoder.down.1.block.0.nin_shortcut.weight", "vae", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "copy"),
    (VAE_ENCODER + "encoder.mid.attn_1.q.weight", "vae", "encoder.mid_block.attentions.0.to_q.weight", "squeeze"),
    (VAE_ENCODER + "quant_conv.weight", "vae", "quant_conv.weight", "copy"),
    (CLIP + "proj", "clip", "visual_projection.weight", "transpose"),
    (CLIP + "ln_pre.weight", "clip", "vision_model.pre_layrnorm.weight", "copy"),
    (CLIP + "transformer.resblocks.31.attn.in_proj_bias", "clip", "vision_model.encoder.layers.31.self_attn.v_proj.bias", "rows2"),
])
def test_spec_examples(sgm, source, part, target, op):
    pieces, _, _ = original_to_diffusers(sgm)
    piece = pieces[part][target]
    assert piece.source == source
    assert piece.op + (str(piece.chunk) if piece.op == "rows" else "") == op


def test_first_stage_encoder_is_not_used(sgm):
    pieces, _, _ = original_to_diffusers(sgm)
    sources = {p.source for p in pieces["vae"].values()}
    assert not any(s.startswith("first_stage_model.encoder.") for s in sources)
    assert pieces["vae"]["encoder.conv_in.weight"].source == VAE_ENCODER + "encoder.conv_in.weight"


def test_inverse_names_the_used_original_keys_with_right_shapes(sgm):
    parts = tiny_parts()
    original = diffusers_to_original(parts)
    _, unused, _ = original_to_diffusers(sgm)
    assert set(original) == set(sgm) - set(unused)
    back = map_shapes({k: tuple(t.shape) for k, t in original.items()})
    assert back == {part: {k: tuple(t.shape) for k, t in sd.items()} for part, sd in parts.items()}


def test_transforms_row_split_transpose_squeeze():
    parts = tiny_parts()
    layer = "vision_model.encoder.layers.0.self_attn."
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        parts["clip"][layer + name + ".weight"] = torch.full((6, 6), float(i))
        parts["clip"][layer + name + ".bias"] = torch.full((6,), 10.0 + i)
    parts["clip"]["visual_projection.weight"] = torch.arange(30.0).reshape(5, 6)
    original = diffusers_to_original(parts)
    in_proj = original[CLIP + "transformer.resblocks.0.attn.in_proj_weight"]
    assert in_proj.shape == (18, 6)
    assert in_proj[:6].eq(0).all() and in_proj[6:12].eq(1).all() and in_proj[12:].eq(2).all()  # q, k, v rows
    assert original[CLIP + "transformer.resblocks.0.attn.in_proj_bias"].tolist() == [10.0] * 6 + [11.0] * 6 + [12.0] * 6
    assert torch.equal(original[CLIP + "proj"], torch.arange(30.0).reshape(5, 6).t())
    q = parts["vae"]["decoder.mid_block.attentions.0.to_q.weight"]
    assert torch.equal(original[VAE_DECODER + "mid.attn_1.q.weight"], q[:, :, None, None])


def _drop(keys, *fragments):
    return {k: v for k, v in keys.items() if not any(f in k for f in fragments)}


def test_mapping_is_parametric_in_model_size():
    """1 layer per block, 3 VAE levels, 2 CLIP layers: counts come from the keys, round trip is exact."""
    parts = tiny_parts()
    unet = _drop(parts["unet"], *[f"down_blocks.{b}.{k}.1." for b in range(4) for k in ("resnets", "attentions")],
                 *[f"up_blocks.{b}.{k}.2." for b in range(4) for k in ("resnets", "attentions")])
    vae = {k.replace("up_blocks.3.", "up_blocks.2.") if "up_blocks.3." in k else k: v
           for k, v in _drop(parts["vae"], "up_blocks.2.", "down_blocks.3.").items()}
    clip = {k: v for k, v in parts["clip"].items() if not k.startswith("vision_model.encoder.layers.")
            or int(k.split(".")[3]) < 2}
    small = {"unet": unet, "vae": vae, "clip": clip}
    original = diffusers_to_original(small)
    assert UNET + "input_blocks.4.0.op.weight" in original  # 1 + level 1 * (1 + 1) + 1
    assert UNET + "output_blocks.3.2.conv.weight" in original  # up level 1, its 2nd entry, after the attention
    assert VAE_DECODER + "up.0.block.0.conv1.weight" in original and VAE_DECODER + "up.3.upsample.conv.weight" not in original
    assert not any(".resblocks.2." in k for k in original)
    pieces, _, _ = original_to_diffusers(original)
    assert pieces["vae"]["decoder.up_blocks.2.resnets.0.spatial_res_block.conv1.weight"].source == \
        VAE_DECODER + "up.0.block.0.conv1.weight"
    assert {p: set(v) for p, v in pieces.items()} == {p: set(v) for p, v in small.items()}


def test_unknown_key_under_a_used_prefix_is_unexpected(sgm):
    keys = dict(sgm)
    keys[UNET + "input_blocks.1.0.mystery.weight"] = (4,)
    keys[CLIP + "attnpool.weight"] = (4,)
    with pytest.raises(UnexpectedKeys, match=r"2 single-file keys.*attnpool\.weight.*mystery\.weight"):
        original_to_diffusers(keys)


def test_unet_without_downsamplers_is_wrong_model():
    with pytest.raises(WrongModel, match="downsampler"):
        original_to_diffusers([UNET + "input_blocks.1.0.in_layers.0.weight"])
