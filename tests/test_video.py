"""sampler/video.py: an mp4 written then decoded back with PyAV; numbered PNGs."""
import av
import numpy as np
import pytest
from PIL import Image

from sampler.video import read_video, write_mp4, write_pngs


def smooth_clip(t=5, h=48, w=64) -> np.ndarray:
    """(T, H, W, 3) uint8: moving colour gradients, smooth enough for H.264 at high quality."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    clip = []
    for n in range(t):
        r = 128 + 100 * np.sin((x + 3 * n) / w * 2 * np.pi)
        g = 128 + 100 * np.cos((y - 2 * n) / h * 2 * np.pi)
        b = 64 + 60 * (x + y) / (w + h) + 10 * n
        clip.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(clip), 0, 255).round().astype(np.uint8)


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_mp4_roundtrip(tmp_path):
    frames = smooth_clip()
    path = write_mp4(frames, tmp_path / "video.mp4", fps=7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]          # no temporary file left
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
        assert stream.average_rate == 7
    decoded = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert psnr(decoded, frames) > 30, psnr(decoded, frames)


def test_mp4_single_frame_and_same_bytes_twice(tmp_path):
    frames = smooth_clip(t=1)
    a, b = write_mp4(frames, tmp_path / "a.mp4", 7), write_mp4(frames, tmp_path / "b.mp4", 7)
    assert read_video(a).shape == (1, 48, 64, 3)
    assert a.read_bytes() == b.read_bytes()                                     # deterministic encoder


def test_mp4_errors_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="even width and height, got 63x48"):
        write_mp4(smooth_clip(w=63), tmp_path / "odd.mp4", 7)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(smooth_clip().astype(np.float32), tmp_path / "float.mp4", 7)
    assert list(tmp_path.iterdir()) == []


def test_mp4_replaces_an_existing_file(tmp_path):
    (tmp_path / "video.mp4").write_text("old")
    write_mp4(smooth_clip(), tmp_path / "video.mp4", 7)
    assert read_video(tmp_path / "video.mp4").shape[0] == 5


def test_pngs(tmp_path):
    frames = smooth_clip(t=3)
    paths = write_pngs(frames, tmp_path / "frames")
    assert [p.name for p in paths] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    for p, f in zip(paths, frames):
        assert np.array_equal(np.array(Image.open(p)), f)                       # lossless
