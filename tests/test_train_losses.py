"""The tiny model's VAE training loss (weights/tiny/train.py: vae_loss), on a stand-in autoencoder whose
decoder output is known exactly, so each term can be checked by hand."""
import torch

from weights.tiny.train import vae_loss


class ShiftVAE(torch.nn.Module):
    """encoder = identity (mean = the input, log-variance 0: a posterior of std 1); decode adds `shift`."""

    def __init__(self, shift):
        super().__init__()
        self.shift = shift
        self.encoder = torch.nn.Identity()

    def quant_conv(self, x):                                   # (B, 3, H, W) -> (B, 6, H, W): mean, logvar
        return torch.cat([x, torch.zeros_like(x)], dim=1)

    def decode(self, z, num_frames):
        return z + self.shift


def clip(seed=0):
    return torch.rand(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1   # (N, F, 3, H, W)


def test_decoder_stage_decodes_the_posterior_mean():
    """decoder_only: no posterior sample, so an exact decoder has zero reconstruction error and the loss is
    deterministic; the whole-VAE stage samples (std 1 here), so it does not."""
    video, mask = clip(), torch.zeros(2, 3, 1, 8, 8)
    _, rec = vae_loss(ShiftVAE(0.0), video, mask, decoder_only=True)
    assert rec.item() == 0.0
    _, rec_sampled = vae_loss(ShiftVAE(0.0), video, mask, decoder_only=False)
    assert rec_sampled.item() > 0.5


def test_colour_term_is_the_frame_mean_error():
    """A decoder off by a constant c per channel: the colour term is mean over channels of |c| + c^2,
    weighted by colour_weight, on top of the unchanged reconstruction term."""
    c = torch.tensor([0.1, -0.2, 0.05])[:, None, None]
    video, mask = clip(1), torch.zeros(2, 3, 1, 8, 8)
    vae = ShiftVAE(c)
    base, rec0 = vae_loss(vae, video, mask, decoder_only=True, colour_weight=0.0)
    total, rec3 = vae_loss(vae, video, mask, decoder_only=True, colour_weight=3.0)
    expected = (c.abs() + c ** 2).mean()
    assert torch.allclose(rec0, rec3)
    assert torch.allclose(total - base, 3.0 * expected, atol=1e-6), (total - base, 3.0 * expected)


def test_unet_loss_draws_ln_sigma_from_p_mean_and_p_std():
    """--p-mean / --p-std reach the noise draw: c_noise = 0.25 ln sigma, so 4 c_noise ~ N(p_mean, p_std).
    4096 draws: the sample mean is within 0.1 (4 standard errors of 1.6 / 64) of p_mean."""
    from weights.tiny.train import unet_loss
    seen = []

    def unet(inp, c_noise, emb, ids):                          # a stand-in that records the noise level
        seen.append(c_noise.float())
        return torch.zeros(inp.shape[0], inp.shape[1], 4, *inp.shape[3:])

    n = 4096
    batch = {"x0": torch.zeros(n, 1, 4, 1, 1), "cond": torch.zeros(n, 4, 1, 1), "pixels": torch.zeros(n, 3),
             "ids": torch.zeros(n, 3)}
    torch.manual_seed(0)
    for p_mean in (0.3, 1.0):
        seen.clear()
        unet_loss(unet, lambda pixels: torch.zeros(pixels.shape[0], 8), batch, p_mean=p_mean, p_std=1.6)
        ln_sigma = 4 * seen[0]
        assert abs(ln_sigma.mean().item() - p_mean) < 0.1 and abs(ln_sigma.std().item() - 1.6) < 0.1
