"""The video transformer model/dit.py: parity with diffusers' WanTransformer3DModel (T2V and I2V), the
guidance hooks (capture, stop_after), the drop-in call of the SVD pipeline, and the loader building it."""
import json

import pytest
import torch
from safetensors.torch import save_file

from model.config import DiTConfig, SVDConfig, tiny, tiny_world_dit
from model.dit import DiT
from sampler.conditioning import generate
from tests.oracles import random_state_dict
from tests.tiny_weights import tiny_model
from weights import load_svd
from weights.errors import CorruptFile, WrongModel

# A Wan config small enough for the CPU: 2 blocks, 2 heads of 12 (the 3-D rotary split 4/4/4 per head).
WAN = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=8, out_channels=4,
           text_dim=16, freq_dim=32, ffn_dim=40, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
           eps=1e-6, rope_max_seq_len=32)
I2V = dict(image_dim=20, added_kv_proj_dim=24)             # added k/v project the image tokens to the width 24


def wan_pair(**extra):
    """(diffusers' WanTransformer3DModel with random weights, ours loaded strictly from its state_dict)."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.WanTransformer3DModel(**WAN, **extra).eval()
    torch.manual_seed(0)
    with torch.no_grad():                                   # every tensor random, so no term can hide at 0 or 1
        for p in ref.parameters():
            p.normal_(0, 0.3)
    ours = DiT(DiTConfig(**WAN, **extra)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def relative_error(ours, ref):
    return ((ours - ref).abs().max() / ref.abs().max()).item()


# fp32 on the CPU: both compute the same operations in the same order up to summation order inside
# kernels (measured: exactly 0). 1e-5 relative is ~80 float32 ulps: a wrong term (a missing norm, a
# rotated pair, a swapped shift/scale) changes the output by O(1).
TOL = 1e-5


@pytest.mark.parametrize("variant", ["t2v", "i2v"])
def test_parity_with_diffusers_wan(variant):
    extra = I2V if variant == "i2v" else {}
    ref, ours = wan_pair(**extra)
    g = torch.Generator().manual_seed(1)
    b, t, h, w = 2, 4, 6, 8                                 # 4 frames of 3x4 tokens: every rotary axis used
    sample = torch.randn(b, t, 8, h, w, generator=g)
    timestep = torch.rand(b, generator=g) * 1000
    # diffusers' I2V attention takes the LAST 512 context tokens as text and the rest as image tokens
    text = torch.randn(b, 512 if variant == "i2v" else 7, WAN["text_dim"], generator=g)
    image = torch.randn(b, 3, I2V["image_dim"], generator=g) if variant == "i2v" else None
    with torch.no_grad():
        expected = ref(sample.transpose(1, 2), timestep, text, encoder_hidden_states_image=image,
                       return_dict=False)[0].transpose(1, 2)                      # (B, T, 4, h, w)
        got = ours(sample, timestep, text, encoder_hidden_states_image=image)
    assert got.shape == (b, t, 4, h, w)
    assert relative_error(got, expected) <= TOL, relative_error(got, expected)


class Recorder:
    def __init__(self, wanted):
        self.wanted, self.seen = set(wanted), {}

    def wants(self, address):
        return address in self.wanted

    def record(self, address, *tensors):
        self.seen[address] = tensors


def small_dit(**extra):
    cfg = DiTConfig(**{**WAN, "time_ids_dim": 8, "num_frames": 4, **extra})
    model = DiT(cfg)
    model.load_state_dict(random_state_dict(model, 0))
    return model.eval()


def inputs(b=1, t=4, h=6, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, 8, h, w, generator=g), torch.tensor(0.3), torch.randn(b, 1, 16, generator=g),
            torch.tensor([[6.0, 80.0, 0.02]]).repeat(b, 1))


def test_capture_shapes_and_frame_major_tokens():
    model = small_dit()
    sample, c_noise, context, ids = inputs()
    rec = Recorder({"blocks.0.attn1", "blocks.1"})
    with torch.no_grad():
        out = model(sample, c_noise, context, ids, capture=rec)
    q, k, v = rec.seen["blocks.0.attn1"]
    assert q.shape == k.shape == v.shape == (1, 2, 4 * 3 * 4, 12)                  # (B, heads, F*L, d)
    assert rec.seen["blocks.1"][0].shape == (1, 48, 24)                           # (B, F*L, dim)
    assert out.shape == (1, 4, 4, 6, 8)
    # v is per token (no mixing before the first attention): a change inside one patch of frame 2,
    # cell (y=1, x=3), moves v of token 2*L + 1*w' + 3 only
    moved = sample.clone()
    moved[:, 2, :, 2:4, 6:8] += 1.0
    rec2 = Recorder({"blocks.0.attn1"})
    with torch.no_grad():
        model(moved, c_noise, context, ids, capture=rec2)
    changed = (rec2.seen["blocks.0.attn1"][2] - v).abs().amax(dim=(0, 1, 3)) > 0   # (F*L,)
    assert changed.nonzero().flatten().tolist() == [2 * 12 + 1 * 4 + 3]


def test_stop_after_skips_later_blocks():
    model = small_dit(num_layers=3)
    calls = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda module, args, output, i=i: calls.append(i))
    rec = Recorder({"blocks.0"})
    with torch.no_grad():
        assert model(*inputs(), capture=rec, stop_after="blocks.0") is None
    assert calls == [0] and "blocks.0" in rec.seen


def test_time_ids_steer_the_output_and_are_required():
    model = small_dit()
    sample, c_noise, context, ids = inputs()
    with torch.no_grad():
        a = model(sample, c_noise, context, ids)
        b = model(sample, c_noise, context, ids * torch.tensor([1.0, 2.0, 1.0]))
    assert (a - b).abs().max() > 1e-3                       # the motion bucket reaches the prediction
    with pytest.raises(ValueError, match="added_time_ids"):
        model(sample, c_noise, context, None)
    plain = DiT(DiTConfig(**WAN)).eval()
    with pytest.raises(ValueError, match="time_ids_dim"):
        plain(sample, c_noise, context, ids)


def test_init_weights_starts_at_zero_prediction():
    """Zero-initialised output projection: v = 0 for any input (the EDM denoiser starts at c_skip x)."""
    model = DiT(tiny_world_dit().unet).init_weights().eval()
    assert sum(p.numel() for p in model.parameters()) == 8_126_224                # the figure in model/config.py
    with torch.no_grad():
        v = model(torch.randn(1, 8, 8, 16, 16), torch.tensor(0.1), torch.randn(1, 1, 64),
                  torch.tensor([[6.0, 80.0, 0.02]]))
    assert v.shape == (1, 8, 4, 16, 16) and v.abs().max() == 0


def dit_folder(root, cfg):
    """A tiny DiT model folder: transformer/ (random DiT), vae/ and image_encoder/ (tiny random), config."""
    _, nets, state = tiny_model(seed=0)
    dit = DiT(cfg.unet)
    dit_state = random_state_dict(dit, 5)
    for sub, stem, tensors in (("transformer", "diffusion_pytorch_model", dit_state),
                               ("vae", "diffusion_pytorch_model", state["vae"]),
                               ("image_encoder", "model", state["clip"])):
        (root / sub).mkdir(parents=True)
        save_file({k: t.contiguous() for k, t in tensors.items()}, str(root / sub / f"{stem}.safetensors"))
    (root / "sgi2v_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    dit.load_state_dict(dit_state)
    return dit.eval()


def tiny_dit_config() -> SVDConfig:
    base = tiny()
    return SVDConfig(name="tiny-dit-test", backbone="dit", vae=base.vae, clip=base.clip, sampling=base.sampling,
                     unet=DiTConfig(**{**WAN, "text_dim": base.clip.projection_dim, "time_ids_dim": 8,
                                       "num_frames": 4}))


def test_loader_builds_the_dit_and_it_generates(tmp_path):
    cfg = tiny_dit_config()
    expected = dit_folder(tmp_path / "m", cfg)
    svd = load_svd(tmp_path / "m")
    assert isinstance(svd.unet, DiT) and svd.cfg.backbone == "dit" and svd.cfg.unet == cfg.unet
    for k, t in expected.state_dict().items():
        assert torch.equal(svd.unet.state_dict()[k], t), k
    # the SVD pipeline drives it unchanged (sampler/conditioning.generate), deterministically
    from PIL import Image
    image = Image.new("RGB", (64, 64), (120, 40, 200))

    def run():
        return generate(svd.unet, svd.vae, svd.clip, image, 4, 64, 64, 2, motion_bucket_id=80,
                        generator=torch.Generator().manual_seed(0), scaling_factor=svd.cfg.vae.scaling_factor)
    first = run()
    assert first.shape == (4, 64, 64, 3) and (first == run()).all()


def test_loader_errors_name_the_mismatch(tmp_path):
    cfg = tiny_dit_config()
    dit_folder(tmp_path / "a", cfg)
    (tmp_path / "a" / "sgi2v_config.json").write_text(json.dumps(tiny().to_dict()))     # says backbone unet
    with pytest.raises(CorruptFile, match="backbone 'unet'"):
        load_svd(tmp_path / "a")
    dit_folder(tmp_path / "b", cfg)
    (tmp_path / "b" / "sgi2v_config.json").unlink()
    with pytest.raises(CorruptFile, match="needs sgi2v_config.json"):
        load_svd(tmp_path / "b")
    _, _, state = tiny_model(seed=0)                           # a U-Net's file where the transformer belongs
    dit_folder(tmp_path / "c", cfg)
    save_file({k: t.contiguous() for k, t in state["unet"].items()},
              str(tmp_path / "c" / "transformer" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WrongModel, match="WanTransformer3DModel"):
        load_svd(tmp_path / "c")


def test_config_round_trip_keeps_the_backbone():
    cfg = tiny_world_dit()
    back = SVDConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.unet, DiTConfig)
    with pytest.raises(ValueError, match="backbone 'transformer'"):
        SVDConfig.from_dict({**cfg.to_dict(), "backbone": "transformer"})
