"""Writing generated frames: an H.264 mp4 (PyAV) and numbered PNGs.

Frames are uint8 numpy arrays (T, H, W, 3), RGB, as `generate` returns them. The mp4 is H.264
(libx264) in yuv420p, the format every player and browser plays; yuv420p stores colour at half
resolution, so width and height must be even (we refuse odd sizes rather than silently crop or pad).
Both writers leave no partial output behind: the mp4 is written to a temporary file in the same
folder and renamed over the target only when complete. PyAV (`av`) is imported by the functions that
need it, so that the library imports without it.
"""
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def _pyav():
    """The PyAV module, imported on first use: only writing or reading video needs it."""
    try:
        import av
    except ImportError as e:
        raise ImportError(f"writing or reading video needs PyAV (the 'av' package: pip install av): {e}") from e
    return av


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    return frames


def write_mp4(frames, path, fps: float, crf: int = 18) -> Path:
    """Encode frames (T, H, W, 3) uint8 RGB as H.264 yuv420p into path (.mp4) at `fps` frames per second.

    crf: x264's constant rate factor (0 lossless .. 51; 18 is visually lossless for most content).
    Raises ValueError for odd width/height. Written to a temporary file beside `path`, then renamed.
    """
    av = _pyav()
    frames, path = _check_frames(frames), Path(path)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 in yuv420p needs an even width and height, got {w}x{h} (W x H); "
                         "resize or crop the frames first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for array in frames:
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())                           # flush the encoder's delayed frames
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_pngs(frames, folder, prefix: str = "frame_") -> list:
    """Write frames (T, H, W, 3) uint8 as folder/frame_000.png, frame_001.png, ... (created if needed).
    Returns the paths."""
    frames, folder = _check_frames(frames), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(len(frames) - 1)))
    paths = []
    for i, array in enumerate(frames):
        paths.append(folder / f"{prefix}{i:0{digits}d}.png")
        Image.fromarray(array).save(paths[-1])
    return paths


def read_video(path) -> np.ndarray:
    """Decode a video file to uint8 (T, H, W, 3) RGB (for tests and checks)."""
    av = _pyav()
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
