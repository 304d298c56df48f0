"""Speed and memory of the paper's default run on the GPU (576x1024, 14 frames, 50 Euler steps,
SG-I2V with 16 optimised steps x 5 iterations = 80), next to diffusers' StableVideoDiffusionPipeline
without control, in the same process, with the same random full-size weights (a sampler's speed and
memory do not depend on the weight values).

For each run: wall time in total and per stage (CLIP, VAE encode, optimisation = SG-I2V's step hook, VAE decode, and sampling = the rest:
the denoising U-Net calls), peak allocated memory in total and per stage, the
floating-point operations (counted once with torch.utils.flop_counter) and the TFLOP/s achieved, and
the ratio to diffusers' plain time. Each configuration runs once untimed first (a 3-step generation
that optimises at every step), so that kernel selection, autotuning and compilation are outside the
timed run; that warm-up time is reported too.

Runs ("--runs", comma-separated):
  diffusers          diffusers' pipeline, plain, fp16, decode chunk 8 (the reference library, no control)
  plain              our generate(), plain, fp16
  sgi2v              our SG-I2V default run as `run.py` on CUDA does it (fp16 weights)
  sgi2v_bf16         the same in bf16 weights (no loss scaling)
  a run name may carry options after '+': cudnn / flash / efficient (the attention kernel),
  channels_last, compile (torch.compile of the whole U-Net for the denoising steps), compile_features
  (torch.compile of the optimisation's truncated forward and backward, features.extract_features_compiled;
  run.py --compile is +compile+compile_features),
  ckpt_ff / ckpt_transformers / ckpt_blocks (UNet.set_checkpointing),
  offload (generate(offload=True)); e.g. sgi2v+ckpt_ff+compile; run.py --low-vram is +ckpt_blocks+offload
--probe adds micro-benchmarks of one guided U-Net call (batch 2) and one optimisation iteration under
each attention kernel and memory format, and a kernel-time profile of both.

  python -m bench.perf --out bench/results/perf_H200.json            # on the GPU machine
  python -m bench.perf --smoke                                        # tiny config on the CPU: checks the script
"""
import argparse
import contextlib
import json
import time
from collections import defaultdict

import numpy as np
import torch
from PIL import Image

from guidance.features import extract_features
from guidance.loss import trajectory_loss
from guidance.sg_i2v import SGI2VConfig, make_step_hook, optimised_steps
from guidance.trajectory import Trajectories, latent_boxes
from model import CLIPImageEncoder, UNet, VAE, svd, tiny
from sampler.conditioning import Conditioning, generate
from tests.oracles import diffusers_unet, diffusers_vae, random_state_dict, transformers_clip

GiB = 2 ** 30


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak(device):
    return torch.cuda.max_memory_allocated() / GiB if device.type == "cuda" else 0.0


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def with_sampling(stages: dict, total: float) -> dict:
    """Stage times plus sampling = the rest of the total (the denoising U-Net calls and the Euler steps)."""
    return dict(stages, sampling=total - sum(stages.values()))


