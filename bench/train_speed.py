"""Where the tiny model's training step spends its time, on the GPU (run on the device machine).

Times, with CUDA syncs around each region (median of repeats, after warm-up): scene drawing +
rendering, the frozen VAE encode, and a whole U-Net + CLIP training step (forward, backward,
optimiser, EMA) eager and as one captured CUDA graph, at a few batch sizes; plus the number of CUDA
kernels one eager step launches.

  python -m bench.train_speed --out speed.json
"""
import argparse
import json
import statistics
import time

import torch

from model.clip import CLIPImageEncoder
from model.config import tiny_world
from model.unet import UNet
from model.vae import VAE
from weights.tiny import world
from weights.tiny.train import SceneStream, Trainee, TrainStep, prepare_unet_batch, world_config


def timed(fn, repeats=10, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="train_speed.json")
    p.add_argument("--modes", default="eager,graph")
    p.add_argument("--batches", default="32,128")
    args = p.parse_args()
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cfg = tiny_world()
    wcfg = world_config(cfg)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}

    stream = SceneStream(wcfg, 32, 10**7, 0.3, device, workers=4)
    results["scenes_next_b32_s"] = timed(stream.next)
    scenes = world.draw_scenes(wcfg, list(range(32)))
    results["render_b32_s"] = timed(lambda: world.render(scenes, wcfg, device))
    vae = VAE(cfg.vae).to(device).eval().requires_grad_(False)
    video = world.render(scenes, wcfg, device)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        results["vae_encode_b32x8_s"] = timed(lambda: vae.encode(video.flatten(0, 1)))
    print(json.dumps(results, indent=1), flush=True)

    for batch in [int(b) for b in args.batches.split(",")]:
        sc = world.draw_scenes(wcfg, list(range(batch))).to(device)
        vid = world.render(sc, wcfg, device)
        for mode in args.modes.split(","):
            torch.manual_seed(0)
            unet = Trainee("unet", UNet(cfg.unet), 1e-4, 0.999, device)
            clip = Trainee("clip", CLIPImageEncoder(cfg.clip), 1e-4, 0.999, device)
            train_step = TrainStep(unet, clip, torch.bfloat16, use_graph=mode == "graph")
            batch_data = prepare_unet_batch(vae, sc, vid, 1.0)
            results[f"prepare_b{batch}_s"] = timed(lambda: prepare_unet_batch(vae, sc, vid, 1.0))

            def step():
                train_step(batch_data)

            t = time.perf_counter()
            step()
            torch.cuda.synchronize()
            first = time.perf_counter() - t
            try:
                per = timed(step, repeats=20)
            except Exception as e:  # report and go on to the next variant
                print(f"{mode} b{batch}: failed: {e!r}", flush=True)
                continue
            results[f"unet_step_{mode}_b{batch}_s"] = per
            results[f"unet_first_step_{mode}_b{batch}_s"] = first
            print(f"{mode:16s} batch {batch:4d}: first step {first:7.2f} s, then {per * 1000:7.1f} ms/step "
                  f"= {1 / per:6.1f} steps/s", flush=True)
            if mode == "eager" and batch == 32:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    step()
                    torch.cuda.synchronize()
                kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
                results["eager_kernels_per_step"] = len(kernels)
                results["eager_gpu_busy_s"] = sum(e.device_time for e in kernels) / 1e6
                print(f"eager step: {len(kernels)} kernels, GPU busy {results['eager_gpu_busy_s'] * 1000:.1f} ms",
                      flush=True)
    stream.close()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
