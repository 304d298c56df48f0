"""Full-size parity on the GPU: our SVD networks vs diffusers / transformers with the same random weights.

For each dtype (fp16, bf16), at 576x1024 with 14 frames:
  U-Net (batch 2, as with classifier-free guidance), VAE encode (1 image), VAE decode (chunk of 8
  frames), CLIP image encoder: max and mean |ours - reference|, both in that dtype, next to each one's
  error against the fp32 reference (the dtype's own rounding, for scale).
Then a whole plain generation (25 Euler steps, fp16, seed 0) through diffusers'
StableVideoDiffusionPipeline and through our generate(), compared frame by frame.
Needs diffusers + transformers (the `test` extra). Writes JSON.

  python -m bench.parity_full --out parity_full.json
"""
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image

from model import CLIPImageEncoder, UNet, VAE, svd, tiny
from sampler.conditioning import generate
from tests.oracles import diffusers_unet, diffusers_vae, random_state_dict, transformers_clip

H, W, T = 576, 1024, 14


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def stats(a, b):
    d = (a.float() - b.float()).abs()
    return {"max_abs": d.max().item(), "mean_abs": d.mean().item(), "ref_max_abs": b.float().abs().max().item()}


def build(ours_cls, ref_fn, part_cfg, seed, device):
    with torch.device(device):
        ref = ref_fn(part_cfg).eval().to(device)      # .to: diffusers makes mix_factor with torch.Tensor([..]),
        ours = ours_cls(part_cfg).eval().to(device)   # which ignores the device context
    sd = random_state_dict(ref, seed, device)
    ref.load_state_dict(sd, strict=True)
    ours.load_state_dict(sd, strict=True)
    del sd
    return ours, ref


@torch.no_grad()
def compare(name, ours, ref, run_ours, run_ref, inputs, dtypes, results):
    """inputs: fp32 tensors; each model is cast to fp32, then each dtype, and run on inputs cast alike."""
    ours.float(), ref.float()
    gold = run_ref(ref, *inputs)
    results[name] = {"fp32": stats(run_ours(ours, *inputs), gold)}
    for dtype in dtypes:
        ours.to(dtype), ref.to(dtype)
        x = [i.to(dtype) if i.is_floating_point() else i for i in inputs]
        a, b = run_ours(ours, *x), run_ref(ref, *x)
        results[name][str(dtype).split(".")[-1]] = {"ours_vs_ref": stats(a, b), "ours_vs_fp32": stats(a, gold),
                                                    "ref_vs_fp32": stats(b, gold)}
        print(name, dtype, results[name][str(dtype).split(".")[-1]]["ours_vs_ref"], flush=True)
    ours.float(), ref.float()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="parity_full.json")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--smoke", action="store_true", help="tiny config on the CPU: checks this script, proves nothing")
    args = p.parse_args()
    global H, W, T
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.smoke:
        H, W, T = 64, 128, 4
    torch.backends.cudnn.allow_tf32 = False          # a true fp32 reference
    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = tiny() if args.smoke else svd()
    dtypes = [torch.bfloat16] if args.smoke else [torch.float16, torch.bfloat16]
    results = {"device": "cpu" if args.smoke else torch.cuda.get_device_name(), "torch": torch.__version__, "size": [H, W, T]}
    g = torch.Generator(device).manual_seed(0)

    unet, ref_unet = build(UNet, diffusers_unet, cfg.unet, 1, device)
    x = torch.randn(2, T, 8, H // 8, W // 8, generator=g, device=device)
    t = torch.tensor(0.25 * np.log(20.0), device=device)
    ctx = torch.randn(2, 1, cfg.unet.cross_attention_dim, generator=g, device=device)
    ids = torch.tensor([[6.0, 127.0, 0.02]] * 2, device=device)
    compare("unet", unet, ref_unet, lambda m, *a: m(*a), lambda m, *a: m(*a).sample, (x, t, ctx, ids), dtypes, results)

    vae, ref_vae = build(VAE, diffusers_vae, cfg.vae, 2, device)
    img = torch.rand(1, 3, H, W, generator=g, device=device) * 2 - 1
    compare("vae_encode", vae, ref_vae, lambda m, a: m.encode(a), lambda m, a: m.encode(a).latent_dist.mode(),
            (img,), dtypes, results)
    z = torch.randn(8, 4, H // 8, W // 8, generator=g, device=device)
    compare("vae_decode_chunk8", vae, ref_vae, lambda m, a: m.decode(a, 8), lambda m, a: m.decode(a, num_frames=8).sample,
            (z,), dtypes, results)

    clip, ref_clip = build(CLIPImageEncoder, transformers_clip, cfg.clip, 3, device)
    pix = torch.randn(2, 3, cfg.clip.image_size, cfg.clip.image_size, generator=g, device=device)
    compare("clip", clip, ref_clip, lambda m, a: m(a), lambda m, a: m(pixel_values=a).image_embeds, (pix,), dtypes, results)

    # whole plain generation, fp16, diffusers pipeline vs ours
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", prediction_type="v_prediction",
                                       interpolation_type="linear", use_karras_sigmas=True, sigma_min=0.002,
                                       sigma_max=700.0, timestep_spacing="leading", steps_offset=1,
                                       timestep_type="continuous")
    pipe = StableVideoDiffusionPipeline(vae=ref_vae, image_encoder=ref_clip, unet=ref_unet, scheduler=scheduler,
                                        feature_extractor=CLIPImageProcessor(image_mean=list(cfg.clip.image_mean),
                                                                             image_std=list(cfg.clip.image_std)))
    gen_dtype = torch.float32 if args.smoke else torch.float16
    pipe.to(gen_dtype)
    pipe.set_progress_bar_config(disable=True)
    for m in (unet, vae, clip):
        m.to(gen_dtype)
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (H // 2, W // 2, 3), dtype=np.uint8))
    sync(device)
    t0 = time.perf_counter()
    ref_frames = pipe(pil, height=H, width=W, num_frames=T, num_inference_steps=args.steps, decode_chunk_size=8,
                      generator=torch.Generator().manual_seed(0), output_type="np").frames[0]
    sync(device)
    t_ref = time.perf_counter() - t0
    ref_frames = (ref_frames * 255).round().astype(np.uint8)
    t0 = time.perf_counter()
    with torch.no_grad():
        frames = generate(unet, vae, clip, pil, T, H, W, args.steps, decode_chunk_size=8,
                          generator=torch.Generator().manual_seed(0), device=device, dtype=gen_dtype)
    sync(device)
    t_ours = time.perf_counter() - t0
    diff = np.abs(frames.astype(np.int32) - ref_frames.astype(np.int32))
    mse = (diff.astype(np.float64) ** 2).reshape(T, -1).mean(1)
    psnr = [float(10 * np.log10(255 ** 2 / m)) if m > 0 else float("inf") for m in mse]
    results["generation_fp16"] = {"steps": args.steps, "max_abs_uint8": int(diff.max()),
                                  "mean_abs_uint8": float(diff.mean()), "psnr_per_frame_db": psnr,
                                  "frac_pixels_differing": float((diff > 0).mean()),
                                  "seconds_diffusers": t_ref, "seconds_ours": t_ours}
    print("generation", {k: v for k, v in results["generation_fp16"].items() if k != "psnr_per_frame_db"},
          "min psnr", min(psnr), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