class StageClock:
    """Wall time and peak allocated memory per stage, by wrapping the callables a run goes through.
    Each wrapped call synchronises before and after, so GPU time lands in the right stage."""

    def __init__(self, device):
        self.device, self.seconds, self.peak_gib = device, defaultdict(float), defaultdict(float)

    def wrap(self, fn, stage):
        def timed(*args, **kwargs):
            sync(self.device)
            before = torch.cuda.memory_allocated() / GiB if self.device.type == "cuda" else 0.0
            self.peak_gib["sampling"] = max(self.peak_gib["sampling"], peak(self.device))   # since the last stage
            reset_peak(self.device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.seconds[stage] += time.perf_counter() - t0
            self.peak_gib[stage] = max(self.peak_gib[stage], peak(self.device), before)
            return out
        return timed


def bench_trajectory(width, height, frames):
    """Two boxes: one moved right by a quarter of the width, one pinned."""
    boxes = np.array([[0.20 * width, 0.30 * height, 0.40 * width, 0.60 * height],
                      [0.60 * width, 0.55 * height, 0.80 * width, 0.85 * height]], np.float32)
    centres = np.stack([(boxes[:, :2] + boxes[:, 2:]) / 2] * frames, axis=1)       # (2, F, 2)
    centres[0, :, 0] += np.linspace(0, 0.25 * width, frames, dtype=np.float32)
    return Trajectories(boxes, centres, (width, height), "bench")


# ----------------------------------------------------------------------------- options

def attention_kernel(name):
    if name is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel({"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name])


def set_memory_format(module, channels_last: bool):
    """2-D convolution weights in channels-last (NHWC) or the default layout (other weights are not 4-D)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)


def parse_run(text):
    name, *opts = text.split("+")
    known = {"cudnn", "flash", "efficient", "math", "channels_last", "compile", "compile_features", "offload",
             "ckpt_ff", "ckpt_transformers", "ckpt_blocks"}
    bad = [o for o in opts if o not in known]
    if name not in ("diffusers", "plain", "sgi2v", "sgi2v_bf16") or bad:
        raise SystemExit(f"--runs {text}: unknown run or option {bad or name}")
    kernel = next((o for o in opts if o in ("cudnn", "flash", "efficient", "math")), None)
    return name, kernel, set(opts)


# ----------------------------------------------------------------------------- runs

class Models:
    """Our three networks with random full-size weights; diffusers' pipeline built on the same tensors
    lazily (kept on the CPU while ours run, so each run's peak memory holds its own weights only)."""

    def __init__(self, cfg, device, dtype):
        self.cfg, self.device = cfg, device
        with torch.device(device):
            self.unet, self.vae, self.clip = UNet(cfg.unet), VAE(cfg.vae), CLIPImageEncoder(cfg.clip)
        for seed, m in enumerate((self.unet, self.vae, self.clip)):
            m.load_state_dict(random_state_dict(m, seed + 1, device))
            m.eval().requires_grad_(False).to(dtype)
        self.pipe = None

    def ours_to(self, device, dtype=None):
        for m in (self.unet, self.vae, self.clip):
            m.to(device=device, dtype=dtype)

    def diffusers_pipe(self):
        if self.pipe is None:
            from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
            from transformers import CLIPImageProcessor
            cfg = self.cfg
            with torch.device(self.device):                 # initialising 2.4e9 parameters is slow on the CPU
                ref = {"unet": diffusers_unet(cfg.unet), "vae": diffusers_vae(cfg.vae), "clip": transformers_clip(cfg.clip)}
            for name, ours in (("unet", self.unet), ("vae", self.vae), ("clip", self.clip)):
                ref[name].to(self.device)                   # (diffusers makes mix_factor off the device context)
                ref[name].load_state_dict(ours.state_dict(), strict=True)
            scheduler = EulerDiscreteScheduler(
                num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="v_prediction", interpolation_type="linear", use_karras_sigmas=True,
                sigma_min=0.002, sigma_max=700.0, timestep_spacing="leading", steps_offset=1,
                timestep_type="continuous")
            self.pipe = StableVideoDiffusionPipeline(
                vae=ref["vae"], image_encoder=ref["clip"], unet=ref["unet"], scheduler=scheduler,
                feature_extractor=CLIPImageProcessor(image_mean=list(cfg.clip.image_mean),
                                                     image_std=list(cfg.clip.image_std)))
            self.pipe.set_progress_bar_config(disable=True)
        return self.pipe


def run_diffusers(models, image, size, steps, device, dtype):
    h, w, t = size
    pipe = models.diffusers_pipe()
    models.ours_to("cpu")
    pipe.to(device, dtype)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    clock = StageClock(device)
    pipe.image_encoder.forward = clock.wrap(pipe.image_encoder.forward, "clip")
    pipe.vae.encode = clock.wrap(pipe.vae.encode, "vae_encode")
    pipe.vae.decode = clock.wrap(pipe.vae.decode, "vae_decode")

    def once(n, clock_on):
        clock.seconds.clear(), clock.peak_gib.clear()
        sync(device), reset_peak(device)
        t0 = time.perf_counter()
        frames = pipe(image, height=h, width=w, num_frames=t, num_inference_steps=n, decode_chunk_size=8,
                      generator=torch.Generator().manual_seed(0), output_type="np").frames[0]
        sync(device)
        return time.perf_counter() - t0, frames
    warm, _ = once(3, False)
    total, frames = once(steps, True)
    del pipe.image_encoder.forward, pipe.vae.encode, pipe.vae.decode
    pipe.to("cpu")
    models.ours_to(device)
    return {"total_s": total, "warmup_s": warm, "stages_s": with_sampling(clock.seconds, total),
            "stage_peak_gib": dict(clock.peak_gib),
            "peak_gib": max(clock.peak_gib.values())}, frames


def run_ours(models, image, size, steps, device, dtype, guided, opts, window=(0.1, 0.4)):
    h, w, t = size
    unet, vae, clip = models.unet, models.vae, models.clip
    models.ours_to(device, dtype)
    if "channels_last" in opts:
        set_memory_format(unet, True)
    unet.set_checkpointing(next((o[5:] for o in opts if o.startswith("ckpt_")), "none"))
    clock = StageClock(device)
    sampling_unet = torch.compile(unet) if "compile" in opts else unet
    clip.forward = clock.wrap(clip.forward, "clip")
    vae.encode = clock.wrap(vae.encode, "vae_encode")
    vae.decode = clock.wrap(vae.decode, "vae_decode")
    boxes = latent_boxes(bench_trajectory(w, h, t))

    def once(n, win):
        clock.seconds.clear(), clock.peak_gib.clear()
        def make(c, sigmas):
            hook = make_step_hook(SGI2VConfig(window=win), unet, c, boxes, len(sigmas) - 1,
                                  compile_backend="inductor" if "compile_features" in opts else None)
            return clock.wrap(hook, "optimisation")
        models.ours_to(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        sync(device), reset_peak(device)
        t0 = time.perf_counter()
        frames = generate(sampling_unet, vae, clip, image, t, h, w, n, decode_chunk_size=8, motion_bucket_id=127,
                          generator=torch.Generator().manual_seed(0), device=device, dtype=dtype,
                          make_on_step=make if guided else None, offload="offload" in opts)
        sync(device)
        return time.perf_counter() - t0, frames
    try:
        warm, _ = once(3, (0.0, 1.0))
        total, frames = once(steps, window)
    finally:
        for m, attr in ((clip, "forward"), (vae, "encode"), (vae, "decode")):
            delattr(m, attr)
        set_memory_format(unet, False)
        unet.set_checkpointing("none")
        models.ours_to(device)
    out = {"total_s": total, "warmup_s": warm, "stages_s": with_sampling(clock.seconds, total),
           "stage_peak_gib": dict(clock.peak_gib), "peak_gib": max(clock.peak_gib.values())}
    if guided:
        out["optimised_steps"] = len(optimised_steps(steps, window))
    return out, frames


# ----------------------------------------------------------------------------- FLOPs and probes

def guided_inputs(models, size, device, dtype):
    h, w, t = size
    g = torch.Generator(device).manual_seed(0)
    lat = (1, t, 4, h // 8, w // 8)
    cond = Conditioning(torch.randn(2, 1, models.cfg.unet.cross_attention_dim, generator=g, device=device, dtype=dtype),
                        torch.randn(2, *lat[1:], generator=g, device=device, dtype=dtype),
                        torch.tensor([[6.0, 127.0, 0.02]] * 2, device=device, dtype=dtype))
    x = torch.randn(lat, generator=g, device=device)
    return x, cond, torch.tensor(20.0)


def one_cfg_forward(models, x, cond, sigma):
    from sampler.conditioning import predict_v
    with torch.no_grad():
        return predict_v(models.unet, torch.cat([x, x]).to(cond.latents.dtype), sigma, cond)


def one_iteration(models, x, cond, sigma, boxes):
    z = x.float().clone().requires_grad_(True)
    with torch.enable_grad():
        feats = extract_features(models.unet, z, sigma, cond.cond(), "aligned", ((2, 1), (2, 2)))
        loss = trajectory_loss(feats, boxes)
        (grad,) = torch.autograd.grad(loss, z)
    return grad


def count_flops(models, size, device, dtype):
    from torch.utils.flop_counter import FlopCounterMode
    h, w, t = size
    x, cond, sigma = guided_inputs(models, size, device, dtype)
    boxes = latent_boxes(bench_trajectory(w, h, t))
    out = {}
    for name, fn in (("cfg_forward", lambda: one_cfg_forward(models, x, cond, sigma)),
                     ("optimisation_iteration", lambda: one_iteration(models, x, cond, sigma, boxes)),
                     ("vae_encode", lambda: models.vae.encode(torch.randn(1, 3, h, w, device=device))),
                     ("vae_decode_8", lambda: models.vae.decode(torch.randn(8, 4, h // 8, w // 8, device=device, dtype=dtype), 8)),
                     ("vae_decode_6", lambda: models.vae.decode(torch.randn(6, 4, h // 8, w // 8, device=device, dtype=dtype), 6)),
                     ("clip", lambda: models.clip(torch.randn(1, 3, 224, 224, device=device, dtype=dtype)))):
        counter = FlopCounterMode(display=False)
        vae_dtype = next(models.vae.parameters()).dtype
        if name == "vae_encode":
            models.vae.float()
        with counter, torch.no_grad() if name != "optimisation_iteration" else contextlib.nullcontext():
            fn()
        models.vae.to(vae_dtype)
        out[name] = counter.get_total_flops()
    return out


def run_flops(flops, steps, iterations, guided, frames):
    chunks = [8] * (frames // 8) + ([frames % 8] if frames % 8 else [])
    decode = sum(flops["vae_decode_8"] if c == 8 else flops["vae_decode_6"] * c / 6 for c in chunks)
    total = flops["clip"] + flops["vae_encode"] + steps * flops["cfg_forward"] + decode
    return total + (iterations * flops["optimisation_iteration"] if guided else 0)


def timeit(fn, device, repeat=3):
    fn(), sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def probe(models, size, device, dtype, results):
    """Micro-benchmarks of one guided U-Net call and one optimisation iteration, and a kernel profile."""
    h, w, t = size
    x, cond, sigma = guided_inputs(models, size, device, dtype)
    boxes = latent_boxes(bench_trajectory(w, h, t))
    table = {}
    for fmt in ("contiguous", "channels_last"):
        set_memory_format(models.unet, fmt == "channels_last")
        for kernel in (None, "cudnn", "flash", "efficient"):
            name = f"{kernel or 'auto'}/{fmt}"
            try:
                with attention_kernel(kernel):
                    table[name] = {"cfg_forward_s": timeit(lambda: one_cfg_forward(models, x, cond, sigma), device),
                                   "iteration_s": timeit(lambda: one_iteration(models, x, cond, sigma, boxes), device)}
            except RuntimeError as e:
                table[name] = {"error": str(e).splitlines()[0][:200]}
            print("probe", name, table[name], flush=True)
    set_memory_format(models.unet, False)
    results["probe"] = table
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile
        for name, fn in (("cfg_forward", lambda: one_cfg_forward(models, x, cond, sigma)),
                         ("optimisation_iteration", lambda: one_iteration(models, x, cond, sigma, boxes))):
            fn(), sync(device)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                sync(device)
            rows = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:25]
            results.setdefault("profile", {})[name] = [
                {"kernel": e.key[:120], "ms": e.device_time_total / 1e3, "calls": e.count} for e in rows]
            total = sum(e.device_time_total for e in prof.key_averages()) / 1e3
            results["profile"][name + "_total_ms"] = total
            print(f"profile {name}: {total:.1f} ms of kernels", flush=True)
            for r in results["profile"][name][:12]:
                print(f"  {r['ms']:8.2f} ms {r['calls']:5d}x {r['kernel']}", flush=True)


# ----------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="perf.json")
    p.add_argument("--runs", default="diffusers,plain,sgi2v,sgi2v_bf16")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--probe", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny config on the CPU: checks this script, proves nothing")
    args = p.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    cfg = tiny() if args.smoke else svd()
    size = (64, 128, 4) if args.smoke else (576, 1024, 14)
    steps = 6 if args.smoke else args.steps
    dtype = torch.float32 if args.smoke else torch.float16
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "size_hwt": list(size), "steps": steps, "runs": {}}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    models = Models(cfg, device, dtype)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[0] // 2, size[1] // 2, 3), dtype=np.uint8))
    results["weights_gib"] = sum(p.numel() * p.element_size() for m in (models.unet, models.vae, models.clip)
                                 for p in m.parameters()) / GiB
    flops = count_flops(models, size, device, dtype)
    results["flops"] = flops
    print("TFLOP per call:", {k: round(v / 1e12, 2) for k, v in flops.items()}, flush=True)
    if args.probe:
        probe(models, size, device, dtype, results)

    videos = {}
    iterations = len(optimised_steps(steps)) * SGI2VConfig().iterations
    for text in args.runs.split(","):
        name, kernel, opts = parse_run(text)
        run_dtype = torch.bfloat16 if name == "sgi2v_bf16" and not args.smoke else dtype
        try:
            with attention_kernel(kernel):
                if name == "diffusers":
                    r, frames = run_diffusers(models, image, size, steps, device, run_dtype)
                else:
                    r, frames = run_ours(models, image, size, steps, device, run_dtype, name != "plain", opts)
        except Exception as e:                                     # report and go on with the other runs
            results["runs"][text] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            print(text, "FAILED", results["runs"][text]["error"], flush=True)
            models.ours_to(device, dtype)
            continue
        videos[text] = np.asarray(frames)
        r["tflop"] = run_flops(flops, steps, iterations, name != "plain" and name != "diffusers", size[2]) / 1e12
        r["tflop_per_s"] = r["tflop"] / r["total_s"]
        results["runs"][text] = r
        print(text, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                                if k not in ("stages_s", "stage_peak_gib")}),
              {k: round(v, 2) for k, v in r["stages_s"].items()}, flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    for text, frames in videos.items():            # each run's video against the first of its kind
        first = next(t for t in videos if t.split("+")[0] == text.split("+")[0])
        if text != first and text in results["runs"]:
            a = videos[first] * (255 if videos[first].dtype != np.uint8 else 1)
            b = frames * (255 if frames.dtype != np.uint8 else 1)
            results["runs"][text]["max_abs_uint8_vs_" + first] = float(np.abs(a.astype(np.float64) - b).max())
    base = results["runs"].get("diffusers", {}).get("total_s")
    if "plain" in videos and "diffusers" in videos:
        d = np.abs(videos["plain"].astype(np.float64) - (videos["diffusers"] * 255).round())
        results["plain_vs_diffusers_max_abs_uint8"] = float(d.max())
    print(f"\n{'run':<28}{'total s':>9}{'x diffusers':>12}{'peak GiB':>10}{'TFLOP/s':>9}   stages (s)")
    for text, r in results["runs"].items():
        if "error" in r:
            print(f"{text:<28} error: {r['error'][:80]}")
            continue
        ratio = r["total_s"] / base if base else float("nan")
        r["ratio_to_diffusers"] = ratio
        stages = " ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items())
        diff = next((f" | video vs {k[17:]}: max {v:.0f}" for k, v in r.items() if k.startswith("max_abs_uint8_vs_")), "")
        print(f"{text:<28}{r['total_s']:9.2f}{ratio:12.2f}{r['peak_gib']:10.2f}{r['tflop_per_s']:9.0f}   {stages}{diff}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
