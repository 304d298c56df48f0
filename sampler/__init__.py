"""EDM Euler sampling and SVD conditioning (schedule.py, euler.py, conditioning.py), and video output (video.py).

    frames = generate(svd.unet, svd.vae, svd.clip, image, config=svd.cfg)   # uint8 (T, H, W, 3)
    write_mp4(frames, "video.mp4", fps=svd.cfg.sampling.fps)                 # needs PyAV (imported only here)
"""
from sampler.conditioning import Conditioning, generate, sampling_defaults
from sampler.euler import sample_euler
from sampler.schedule import karras_sigmas
from sampler.video import read_video, write_mp4, write_pngs

__all__ = ["Conditioning", "generate", "karras_sigmas", "read_video", "sample_euler", "sampling_defaults",
           "write_mp4", "write_pngs"]
