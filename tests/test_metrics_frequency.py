"""Frequency-domain metrics on real Sentinel-2 data: FRR known answers (HR -> 100, interpolated LR -> 0),
overshoot from stripes, unit invariance, the no-reference variant, effective resolution, NaN, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from eosr.degrade.operator import Degradation
from eosr.errors import EosrError, ScaleError, ShapeError
from eosr.metrics import frequency as FQ
from eosr.physics.spectrum import radial_power_spectrum

BANDS = ["B02", "B03", "B04", "B08"]


def _interp(lr: np.ndarray, r: int) -> np.ndarray:
    t = torch.from_numpy(lr)[None]
    return torch.nn.functional.interpolate(t, scale_factor=r, mode="bicubic", align_corners=False)[0].numpy()


@pytest.fixture(scope="module", params=[2, 4])
def triplet(request: pytest.FixtureRequest, s2_10m: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(HR, bicubic-interpolated LR made with the Sentinel-2 PSF, scale)."""
    r = int(request.param)
    op = Degradation.from_sensor("sentinel2", BANDS, r)
    return s2_10m, _interp(op.downsample(s2_10m), r), r


def _vals(d: dict) -> dict[str, float]:
    return {k: float(v.value) for k, v in d.items()}


def test_frr_formula_known_answer() -> None:
    t = np.array([10.0, 10.0, 10.0, 10.0])
    i = np.array([10.0, 6.0, 4.0, 12.0])  # missing 0, 4, 6, 0 dB -> PFR 10
    p = np.array([11.0, 8.0, 4.0, 9.0])  # restores 2 of 4, 0 of 6; overshoot 1 in bin 0; undershoot 3 in bin 3
    pfr, afr, over, under = FQ.frr_from_profiles(t, i, p)
    assert (pfr, afr, over, under) == (10.0, 2.0, 1.0, 3.0)
    # capped at the target: a prediction above T restores exactly the missing part
    pfr, afr, _, _ = FQ.frr_from_profiles(t, i, np.full(4, 20.0))
    assert afr == pfr == 10.0


