"""Image -> video with Stable Video Diffusion (SG-I2V trajectory control plugs into step 5).

    python run.py                                        # tiny model + bundled example, with SG-I2V control
    python run.py --weights hf --image cat.png           # official SVD from the Hugging Face cache
    python run.py --weights ~/svd-xt --image cat.png --out outputs/cat --seed 1
    python run.py --weights hf --image boat.png --trajectory boat.json   # SG-I2V: boxes follow their paths

Writes --out/video.mp4 (H.264), --out/frames/frame_000.png ... and --out/run.json (every setting, the
seed, sha256 of the inputs, package versions, device, dtype, timings per stage, the weights used; with
--trajectory also the SG-I2V settings and the loss at every iteration of every optimised step).
Everything is checked before the weights are loaded, and written to a temporary folder beside --out
that is renamed to --out at the end: a failed run leaves no partial output, and an existing --out is
replaced only with --overwrite.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import av
import numpy as np
import PIL
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from guidance.backbone import check_layer
from guidance.draw import draw_condition, draw_overlay
from guidance.features import SOURCES
from guidance.loss import HEATMAPS
from guidance.sg_i2v import SGI2VConfig, make_step_hook, optimised_steps
from guidance.trajectory import Trajectories, TrajectoryError, latent_boxes, load_trajectories, rescale
from model.config import tiny_world
from model.unet import UNet
from sampler.conditioning import generate, sampling_defaults
from sampler.video import write_mp4, write_pngs
from weights import SVD, SVDFiles, WeightsError, find_svd

EXAMPLES = Path(__file__).resolve().parent / "examples"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SAMPLING_FLAGS = {  # flag -> generate()'s setting, whose default comes from the model config (sampling_defaults)
    "steps": "num_steps", "height": "height", "width": "width", "fps": "fps", "motion_bucket": "motion_bucket_id",
    "noise_aug": "noise_aug_strength", "min_guidance": "min_guidance", "max_guidance": "max_guidance",
    "decode_chunk": "decode_chunk_size"}


# The cheapest checkpointing mode whose peak memory stays under 18 GiB for SVD's default run with
# SG-I2V (576x1024, 14 frames) on CUDA, measured by bench/perf.py (README, "Speed and memory").
CUDA_CHECKPOINTING = "transformers"


class RunError(Exception):
    """A user error in a flag, an input file or the output folder; the message names it and what was expected."""


@dataclass
class Job:
    """One run, resolved and checked by `prepare`, before any network tensor is read: the inputs, every
    setting, the device and the weights' files (headers only). `execute(job, svd)` generates it."""
    args: argparse.Namespace                 # the parsed flags (parser())
    command: list                            # the command line, for run.json
    image_path: Path
    image: Image.Image                       # the input image as the networks get it (RGB)
    trajectory_path: Optional[Path]          # None: plain SVD
    settings: dict                           # frames, steps, height, width, fps, motion_bucket, ... (settings())
    device: torch.device
    dtype: str                               # "fp32" | "fp16" | "bf16"
    guidance: Optional[SGI2VConfig]          # None: plain SVD (no trajectory)
    traj: Optional[Trajectories]             # trajectories in pixels of the video
    boxes: Optional[np.ndarray]              # (B, F, 4) latent cells; 8 px per cell
    speed: dict                              # checkpointing, offload, compile (speed_settings())
    out: Path
    files: SVDFiles                          # found and checked weights (headers read, no tensor)
    timings: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def prepare(args, command=None) -> Job:
    """Every check that needs no weights: the image, the trajectory, the settings, the device, the guidance
    flags and the output folder; the weights' files are found and their headers checked (find_svd), no
    tensor is read. Raises RunError (or WeightsError) naming the flag, file or field."""
    start = time.perf_counter()
    timings = {}

    # 1. Inputs: the image (default: the bundled example) and the output folder, checked first
    image_path, trajectory_path = input_files(args.image)
    if args.trajectory is not None:
        trajectory_path = Path(args.trajectory)
    if args.no_trajectory:
        trajectory_path = None
    image = read_image(image_path)
    out = Path(args.out) if args.out else Path("outputs") / image_path.stem
    check_out(out, args.overwrite)
    timings["read_inputs"] = time.perf_counter() - start

    # 2. Weights: find the files, read their headers and check every name and shape (no tensor read yet)
    t = time.perf_counter()
    files = find_svd(args.weights, model=args.model)
    timings["find_weights"] = time.perf_counter() - t

    # 3. Settings: flags, else the model config's sampling defaults; device and dtype; all validated
    s = settings(args, files.cfg)
    device, dtype = pick_device(args.device, args.dtype)
    guidance = guidance_settings(args, files.cfg, trajectory_path)        # None: plain SVD (no trajectory)
    traj = read_trajectory(trajectory_path, image.size, s) if guidance else None    # pixels of the video
    boxes = latent_boxes(traj) if guidance else None                 # (B, F, 4) latent cells; 8 px per cell
    command = command if command is not None else [Path(sys.argv[0]).name] + sys.argv[1:]
    return Job(args, command, image_path, image, trajectory_path, s, device, dtype, guidance, traj, boxes,
               speed_settings(args, device), out, files, timings, start)


