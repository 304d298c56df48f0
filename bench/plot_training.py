"""Loss curves of the tiny model's training, from weights/tiny/train_state/meta.json, as a PNG (PIL only).

  python -m bench.plot_training --out bench/results/tiny_training.png
"""
import argparse
import json
import math

from PIL import Image, ImageDraw

W, H, PAD = 520, 300, 44


def panel(draw, x0, title, points, colour):
    """One loss-vs-step panel (log10 loss) in the box starting at x0."""
    draw.rectangle([x0 + PAD, PAD // 2, x0 + W - 10, H - PAD], outline=(0, 0, 0))
    draw.text((x0 + PAD + 4, 4), title, fill=(0, 0, 0))
    if len(points) < 2:
        draw.text((x0 + PAD + 10, H // 2), "no data yet", fill=(120, 120, 120))
        return
    steps, losses = zip(*points)
    ly = [math.log10(v) for v in losses]
    lo, hi, smax = min(ly), max(ly), max(steps)
    to_xy = lambda s, v: (x0 + PAD + (W - 10 - PAD) * s / smax,
                          H - PAD - (H - 1.5 * PAD) * (v - lo) / max(hi - lo, 1e-6))
    draw.line([to_xy(s, v) for s, v in zip(steps, ly)], fill=colour, width=2)
    draw.text((x0 + 2, PAD // 2), f"{10 ** hi:.3g}", fill=(0, 0, 0))
    draw.text((x0 + 2, H - PAD - 10), f"{10 ** lo:.3g}", fill=(0, 0, 0))
    draw.text((x0 + W - 70, H - PAD + 6), f"{smax} steps", fill=(0, 0, 0))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--meta", default="weights/tiny/train_state/meta.json")
    p.add_argument("--out", default="tiny_training.png")
    args = p.parse_args()
    log = json.load(open(args.meta))["log"]
    img = Image.new("RGB", (2 * W, H), "white")
    draw = ImageDraw.Draw(img)
    panel(draw, 0, "VAE: weighted L1+L2 reconstruction (log scale)",
          [(e["step"], e["loss"]) for e in log if e["stage"] == "vae"], (200, 60, 40))
    panel(draw, W, "U-Net + CLIP: EDM loss (log scale)",
          [(e["step"], e["loss"]) for e in log if e["stage"] == "unet"], (40, 80, 200))
    img.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
