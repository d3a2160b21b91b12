"""The OpenCV fast paths equal the torch / SciPy reference computations they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from eosr.degrade.conv import sep_conv
from eosr.metrics import standard as S
from eosr.metrics.stratified import stratified_metrics
from eosr.physics.filters import gaussian_blur, isfinite, sep_correlate_valid, usable


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_sep_correlate_valid_equals_depthwise_conv(dtype: torch.dtype, stride: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 41, generator=g, dtype=torch.float64)
    ky, kx = torch.rand(3, 7, generator=g, dtype=torch.float64), torch.rand(3, 5, generator=g, dtype=torch.float64)
    ref = F.conv2d(F.conv2d(x, ky[:, None, :, None], stride=(stride, 1), groups=3),
                   kx[:, None, None, :], stride=(1, stride), groups=3)
    out = sep_correlate_valid(x.to(dtype), ky.to(dtype), kx.to(dtype), stride)
    assert out.dtype == dtype and out.shape == ref.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert float((out.double() - ref).abs().max()) < tol


def test_sep_conv_fast_path_equals_fft_path(s2_10m: np.ndarray) -> None:
    """Degradation's strided correlation: OpenCV (no grad) and torch FFT (grad) give the same D(x)."""
    x = torch.from_numpy(s2_10m[None]).double()
    ky = torch.from_numpy(np.stack([np.hanning(8)[1:-1] / np.hanning(8)[1:-1].sum()] * x.shape[1]))
    fast = sep_conv(x, ky, ky, 2)
    slow = sep_conv(x.clone().requires_grad_(True), ky, ky, 2)
    assert slow.requires_grad and not fast.requires_grad
    assert float((fast - slow.detach()).abs().max()) < 1e-12


def test_gaussian_blur_equals_scipy() -> None:
    a = np.random.default_rng(1).random((50, 61))
    for sigma in (0.8, 2.0, 8.0):
        ref = ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=4.0)
        assert np.abs(gaussian_blur(a, sigma) - ref).max() < 1e-12


def test_usable_and_isfinite() -> None:
    x = torch.tensor([[1.0, float("nan")], [float("inf"), -2.0]])
    assert usable(x) and not usable(x.clone().requires_grad_(True))
    assert torch.equal(isfinite(x), torch.isfinite(x))


def test_ssim_uiqi_equals_separate_calls(s2_10m: np.ndarray) -> None:
    """One window pass gives SSIM, UIQI and the strata's SSIM exactly as the separate functions do."""
    hr = torch.from_numpy(s2_10m).double()
    sr = F.interpolate(F.avg_pool2d(hr[None], 2), scale_factor=2, mode="bicubic", align_corners=False)[0]
    mask = torch.ones(hr.shape[-2:], dtype=torch.bool)
    mask[10:30, 40:90] = False
    rs, ru, parts = S.ssim_uiqi(sr, hr, mask=mask)
    assert float(rs.value) == pytest.approx(float(S.ssim(sr, hr, mask=mask).value), abs=1e-12)
    assert float(ru.value) == pytest.approx(float(S.uiqi(sr, hr, mask=mask).value), abs=1e-12)
    a = stratified_metrics(sr, hr, mask=mask, metrics=("ssim",))
    b = stratified_metrics(sr, hr, mask=mask, metrics=("ssim",), ssim_parts=parts)
    for k in a:
        assert float(a[k].value) == pytest.approx(float(b[k].value), abs=1e-12)


def test_ssim_keeps_gradients() -> None:
    hr = torch.rand(1, 2, 32, 32, dtype=torch.float64)
    sr = (hr + 0.05 * torch.rand_like(hr)).requires_grad_(True)
    (1 - S.ssim(sr, hr).value).backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0


def test_pixel_errors_equal_the_single_metrics(s2_10m: np.ndarray) -> None:
    """One validation and one error image give PSNR, RMSE and MAE exactly as the single functions."""
    hr = s2_10m.astype(np.float64)
    sr = hr + np.random.default_rng(0).normal(0, 0.01, hr.shape)
    sr[0, 3, 4] = np.nan
    res = S.pixel_errors(sr, hr, data_range=1.0)
    for name, fn in (("psnr", S.psnr), ("rmse", S.rmse), ("mae", S.mae)):
        one = fn(sr, hr, data_range=1.0)
        assert res[name].value == one.value and np.array_equal(res[name].per_band, one.per_band)
        assert res[name].extra == one.extra
