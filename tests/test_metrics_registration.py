"""Registration and radiometry metrics: known answers on real Sentinel-2 imagery (BigEarthNet patch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from eosr.errors import ShapeError
from eosr.metrics.registration import (
    apply_alignment,
    estimate_alignment,
    mae_aligned,
    psnr_aligned,
    registration_metrics,
    rmse_aligned,
    shift_image,
    ssim_aligned,
)
from eosr.physics.registration import fourier_shift

M = 8  # margin of the real patch kept for shifted crops


@pytest.fixture(scope="module")
def full(s2_10m: np.ndarray) -> np.ndarray:
    return s2_10m


@pytest.fixture(scope="module")
def hr(full: np.ndarray) -> np.ndarray:
    return full[:, M:-M, M:-M]


def shifted(full: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """SR(r, c) = HR(r - sy, c - sx): a real crop for integer shifts, a Fourier shift of the whole patch else."""
    if float(sy).is_integer() and float(sx).is_integer():
        iy, ix = int(sy), int(sx)
        return full[:, M - iy : full.shape[1] - M - iy, M - ix : full.shape[2] - M - ix]
    return fourier_shift(full, sy, sx)[:, M:-M, M:-M]


def test_shift_sign_convention(full: np.ndarray, hr: np.ndarray) -> None:
    sr = shifted(full, 2, -1)
    assert np.array_equal(sr[:, 10, 10], hr[:, 10 - 2, 10 + 1])  # SR(r, c) = HR(r - sy, c - sx)
    res = registration_metrics(sr, hr)
    assert res["shift_y_px"].value == pytest.approx(2.0, abs=0.1)
    assert res["shift_x_px"].value == pytest.approx(-1.0, abs=0.1)


@pytest.mark.parametrize("sy,sx", [(0.5, 0.0), (0.0, 0.5), (1.0, 1.0), (2.0, -2.0), (-2.0, 0.5), (0.5, 0.5)])
def test_shift_within_a_tenth_of_a_pixel(full: np.ndarray, hr: np.ndarray, sy: float, sx: float) -> None:
    res = registration_metrics(shifted(full, sy, sx), hr)
    assert abs(res["shift_y_px"].value - sy) < 0.1
    assert abs(res["shift_x_px"].value - sx) < 0.1
    assert np.all(np.abs(np.asarray(res["shift_y_px"].per_band) - sy) < 0.1)  # each band alone too
    assert abs(res["gain"].value - 1.0) < 0.01  # a shift is not a gain


def test_gain_and_bias_known_answer(hr: np.ndarray) -> None:
    res = registration_metrics(1.1 * hr, hr)
    assert res["gain"].value == pytest.approx(1.10, abs=0.01)
    assert res["bias"].value == pytest.approx(0.0, abs=1e-4)
    res = registration_metrics(0.9 * hr + 0.02, hr)
    assert res["gain"].value == pytest.approx(0.9, abs=1e-6)
    assert res["bias"].value == pytest.approx(0.02, abs=1e-6)
    np.testing.assert_allclose(res["gain"].per_band, 0.9, atol=1e-6)


def test_blur_is_not_read_as_gain(hr: np.ndarray) -> None:
    blurred = np.stack([ndimage.gaussian_filter(b, 1.0) for b in hr])
    res = registration_metrics(blurred, hr)
    np.testing.assert_allclose(res["gain"].per_band, 1.0, atol=0.01)
    assert abs(res["shift_x_px"].value) < 0.05 and abs(res["shift_y_px"].value) < 0.05


def test_shift_image_integer_equals_roll_inside(hr: np.ndarray) -> None:
    out, valid = shift_image(hr, 3, -2)
    ref = np.roll(hr, (3, -2), axis=(1, 2))
    np.testing.assert_allclose(out[valid], ref[valid], atol=1e-12)
    assert not valid[:, :4].any() and not valid[:, :, -3:].any() and valid[:, 4:, :-3].all()


def test_aligned_metrics_remove_shift_and_gain(full: np.ndarray, hr: np.ndarray) -> None:
    sr = shifted(full, 2, -2)
    assert psnr_aligned(sr, hr).value == 120.0  # integer shift: exact after compensation, at the one cap
    from eosr.metrics.standard import psnr

    assert psnr(sr, hr).value < 30
    assert psnr_aligned(1.1 * hr, hr).value == 120.0
    np.testing.assert_array_equal(psnr_aligned(1.1 * hr, hr).per_band, 120.0)
    assert ssim_aligned(sr, hr).value > 0.999
    assert mae_aligned(sr, hr).value < 1e-10


def test_aligned_equals_numpy_on_compensated(full: np.ndarray, hr: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    sr = 1.05 * shifted(full, 0.5, -0.5) + 0.003 * rng.standard_normal(hr.shape)
    al = estimate_alignment(sr, hr)
    comp, valid = apply_alignment(sr, al)
    d = (comp - hr)[valid]
    assert rmse_aligned(sr, hr).value == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-9)
    assert mae_aligned(sr, hr).value == pytest.approx(np.mean(np.abs(d)), rel=1e-9)
    assert psnr_aligned(sr, hr).value == pytest.approx(-10 * np.log10(np.mean(d**2)), rel=1e-9)
    assert al.gain_pooled == pytest.approx(1.05, abs=0.01)


def test_nodata_and_mask_do_not_poison(hr: np.ndarray) -> None:
    sr = 1.1 * hr.copy()
    sr[:, 40:50, 40:50] = np.nan
    res = registration_metrics(sr, hr)
    assert all(math.isfinite(r.value) for r in res.values())
    assert res["gain"].value == pytest.approx(1.1, abs=1e-3)
    mask = np.ones(hr.shape[-2:], bool)
    mask[:, :20] = False
    r2 = rmse_aligned(sr, hr, mask=mask)
    assert math.isfinite(r2.value) and r2.value < 1e-6


def test_torch_in_torch_out_and_batch(hr: np.ndarray) -> None:
    t = torch.from_numpy(hr).float()
    r = psnr_aligned(1.1 * t, t)
    assert isinstance(r.value, torch.Tensor)
    batch = np.stack([hr, 1.2 * hr])
    res = registration_metrics(batch, np.stack([hr, hr]))
    assert res["gain"].extra["per_item"] == pytest.approx([1.0, 1.2], abs=1e-3)
    assert res["gain"].value == pytest.approx(1.1, abs=1e-3)


def test_bad_input(hr: np.ndarray) -> None:
    with pytest.raises(ShapeError, match="band axis"):
        registration_metrics(hr[0], hr[0])
    with pytest.raises(ShapeError, match="differ"):
        registration_metrics(hr[:, :50], hr)
    with pytest.raises(ShapeError, match="no valid pixel"):
        registration_metrics(np.full_like(hr, np.nan), hr)
    with pytest.raises(ShapeError, match="no valid pixel"):
        psnr_aligned(hr, hr, mask=np.zeros(hr.shape[-2:], bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(96, 80), (70, 133)])
def test_lowpass_moments_by_dct_equal_the_blurred_images(dtype, shape) -> None:
    """The DCT form of the low-pass moments (no blurred copies) against blurring both images."""
    from eosr.metrics.registration import _moments
    from eosr.physics.filters import gaussian_blur, gaussian_lowpass_moments

    rng = np.random.default_rng(3)
    x = rng.random(shape).astype(dtype)
    y = (0.8 * x + 0.2 * rng.random(shape) + 0.1).astype(dtype)
    got = gaussian_lowpass_moments(x, y, 8.0, gain_floor=0.0)  # every coefficient: exact
    ref = _moments(gaussian_blur(y.astype(np.float64), 8.0), gaussian_blur(x.astype(np.float64), 8.0))  # (y, x)
    assert got is not None
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-10)
    # the default leaves out coefficients of squared gain < 1e-9: the sums move by at most 1e-9 of the AC energy
    pruned = gaussian_lowpass_moments(x, y, 8.0)
    assert pruned is not None
    ac = float(((x - x.mean(dtype=np.float64)) ** 2).sum() + ((y - y.mean(dtype=np.float64)) ** 2).sum())
    for a, b in zip(pruned[3:], ref[3:], strict=True):
        assert abs(a - b) <= 1e-9 * ac + (1e-5 if dtype == np.float32 else 1e-10) * abs(b)
    assert pruned[3] != ref[3] or dtype == np.float32  # white noise: the pruning is visible, and bounded
    assert gaussian_lowpass_moments(x[:30], y[:30], 8.0) is None  # radius 32 >= 30 rows: blur instead


@pytest.mark.parametrize("shape", [(64, 64), (63, 70)])
def test_half_spectrum_registration_equals_full(shape) -> None:
    """Real FFTs (half spectra) give the same correlation surface and shift as the full complex ones."""
    from scipy import ndimage

    from eosr.physics.registration import _upsampled_dft, cross_power, shift_from_cross

    rng = np.random.default_rng(4)
    ref = ndimage.gaussian_filter(rng.random((3, *shape)), 2)
    mov = np.stack([ndimage.shift(b, (0.37, -1.21), mode="reflect") for b in ref])
    full, half = cross_power(ref, mov).sum(0), cross_power(ref, mov, half=True).sum(0)
    np.testing.assert_allclose(half, full[:, : shape[1] // 2 + 1], atol=1e-10)
    np.testing.assert_allclose(np.real(_upsampled_dft(half, 10, 15, 0.4, -1.2, width=shape[1])),
                               np.real(_upsampled_dft(full, 10, 15, 0.4, -1.2)), rtol=1e-9, atol=1e-9)
    assert shift_from_cross(half, 100, width=shape[1]) == shift_from_cross(full, 100)
