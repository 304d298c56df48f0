"""Procedural video world used to train and evaluate the tiny SVD-architecture model.

A scene is a smooth, muted background (a few low-frequency sinusoids plus a scatter of small grey
landmarks, all panning together at a constant camera velocity, or still) with 1..K coloured sprites
moving at constant velocities.  Everything about a scene is decided by one integer seed, so scene
``k`` is identical whatever batch it is rendered in and whichever device renders it:

* ``draw_scenes(cfg, seeds)`` draws the scene *parameters* on the CPU: for every scene a
  ``torch.Generator`` seeded with the scene seed draws a fixed-length vector of uniforms
  (its length depends on the config only), and every parameter is a vectorised function of that
  vector.  The result carries all the ground truth.
* ``render(scenes, cfg, device)`` renders the video on ``device``, fully batched (the background
  is a batched matmul of separable sinusoids; each sprite layer is rendered in a small window
  around it and pasted with one index_put).
* ``sample_scenes(cfg, seeds, device)`` does both.

Coordinates: continuous pixel coordinates, x to the right, y down; pixel (row i, column j) covers
[j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5).  Boxes are (x0, y0, x1, y1) in the same
coordinates.  Videos are float32 (N, F, 3, H, W) in [-1, 1]; colours are RGB in [0, 1].

The tracker ``find_sprite`` finds a sprite by its (known, palette) colour, for evaluation of
generated videos; ``scene_to_trajectory_dict`` / ``write_example`` export a scene as an example
(frame-0 PNG + trajectory JSON).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

__all__ = [
    "PALETTE",
    "PALETTE_NAMES",
    "SHAPE_NAMES",
    "WorldConfig",
    "Scenes",
    "draw_scenes",
    "render",
    "sample_scenes",
    "speed_to_motion_bucket",
    "motion_bucket_to_speed",
    "landmark_layer",
    "find_sprite",
    "mean_colour_error",
    "scene_to_trajectory_dict",
    "write_example",
    "video_to_uint8",
    "save_png",
    "save_strip",
]

# --------------------------------------------------------------------------------------------
# Fixed vocabularies
# --------------------------------------------------------------------------------------------

# Saturated sprite colours, RGB in [0, 1].  Pairwise distances >= 0.6, distance to any muted
# (low-saturation, mid-grey) background colour >= ~0.6, so a tracker with a ~0.3 threshold
# can find a sprite by colour.
PALETTE = torch.tensor(
    [
        [0.93, 0.12, 0.12],  # red
        [0.08, 0.82, 0.12],  # green
        [0.12, 0.25, 0.95],  # blue
        [0.98, 0.86, 0.10],  # yellow
        [0.90, 0.12, 0.86],  # magenta
        [0.08, 0.86, 0.90],  # cyan
    ],
    dtype=torch.float32,
)
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")

SHAPE_NAMES = ("disc", "square", "triangle", "diamond", "star")
DISC, SQUARE, TRIANGLE, DIAMOND, STAR = range(5)
TEXTURE_NAMES = ("stripes", "rim", "rings")


def _regular_polygon(n: int, circumradius: float, start_deg: float) -> list[tuple[float, float]]:
    """Vertices (x, y) of a regular polygon in y-down coordinates, clockwise on screen."""
    out = []
    for i in range(n):
        a = math.radians(start_deg + 360.0 * i / n)
        out.append((circumradius * math.cos(a), circumradius * math.sin(a)))
    return out


# Each shape, for a sprite of "radius" r, is drawn in local coordinates scaled by r.  Polygons are
# given by their vertices (unit radius); the star is the union of two triangles (a hexagram).
# The sizes are chosen so that all shapes of one radius have a similar visual weight.  All
# shapes are centrally symmetric or equilateral, so the pixel centroid equals the centre.
_SHAPE_POLYS: dict[int, list[list[tuple[float, float]]]] = {
    SQUARE: [[(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]],
    TRIANGLE: [_regular_polygon(3, 1.3, -90.0)],  # apex up
    DIAMOND: [[(0.0, -1.15), (1.15, 0.0), (0.0, 1.15), (-1.15, 0.0)]],
    STAR: [_regular_polygon(3, 1.3, -90.0), _regular_polygon(3, 1.3, 90.0)],
}


def _shape_tables():
    """Half-plane tables: normals (S, 2 polys, 4 planes, 2), offsets (S, 2, 4) for unit radius;
    box (S, 4) as (x0, y0, x1, y1) for unit radius; extent (S,) = max vertex norm."""
    S = len(SHAPE_NAMES)
    normals = torch.zeros(S, 2, 4, 2)
    offsets = torch.zeros(S, 2, 4)
    boxes = torch.tensor([[-1.0, -1.0, 1.0, 1.0]]).repeat(S, 1)
    extent = torch.ones(S)
    for s, polys in _SHAPE_POLYS.items():
        if len(polys) == 1:
            polys = polys * 2
        allv = []
        for p, verts in enumerate(polys):
            planes = []
            n = len(verts)
            # signed area to know the orientation (outward normal direction)
            area = sum(verts[i][0] * verts[(i + 1) % n][1] - verts[(i + 1) % n][0] * verts[i][1] for i in range(n))
            sgn = 1.0 if area > 0 else -1.0
            for i in range(n):
                (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % n]
                ex, ey = x1 - x0, y1 - y0
                ln = math.hypot(ex, ey)
                nx, ny = sgn * ey / ln, -sgn * ex / ln  # outward normal
                planes.append((nx, ny, nx * x0 + ny * y0))
            while len(planes) < 4:
                planes.append(planes[-1])
            for i, (nx, ny, d) in enumerate(planes):
                normals[s, p, i, 0] = nx
                normals[s, p, i, 1] = ny
                offsets[s, p, i] = d
            allv += verts
        xs = [v[0] for v in allv]
        ys = [v[1] for v in allv]
        boxes[s] = torch.tensor([min(xs), min(ys), max(xs), max(ys)])
        extent[s] = max(math.hypot(*v) for v in allv)
    return normals, offsets, boxes, extent


_PLANE_N, _PLANE_D, _SHAPE_BOX, _SHAPE_EXTENT = _shape_tables()


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class WorldConfig:
    # Frame height / width in pixels (multiples of 64 for the model; 256 -> latent 32x32).
    height: int = 256
    width: int = 256
    # Frames per clip.
    frames: int = 8
    # Maximum number of sprites K (the ground truth is padded to K; see Scenes.valid).
    max_sprites: int = 4
    # Curriculum knob in [0, 1]: 0 = 1-2 large sprites, flat-ish background, no pan;
    # 1 = up to max_sprites smaller sprites, textured background, pans with prob. p_pan.
    difficulty: float = 0.0
    # Probability that a sprite does not move by itself (it still follows the pan).
    p_static: float = 0.2
    # Probability of a camera pan at difficulty 1 (scaled linearly by difficulty).
    p_pan: float = 0.5
    # Own sprite speed range, as a fraction of min(height, width) per frame
    # (256 px: 2.0 .. 7.7 px/frame).
    speed_range: tuple[float, float] = (0.008, 0.03)
    # Camera pan speed range, fraction of min(height, width) per frame (256 px: 1.0 .. 3.6 px).
    pan_speed_range: tuple[float, float] = (0.004, 0.014)
    # Sprite radius range at difficulty 0 and at difficulty 1, fraction of min(height, width)
    # (interpolated linearly; 256 px: 28..41 px easy, 15..28 px hard).
    radius_range_easy: tuple[float, float] = (0.11, 0.16)
    radius_range_hard: tuple[float, float] = (0.06, 0.11)
    # Fraction of a sprite's extent that may leave the frame at difficulty 1 (0 at difficulty 0).
    max_overhang: float = 0.35
    # Background: mean grey level range and amplitude (sum of sinusoid amplitudes) at
    # difficulty 0 / 1, in [0, 1] RGB units; max spatial frequency (cycles per image) at 0 / 1.
    bg_level_range: tuple[float, float] = (0.38, 0.58)
    bg_contrast: tuple[float, float] = (0.06, 0.17)
    bg_max_freq: tuple[float, float] = (1.2, 4.0)
    # Background colourfulness (0 = grey) at difficulty 0 / 1; keep small so that the
    # background stays far from the palette.
    bg_saturation: tuple[float, float] = (0.04, 0.07)
    # Number of sinusoid components of the background.
    bg_components: int = 5
    # Background landmarks: small, low-saturation light or dark marks (soft blocks and spots) fixed to
    # the background, so they move only with the camera pan. They give background regions something
    # recognisable (the sinusoids alone are nearly flat at the scale of a box), which camera control,
    # with boxes on the background, needs. Count per scene (min, max; (0, 0) = none: the world before
    # landmarks), half-size as a fraction of min(H, W) (128 px: 2.6..7 px), and luminance offset from
    # the background in [0, 1] units (random sign). Drawn from a generator of their own, so every other
    # scene parameter is the same with or without them.
    landmarks: tuple[int, int] = (8, 16)
    landmark_size: tuple[float, float] = (0.02, 0.055)
    landmark_contrast: tuple[float, float] = (0.15, 0.3)
    # Anti-aliasing: width in pixels of the smooth step on the signed distance.
    edge_softness: float = 1.25
    # Strength of a sprite's internal texture: max RGB distance of a texture pixel from the
    # sprite's palette colour ([0, 1] units; keep well below the tracker threshold).
    texture_strength: float = 0.22
    # Number of candidate start positions tried per sprite (the one farthest from the
    # already placed sprites over the clip is kept).
    position_candidates: int = 8
    # Motion-bucket scale: speed (fraction of min(H, W) per frame) that maps to bucket 255.
    bucket_full_scale: float = 0.05

    @property
    def size(self) -> int:
        return min(self.height, self.width)


def _lerp(a, b, t):
    return a + (b - a) * t


# --------------------------------------------------------------------------------------------
# Scenes (parameters + ground truth + optional video)
# --------------------------------------------------------------------------------------------


@dataclass
class Scenes:
    """A batch of N scenes with up to K sprites each.  All sprite tensors are padded to K;
    ``valid`` says which sprites exist.  Sprite order is the order of the draw (sprite j of a
    scene is the same whatever the batch); ``depth`` is the occlusion order."""

    seeds: torch.Tensor  # (N,) long
    difficulty: torch.Tensor  # (N,) float
    video: torch.Tensor | None  # (N, F, 3, H, W) float32 in [-1, 1]; None until rendered
    # --- sprites ---
    valid: torch.Tensor  # (N, K) bool: the sprite exists (visibility mask for padded sprites)
    centres: torch.Tensor  # (N, K, F, 2) centre (x, y) in pixels per frame (screen coordinates)
    box0: torch.Tensor  # (N, K, 4) (x0, y0, x1, y1) bounding box of the shape at frame 0
    colour: torch.Tensor  # (N, K, 3) palette colour, RGB in [0, 1]
    colour_id: torch.Tensor  # (N, K) long, index into PALETTE (distinct within a scene)
    shape: torch.Tensor  # (N, K) long, index into SHAPE_NAMES
    radius: torch.Tensor  # (N, K) float, pixels (the shape's size unit, see _SHAPE_POLYS)
    extent: torch.Tensor  # (N, K) float, pixels: radius of the circle enclosing the shape
    velocity: torch.Tensor  # (N, K, 2) own velocity, px/frame
    screen_velocity: torch.Tensor  # (N, K, 2) velocity on screen = own + pan, px/frame
    static: torch.Tensor  # (N, K) bool: no own motion
    depth: torch.Tensor  # (N, K) long: drawing rank, 0 = backmost; invalid sprites get >= n
    clear: torch.Tensor  # (N, K, F) bool: fully inside the frame and no other sprite's
    #                      enclosing circle overlaps it (so it is fully visible, unoccluded)
    # --- camera / statistics ---
    pan: torch.Tensor  # (N, 2) camera pan velocity in px/frame (background moves by it)
    speed: torch.Tensor  # (N,) mean screen speed |own + pan| over valid sprites, px/frame
    motion_bucket: torch.Tensor  # (N,) long in 0..255, speed_to_motion_bucket(speed)
    # --- render-only parameters ---
    texture: torch.Tensor  # (N, K) long, index into TEXTURE_NAMES
    texture_params: torch.Tensor  # (N, K, 3): stripe angle, period (px), phase
    bg_level: torch.Tensor  # (N, 3) background mean colour in [0, 1]
    bg_waves: torch.Tensor  # (N, M, 6): kx, ky (rad/px), phase, colour weights r, g, b
    landmarks: torch.Tensor  # (N, L, 8): x, y at frame 0 (px), half-width, half-height (px), kind
    #                          (0 block, 1 spot), colour offset r, g, b ([0, 1] units; 0 = no landmark)

    @property
    def n(self) -> int:
        return int(self.seeds.shape[0])

    @property
    def n_sprites(self) -> torch.Tensor:
        return self.valid.sum(1)

    def to(self, device) -> "Scenes":
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.to(device) if isinstance(v, torch.Tensor) else v
        return Scenes(**kw)

    def index(self, idx) -> "Scenes":
        """Sub-batch (idx: int, slice, list or tensor of scene indices)."""
        if isinstance(idx, int):
            idx = [idx]
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v[idx] if isinstance(v, torch.Tensor) else v
        return Scenes(**kw)


class _Uniforms:
    """Hands out consecutive columns of a per-scene table of uniforms."""

    def __init__(self, table: torch.Tensor):
        self.table = table
        self.pos = 0

    def take(self, *shape: int) -> torch.Tensor:
        k = math.prod(shape)
        out = self.table[:, self.pos : self.pos + k]
        self.pos += k
        if self.pos > self.table.shape[1]:
            raise RuntimeError("uniform table too small")
        return out.reshape(self.table.shape[0], *shape)


def _table_size(cfg: WorldConfig) -> int:
    K, M, C = cfg.max_sprites, cfg.bg_components, cfg.position_candidates
    return 8 + len(PALETTE) + M * 8 + K * (12 + 2 * C) + 16


def _uniform_table(seeds: torch.Tensor, size: int) -> torch.Tensor:
    rows = []
    for s in seeds.tolist():
        g = torch.Generator(device="cpu")
        g.manual_seed(int(s) & 0xFFFF_FFFF_FFFF_FFFF)
        rows.append(torch.rand(size, generator=g, dtype=torch.float64))
    return torch.stack(rows) if rows else torch.zeros(0, size, dtype=torch.float64)


LANDMARK_SEED_MIX = 0x9E3779B97F4A7C15   # landmark generator seed = scene seed XOR this (own stream)


def _draw_landmarks(cfg: WorldConfig, seeds: torch.Tensor, pan: torch.Tensor, bg_sat: torch.Tensor) -> torch.Tensor:
    """(N, L, 8) landmarks, L = cfg.landmarks[1]; rows past a scene's count have zero colour.
    Positions are frame-0 screen coordinates, spread over every place that is on screen in some frame
    (the frame grown against the pan), so marks that pan into view exist too."""
    lo, hi = cfg.landmarks
    N, L, S = seeds.shape[0], hi, float(cfg.size)
    if L == 0:
        return torch.zeros(N, 0, 8)
    mixed = torch.tensor([(int(v) ^ LANDMARK_SEED_MIX) & 0x7FFF_FFFF_FFFF_FFFF for v in seeds.tolist()])
    u = _uniform_table(mixed, 1 + L * 10)
    count = lo + (u[:, 0] * (hi - lo + 1)).floor().clamp(max=hi - lo)  # (N,)
    ul = u[:, 1:].reshape(N, L, 10)
    hw = _lerp(cfg.landmark_size[0], cfg.landmark_size[1], ul[..., 0]) * S  # (N, L) half-width, px
    spot = ul[..., 1] < 0.35  # 35% round spots, 65% blocks of aspect 0.5..2
    hh = torch.where(spot, hw, (hw * _lerp(0.5, 2.0, ul[..., 2])).clamp(max=cfg.landmark_size[1] * S))
    disp = -pan * (cfg.frames - 1)  # (N, 2): where frame 0's content is at the last frame, relative
    low = disp.clamp(max=0)[:, None, :] - torch.stack([hw, hh], -1)  # (N, L, 2)
    high = (torch.tensor([cfg.width, cfg.height], dtype=torch.float64) + disp.clamp(min=0))[:, None, :] \
        + torch.stack([hw, hh], -1)
    pos = low + ul[..., 3:5] * (high - low)  # (N, L, 2)
    sign = torch.where(ul[..., 5] < 0.5, -1.0, 1.0)
    amp = sign * _lerp(cfg.landmark_contrast[0], cfg.landmark_contrast[1], ul[..., 6])  # (N, L)
    tint = 1.0 + 2.0 * bg_sat[:, None, None] * (ul[..., 7:10] - 0.5) * 2.0  # mostly luminance
    present = (torch.arange(L)[None, :] < count[:, None]).double()
    colour = amp[..., None] * tint * present[..., None]  # (N, L, 3)
    return torch.cat([pos, hw[..., None], hh[..., None], spot.double()[..., None], colour], -1).float()


def speed_to_motion_bucket(speed, cfg: WorldConfig | None = None) -> torch.Tensor:
    """Mean screen speed (px/frame) -> motion bucket id in 0..255 (long tensor).
    Linear: bucket 255 <=> speed = cfg.bucket_full_scale * min(H, W) px/frame
    (defaults: 12.8 px/frame at 256 px; a typical 4-5 px/frame scene is ~80-100)."""
    cfg = cfg or WorldConfig()
    speed = torch.as_tensor(speed, dtype=torch.float32)
    full = cfg.bucket_full_scale * cfg.size
    return (speed / full * 255.0).round().clamp(0, 255).long()


def motion_bucket_to_speed(bucket, cfg: WorldConfig | None = None) -> torch.Tensor:
    """Inverse of speed_to_motion_bucket: bucket id -> mean screen speed in px/frame."""
    cfg = cfg or WorldConfig()
    b = torch.as_tensor(bucket, dtype=torch.float32)
    return b / 255.0 * cfg.bucket_full_scale * cfg.size


def draw_scenes(cfg: WorldConfig, seeds, difficulty=None) -> Scenes:
    """Draw the parameters and ground truth of one scene per seed, on the CPU (video=None).

    ``difficulty``: None (use cfg.difficulty), a float, or a per-scene sequence/tensor (N,).
    Scene parameters depend only on (seed, difficulty, cfg), never on the batch."""
    seeds = torch.as_tensor(seeds, dtype=torch.long).reshape(-1).cpu()
    N, K, Fr, M = seeds.shape[0], cfg.max_sprites, cfg.frames, cfg.bg_components
    H, W, S = cfg.height, cfg.width, float(cfg.size)
    if difficulty is None:
        difficulty = cfg.difficulty
    d = torch.as_tensor(difficulty, dtype=torch.float64).reshape(-1).expand(N).clamp(0, 1).clone()
    U = _Uniforms(_uniform_table(seeds, _table_size(cfg)))
    dd = d[:, None]  # (N, 1)

    # ---------------- scene-level draws ----------------
    u_count = U.take(1)[:, 0]
    u_pan = U.take(3)
    u_level = U.take(1)[:, 0]
    u_tint = U.take(3)
    u_pal = U.take(len(PALETTE))
    u_waves = U.take(M, 8)
    # ---------------- per-sprite draws ----------------
    u_spr = U.take(K, 12)
    u_pos = U.take(K, cfg.position_candidates, 2)

    # number of sprites: d=0 -> 1..2, d=1 -> 2..K (K=4)
    n_hi = (2.0 + d * (K - 2)).round().clamp(1, K)
    n_lo = torch.minimum((1.0 + d).round(), n_hi)
    n_spr = (n_lo + (u_count * (n_hi - n_lo + 1)).floor()).clamp(max=n_hi).long()
    ar = torch.arange(K)
    valid = ar[None, :] < n_spr[:, None]  # (N, K)

    # camera pan
    has_pan = u_pan[:, 0] < cfg.p_pan * d
    pan_ang = u_pan[:, 1] * 2 * math.pi
    pan_spd = _lerp(cfg.pan_speed_range[0], cfg.pan_speed_range[1], u_pan[:, 2]) * S
    pan = torch.stack([pan_ang.cos(), pan_ang.sin()], -1) * (pan_spd * has_pan)[:, None]  # (N, 2)

    # background: mean level, tint, sinusoid components
    level = _lerp(cfg.bg_level_range[0], cfg.bg_level_range[1], u_level)
    sat = _lerp(cfg.bg_saturation[0], cfg.bg_saturation[1], d)
    tint = (u_tint - 0.5) * 2.0
    bg_level = (level[:, None] + sat[:, None] * tint).clamp(0, 1)  # (N, 3)
    contrast = _lerp(cfg.bg_contrast[0], cfg.bg_contrast[1], d)  # (N,)
    fmax = _lerp(cfg.bg_max_freq[0], cfg.bg_max_freq[1], d)
    wang = u_waves[..., 0] * 2 * math.pi
    # frequency in cycles per image; the first two components stay very low (gradients)
    comp = torch.arange(M, dtype=torch.float64)
    fmin = torch.where(comp < 2, torch.full_like(comp, 0.25), torch.full_like(comp, 0.6))
    fhi = torch.where(comp[None] < 2, torch.full_like(fmax[:, None].expand(N, M), 0.7), fmax[:, None])
    freq = fmin + u_waves[..., 1] * (fhi - fmin)  # (N, M)
    k = 2 * math.pi * freq / S  # rad / px
    kx, ky = k * wang.cos(), k * wang.sin()
    phase = u_waves[..., 2] * 2 * math.pi
    amp = 0.4 + 0.6 * u_waves[..., 3]
    amp = amp / amp.sum(1, keepdim=True) * contrast[:, None]  # sum of amplitudes == contrast
    wtint = (u_waves[..., 4:7] - 0.5) * 2.0  # per component colour deviation
    wcol = amp[..., None] * (1.0 + 2.0 * sat[:, None, None] * wtint)  # mostly luminance
    bg_waves = torch.cat([kx[..., None], ky[..., None], phase[..., None], wcol], -1)  # (N, M, 6)

    # sprite colours: distinct palette entries
    colour_id = torch.argsort(u_pal, dim=1)[:, :K]
    if K > len(PALETTE):
        raise ValueError(f"max_sprites <= {len(PALETTE)}")
    colour = PALETTE[colour_id]

    us = u_spr  # (N, K, 12)
    shape = (us[..., 0] * len(SHAPE_NAMES)).floor().clamp(max=len(SHAPE_NAMES) - 1).long()
    r_lo = _lerp(cfg.radius_range_easy[0], cfg.radius_range_hard[0], dd)
    r_hi = _lerp(cfg.radius_range_easy[1], cfg.radius_range_hard[1], dd)
    radius = _lerp(r_lo, r_hi, us[..., 1]) * S  # (N, K)
    static = us[..., 2] < cfg.p_static
    ang = us[..., 3] * 2 * math.pi
    spd = _lerp(cfg.speed_range[0], cfg.speed_range[1], us[..., 4]) * S
    vel = torch.stack([ang.cos(), ang.sin()], -1) * (spd * (~static))[..., None]  # (N, K, 2)
    texture = (us[..., 5] * len(TEXTURE_NAMES)).floor().clamp(max=len(TEXTURE_NAMES) - 1).long()
    tex_ang = us[..., 6] * math.pi
    tex_period = torch.clamp(radius * _lerp(0.45, 0.75, us[..., 7]), min=6.0)
    tex_phase = us[..., 8] * 2 * math.pi
    texture_params = torch.stack([tex_ang, tex_period, tex_phase], -1)
    u_depth = us[..., 9]

    ext_unit = _SHAPE_EXTENT.double()[shape]  # (N, K)
    extent = radius * ext_unit
    box_unit = _SHAPE_BOX.double()[shape]  # (N, K, 4)

    # start positions: keep the whole path inside the frame with a margin of the shape's
    # half box size reduced by the allowed overhang.  Shrink too-long paths.
    t_last = float(Fr - 1)
    svel = vel + pan[:, None, :]
    half = torch.stack([box_unit[..., 2] - box_unit[..., 0], box_unit[..., 3] - box_unit[..., 1]], -1) / 2
    half = half * radius[..., None]  # (N, K, 2) half box size in px
    margin = half * (1.0 - cfg.max_overhang * dd)[..., None] + 1.0
    dims = torch.tensor([W, H], dtype=torch.float64)
    room = (dims - 2 * margin).clamp(min=0)  # (N, K, 2)
    disp = svel * t_last
    shrink = torch.where(disp.abs() > room, room / disp.abs().clamp(min=1e-9), torch.ones_like(disp)).amin(-1)
    svel = svel * shrink[..., None]
    vel = torch.where(static[..., None], vel, svel - pan[:, None, :])
    # a static sprite with a pan that would leave: accept the shrink on the screen velocity too
    vel = torch.where(static[..., None] & (shrink[..., None] < 1), svel - pan[:, None, :], vel)
    static = static & (vel.abs().amax(-1) < 1e-9)
    disp = svel * t_last
    lo = margin + (-disp).clamp(min=0)
    hi = dims - margin - disp.clamp(min=0)
    hi = torch.maximum(hi, lo)
    cand = lo[:, :, None, :] + u_pos * (hi - lo)[:, :, None, :]  # (N, K, C, 2)
    tt = torch.arange(Fr, dtype=torch.float64)
    chosen = torch.zeros(N, K, 2, dtype=torch.float64)
    for j in range(K):
        if j == 0:
            chosen[:, 0] = cand[:, 0, 0]
            continue
        # path of each candidate: (N, C, F, 2); path of placed sprites: (N, j, F, 2)
        pc = cand[:, j, :, None, :] + tt[None, None, :, None] * svel[:, j, None, None, :]
        pp = chosen[:, :j, None, :] + tt[None, None, :, None] * svel[:, :j, None, :]
        dist = (pc[:, :, None] - pp[:, None]).norm(dim=-1).amin(-1)  # (N, C, j)
        gap = dist - (extent[:, j, None, None] + extent[:, None, :j])  # (N, C, j)
        gap = torch.where(valid[:, None, :j], gap, torch.full_like(gap, 1e9)).amin(-1)  # (N, C)
        best = gap.argmax(1)
        chosen[:, j] = cand[torch.arange(N), j, best]
    centres = chosen[:, :, None, :] + tt[None, None, :, None] * svel[:, :, None, :]  # (N, K, F, 2)
    box0 = torch.cat([chosen, chosen], -1) + box_unit * radius[..., None]

    # occlusion order among valid sprites
    key = u_depth + (~valid).double() * 2.0
    order = torch.argsort(key, dim=1)  # order[n, i] = sprite drawn at layer i
    depth = torch.empty_like(order)
    depth.scatter_(1, order, torch.arange(K).expand(N, K).contiguous())

    # clear: fully inside the frame and not overlapped by another valid sprite's circle
    bx = box_unit[:, :, None, :] * radius[:, :, None, None] + centres.repeat(1, 1, 1, 2)  # (N,K,F,4)
    inside = (bx[..., 0] >= 0) & (bx[..., 1] >= 0) & (bx[..., 2] <= W) & (bx[..., 3] <= H)
    pd = (centres[:, :, None] - centres[:, None, :]).norm(dim=-1)  # (N, K, K, F)
    overl = pd < (extent[:, :, None, None] + extent[:, None, :, None] + 2.0)
    eye = torch.eye(K, dtype=torch.bool)[None, :, :, None]
    overl = overl & valid[:, None, :, None] & ~eye
    clear = inside & ~overl.any(2) & valid[..., None]

    sp = svel.norm(dim=-1)
    speed = (sp * valid).sum(1) / valid.sum(1).clamp(min=1)

    f32 = torch.float32
    return Scenes(
        seeds=seeds,
        difficulty=d.to(f32),
        video=None,
        valid=valid,
        centres=centres.to(f32),
        box0=box0.to(f32),
        colour=colour.to(f32),
        colour_id=colour_id,
        shape=shape,
        radius=radius.to(f32),
        extent=extent.to(f32),
        velocity=vel.to(f32),
        screen_velocity=svel.to(f32),
        static=static & valid,
        depth=depth,
        clear=clear,
        pan=pan.to(f32),
        speed=speed.to(f32),
        motion_bucket=speed_to_motion_bucket(speed.to(f32), cfg),
        texture=texture,
        texture_params=texture_params.to(f32),
        bg_level=bg_level.to(f32),
        bg_waves=bg_waves.to(f32),
        landmarks=_draw_landmarks(cfg, seeds, pan, sat),
    )


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _background_coordinates(sc: Scenes, cfg: WorldConfig, device, frames: int):
    """Background coordinates of the pixel rows sy (N, F, H) and columns sx (N, F, W) in each frame:
    pixel centres with the camera pan taken out (frame 0: the screen coordinates)."""
    pan = sc.pan.to(device)
    t = torch.arange(frames, device=device, dtype=torch.float32)
    ys = torch.arange(cfg.height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(cfg.width, device=device, dtype=torch.float32) + 0.5
    sy = ys[None, None, :] - pan[:, 1, None, None] * t[None, :, None]
    sx = xs[None, None, :] - pan[:, 0, None, None] * t[None, :, None]
    return sy, sx


def landmark_layer(sc: Scenes, cfg: WorldConfig, device=None) -> torch.Tensor:
    """The landmarks alone, (N, F, 3, H, W): what they add to the background, in [-1, 1] units
    (zeros for a world without landmarks). Training uses its magnitude to weight the VAE's loss."""
    device = torch.device(device) if device is not None else sc.valid.device
    if sc.landmarks.shape[1] == 0:
        return torch.zeros(sc.n, cfg.frames, 3, cfg.height, cfg.width, device=device)
    return _landmark_frames(sc, cfg, *_background_coordinates(sc, cfg, device, cfg.frames))


