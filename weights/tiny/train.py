"""Train the tiny SVD (weights/tiny/) from scratch on the procedural world, resumably.

Two stages, both with OUR model classes (the code paths of full SVD):
  vae   the autoencoder (encoder + temporal decoder) on rendered clips: L1 + L2 with sprite pixels
        weighted 9x (keeps small coloured sprites), a tiny KL term; then the latent scaling factor
        is set to 1 / std of the latents, as Stable Diffusion did.
  unet  the U-Net and the CLIP tower together, with SVD's objective (EDM, Karras et al. 2022):
        log-normal sigma, v-parameterisation D = c_skip x + c_out F, c_noise = 0.25 ln sigma,
        loss weight (sigma^2 + 1) / sigma^2 on |D - x0|^2; the noise-augmented first-frame latent
        concatenated to every frame; the CLIP embedding of the first frame; added time ids
        (fps - 1, motion bucket from the scene's speed, augmentation strength); both conditions
        dropped together 10% of the time for classifier-free guidance; EMA of the weights.

A second denoiser, a Wan-style video transformer (model/dit.py), trains with --backbone dit (stage unet):
the same objective, world and loop, with the VAE and CLIP of sgi2v-tiny frozen (--base-model); its own state
weights/tiny/train_state_dit/ and model weights/tiny/sgi2v-tiny-dit/ (transformer/, copies of vae/ and
image_encoder/). The first --warmup steps of a fresh model run eagerly (the learning rate ramps), later ones
in the CUDA graph when --cuda-graph is given.

State: the raw weights (fp16 safetensors shards under 16 MB) and meta.json (steps done, scene counter,
loss log) in weights/tiny/train_state/; the EMA weights ARE the shipped model, weights/tiny/sgi2v-tiny/
(diffusers layout, fp16, plus sgi2v_config.json), loaded by the same loader as the official files.
Each call trains for --minutes and saves; the next call resumes.

Training scenes use seeds >= TRAIN_SEED_BASE; seeds below HELD_OUT_SEEDS are never trained on.

  python -m weights.tiny.train --stage vae --minutes 3      # on the GPU machine
  python -m weights.tiny.train --stage unet --minutes 8.5
  python -m weights.tiny.train --backbone dit --minutes 8 --cuda-graph --batch 64 --lr 3e-4 --warmup 1000
"""
import argparse
import dataclasses
import json
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from model.config import SVDConfig, tiny_world, tiny_world_dit
from model.clip import CLIPImageEncoder
from model.dit import DiT
from model.unet import UNet
from model.vae import VAE
from sampler.conditioning import clip_pixels
from sampler.schedule import edm_scalings
from weights.tiny import world

TRAIN_SEED_BASE = 1_000_000
HELD_OUT_SEEDS = 100_000
HERE = Path(__file__).resolve().parent
SHARD_BYTES = 16 * 2**20
FPS = 7


# ----------------------------------------------------------------------------- state on disk

def save_tensors(tensors: dict, folder: Path, stem: str):
    """Write tensors in fp16 as safetensors shards of at most 16 MB: stem-00.safetensors, ...

    fp16 keeps the state small enough to travel and to commit each session; the one rounding per
    session (relative 5e-4) is far below the noise of a training step.
    """
    from safetensors.torch import save_file
    for old in folder.glob(f"{stem}-*.safetensors"):
        old.unlink()
    shard, size, index = {}, 0, 0
    for key in sorted(tensors):
        t = tensors[key].detach().half().cpu().contiguous()
        if shard and size + t.numel() * 2 > SHARD_BYTES:
            save_file(shard, str(folder / f"{stem}-{index:02d}.safetensors"))
            shard, size, index = {}, 0, index + 1
        shard[key], size = t, size + t.numel() * 2
    save_file(shard, str(folder / f"{stem}-{index:02d}.safetensors"))


def load_tensors(folder: Path, stem: str) -> dict:
    from safetensors.torch import load_file
    out = {}
    for path in sorted(folder.glob(f"{stem}-*.safetensors")):
        out.update(load_file(str(path)))
    return out