def load_model(job_or_files, device=None, dtype=None) -> SVD:
    """The three networks, streamed from the files `prepare` checked (a Job), or from a `find_svd` result
    (SVDFiles, with device and dtype) so that a batch or a server loads them once for many jobs."""
    if isinstance(job_or_files, Job):
        job = job_or_files
        t = time.perf_counter()
        svd = job.files.load(job.device, DTYPES[job.dtype])
        job.timings["load_weights"] = time.perf_counter() - t
        return svd
    return job_or_files.load(device or "cpu", DTYPES[dtype or "fp32"])


def execute(job: Job, svd: SVD, on_progress=None) -> Path:
    """Generate `job` with the loaded networks and write --out (a temporary folder beside it, renamed at the
    end: a failure leaves no partial output). on_progress(event: dict), if given, receives
    {"stage": "denoise", "step": i, "steps": N} before each denoising step and {"stage": "loss", "step": i,
    "losses": [...]} after each optimised one. Returns the output folder."""
    s, args, timings = job.settings, job.args, job.timings
    svd.unet.set_checkpointing(job.speed["checkpointing"])
    sampling_unet = torch.compile(svd.unet) if job.speed["compile"] else svd.unet   # same weights

    # 5. Generate. With --trajectory, SG-I2V's step hook (guidance/sg_i2v.py) runs before each denoising
    #    step and optimises the latent inside its window; generate builds it once the conditioning exists.
    losses, progress = {}, Progress(args.quiet, on_progress)           # losses: {step: [loss per iteration]}

    def make_on_step(conditioning, sigmas):
        return make_step_hook(job.guidance, svd.unet, conditioning, job.boxes, len(sigmas) - 1, losses=losses,
                              on_loss=progress.show_loss,
                              compile_backend="inductor" if job.speed["compile"] else None)
    t = time.perf_counter()
    frames = generate(sampling_unet, svd.vae, svd.clip, job.image, s["frames"], s["height"], s["width"], s["steps"],
                      fps=s["fps"], motion_bucket_id=s["motion_bucket"], noise_aug_strength=s["noise_aug"],
                      min_guidance=s["min_guidance"], max_guidance=s["max_guidance"],
                      decode_chunk_size=s["decode_chunk"], generator=torch.Generator().manual_seed(args.seed),
                      dtype=svd.dtype, device=job.device, scaling_factor=svd.cfg.vae.scaling_factor,
                      make_on_step=make_on_step if job.guidance else None, progress=progress,
                      offload=job.speed["offload"])                                              # (T, H, W, 3)
    timings["generate"] = time.perf_counter() - t

    # 6. Write video.mp4, frames/ and run.json into a temporary folder beside --out, then rename it
    t, out, traj = time.perf_counter(), job.out, job.traj
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        write_mp4(frames, tmp / "video.mp4", fps=s["fps"])
        pngs = write_pngs(frames, tmp / "frames")
        if traj is not None:                                          # what was asked, drawn
            draw_condition(job.image.resize((s["width"], s["height"]), Image.LANCZOS), traj).save(tmp / "condition.png")
            write_mp4(draw_overlay(frames, traj), tmp / "overlay.mp4", fps=s["fps"])
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - job.started
        record = run_record(job, svd, losses, frames, [p.relative_to(tmp).as_posix() for p in pngs])
        (tmp / "run.json").write_text(json.dumps(record, indent=1) + "\n")
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)                       # gone already unless something failed
    if not args.quiet:
        print(f"wrote {out}/video.mp4: {len(frames)} frames {s['width']}x{s['height']} at {s['fps']} fps "
              f"({svd.cfg.name}, seed {args.seed}, {timings['total']:.1f} s)")
    return out