def _background_frames(sc: Scenes, cfg: WorldConfig, device, frames: int) -> torch.Tensor:
    """Background of the first ``frames`` frames, (N, frames, 3, H, W) in [-1, 1]:
    level + sum_m w_m sin(kx (x - px t) + ky (y - py t) + phi_m), computed as a batched matmul
    of separable factors: sin(A + B) = sin A cos B + cos A sin B; plus the landmarks (_landmark_frames)."""
    wv = sc.bg_waves.to(device)
    kx, ky, ph, wcol = wv[..., 0], wv[..., 1], wv[..., 2], wv[..., 3:6]  # (N, M), (N, M, 3)
    sy, sx = _background_coordinates(sc, cfg, device, frames)
    # A: (N, F, M, H), B: (N, F, M, W)
    A = ky[:, None, :, None] * sy[:, :, None, :] + ph[:, None, :, None]
    B = kx[:, None, :, None] * sx[:, :, None, :]
    # U: (N, F, 3, H, 2M) with colour weights (scaled by 2 for [-1, 1]); V: (N, F, 1, 2M, W)
    w2 = 2.0 * wcol.permute(0, 2, 1)[:, None, :, :, None]  # (N, 1, 3, M, 1)
    U = torch.cat([A.sin()[:, :, None] * w2, A.cos()[:, :, None] * w2], 3).transpose(-1, -2).contiguous()
    V = torch.cat([B.cos(), B.sin()], 2)[:, :, None]
    bg = torch.matmul(U, V)  # (N, F, 3, H, W)
    bg += (2.0 * sc.bg_level.to(device) - 1.0)[:, None, :, None, None]
    if sc.landmarks.shape[1]:
        bg += _landmark_frames(sc, cfg, sy, sx)
    return bg


