"""SG-I2V: self-guided trajectory control in image-to-video generation (Namekata et al., ICLR 2025),
on Stable Video Diffusion, zero-shot. Start reading here.

Inputs: an image, boxes on it and a path for each box's centre over the frames (trajectory.py).
At the steps of a window early in denoising (t = 45..30 of 50), before the ordinary denoising step,
the noisy latent z_t is itself optimised so that the object inside each box follows its path:
  1. features.py   (Sec. 3.2) run the conditional U-Net branch up to the middle-resolution up stage,
                   and re-run its spatial self-attention with the FIRST frame's keys and values: the
                   features of one object then agree across frames (semantically aligned);
  2. loss.py       (Sec. 3.3, Eq. 1) the features inside each box in frame n should equal the
                   frame-0 features inside the frame-0 box (Gaussian-weighted mean squared error);
  3. optimize.py   (Sec. 3.3) a few AdamW iterations on z_t, a fresh optimiser at every step;
  4. frequency.py  (Sec. 3.4, Eq. 2) keep the optimised latent's low frequencies and take the high
                   ones back from z_t before optimisation (optimisation leaves artefacts there).
backbone.py is the adapter to the U-Net (module addresses, the truncated conditional forward);
freetraj.py is the FreeTraj-style baseline of Table 1. With sampler.conditioning.generate, a model's own
settings (svd.cfg: sampling and SG-I2V defaults, as run.py uses them) come from its config:

    cfg, traj = SGI2VConfig.from_model(svd.cfg), rescale(traj, (W, H))   # W, H: the video's size
    frames = generate(svd.unet, svd.vae, svd.clip, image, config=svd.cfg,
                      make_on_step=lambda c, sigmas: make_step_hook(cfg, svd.unet, c, latent_boxes(traj),
                                                                    len(sigmas) - 1))
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch

from guidance.features import SOURCES, extract_features, extract_features_compiled
from guidance.frequency import restore_high_frequency
from guidance.freetraj import copy_noise_along_boxes
from guidance.loss import HEATMAPS
from guidance.optimize import optimize_latent

BASELINES = (None, "freetraj")
# The SGI2VConfig fields a model config may set in its `guidance` dict (model/config.py SVDConfig.guidance)
MODEL_FIELDS = ("layers", "window", "iterations", "lr", "cutoff")


@dataclass
class SGI2VConfig:
    """Every hyper-parameter and switch of the method. `SGI2VConfig()` holds the paper's values (what full
    SVD uses); `SGI2VConfig.from_model(svd.cfg)` a model's own (the tiny model's differ: model/config.py)."""
    layers: tuple = ((2, 1), (2, 2))   # (up block, transformer) layers of the loss: M2, M3 (Fig. 6)
    feature_source: str = "aligned"    # features.SOURCES: "aligned" (Sec. 3.2) or an ablation (Fig. 5, Table 1)
    window: tuple = (0.1, 0.4)         # optimise step i when window[0] <= i / num_steps <= window[1] (Fig. 10)
    iterations: int = 5                # AdamW iterations per optimised step
    lr: float = 0.21                   # AdamW learning rate (Fig. 9)
    cutoff: float | None = 0.5         # gamma of the Eq. 2 low-pass; None: no restore (Fig. 8)
    order: int = 4                     # Butterworth order n of that low-pass
    weighting: str = "gaussian"        # weights inside a box: "gaussian" or "uniform" (Table 2)
    baseline: str | None = None        # None: SG-I2V; "freetraj": copy the initial noise along the boxes

    def __post_init__(self):
        self.layers = tuple(tuple(layer) for layer in self.layers)
        self.window = tuple(self.window)
        for name, value, allowed in (("feature_source", self.feature_source, SOURCES),
                                     ("weighting", self.weighting, tuple(HEATMAPS)),
                                     ("baseline", self.baseline, BASELINES)):
            if value not in allowed:
                raise ValueError(f"{name} = {value!r}: expected one of {allowed}")
        if not 0 <= self.window[0] <= self.window[1] <= 1:
            raise ValueError(f"window = {self.window}: expected 0 <= start <= end <= 1")

    @classmethod
    def from_model(cls, model_cfg, **overrides) -> "SGI2VConfig":
        """The settings for one model: the paper's defaults, then the model config's own `guidance` values
        (model_cfg: an SVDConfig, e.g. `svd.cfg`; SVD has none, sgi2v-tiny its tuned layers, window, lr,
        iterations and cut-off; a config's "cutoff": null means no restore), then `overrides`.
        Raises ValueError naming the model config and the field for a field it may not set or a bad value."""
        unknown = sorted(set(model_cfg.guidance) - set(MODEL_FIELDS))
        if unknown:
            raise ValueError(f"model config {model_cfg.name}: guidance fields {unknown} are not supported; "
                             f"expected some of {list(MODEL_FIELDS)}")
        try:
            model = cls(**model_cfg.guidance)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model config {model_cfg.name}: guidance {e}") from e
        return replace(model, **overrides)


def optimised_steps(num_steps: int, window=(0.1, 0.4)) -> list:
    """Steps i (0-based) with window[0] <= i / num_steps <= window[1], both ends included (1e-9 slack
    for decimal fractions): i = 5..20 of 50 (the paper's t = 50 - i in 30..45), 3..10 of 25, 2..6 of 16."""
    return [i for i in range(num_steps) if window[0] - 1e-9 <= i / num_steps <= window[1] + 1e-9]


def make_step_hook(cfg: SGI2VConfig, unet, conditioning, latent_boxes, num_steps: int, autocast_dtype=None,
                   losses: dict = None, on_loss=None, compile_backend: str | None = None):
    """on_step(i, x, sigma) -> x for sample_euler (generate's make_on_step builds it). conditioning:
    generate's [uncond, cond] Conditioning (only the conditional half is used); latent_boxes (B, F, 4)
    from trajectory.latent_boxes; autocast_dtype: see backbone.conditional_forward. Each optimised step
    i stores its per-iteration losses in `losses[i]` (if given) and calls on_loss(i, those losses).
    compile_backend: e.g. "inductor" runs the feature extraction (forward and backward) through
    torch.compile with that backend (features.extract_features_compiled); None: eager."""
    cond, steps = conditioning.cond(), set(optimised_steps(num_steps, cfg.window))
    float16_forward = (autocast_dtype or next(unet.parameters()).dtype) == torch.float16
    features = (partial(extract_features_compiled, backend=compile_backend) if compile_backend else extract_features)

    def on_step(i, x, sigma):                                          # x (1, F, 4, h, w)
        if cfg.baseline == "freetraj":
            return copy_noise_along_boxes(x, latent_boxes) if i == 0 else x
        if i not in steps:
            return x

        def features_of(z):                                            # (1, F, 4, h, w) -> (F, h, w, C)
            return features(unet, z, sigma, cond, cfg.feature_source, cfg.layers, autocast_dtype)
        z_optimised, step_losses = optimize_latent(features_of, x, latent_boxes, cfg.iterations, cfg.lr,
                                                   cfg.weighting, scale_gradients=float16_forward)
        if losses is not None:
            losses[i] = step_losses
        if on_loss is not None:
            on_loss(i, step_losses)
        return restore_high_frequency(z_optimised, x, cfg.cutoff, cfg.order).to(x.dtype)   # Eq. 2
    return on_step