MODEL_DIR = HERE / "sgi2v-tiny"                  # the shipped model = the EMA weights, fp16, diffusers layout
MODEL_FILES = {"vae": "vae/diffusion_pytorch_model.safetensors", "unet": "unet/diffusion_pytorch_model.safetensors",
               "clip": "image_encoder/model.safetensors",
               "dit": "transformer/diffusion_pytorch_model.safetensors"}   # diffusers' folder name for Wan
DIT_MODEL_DIR = HERE / "sgi2v-tiny-dit"          # the DiT beside it: its own transformer, sgi2v-tiny's VAE and CLIP


class Trainee:
    """One trained module, its EMA copy (fp32 while training) and its optimiser.

    On disk: the raw weights in the state folder (fp16 shards), the EMA weights as the shipped model
    file (fp16, diffusers names), so nothing is stored twice.
    """

    def __init__(self, name, module, lr, ema_decay, device):
        self.name, self.module, self.ema_decay = name, module.to(device), ema_decay
        self.ema = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
        self.opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99),
                                     fused=device.type == "cuda", capturable=device.type == "cuda")

    @torch.no_grad()
    def update_ema(self):
        params = [p for p in self.module.state_dict().values()]
        torch._foreach_lerp_(list(self.ema.values()), [p.float() for p in params], 1 - self.ema_decay)

    def save(self, state_dir: Path, model_dir: Path):
        from safetensors.torch import save_file
        save_tensors(self.module.state_dict(), state_dir, f"{self.name}_raw")
        path = model_dir / MODEL_FILES[self.name]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().cpu().contiguous() for k, v in self.ema.items()}, str(path))

    def load(self, state_dir: Path, model_dir: Path) -> bool:
        from safetensors.torch import load_file
        path = model_dir / MODEL_FILES[self.name]
        ema = load_file(str(path)) if path.exists() else {}
        raw = load_tensors(state_dir, f"{self.name}_raw") or ema   # no raw weights saved: resume from EMA
        if raw:
            self.module.load_state_dict(raw, strict=True)
            self.ema = {k: (ema or raw)[k].float().to(self.ema[k].device) for k in self.ema}
        return bool(raw)


def write_model_config(model_dir: Path, meta: dict):
    """sgi2v_config.json (what weights.load_svd builds the networks from) and TRAINING.json."""
    cfg = tiny_world()
    cfg.vae.scaling_factor = meta["scaling_factor"]
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "sgi2v_config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    summary = {k: meta[k] for k in ("vae_steps", "unet_steps", "scaling_factor")}
    (model_dir / "TRAINING.json").write_text(json.dumps(summary, indent=1) + "\n")


# ----------------------------------------------------------------------------- data

def world_config(cfg: SVDConfig) -> world.WorldConfig:
    return world.WorldConfig(height=cfg.sampling.height, width=cfg.sampling.width, frames=cfg.unet.num_frames)


def _draw(args):
    wcfg, seeds, difficulty = args
    return world.draw_scenes(wcfg, seeds, difficulty)


class SceneStream:
    """Scene parameters drawn on CPU worker processes ahead of time; rendered on the device."""

    def __init__(self, wcfg, batch, first_seed, dmax, device, workers=8):
        self.wcfg, self.batch, self.next_seed, self.dmax, self.device = wcfg, batch, first_seed, dmax, device
        # spawned, single-threaded workers: a forked child of a process whose OpenMP pool is running
        # deadlocks in its first parallel op (seen with 256-scene draws, where argsort goes parallel)
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=torch.set_num_threads, initargs=(1,)) if workers > 0 else None
        self.queue = [self._submit() for _ in range(2 * max(workers, 1))]

    def _submit(self):
        seeds = list(range(self.next_seed, self.next_seed + self.batch))
        self.next_seed += self.batch
        g = torch.Generator().manual_seed(seeds[0])
        difficulty = torch.rand(self.batch, generator=g) * self.dmax
        job = (self.wcfg, seeds, difficulty)
        return self.pool.submit(_draw, job) if self.pool else job

    def next(self):
        item = self.queue.pop(0)
        self.queue.append(self._submit())
        scenes = item.result() if self.pool else _draw(item)
        video = world.render(scenes, self.wcfg, self.device)
        return scenes.to(self.device), video

    def close(self):
        if self.pool:
            self.pool.shutdown(cancel_futures=True)