def _landmark_profile(d: torch.Tensor, half: torch.Tensor, spot: torch.Tensor, soft: float) -> torch.Tensor:
    """1-D profile of a landmark along one axis at offsets d (px) from its centre: a soft-edged step of
    half-width ``half`` (block) or a Gaussian of sigma half/2 (spot). A landmark is the product of its x
    and y profiles, so the whole set renders as one batched matmul, like the sinusoids."""
    block = _smoothstep01(0.5 - (d.abs() - half) / soft)
    gauss = torch.exp(-2.0 * (d / half) ** 2)
    return torch.where(spot, gauss, block)


def _landmark_frames(sc: Scenes, cfg: WorldConfig, sy: torch.Tensor, sx: torch.Tensor) -> torch.Tensor:
    """Sum of the landmarks, (N, F, 3, H, W) in [-1, 1] units; sy (N, F, H), sx (N, F, W) are the
    background coordinates of the pixel rows / columns in each frame (the pan already taken out)."""
    lm = sc.landmarks.to(sx.device)  # (N, L, 8)
    spot = lm[:, None, :, None, 4] > 0.5  # (N, 1, L, 1)
    gy = _landmark_profile(sy[:, :, None, :] - lm[:, None, :, 1, None], lm[:, None, :, 3, None], spot,
                           cfg.edge_softness)  # (N, F, L, H)
    gx = _landmark_profile(sx[:, :, None, :] - lm[:, None, :, 0, None], lm[:, None, :, 2, None], spot,
                           cfg.edge_softness)  # (N, F, L, W)
    col = 2.0 * lm[:, None, :, 5:8].permute(0, 1, 3, 2)  # (N, 1, 3, L), x2 for [-1, 1]
    U = gy.transpose(-1, -2)[:, :, None] * col[..., None, :]  # (N, F, 3, H, L)
    return torch.matmul(U, gx[:, :, None])  # (N, F, 3, H, W)


