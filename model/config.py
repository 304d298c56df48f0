"""Configurations of the three SVD networks, with named presets.

Every field mirrors a value of the official config files (diffusers layout: unet/config.json,
vae/config.json, image_encoder/config.json); see docs/svd.md §1.
The denoiser may also be a video diffusion transformer (DiTConfig, model/dit.py): SVDConfig.backbone
says which, and SVDConfig.unet then holds the DiTConfig (the field keeps its name for compatibility).
"""
from dataclasses import asdict, dataclass, field, fields
from typing import Optional


@dataclass
class UNetConfig:
    in_channels: int = 8                          # 4 noisy latent + 4 conditioning-image latent channels
    out_channels: int = 4                         # v-prediction, one value per latent channel
    block_out_channels: tuple = (320, 640, 1280, 1280)  # channels of the 4 resolution levels
    num_attention_heads: tuple = (5, 10, 20, 20)  # heads per level (head dim = channels / heads = 64)
    layers_per_block: int = 2                     # resnets per down block (up blocks have one more)
    cross_attention_dim: int = 1024               # width of the CLIP image embedding
    addition_time_embed_dim: int = 256            # sinusoid width per added time id (fps-1, motion, aug)
    num_frames: int = 14                          # frames the network was trained for (14 or 25)

    @property
    def time_embed_dim(self) -> int:             # width of the timestep embedding fed to resnets
        return self.block_out_channels[0] * 4

    @property
    def projection_class_embeddings_input_dim(self) -> int:  # 3 added ids x sinusoid width
        return 3 * self.addition_time_embed_dim


@dataclass
class DiTConfig:
    """A Wan-2.x-style video transformer (model/dit.py). Field names are those of diffusers'
    WanTransformer3DModel config.json, except the last two, which are ours."""
    patch_size: tuple = (1, 2, 2)                 # (frames, h, w) latent cells per token
    num_attention_heads: int = 4                  # heads of every attention
    attention_head_dim: int = 64                  # width per head; model width = heads * head dim
    in_channels: int = 8                          # 4 noisy latent + 4 conditioning-image latent channels
    out_channels: int = 4                         # v-prediction, one value per latent channel
    text_dim: int = 64                            # width of the cross-attention context (Wan: T5's 4096;
                                                  # here the CLIP image embedding's projection_dim)
    freq_dim: int = 256                           # sinusoid width of the timestep
    ffn_dim: int = 768                            # hidden width of each block's feed-forward
    num_layers: int = 8                           # transformer blocks
    cross_attn_norm: bool = True                  # affine LayerNorm before the cross-attention
    qk_norm: str = "rms_norm_across_heads"        # RMSNorm of q and k over all heads (the only kind Wan uses)
    eps: float = 1e-6                             # of every norm
    image_dim: Optional[int] = None               # Wan I2V: width of the CLIP image tokens (1280); None: T2V
    added_kv_proj_dim: Optional[int] = None       # Wan I2V: the image tokens' extra k/v projections (= dim)
    rope_max_seq_len: int = 1024                  # positions per axis the rotary table covers
    time_ids_dim: Optional[int] = None            # ours: sinusoid width per SVD added time id (fps - 1, motion
                                                  # bucket, noise aug), summed into the timestep embedding;
                                                  # None in a plain Wan config
    num_frames: int = 8                           # ours: frames the model was trained for

    @property
    def dim(self) -> int:                         # model width
        return self.num_attention_heads * self.attention_head_dim

    @property
    def cross_attention_dim(self) -> int:         # what the pipeline feeds as encoder_hidden_states (CLIP)
        return self.text_dim


@dataclass
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple = (128, 256, 512, 512)  # encoder levels; the decoder mirrors them
    layers_per_block: int = 2                    # resnets per encoder level (decoder levels have one more)
    scaling_factor: float = 0.18215              # diffusion latents = mode * scaling_factor


@dataclass
class CLIPConfig:
    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16                # head dim 80
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 1024                   # = UNetConfig.cross_attention_dim
    layer_norm_eps: float = 1e-5
    image_mean: tuple = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class SamplingDefaults:
    """What `python run.py` and `generate(..., config=cfg)` use unless told otherwise (SG-I2V's reference run
    for full SVD)."""
    height: int = 576
    width: int = 1024
    num_steps: int = 50
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    decode_chunk_size: int = 8


@dataclass
class SVDConfig:
    name: str = "svd"
    # the denoiser: "unet" (UNetConfig, model/unet.py) or "dit" (DiTConfig, model/dit.py), held in `unet`
    backbone: str = "unet"
    unet: object = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    # SG-I2V settings of this model that differ from the paper's (guidance/sg_i2v.py SGI2VConfig field ->
    # value); empty for SVD, which uses the paper's. SGI2VConfig.from_model(cfg) applies them, for run.py
    # (whose flags override them) and for library users alike.
    guidance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "SVDConfig":
        """Inverse of to_dict; unknown fields are an error so that a typo in a config file is caught."""
        backbones = {"unet": UNetConfig, "dit": DiTConfig}
        backbone = d.get("backbone", "unet")
        if backbone not in backbones:
            raise ValueError(f"backbone {backbone!r}: expected one of {sorted(backbones)}")
        parts = {"unet": backbones[backbone], "vae": VAEConfig, "clip": CLIPConfig, "sampling": SamplingDefaults}
        allowed = {f.name for f in fields(SVDConfig)}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"unknown SVDConfig fields {sorted(unknown)}; expected some of {sorted(allowed)}")
        kwargs = {}
        for key, value in d.items():
            if key in parts:
                cls = parts[key]
                names = {f.name for f in fields(cls)}
                bad = set(value) - names
                if bad:
                    raise ValueError(f"unknown {key} config fields {sorted(bad)}; expected some of {sorted(names)}")
                value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
                kwargs[key] = cls(**value)
            else:
                kwargs[key] = value
        return SVDConfig(**kwargs)


