"""Can the tiny model make camera motion? A diagnostic of the U-Net, without control.

    python -m bench.pan_probe --scenes 16 --out pan.json

SG-I2V selects motion that the video model can make; it cannot teach a model a motion it never makes.
The camera tasks of bench/objmc_tiny.py ask for a camera pan. This measures, on held-out scenes that
all pan (the world's p_pan forced up; seeds from --first-seed, default 1200, below the training seeds),
the background's displacement from frame 0 to the last frame: the median over the 3 most structured
32x32 cells (bench.objmc_tiny's cell contrast) that no sprite comes near in any frame and that keep 12 px
from the edges, found by bench.camera_probe.patch_shift. Reported:
  read at sigma s  the true clip's latents noised to sigma s (one fixed noise draw), denoised by ONE
                   conditional U-Net call, decoded: the displacement found there, as a fraction of the
                   true one projected on it (1 = the model reads the pan from the noisy clip, 0 = it
                   returns the still first frame). A model that never reads a pan at the noise levels
                   where sampling decides global motion does not generate pans.
  generated        full samples (--samples seeds, the model's sampling settings, no control): the fraction
                   of videos whose background moves >= 2 px, and the mean |displacement| against the
                   true mean |pan| (the direction of a pan cannot be told from one image, so only its
                   size is compared).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from bench.camera_probe import patch_shift
from bench.objmc_tiny import CAMERA_BOX, _box_circle_gap, _cell_contrast
from bench.outputs import refuse_existing
from sampler.conditioning import (Conditioning, added_time_ids, decode_latents, encode_image_embedding,
                                  encode_image_latents, generate, predict_v, randn, to_uint8)
from sampler.euler import v_to_x0
from weights import load_svd
from weights.tiny import world
from weights.tiny.train import world_config

SIGMAS = (100.0, 40.0, 20.0, 10.0, 5.0, 2.0)
MOVES = 2.0          # px: a generated background that moves at least this far counts as a pan
MARGIN = 12          # px: cells keep this far from the frame's edges, so a pan of up to 12 px stays in view


def background_cells(scenes, truth: np.ndarray, n=3) -> list:
    """Up to n CAMERA_BOX boxes (x0, y0, x1, y1) on frame 0 with the most structure, >= 6 px from every sprite in
    every frame and >= MARGIN px from the frame's edges."""
    F_, H, W = truth.shape[:3]
    centres, extent, valid = scenes.centres[0].double().numpy(), scenes.extent[0].double().numpy(), scenes.valid[0].numpy()
    contrast = _cell_contrast(truth[0], W, H)

    def clear(x, y):
        box = (x, y, x + CAMERA_BOX, y + CAMERA_BOX)
        if min(x, y) < MARGIN or box[2] > W - MARGIN or box[3] > H - MARGIN:
            return False
        return all(_box_circle_gap(box, centres[k, f]) > extent[k] + 6 for k in range(len(valid)) if valid[k]
                   for f in range(F_))
    cells = sorted((c for c in contrast if clear(*c)), key=lambda c: -contrast[c])[:n]
    return [(x, y, x + CAMERA_BOX, y + CAMERA_BOX) for x, y in cells]


def background_shift(frames: np.ndarray, boxes) -> np.ndarray:
    """(dx, dy) px: median over boxes of where frame 0's patch is in the last frame."""
    return np.median([patch_shift(frames[0], frames[-1], b) for b in boxes], axis=0)


