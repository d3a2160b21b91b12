"""Gradient-stratified metrics on real Sentinel-2 data: gradient definition, strata, known behaviour of
bicubic, cross-checks with direct NumPy, NaN handling and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from eosr.degrade.operator import Degradation
from eosr.errors import EosrError, ShapeError
from eosr.metrics import standard as S
from eosr.metrics import stratified as ST


@pytest.fixture(scope="module")
def bicubic(s2_10m: np.ndarray) -> np.ndarray:
    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2)
    lr = torch.from_numpy(op.downsample(s2_10m))[None]
    return torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()


def _np_gradient(hr: np.ndarray) -> np.ndarray:
    mags = [np.hypot(*np.gradient(b)) for b in hr]
    return np.mean(mags, axis=0)


def test_gradient_magnitude_matches_numpy(s2_10m: np.ndarray) -> None:
    g = ST.gradient_magnitude(s2_10m)
    assert g.shape == (1, 120, 120)
    np.testing.assert_allclose(g[0], _np_gradient(s2_10m), atol=1e-12)
    np.testing.assert_allclose(ST.gradient_magnitude(s2_10m, bands=[3])[0], _np_gradient(s2_10m[3:]), atol=1e-12)


def test_gradient_is_mean_of_band_magnitudes() -> None:
    # red goes up where NIR goes down: signed band-averaged gradients would cancel; magnitudes do not
    x = np.zeros((2, 8, 8))
    x[0, :, 4:] = 0.1
    x[1, :, 4:] = -0.1
    g = ST.gradient_magnitude(x)[0]
    assert g[:, 3:5].min() == pytest.approx(0.05)  # central difference (0.1 - 0) / 2 in both bands
    assert g[:, :2].max() == 0.0
    # a linear ramp of slope 0.01 in x and 0.02 in y: |grad| = sqrt(0.01^2 + 0.02^2) everywhere
    yy, xx = np.mgrid[:16, :16]
    ramp = (0.01 * xx + 0.02 * yy)[None].astype(float)
    np.testing.assert_allclose(ST.gradient_magnitude(ramp), np.hypot(0.01, 0.02), atol=1e-15)


def test_strata_quantiles_and_thresholds(s2_10m: np.ndarray) -> None:
    st = ST.gradient_strata(s2_10m)
    g = _np_gradient(s2_10m)
    q50, q90 = np.quantile(g, [0.5, 0.9])
    assert st.low_threshold == pytest.approx(q50) and st.high_threshold == pytest.approx(q90)
    c = st.counts()
    assert c["low"] == (g <= q50).sum() and c["high"] == (g >= q90).sum()
    assert c["low"] == pytest.approx(0.5 * g.size, abs=2) and c["high"] == pytest.approx(0.1 * g.size, abs=2)
    st2 = ST.gradient_strata(s2_10m, quantiles=(0.25, 0.75))
    assert st2.counts()["high"] == pytest.approx(0.25 * g.size, abs=2)
    st3 = ST.gradient_strata(s2_10m, thresholds=(0.002, 0.00677))
    assert st3.counts()["high"] == (g >= 0.00677).sum() and st3.quantiles is None


def test_bicubic_fails_on_edges(s2_10m: np.ndarray, bicubic: np.ndarray) -> None:
    r = ST.stratified_metrics(bicubic, s2_10m)
    assert set(r) == {f"{m}_{s}_gradient" for m in ("psnr", "rmse", "mae", "ssim") for s in ("low", "high")}
    gap = r["psnr_low_gradient"].value - r["psnr_high_gradient"].value
    assert gap > 5.0, gap  # measured 7.8 dB on this patch
    assert r["rmse_high_gradient"].value > 2 * r["rmse_low_gradient"].value
    assert r["ssim_high_gradient"].value < r["ssim_low_gradient"].value
    whole = S.psnr(bicubic, s2_10m).value
    assert r["psnr_high_gradient"].value < whole < r["psnr_low_gradient"].value
    assert r["psnr_high_gradient"].extra["n_pixels"] == pytest.approx(1440, abs=2)
    assert r["psnr_high_gradient"].extra["quantile"] == 0.9
    assert r["psnr_high_gradient"].info.higher_is_better is True


def test_values_match_direct_numpy(s2_10m: np.ndarray, bicubic: np.ndarray) -> None:
    hr, sr = s2_10m, bicubic
    g = _np_gradient(hr)
    hi = g >= np.quantile(g, 0.9)
    d = (sr - hr)[:, hi]
    r = ST.stratified_metrics(sr, hr)
    assert r["psnr_high_gradient"].value == pytest.approx(10 * np.log10(1 / (d**2).mean()), abs=1e-4)
    assert r["rmse_high_gradient"].value == pytest.approx(np.sqrt((d**2).mean()), abs=1e-4)
    assert r["mae_high_gradient"].value == pytest.approx(np.abs(d).mean(), abs=1e-4)
    np.testing.assert_allclose(r["mae_high_gradient"].per_band, np.abs(d).mean(axis=1), atol=1e-12)
    # SSIM per stratum = mean of scikit-image's SSIM map over the stratum, inside the 5-px border
    inner = np.zeros_like(hi)
    inner[5:-5, 5:-5] = True
    maps = [
        structural_similarity(
            h, s, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True
        )[1]
        for h, s in zip(hr, sr, strict=True)
    ]
    exp = np.mean([m[hi & inner].mean() for m in maps])
    assert r["ssim_high_gradient"].value == pytest.approx(exp, abs=1e-3)
    assert r["ssim_high_gradient"].value == pytest.approx(exp, abs=1e-9)


def test_perfect_and_callable(s2_10m: np.ndarray) -> None:
    r = ST.stratified_metrics(s2_10m, s2_10m, metrics=("psnr", "ssim", S.sam))
    assert r["psnr_high_gradient"].value == 120.0 and r["psnr_high_gradient"].extra["capped"] is True
    assert r["ssim_low_gradient"].value == pytest.approx(1.0)
    assert r["sam_deg_high_gradient"].value == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(EosrError, match="unknown base metric"):
        ST.stratified_metrics(s2_10m, s2_10m, metrics=("psnrr",))


def test_nan_equals_masked(s2_10m: np.ndarray, bicubic: np.ndarray) -> None:
    sr = bicubic.copy()
    sr[:, 60:75, 10:30] = np.nan
    a = ST.stratified_metrics(sr, s2_10m)
    b = ST.stratified_metrics(bicubic, s2_10m, mask=np.isfinite(sr))
    for k in a:
        assert np.isfinite(a[k].value)
        assert a[k].value == pytest.approx(b[k].value, abs=1e-12)
        assert a[k].extra["n_pixels"] == b[k].extra["n_pixels"]
    # one rule with a mask too: SR's NaN leaves its pixels out of the gradient as a masked pixel would
    mask = np.ones(s2_10m.shape[1:], dtype=bool)
    mask[5:12, 40:60] = False
    c = ST.stratified_metrics(sr, s2_10m, mask=mask)
    d = ST.stratified_metrics(bicubic, s2_10m, mask=np.isfinite(sr) & mask)
    for k in c:
        assert c[k].value == pytest.approx(d[k].value, abs=1e-12)
        assert c[k].extra["n_pixels"] == d[k].extra["n_pixels"]


def test_batched_torch_and_bands(s2_10m: np.ndarray, bicubic: np.ndarray) -> None:
    hr = torch.from_numpy(np.stack([s2_10m, s2_10m]))
    x = torch.from_numpy(np.stack([bicubic, bicubic])).requires_grad_(True)
    r = ST.stratified_metrics(x, hr, metrics=("mae", "ssim"))
    assert isinstance(r["mae_high_gradient"].value, torch.Tensor)
    (r["mae_high_gradient"].value - r["ssim_high_gradient"].value).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    r3 = ST.stratified_metrics(bicubic, s2_10m, metrics=("mae",))
    assert float(r["mae_high_gradient"].value.detach()) == pytest.approx(r3["mae_high_gradient"].value, rel=1e-9)
    one = ST.stratified_metrics(bicubic[:1], s2_10m[:1])
    assert one["psnr_high_gradient"].per_band.shape == (1,)


def test_bad_input(s2_10m: np.ndarray, bicubic: np.ndarray) -> None:
    with pytest.raises(ShapeError, match="differ in shape"):
        ST.stratified_metrics(bicubic[:, 1:], s2_10m)
    with pytest.raises(ShapeError):
        ST.stratified_metrics(bicubic[0], s2_10m[0])
    with pytest.raises(ShapeError, match="no valid pixel"):
        ST.stratified_metrics(bicubic, np.full_like(s2_10m, np.nan))
    with pytest.raises(ShapeError, match="no valid pixel"):
        ST.stratified_metrics(bicubic, s2_10m, mask=np.zeros((120, 120), bool))
    with pytest.raises(ShapeError, match="stratum is empty"):
        ST.stratified_metrics(bicubic, s2_10m, thresholds=(0.0, 10.0))
    r = ST.stratified_metrics(bicubic, s2_10m, thresholds=(0.0, 10.0), skip_empty=True)
    assert "psnr_high_gradient" not in r
    with pytest.raises(EosrError, match="quantiles"):
        ST.gradient_strata(s2_10m, quantiles=(0.5, 90))


def test_infos() -> None:
    names = {i.name for i in ST.INFOS}
    assert {"psnr_low_gradient", "psnr_high_gradient", "rmse_low_gradient", "rmse_high_gradient"} <= names
