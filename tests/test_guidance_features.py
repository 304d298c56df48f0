"""Tests for guidance/features.py (paper Sec. 3.2) and guidance/backbone.py: the first-frame key/value
attention against a by-hand formula, its stop-gradient, every feature source's layout, the bilinear
resize, the U-Net's own output untouched by the capture, and the truncated conditional forward."""
import math

import pytest
import torch

from guidance import backbone
from guidance.features import SOURCES, FeatureCapture, extract_features, first_frame_attention
from model.attention import attention
from sampler.conditioning import predict_v
from tests.guidance_helpers import FRAMES, noisy_latent, random_cond, tiny_unet

LAYERS = ((2, 1), (2, 2))
HEADS, D = 2, 16                   # tiny(): up_blocks[2] has 32 channels, 2 heads


def random_qkv(n, length, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, HEADS, length, D, generator=g).requires_grad_(requires_grad) for _ in range(3)]


def by_hand(q, k, v):                                              # (heads, L, d) each
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1) @ v


# ---------------------------------------------------------------------------------------------
# The first-frame attention


def test_first_frame_attention_is_self_attention_in_frame_0_and_uses_frame_0_kv_elsewhere():
    q, k, v = random_qkv(FRAMES, 12)
    out = first_frame_attention(q, k, v, FRAMES)                   # (F, heads, L, d)
    assert torch.allclose(out[0], attention(q, k, v)[0], atol=1e-6)
    for n in range(1, FRAMES):
        assert torch.allclose(out[n], by_hand(q[n], k[0], v[0]), atol=1e-6)
        assert not torch.allclose(out[n], by_hand(q[n], k[n], v[n]), atol=1e-3)


def test_first_frame_attention_batches_do_not_mix():
    q, k, v = random_qkv(2 * FRAMES, 6)
    out = first_frame_attention(q, k, v, FRAMES)
    assert torch.allclose(out[FRAMES + 2], by_hand(q[FRAMES + 2], k[FRAMES], v[FRAMES]), atol=1e-6)


def test_no_gradient_reaches_the_first_frame_keys_and_values():
    q, k, v = random_qkv(FRAMES, 12, requires_grad=True)
    loss = first_frame_attention(q, k, v, FRAMES).square().sum()
    dq, dk, dv = torch.autograd.grad(loss, (q, k, v), materialize_grads=True)    # None -> zeros
    assert torch.count_nonzero(dk) == 0 and torch.count_nonzero(dv) == 0          # stop-gradient
    assert torch.count_nonzero(dq[0]) > 0 and torch.count_nonzero(dq[1:]) > 0


def test_capture_record_merges_heads_into_a_map():
    """The aligned map at (frame n, row y, column x) is the by-hand attention of token y*w'+x,
    heads concatenated head-major (channel = head * d + j), as the reference's reshape."""
    unet = tiny_unet()
    capture = FeatureCapture(unet, "aligned", [(2, 1)], FRAMES, latent_size=(6, 8))   # map 3 x 4
    q, k, v = random_qkv(FRAMES, 3 * 4)
    capture.record(backbone.spatial_attention((2, 1)), q, k, v)
    out = capture.maps[(2, 1)]
    assert out.shape == (FRAMES, 3, 4, HEADS * D)
    expected = by_hand(q[2], k[0], v[0])                           # (heads, L, d)
    y, x, head, j = 2, 1, 1, 5
    assert out[2, y, x, head * D + j].item() == pytest.approx(expected[head, y * 4 + x, j].item(), abs=1e-6)


def test_temporal_attention_map_layout():
    """Temporal attention runs per pixel over frames: (h'*w', heads, F, d) -> (F, h', w', C)."""
    capture = FeatureCapture(tiny_unet(), "temporal_attention", [(2, 1)], FRAMES, latent_size=(6, 8))
    g = torch.Generator().manual_seed(3)
    q, k, v = [torch.randn(3 * 4, HEADS, FRAMES, D, generator=g) for _ in range(3)]
    capture.record(backbone.temporal_attention((2, 1)), q, k, v)
    out = capture.maps[(2, 1)]
    expected = by_hand(q[1 * 4 + 3], k[1 * 4 + 3], v[1 * 4 + 3])  # pixel (1, 3): (heads, F, d)
    assert out.shape == (FRAMES, 3, 4, HEADS * D)
    assert torch.allclose(out[2, 1, 3], expected[:, 2].reshape(-1), atol=1e-6)


def test_features_are_resized_bilinearly_without_aligned_corners():
    """A 1x2 map [0, 1] on a 2x4 latent (layer (2, .) is at latent / 2): [0, 1/4, 3/4, 1] per row
    (align_corners=True would give thirds)."""
    capture = FeatureCapture(tiny_unet(), "aligned", [(2, 1)], 1, latent_size=(2, 4))
    capture.maps[(2, 1)] = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1)
    out = capture.features()
    assert out.shape == (1, 2, 4, 1) and out.dtype == torch.float32
    assert torch.allclose(out[0, :, :, 0], torch.tensor([[0.0, 0.25, 0.75, 1.0]] * 2))


