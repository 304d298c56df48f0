"""UNet.compile_regions (torch.compile of the capture-free pieces of every block) computes what the eager
U-Net computes, for the denoising forward and for SG-I2V's latent optimisation (loss and latent gradient,
through the eager capture hook and activation checkpointing).

Compiled code fuses and reorders floating-point work, so the results differ from eager by rounding. The
yardstick is eager float32's own rounding error: both are compared with the same network in float64, and
the compiled error may be at most 3x the eager one. Measured when written (unit-test config, random
weights, torch 2.13, CPU): forward, eager 1.05e-3 vs compiled 1.04e-3 relative to each other (this
random tiny U-Net is ill-conditioned: scaling its input by 1 + 1e-6 moves the output by 1.3e-3); a
wrong piece (a dropped residual, another GELU) is off by orders of magnitude more. Compiling takes about a
minute on 2 CPU cores.
"""
import copy

import pytest
import torch

from guidance.features import extract_features
from guidance.loss import trajectory_loss
from model import UNet, tiny
from sampler.conditioning import Conditioning

MAX_ERROR_VS_EAGER = 3.0


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    cfg = tiny()
    eager = UNet(cfg.unet).eval().requires_grad_(False)
    compiled = copy.deepcopy(eager).compile_regions()
    exact = copy.deepcopy(eager).double()
    t = cfg.unet.num_frames
    g = torch.Generator().manual_seed(0)
    cond = Conditioning(torch.randn(1, 1, cfg.unet.cross_attention_dim, generator=g),
                        torch.randn(1, t, 4, 8, 8, generator=g), torch.tensor([[6.0, 127.0, 0.02]]))
    x = torch.randn(1, t, 4, 8, 8, generator=g)
    boxes = torch.tensor([[[1, 1, 5, 5]] + [[1, 1 + i, 5, 5 + i] for i in range(1, t)]])   # (1, F, 4) latent px
    return eager, compiled, exact, cond, x, boxes


def forward(unet, cond, x):
    dtype = next(unet.parameters()).dtype
    inp = torch.cat([x, cond.latents], 2).to(dtype)                                  # (1, F, 8, h, w)
    with torch.no_grad():
        return unet(inp, torch.tensor([0.5], dtype=dtype), cond.embeds.to(dtype), cond.time_ids.to(dtype))


def loss_and_gradient(unet, cond, x, boxes):
    dtype = next(unet.parameters()).dtype
    z = x.to(dtype).clone().requires_grad_(True)
    with torch.enable_grad():
        features = extract_features(unet, z, torch.tensor(5.0), cond, "aligned", ((2, 0), (2, 1)))
        loss = trajectory_loss(features, boxes)
        (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


def test_compiled_forward_matches_eager_within_float32_rounding(nets):
    import torch._dynamo.utils
    eager, compiled, exact, cond, x, _ = nets
    torch._dynamo.utils.counters.clear()
    out = forward(compiled, cond, x)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    ref = forward(exact, cond, x)
    eager_err, compiled_err = rel(forward(eager, cond, x), ref), rel(out, ref)
    assert compiled_err <= MAX_ERROR_VS_EAGER * eager_err, (compiled_err, eager_err)


@pytest.mark.parametrize("checkpointing", ["none", "transformers"])
def test_compiled_optimisation_gradient_matches_eager_within_float32_rounding(nets, checkpointing):
    eager, compiled, exact, cond, x, boxes = nets
    for net in (eager, compiled, exact):
        net.set_checkpointing(checkpointing)
    (loss_e, grad_e), (loss_c, grad_c), (loss_x, grad_x) = (loss_and_gradient(n, cond, x, boxes)
                                                             for n in (eager, compiled, exact))
    assert loss_x > 0 and grad_x.abs().sum() > 0
    assert rel(loss_c, loss_x) <= MAX_ERROR_VS_EAGER * rel(loss_e, loss_x) + 1e-6, (loss_c, loss_e, loss_x)
    assert rel(grad_c, grad_x) <= MAX_ERROR_VS_EAGER * rel(grad_e, grad_x), (rel(grad_c, grad_x), rel(grad_e, grad_x))


def test_uncompile_regions_restores_the_eager_methods():
    unet = UNet(tiny().unet).compile_regions()                     # torch.compile is lazy: nothing compiles here
    regions = unet.regions()
    kinds = {type(m).__name__ for m, _ in regions}
    assert kinds == {"SpatioTemporalResBlock", "BasicTransformerBlock", "TemporalBasicTransformerBlock"}, kinds
    assert all(name in m.__dict__ for m, name in regions)
    unet.uncompile_regions()
    assert not any(name in m.__dict__ for m, name in regions)
