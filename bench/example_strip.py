"""The README's picture: the bundled example through the library API, as a frame strip (PIL only).

  python -m bench.example_strip --out docs/images/sprites_strip.png

Top row: the input with its boxes and paths (examples/sprites.png + sprites.json), then the frames
generated with SG-I2V at the model's own defaults, each with the box where the trajectory wants it in
that frame. Bottom row: the same call without control (same seed). The shipped tiny model, seed 817
(run.py's default), on the CPU: the same video as `python run.py`.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from guidance import SGI2VConfig, draw_condition, draw_overlay, latent_boxes, load_trajectories, make_step_hook, rescale
from sampler import generate
from weights import load_svd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEED = 817


def generate_example(svd, image, traj, controlled: bool) -> np.ndarray:
    """(T, H, W, 3) uint8: the example at the model's defaults, with SG-I2V or without control."""
    cfg = SGI2VConfig.from_model(svd.cfg)
    hook = lambda c, sigmas: make_step_hook(cfg, svd.unet, c, latent_boxes(traj), len(sigmas) - 1)  # noqa: E731
    return generate(svd.unet, svd.vae, svd.clip, image, config=svd.cfg, make_on_step=hook if controlled else None,
                    generator=torch.Generator().manual_seed(SEED))


def label(tile: Image.Image, text: str) -> Image.Image:
    out = tile.copy()
    ImageDraw.Draw(out).text((4, 2), text, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return out


def strip(condition: Image.Image, controlled: np.ndarray, plain: np.ndarray, traj, scale: int) -> Image.Image:
    """Two rows of 1 + T tiles, each tile the video size times `scale` (nearest, so pixels stay visible)."""
    t, h, w, _ = controlled.shape
    rows = [[label(condition, "input")] + [Image.fromarray(f) for f in draw_overlay(controlled, traj)],
            [label(Image.new("RGB", (w, h), (40, 40, 40)), "no control")]
            + [Image.fromarray(f) for f in draw_overlay(plain, traj)]]
    rows[0][1] = label(rows[0][1], "SG-I2V")
    out = Image.new("RGB", ((t + 1) * w * scale, 2 * h * scale), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            out.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (c * w * scale, r * h * scale))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="PNG to write; an existing file is refused")
    p.add_argument("--scale", type=int, default=2, help="pixel repeat of each 128x128 tile (default 2)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"--out {out}: the file exists; remove it or choose another name")
    if args.scale < 1:
        p.error(f"--scale {args.scale}: expected an integer >= 1")
    svd = load_svd()
    image = Image.open(EXAMPLES / "sprites.png").convert("RGB")
    size = (svd.cfg.sampling.width, svd.cfg.sampling.height)
    traj = rescale(load_trajectories(EXAMPLES / "sprites.json", image.size, svd.cfg.unet.num_frames), size)
    controlled = generate_example(svd, image, traj, controlled=True)
    plain = generate_example(svd, image, traj, controlled=False)
    condition = draw_condition(image.resize(size, Image.LANCZOS), traj)
    out.parent.mkdir(parents=True, exist_ok=True)
    strip(condition, controlled, plain, traj, args.scale).save(out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
