"""Trajectory inputs: boxes and their centre paths (SG-I2V paper, Sec. 3.1 "Problem setup").

The user gives B bounding boxes on the first frame and, for every box, where it should be in each
of the F output frames. A box keeps its size; in frame n it is the first-frame box translated by
(centre_n - centre_0) (docs/method.md §1). A constant path pins a region; boxes on the background
moving opposite to the wanted camera motion move the camera.

Convention, used everywhere in this package: pixels, x to the right, y down, boxes as
(x0, y0, x1, y1) = (left, top, right, bottom), image sizes as (W, H) like PIL. The conversion to
latent rows/columns happens once, in `latent_boxes`.

Two file formats:

* `traj.npy` of the reference implementation: float array (B, 2 + F, 2) of (x, y) points; row 0 is
  the box's top-left corner, row 1 its bottom-right corner, rows 2.. the box centre in frames
  0..F-1. The points are in pixels of the input image as loaded (before resizing).

* JSON, meant to be written by hand::

    {
      "image_size": [1024, 576],            # optional: (W, H) the coordinates refer to;
                                            # default: the input image's size
      "comment": "anything",                # optional, ignored
      "boxes": [
        {"box": [681, 183, 749, 238],       # x0, y0, x1, y1 in the first frame
         "path": [[715, 210], [722.9, 196.3], ...]},     # one (x, y) per frame, F entries
        {"box": [172, 469, 365, 565],
         "keyframes": {"0": [268, 517], "13": [300, 517]}},  # frame index -> (x, y)
        {"box": [10, 10, 60, 40], "keyframes": {}}        # no motion: pins the region
      ]
    }

  Every box has "box" and exactly one of "path" / "keyframes" (and optionally "comment",
  "interpolation": "linear" (default) or "catmull-rom" between keyframes (`catmull_rom`), and
  "group": an integer >= 0 naming a camera group of the editor, ignored by generation).
  Keyframe rules: keys are frame indices 0 <= k < F written as decimal strings; between two
  keyframes the centre moves linearly in the frame index; after the last keyframe it holds still;
  if frame 0 is not a keyframe, the centre of the first-frame box is used for it. As in the npy
  format only displacements matter (the box moves by centre_n - centre_0), so a keyframe "0" that
  is not the box centre is allowed: it names the point on the object that the path follows.

Numbers are kept in float32 and every step uses the reference's operation order
(inference.py `read_condition`: scale as (x * W) / W0, translate as box + (c_n - c_0), floor-divide
by 8), so that the latent boxes are the same integers as the reference's.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JSON_TOP_FIELDS = ("boxes", "image_size", "comment")
JSON_BOX_FIELDS = ("box", "path", "keyframes", "comment", "interpolation", "group")
INTERPOLATIONS = ("linear", "catmull-rom")
NPY_BOX_FIELD = "rows 0-1 (top-left x0,y0; bottom-right x1,y1)"


class TrajectoryError(ValueError):
    """An invalid trajectory file or array. The message names the file, the box, the field, the
    offending value and what was expected."""


MISSING = object()  # the value of a field that is absent


def _fail(source, box, field, value, expected) -> TrajectoryError:
    where = f"{source}: " + (f"box {box}: " if box is not None else "")
    got = "is missing" if value is MISSING else f"= {value!r}"
    return TrajectoryError(f"{where}field {field} {got}: expected {expected}")


@dataclass
class Trajectories:
    """B boxes on the first frame and the path of each box's centre over F frames."""
    boxes: np.ndarray            # (B, 4) float32 x0, y0, x1, y1 of each box in frame 0, pixels
    centres: np.ndarray          # (B, F, 2) float32 (x, y) of each box centre in frames 0..F-1, pixels
    image_size: tuple            # (W, H) of the image these pixel coordinates refer to
    source: str = "<trajectories>"  # file (or other origin) named in error messages

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32)
        self.centres = np.asarray(self.centres, dtype=np.float32)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise _fail(self.source, None, "boxes", f"array of shape {self.boxes.shape}", "shape (B, 4)")
        if self.centres.ndim != 3 or self.centres.shape[0] != self.boxes.shape[0] \
                or self.centres.shape[2] != 2:
            raise _fail(self.source, None, "centres", f"array of shape {self.centres.shape}",
                        f"shape ({self.boxes.shape[0]}, F, 2)")

    @property
    def num_boxes(self) -> int:
        return self.boxes.shape[0]

    @property
    def num_frames(self) -> int:
        return self.centres.shape[1]

    def boxes_per_frame(self) -> np.ndarray:
        """(B, F, 4) float32 x0, y0, x1, y1: the first box translated by centre_n - centre_0."""
        shift = self.centres - self.centres[:, :1]                      # (B, F, 2) dx, dy
        return self.boxes[:, None, :] + np.concatenate([shift, shift], axis=-1)  # (B, F, 4)


