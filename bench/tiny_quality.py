"""Quality gate of the tiny model on held-out scenes, without control (issue: the tiny world, part 1).

For each held-out scene (seeds below weights.tiny.train.HELD_OUT_SEEDS, never trained on): frame 0
of the rendered scene is the input image; the model generates a video with the scene's own motion
bucket. Measured against the scene's known sprites (found by their palette colour):
  frame0_psnr     frame 0 of the video vs the input image (gate: >= 25 dB)
  vae_frame0_psnr the same through the VAE alone (encode + decode the true clip): the ceiling of the above
  found           fraction of frames where each sprite is found (gate: >= 95%)
  colour_error    mean RGB distance ([0,1] units) inside the found sprite vs its palette colour
  size_change     max over frames of |area_t / area_0 - 1| per sprite (rigid: <= 15%). The same number on the
                  rendered clip is truth_size_change: a sprite partly hidden behind another at frame 0 (or
                  leaving the frame) changes its visible area in the truth too, so sprites whose truth
                  changes by more than 15% are left out of rigid_within_15pct (counted in rigid_not_judged)
  speed           mean screen speed (px/frame) of the tracked sprites vs the scene's true speed
Prints a table, writes JSON and a frame strip (input row, generated row per scene).

  python -m bench.tiny_quality --scenes 32 --out bench/results/tiny_quality.json --strip bench/results/tiny_strip.png
"""
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from bench.outputs import refuse_existing
from sampler.conditioning import generate
from weights import load_svd
from weights.tiny import world
from weights.tiny.train import HELD_OUT_SEEDS, world_config

RIGID = 0.15             # the gate's largest size change of a rigid sprite
FIRST_SEED = 1000        # held-out: seeds below TRAIN_SEED_BASE; 0..99 are kept for examples and tests


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / mse)) if mse > 0 else float("inf")


def to_pil(frame: torch.Tensor) -> Image.Image:                   # (3, H, W) in [-1, 1]
    return Image.fromarray(world.video_to_uint8(frame).numpy())


@torch.no_grad()
def vae_round_trip(vae, video: torch.Tensor, device) -> dict:
    """The VAE alone, the ceiling of frame-0 PSNR: encode a scene's (F, 3, H, W) clip, decode it with the
    temporal decoder, and compare frame 0. Also the offset of its mean colour, in levels of 255."""
    dtype = next(vae.parameters()).dtype
    rec = vae.decode(vae.encode(video.to(device, dtype)), video.shape[0]).float().cpu().clamp(-1, 1)
    a, b = world.video_to_uint8(rec[0]).numpy(), world.video_to_uint8(video[0]).numpy()   # (H, W, 3)
    offset = np.abs(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0).astype(np.float64)).mean()
    return {"vae_frame0_psnr": psnr(a, b), "vae_colour_offset": float(offset)}


