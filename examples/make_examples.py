"""Writes the bundled example from a held-out scene of the procedural world (seed 22, never trained on).

  python examples/make_examples.py

sprites.png           frame 0 of the scene, 128x128 (what the tiny model generates at)
sprites.json          the readable trajectory format: the disc is sent UP (on its own it drifts right),
                      the star is pinned (a box with no keyframes stays where it is)
sprites_traj.npy      the same two boxes in the reference traj.npy layout (B, 2 + F, 2)
camera.json           camera motion on the same image: two boxes on background landmarks (the 32x32 cells
                      with the most structure, clear of the sprites), both moved 12 px left, so the whole
                      scene should slide left (the camera pans right)
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.objmc_tiny import box_contrast  # noqa: E402
from model.config import tiny_world  # noqa: E402
from weights.tiny import world  # noqa: E402
from weights.tiny.train import world_config  # noqa: E402

SEED, FRAMES = 22, 8


def main():
    wcfg = world_config(tiny_world())
    scenes = world.sample_scenes(wcfg, [SEED], "cpu")
    here = Path(__file__).resolve().parent
    world.save_png(scenes.video[0, 0], str(here / "sprites.png"))
    truth = world.scene_to_trajectory_dict(scenes, 0)["boxes"]
    disc, star = truth[0]["box"], truth[1]["box"]
    cx, cy = (disc[0] + disc[2]) / 2, (disc[1] + disc[3]) / 2
    spec = {"comment": f"procedural world scene {SEED}: move the disc up by 36 px, pin the star",
            "boxes": [{"box": [round(v, 1) for v in disc], "keyframes": {"0": [round(cx, 1), round(cy, 1)],
                                                                          str(FRAMES - 1): [round(cx + 6, 1), round(cy - 36, 1)]}},
                      {"box": [round(v, 1) for v in star], "keyframes": {}}]}
    (here / "sprites.json").write_text(json.dumps(spec, indent=1) + "\n")
    # reference layout: corners, then the centre per frame (linear for the disc, constant for the star)
    rows = []
    for b in spec["boxes"]:
        x0, y0, x1, y1 = b["box"]
        c0 = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        end = np.array(b["keyframes"].get(str(FRAMES - 1), c0))
        path = [c0 + (end - c0) * t / (FRAMES - 1) for t in range(FRAMES)]
        rows.append(np.array([[x0, y0], [x1, y1], *path], dtype=np.float32))
    np.save(here / "sprites_traj.npy", np.stack(rows))
    camera = {"comment": f"procedural world scene {SEED}: camera motion, the background (and all on it) moves 12 px left",
              "boxes": [{"box": box, "keyframes": {"0": [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2],
                                                   str(FRAMES - 1): [(box[0] + box[2]) / 2 - 12, (box[1] + box[3]) / 2]}}
                        for box in background_boxes(scenes.video[0, 0], [b["box"] for b in truth], 2)]}
    (here / "camera.json").write_text(json.dumps(camera, indent=1) + "\n")
    print(f"wrote {here / 'sprites.png'}, sprites.json, sprites_traj.npy, camera.json")


def background_boxes(image, sprite_boxes, n, size=32, shift=12):
    """n cells of size x size px (8-px grid) with the highest pixel std (bench.objmc_tiny.box_contrast, as its
    camera boxes), >= 4 px clear of every sprite box, >= 8 px apart, and far enough from the left edge to
    move `shift` px left. image: (3, H, W) in [-1, 1]."""
    pixels = world.video_to_uint8(image).numpy()                                  # (H, W, 3)
    cells = []
    for y0 in range(0, image.shape[1] - size + 1, 8):
        for x0 in range(shift, image.shape[2] - size + 1, 8):
            box = [x0, y0, x0 + size, y0 + size]
            if all(box[2] + 4 <= b[0] or b[2] + 4 <= box[0] or box[3] + 4 <= b[1] or b[3] + 4 <= box[1]
                   for b in sprite_boxes):
                cells.append((box_contrast(pixels, box), box))
    chosen = []
    for _, box in sorted(cells, reverse=True):
        if all(box[2] + 8 <= c[0] or c[2] + 8 <= box[0] or box[3] + 8 <= c[1] or c[3] + 8 <= box[1] for c in chosen):
            chosen.append(box)
        if len(chosen) == n:
            break
    return chosen


if __name__ == "__main__":
    main()