# ----------------------------------------------------------------------------------------------
# Geometry


def rescale(traj: Trajectories, new_size) -> Trajectories:
    """The same trajectories in pixels of an image resized to new_size = (W, H): x * W / W0,
    y * H / H0 (float32, multiplied first as the reference does)."""
    (w0, h0), (w1, h1) = traj.image_size, (int(new_size[0]), int(new_size[1]))

    def scale(a, new, old):
        return (a * np.float32(new)) / np.float32(old)

    boxes = traj.boxes.copy()                                           # (B, 4)
    boxes[:, 0::2] = scale(boxes[:, 0::2], w1, w0)
    boxes[:, 1::2] = scale(boxes[:, 1::2], h1, h0)
    centres = traj.centres.copy()                                       # (B, F, 2)
    centres[..., 0] = scale(centres[..., 0], w1, w0)
    centres[..., 1] = scale(centres[..., 1], h1, h0)
    return Trajectories(boxes, centres, (w1, h1), traj.source)


def latent_boxes(traj: Trajectories, latent_downsample: int = 8) -> np.ndarray:
    """(B, F, 4) int64 [top, left, bottom, right] of every box in every frame, in latent cells
    (end-exclusive), for trajectories already in pixels of the generation size.

    As the reference (pipeline.py `optimize_latent`): each frame's translated float box is
    floor-divided by the downsample factor on its own (so a box's latent size can differ by one
    cell between frames), then bottom = max(top + 1, bottom) and right = max(left + 1, right).
    Nothing is clipped here: a box may leave the latent in later frames; the loss clips it.
    """
    pixel = traj.boxes_per_frame()                                      # (B, F, 4) x0, y0, x1, y1
    cells = np.floor_divide(pixel, np.float32(latent_downsample)).astype(np.int64)
    left, top, right, bottom = np.moveaxis(cells, -1, 0)                # each (B, F)
    bottom = np.maximum(top + 1, bottom)
    right = np.maximum(left + 1, right)
    return np.stack([top, left, bottom, right], axis=-1)                # (B, F, 4)


# ----------------------------------------------------------------------------------------------
# Validation


def validate(traj: Trajectories, num_frames=None, box_field: str = "box") -> Trajectories:
    """Checks finiteness, frame count, box sizes and that every first-frame box lies inside the
    image. Later frames may leave the image. (The reference only exits when a first-frame box is
    entirely outside the latent; one partly outside is silently mis-sliced there, as a negative
    start index wraps around. Rejecting both is the behaviour its error message asks for.)"""
    src, (W, H) = traj.source, traj.image_size
    if W <= 0 or H <= 0:
        raise _fail(src, None, "image_size", [W, H], "two positive integers [W, H]")
    if traj.num_boxes == 0:
        raise _fail(src, None, "boxes", "no boxes", "at least one box")
    if num_frames is not None and traj.num_frames != num_frames:
        raise _fail(src, None, "frame count", traj.num_frames,
                    f"{num_frames} frames, the number of frames of the video")
    for b in range(traj.num_boxes):
        box = [float(v) for v in traj.boxes[b]]
        if not all(math.isfinite(v) for v in box):
            raise _fail(src, b, box_field, box, "finite numbers (no NaN or inf)")
        bad = np.flatnonzero(~np.isfinite(traj.centres[b]).all(-1))
        if bad.size:
            n = int(bad[0])
            raise _fail(src, b, f"centre of frame {n}", traj.centres[b, n].tolist(),
                        "finite numbers (no NaN or inf)")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise _fail(src, b, box_field, box,
                        f"a positive size, x1 > x0 and y1 > y0 (got width {x1 - x0:g}, "
                        f"height {y1 - y0:g})")
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            raise _fail(src, b, box_field, box,
                        f"the first-frame box inside the {W}x{H} (W x H) image: 0 <= x0 < x1 <= {W}"
                        f" and 0 <= y0 < y1 <= {H}")
    return traj