def main(args) -> Path:
    """Run one generation as `args` says (see `parser()`): execute(prepare(args), load_model(...)); returns
    the output folder."""
    job = prepare(args)
    return execute(job, load_model(job))


def run_record(job: Job, svd: SVD, losses: dict, frames, pngs: list) -> dict:
    """run.json: every setting, the seed, sha256 of the inputs, versions, device, dtype, timings, weights."""
    s, args, traj = job.settings, job.args, job.traj
    return {
        "command": job.command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(s, seed=args.seed, device=str(job.device), dtype=job.dtype, **job.speed,
                         weights=args.weights, model=args.model, image=str(job.image_path), out=str(job.out),
                         overwrite=args.overwrite),
        "defaults_from": f"{job.files.cfg.name} ({job.files.config_source})",
        "guidance": job.guidance and guidance_record(job.guidance, job.trajectory_path, s["steps"], losses),
        "inputs": {"image": {"path": str(job.image_path), "sha256": sha256(job.image_path),
                             "size": list(job.image.size)},
                   "trajectory": job.trajectory_path and {"path": str(job.trajectory_path),
                                                          "sha256": sha256(job.trajectory_path),
                                                          "used": job.guidance is not None}},
        "weights": dict(svd.details, description=svd.source),
        "device": device_description(job.device),
        "dtype": job.dtype,
        "versions": versions(),
        "timings_s": {k: round(v, 4) for k, v in job.timings.items()},
        "outputs": {"video": "video.mp4", "frames": pngs, "shape": list(frames.shape),
                    **({"condition": "condition.png", "overlay": "overlay.mp4"} if traj is not None else {})},
    }


# ---------------------------------------------------------------- inputs and checks
def input_files(image):
    """(image path, trajectory path or None). No --image: the bundled example examples/<name>.png with
    its trajectory examples/<name>.json (the first such pair in name order)."""
    if image is not None:
        return Path(image), None
    pairs = [(p, p.with_suffix(".json")) for p in sorted(EXAMPLES.glob("*.png")) if p.with_suffix(".json").is_file()]
    if not pairs:
        raise RunError(f"no --image given and no bundled example: expected {EXAMPLES}/<name>.png with its "
                       f"trajectory file {EXAMPLES}/<name>.json; give --image IMAGE")
    return pairs[0]


