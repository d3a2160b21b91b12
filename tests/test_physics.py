"""Known answers for the PSF/MTF physics, spectra and registration."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from eosr.errors import ScaleError, SensorError
from eosr.physics import (
    aliasing_fraction,
    estimate_shift,
    fourier_shift,
    gaussian_kernel,
    gaussian_taps,
    kernel_from_mtf_curve,
    kernel_length,
    kernel_mtf,
    mtf_from_sigma,
    radial_power_spectrum,
    sigma_from_mtf,
    wald_sigma,
)


@pytest.mark.parametrize("r", [2, 3, 4, 6])
@pytest.mark.parametrize("m", [0.1, 0.2, 0.233, 0.3, 0.4, 0.5])
def test_sampled_kernel_reproduces_mtf_at_lr_nyquist(r, m):
    sigma = sigma_from_mtf(m, r)
    taps = gaussian_taps(sigma, kernel_length(sigma, r))
    got = float(kernel_mtf(taps, 0.5 / r)[0])
    assert got == pytest.approx(m, rel=0.02)


def test_sigma_formula_matches_field_values():
    # sigma / GSD = sqrt(-2 ln m) / pi: 0.683 (m=0.1), 0.571 (0.2), 0.494 (0.3), 0.431 (0.4)
    for m, ratio in [(0.1, 0.683), (0.2, 0.571), (0.3, 0.494), (0.4, 0.431)]:
        assert sigma_from_mtf(m, 1) == pytest.approx(ratio, abs=1e-3)
        assert sigma_from_mtf(m, 3) == pytest.approx(3 * ratio, abs=3e-3)


def test_mtf_sigma_inverse():
    for m in (0.05, 0.233, 0.6, 0.95):
        for r in (1, 2, 5):
            assert mtf_from_sigma(sigma_from_mtf(m, r), r) == pytest.approx(m, rel=1e-12)


def test_wald_sigma_composes_to_full_sigma():
    m, r = 0.233, 2
    own = sigma_from_mtf(m, 1)  # the HR image's own blur, in HR px
    total = math.hypot(own, wald_sigma(m, r))
    assert total == pytest.approx(sigma_from_mtf(m, r), rel=1e-12)


def test_kernel_parity_follows_scale_and_unit_sum():
    for r in (1, 2, 3, 4):
        k = gaussian_kernel(sigma_from_mtf(0.3, r), r)
        assert k.shape[0] % 2 == r % 2
        assert k.sum() == pytest.approx(1.0)
        assert np.allclose(k, k[::-1, ::-1])  # centred


def test_truncated_kernel_would_miss_the_mtf():
    # the reason kernels are sized from sigma: a +-1 sigma kernel misses the MTF by far more than 2 %
    r, m = 2, 0.3
    s = sigma_from_mtf(m, r)
    short = gaussian_taps(s, 2)
    assert abs(float(kernel_mtf(short, 0.25)[0]) - m) > 0.05


def test_kernel_from_measured_mtf_curve_matches_gaussian():
    r, m = 2, 0.25
    s = sigma_from_mtf(m, r)
    f = np.linspace(0, 1.5, 200)  # cycles per LR pixel
    curve = np.exp(-2 * np.pi**2 * s**2 * (f / r) ** 2)
    k = kernel_from_mtf_curve(f, curve, r)
    assert k.shape[0] % 2 == 0 and k.sum() == pytest.approx(1.0)
    assert float(kernel_mtf(k, 0.25)[0]) == pytest.approx(m, abs=0.01)
    g = gaussian_kernel(s, r)
    n = min(k.shape[0], g.shape[0])
    ck = k[(k.shape[0] - n) // 2 :, (k.shape[0] - n) // 2 :][:n, :n]
    cg = g[(g.shape[0] - n) // 2 :, (g.shape[0] - n) // 2 :][:n, :n]
    assert np.abs(ck - cg).max() < 5e-3


def test_bad_values():
    with pytest.raises(SensorError):
        sigma_from_mtf(1.0, 2)
    with pytest.raises(SensorError):
        sigma_from_mtf(0.0, 2)
    with pytest.raises(ScaleError):
        sigma_from_mtf(0.3, 2.5)
    with pytest.raises(ScaleError):
        sigma_from_mtf(0.3, 0)
    with pytest.raises(SensorError):
        kernel_from_mtf_curve(np.array([0.0, 0.1]), np.array([1.0]), 2)


def test_radial_spectrum_of_a_cosine_peaks_at_its_frequency():
    n = 128
    x = np.arange(n)
    img = np.cos(2 * np.pi * 0.125 * x)[None, None, :].repeat(n, 1)
    f, p = radial_power_spectrum(img, n_bins=32)
    assert f[np.argmax(p[0])] == pytest.approx(0.125, abs=0.5 / 32)


def test_aliasing_fraction_falls_with_blur(s2_10m):
    a_sharp = aliasing_fraction(s2_10m, sigma_from_mtf(0.5, 2), 2)
    a_blur = aliasing_fraction(s2_10m, sigma_from_mtf(0.1, 2), 2)
    assert np.all(a_sharp > a_blur) and np.all(a_blur >= 0) and np.all(a_sharp < 1)
    # white noise through no blur: 3/4 of the 2-D spectrum lies outside the x2 Nyquist square
    rng = np.random.default_rng(0)
    assert aliasing_fraction(rng.standard_normal((1, 128, 128)), 0.0, 2)[0] == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("dy,dx", [(0.5, 0.0), (1.0, -1.0), (2.0, 0.3), (-3.7, 2.25), (0.05, -0.08)])
def test_registration_recovers_shifts_on_real_imagery(s2_10m, dy, dx):
    moved = fourier_shift(s2_10m, dy, dx)
    got = estimate_shift(s2_10m, moved)
    assert got == pytest.approx((dy, dx), abs=0.02)


def test_registration_with_nan_and_cropped_shift(s2_10m):
    # a real (non-periodic) shift: crop two windows of a larger blurred image
    big = gaussian_filter(np.random.default_rng(3).random((140, 140)), 1.5)
    ref, mov = big[None, 10:110, 10:110], big[None, 7:107, 12:112]  # mov(r, c) = ref(r - 3, c + 2)
    mov = mov.copy()
    mov[0, :5, :5] = np.nan
    assert estimate_shift(ref, mov) == pytest.approx((3.0, -2.0), abs=0.1)


@pytest.mark.parametrize("dy,dx", [(0.5, 0.0), (1.3, -0.7), (-0.25, 0.4)])
def test_registration_of_spline_shifted_real_imagery(dy, dx):
    # an interpolated (non-Fourier), non-periodic shift of a real Sentinel-2 patch
    from scipy.ndimage import shift as nd_shift

    from conftest import BEN, read_s2_10m

    img = read_s2_10m(BEN / "S2B_MSIL2A_20180204T94161_57_38")
    moved = np.stack([nd_shift(b, (dy, dx), order=3, mode="nearest") for b in img])
    got = estimate_shift(img[:, 10:-10, 10:-10], moved[:, 10:-10, 10:-10])
    assert got == pytest.approx((dy, dx), abs=0.06)


def test_radial_spectrum_from_half_spectra_equals_full_fft() -> None:
    """Half-spectrum rings (rfft2, weight 2 off the fx = 0 / 1/2 columns) equal the full-FFT ring means."""
    import scipy.fft as sfft

    from eosr.physics.spectrum import radial_power_spectrum

    rng = np.random.default_rng(0)
    for shape in [(2, 64, 64), (1, 63, 70), (1, 65, 33)]:
        x = rng.random(shape)
        h, w = shape[-2:]
        n = max(4, min(h, w) // 2)
        win = np.outer(np.hanning(h), np.hanning(w))
        full = np.stack([np.abs(sfft.fft2((b - b.mean()) * win)) ** 2 / win.sum() ** 2 * h * w for b in x])
        rad = np.sqrt(sfft.fftfreq(h)[:, None] ** 2 + sfft.fftfreq(w)[None, :] ** 2).ravel()
        keep = (rad > 0) & (rad <= 0.5)
        ring = np.digitize(rad[keep], np.linspace(0, 0.5, n + 1)[1:-1], right=True)
        ref = np.stack([np.bincount(ring, p.ravel()[keep], n) / np.bincount(ring, minlength=n) for p in full])
        assert np.allclose(radial_power_spectrum(x)[1], ref, rtol=1e-12)
