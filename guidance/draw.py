"""Pictures of the trajectory input, to check what was asked for against what was generated.

draw_condition  the input image with each first-frame box and the path of its centre (a dot at the
                start, an arrow head at the end), one colour per box: what the user asked for;
draw_overlay    each generated frame with the box where that frame should have the object (the
                first-frame box translated by centre_n - centre_0, `Trajectories.boxes_per_frame`).

Coordinates are those of guidance.trajectory (pixels, x right, y down, boxes x0, y0, x1, y1); they are
rescaled to the size of the image drawn on when it differs from `trajectories.image_size`.
"""
import math

import numpy as np
from PIL import Image, ImageDraw

from .trajectory import Trajectories, rescale

COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]   # Sasha Trubetskoy's distinct colours


def colour(b: int) -> tuple:
    """The RGB colour of box b (cycles after 10 boxes)."""
    return COLOURS[b % len(COLOURS)]


def _width(size) -> int:
    return max(1, round(min(size) / 128))                             # 1 px at 128 px, 4-5 px at 576 px


def _fit(trajectories: Trajectories, size) -> Trajectories:
    return trajectories if tuple(trajectories.image_size) == tuple(size) else rescale(trajectories, size)


def _arrow_head(draw, tail, tip, fill, length):
    """A filled triangle at `tip` pointing away from `tail`."""
    dx, dy = tip[0] - tail[0], tip[1] - tail[1]
    norm = math.hypot(dx, dy)
    if norm < 1e-6:
        return
    ux, uy = dx / norm, dy / norm
    back = (tip[0] - length * ux, tip[1] - length * uy)
    side = (-uy * length * 0.5, ux * length * 0.5)
    draw.polygon([tip, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])], fill=fill)


def draw_condition(image: Image.Image, trajectories: Trajectories) -> Image.Image:
    """A copy of `image` (RGB) with every first-frame box outlined and its centre path drawn as a
    polyline from a dot (frame 0) to an arrow head (last frame); a box whose path does not move
    gets a dot only. One colour per box."""
    out = image.convert("RGB").copy()
    traj = _fit(trajectories, out.size)
    draw, width = ImageDraw.Draw(out), _width(out.size)
    for b in range(traj.num_boxes):
        fill = colour(b)
        draw.rectangle([float(v) for v in traj.boxes[b]], outline=fill, width=width)
        points = [(float(x), float(y)) for x, y in traj.centres[b]]    # (F,) centre per frame
        r = 1.5 * width + 1
        draw.ellipse([points[0][0] - r, points[0][1] - r, points[0][0] + r, points[0][1] + r], fill=fill)
        if len(points) > 1:
            draw.line(points, fill=fill, width=width, joint="curve")
            tail = next((p for p in reversed(points[:-1]) if math.dist(p, points[-1]) > 1e-3), points[-1])
            _arrow_head(draw, tail, points[-1], fill, length=4 * width + 3)
    return out


def draw_overlay(frames, trajectories: Trajectories) -> np.ndarray:
    """frames (T, H, W, 3) uint8 -> a copy with, on frame n, each box where frame n's target puts it
    (and a dot at its target centre). T must equal the trajectories' frame count."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] != trajectories.num_frames:
        raise ValueError(f"draw_overlay: {trajectories.num_frames} trajectory frames, but frames have shape "
                         f"{frames.shape} (expected ({trajectories.num_frames}, H, W, 3))")
    size = (frames.shape[2], frames.shape[1])                          # (W, H)
    traj = _fit(trajectories, size)
    boxes = traj.boxes_per_frame()                                     # (B, T, 4)
    width = _width(size)
    out = []
    for n, array in enumerate(frames):
        pil = Image.fromarray(array)
        draw = ImageDraw.Draw(pil)
        for b in range(traj.num_boxes):
            draw.rectangle([float(v) for v in boxes[b, n]], outline=colour(b), width=width)
            x, y = (float(v) for v in traj.centres[b, n])
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour(b))
        out.append(np.asarray(pil))
    return np.stack(out)