# ---------------------------------------------------------------------------------------------
# Inside the U-Net


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_gives_frames_by_latent_by_channels(source):
    latent, sigma = noisy_latent()
    features = extract_features(tiny_unet(), latent, sigma, random_cond(), source, LAYERS)
    channels = sum(backbone.feature_channels(tiny_unet(), layer) for layer in LAYERS)
    assert channels == 2 * 32                                      # up_blocks[2] of tiny(): 32 channels
    assert features.shape == (FRAMES, 8, 8, channels) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    if source == "upblock_output_minus_mean":
        assert features.mean(dim=0).abs().max() < 1e-5


def test_odd_latent_sizes_and_a_deeper_layer():
    """Sizes are halved rounding up (stride-2 convs); (1, 0) runs at latent / 4 with 64 channels."""
    unet = tiny_unet()
    assert backbone.feature_size(unet, (2, 0), (9, 13)) == (5, 7)
    assert backbone.feature_size(unet, (1, 0), (9, 13)) == (3, 4)
    latent, sigma = noisy_latent(size=(9, 13))
    features = extract_features(unet, latent, sigma, random_cond(size=(9, 13)), "aligned", [(1, 0), (2, 2)])
    assert features.shape == (FRAMES, 9, 13, 64 + 32)


def test_layer_addresses_and_bad_layers():
    assert backbone.spatial_attention((2, 1)) == "up_blocks.2.attentions.1.transformer_blocks.0.attn1"
    assert backbone.temporal_attention((2, 2)) == "up_blocks.2.attentions.2.temporal_transformer_blocks.0.attn1"
    assert backbone.stop_after([(2, 2), (1, 2), (2, 1)]) == "up_blocks.2.attentions.2"
    modules = dict(tiny_unet().named_modules())
    for layer in [(1, 0), (3, 2)]:
        for address in (backbone.spatial_attention(layer), backbone.temporal_attention(layer),
                        backbone.layer_output(layer)):
            assert address in modules and getattr(modules[address], "address", None) == address
    for bad in [(0, 1), (4, 0), (2, 3)]:
        with pytest.raises(ValueError, match="layer"):
            FeatureCapture(tiny_unet(), "aligned", [bad], FRAMES, (8, 8))
    with pytest.raises(ValueError, match="feature source"):
        FeatureCapture(tiny_unet(), "queries", LAYERS, FRAMES, (8, 8))


@pytest.mark.parametrize("source", SOURCES)
def test_capture_leaves_the_unet_output_bit_identical(source):
    unet, cond = tiny_unet(), random_cond()
    latent, sigma = noisy_latent()
    with torch.no_grad():
        plain = predict_v(unet, latent, sigma, cond)
        capture = FeatureCapture(unet, source, LAYERS, FRAMES, (8, 8))
        captured = predict_v(unet, latent, sigma, cond, capture=capture)
    assert set(capture.maps) == set(LAYERS)
    assert torch.equal(plain, captured)


class Everything:
    """A capture that wants every address and logs the order they come in."""
    def __init__(self):
        self.seen = []

    def wants(self, address):
        return True

    def record(self, address, *tensors):
        self.seen.append(address)


def test_truncated_forward_stops_after_the_deepest_layer_with_the_same_features():
    unet, cond = tiny_unet(), random_cond()
    latent, sigma = noisy_latent()
    with torch.no_grad():
        full = FeatureCapture(unet, "aligned", LAYERS, FRAMES, (8, 8))
        assert predict_v(unet, latent, sigma, cond, capture=full) is not None
        truncated = FeatureCapture(unet, "aligned", LAYERS, FRAMES, (8, 8))
        assert predict_v(unet, latent, sigma, cond, capture=truncated, stop_after=backbone.stop_after(LAYERS)) is None
        log = Everything()
        predict_v(unet, latent, sigma, cond, capture=log, stop_after=backbone.stop_after(LAYERS))
    assert torch.equal(full.features(), truncated.features())
    assert log.seen[-1] == "up_blocks.2.attentions.2"                     # nothing after the deepest layer
    assert not any(a.startswith("up_blocks.3") or a == "up_blocks.2" for a in log.seen)


def test_features_are_differentiable_wrt_the_latent():
    latent, sigma = noisy_latent()
    latent.requires_grad_(True)
    features = extract_features(tiny_unet(), latent, sigma, random_cond())
    (grad,) = torch.autograd.grad(features[1:].square().sum(), latent)
    assert torch.count_nonzero(grad) > 0
