"""Metrics use what eosr measured (issue 14, item 6), on real Sentinel-2 imagery.

``eosr.evaluate`` computes the effective resolution, FRR and its over/undershoot on the shift-, gain-
and bias-compensated SR (the one it already uses for the ``_aligned`` and hallucination scores), so a
pure shift or gain leaves them equal to the perfect SR's; the effective resolution is bounded by the
image size; every PSNR-type value obeys one 120 dB cap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import eosr
from conftest import BEN, read_s2_10m
from eosr.degrade import Degradation
from eosr.evaluation import EvaluationResult
from eosr.metrics.base import PSNR_CAP_DB, psnr_db
from eosr.metrics.frequency import effective_resolution

BANDS = ["B02", "B03", "B04", "B08"]
N = 112  # HR side; the real patch is 120 px, so a 2-px crop-shift and the bicubic margin stay real content


@pytest.fixture(scope="module")
def scene() -> dict[str, np.ndarray]:
    """A real BigEarthNet patch: HR (4, N, N), its LR through the Sentinel-2 operator, a bicubic SR
    computed on a larger area (so its crop-shift is real content too), and the full patch."""
    full = read_s2_10m(BEN / "S2A_MSIL2A_20170613T101031_87_48")
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    hr = full[:, :N, :N]
    lr = np.asarray(op(hr))
    lr_big = np.asarray(op(full[:, : N + 4, : N + 4]))
    bic = F.interpolate(torch.from_numpy(lr_big)[None], scale_factor=2, mode="bicubic", align_corners=False)[0]
    return {"full": full, "hr": hr, "lr": lr, "bic": bic.numpy()}


def ev(sr: np.ndarray, s: dict[str, np.ndarray]) -> EvaluationResult:
    return eosr.evaluate(sr, s["hr"], s["lr"], sensor="sentinel2", bands=BANDS, maps=False)


@pytest.fixture(scope="module")
def refs(scene) -> dict[str, EvaluationResult]:
    """The perfect SR's and the bicubic SR's results (each computed once for the module)."""
    return {"perfect": ev(scene["hr"], scene), "bicubic": ev(scene["bic"][:, :N, :N], scene)}


def test_a_2px_shift_keeps_effective_resolution_and_psnr_aligned_at_the_cap(scene, refs) -> None:
    hr, full = scene["hr"], scene["full"]
    perfect = refs["perfect"]
    for sr in (full[:, 2 : N + 2, :N], np.roll(hr, 2, axis=-1)):  # crop-shift (real content) and roll
        res = ev(sr, scene)
        assert abs(res.value("shift_y_px")) + abs(res.value("shift_x_px")) == pytest.approx(2.0, abs=0.02)
        er, er0 = res.value("effective_resolution_px"), perfect.value("effective_resolution_px")
        assert abs(er - er0) <= 0.02 * er0  # was 3.9-4.3 px before compensation
        assert res.value("psnr_aligned") == PSNR_CAP_DB  # was 324 dB: the cap was not applied
        assert res["psnr_aligned"].extra["capped"] is True
        np.testing.assert_array_equal(res["psnr_aligned"].per_band, PSNR_CAP_DB)
        assert res.value("psnr") < 35  # the raw PSNR still sees the shift
        assert res["effective_resolution_px"].extra["compensated"] is True


def test_a_1_1_gain_leaves_overshoot_and_effective_resolution_unchanged(scene, refs) -> None:
    hr, bic = scene["hr"], scene["bic"][:, :N, :N]
    for base, ref in ((hr, refs["perfect"]), (bic, refs["bicubic"])):  # the perfect SR and a real (bicubic) SR
        gained = ev(1.1 * base, scene)
        assert gained.value("gain") == pytest.approx(1.1 * ref.value("gain"), rel=1e-6)
        # was 0.83 dB of "overshoot" for a pure gain
        assert abs(gained.value("frr_overshoot_db") - ref.value("frr_overshoot_db")) < 0.05
        assert abs(gained.value("frr_undershoot_db") - ref.value("frr_undershoot_db")) < 0.05
        assert gained.value("frr") == pytest.approx(ref.value("frr"), abs=0.05)
        assert gained.value("effective_resolution_px") == pytest.approx(ref.value("effective_resolution_px"),
                                                                        rel=0.02)
        assert gained["frr_overshoot_db"].extra["compensated"] is True


def test_a_shifted_real_sr_keeps_its_own_effective_resolution(scene, refs) -> None:
    bic = scene["bic"]
    ref, moved = refs["bicubic"], ev(bic[:, 2 : N + 2, :N], scene)
    assert 2.5 < ref.value("effective_resolution_px") < 3.5  # bicubic x2 of the Sentinel-2 LR: ~3 px
    assert moved.value("effective_resolution_px") == pytest.approx(ref.value("effective_resolution_px"), rel=0.02)
    assert moved.value("frr_overshoot_db") == pytest.approx(ref.value("frr_overshoot_db"), abs=0.05)


def test_effective_resolution_is_bounded_by_the_image_size() -> None:
    a = read_s2_10m(BEN / "S2A_MSIL2A_20170613T101031_87_48")
    b = read_s2_10m(BEN / "S2A_MSIL2A_20170617T113321_36_85")  # another place: incoherent with a
    r = effective_resolution(b, a)
    assert r.value == pytest.approx(120.0) and r.extra["bounded"] is True and r.extra["max_px"] == pytest.approx(120)
    assert np.all(np.asarray(r.per_band) <= 120.0 + 1e-9)
    r = effective_resolution(a[:, :, :100], a[:, :, 20:])  # 120 x 100: bounded by min(H, W)
    assert r.value <= 100.0 + 1e-9
    good = effective_resolution(a, a)
    assert good.value == 1.0 and good.extra["bounded"] is False


def test_one_psnr_cap_everywhere(scene, refs) -> None:
    hr = scene["hr"]
    res = refs["perfect"]
    psnr_type = [n for n in res.metrics if n.startswith("psnr")]
    assert {"psnr", "psnr_aligned", "psnr_low_gradient", "psnr_high_gradient"} <= set(psnr_type)
    for n in psnr_type:
        assert res.value(n) == PSNR_CAP_DB, n
        np.testing.assert_array_equal(res[n].per_band, PSNR_CAP_DB)
        assert res.to_dict()["metrics"][n]["capped"] is True
    # the formula, the cap and NaN: known answers
    assert psnr_db(0.01, 1.0) == pytest.approx(20.0)
    assert psnr_db(0.0, 1.0) == PSNR_CAP_DB and psnr_db(1e-40, 255.0) == PSNR_CAP_DB
    assert psnr_db(1e-13 * 255.0**2, 255.0) == PSNR_CAP_DB
    np.testing.assert_allclose(psnr_db(np.array([1e-4, 0.0, np.nan]), 1.0), [40.0, 120.0, np.nan])
    t = torch.tensor([1e-4, 0.0], dtype=torch.float64, requires_grad=True)
    y = psnr_db(t, 1.0)
    y.sum().backward()
    assert y.tolist() == pytest.approx([40.0, 120.0]) and t.grad is not None and t.grad[1] == 0.0
    # below the cap nothing changes: PSNR of a real bicubic SR equals the plain formula
    bic = scene["bic"][:, :N, :N]
    mse = float(np.mean((bic - hr) ** 2))
    assert refs["bicubic"].value("psnr") == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-9)