def svd() -> SVDConfig:
    """stabilityai/stable-video-diffusion-img2vid: 14 frames."""
    return SVDConfig(name="svd", unet=UNetConfig(num_frames=14))


def svd_xt() -> SVDConfig:
    """stabilityai/stable-video-diffusion-img2vid-xt: 25 frames, same architecture."""
    return SVDConfig(name="svd_xt", unet=UNetConfig(num_frames=25))


def tiny() -> SVDConfig:
    """A few-thousand-parameter SVD for unit tests: same structure (4 levels, 2 layers per block)."""
    return SVDConfig(
        name="tiny-test",
        unet=UNetConfig(block_out_channels=(32, 32, 64, 64), num_attention_heads=(2, 2, 4, 4),
                        cross_attention_dim=32, addition_time_embed_dim=8, num_frames=4),
        vae=VAEConfig(block_out_channels=(32, 32, 64, 64)),
        clip=CLIPConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        patch_size=14, image_size=224, projection_dim=32),
        sampling=SamplingDefaults(height=64, width=64, num_steps=4, decode_chunk_size=2),
    )


def tiny_world() -> SVDConfig:
    """sgi2v-tiny: the model trained here on the procedural world (weights/tiny/), 128x128 px, 8 frames.

    SVD's structure at a fraction of the width: 4 levels, 2 layers per block, spatial+temporal
    transformers at the same places, head dim 32. ~7.9M parameters in all (under 16 MB in fp16).
    Its VAE scaling factor and sampling defaults are overwritten by the shipped sgi2v_config.json.
    """
    return SVDConfig(
        name="sgi2v-tiny",
        unet=UNetConfig(block_out_channels=(32, 64, 64, 64), num_attention_heads=(1, 2, 2, 2),
                        cross_attention_dim=64, addition_time_embed_dim=32, num_frames=8),
        vae=VAEConfig(block_out_channels=(32, 32, 64, 64), scaling_factor=1.0),
        clip=CLIPConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=2,
                        patch_size=14, image_size=224, projection_dim=64),
        # motion bucket 80 ~ the world's median scene speed (1.9 px/frame at 128 px); CFG to 2.5
        sampling=SamplingDefaults(height=128, width=128, num_steps=16, motion_bucket_id=80, max_guidance=2.5,
                                  decode_chunk_size=8),
        # SG-I2V settings of this model (docs/tiny-world-control.md, "How the tiny model's SG-I2V defaults were
        # chosen"): the paper's lr 0.21 x 5 iterations at layers (2,1),(2,2) (8x8 here) barely moves sprites (16
        # steps, a 16x16 latent), so the full-resolution layers (3,1),(3,2) and 10 iterations are added; Eq. 2's
        # cut-off 0.75 and window 0.2-0.6 (steps 4-9 of 16, sigma 119 to 5) at lr 0.3, each by a rule fixed
        # before its sweep on 64 tuning tasks: a small lr lets the optimisation act where the tiny model decides
        # motion without breaking the image
        guidance={"layers": [[2, 1], [2, 2], [3, 1], [3, 2]], "window": [0.2, 0.6], "lr": 0.3, "iterations": 10,
                  "cutoff": 0.75},
    )


def tiny_world_dit() -> SVDConfig:
    """sgi2v-tiny-dit: the tiny world's second model, a Wan-style video transformer in place of the U-Net
    (same VAE, CLIP, sampling). A 16x16x8 latent in (1, 2, 2) patches: 8x8 tokens per frame, 512 tokens,
    full spatio-temporal attention. Width 256 (4 heads of 64), 8 blocks, feed-forward 768 (3x, Wan's
    ratio is 2.7x): 8.13M parameters (the U-Net: 5.97M); 15 GFLOP per batch-2 forward against its 8.3. SG-I2V settings: none yet (the paper's, until tuned on this model)."""
    base = tiny_world()
    return SVDConfig(
        name="sgi2v-tiny-dit", backbone="dit",
        unet=DiTConfig(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=8,
                       out_channels=4, text_dim=base.clip.projection_dim, freq_dim=256, ffn_dim=768, num_layers=8,
                       time_ids_dim=64, num_frames=base.unet.num_frames),
        vae=base.vae, clip=base.clip, sampling=base.sampling, guidance={})


PRESETS = {"svd": svd, "svd_xt": svd_xt, "tiny-test": tiny, "sgi2v-tiny": tiny_world, "sgi2v-tiny-dit": tiny_world_dit}
