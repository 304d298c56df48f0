"""The memory and speed options compute what the plain fp32 path computes (issue: GPU performance).

1. Gradient checkpointing (UNet.set_checkpointing) recomputes instead of storing: the gradient of the
   SG-I2V loss w.r.t. the latent is bit-identical in every mode (fp32, CPU, deterministic kernels).
2. The fast path the GPU uses, reduced to what a CPU can run: bf16 weights, every block checkpointed,
   networks offloaded (run.py --low-vram --dtype bf16), against fp32 with nothing of that, on the shipped
   tiny model, bench task seed 3000 (one sprite redirected), 10 steps, a STRONG guidance setting: the
   tiny defaults with window 0.1-0.4 at lr 10 (the defaults until session 11). A strong optimisation at
   high noise makes each step's change large next to what bf16 rounding does to its gradient, so the
   per-step latent check below can tell a numerical error from a changed optimisation. At the current
   defaults (window 0.2-0.6, lr 0.3) the first optimised steps change the latent little, and the bf16
   gradient's error is 0.20 and 0.18 of that change at steps 2 and 3 (0.08-0.04 after), while the video
   still matches: 51.9 dB against a control effect of 23.8 dB, ObjMC 2.32 against 2.28 px (7.80 without
   control; measured with a script running this file's guided_run, model at 52,371 steps).
3. run.py --compile's optimisation path (features.extract_features_compiled) against eager, through the
   aot_eager backend (inductor's code generation takes minutes on 2 CPU cores; bench/perf.py compares
   the inductor-compiled video with the eager one on the GPU).

Tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-9), so the fast path cannot be
bit-identical; the question is whether its error is small next to what the method does. So each gap is
measured against the guidance's own effect on the same quantity:
  - optimised latent at each of the 4 optimised steps: |z_fast - z_ref| <= 0.12 |z_ref - z_before| (the
    change the optimisation made); measured on the model at 52,371 U-Net steps: 0.007, 0.017, 0.030,
    0.060 (at 11,609 steps, when written: 0.031, 0.044, 0.040, 0.031);
  - video: PSNR(fast, ref) >= PSNR(ref, no control) + 15 dB, i.e. the mismatch's energy is under 3% of
    the control's effect; measured 49.7 dB vs 21.4 dB;
  - ObjMC: |ObjMC_fast - ObjMC_ref| <= 0.25 (ObjMC_none - ObjMC_ref); measured 1.69 vs 1.66 px (7.80
    without control).
It can fail: an fp32 run with lr x 1.3, or 8 iterations instead of 10, gives latent gaps of 0.155 / 0.126
at the first optimised step (0.28-0.56 / 0.27-0.35 after), failing the first check; its video PSNR of
35.9 dB also fails the second (8 iterations: 38.0 dB passes it); ObjMC moves little either way (0.01 /
0.02 of the control's effect), so the third check only guards against gross breakage (on the model at
11,609 steps these gave 32.0 / 27.3 dB and 0.51 / 0.52, failing all three).
"""
import numpy as np
import pytest
import torch

from bench.objmc_tiny import build_tasks, measure, parse_variant, psnr, summarise
from guidance.features import extract_features
from guidance.loss import trajectory_loss
from guidance.sg_i2v import make_step_hook
from guidance.trajectory import latent_boxes
from model import UNet, tiny
from sampler.conditioning import Conditioning, generate
from tests.oracles import random_state_dict
from weights import load_svd
from weights.svd import SHIPPED_TINY
from weights.tiny.train import world_config

STRONG = "tiny+window_0.1_0.4+lr_10"     # the fast-path check's guidance setting (docstring, 2.)