def sprite_mask(scenes, video):
    """(N, F, 1, H, W) 1 where a pixel is close to one of the scene's sprite colours."""
    rgb = (video + 1) / 2
    mask = torch.zeros_like(video[:, :, :1])
    for k in range(scenes.colour.shape[1]):
        c = scenes.colour[:, k][:, None, :, None, None]                          # (N, 1, 3, 1, 1)
        near = (((rgb - c) ** 2).sum(2, keepdim=True) < 0.3 ** 2).float()
        mask = torch.maximum(mask, near * scenes.valid[:, k].float()[:, None, None, None, None])
    return mask


# ----------------------------------------------------------------------------- losses

def landmark_mask(scenes, wcfg):
    """(N, F, 1, H, W) 1 where a background landmark shows (changes the background by > 0.05 of [-1, 1])."""
    return (world.landmark_layer(scenes, wcfg).abs().amax(2, keepdim=True) > 0.05).float()


def vae_loss(vae, video, mask, kl_weight=1e-6, decoder_only=False, colour_weight=0.0):
    """Weighted L1 + L2 reconstruction of clips through the temporal decoder, + tiny KL. mask (N, F, 1, H, W)
    is the extra weight per pixel (training: 8 on sprites, --landmark-weight on background landmarks).
    decoder_only: the encoder is frozen (no gradient), so its latent space, and the U-Net trained on it,
    stay valid while the decoder improves; it decodes the posterior mean, not a sample.
    colour_weight: + this x the L1 + L2 error of each frame's mean colour. The per-pixel loss left the
    decoded frames' mean colour drawn towards mid-grey (12.5 levels of 255 on average) although the
    latent carries it; this term targets that offset directly."""
    n, f = video.shape[:2]
    x = video.flatten(0, 1)                                                       # (N*F, 3, H, W)
    with torch.set_grad_enabled(not decoder_only):
        moments = vae.quant_conv(vae.encoder(x))
    mean, logvar = moments.chunk(2, dim=1)
    logvar = logvar.clamp(-30, 20)
    # The whole-VAE stage decodes posterior samples (a VAE). The decoder-only stage decodes the posterior
    # mean: that is what the U-Net is trained to generate (vae.encode is the mode), and the posterior's
    # noise (std ~0.5 against a latent spread of ~0.75) made the decoder blur towards the mean colour.
    z = mean if decoder_only else mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    rec = vae.decode(z, f)
    err = rec.float() - x
    weight = 1 + mask.flatten(0, 1)
    rec_loss = (weight * (err.abs() + err ** 2)).mean()
    mean_err = err.mean(dim=(2, 3))                                               # (N*F, 3) mean colour error
    colour_loss = (mean_err.abs() + mean_err ** 2).mean()
    kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
    return rec_loss + colour_weight * colour_loss + kl_weight * kl, rec_loss


@torch.no_grad()
def prepare_unet_batch(vae, scenes, video, scaling_factor, clip=None):
    """The conditioning and targets of a batch, no gradient: (N, F, 3, H, W) video -> dict of tensors.
    With a (frozen) `clip`, the CLIP embedding "emb" (N, 1, D) replaces the CLIP input "pixels"."""
    n, f = video.shape[:2]
    first = video[:, 0]                                                              # (N, 3, H, W)
    aug = torch.exp(-3.0 + 0.5 * torch.randn(n, device=video.device))                # SVD's cond_aug prior
    if clip is not None:
        return {
            "x0": vae.encode(video.flatten(0, 1)).unflatten(0, (n, f)).float() * scaling_factor,  # (N, F, 4, h, w)
            "cond": vae.encode(first + aug[:, None, None, None] * torch.randn_like(first)).float(),  # (N, 4, h, w)
            "emb": clip(clip_pixels(first))[:, None].float(),                        # (N, 1, D)
            "ids": torch.stack([torch.full_like(aug, FPS - 1), scenes.motion_bucket.float(), aug], dim=1),  # (N, 3)
        }
    return {
        "x0": vae.encode(video.flatten(0, 1)).unflatten(0, (n, f)).float() * scaling_factor,  # (N, F, 4, h, w)
        "cond": vae.encode(first + aug[:, None, None, None] * torch.randn_like(first)).float(),  # (N, 4, h, w) unscaled
        "pixels": clip_pixels(first),                                                # (N, 3, 224, 224)
        "ids": torch.stack([torch.full_like(aug, FPS - 1), scenes.motion_bucket.float(), aug], dim=1),  # (N, 3)
    }