# ----------------------------------------------------------------------------------------------
# The reference's traj.npy


def load_npy(path, image_size, num_frames=None) -> Trajectories:
    """Reads the reference's traj.npy, (B, 2 + F, 2) float: rows 0/1 the top-left/bottom-right
    corners of each first-frame box, rows 2.. its centre in frames 0..F-1, all (x, y) pixels of an
    image of size image_size = (W, H)."""
    src = str(path)
    try:
        raw = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays (pickled) or a corrupt header
        raise _fail(src, None, "array", f"unreadable ({err})", "a numeric .npy array") from err
    if not isinstance(raw, np.ndarray):
        raise _fail(src, None, "array", type(raw).__name__, "a single .npy array, not an archive")
    if raw.dtype == np.bool_ or not (np.issubdtype(raw.dtype, np.integer)
                                     or np.issubdtype(raw.dtype, np.floating)):
        raise _fail(src, None, "array dtype", str(raw.dtype), "a numeric (float or int) array")
    expected_shape = "(B, 2 + F, 2) with B >= 1, F >= 1" + (
        f" and F = {num_frames} (shape (B, {2 + num_frames}, 2))" if num_frames else "")
    if raw.ndim != 3 or raw.shape[0] < 1 or raw.shape[1] < 3 or raw.shape[2] != 2:
        raise _fail(src, None, "array shape", raw.shape, expected_shape)
    if num_frames is not None and raw.shape[1] - 2 != num_frames:
        raise _fail(src, None, "frame count", raw.shape[1] - 2,
                    f"{num_frames} frames, the number of frames of the video "
                    f"(array shape (B, {2 + num_frames}, 2), got {raw.shape})")
    points = raw.astype(np.float32)                                     # (B, 2 + F, 2)
    bad = np.argwhere(~np.isfinite(points))
    if bad.size:
        b, row, axis = (int(i) for i in bad[0])
        field = ("top-left corner" if row == 0 else "bottom-right corner" if row == 1
                 else f"centre of frame {row - 2}") + f" (row {row}, {'xy'[axis]})"
        raise _fail(src, b, field, raw[b, row].tolist(), "finite numbers (no NaN or inf, and "
                    "within float32 range)")
    traj = Trajectories(points[:, :2].reshape(-1, 4), points[:, 2:], image_size, src)
    return validate(traj, num_frames, NPY_BOX_FIELD)


def save_npy(traj: Trajectories, path) -> None:
    """Writes the reference's (B, 2 + F, 2) float32 layout."""
    corners = traj.boxes.reshape(-1, 2, 2)                              # (B, 2, 2)
    np.save(path, np.concatenate([corners, traj.centres], axis=1).astype(np.float32))


# ----------------------------------------------------------------------------------------------
# JSON