def latent_gradient(unet, z0, cond, boxes):
    z = z0.clone().requires_grad_(True)
    with torch.enable_grad():
        loss = trajectory_loss(extract_features(unet, z, torch.tensor(5.0), cond, "aligned", ((2, 1), (2, 2))), boxes)
        (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


def test_checkpointing_modes_give_identical_gradients():
    cfg = tiny().unet
    unet = UNet(cfg).eval().requires_grad_(False)
    unet.load_state_dict(random_state_dict(unet, 0))
    g = torch.Generator().manual_seed(0)
    f, h, w = cfg.num_frames, 8, 8
    z0 = torch.randn(1, f, 4, h, w, generator=g)
    cond = Conditioning(torch.randn(1, 1, cfg.cross_attention_dim, generator=g), torch.randn(1, f, 4, h, w, generator=g),
                        torch.tensor([[6.0, 127.0, 0.02]]))
    boxes = np.array([[[1 + i, 1, 4 + i, 4] for i in range(f)]])        # (1, F, 4) one box moving down
    loss_ref, grad_ref = latent_gradient(unet.set_checkpointing("none"), z0, cond, boxes)
    assert grad_ref.abs().sum() > 0
    for mode in ("ff", "transformers", "blocks"):
        loss, grad = latent_gradient(unet.set_checkpointing(mode), z0, cond, boxes)
        assert torch.equal(loss, loss_ref) and torch.equal(grad, grad_ref), mode
    with pytest.raises(ValueError, match="expected one of"):
        unet.set_checkpointing("all")


def guided_run(svd, task, cfg, offload=False, compile_backend=None):
    """(frames, [(step, latent before, latent after)]) of one generation with the step hook recorded."""
    s, steps = svd.cfg.sampling, []
    boxes = latent_boxes(task.traj)

    def make_on_step(conditioning, sigmas):
        hook = make_step_hook(cfg, svd.unet, conditioning, boxes, len(sigmas) - 1, compile_backend=compile_backend)

        def on_step(i, x, sigma):
            out = hook(i, x, sigma)
            if out is not x:
                steps.append((i, x.float().clone(), out.float().clone()))
            return out
        return on_step
    frames = generate(svd.unet, svd.vae, svd.clip, task.image, svd.cfg.unet.num_frames, s.height, s.width, 10,
                      fps=s.fps, motion_bucket_id=task.motion_bucket, noise_aug_strength=s.noise_aug_strength,
                      min_guidance=s.min_guidance, max_guidance=s.max_guidance, decode_chunk_size=s.decode_chunk_size,
                      generator=torch.Generator().manual_seed(0), dtype=svd.dtype,
                      scaling_factor=svd.cfg.vae.scaling_factor, make_on_step=make_on_step if cfg else None,
                      offload=offload)
    return frames, steps


@pytest.mark.skipif(not (SHIPPED_TINY / "sgi2v_config.json").exists(), reason="no shipped tiny model")
def test_bf16_checkpointed_offloaded_path_matches_fp32():
    ref_model = load_svd()
    task = build_tasks(1, world_config(ref_model.cfg))[0]
    cfg = parse_variant(STRONG)
    ref, ref_steps = guided_run(ref_model, task, cfg)
    none, _ = guided_run(ref_model, task, None)
    fast_model = load_svd(dtype=torch.bfloat16)
    fast_model.unet.set_checkpointing("blocks")
    fast, fast_steps = guided_run(fast_model, task, cfg, offload=True)

    assert [i for i, *_ in fast_steps] == [i for i, *_ in ref_steps] and ref_steps
    for (i, before, after), (_, _, fast_after) in zip(ref_steps, fast_steps):
        moved = (after - before).norm()
        assert (fast_after - after).norm() <= 0.12 * moved, (i, float((fast_after - after).norm() / moved))

    effect, gap = psnr(ref, none), psnr(fast, ref)
    assert gap >= effect + 15, f"fast vs fp32 {gap:.1f} dB, control's effect {effect:.1f} dB"
    m_ref, m_none, m_fast = (summarise([measure(v, task)])["objmc"] for v in (ref, none, fast))
    assert m_none - m_ref > 1.0, (m_none, m_ref)                        # the control does something here
    assert abs(m_fast - m_ref) <= 0.25 * (m_none - m_ref), (m_fast, m_ref, m_none)


@pytest.mark.skipif(not (SHIPPED_TINY / "sgi2v_config.json").exists(), reason="no shipped tiny model")
def test_compiled_feature_extraction_matches_eager():
    """run.py --compile's optimisation path: features.extract_features_compiled with every transformer
    checkpointed (the CUDA default), against eager, fp32, on the shipped tiny model and the task above.
    On the CPU it runs with torch.compile's aot_eager backend: dynamo's capture of the truncated forward
    (the capture hook, the early stop, the checkpointed regions with their side effect) and AOTAutograd's
    forward/backward graphs, i.e. everything of torch.compile that our code steers, without inductor's
    code generation (minutes of C++ compiling on 2 cores), which bench/perf.py compares on the GPU.
    One graph and no graph break: a break would silently fall back to eager for part of the pass.
    Tolerance: the same ATen ops in another order round differently (float32, ~1e-7 relative); AdamW's
    normalised steps carry that into the latent, so each optimised latent may differ from eager by at
    most 1e-3 of the change the optimisation made, and the video by at most 1 level of 255 anywhere (any
    float difference can flip a pixel's uint8 rounding by one level). Measured on the model at 52,371 steps
    with the current tiny defaults (steps 2-6 optimised): latent gaps 4.9e-6, 7.4e-6, 4.2e-6, 2.5e-6, 2.4e-6;
    video max 1 level (window 0.1-0.4 at lr 10: 2.8e-7 to 2.5e-6; 44,321 steps: up to 3.3e-6, 1 level). With dynamo not told to skip the
    checkpointed side effect, the capture breaks the graph into 22 and the first assertion fails."""
    import torch._dynamo.utils
    model = load_svd()
    model.unet.set_checkpointing("transformers")
    task = build_tasks(1, world_config(model.cfg))[0]
    cfg = parse_variant("tiny")
    ref, ref_steps = guided_run(model, task, cfg)
    torch._dynamo.utils.counters.clear()
    out, out_steps = guided_run(model, task, cfg, compile_backend="aot_eager")
    stats = torch._dynamo.utils.counters
    assert stats["stats"]["unique_graphs"] == 1 and not stats["graph_break"], (dict(stats["stats"]), dict(stats["graph_break"]))
    assert [i for i, *_ in out_steps] == [i for i, *_ in ref_steps] and ref_steps
    for (i, before, after), (_, _, out_after) in zip(ref_steps, out_steps):
        gap = float((out_after - after).norm() / (after - before).norm())
        print(f"step {i}: compiled vs eager {gap:.2e} of the optimisation's change")
        assert gap <= 1e-3, (i, gap)
    diff = np.abs(np.asarray(out, dtype=np.float64) - np.asarray(ref, dtype=np.float64)).max()
    print(f"video max abs diff {diff}")
    assert diff <= 1.0, diff
