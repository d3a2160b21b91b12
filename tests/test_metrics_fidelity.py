"""LR / HR fidelity through the sensor operator: known answers on real Sentinel-2 data, noise units,
NaN handling, cross-check of the high-pass against SciPy, differentiability and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from eosr.degrade.operator import Degradation
from eosr.errors import EosrError, ScaleError, ShapeError
from eosr.metrics import fidelity as FI
from eosr.metrics import standard as S

BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def op() -> Degradation:
    return Degradation.from_sensor("sentinel2", BANDS, 2)


@pytest.fixture(scope="module")
def bicubic(s2_10m: np.ndarray, op: Degradation) -> np.ndarray:
    lr = torch.from_numpy(op.downsample(s2_10m))[None]
    up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    return up[0].numpy()


def test_perfect_sr_scores_zero(s2_10m: np.ndarray, op: Degradation) -> None:
    hr = s2_10m
    lr = op.downsample(hr)
    for norm in ("l1", "l2"):
        r = FI.lr_fidelity(hr, lr, op, norm=norm)
        assert r.value < 1e-12 and np.all(r.per_band < 1e-12)
        assert FI.hr_fidelity(hr, hr, op, norm=norm).value == 0.0
    assert FI.lr_fidelity(hr, lr, op).name == "lr_fidelity"
    assert FI.lr_fidelity(hr, lr, op, norm="l2").name == "lr_fidelity_l2"


def test_lr_fidelity_known_values(s2_10m: np.ndarray, op: Degradation, bicubic: np.ndarray) -> None:
    hr = s2_10m
    lr = op.downsample(hr)
    # a constant offset survives the normalised PSF unchanged: L1 = L2 = offset
    r1 = FI.lr_fidelity(hr + 0.01, lr, op)
    assert r1.value == pytest.approx(0.01, abs=1e-12)
    assert FI.lr_fidelity(hr + 0.01, lr, op, norm="l2").value == pytest.approx(0.01, abs=1e-12)
    # direct NumPy on the operator's output
    res = lr - op.downsample(bicubic)
    r = FI.lr_fidelity(bicubic, lr, op)
    assert r.value == pytest.approx(np.abs(res).mean(), abs=1e-12)
    np.testing.assert_allclose(r.per_band, np.abs(res).mean(axis=(1, 2)), atol=1e-12)
    assert r.value > 1e-4  # bicubic is not consistent with the sensor's PSF
    np.testing.assert_allclose(FI.lr_residual_map(bicubic, lr, op), res, atol=1e-12)


def test_lr_fidelity_in_noise_units(s2_10m: np.ndarray, op: Degradation) -> None:
    hr = s2_10m
    sigma = 0.005
    noisy = op.with_options(noise_sigma=sigma)
    lr = noisy(hr, seed=1)
    r = FI.lr_fidelity(hr, lr, op, norm="sigma", noise_sigma=sigma)
    assert r.name == "lr_fidelity_sigma"
    assert r.value == pytest.approx(1.0, abs=0.03)  # 14,400 residuals: RMS / sigma = 1 +- 1 %
    # the operator's own noise model gives the same number
    assert FI.lr_fidelity(hr, lr, noisy, norm="sigma").value == pytest.approx(r.value, rel=1e-9)
    # L1 of Gaussian noise: sigma sqrt(2 / pi)
    assert FI.lr_fidelity(hr, lr, op).value == pytest.approx(sigma * np.sqrt(2 / np.pi), rel=0.03)
    with pytest.raises(EosrError, match="noise"):
        FI.lr_fidelity(hr, lr, op, norm="sigma")


def test_high_pass_matches_scipy(s2_10m: np.ndarray, op: Degradation) -> None:
    hr = s2_10m
    assert op.sigmas is not None
    # same taps as the operator (+-(ceil(4 sigma) + 1)); SciPy's "reflect" is half-sample symmetric
    ref = []
    for b, s in zip(hr, op.sigmas, strict=True):
        half = np.ceil(4 * s) + 1
        ref.append(b - gaussian_filter(b, s, mode="reflect", truncate=half / s))
    np.testing.assert_allclose(FI.high_pass(hr, op), np.stack(ref), atol=1e-8)


def test_hr_fidelity_sees_detail_not_offsets(s2_10m: np.ndarray, op: Degradation, bicubic: np.ndarray) -> None:
    hr = s2_10m
    # a constant offset is low-frequency: invisible to HR fidelity, visible to MAE
    assert FI.hr_fidelity(hr + 0.02, hr, op).value < 1e-12
    assert S.mae(hr + 0.02, hr).value == pytest.approx(0.02)
    # direct NumPy formula on an SR that lacks detail
    hp = lambda x: x - op.blur(x)  # noqa: E731
    exp = np.abs((hr - op.blur(hr)) - (bicubic - op.blur(bicubic))).mean()
    assert FI.hr_fidelity(bicubic, hr, op).value == pytest.approx(exp, abs=1e-12)
    np.testing.assert_allclose(FI.hr_fidelity_map(bicubic, hr, op), hp(bicubic) - hp(hr), atol=1e-12)
    # stripes that are not in HR are high-frequency errors
    stripes = hr + 0.02 * (np.arange(120) % 2)[None, None, :]
    assert FI.hr_fidelity(stripes, hr, op).value > 5 * FI.hr_fidelity(hr * 1.001, hr, op).value
    # amplitude +-0.01 at Nyquist, which the PSF removes almost entirely from LPF(stripes)
    assert FI.hr_fidelity(stripes, hr, op).value == pytest.approx(0.01, rel=0.03)


def test_nan_and_mask(s2_10m: np.ndarray, op: Degradation, bicubic: np.ndarray) -> None:
    hr = s2_10m
    lr = op.downsample(hr)
    sr = bicubic.copy()
    sr[:, 40:50, 40:50] = np.nan
    r = FI.lr_fidelity(sr, lr, op)
    assert np.isfinite(r.value)
    bad = np.isnan(op.downsample(sr))
    assert bad.any() and bad.sum() < bad.size // 4
    exp = FI.lr_fidelity(bicubic, lr, op, mask=~bad)
    # taps below the operator's support threshold (1e-3 of the peak) may still touch the hole
    assert r.value == pytest.approx(exp.value, rel=1e-6)
    h = FI.hr_fidelity(sr, hr, op)
    hbad = np.isnan(FI.hr_fidelity_map(sr, hr, op))
    assert np.isfinite(h.value) and hbad[:, 40:50, 40:50].all()
    assert h.value == pytest.approx(FI.hr_fidelity(bicubic, hr, op, mask=~hbad).value, rel=1e-6)


def test_batched_torch_differentiable(s2_10m: np.ndarray, op: Degradation, bicubic: np.ndarray) -> None:
    hr = torch.from_numpy(np.stack([s2_10m, s2_10m[:, ::-1].copy()])).float()
    lr = torch.from_numpy(op.downsample(hr.double().numpy())).float()
    x = torch.from_numpy(np.stack([bicubic, bicubic[:, ::-1].copy()])).float().requires_grad_(True)
    loss = FI.lr_fidelity(x, lr, op).value + FI.hr_fidelity(x, hr, op).value
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert float(FI.lr_fidelity(x.detach(), lr, op).value) == pytest.approx(
        FI.lr_fidelity(bicubic, op.downsample(s2_10m), op).value, rel=1e-4
    )


def test_single_and_many_bands(s2_10m: np.ndarray) -> None:
    one = Degradation.from_mtf(0.3, 3)
    hr = s2_10m[:1]
    assert FI.lr_fidelity(hr, one.downsample(hr), one).value < 1e-12
    many = Degradation.from_mtf([0.3] * 13, 2)
    hr13 = np.resize(s2_10m, (13, 120, 120))
    assert FI.hr_fidelity(hr13 * 1.01, hr13, many).per_band.shape == (13,)


def test_bad_input(s2_10m: np.ndarray, op: Degradation) -> None:
    hr = s2_10m
    lr = op.downsample(hr)
    with pytest.raises(ShapeError, match="differ in shape"):
        FI.lr_fidelity(hr, lr[:, :-1], op)
    with pytest.raises(ScaleError):
        FI.lr_fidelity(hr[:, :-1], lr, op)
    with pytest.raises(ShapeError):
        FI.lr_fidelity(hr[0], lr[0], op)
    with pytest.raises(ShapeError, match="band PSFs"):
        FI.hr_fidelity(hr[:3], hr[:3], op)
    with pytest.raises(ShapeError, match="no valid pixel"):
        FI.hr_fidelity(np.full_like(hr, np.nan), hr, op)
    with pytest.raises(ShapeError, match="no valid pixel"):
        FI.lr_fidelity(hr, lr, op, mask=np.zeros(lr.shape, bool))
    with pytest.raises(EosrError, match="operator"):
        FI.hr_fidelity(hr, hr, "sentinel2")  # type: ignore[arg-type]
    with pytest.raises(EosrError, match="norm"):
        FI.lr_fidelity(hr, lr, op, norm="l3")  # type: ignore[arg-type]


def test_infos() -> None:
    assert [i.name for i in FI.INFOS][:1] == ["lr_fidelity"]
    assert FI.LR_FIDELITY.needs_lr and not FI.LR_FIDELITY.needs_hr
    assert FI.HR_FIDELITY.needs_hr and not FI.HR_FIDELITY.needs_lr