def test_frr_perfect_and_interpolated(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    perfect = _vals(FQ.frequency_restoration(hr, hr, interp))
    assert perfect == {"frr": pytest.approx(100.0), "frr_overshoot_db": 0.0, "frr_undershoot_db": 0.0}
    none = _vals(FQ.frequency_restoration(interp, hr, interp))
    assert none == {"frr": pytest.approx(0.0), "frr_overshoot_db": 0.0, "frr_undershoot_db": 0.0}
    # halfway: a mildly blurred HR restores part of the missing energy
    blur = np.stack([gaussian_filter(b, 0.7) for b in hr])
    mid = FQ.frequency_restoration(blur, hr, interp)
    assert 10.0 < mid["frr"].value < 95.0
    assert mid["frr"].per_band.shape == (4,)


def test_stripes_give_overshoot(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    stripes = hr + 0.02 * (np.arange(120) % 2)[None, None, :]
    r = _vals(FQ.frequency_restoration(stripes, hr, interp))
    assert r["frr_overshoot_db"] > 0.3  # one ring near Nyquist gains ~30 dB
    assert r["frr"] > 99.0  # FRR is capped at the target: overshoot is reported apart
    noisy = hr + np.random.default_rng(0).normal(0, 0.01, hr.shape)
    assert FQ.frequency_restoration(noisy, hr, interp)["frr_overshoot_db"].value > 1.0


def test_frr_matches_physics_spectrum(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    blur = np.stack([gaussian_filter(b, 1.0) for b in hr])
    db = [10 * np.log10(radial_power_spectrum(x)[1]) for x in (hr, interp, blur)]
    pfr, afr, over, under = FQ.frr_from_profiles(*db)
    r = FQ.frequency_restoration(blur, hr, interp)
    assert r["frr"].value == pytest.approx(100 * afr.sum() / pfr.sum(), rel=1e-9)
    np.testing.assert_allclose(r["frr"].per_band, 100 * afr / pfr, rtol=1e-9)
    assert r["frr_undershoot_db"].value == pytest.approx(under.mean() / db[0].shape[1], rel=1e-9)


def test_frr_does_not_depend_on_units(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    blur = np.stack([gaussian_filter(b, 0.8) for b in hr]) + 0.003 * np.random.default_rng(1).normal(size=hr.shape)
    a = _vals(FQ.frequency_restoration(blur, hr, interp))
    b = _vals(FQ.frequency_restoration(blur * 1e4, hr * 1e4, interp * 1e4, data_range=1e4))
    assert a == pytest.approx(b, rel=1e-9)


def test_f_range_and_spectra(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, r = triplet
    sp = FQ.radial_spectra(interp, hr, interp)
    assert set(sp.power) == {"sr", "hr", "lr_interp"} and sp.power["hr"].shape == (4, 60)
    # the interpolated LR misses most energy above the LR Nyquist
    above = sp.freqs > 0.5 / r
    assert (sp.db("hr") - sp.db("lr_interp"))[:, above].mean() > 10.0
    blur = np.stack([gaussian_filter(b, 0.7) for b in hr])
    hi = FQ.frequency_restoration(blur, hr, interp, f_range=(0.5 / r, 0.5))
    assert hi["frr"].extra["n_bins"] == int(above.sum())
    with pytest.raises(EosrError, match="f_range"):
        FQ.frequency_restoration(blur, hr, interp, f_range=(0.4, 0.2))


def test_no_reference_variant(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, r = triplet
    same = _vals(FQ.frequency_restoration_lr(interp, interp, scale=r))
    assert same == {"hf_gain_db": 0.0, "lf_deviation_db": 0.0}
    real = _vals(FQ.frequency_restoration_lr(hr, interp, scale=r))
    assert real["hf_gain_db"] > 10.0  # HR carries far more high-frequency power than the bicubic input
    assert real["lf_deviation_db"] < 2.0  # and agrees with it at the frequencies the LR measures
    with pytest.raises(ScaleError):
        FQ.frequency_restoration_lr(hr, interp, scale=1)
    assert not FQ.HF_GAIN.needs_hr and FQ.HF_GAIN.needs_lr


def test_effective_resolution(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, r = triplet
    assert FQ.effective_resolution(hr, hr).value == pytest.approx(1.0)
    e_interp = FQ.effective_resolution(interp, hr)
    assert 1.2 * r < e_interp.value < 2.0 * r  # measured 3.0 at x2, 5.9 at x4
    assert e_interp.extra["decorrelation_frequency"] >= e_interp.extra["cutoff_frequency"]
    blurs = [FQ.effective_resolution(np.stack([gaussian_filter(b, s) for b in hr]), hr).value for s in (0.5, 1.0, 2.0)]
    assert blurs[0] < blurs[1] < blurs[2]
    # an independent image has no coherent detail at any scale beyond the lowest ring
    other = np.random.default_rng(2).normal(size=hr.shape)
    assert FQ.effective_resolution(other, hr).value > 10.0


def test_frc_known_answers(s2_10m: np.ndarray) -> None:
    freqs, frc, ct, frc_b, _ = FQ.fourier_ring_correlation(s2_10m, s2_10m)
    np.testing.assert_allclose(frc, 1.0, atol=1e-12)
    np.testing.assert_allclose(ct, 1.0, atol=1e-12)
    # a pure gain keeps the correlation but halves the coherent transfer
    _, frc2, ct2, _, _ = FQ.fourier_ring_correlation(0.5 * s2_10m, s2_10m)
    np.testing.assert_allclose(frc2, 1.0, atol=1e-12)
    np.testing.assert_allclose(ct2, 0.5, atol=1e-12)
    assert frc_b.shape == (4, freqs.size)


def test_nan_equals_masked_and_batches(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    blur = np.stack([gaussian_filter(b, 0.7) for b in hr])
    sr = blur.copy()
    sr[:, 10:20, 30:44] = np.nan
    a = _vals(FQ.frequency_restoration(sr, hr, interp))
    b = _vals(FQ.frequency_restoration(blur, hr, interp, mask=np.isfinite(sr)))
    assert all(np.isfinite(v) for v in a.values())
    assert a == pytest.approx(b, rel=1e-12)
    e1, e2 = FQ.effective_resolution(sr, hr), FQ.effective_resolution(blur, hr, mask=np.isfinite(sr))
    assert np.isfinite(e1.value) and e1.value == pytest.approx(e2.value)
    # a batch of two identical items equals one item; torch in -> tensors out
    tb = torch.from_numpy(np.stack([blur, blur]))
    r = FQ.frequency_restoration(tb, torch.from_numpy(np.stack([hr, hr])), torch.from_numpy(np.stack([interp, interp])))
    assert isinstance(r["frr"].value, torch.Tensor)
    assert float(r["frr"].value) == pytest.approx(FQ.frequency_restoration(blur, hr, interp)["frr"].value, rel=1e-9)


def test_single_band(s2_10m: np.ndarray) -> None:
    op = Degradation.from_mtf(0.3, 2)
    hr = s2_10m[3:]
    interp = _interp(op.downsample(hr), 2)
    r = FQ.frequency_restoration(hr, hr, interp)
    assert r["frr"].value == pytest.approx(100.0) and r["frr"].per_band.shape == (1,)


def test_bad_input(triplet: tuple[np.ndarray, np.ndarray, int]) -> None:
    hr, interp, _ = triplet
    with pytest.raises(ShapeError, match="differ in shape"):
        FQ.frequency_restoration(hr[:, :-2], hr, interp)
    with pytest.raises(ShapeError):
        FQ.frequency_restoration(hr[0], hr[0], interp[0])
    with pytest.raises(ShapeError, match="no valid pixel"):
        FQ.frequency_restoration(np.full_like(hr, np.nan), hr, interp)
    with pytest.raises(ShapeError, match="no valid pixel"):
        FQ.effective_resolution(hr, hr, mask=np.zeros((120, 120), bool))
    with pytest.raises(EosrError, match="undefined"):
        FQ.frequency_restoration(hr, hr, hr)  # nothing is missing from the "interpolated LR"
    with pytest.raises(EosrError, match="threshold"):
        FQ.effective_resolution(hr, hr, threshold=1.5)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("compiled", [False, True])
def test_shared_spectra_equal_the_two_metrics(triplet: tuple[np.ndarray, np.ndarray, int], workers: int,
                                              compiled: bool) -> None:
    """restoration_and_resolution (one spectrum per image and band, planes in threads) equals
    frequency_restoration and effective_resolution, with and without a validity mask (the border a
    shift compensation invalidates, and a hole), float32 and float64, with NumPy's or the compiled rings."""
    import scipy.fft as sfft

    from eosr.evaluation import engine

    if compiled and not engine.AVAILABLE:
        pytest.skip("numba not installed")
    hr, it, _ = triplet
    sr = gaussian_filter(hr, (0, 0.7, 0.7)) + np.random.default_rng(3).normal(0, 0.002, hr.shape)
    valid = np.ones((1, *hr.shape), dtype=bool)
    valid[..., :2, :] = False
    valid[..., :, -3:] = False
    valid[0, 1, 40:50, 60:64] = False
    for dt in (np.float32, np.float64):
        s4, h4, i4 = (x.astype(dt)[None] for x in (sr, hr, it))
        for v in (None, valid):
            with sfft.set_workers(workers):
                frr, er = FQ.restoration_and_resolution(
                    s4, h4, i4, valid=v, ring_sums=engine.spectrum_ring_sums if compiled else None)
            m = None if v is None else v[0]
            ref = FQ.frequency_restoration(sr, hr, it, mask=m)
            for k, r in ref.items():
                assert frr[k].value == pytest.approx(float(r.value), rel=1e-4, abs=1e-6), (dt, k)
            assert er.value == pytest.approx(float(FQ.effective_resolution(sr, hr, mask=m).value), rel=1e-4)