def measure_scene(frames_u8: np.ndarray, scenes, i: int) -> dict:
    """Metrics of one generated video (F, H, W, 3) uint8 against scene i's ground truth."""
    video = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 127.5 - 1        # (F, 3, H, W)
    sprites = []
    for k in range(scenes.valid.shape[1]):
        if not scenes.valid[i, k]:
            continue
        colour = scenes.colour[i, k]
        centres, found, size = world.find_sprite(video, colour)
        err = world.mean_colour_error(video, colour, centres, float(scenes.radius[i, k]))
        steps = (centres[1:] - centres[:-1]).norm(dim=-1)
        area0 = float(size[0]) if found[0] else float("nan")
        _, true_found, true_size = world.find_sprite(scenes.video[i], colour)
        true_change = (true_size[true_found] / true_size[0] - 1).abs().max() if true_found[0] else float("nan")
        sprites.append({"found": float(found.float().mean()),
                        "colour_error": float(np.nanmean(err.numpy())) if found.any() else float("nan"),
                        "size_change": float((size[found] / area0 - 1).abs().max()) if found[0] else float("nan"),
                        "truth_size_change": float(true_change),
                        "speed": float(np.nanmean(steps.numpy())) if found.sum() > 1 else float("nan"),
                        "true_speed": float(scenes.screen_velocity[i, k].norm())})
    return {"sprites": sprites}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="model folder (default: the shipped tiny model)")
    p.add_argument("--scenes", type=int, default=32)
    p.add_argument("--first-seed", type=int, default=FIRST_SEED,
                   help=f"scenes from this seed on (default {FIRST_SEED}, the gate's; pick settings on others)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model config's)")
    p.add_argument("--min-guidance", type=float, default=None, help="default: the model config's")
    p.add_argument("--max-guidance", type=float, default=None, help="default: the model config's")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="tiny_quality.json")
    p.add_argument("--strip", default=None, help="PNG with the first 4 scenes")
    args = p.parse_args()
    refuse_existing(p, out=args.out, strip=args.strip)
    if args.first_seed + args.scenes > HELD_OUT_SEEDS:
        p.error(f"--first-seed {args.first_seed} --scenes {args.scenes}: seeds must stay below {HELD_OUT_SEEDS} "
                "(held out from training)")
    svd = load_svd(args.weights, device=args.device)
    cfg = svd.cfg
    wcfg = world_config(cfg)
    seeds = list(range(args.first_seed, args.first_seed + args.scenes))
    s = cfg.sampling
    steps = args.steps or s.num_steps
    min_g = s.min_guidance if args.min_guidance is None else args.min_guidance
    max_g = s.max_guidance if args.max_guidance is None else args.max_guidance
    scenes = world.sample_scenes(wcfg, seeds, "cpu")
    rows, strip, t0 = [], [], time.time()
    for i, seed in enumerate(tqdm(seeds, desc="scenes", unit="scene")):
        frames = generate(svd.unet, svd.vae, svd.clip, to_pil(scenes.video[i, 0]), cfg.unet.num_frames, s.height,
                          s.width, steps, fps=s.fps, motion_bucket_id=int(scenes.motion_bucket[i]),
                          noise_aug_strength=s.noise_aug_strength, min_guidance=min_g,
                          max_guidance=max_g, decode_chunk_size=s.decode_chunk_size,
                          generator=torch.Generator().manual_seed(args.seed), device=args.device,
                          scaling_factor=cfg.vae.scaling_factor)
        truth = world.video_to_uint8(scenes.video[i]).numpy()                          # (F, H, W, 3)
        row = {"seed": seed, "frame0_psnr": psnr(frames[0], truth[0]), **vae_round_trip(svd.vae, scenes.video[i], args.device),
               **measure_scene(frames, scenes, i)}
        rows.append(row)
        if i < 4:
            strip.append(np.concatenate([np.concatenate(list(truth), 1), np.concatenate(list(frames), 1)], 0))
    sprites = [s for r in rows for s in r["sprites"]]
    mean = lambda key: float(np.nanmean([s[key] for s in sprites]))
    judged = [s for s in sprites if s["size_change"] == s["size_change"] and s["truth_size_change"] <= RIGID]
    summary = {
        "model": svd.source, "first_seed": args.first_seed, "steps": steps, "min_guidance": min_g,
        "max_guidance": max_g, "scenes": len(rows), "sprites": len(sprites), "seconds": time.time() - t0,
        "frame0_psnr_mean": float(np.mean([r["frame0_psnr"] for r in rows])),
        "frame0_psnr_min": float(np.min([r["frame0_psnr"] for r in rows])),
        "vae_frame0_psnr_mean": float(np.mean([r["vae_frame0_psnr"] for r in rows])),
        "vae_colour_offset_mean": float(np.mean([r["vae_colour_offset"] for r in rows])),
        "found_mean": mean("found"),
        "sprites_found_in_95pct_of_frames": float(np.mean([s["found"] >= 0.95 for s in sprites])),
        "colour_error_mean": mean("colour_error"),
        "rigid_within_15pct": float(np.mean([s["size_change"] <= RIGID for s in judged])),
        "rigid_not_judged": len(sprites) - len(judged),
        "speed_mean": mean("speed"), "true_speed_mean": mean("true_speed"),
        "speed_corr": float(np.corrcoef([s["speed"] for s in sprites if s["speed"] == s["speed"]],
                                        [s["true_speed"] for s in sprites if s["speed"] == s["speed"]])[0, 1]),
    }
    for k, v in summary.items():
        print(f"{k:36s} {v}")
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "scenes": rows}, f, indent=1)
    if args.strip and strip:
        Image.fromarray(np.concatenate(strip, 0)).save(args.strip)


if __name__ == "__main__":
    main()