def unet_loss(unet, clip, batch, p_mean=0.3, p_std=1.6, p_drop=0.1):
    """SVD's EDM objective on one batch (see the module docstring). Static shapes, no host sync.
    `unet` is any denoiser with the U-Net's call (model/unet.py, model/dit.py); clip None: the batch
    holds the frozen CLIP's embedding "emb" (prepare_unet_batch with clip)."""
    x0, cond = batch["x0"], batch["cond"]
    n, f = x0.shape[:2]
    emb = clip(batch["pixels"])[:, None] if clip is not None else batch["emb"]     # (N, 1, D)
    keep = (torch.rand(n, device=x0.device) > p_drop).to(emb.dtype)                 # drop both conditions
    emb = emb * keep[:, None, None]
    cond = cond * keep[:, None, None, None].to(cond.dtype)
    sigma = torch.exp(p_mean + p_std * torch.randn(n, device=x0.device))            # (N,) log-normal
    s = sigma[:, None, None, None, None]
    x = x0 + s * torch.randn_like(x0)
    c_skip, c_out, c_in, c_noise = edm_scalings(s)
    inp = torch.cat([c_in * x, cond[:, None].expand(-1, f, -1, -1, -1).to(x.dtype)], dim=2)  # (N, F, 8, h, w)
    v = unet(inp, c_noise.reshape(n), emb, batch["ids"])
    denoised = c_skip * x + c_out * v.float()
    weight = (s ** 2 + 1) / s ** 2
    return (weight * (denoised - x0) ** 2).mean()


class TrainStep:
    """forward + backward + clip + AdamW + EMA of the U-Net (or DiT) and CLIP (None: frozen), optionally as
    ONE CUDA graph.

    The tiny U-Net launches ~12k kernels per step, so eager training is bound by launch overhead
    (measured on an H200: 308 ms per step of which 89 ms GPU work). Captured once, a step replays
    with a single launch. Inputs are copied into static tensors first; random draws inside the
    graph use the graph-safe generator, so every replay draws fresh noise.
    """

    def __init__(self, unet, clip, amp_dtype, use_graph, p_mean=0.3, p_std=1.6):
        self.unet, self.clip, self.amp_dtype, self.use_graph = unet, clip, amp_dtype, use_graph
        self.p_mean, self.p_std = p_mean, p_std
        self.trainees = [t for t in (unet, clip) if t is not None]
        self.params = [p for t in self.trainees for p in t.module.parameters()]
        self.graph, self.static, self.loss = None, None, None

    def zero_grad(self):
        for t in self.trainees:
            t.opt.zero_grad(set_to_none=True)

    def _step(self, batch):
        with torch.autocast(batch["x0"].device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None,
                            cache_enabled=False):
            loss = unet_loss(self.unet.module, self.clip.module if self.clip else None, batch, self.p_mean, self.p_std)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        for t in self.trainees:
            t.opt.step()
            t.update_ema()
        return loss.detach()

    def __call__(self, batch):
        if not self.use_graph:
            self.zero_grad()
            return self._step(batch)
        if self.graph is None:
            try:
                self._capture(batch)
            except RuntimeError as e:                          # keep training, eagerly, and say why
                print(f"CUDA graph capture failed, training eagerly: {e}", flush=True)
                self.use_graph, self.graph = False, None
                torch.cuda.synchronize()
                return self(batch)
        for k, v in batch.items():
            self.static[k].copy_(v)
        self.graph.replay()
        return self.loss

    def _capture(self, batch):
        self.static = {k: v.clone() for k, v in batch.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):                          # warm-up outside the capture, as required
            for _ in range(3):
                self.zero_grad()
                self._step(self.static)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.zero_grad()
        with torch.cuda.graph(self.graph):
            self.loss = self._step(self.static)


@torch.no_grad()
def latent_scaling_factor(cfg, vae_weights, video):
    """1 / std of the VAE encoder's latents on fresh scenes, as Stable Diffusion chose its 0.18215."""
    vae = VAE(cfg.vae).to(video.device)
    vae.load_state_dict(vae_weights)
    return float(1.0 / vae.encode(video.flatten(0, 1)).float().std())


