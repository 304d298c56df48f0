"""Peak memory and time of `weights.load_svd` for full-size SVD (random fp16 weights).

Checks the loader's promise: tensors stream from the file to the device one at a time, so memory grows
by the parameters once (on cuda: host memory by about one tensor, the GPU by exactly the parameters;
on cpu: host memory by the parameters, not twice that).

    python bench/load_memory.py --folder /tmp/svd-random      # writes the random folder first if absent
    python bench/load_memory.py --device cpu
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MEASURE = """
import json, sys, time, torch
sys.path.insert(0, {root!r})

def status_gib(field):                        # VmRSS (now) or VmHWM (peak) of this process, from /proc
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return round(int(line.split()[1]) / 2**20, 3)

cuda = {device!r}.startswith("cuda")
if cuda:
    torch.zeros(1, device={device!r})                             # CUDA context before the baseline
import weights
base = status_gib("VmRSS")
t = time.perf_counter()
svd = weights.load_svd({folder!r}, device={device!r}, dtype=getattr(torch, {dtype!r}))
if cuda:
    torch.cuda.synchronize()
seconds = time.perf_counter() - t
params = sum(p.numel() * p.element_size() for m in (svd.unet, svd.vae, svd.clip) for p in m.parameters())
print(json.dumps(dict(name=svd.cfg.name, device={device!r}, dtype={dtype!r}, load_s=round(seconds, 2),
                      param_gib=round(params / 2**30, 3),
                      cuda_max_allocated_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
                      host_rss_before_load_gib=base, host_peak_rss_gib=status_gib("VmHWM"),
                      host_rss_after_load_gib=status_gib("VmRSS"), source=svd.source)))
"""


def write_random_folder(folder: Path, model: str) -> None:
    """A diffusers-layout folder of random fp16 weights with the official key set and shapes."""
    import torch
    from safetensors.torch import save_file
    from model.config import svd, svd_xt
    from weights.svd import build_on_meta
    cfg = svd_xt() if model == "svd_xt" else svd()
    subs = {"unet": ("unet", "diffusion_pytorch_model"), "vae": ("vae", "diffusion_pytorch_model"),
            "clip": ("image_encoder", "model")}
    g = torch.Generator().manual_seed(0)
    for (part, (sub, stem)), module in zip(subs.items(), build_on_meta(cfg)):
        tensors = {k: (torch.randn(t.shape, generator=g) * 0.02).half() for k, t in module.state_dict().items()}
        (folder / sub).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(folder / sub / f"{stem}.fp16.safetensors"))
        (folder / sub / "config.json").write_text(json.dumps({"num_frames": cfg.unet.num_frames} if part == "unet" else {}))
        del tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default="/tmp/svd-random", help="random-weights folder (written if absent)")
    p.add_argument("--model", choices=["svd", "svd_xt"], default="svd_xt", help="which preset's shapes")
    p.add_argument("--device", default="cuda", help="where to load: cuda (default) or cpu")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16", help="parameter dtype")
    args = p.parse_args()
    folder = Path(args.folder)
    if not (folder / "unet").is_dir():
        t = time.perf_counter()
        write_random_folder(folder, args.model)
        print(f"wrote {folder} in {time.perf_counter() - t:.1f} s")
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run([sys.executable, "-c", MEASURE.format(root=root, folder=str(folder), device=args.device, dtype=args.dtype)],
                            capture_output=True, text=True, check=True)
    print(result.stdout.strip())


if __name__ == "__main__":
    main()