@torch.no_grad()
def read_at_sigmas(svd, scenes, boxes, sigmas, device, seed=0) -> list:
    """The background shift in one conditional denoising of the true clip noised to each sigma."""
    s, sf, dtype = svd.cfg.sampling, svd.cfg.vae.scaling_factor, svd.dtype
    video = scenes.video[0].to(device, dtype)                                    # (F, 3, H, W)
    g = torch.Generator().manual_seed(seed)
    x0 = (svd.vae.encode(video) * sf)[None]                                      # (1, F, 4, h, w)
    image = video[:1] + s.noise_aug_strength * randn(video[:1].shape, g, device, dtype)
    c = Conditioning(encode_image_embedding(svd.clip, video[:1].float().cpu()).to(device, dtype),
                     encode_image_latents(svd.vae, image)[:, None].repeat(1, x0.shape[1], 1, 1, 1).to(dtype),
                     added_time_ids(s.fps, int(scenes.motion_bucket[0]), s.noise_aug_strength, 1, dtype).to(device))
    noise = randn(x0.shape, g, device, dtype)
    shifts = []
    for sigma in sigmas:
        sig = torch.tensor(float(sigma))
        x = x0 + sigma * noise
        denoised = v_to_x0(predict_v(svd.unet, x, sig, c), x, sig)
        shifts.append(background_shift(to_uint8(decode_latents(svd.vae, denoised, s.decode_chunk_size, sf)[0]), boxes))
    return shifts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="model folder (default: the shipped tiny model)")
    p.add_argument("--scenes", type=int, default=16, help="panning scenes (default 16)")
    p.add_argument("--first-seed", type=int, default=1200)
    p.add_argument("--samples", type=int, default=2, help="sampling seeds per scene for 'generated' (0: skip)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON file (refused if it exists)")
    args = p.parse_args(argv)
    refuse_existing(p, out=args.out)
    if args.scenes < 1 or args.samples < 0:
        p.error(f"--scenes {args.scenes} --samples {args.samples}: expected >= 1 scenes and >= 0 samples")
    if args.threads:
        torch.set_num_threads(args.threads)
    svd = load_svd(args.weights, device=args.device)
    wcfg = dataclasses.replace(world_config(svd.cfg), p_pan=1e6)               # every scene of difficulty > 0 pans
    s = svd.cfg.sampling
    rows = []
    for seed in tqdm(range(args.first_seed, args.first_seed + args.scenes), unit="scene"):
        scenes = world.sample_scenes(wcfg, [seed], "cpu", difficulty=0.3)
        truth = world.video_to_uint8(scenes.video[0]).numpy()                    # (F, H, W, 3)
        boxes = background_cells(scenes, truth)
        if not boxes:
            continue
        true = background_shift(truth, boxes)
        if np.linalg.norm(true) < MOVES:
            continue                                                             # too slow to see
        unit = true / np.linalg.norm(true)
        read = read_at_sigmas(svd, scenes, boxes, SIGMAS, args.device)
        generated = []
        for g in range(args.samples):
            frames = generate(svd.unet, svd.vae, svd.clip, Image.fromarray(truth[0]), svd.cfg.unet.num_frames,
                              s.height, s.width, s.num_steps, fps=s.fps, motion_bucket_id=int(scenes.motion_bucket[0]),
                              noise_aug_strength=s.noise_aug_strength, min_guidance=s.min_guidance,
                              max_guidance=s.max_guidance, decode_chunk_size=s.decode_chunk_size,
                              generator=torch.Generator().manual_seed(g), dtype=svd.dtype, device=args.device,
                              scaling_factor=svd.cfg.vae.scaling_factor)
            generated.append(background_shift(frames, boxes).tolist())
        rows.append({"seed": seed, "true": true.tolist(), "read": [r.tolist() for r in read],
                     "read_fraction": [float(r @ unit / np.linalg.norm(true)) for r in read], "generated": generated})
    summary = {"scenes": len(rows),
               "read_fraction": {str(sg): float(np.mean([r["read_fraction"][j] for r in rows])) for j, sg in enumerate(SIGMAS)},
               "true_size": float(np.mean([np.linalg.norm(r["true"]) for r in rows]))}
    if args.samples:
        sizes = [float(np.linalg.norm(g)) for r in rows for g in r["generated"]]
        summary.update(generated_pans=float(np.mean([v >= MOVES for v in sizes])), generated_size=float(np.mean(sizes)))
    print(f"{summary['scenes']} panning scenes, true |pan| {summary['true_size']:.1f} px over the clip")
    print("pan read from the noisy true clip, fraction: " +
          ", ".join(f"sigma {k} {v:.2f}" for k, v in summary["read_fraction"].items()))
    if args.samples:
        print(f"generated: {summary['generated_pans']:.0%} of videos pan (>= {MOVES:g} px), "
              f"mean |shift| {summary['generated_size']:.1f} px")
    if args.out:
        with open(args.out, "x") as f:
            json.dump({"command": "python -m bench.pan_probe " + " ".join(sys.argv[1:] if argv is None else argv),
                       "summary": summary, "scenes": rows}, f, indent=1)


if __name__ == "__main__":
    main()