# ----------------------------------------------------------------------------- main loops

WARMUP = 300


def lr_at(step, base, warmup=WARMUP):
    return base * min(1.0, (step + 1) / warmup)


def train(args):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = tiny_world()
    state_dir, model_dir = Path(args.state), Path(args.model_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    meta_path = state_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {
        "vae_steps": 0, "unet_steps": 0, "next_seed": TRAIN_SEED_BASE, "scaling_factor": None, "log": []}
    if "cuda" in device.type:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(meta["next_seed"])
    wcfg = world_config(cfg)
    if args.pan_prob is not None:
        wcfg = dataclasses.replace(wcfg, p_pan=args.pan_prob)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    vae = Trainee("vae", VAE(cfg.vae), args.lr_vae, 0.999, device)
    vae.load(state_dir, model_dir)
    deadline = time.time() + args.minutes * 60
    scenes_per_draw = args.batch * (args.prep_chunk if args.stage == "unet" else 1)
    stream = SceneStream(wcfg, scenes_per_draw, meta["next_seed"], args.dmax, device, args.workers)
    try:
        if args.stage in ("vae", "decoder"):
            decoder_only = args.stage == "decoder"
            if decoder_only:
                assert meta["scaling_factor"], "train the whole VAE first (--stage vae)"
                vae.module.encoder.requires_grad_(False), vae.module.quant_conv.requires_grad_(False)
            meta.setdefault("decoder_steps", 0)
            t0, k0 = time.time(), meta["vae_steps"]
            while time.time() < deadline and (args.max_steps is None or meta["vae_steps"] - k0 < args.max_steps):
                scenes, video = stream.next()
                mask = 8 * sprite_mask(scenes, video)[: args.vae_batch]
                if args.landmark_weight:
                    mask = torch.maximum(mask, args.landmark_weight * landmark_mask(scenes.index(slice(0, args.vae_batch)), wcfg))
                video = video[: args.vae_batch]
                for group in vae.opt.param_groups:
                    group["lr"] = lr_at(meta["vae_steps"], args.lr_vae)
                with amp:
                    loss, rec = vae_loss(vae.module, video, mask, decoder_only=decoder_only,
                                         colour_weight=args.colour_weight)
                vae.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(vae.module.parameters(), 1.0)
                vae.opt.step()
                vae.update_ema()
                meta["vae_steps"] += 1
                meta["decoder_steps"] += decoder_only
                if meta["vae_steps"] % args.log_every == 0:
                    rate = (meta["vae_steps"] - k0) / (time.time() - t0)
                    meta["log"].append({"stage": "vae", "step": meta["vae_steps"], "loss": rec.item(), "steps_per_s": rate})
                    print(f"vae step {meta['vae_steps']} rec {rec.item():.4f} {rate:.1f} it/s", flush=True)
            if not decoder_only:                                # the encoder changed: new scaling factor
                meta["scaling_factor"] = latent_scaling_factor(cfg, vae.ema, stream.next()[1])
            print(f"scaling factor {meta['scaling_factor']:.5f}")
            vae.save(state_dir, model_dir)
        else:
            assert meta["scaling_factor"], "train the VAE first (--stage vae)"
            frozen = VAE(cfg.vae).to(device).eval().requires_grad_(False)
            frozen.load_state_dict(vae.ema)
            unet = Trainee("unet", UNet(cfg.unet), args.lr, args.ema, device)
            clip = Trainee("clip", CLIPImageEncoder(cfg.clip), args.lr, args.ema, device)
            unet.load(state_dir, model_dir), clip.load(state_dir, model_dir)
            if meta["unet_steps"] < WARMUP and args.cuda_graph:
                raise SystemExit(f"--cuda-graph needs a constant learning rate: run {WARMUP} eager steps first")
            step = TrainStep(unet, clip, torch.bfloat16 if device.type == "cuda" else None, args.cuda_graph,
                             args.p_mean, args.p_std)
            t0, k0 = time.time(), meta["unet_steps"]
            ready = []                                          # prepared batches, args.prep_chunk at a time
            while time.time() < deadline and (args.max_steps is None or meta["unet_steps"] - k0 < args.max_steps):
                if not ready:
                    scenes, video = stream.next()
                    with amp:
                        chunk = prepare_unet_batch(frozen, scenes, video, meta["scaling_factor"])
                    ready = [{k: v[i * args.batch:(i + 1) * args.batch] for k, v in chunk.items()}
                             for i in range(args.prep_chunk)]
                for trainee in (unet, clip):
                    for group in trainee.opt.param_groups:
                        group["lr"] = lr_at(meta["unet_steps"], args.lr)
                loss = step(ready.pop(0))
                meta["unet_steps"] += 1
                if meta["unet_steps"] % args.log_every == 0:
                    rate = (meta["unet_steps"] - k0) / (time.time() - t0)
                    meta["log"].append({"stage": "unet", "step": meta["unet_steps"], "loss": loss.item(), "steps_per_s": rate,
                                        "p_mean": args.p_mean, "pan_prob": args.pan_prob})
                    print(f"unet step {meta['unet_steps']} loss {loss.item():.4f} {rate:.1f} it/s", flush=True)
            unet.save(state_dir, model_dir), clip.save(state_dir, model_dir)
    finally:
        meta["next_seed"] = stream.next_seed
        stream.close()
    meta_path.write_text(json.dumps(meta, indent=1))
    if meta["scaling_factor"]:
        write_model_config(model_dir, meta)
    print(f"saved to {state_dir} and {model_dir}: vae {meta['vae_steps']} steps, unet {meta['unet_steps']} steps")


def load_frozen(module, path: Path, device):
    """`module` with the weights of one safetensors file, on `device`, in eval mode, without gradients."""
    from safetensors.torch import load_file
    module.load_state_dict(load_file(str(path)), strict=True)
    return module.to(device).eval().requires_grad_(False)


def write_dit_model_files(model_dir: Path, base_dir: Path, meta: dict):
    """The DiT model folder beside its transformer: copies of the base model's VAE and CLIP (frozen in
    training, so the same files), sgi2v_config.json (tiny_world_dit, the base's latent scaling factor) and
    TRAINING.json."""
    for part in ("vae", "clip"):
        target = model_dir / MODEL_FILES[part]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base_dir / MODEL_FILES[part], target)
    cfg = tiny_world_dit()
    cfg.vae.scaling_factor = meta["scaling_factor"]
    (model_dir / "sgi2v_config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    summary = {k: meta[k] for k in ("dit_steps", "scaling_factor", "base_model", "base_training")}
    (model_dir / "TRAINING.json").write_text(json.dumps(summary, indent=1) + "\n")


def base_model_config(base_dir: Path) -> tuple:
    """(SVDConfig, TRAINING.json dict) of the U-Net model whose VAE and CLIP the DiT reuses."""
    path = base_dir / "sgi2v_config.json"
    if not path.is_file():
        raise SystemExit(f"--base-model {base_dir}: no sgi2v_config.json (expected a tiny model folder such as "
                         f"{MODEL_DIR.name}/ with vae/ and image_encoder/)")
    for part in ("vae", "clip"):
        if not (base_dir / MODEL_FILES[part]).is_file():
            raise SystemExit(f"--base-model {base_dir}: {MODEL_FILES[part]} is missing")
    training = base_dir / "TRAINING.json"
    return (SVDConfig.from_dict(json.loads(path.read_text())),
            json.loads(training.read_text()) if training.is_file() else {})


def train_dit(args):
    """The DiT stage: a Wan-style transformer as the denoiser, VAE and CLIP frozen from --base-model."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg, base_dir = tiny_world_dit(), Path(args.base_model)
    base_cfg, base_training = base_model_config(base_dir)
    state_dir, model_dir = Path(args.state), Path(args.model_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    meta_path = state_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {
        "dit_steps": 0, "next_seed": TRAIN_SEED_BASE, "scaling_factor": base_cfg.vae.scaling_factor,
        "base_model": base_dir.name, "base_training": base_training, "log": []}
    if abs(meta["scaling_factor"] - base_cfg.vae.scaling_factor) > 1e-9:
        raise SystemExit(f"--base-model {base_dir}: its VAE scaling factor {base_cfg.vae.scaling_factor} is not the "
                         f"{meta['scaling_factor']} this DiT was trained with ({meta_path}): a retrained VAE has "
                         "another latent space")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(meta["next_seed"])
    wcfg = world_config(cfg)
    if args.pan_prob is not None:
        wcfg = dataclasses.replace(wcfg, p_pan=args.pan_prob)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    amp_dtype = torch.bfloat16 if device.type == "cuda" else None
    if args.cuda_graph and device.type != "cuda":
        raise SystemExit(f"--cuda-graph needs a CUDA device, not {device}")

    vae = load_frozen(VAE(cfg.vae), base_dir / MODEL_FILES["vae"], device)
    clip = load_frozen(CLIPImageEncoder(cfg.clip), base_dir / MODEL_FILES["clip"], device)
    dit = Trainee("dit", DiT(cfg.unet).init_weights(), args.lr, args.ema, device)
    resumed = dit.load(state_dir, model_dir)
    print(f"DiT {sum(p.numel() for p in dit.module.parameters()):,} parameters, "
          f"{'resumed at step ' + str(meta['dit_steps']) if resumed else 'from scratch'}", flush=True)

    def make_step():
        graph = args.cuda_graph and meta["dit_steps"] >= args.warmup     # a graph bakes in a constant lr
        return TrainStep(dit, None, amp_dtype, graph, args.p_mean, args.p_std)

    deadline = time.time() + args.minutes * 60
    stream = SceneStream(wcfg, args.batch * args.prep_chunk, meta["next_seed"], args.dmax, device, args.workers)
    try:
        step = make_step()
        t0, k0, ready = time.time(), meta["dit_steps"], []
        while time.time() < deadline and (args.max_steps is None or meta["dit_steps"] - k0 < args.max_steps):
            if not ready:
                scenes, video = stream.next()
                with amp:
                    chunk = prepare_unet_batch(vae, scenes, video, meta["scaling_factor"], clip)
                ready = [{k: v[i * args.batch:(i + 1) * args.batch] for k, v in chunk.items()}
                         for i in range(args.prep_chunk)]
            if args.cuda_graph and not step.use_graph and meta["dit_steps"] >= args.warmup:
                step = make_step()                                       # warm-up done: capture the graph now
            for group in dit.opt.param_groups:
                group["lr"] = lr_at(meta["dit_steps"], args.lr, args.warmup)
            loss = step(ready.pop(0))
            meta["dit_steps"] += 1
            if meta["dit_steps"] % args.log_every == 0:
                rate = (meta["dit_steps"] - k0) / (time.time() - t0)
                meta["log"].append({"stage": "dit", "step": meta["dit_steps"], "loss": loss.item(), "steps_per_s": rate,
                                    "lr": args.lr, "batch": args.batch, "p_mean": args.p_mean, "pan_prob": args.pan_prob,
                                    "graph": step.use_graph})
                print(f"dit step {meta['dit_steps']} loss {loss.item():.4f} {rate:.2f} it/s", flush=True)
        dit.save(state_dir, model_dir)
    finally:
        meta["next_seed"] = stream.next_seed
        stream.close()
    meta_path.write_text(json.dumps(meta, indent=1))
    write_dit_model_files(model_dir, base_dir, meta)
    print(f"saved to {state_dir} and {model_dir}: dit {meta['dit_steps']} steps")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["vae", "decoder", "unet"], default="unet",
                   help="vae: the whole VAE (sets the latent scaling factor); decoder: the VAE decoder only, "
                        "encoder frozen (keeps the U-Net's latent space); unet: the U-Net and CLIP")
    p.add_argument("--backbone", choices=["unet", "dit"], default="unet",
                   help="the denoiser of --stage unet: the U-Net (with CLIP, weights/tiny/sgi2v-tiny) or the Wan-style "
                        "video transformer (model/dit.py; VAE and CLIP frozen from --base-model; "
                        "weights/tiny/sgi2v-tiny-dit)")
    p.add_argument("--base-model", default=str(MODEL_DIR),
                   help="--backbone dit: the tiny model folder whose VAE and CLIP are reused (frozen)")
    p.add_argument("--warmup", type=int, default=WARMUP,
                   help="--backbone dit: steps of linear learning-rate warm-up, run eagerly (--cuda-graph captures the "
                        f"graph after them); the U-Net stage keeps its {WARMUP}")
    p.add_argument("--minutes", type=float, default=8.5, help="wall-clock budget of this call")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (tests)")
    p.add_argument("--state", default=None,
                   help="resumable state folder (default weights/tiny/train_state, train_state_dit for --backbone dit)")
    p.add_argument("--batch", type=int, default=32, help="scenes per U-Net step")
    p.add_argument("--prep-chunk", type=int, default=4,
                   help="U-Net stage: render and encode this many batches at once (the eager data preparation "
                        "is launch-bound, so larger chunks cost fewer launches per step)")
    p.add_argument("--vae-batch", type=int, default=16, help="clips per VAE step")
    p.add_argument("--lr", type=float, default=2e-4, help="U-Net and CLIP learning rate")
    p.add_argument("--lr-vae", type=float, default=4e-4, help="VAE learning rate")
    p.add_argument("--colour-weight", type=float, default=0.0,
                   help="vae/decoder stages: weight of the per-frame mean-colour error term (0: off)")
    p.add_argument("--landmark-weight", type=float, default=4.0,
                   help="vae/decoder stages: extra loss weight on background-landmark pixels (sprites get 8, the "
                        "rest 0: every pixel also has weight 1)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the U-Net and CLIP weights")
    p.add_argument("--dmax", type=float, default=0.3, help="scene difficulty drawn uniformly in [0, dmax]")
    p.add_argument("--pan-prob", type=float, default=None,
                   help="probability of a camera pan at difficulty 1 (scaled by difficulty, capped at 1; default: "
                        f"the world's {world.WorldConfig.p_pan}); higher shows the U-Net more camera motion")
    p.add_argument("--p-mean", type=float, default=0.3,
                   help="mean of ln(sigma) in U-Net training (EDM's P_mean; std --p-std): higher trains more at the "
                        "high noise levels where a video's global motion, e.g. a camera pan, is decided")
    p.add_argument("--p-std", type=float, default=1.6, help="std of ln(sigma) in U-Net training (EDM's P_std)")
    p.add_argument("--cuda-graph", action="store_true", help="capture the U-Net training step as one CUDA graph")
    p.add_argument("--workers", type=int, default=8, help="CPU processes drawing scene parameters")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--model-dir", default=None,
                   help="the shipped model folder, holding the EMA weights (default weights/tiny/sgi2v-tiny, "
                        "sgi2v-tiny-dit for --backbone dit)")
    args = p.parse_args()
    if args.colour_weight < 0:
        p.error(f"--colour-weight {args.colour_weight}: expected a weight >= 0")
    if args.landmark_weight < 0:
        p.error(f"--landmark-weight {args.landmark_weight}: expected a weight >= 0")
    if args.pan_prob is not None and args.pan_prob < 0:
        p.error(f"--pan-prob {args.pan_prob}: expected a probability scale >= 0")
    if args.p_std <= 0:
        p.error(f"--p-std {args.p_std}: expected a standard deviation > 0")
    if args.prep_chunk < 1:
        p.error(f"--prep-chunk {args.prep_chunk}: expected a number of batches >= 1")
    if args.warmup < 1:
        p.error(f"--warmup {args.warmup}: expected a number of steps >= 1")
    for flag in ("batch", "lr", "minutes"):
        if getattr(args, flag) <= 0:
            p.error(f"--{flag} {getattr(args, flag)}: expected a value > 0")
    if args.max_steps is not None and args.max_steps < 1:
        p.error(f"--max-steps {args.max_steps}: expected a number of steps >= 1")
    if not 0 <= args.ema < 1:
        p.error(f"--ema {args.ema}: expected a decay in [0, 1)")
    dit = args.backbone == "dit"
    if dit and args.stage != "unet":
        p.error(f"--backbone dit trains the denoiser only (--stage unet); the VAE stages (--stage {args.stage}) "
                "belong to the U-Net model")
    args.state = args.state or str(HERE / ("train_state_dit" if dit else "train_state"))
    args.model_dir = args.model_dir or str(DIT_MODEL_DIR if dit else MODEL_DIR)
    if dit and Path(args.model_dir).resolve() == Path(args.base_model).resolve():
        p.error(f"--model-dir {args.model_dir}: is the --base-model; the DiT needs a folder of its own")
    train_dit(args) if dit else train(args)


if __name__ == "__main__":
    main()
