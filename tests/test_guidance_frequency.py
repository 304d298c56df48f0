"""Tests for guidance/frequency.py (paper Eq. 2): the Butterworth filter and the restore."""
import numpy as np
import pytest
import torch

from guidance.frequency import butterworth_lowpass, restore_high_frequency


def reference_lowpass(h, w, cutoff, order):
    """The reference's filter, cell by cell in Python floats."""
    out = np.zeros((h, w), np.float32)
    for u in range(h):
        for v in range(w):
            d2 = (2 * u / h - 1) ** 2 + (2 * v / w - 1) ** 2
            out[u, v] = 1 / (1 + (d2 / cutoff ** 2) ** order)
    return out


def numpy_restore(z_opt, z_orig, cutoff, order):
    """Eq. 2 another way: numpy FFT without shifting the spectra; instead the centred filter is
    moved to the unshifted frequency layout with ifftshift."""
    h, w = z_opt.shape[-2:]
    lowpass = np.fft.ifftshift(reference_lowpass(h, w, cutoff, order).astype(np.float64))
    mixed = np.fft.fft2(z_opt) * lowpass + np.fft.fft2(z_orig) * (1 - lowpass)
    return np.fft.ifft2(mixed).real


def test_lowpass_known_values():
    L = butterworth_lowpass(8, 10, cutoff=0.5, order=4)
    assert L.shape == (8, 10) and L.dtype == torch.float32
    assert L[4, 5] == 1.0                                               # zero frequency after fftshift
    assert L[0, 5].item() == pytest.approx(1 / (1 + (1 / 0.25) ** 4), rel=1e-6)   # d^2 = 1
    assert L[0, 0].item() == pytest.approx(1 / (1 + (2 / 0.25) ** 4), rel=1e-6)   # d^2 = 2
    assert L[2, 5].item() == pytest.approx(0.5, rel=1e-6)               # d = cutoff: half power


@pytest.mark.parametrize("h, w, cutoff, order", [(8, 10, 0.5, 4), (7, 9, 0.3, 2), (72, 128, 1.0, 4)])
def test_lowpass_matches_reference_formula(h, w, cutoff, order):
    # bit-identical: same float64 arithmetic, then float32
    np.testing.assert_array_equal(butterworth_lowpass(h, w, cutoff, order).numpy(),
                                  reference_lowpass(h, w, cutoff, order))


def test_lowpass_cutoff_zero_is_all_zeros_and_one_is_not_all_ones():
    assert torch.count_nonzero(butterworth_lowpass(6, 6, cutoff=0)) == 0
    L = butterworth_lowpass(6, 6, cutoff=1.0)
    assert L[3, 3] == 1.0 and L[0, 0].item() == pytest.approx(1 / 17, rel=1e-6)


def latents(seed, h=12, w=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, 4, h, w, generator=g), torch.randn(1, 3, 4, h, w, generator=g)


def test_cutoff_zero_returns_the_original_latent():
    z_opt, z_orig = latents(0)
    out = restore_high_frequency(z_opt, z_orig, cutoff=0.0)
    torch.testing.assert_close(out, z_orig, atol=1e-5, rtol=0)


def test_huge_cutoff_returns_the_optimised_latent():
    z_opt, z_orig = latents(1)
    out = restore_high_frequency(z_opt, z_orig, cutoff=1e6)
    torch.testing.assert_close(out, z_opt, atol=1e-5, rtol=0)


def test_no_cutoff_skips_the_restore():
    z_opt, z_orig = latents(2)
    assert restore_high_frequency(z_opt, z_orig, cutoff=None) is z_opt
    assert restore_high_frequency(z_opt, z_orig, cutoff=float("inf")) is z_opt


@pytest.mark.parametrize("cutoff, order, h, w", [(0.5, 4, 12, 16), (0.25, 2, 12, 16),
                                                  (1.0, 4, 12, 16), (0.5, 4, 7, 9)])
def test_mix_matches_numpy_fft(cutoff, order, h, w):
    z_opt, z_orig = latents(3, h, w)
    out = restore_high_frequency(z_opt, z_orig, cutoff, order)
    expected = numpy_restore(z_opt.double().numpy(), z_orig.double().numpy(), cutoff, order)
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-5, rtol=0)


def test_low_frequencies_from_optimised_high_from_original():
    h, w = 8, 8
    checker = torch.tensor([[(-1.0) ** (u + v) for v in range(w)] for u in range(h)])
    z_opt = torch.full((2, h, w), 3.0)                                   # only the zero frequency
    z_orig = checker.expand(2, h, w).clone()                             # only the highest frequency
    out = restore_high_frequency(z_opt, z_orig)
    # result = 3 (L = 1 at frequency 0) + checker * (1 - L at the Nyquist corner, d^2 = 2)
    keep = 1 - 1 / (1 + (2 / 0.25) ** 4)
    torch.testing.assert_close(out, 3.0 + keep * z_orig, atol=1e-5, rtol=0)


def test_half_precision_in_half_out_computed_in_float32():
    z_opt, z_orig = latents(4)
    out = restore_high_frequency(z_opt.half(), z_orig.half())
    assert out.dtype == torch.float16
    expected = restore_high_frequency(z_opt.half().float(), z_orig.half().float()).half()
    assert torch.equal(out, expected)


def test_negative_cutoff_is_an_error():
    with pytest.raises(ValueError, match="cutoff"):
        butterworth_lowpass(4, 4, cutoff=-0.1)