def _render_background(sc: Scenes, cfg: WorldConfig, device) -> torch.Tensor:
    """(N, F, 3, H, W) in [-1, 1] (memory-bound; computing static backgrounds once and
    copying them is no faster)."""
    return _background_frames(sc, cfg, device, cfg.frames)


def _smoothstep01(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _group_apply(n: int, keys: torch.Tensor, fn, out_shape, device) -> torch.Tensor:
    """out[i] = fn(key, idx)[j] for the rows idx of each distinct key (one call per key)."""
    uniq = sorted(set(keys.tolist()))
    if len(uniq) == 1:
        return fn(uniq[0], None)
    out = torch.empty(out_shape, device=device)
    for u in uniq:
        idx = (keys == u).nonzero(as_tuple=True)[0].to(device)
        out.index_copy_(0, idx, fn(u, idx))
    return out


def _sprite_sdf(shape_id: int, dx: torch.Tensor, dy: torch.Tensor, rad: torch.Tensor) -> torch.Tensor:
    """Signed distance in px (n, F, P, P) indexed [.., y, x] of shape ``shape_id`` with radius
    rad (n,), for window offsets dx, dy (n, F, P) from the centre."""
    r = rad[:, None, None]
    if shape_id == DISC:
        return ((dx * dx)[:, :, None, :] + (dy * dy)[:, :, :, None]).sqrt_() - r[..., None]
    if shape_id == SQUARE:  # Chebyshev distance to the axis-aligned square
        hx = _SHAPE_BOX[SQUARE, 2].item()
        return torch.maximum((dx.abs() - hx * r)[:, :, None, :], (dy.abs() - hx * r)[:, :, :, None])
    if shape_id == DIAMOND:
        h = _SHAPE_BOX[DIAMOND, 2].item()
        return (dx.abs() * math.sqrt(0.5))[:, :, None, :] + ((dy.abs() - h * r) * math.sqrt(0.5))[:, :, :, None]
    # triangle / star: max over the 3 half-planes of each triangle, min over the triangles
    polys = 1 if shape_id == TRIANGLE else 2
    out = None
    for p in range(polys):
        sp = None
        for i in range(3):
            nx, ny, d = _PLANE_N[shape_id, p, i, 0].item(), _PLANE_N[shape_id, p, i, 1].item(), _PLANE_D[shape_id, p, i].item()
            h = (nx * dx)[:, :, None, :] + (ny * dy - d * r)[:, :, :, None]
            sp = h if sp is None else torch.maximum(sp, h)
        out = sp if out is None else torch.minimum(out, sp)
    return out


def _render_layer(canvas: torch.Tensor, sc: Scenes, cfg: WorldConfig, scene_idx: torch.Tensor,
                  sprite_idx: torch.Tensor, paste: str = "auto") -> None:
    """Composite one sprite per listed scene (sprite sprite_idx[i] of scene scene_idx[i]) over
    ``canvas`` (N, F, 3, H, W) in place, rendering only a P x P window around each sprite."""
    dev = canvas.device
    Fr, H, W = cfg.frames, cfg.height, cfg.width
    n = scene_idx.shape[0]
    si, ki = scene_idx.cpu(), sprite_idx.cpu()
    cen = sc.centres[si, ki].to(dev)  # (n, F, 2)
    rad = sc.radius[si, ki].to(dev)  # (n,)
    ext = sc.extent[si, ki]
    shp = sc.shape[si, ki].cpu()
    col = sc.colour[si, ki].to(dev)  # (n, 3) in [0, 1]
    tex = sc.texture[si, ki].cpu()
    tpar = sc.texture_params[si, ki].to(dev)
    soft = cfg.edge_softness

    # window size: pixels outside the window have alpha exactly 0, so the values do not depend
    # on the window (nor on the batch)
    P = int(math.ceil(2 * (float(ext.max()) + soft + 2)))
    P = min(P, H, W)
    ox = (cen[..., 0].floor().long() - P // 2).clamp(0, W - P)  # (n, F)
    oy = (cen[..., 1].floor().long() - P // 2).clamp(0, H - P)
    ar = torch.arange(P, device=dev)
    gx = ox[..., None] + ar  # (n, F, P) pixel columns
    gy = oy[..., None] + ar
    dx = (gx.float() + 0.5) - cen[..., 0:1]  # (n, F, P)
    dy = (gy.float() + 0.5) - cen[..., 1:2]
    full = (n, Fr, P, P)

    def sel(x, idx):
        return x if idx is None else x.index_select(0, idx)

    sdf = _group_apply(n, shp, lambda s, idx: _sprite_sdf(s, sel(dx, idx), sel(dy, idx), sel(rad, idx)), full, dev)
    alpha = _smoothstep01(0.5 - sdf / soft)  # (n, F, P, P)

    # internal texture s in [0, 1] (how much the colour darkens)
    def texture(t, idx):
        tp, r = sel(tpar, idx), sel(rad, idx)
        if t == 0:  # stripes: 0.5 + 0.5 sin(X + Y), separable
            ang, period, phase = tp[:, 0], tp[:, 1], tp[:, 2]
            kx = (ang.cos() * 2 * math.pi / period)[:, None, None]
            ky = (ang.sin() * 2 * math.pi / period)[:, None, None]
            X = kx * sel(dx, idx)
            Y = ky * sel(dy, idx) + phase[:, None, None]
            out = (0.5 * X.sin())[:, :, None, :] * Y.cos()[:, :, :, None]
            out += (0.5 * X.cos())[:, :, None, :] * Y.sin()[:, :, :, None]
            return out.add_(0.5)
        d = sel(sdf, idx)
        if t == 1:  # darker outer band (rim)
            w = (0.3 * r).clamp(min=3.0)[:, None, None, None]  # band width (px)
            return _smoothstep01((d + w) / (0.35 * w))
        # concentric rings following the silhouette
        per = (0.5 * tp[:, 1])[:, None, None, None]
        return 0.5 + 0.5 * torch.cos(d * (2 * math.pi) / per)

    s = _group_apply(n, tex, texture, full, dev)
    base = 2.0 * col - 1.0  # (n, 3) palette colour in [-1, 1]
    kc = (2.0 * cfg.texture_strength) * col / col.norm(dim=-1, keepdim=True)  # darkening direction

    if paste == "auto":
        paste = "loop" if canvas.device.type == "cpu" else "index"
    if paste == "loop":
        # a loop over the n*F windows with in-place ops (much faster on CPU than advanced
        # indexing): win = win * (1 - a) + a * base - (a * s) * kc
        one_minus = 1.0 - alpha
        a_s = alpha * s
        oxl, oyl, sil = ox.tolist(), oy.tolist(), si.tolist()
        basel = base[:, :, None, None]
        kcl = -kc[:, :, None, None]
        for i in range(n):
            b, k = basel[i], kcl[i]
            for f in range(Fr):
                y0, x0 = oyl[i][f], oxl[i][f]
                win = canvas[sil[i], f, :, y0 : y0 + P, x0 : x0 + P]
                win.mul_(one_minus[i, f]).addcmul_(alpha[i, f], b).addcmul_(a_s[i, f], k)
    else:
        # one gather / scatter with advanced indexing
        sprite = base[:, None, None, None, :] - kc[:, None, None, None, :] * s[..., None]  # (n,F,P,P,3)
        i_n = si.to(dev)[:, None, None, None]
        i_f = torch.arange(Fr, device=dev)[None, :, None, None]
        i_y = gy[:, :, :, None]
        i_x = gx[:, :, None, :]
        cur = canvas[i_n, i_f, :, i_y, i_x]  # (n, F, P, P, 3)
        canvas[i_n, i_f, :, i_y, i_x] = torch.lerp(cur, sprite, alpha[..., None])


def render(sc: Scenes, cfg: WorldConfig, device=None, paste: str = "auto") -> torch.Tensor:
    """Render the scenes' video (N, F, 3, H, W) float32 in [-1, 1] on ``device``.

    ``paste``: how sprite windows are composited: "loop" (Python loop over the N*F windows with
    in-place slice ops; fastest on CPU), "index" (one batched gather/scatter; for GPUs), or
    "auto" (loop on CPU, index elsewhere).  Both give the same values."""
    device = torch.device(device) if device is not None else sc.valid.device
    canvas = _render_background(sc, cfg, device)
    K = sc.valid.shape[1]
    valid = sc.valid.cpu()
    depth = sc.depth.cpu()
    for layer in range(K):
        # the sprite drawn at this layer, in the scenes that have that many sprites
        at = (depth == layer) & valid  # (N, K)
        scn, spr = at.nonzero(as_tuple=True)
        if scn.numel() == 0:
            continue
        _render_layer(canvas, sc, cfg, scn, spr, paste)
    canvas.clamp_(-1.0, 1.0)
    return canvas


def sample_scenes(cfg: WorldConfig, seeds, device="cpu", difficulty=None) -> Scenes:
    """Draw scenes (parameters on the CPU from each seed), move them to ``device`` and render.
    Returns Scenes with ``video`` (N, F, 3, H, W) in [-1, 1] and all ground truth on ``device``."""
    sc = draw_scenes(cfg, seeds, difficulty)
    video = render(sc, cfg, device)
    sc = sc.to(device)
    sc.video = video
    return sc


# --------------------------------------------------------------------------------------------
# Tracker / evaluation
# --------------------------------------------------------------------------------------------


def _largest_blob(mask: torch.Tensor, max_iter: int = 256) -> torch.Tensor:
    """mask (F, H, W) bool -> mask of the largest 8-connected component per frame.

    Label propagation: every masked pixel starts with its own (global, 1-based) index; each
    round takes the max over the 3x3 neighbourhood and then jumps to the label of the pixel its
    label names (pointer jumping), so components converge in a few rounds."""
    Fr, H, W = mask.shape
    rows = mask.any(2).any(0).nonzero()
    if rows.numel() == 0:
        return mask
    cols = mask.any(1).any(0).nonzero()
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (y1 - y0) * (x1 - x0) < H * W:  # work on the bounding box of all selected pixels
        out = torch.zeros_like(mask)
        out[:, y0:y1, x0:x1] = _largest_blob(mask[:, y0:y1, x0:x1].contiguous(), max_iter)
        return out
    dev = mask.device
    m = mask.unsqueeze(1).float()
    lab = torch.arange(1, Fr * H * W + 1, device=dev, dtype=torch.float32).reshape(Fr, 1, H, W) * m
    for it in range(max_iter):
        new = F.max_pool2d(lab, 3, 1, 1) * m
        flat = new.reshape(-1)
        idx = (flat.long() - 1).clamp(min=0)
        new = torch.where(flat > 0, flat[idx], flat).reshape(Fr, 1, H, W)
        if torch.equal(new, lab):
            break
        lab = new
    lab = lab[:, 0].long()
    out = torch.zeros_like(mask)
    for f in range(Fr):
        l = lab[f][mask[f]]
        if l.numel() == 0:
            continue
        vals, counts = torch.unique(l, return_counts=True)
        out[f] = lab[f] == vals[counts.argmax()]
    return out


def colour_mask(frames: torch.Tensor, colour, threshold: float = 0.3) -> torch.Tensor:
    """frames (F, 3, H, W) in [-1, 1] -> (F, H, W) bool: RGB distance ([0, 1] units) to
    ``colour`` (RGB in [0, 1]) below ``threshold``."""
    c = torch.as_tensor(colour, dtype=frames.dtype, device=frames.device).reshape(1, 3, 1, 1)
    rgb = (frames.float() + 1.0) * 0.5
    return ((rgb - c) ** 2).sum(1) < threshold * threshold


def find_sprite(frames: torch.Tensor, colour, threshold: float = 0.3, min_pixels: int = 12,
                largest_blob: bool = True):
    """Locate a sprite of known colour in every frame.

    frames: (F, 3, H, W) in [-1, 1]; colour: RGB in [0, 1] (e.g. scenes.colour[n, k]).
    Pixels within ``threshold`` (Euclidean RGB distance in [0, 1] units) of ``colour`` are
    selected; with ``largest_blob`` only the largest 8-connected component is kept.
    Returns centres (F, 2) = centroid (x, y) of the selected pixels in pixel coordinates
    (pixel centres at +0.5; NaN where not found), found (F,) bool (>= min_pixels pixels),
    size (F,) = number of selected pixels (area in px^2)."""
    mask = colour_mask(frames, colour, threshold)
    if largest_blob:
        mask = _largest_blob(mask)
    Fr, H, W = mask.shape
    m = mask.float()
    cnt = m.sum((1, 2))
    xs = torch.arange(W, device=m.device, dtype=torch.float32) + 0.5
    ys = torch.arange(H, device=m.device, dtype=torch.float32) + 0.5
    cx = (m.sum(1) * xs).sum(1) / cnt.clamp(min=1)
    cy = (m.sum(2) * ys).sum(1) / cnt.clamp(min=1)
    found = cnt >= min_pixels
    centres = torch.stack([cx, cy], -1)
    centres = torch.where(found[:, None], centres, torch.full_like(centres, float("nan")))
    return centres, found, cnt


def mean_colour_error(frames: torch.Tensor, colour, centres: torch.Tensor, radius: float,
                      inner: float = 0.5) -> torch.Tensor:
    """Per-frame mean RGB distance ([0, 1] units) between ``colour`` and the pixels of the disc
    of radius ``inner * radius`` around ``centres`` (F, 2) (e.g. the true or tracked centres).
    On a clean render this is at most cfg.texture_strength (the sprite's internal texture);
    frames with a NaN centre give NaN.  Returns (F,)."""
    Fr, _, H, W = frames.shape
    c = torch.as_tensor(colour, dtype=torch.float32, device=frames.device).reshape(1, 3, 1, 1)
    rgb = (frames.float() + 1.0) * 0.5
    err = ((rgb - c) ** 2).sum(1).sqrt()  # (F, H, W)
    cen = centres.to(frames.device).float()
    xs = torch.arange(W, device=frames.device, dtype=torch.float32) + 0.5
    ys = torch.arange(H, device=frames.device, dtype=torch.float32) + 0.5
    r = max(float(inner * radius), 1.0)
    d2 = (xs[None, None, :] - cen[:, 0, None, None]) ** 2 + (ys[None, :, None] - cen[:, 1, None, None]) ** 2
    w = (d2 <= r * r).float()
    out = (err * w).sum((1, 2)) / w.sum((1, 2))
    return torch.where(torch.isnan(cen).any(1), torch.full_like(out, float("nan")), out)


# --------------------------------------------------------------------------------------------
# Export helpers
# --------------------------------------------------------------------------------------------


def scene_to_trajectory_dict(sc: Scenes, index: int) -> dict:
    """{"boxes": [{"box": [x0, y0, x1, y1], "path": [[x, y], ...]}, ...]} for the valid sprites
    of scene ``index``, in pixel coordinates of the rendered image.  ``box`` is the shape's
    bounding box at frame 0, clipped to the image (when the scene is rendered); ``path`` is the
    box centre per frame (path[0] is the centre of ``box``; the box translates by
    path[t] - path[0], which is the sprite's true displacement).  Extra keys (ignored by consumers):
    "colour", "shape", "centre_path" (the shape's own centre, what find_sprite measures)."""
    out = []
    valid = sc.valid[index].cpu()
    if sc.video is not None:
        H, W = sc.video.shape[-2:]
    else:
        H = W = float("inf")
    for k in range(valid.shape[0]):
        if not bool(valid[k]):
            continue
        box = sc.box0[index, k].cpu().double()
        box = torch.stack([box[0].clamp(0, W), box[1].clamp(0, H), box[2].clamp(0, W), box[3].clamp(0, H)])
        cen = sc.centres[index, k].cpu().double()  # (F, 2)
        bc = torch.stack([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        path = bc[None, :] + (cen - cen[0:1])
        out.append(
            {
                "box": [round(float(v), 3) for v in box],
                "path": [[round(float(x), 3), round(float(y), 3)] for x, y in path.tolist()],
                "colour": [round(float(v), 4) for v in sc.colour[index, k].cpu()],
                "shape": SHAPE_NAMES[int(sc.shape[index, k])],
                "centre_path": [[round(float(x), 3), round(float(y), 3)] for x, y in cen.tolist()],
            }
        )
    return {"boxes": out}


def video_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (..., 3, H, W) -> uint8 (..., H, W, 3) on the CPU."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).contiguous()


def save_png(image: torch.Tensor, path: str) -> None:
    """Save one image (3, H, W) in [-1, 1] as PNG."""
    from PIL import Image

    Image.fromarray(video_to_uint8(image).numpy()).save(path)


def save_strip(video: torch.Tensor, path: str, gap: int = 2) -> None:
    """Save (N, F, 3, H, W) in [-1, 1] as one PNG grid: one row per scene, one column per frame."""
    N, Fr, _, H, W = video.shape
    grid = torch.ones(N * (H + gap) - gap, Fr * (W + gap) - gap, 3, dtype=torch.uint8) * 255
    u8 = video_to_uint8(video)
    for n in range(N):
        for f in range(Fr):
            grid[n * (H + gap) : n * (H + gap) + H, f * (W + gap) : f * (W + gap) + W] = u8[n, f]
    from PIL import Image

    Image.fromarray(grid.numpy()).save(path)


def write_example(sc: Scenes, index: int, directory: str, name: str | None = None) -> tuple[str, str]:
    """Write frame 0 of scene ``index`` as ``<name>.png`` and its ground-truth tracks as
    ``<name>.json`` (scene_to_trajectory_dict) in ``directory``; returns both paths."""
    if sc.video is None:
        raise ValueError("render the scenes first")
    os.makedirs(directory, exist_ok=True)
    name = name or f"world_{int(sc.seeds[index])}"
    png = os.path.join(directory, name + ".png")
    js = os.path.join(directory, name + ".json")
    save_png(sc.video[index, 0], png)
    d = scene_to_trajectory_dict(sc, index)
    d["height"], d["width"] = int(sc.video.shape[-2]), int(sc.video.shape[-1])
    d["frames"] = int(sc.video.shape[1])
    d["seed"] = int(sc.seeds[index])
    d["motion_bucket_id"] = int(sc.motion_bucket[index])
    with open(js, "w") as fh:
        json.dump(d, fh, indent=1)
    return png, js
