"""Standard metrics: cross-checks against NumPy, scikit-image and torchmetrics on real Sentinel-2 data,
known answers, NaN/mask handling, batching, differentiability and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import (
    error_relative_global_dimensionless_synthesis,
    spectral_angle_mapper,
    universal_image_quality_index,
)

from eosr.errors import EosrError, ScaleError, ShapeError
from eosr.metrics import standard as S


@pytest.fixture(scope="module")
def pair(s2_10m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sr, hr): real HR and a plausibly degraded SR (blur + noise + small gain)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    hr = s2_10m
    sr = np.stack([gaussian_filter(b, 0.8) for b in hr]) * 1.02 + rng.normal(0, 0.004, hr.shape)
    return sr, hr


def test_pixel_metrics_match_numpy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    d = sr - hr
    mse_b = (d**2).mean(axis=(1, 2))
    assert S.rmse(sr, hr).value == pytest.approx(np.sqrt((d**2).mean()), abs=1e-4)
    np.testing.assert_allclose(S.rmse(sr, hr).per_band, np.sqrt(mse_b), atol=1e-4)
    assert S.mae(sr, hr).value == pytest.approx(np.abs(d).mean(), abs=1e-4)
    np.testing.assert_allclose(S.mae(sr, hr).per_band, np.abs(d).mean(axis=(1, 2)), atol=1e-4)
    r = S.psnr(sr, hr, data_range=1.0)
    assert r.value == pytest.approx(10 * np.log10(1.0 / (d**2).mean()), abs=1e-4)
    np.testing.assert_allclose(r.per_band, 10 * np.log10(1.0 / mse_b), atol=1e-4)
    # data_range enters PSNR as range^2; it is never inferred
    assert S.psnr(sr, hr, data_range=2.0).value == pytest.approx(r.value + 20 * np.log10(2.0), abs=1e-9)
    assert isinstance(r.value, float) and isinstance(r.per_band, np.ndarray)


def test_ssim_matches_skimage_on_real_data(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    ref = structural_similarity(
        hr, sr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
    )
    r = S.ssim(sr, hr, data_range=1.0)
    assert abs(r.value - ref) < 1e-3
    assert abs(r.value - ref) < 1e-9  # same border convention: exact up to rounding
    for c in range(hr.shape[0]):
        ref_c = structural_similarity(
            hr[c], sr[c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        assert r.per_band[c] == pytest.approx(ref_c, abs=1e-9)


def test_ssim_map_border_and_values(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    m = S.ssim_map(sr, hr)
    assert m.shape == hr.shape
    assert np.isnan(m[:, :5]).all() and np.isnan(m[:, -5:]).all() and np.isnan(m[:, :, :5]).all()
    assert np.isfinite(m[:, 5:-5, 5:-5]).all()
    _, full = structural_similarity(
        hr[0], sr[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True
    )
    np.testing.assert_allclose(m[0, 5:-5, 5:-5], full[5:-5, 5:-5], atol=1e-9)
    assert np.nanmean(m) == pytest.approx(S.ssim(sr, hr).value, abs=1e-12)


def test_sam_ergas_uiqi_match_torchmetrics(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    ts, th = torch.from_numpy(sr)[None], torch.from_numpy(hr)[None]
    # SAM: torchmetrics returns radians (mean of arccos); eosr returns degrees
    ref_sam = math.degrees(float(spectral_angle_mapper(ts, th)))
    assert S.sam(sr, hr).value == pytest.approx(ref_sam, abs=1e-6)
    # ERGAS: torchmetrics 1.x computes 100 / ratio * ..., so ratio = r gives Wald's h/l = 1/r
    for r in (2, 4):
        ref = float(error_relative_global_dimensionless_synthesis(ts, th, ratio=r))
        assert S.ergas(sr, hr, scale=r).value == pytest.approx(ref, rel=1e-6)
    # UIQI: same Gaussian window, torchmetrics reflect-pads then crops the same border
    assert S.uiqi(sr, hr).value == pytest.approx(float(universal_image_quality_index(ts, th)), abs=1e-6)


def test_perfect_sr(s2_10m: np.ndarray) -> None:
    hr = s2_10m
    assert S.psnr(hr, hr).value == 120.0  # the one PSNR cap (MSE floored at 1e-12 R^2)
    assert S.rmse(hr, hr).value == 0.0
    assert S.mae(hr, hr).value == 0.0
    assert S.ssim(hr, hr).value == pytest.approx(1.0, abs=1e-12)
    assert S.uiqi(hr, hr).value == pytest.approx(1.0, abs=1e-9)
    assert S.sam(hr, hr).value == pytest.approx(0.0, abs=1e-6)
    assert S.ergas(hr, hr, scale=2).value == 0.0
    assert S.psnr(hr, hr).to_dict()["capped"] is True


def test_known_answers_synthetic() -> None:
    hr = np.full((2, 16, 16), 0.5)
    sr = hr + 0.1
    assert S.psnr(sr, hr).value == pytest.approx(20.0)
    assert S.rmse(sr, hr).value == pytest.approx(0.1)
    assert S.mae(sr, hr).value == pytest.approx(0.1)
    # ERGAS of a constant offset: 100 / r * 0.1 / 0.5
    assert S.ergas(sr, hr, scale=4).value == pytest.approx(100 / 4 * 0.2)
    # SAM of orthogonal two-band spectra is 90 deg; of (1, 0) vs (1, 1) 45 deg
    a = np.zeros((2, 4, 4))
    a[0] = 1
    b = np.zeros((2, 4, 4))
    b[1] = 1
    assert S.sam(a, b).value == pytest.approx(90.0)
    assert S.sam(a, a + b).value == pytest.approx(45.0)
    # SSIM of a flat image with a brighter flat image: luminance term only
    c1 = (0.01) ** 2
    exp = (2 * 0.6 * 0.5 + c1) / (0.6**2 + 0.5**2 + c1)
    assert S.ssim(hr + 0.1, hr).value == pytest.approx(exp, rel=1e-9)


def test_sam_zero_vectors() -> None:
    hr = np.ones((3, 8, 8))
    sr = hr.copy()
    hr[:, 0, 0] = 0.0  # HR zero, SR not -> 90 deg
    sr[:, 1, 1] = 0.0
    hr[:, 1, 1] = 0.0  # both zero -> 0 deg
    r = S.sam(sr, hr)
    assert r.value == pytest.approx(90.0 / 64)
    assert r.extra["n_zero_vector"] == 1
    assert np.isfinite(S.sam_map(sr, hr)).all()


def test_nan_excluded_equals_masked(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    sr_nan = sr.copy()
    sr_nan[:, 30:40, 50:70] = np.nan
    sr_nan[2, 90, 5] = np.nan
    mask = np.isfinite(sr_nan)
    for f in (S.psnr, S.rmse, S.mae, S.ssim, S.uiqi, S.sam):
        a, b = f(sr_nan, hr), f(sr, hr, mask=mask)
        assert np.isfinite(a.value)
        assert a.value == pytest.approx(b.value, abs=1e-12)
    a = S.ergas(sr_nan, hr, scale=2)
    assert a.value == pytest.approx(S.ergas(sr, hr, scale=2, mask=mask).value, abs=1e-12)
    # direct NumPy on the valid pixels
    d = (sr - hr)[mask]
    assert S.rmse(sr_nan, hr).value == pytest.approx(np.sqrt((d**2).mean()), abs=1e-12)
    # SSIM skips windows touching the hole and is unchanged where windows do not touch it
    m = S.ssim_map(sr_nan, hr)
    assert np.isnan(m[:, 25:45, 45:75]).all()
    np.testing.assert_allclose(m[:, 60:80, 60:80], S.ssim_map(sr, hr)[:, 60:80, 60:80])


def test_batched_and_torch(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    sr4, hr4 = np.stack([sr, sr[:, ::-1].copy()]), np.stack([hr, hr[:, ::-1].copy()])
    # pooled over the batch: equal to the 3-D value for a mirrored copy
    for f in (S.psnr, S.rmse, S.mae, S.ssim, S.sam, S.uiqi):
        assert f(sr4, hr4).value == pytest.approx(f(sr, hr).value, rel=1e-9)
    r = S.psnr(torch.from_numpy(sr4).float(), torch.from_numpy(hr4).float())
    assert isinstance(r.value, torch.Tensor) and r.value.dtype == torch.float32
    assert float(r.value) == pytest.approx(S.psnr(sr, hr).value, abs=1e-3)
    m = S.ssim_map(torch.from_numpy(sr4), torch.from_numpy(hr4))
    assert isinstance(m, torch.Tensor) and m.shape == sr4.shape


@pytest.mark.parametrize("n_bands", [1, 13])
def test_band_counts(n_bands: int, s2_10m: np.ndarray) -> None:
    hr = np.resize(s2_10m, (n_bands, 120, 120))
    sr = hr * 0.97
    for f in (S.psnr, S.rmse, S.mae, S.ssim, S.uiqi, S.sam):
        r = f(sr, hr)
        assert np.isfinite(r.value)
        assert len(r.per_band) == (0 if f is S.sam else n_bands)
    assert S.sam(sr, hr).value == pytest.approx(0.0, abs=1e-6)  # a pure gain keeps the spectral angle


def test_differentiable_as_loss(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = (a[:, :48, :48] for a in pair)
    x = torch.tensor(sr, dtype=torch.float32, requires_grad=True)
    y = torch.tensor(hr, dtype=torch.float32)
    loss = (1 - S.ssim(x, y).value) + S.mae(x, y).value - 0.01 * S.psnr(x, y).value + 0.01 * S.sam(x, y).value
    loss = loss + S.rmse(x, y).value + S.uiqi(x, y).value
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # gradient descent on 1 - SSIM improves SSIM
    opt = torch.optim.Adam([x], lr=1e-3)
    before = float(S.ssim(x, y).value.detach())
    for _ in range(3):
        opt.zero_grad()
        (1 - S.ssim(x, y).value).backward()
        opt.step()
    assert float(S.ssim(x, y).value.detach()) > before
    # SAM at a perfect match: finite gradient
    z = torch.tensor(hr, requires_grad=True)
    S.sam(z, torch.tensor(hr)).value.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_bad_input(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    for f in (S.psnr, S.rmse, S.mae, S.ssim, S.sam, S.uiqi):
        with pytest.raises(ShapeError, match="differ in shape"):
            f(sr[:, :-1], hr)
        with pytest.raises(ShapeError, match="band axis"):
            f(sr[0], hr[0])
        with pytest.raises(ShapeError, match="no valid pixel"):
            f(np.full_like(sr, np.nan), hr)
        with pytest.raises(ShapeError, match="no valid pixel"):
            f(sr, hr, mask=np.zeros(hr.shape[-2:], bool))
    with pytest.raises(ShapeError, match="smaller than the 11 px"):
        S.ssim(sr[:, :8, :8], hr[:, :8, :8])
    with pytest.raises(ShapeError, match="window"):  # holes everywhere: no whole window left
        holes = sr.copy()
        holes[:, ::6, ::6] = np.nan
        S.ssim(holes, hr)
    with pytest.raises(ScaleError):
        S.ergas(sr, hr, scale=0)
    with pytest.raises(EosrError, match="data_range"):
        S.psnr(sr, hr, data_range=0.0)


def test_infos() -> None:
    names = [i.name for i in S.INFOS]
    assert names == ["psnr", "rmse", "mae", "ssim", "sam_deg", "ergas", "uiqi"]
    assert S.PSNR.higher_is_better and not S.RMSE.higher_is_better and S.SSIM.range == (-1.0, 1.0)
