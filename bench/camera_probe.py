"""Where does SG-I2V move the content of a camera box? A diagnostic of bench/objmc_tiny.py's camera tasks.

    python -m bench.camera_probe --scenes 128 --first-seed 15000 --limit 12 --out probe.json

ObjMC scores camera tasks on the sprites (they should take up the wanted scene shift). This looks at the
boxes themselves: for each camera box, the frame-0 patch inside it is searched for in the last frame
(integer offsets within +-SEARCH px, least mean squared difference), in the true clip, without control
and with the tiny defaults (--variants: any of bench.objmc_tiny's). Reported per variant, over the boxes of the first --limit camera tasks:
  along    the found displacement projected on the wanted one (px; wanted: --camera-speed * (F - 1), 14 by default);
  error    distance between the found and the wanted displacement (px);
  sprites  the mean displacement of the scored sprites projected on the wanted one (px).
If control moved the boxed background but not the sprites, `along` rises with control and `sprites` does not.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from tqdm import tqdm

from bench.objmc_tiny import CAMERA_SCENES, CAMERA_SPEED, build_tasks, parse_variant, run_task, track
from bench.outputs import refuse_existing
from weights import load_svd
from weights.tiny.train import world_config

SEARCH = 20


def patch_shift(first: np.ndarray, last: np.ndarray, box) -> np.ndarray:
    """(dx, dy): the integer offset within +-SEARCH px at which frame `first`'s patch in box best matches `last`."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    patch = first[y0:y1, x0:x1].astype(np.float64)
    H, W = last.shape[:2]
    best, best_err = np.zeros(2), np.inf
    for dy in range(-SEARCH, SEARCH + 1):
        for dx in range(-SEARCH, SEARCH + 1):
            if y0 + dy < 0 or x0 + dx < 0 or y1 + dy > H or x1 + dx > W:
                continue
            err = ((last[y0 + dy:y1 + dy, x0 + dx:x1 + dx].astype(np.float64) - patch) ** 2).mean()
            if err < best_err:
                best, best_err = np.array([dx, dy], float), err
    return best


def probe(svd, task, cfg) -> dict:
    frames = task.truth if cfg == "truth" else run_task(svd, task, cfg)[0]
    wanted = np.array(task.shift) * (len(frames) - 1)
    unit = wanted / np.linalg.norm(wanted)
    boxes = [patch_shift(frames[0], frames[-1], b) for b in task.traj.boxes]
    sprites = []
    for s in task.sprites:
        _, centres, found = track(frames, s)
        if bool(found[0]) and bool(found[-1]):
            sprites.append(float((centres[-1] - centres[0]).numpy() @ unit))
    return {"along": [float(b @ unit) for b in boxes], "error": [float(np.linalg.norm(b - wanted)) for b in boxes],
            "sprites": sprites}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="model folder (default: the shipped tiny model)")
    p.add_argument("--scenes", type=int, default=32, help="task set size, as bench.objmc_tiny --scenes")
    p.add_argument("--first-seed", type=int, default=3000)
    p.add_argument("--limit", type=int, default=8, help="probe the first LIMIT camera tasks of the set")
    p.add_argument("--variants", default="none,tiny", help="bench.objmc_tiny variants to probe (the true clip is always)")
    p.add_argument("--camera-boxes", type=int, default=None,
                   help="boxes asked for per camera task (default: 1, 2, 3 cycled, as bench.objmc_tiny)")
    p.add_argument("--camera-speed", type=float, default=CAMERA_SPEED,
                   help=f"px/frame of the wanted scene shift (default {CAMERA_SPEED})")
    p.add_argument("--camera-scene", choices=CAMERA_SCENES, default="still",
                   help="the camera scenes' sprites: still in the world (default), or moving as drawn (as bench.objmc_tiny)")
    p.add_argument("--motion-bucket", default="scene", help="scene (default), target, or a number (as bench.objmc_tiny)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON file (refused if it exists)")
    args = p.parse_args(argv)
    refuse_existing(p, out=args.out)
    if args.limit < 1:
        p.error(f"--limit {args.limit}: expected at least 1")
    if args.camera_boxes is not None and args.camera_boxes < 1:
        p.error(f"--camera-boxes {args.camera_boxes}: expected at least 1 box")
    if not args.camera_speed > 0:
        p.error(f"--camera-speed {args.camera_speed}: expected a speed > 0 px/frame")
    configs = {v: parse_variant(v) for v in args.variants.split(",") if v}   # fails early on a bad name
    if args.threads:
        torch.set_num_threads(args.threads)
    svd = load_svd(args.weights)
    wcfg = world_config(svd.cfg)
    wanted = args.camera_speed * (wcfg.frames - 1)
    tasks = [t for t in build_tasks(args.scenes, wcfg, args.first_seed, args.motion_bucket, camera_boxes=args.camera_boxes,
                                    camera_speed=args.camera_speed, camera_scene=args.camera_scene) if t.kind == "camera"]
    tasks = tasks[:args.limit]
    rows = {name: [] for name in ["truth", *configs]}
    for task in tqdm(tasks, unit="task"):
        for name in rows:
            cfg = "truth" if name == "truth" else configs[name]
            rows[name].append(dict(probe(svd, task, cfg), seed=task.seed))
    summary = {}
    for name, r in rows.items():
        summary[name] = {k: float(np.mean([v for row in r for v in row[k]])) for k in ("along", "error", "sprites")}
        print(f"{name:24s} box content along the wanted shift {summary[name]['along']:6.2f} px (wanted {wanted:g}), "
              f"error {summary[name]['error']:6.2f} px; sprites along it {summary[name]['sprites']:6.2f} px")
    if args.out:
        with open(args.out, "x") as f:
            json.dump({"command": "python -m bench.camera_probe " + " ".join(sys.argv[1:] if argv is None else argv), "summary": summary,
                       "tasks": rows}, f, indent=1)


if __name__ == "__main__":
    main()