def read_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise RunError(f"--image {path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise RunError(f"--image {path}: cannot read it as an image ({e})") from e


def check_out(out: Path, overwrite: bool) -> None:
    """--out may be new or an empty folder; a previous run's folder (it has run.json) only with --overwrite."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"--out {out}: exists and is not empty; pass --overwrite to replace it, or choose "
                           "another folder")
        if not (out / "run.json").is_file():
            raise RunError(f"--out {out}: not a previous run's folder (no run.json); --overwrite replaces only "
                           "those, so move or empty it yourself")


def settings(args, cfg) -> dict:
    """The sampling settings: each flag, else the model config's default. Raises RunError naming the flag."""
    defaults = sampling_defaults(cfg)
    s = {"frames": args.frames if args.frames is not None else defaults["num_frames"]}
    for flag, field in SAMPLING_FLAGS.items():
        value = getattr(args, flag)
        s[flag] = value if value is not None else defaults[field]

    def bad(flag, expected):
        given = "" if getattr(args, flag) is not None else f" (the default of {cfg.name})"
        return RunError(f"--{flag.replace('_', '-')} {s[flag]}{given}: expected {expected}")
    for flag in ("height", "width"):
        if s[flag] < 64 or s[flag] % 64:
            raise bad(flag, "a positive multiple of 64 (the U-Net halves the 1/8-size latent three times)")
    for flag in ("frames", "steps", "decode_chunk"):
        if s[flag] < 1:
            raise bad(flag, "at least 1")
    if s["fps"] <= 0:
        raise bad("fps", "a positive number of frames per second")
    if s["noise_aug"] < 0:
        raise bad("noise_aug", "a noise strength >= 0")
    if not 0 <= args.seed < 2**63:
        raise RunError(f"--seed {args.seed}: expected an integer in [0, 2**63)")
    return s


def pick_device(name: str, dtype):
    """(torch.device, dtype name): 'auto' = cuda if available; dtype default fp16 on cuda, fp32 elsewhere."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise RunError(f"--device {name}: not a device ({e}); expected auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RunError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return device, dtype or ("fp16" if device.type == "cuda" else "fp32")


def publish(tmp: Path, out: Path) -> None:
    """Rename the finished folder tmp to out, replacing an existing out (check_out allowed it)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


# ---------------------------------------------------------------- SG-I2V trajectory control
def speed_settings(args, device) -> dict:
    """Checkpointing mode, offloading and compilation: memory and speed only, the same computation."""
    mode = args.checkpointing
    if mode == "auto":
        mode = "blocks" if args.low_vram else CUDA_CHECKPOINTING if device.type == "cuda" else "none"
    return {"checkpointing": mode, "offload": args.low_vram, "compile": args.compile}


# SGI2VConfig field -> the run.py flag that sets it; unset flags default to SGI2VConfig.from_model(model config):
# its `guidance` value for that field, else the paper's. A config's "cutoff": null means no restore, like --gamma none.
MODEL_GUIDANCE_FIELDS = {"layers": "layers", "window": "window", "iterations": "iterations", "lr": "lr",
                         "cutoff": "gamma"}
GAMMA_UNSET = object()                 # --gamma's default: None already means 'none' (no restore)


def flag_given(args, flag: str) -> bool:
    return getattr(args, flag) is not GAMMA_UNSET if flag == "gamma" else getattr(args, flag) is not None


def guidance_settings(args, model_cfg, trajectory_path):
    """SGI2VConfig from the guidance flags, or None without a trajectory. Raises RunError naming the flag.
    --layers, --window, --iterations, --lr and --gamma default to the model config's `guidance` values, else the
    paper's."""
    if trajectory_path is None:
        return None
    unet_cfg = model_cfg.unet
    try:
        model = SGI2VConfig.from_model(model_cfg)                     # the model's defaults over the paper's
    except ValueError as e:                                          # the message names the config and field
        raise RunError(str(e)) from e
    value = {flag: getattr(args, flag) if flag_given(args, flag) else model_cfg.guidance.get(field, getattr(model, field))
             for field, flag in MODEL_GUIDANCE_FIELDS.items()}        # keyed by flag; a config value as written
    checks = [("iterations", value["iterations"] >= 0, "an integer >= 0"), ("lr", value["lr"] > 0, "a learning rate > 0"),
              ("gamma", value["gamma"] is None or value["gamma"] >= 0, "a cut-off >= 0, or none (no restore)"),
              ("butterworth_order", args.butterworth_order > 0, "a filter order > 0")]
    config_name = {flag: field for field, flag in MODEL_GUIDANCE_FIELDS.items()}
    def named(flag):                                   # where a value came from: the flag, else the model config
        if flag in config_name and not flag_given(args, flag):
            return f"model config {model_cfg.name}: guidance {config_name[flag]}"
        return f"--{flag.replace('_', '-')}"
    for flag, ok, expected in checks:
        if not ok:
            raise RunError(f"{named(flag)} {value.get(flag, getattr(args, flag))}: expected {expected}")
    if any(len(layer) != 2 for layer in value["layers"]):                   # only a hand-edited config gets here
        raise RunError(f"{named('layers')} {value['layers']}: expected [up block, transformer] pairs")
    layers = tuple(tuple(int(n) for n in layer) for layer in value["layers"])   # the config's JSON lists too
    for layer in layers:
        try:
            check_layer(unet_cfg, layer)
        except ValueError as e:
            raise RunError(f"{named('layers')} {format_layers(layers)}: {e}") from e
    return SGI2VConfig(layers=layers, feature_source=args.feature_source, window=tuple(value["window"]),
                       iterations=value["iterations"], lr=value["lr"], cutoff=value["gamma"], order=args.butterworth_order,
                       weighting=args.weighting, baseline=None if args.baseline == "none" else args.baseline)


def read_trajectory(path: Path, image_size, s):
    """Trajectories from a .npy / .json file in pixels of the input image (guidance/trajectory.py),
    rescaled to pixels of the video. Raises RunError naming the problem."""
    if not path.is_file():
        raise RunError(f"--trajectory {path}: no such file")
    try:
        traj = load_trajectories(path, image_size=image_size, num_frames=s["frames"])
    except TrajectoryError as e:                                       # the message starts with the file
        raise RunError(f"--trajectory {e}") from e
    return rescale(traj, (s["width"], s["height"]))


def guidance_record(cfg: SGI2VConfig, trajectory_path: Path, num_steps: int, losses: dict) -> dict:
    """The run.json entry: method, every setting, the optimised steps and the loss of each iteration."""
    return {"method": "SG-I2V" if cfg.baseline is None else f"{cfg.baseline} baseline",
            "settings": asdict(cfg), "trajectory": str(trajectory_path),
            "optimised_steps": optimised_steps(num_steps, cfg.window) if cfg.baseline is None else [],
            "loss_per_step": {str(i): losses[i] for i in sorted(losses)}}


class Progress:
    """The denoising progress: a tqdm bar (hidden with --quiet) that shows the trajectory loss of the last
    optimised step as a postfix, and the events of `execute`'s on_progress."""

    def __init__(self, quiet: bool, on_progress=None):
        self.quiet, self.on_progress, self.bar = quiet, on_progress, None

    def __call__(self, steps):
        self.bar = tqdm(steps, desc="denoising", unit="step", disable=self.quiet)
        for i in self.bar:
            if self.on_progress is not None:
                self.on_progress({"stage": "denoise", "step": i, "steps": len(steps)})
            yield i

    def show_loss(self, step: int, losses: list) -> None:
        if self.on_progress is not None:
            self.on_progress({"stage": "loss", "step": step, "losses": list(losses)})
        if self.bar is not None and losses:
            self.bar.set_postfix(loss=f"{losses[0]:.4g}->{losses[-1]:.4g}", refresh=True)


def parse_layers(text: str) -> tuple:
    """'2.1,2.2' -> ((2, 1), (2, 2)): (up block, transformer) pairs."""
    try:
        layers = tuple(tuple(int(n) for n in item.split(".")) for item in text.split(","))
    except ValueError:
        layers = ()
    if not layers or any(len(layer) != 2 for layer in layers):
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated BLOCK.TRANSFORMER pairs, e.g. 2.1,2.2")
    return layers


def format_layers(layers) -> str:
    return ",".join(f"{l}.{s}" for l, s in layers)


def parse_window(text: str) -> tuple:
    """'0.1,0.4' -> (0.1, 0.4), fractions of the denoising steps with 0 <= start <= end <= 1."""
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        start, end = 1.0, 0.0
    if not 0 <= start <= end <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START,END with 0 <= START <= END <= 1, e.g. 0.1,0.4")
    return start, end


def parse_gamma(text: str):
    """'none' -> None (no high-frequency restore), else a float."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number or 'none'") from None


# ---------------------------------------------------------------- the record
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def device_description(device: torch.device) -> dict:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return {"type": "cuda", "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                "cuda": torch.version.cuda}
    return {"type": device.type, "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "av": av.__version__, "pillow": PIL.__version__, "platform": platform.platform()}


# ---------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = "default: the model config's ({})"
    p.add_argument("--weights", default=None,
                   help="SVD weights: a diffusers folder, an svd(_xt).safetensors file or a folder holding one, "
                        "or 'hf' to search the Hugging Face cache (default: the shipped tiny model "
                        "weights/tiny/sgi2v-tiny/; the cache is searched only with 'hf' or a cache path)")
    p.add_argument("--model", choices=["svd", "svd_xt"], default=None,
                   help="which official model to look for in --weights / the cache (default: either, svd first)")
    p.add_argument("--image", default=None,
                   help="input image, any format PIL reads (default: the bundled example examples/<name>.png)")
    p.add_argument("--out", default=None,
                   help="output folder for video.mp4, frames/ and run.json (default: outputs/<image name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it holds a previous run (never done without this flag)")
    p.add_argument("--seed", type=int, default=817, help="random seed (default: 817, the SG-I2V reference's)")
    p.add_argument("--frames", type=int, default=None,
                   help="number of frames (default: the frames the model was trained for: 14, 25, or 8 for tiny)")
    p.add_argument("--steps", type=int, default=None, help="Euler denoising steps; " + default.format("50 for SVD"))
    p.add_argument("--height", type=int, default=None,
                   help="video height in pixels, a multiple of 64; " + default.format("576 for SVD"))
    p.add_argument("--width", type=int, default=None,
                   help="video width in pixels, a multiple of 64; " + default.format("1024 for SVD"))
    p.add_argument("--fps", type=int, default=None,
                   help="frames per second: the conditioning id (fps - 1) and the mp4's rate; "
                        + default.format("7 for SVD"))
    p.add_argument("--motion-bucket", type=int, default=None,
                   help="SVD motion bucket id, more motion when higher; " + default.format("127 for SVD"))
    p.add_argument("--noise-aug", type=float, default=None,
                   help="noise added to the conditioning image; " + default.format("0.02 for SVD"))
    p.add_argument("--min-guidance", type=float, default=None,
                   help="classifier-free guidance scale of the first frame; " + default.format("1.0 for SVD"))
    p.add_argument("--max-guidance", type=float, default=None,
                   help="guidance scale of the last frame (linear in between); " + default.format("3.0 for SVD"))
    p.add_argument("--decode-chunk", type=int, default=None,
                   help="frames the VAE decodes at once (less memory when smaller; changes the result); "
                        + default.format("8 for SVD"))
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="network dtype (default: fp16 on cuda, fp32 on cpu); the VAE encodes in fp32 regardless")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.add_argument("--edit", action="store_true",
                   help="open the trajectory editor: a local web page to draw boxes and paths on --image (default: "
                        "the bundled example) and generate with these flags (docs/editor.md); --out is its output "
                        "root (default: outputs/editor)")
    p.add_argument("--host", default="127.0.0.1",
                   help="with --edit: the address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=0, help="with --edit: the port (default: 0, any free port)")

    f = p.add_argument_group("speed and memory (README, 'Speed and memory'; none of these changes the result "
                             "beyond rounding)")
    f.add_argument("--checkpointing", choices=("auto",) + UNet.CHECKPOINTING, default="auto",
                   help="what SG-I2V's optimisation recomputes in the backward pass instead of storing "
                        f"(model/unet.py set_checkpointing); auto: {CUDA_CHECKPOINTING} on CUDA (fits 18 GiB at "
                        "576x1024x14), blocks with --low-vram, none on the CPU")
    f.add_argument("--low-vram", action="store_true",
                   help="for 16 GB GPUs: checkpoint every block, and keep CLIP and the VAE off the GPU while the "
                        "U-Net samples and the U-Net off it while the VAE decodes")
    f.add_argument("--compile", action="store_true",
                   help="torch.compile the U-Net for the denoising steps, and SG-I2V's truncated forward and its "
                        "backward for the optimisation; the first run spends minutes compiling")

    d = SGI2VConfig()                                                  # the paper's defaults
    g = p.add_argument_group("SG-I2V trajectory control (guidance/sg_i2v.py; used with --trajectory)")
    g.add_argument("--trajectory", default=None,
                   help="box trajectories: the reference's traj.npy (B, 2 + F, 2) or a .json file (format in "
                        "guidance/trajectory.py), pixels of the input image; turns SG-I2V on (default: the "
                        "bundled example's trajectory when no --image is given, else off)")
    g.add_argument("--no-trajectory", action="store_true",
                   help="plain SVD: ignore the bundled example's trajectory (no control)")
    g.add_argument("--feature-source", choices=SOURCES, default=d.feature_source,
                   help="features of the loss: aligned (first-frame keys/values, the method), or an ablation / "
                        "baseline: self_attention, temporal_attention, upblock_output (DragDiffusion-style), "
                        f"upblock_output_minus_mean (MOFT-style) (default: {d.feature_source})")
    model_default = "default: the model config's guidance value ({}), else the paper's {}"
    tiny = tiny_world()
    g.add_argument("--layers", type=parse_layers, default=None,
                   help="U-Net layers as UPBLOCK.TRANSFORMER pairs, 0-based diffusers indexing; " + model_default.format(
                       f"{format_layers(tiny.guidance['layers'])} for {tiny.name}",
                       f"{format_layers(d.layers)}, the middle stage's last two: M2, M3"))
    g.add_argument("--window", type=parse_window, default=None,
                   help="optimise denoising step i when START <= i / steps <= END; " + model_default.format(
                       "{:g},{:g} for {}".format(*tiny.guidance["window"], tiny.name),
                       f"{d.window[0]},{d.window[1]}: steps 5..20 of 50, the paper's t = 45..30"))
    g.add_argument("--iterations", type=int, default=None,
                   help="AdamW iterations per optimised step; " + model_default.format(
                       f"{tiny.guidance['iterations']} for {tiny.name}", d.iterations))
    g.add_argument("--lr", type=float, default=None,
                   help="AdamW learning rate on the latent; " + model_default.format(
                       f"{tiny.guidance['lr']:g} for {tiny.name}", d.lr))
    g.add_argument("--gamma", type=parse_gamma, default=GAMMA_UNSET,
                   help="cut-off of the low-pass that keeps the optimised latent's low frequencies and restores "
                        "the high ones (Eq. 2); 'none' = no restore; " + model_default.format(
                            f"{tiny.guidance['cutoff']:g} for {tiny.name}", d.cutoff))
    g.add_argument("--butterworth-order", type=int, default=d.order,
                   help=f"order of that Butterworth low-pass (default: {d.order})")
    g.add_argument("--weighting", choices=sorted(HEATMAPS), default=d.weighting,
                   help=f"loss weights inside a box (default: {d.weighting})")
    g.add_argument("--baseline", choices=["none", "freetraj"], default="none",
                   help="none: SG-I2V; freetraj: only copy the first frame's initial noise along the boxes, no "
                        "optimisation (the paper's FreeTraj-style baseline) (default: none)")
    return p


def cli(argv=None) -> int:
    """Parse argv, run main; a user error is one 'run.py: error: ...' message on stderr and exit status 2."""
    args = parser().parse_args(argv)
    try:
        if args.edit:
            from guidance.editor.server import serve              # the editor imports run
            return serve(sys.argv[1:] if argv is None else argv)
        main(args)
    except (RunError, WeightsError) as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
