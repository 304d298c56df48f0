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