def _number(src, b, field, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(src, b, field, value, "a number")
    if not math.isfinite(value):
        raise _fail(src, b, field, value, "a finite number (no NaN or inf)")
    return float(value)


def _point(src, b, field, value) -> list:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(src, b, field, value, "a point [x, y] of two numbers")
    return [_number(src, b, f"{field}[{i}]", v) for i, v in enumerate(value)]


def _check_fields(src, b, obj, allowed, what) -> None:
    if not isinstance(obj, dict):
        raise _fail(src, b, f"({what})", obj, "a JSON object {...}")
    for key in obj:
        if key not in allowed:
            raise _fail(src, b, repr(key), obj[key], f"one of the allowed fields of {what}: "
                        f"{', '.join(allowed)} ({key!r} is an unknown field)")


def catmull_rom(frames, xy, t) -> np.ndarray:
    """(len(t), 2) float64 points of the Catmull-Rom spline through keyframes xy (K, 2) at increasing
    frames (K,), evaluated at times t (any shape (T,)), held at the last keyframe after it.

    One cubic Hermite piece per pair of keyframes, with the Catmull-Rom tangent at keyframe k,
    (xy[k+1] - xy[k-1]) / (frames[k+1] - frames[k-1]), one-sided at the first and last keyframe: the
    curve passes through every keyframe, and with two keyframes it is the straight line."""
    frames, xy, t = (np.asarray(a, np.float64) for a in (frames, xy, t))
    if len(frames) < 2:
        return np.repeat(xy[:1], len(t), axis=0)
    slope = np.diff(xy, axis=0) / np.diff(frames)[:, None]             # (K-1, 2) px per frame
    tangent = np.concatenate([slope[:1], (xy[2:] - xy[:-2]) / (frames[2:] - frames[:-2])[:, None],
                              slope[-1:]])                              # (K, 2)
    k = np.clip(np.searchsorted(frames, t, side="right") - 1, 0, len(frames) - 2)   # (T,) piece of each t
    h = (frames[k + 1] - frames[k])[:, None]                           # (T, 1) frames in that piece
    s = np.clip((t - frames[k])[:, None] / h, 0.0, 1.0)                # (T, 1) position in it, 0..1
    return ((2 * s**3 - 3 * s**2 + 1) * xy[k] + (s**3 - 2 * s**2 + s) * h * tangent[k]
            + (3 * s**2 - 2 * s**3) * xy[k + 1] + (s**3 - s**2) * h * tangent[k + 1])


def _keyframe_path(src, b, keyframes, box, num_frames, interpolation="linear") -> np.ndarray:
    """(F, 2) float64 centres from {frame index: (x, y)}: linear (or Catmull-Rom) between keyframes,
    held after the last one; frame 0 defaults to the centre of the first-frame box."""
    if not isinstance(keyframes, dict):
        raise _fail(src, b, "keyframes", keyframes, 'an object {"frame index": [x, y], ...}')
    known = {0: [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]}
    for key, value in keyframes.items():
        if not re.fullmatch(r"-?[0-9]+", str(key)):
            raise _fail(src, b, f"keyframes[{key!r}]", key, "an integer frame index as key")
        n = int(key)
        if not 0 <= n < num_frames:
            raise _fail(src, b, f"keyframes[{key!r}]", n,
                        f"a frame index 0 <= index < {num_frames} (the video has {num_frames} frames)")
        known[n] = _point(src, b, f"keyframes[{key!r}]", value)
    frames = np.array(sorted(known), dtype=np.float64)                 # (K,)
    xy = np.array([known[int(n)] for n in frames], dtype=np.float64)    # (K, 2)
    t = np.arange(num_frames, dtype=np.float64)                        # (F,)
    if interpolation == "catmull-rom":
        return catmull_rom(frames, xy, t)
    # np.interp is linear between keyframes and constant after the last one
    return np.stack([np.interp(t, frames, xy[:, 0]), np.interp(t, frames, xy[:, 1])], axis=-1)


def load_json(path, image_size=None, num_frames=None) -> Trajectories:
    """Reads the JSON format described in the module docstring. image_size = (W, H) of the input
    image, used when the file has no "image_size"; num_frames = F of the video (needed for
    keyframes; a path must have exactly F entries)."""
    src = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise _fail(src, None, "JSON", f"syntax error at line {err.lineno} column {err.colno}: "
                    f"{err.msg}", "valid JSON") from err
    _check_fields(src, None, data, JSON_TOP_FIELDS, "the top level")
    if "image_size" in data:
        size = data["image_size"]
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise _fail(src, None, "image_size", size, "[W, H], two positive integers")
        image_size = tuple(size)
    elif image_size is None:
        raise _fail(src, None, "image_size", MISSING,
                    'the input image size passed in, or "image_size": [W, H] in the file')
    if "boxes" not in data:
        raise _fail(src, None, "boxes", MISSING,
                    'a list of boxes, e.g. "boxes": [{"box": [x0, y0, x1, y1], "path": [...]}]')
    entries = data["boxes"]
    if not isinstance(entries, list) or not entries:
        raise _fail(src, None, "boxes", entries, "a non-empty list of boxes")
    if num_frames is None:  # infer F from the first path, if any
        num_frames = next((len(e["path"]) for e in entries if isinstance(e, dict)
                           and isinstance(e.get("path"), list)), None)

    boxes, centres = [], []
    for b, entry in enumerate(entries):
        _check_fields(src, b, entry, JSON_BOX_FIELDS, "a box")
        if "box" not in entry:
            raise _fail(src, b, "box", MISSING, "[x0, y0, x1, y1] of the box in the first frame")
        box = entry["box"]
        if not isinstance(box, list) or len(box) != 4:
            raise _fail(src, b, "box", box, "[x0, y0, x1, y1], four numbers")
        box = [_number(src, b, f"box[{i}]", v) for i, v in enumerate(box)]
        interpolation = entry.get("interpolation", "linear")
        if interpolation not in INTERPOLATIONS:
            raise _fail(src, b, "interpolation", interpolation, f"one of {', '.join(INTERPOLATIONS)}")
        group = entry.get("group", 0)
        if isinstance(group, bool) or not isinstance(group, int) or group < 0:
            raise _fail(src, b, "group", group, "an integer >= 0 (the editor's camera group)")
        has_path, has_keys = "path" in entry, "keyframes" in entry
        if has_path == has_keys:
            raise _fail(src, b, "path/keyframes", "both given" if has_path else MISSING,
                        'exactly one of "path" (one [x, y] per frame) or "keyframes" '
                        '({"frame": [x, y]})')
        if has_path:
            path_ = entry["path"]
            if not isinstance(path_, list):
                raise _fail(src, b, "path", path_, "a list of [x, y] points, one per frame")
            if len(path_) != num_frames:
                raise _fail(src, b, "path", f"a list of {len(path_)} points",
                            f"{num_frames} points, one per frame of the video")
            xy = np.array([_point(src, b, f"path[{n}]", p) for n, p in enumerate(path_)])
        elif num_frames is None:
            raise _fail(src, b, "keyframes", entry["keyframes"],
                        "a known frame count: pass num_frames, or give one box a full path")
        else:
            xy = _keyframe_path(src, b, entry["keyframes"], box, num_frames, interpolation)
        boxes.append(box)
        centres.append(xy)
    traj = Trajectories(np.array(boxes), np.stack(centres), image_size, src)
    return validate(traj, num_frames, "box")


def _short(v: np.float32) -> float:
    """The shortest decimal that reads back as the same float32 (for a readable file)."""
    short = float(np.format_float_positional(v, unique=True, trim="0"))
    return short if np.float32(short) == v else float(v)


def to_json(traj: Trajectories, path=None) -> str:
    """The trajectories as JSON text with a full "path" per box (written to path if given).
    Reading it back with load_json gives the same float32 numbers."""
    doc = {"image_size": list(traj.image_size),
           "boxes": [{"box": [_short(v) for v in traj.boxes[b]],
                      "path": [[_short(x), _short(y)] for x, y in traj.centres[b]]}
                     for b in range(traj.num_boxes)]}
    text = json.dumps(doc, indent=1)
    if path is not None:
        Path(path).write_text(text + "\n")
    return text


def load_trajectories(path, image_size=None, num_frames=None) -> Trajectories:
    """Loads a .npy (reference layout) or .json trajectory file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        if image_size is None:
            raise _fail(str(path), None, "image_size", MISSING,
                        "the size (W, H) of the image the .npy coordinates refer to")
        return load_npy(path, image_size, num_frames)
    if suffix == ".json":
        return load_json(path, image_size, num_frames)
    raise _fail(str(path), None, "file suffix", suffix, "'.npy' or '.json'")
