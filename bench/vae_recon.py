"""How well the tiny model's VAE reconstructs the tiny world: sprites, background landmarks, the rest.

    python -m bench.vae_recon --scenes 32                        # the shipped model, 32 held-out scenes
    python -m bench.vae_recon --weights out/w/model --reference weights/tiny/sgi2v-tiny --out r.json

Scenes: seeds 1000.. (held out from training, which uses seeds >= 1,000,000), difficulty cycling
0, 0.15, 0.3, pans as often as the training of --pan-prob (default 2.5, as the pan training). Each clip
goes through the VAE (encode: the posterior mode; decode: all frames at once) and is compared with
the rendered clip:
  psnr            whole frames, dB ([-1, 1] range, peak-to-peak 2);
  psnr_sprites    on the sprite pixels (train.sprite_mask);
  psnr_landmarks  on the landmark pixels (train.landmark_mask);
  landmark_kept   least-squares slope of (reconstruction - the same clip rendered without landmarks)
                  onto the landmarks' own layer, over the landmark pixels: 1 = the landmarks come through
                  at full contrast, 0 = erased;
  latent_drift    with --reference: rms of (this encoder's latent - the reference encoder's), each
                  times its scaling factor, over the rms of the reference's: how far the latent space
                  moved (the U-Net was trained on the reference's).
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from bench.outputs import refuse_existing
from model.config import tiny_world
from weights import load_svd
from weights.tiny import world
from weights.tiny.train import landmark_mask, sprite_mask, world_config


def _psnr(err2: torch.Tensor, mask: torch.Tensor) -> float:
    mse = (err2 * mask).sum() / (mask.sum() * err2.shape[2]).clamp(min=1)
    return float(10 * torch.log10(4.0 / mse))


@torch.no_grad()
def measure(weights, scenes: int, first_seed: int, pan_prob: float, reference=None, device="cpu") -> dict:
    wcfg = dataclasses.replace(world_config(tiny_world()), p_pan=pan_prob)
    difficulty = [(0.0, 0.15, 0.3)[i % 3] for i in range(scenes)]
    sc = world.sample_scenes(wcfg, list(range(first_seed, first_seed + scenes)), device, difficulty=difficulty)
    bare = dataclasses.replace(sc, landmarks=sc.landmarks[:, :0])
    without = world.render(bare, wcfg, device)                                  # (N, F, 3, H, W)
    svd = load_svd(weights, device=device)
    n, f = sc.video.shape[:2]
    z = svd.vae.encode(sc.video.flatten(0, 1))                                  # (N*F, 4, h, w) unscaled
    rec = torch.cat([svd.vae.decode(z[i * f:(i + 1) * f], f) for i in range(n)]).unflatten(0, (n, f))
    err2 = (rec - sc.video) ** 2
    sprites = sprite_mask(sc, sc.video)
    marks = landmark_mask(sc, wcfg) * (1 - sprites)
    layer = world.landmark_layer(sc, wcfg) * marks
    kept = float(((rec - without) * layer).sum() / (layer * layer).sum().clamp(min=1e-12))
    out = {"weights": str(weights or "shipped"), "scenes": scenes, "first_seed": first_seed, "pan_prob": pan_prob,
           "psnr": _psnr(err2, torch.ones_like(sprites)), "psnr_sprites": _psnr(err2, sprites),
           "psnr_landmarks": _psnr(err2, marks), "psnr_rest": _psnr(err2, (1 - sprites) * (1 - marks)),
           "landmark_kept": kept, "landmark_pixel_fraction": float(marks.mean())}
    if reference is not None:
        ref = load_svd(reference, device=device)
        a = z * svd.vae.cfg.scaling_factor
        b = ref.vae.encode(sc.video.flatten(0, 1)) * ref.vae.cfg.scaling_factor
        out["latent_drift"] = float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())
        out["reference"] = str(reference)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="model folder (default: the shipped tiny model)")
    p.add_argument("--reference", default=None, help="model folder whose encoder the latent drift is measured against")
    p.add_argument("--scenes", type=int, default=32)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--pan-prob", type=float, default=2.5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    refuse_existing(p, out=args.out)
    if args.scenes < 1:
        p.error(f"--scenes {args.scenes}: expected at least 1")
    r = measure(args.weights, args.scenes, args.first_seed, args.pan_prob, args.reference, args.device)
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    if args.out:
        with open(args.out, "x") as fh:
            json.dump(r, fh, indent=1)


if __name__ == "__main__":
    main()
