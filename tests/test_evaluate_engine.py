"""The fused evaluation engine (:mod:`eosr.evaluation.engine`) against the reference path of eosr.metrics.

Same real-imagery eval_triplet through ``eosr.evaluate`` with and without the engine: every metric within
1e-4 relative (PSNR-type 0.01 dB; dB sums near zero, the over/undershoot, 1e-6 dB), same extras, same
maps; float32 inputs (the engine keeps them float32, the reference path computes small images in
float64; the bias, near 0, within 1e-7 absolute: float32's spacing at reflectance 0.1 is 7.5e-9) and
float64; shifted SRs (integer, sub-pixel, a different shift per batch item: SR' has an invalid border,
the aligned and frequency metrics come from its valid rectangle) and nodata in SR or HR (the whole HR
side takes the reference path).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import eosr
from eosr.errors import ShapeError
from eosr.evaluation import engine

pytestmark = pytest.mark.skipif(not engine.AVAILABLE, reason="numba not installed: the reference path alone runs")

BANDS = ["B02", "B03", "B04", "B08"]


def _same(fast, ref) -> None:
    assert set(fast.metrics) == set(ref.metrics)
    for k, r in ref.metrics.items():
        f = fast.metrics[k]
        # PSNR-type 0.01 dB; dB profile sums near 0 (over/undershoot) 1e-6 dB absolute; the bias, an offset
        # near 0 that float32 data resolve to their spacing (7.5e-9 at reflectance 0.1; the engine keeps
        # float32 where the reference path computes in float64), 1e-7 absolute; else 1e-4 relative
        near0 = 1e-6 if k.endswith("_db") else 1e-7 if k == "bias" else 1e-9
        tol = {"abs": 0.01} if k.startswith("psnr") else {"rel": 1e-4, "abs": near0}
        assert f.value == pytest.approx(r.value, **tol), k
        np.testing.assert_allclose(np.asarray(f.per_band, dtype=float), np.asarray(r.per_band, dtype=float),
                                   rtol=1e-4, atol=0.01 if k.startswith("psnr") else tol["abs"], err_msg=k)
        for key, v in r.extra.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                assert f.extra[key] == pytest.approx(v, rel=1e-4), (k, key)
    assert set(fast.maps) == set(ref.maps)
    for k, m in ref.maps.items():
        np.testing.assert_allclose(fast.maps[k], m, rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_equals_reference(eval_triplet, dtype) -> None:
    sr, hr, lr = (a.astype(dtype) for a in eval_triplet)
    kw = {"sensor": "sentinel2", "bands": BANDS}
    _same(eosr.evaluate(sr, hr, lr, **kw), eosr.evaluate(sr, hr, lr, fused_engine=False, **kw))


def test_engine_float32_precision_path(eval_triplet, monkeypatch) -> None:
    """Above FLOAT64_LIMIT evaluate runs in float32: the engine's float64 accumulators keep the values."""
    import eosr.evaluation.core as core

    monkeypatch.setattr(core, "FLOAT64_LIMIT", 1)
    sr, hr, lr = eval_triplet
    kw = {"sensor": "sentinel2", "bands": BANDS}
    fast = eosr.evaluate(sr, hr, lr, **kw)
    assert fast.info["precision"] == "float32"
    _same(fast, eosr.evaluate(sr, hr, lr, fused_engine=False, **kw))


def test_engine_shifted_and_nodata(eval_triplet) -> None:
    sr, hr, lr = eval_triplet
    kw = {"sensor": "sentinel2", "bands": BANDS}
    shifted = np.roll(sr, (1, -2), axis=(1, 2))
    _same(eosr.evaluate(shifted, hr, lr, **kw), eosr.evaluate(shifted, hr, lr, fused_engine=False, **kw))
    holed = sr.copy()
    holed[1, 10:14, 20:30] = np.nan
    _same(eosr.evaluate(holed, hr, lr, **kw), eosr.evaluate(holed, hr, lr, fused_engine=False, **kw))


def test_engine_subpixel_shift_and_hr_nodata(eval_triplet) -> None:
    """A sub-pixel shift per batch item (different invalid borders) and a hole in HR: FRR, the effective
    resolution and the aligned metrics equal the reference path's (a hole in HR once made FRR NaN)."""
    from eosr.metrics.registration import shift_image

    sr, hr, lr = eval_triplet
    kw = {"sensor": "sentinel2", "bands": BANDS}
    s = np.stack([shift_image(sr, 0.37, -0.61)[0], shift_image(sr, -1.2, 0.25)[0]])
    h, lo = np.stack([hr, hr]), np.stack([lr, lr])
    _same(eosr.evaluate(s, h, lo, **kw), eosr.evaluate(s, h, lo, fused_engine=False, **kw))
    holed = hr.copy()
    holed[2, 30:36, 40:52] = np.nan
    fast = eosr.evaluate(s[0], holed, lr, **kw)
    assert math.isfinite(fast["frr"].value)
    _same(fast, eosr.evaluate(s[0], holed, lr, fused_engine=False, **kw))


def test_engine_shifted_sr_stays_on_the_engine(eval_triplet, monkeypatch) -> None:
    """A shifted SR's aligned and frequency metrics do not fall back to the reference path."""
    from eosr.metrics import frequency
    from eosr.metrics import standard as S
    from eosr.metrics.registration import shift_image

    def boom(*a, **k):
        raise AssertionError("reference path called")

    for mod, name in ((S, "pixel_errors"), (S, "ssim"), (frequency, "frequency_restoration"),
                      (frequency, "effective_resolution")):
        monkeypatch.setattr(mod, name, boom)
    sr, hr, lr = eval_triplet
    res = eosr.evaluate(shift_image(sr, 0.37, -0.61)[0], hr, lr, sensor="sentinel2", bands=BANDS)
    assert res["shift_x_px"].value == pytest.approx(-0.61, abs=0.05)  # (the unshifted SR reads ~0.03 px)
    assert math.isfinite(res["ssim_aligned"].value) and math.isfinite(res["frr"].value)


def test_engine_batch(eval_triplet) -> None:
    sr, hr, lr = eval_triplet
    s, h, lo = (np.stack([a, a[:, ::-1].copy()]) for a in (sr, hr, lr))
    kw = {"sensor": "sentinel2", "bands": BANDS}
    _same(eosr.evaluate(s, h, lo, **kw), eosr.evaluate(s, h, lo, fused_engine=False, **kw))


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_filters_equal_operator_and_torch(scale, dtype) -> None:
    """The compiled separable passes against the operator (downsample, blur) and torch's bicubic."""
    import torch

    from eosr.degrade import Degradation
    from eosr.metrics.fidelity import high_pass
    from eosr.models.interp import upsample

    rng = np.random.default_rng(1)
    x = rng.random((2, 4, 12 * scale, 10 * scale)).astype(dtype)
    y = rng.random(x.shape).astype(dtype)
    op = Degradation.from_sensor("sentinel2", BANDS, scale)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    ky, kx = op.separable_taps(4)
    np.testing.assert_allclose(engine.separable_correlate(x, ky, kx, scale), op.downsample(torch.from_numpy(x)).numpy(),
                               atol=tol)
    ky, kx = op.separable_taps(4, blur=True)
    with pytest.raises(ShapeError, match="band count"):
        op.separable_taps(0)
    hp, sums = engine.high_pass_difference(x, y, ky, kx)
    ref = high_pass(x, op) - high_pass(y, op)
    np.testing.assert_allclose(hp, ref, atol=tol)
    np.testing.assert_allclose(sums[:, 0], np.abs(ref).sum(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(sums[:, 2], x.shape[0] * x.shape[2] * x.shape[3])
    up = upsample(torch.from_numpy(x), scale, "bicubic").numpy()
    np.testing.assert_allclose(engine.bicubic_upsample(x, scale), up, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_engine_takes_the_fused_lr_and_hr_fidelity(eval_triplet, monkeypatch) -> None:
    """On fully valid inputs the fidelity metrics and the bicubic come from the engine, not the reference."""
    from eosr.metrics import fidelity
    from eosr.models import interp

    def boom(*a, **k):
        raise AssertionError("reference path called")

    monkeypatch.setattr(fidelity, "lr_fidelity_metrics", boom)
    monkeypatch.setattr(fidelity, "hr_fidelity_metrics", boom)
    monkeypatch.setattr(interp, "upsample", boom)
    calls = []
    planes = engine.ssim_uiqi_planes

    def spy(*a, **k):
        calls.append(k.get("affine") is not None)
        return planes(*a, **k)

    monkeypatch.setattr(engine, "ssim_uiqi_planes", spy)
    sr, hr, lr = eval_triplet
    res = eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS)
    # this triplet's SR is shifted by 0.03 px: SR' is resampled and a 2-px border of it invalid; its SSIM
    # comes from the valid rectangle, one more call per band after the 4 of the raw SSIM
    assert calls == [False] * 8
    # an SR on the HR grid (no resampling): SR' = (SR - bias) / gain, its SSIM from SR's window moments,
    # equal to the reference path's SSIM of SR' itself
    on_grid = (0.95 * hr + 0.01 + np.random.default_rng(7).normal(0, 0.002, hr.shape)).astype(np.float32)
    calls.clear()
    fast = eosr.evaluate(on_grid, hr, lr, sensor="sentinel2", bands=BANDS)
    assert fast.value("shift_x_px") == 0 and fast.value("shift_y_px") == 0 and calls == [True] * 4
    monkeypatch.undo()
    _same(fast, eosr.evaluate(on_grid, hr, lr, sensor="sentinel2", bands=BANDS, fused_engine=False))
    assert {"lr_fidelity", "lr_fidelity_l2", "sam_lr_deg", "hr_fidelity", "hr_fidelity_l2", "hallucination"} <= set(
        res.metrics)


@pytest.mark.parametrize("shape", [(40, 64), (41, 37)])
def test_engine_ring_sums_equal_ring_sum(shape) -> None:
    """The one-pass ring sums of three half spectra against eosr.physics.spectrum.ring_sum per product."""
    from eosr.physics.spectrum import ring_sum

    rng = np.random.default_rng(2)
    h, w = shape
    fs, fh, fi = (np.fft.rfft2(rng.random(shape)).astype(np.complex64) for _ in range(3))
    n = min(h, w) // 2
    got = engine.spectrum_ring_sums(fs, fh, fi, h, w, n)
    ref = [ring_sum(np.real(fs * np.conj(fh)), h, w, n)] + [ring_sum(np.abs(f) ** 2, h, w, n) for f in (fs, fh, fi)]
    np.testing.assert_allclose(got, np.stack(ref), rtol=1e-5, atol=1e-3)
    assert not engine.spectrum_ring_sums(fs, fh, None, h, w, n)[3].any()
    # column-major spectra (restoration_and_resolution's layout) read in their order: the same sums
    f_s, f_h, f_i = (np.asfortranarray(f) for f in (fs, fh, fi))
    np.testing.assert_allclose(engine.spectrum_ring_sums(f_s, f_h, f_i, h, w, n), got, rtol=1e-12)
    power = engine.spectrum_ring_sums(None, None, f_i, h, w, n)  # one spectrum's power only
    assert not power[:3].any()
    np.testing.assert_allclose(power[3], got[3], rtol=1e-12)


def test_engine_quantiles_equal_numpy() -> None:
    from eosr.evaluation.engine import _quantiles_linear

    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 1000, 4097):
        a = rng.random(n).astype(np.float32) ** 3
        qs = (0.5, 0.9, 0.25, 0.0, 1.0)
        assert _quantiles_linear(a, qs) == [float(v) for v in np.quantile(a.astype(np.float64), qs)]


def test_engine_quantiles_of_large_arrays_by_bracketed_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 2^20 values the quantiles come from a sample-bracketed selection: exact, ties included, and
    the full partition when a bracket misses."""
    from eosr.evaluation import engine as E

    rng = np.random.default_rng(6)
    qs = (0.5, 0.9, 0.0, 1.0, 0.37)
    n = (1 << 20) + 12345
    cases = [rng.random(n).astype(np.float32) ** 3,  # skewed, like gradient magnitudes
             np.round(rng.random(n) * 50).astype(np.float32)]  # many ties
    for a in cases:
        want = [float(v) for v in np.quantile(a.astype(np.float64), qs)]
        assert E._quantiles_linear(a, qs) == want
        kth = sorted({int(np.floor((n - 1) * q)) for q in qs})
        sel = E._select(a, kth)
        assert sel is not None and all(sel[k] == float(np.partition(a, k)[k]) for k in kth)
    a = cases[0]
    monkeypatch.setattr(E, "SELECT_SAMPLE", 64)  # wide brackets (a small sample): still exact
    ranks = [0, 10, n // 3, n // 2, n - 10, n - 1]
    got = E._select(a, ranks)
    assert got is None or all(got[k] == float(np.partition(a, k)[k]) for k in ranks)
    monkeypatch.setattr(E, "_select", lambda v, ranks: None)  # a bracket missed: the full partition
    assert E._quantiles_linear(a, qs) == [float(v) for v in np.quantile(a.astype(np.float64), qs)]


def test_engine_any_finite() -> None:
    a = np.full((2, 3, 4), np.nan, dtype=np.float32)
    assert not engine.any_finite(a)
    a[1, 2, 3] = np.inf
    assert not engine.any_finite(a)
    a[1, 2, 0] = 0.5
    assert engine.any_finite(a)
    assert engine.any_finite(a[:, ::2])  # not contiguous
    assert engine.any_finite(np.zeros(3, dtype=np.int16))


def test_engine_affine_aligned_ssim_equals_filtering_it(eval_triplet) -> None:
    """SSIM of SR' = a SR + b from SR's window moments equals filtering SR' itself."""
    sr, hr, _ = eval_triplet
    x, y = sr[2].astype(np.float64), hr[2].astype(np.float64)
    a, b = 1 / 1.07, -0.01 / 1.07
    m1, m2 = np.zeros_like(x), np.zeros_like(x)
    direct = engine.ssim_uiqi_planes(x, y, a * x + b, 1.0, m1)
    affine = engine.ssim_uiqi_planes(x, y, None, 1.0, m2, affine=(a, b))
    assert affine[2] == pytest.approx(direct[2], rel=1e-10)
    assert affine[:2] == direct[:2] and affine[3:] == direct[3:]
    assert engine.ssim_uiqi_planes(x, y, None, 1.0, m2)[2] == 0.0  # neither: no aligned SSIM


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_masked_ssim_equals_reference(eval_triplet, dtype) -> None:
    """Nodata in either image: the windows touching it are left out of SSIM, UIQI and the SSIM of x2
    (its own nodata, and nodata where x has it and x2 not), as standard.ssim_uiqi leaves them out."""
    from eosr.metrics import standard as S

    sr, hr, _ = eval_triplet
    x, y = sr[1].astype(dtype), hr[1].astype(dtype)
    x[10:13, 20:90] = np.nan
    y[60:64, 5:9] = np.inf
    x2 = (0.98 * x + 0.001).astype(dtype)
    x2[100:104, 30:34] = np.nan
    smap = np.empty_like(x)
    got = engine.ssim_uiqi_planes(x, y, x2, 1.0, smap, masked=True)
    ref_s, ref_u, (rmap, rok) = S.ssim_uiqi(x[None], y[None], data_range=1.0)
    ref_2 = S.ssim(x2[None], y[None], data_range=1.0)
    assert got[0] / got[3] == pytest.approx(float(ref_s.value), rel=1e-6)
    assert got[1] / got[3] == pytest.approx(float(ref_u.value), rel=1e-6)
    assert got[2] / got[4] == pytest.approx(float(ref_2.value), rel=1e-6)
    assert got[3] == int(rok.sum()) and got[3] < (x.shape[0] - 10) * (x.shape[1] - 10)
    ok = rok[0, 0].numpy()
    np.testing.assert_array_equal(np.isfinite(smap[5:-5, 5:-5]), ok[5:-5, 5:-5])
    np.testing.assert_allclose(smap[ok], rmap[0, 0].numpy()[ok], rtol=1e-5, atol=1e-6)
    x2b = x2.copy()
    x2b[10:13, 20:90] = 0.05  # x2 valid where x is not: its windows are its own
    got_b = engine.ssim_uiqi_planes(x, y, x2b, 1.0, smap, masked=True)
    assert got_b[2] / got_b[4] == pytest.approx(float(S.ssim(x2b[None], y[None], data_range=1.0).value), rel=1e-6)
    assert got_b[:2] == got[:2]


def test_engine_nodata_stays_on_the_engine(eval_triplet, monkeypatch) -> None:
    """Nodata in SR and HR (NaN, and a band's inf) or a mask: the HR-side numbers match the reference
    path's, and the SSIM/UIQI, pixel errors and gradient strata do not fall back to it."""
    from eosr.metrics import standard as S
    from eosr.metrics import stratified

    sr, hr, lr = eval_triplet
    s, h = sr.copy(), hr.copy()
    s[0, 30:40, 50:58] = np.nan
    h[:, 70:75, 10:30] = np.nan
    h[3, 2, 2] = np.inf
    kw = {"sensor": "sentinel2", "bands": BANDS}
    mask = np.ones(hr.shape[1:], dtype=bool)
    mask[90:100, 40:70] = False
    refs = [eosr.evaluate(s, h, lr, fused_engine=False, **kw),
            eosr.evaluate(sr, hr, lr, mask=mask, fused_engine=False, **kw),
            eosr.evaluate(s, h, lr, mask=mask, fused_engine=False, **kw)]
    for mod, name in ((S, "ssim_uiqi"), (S, "pixel_errors"), (S, "ssim"), (stratified, "stratified_metrics")):
        monkeypatch.setattr(mod, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("reference path")))
    _same(eosr.evaluate(s, h, lr, **kw), refs[0])
    _same(eosr.evaluate(sr, hr, lr, mask=mask, **kw), refs[1])  # a mask: its pixels as nodata
    _same(eosr.evaluate(s, h, lr, mask=mask, **kw), refs[2])  # both


def test_engine_hr_fidelity_with_nodata_equals_the_operator_blur(eval_triplet, monkeypatch) -> None:
    """HR fidelity with NaN (the operator's normalised blur, NaN where its support touches one), an inf
    and a mask: values and map equal hr_fidelity_metrics', which the engine does not call."""
    from eosr.metrics import fidelity

    sr, hr, lr = eval_triplet
    s, h = sr.copy(), hr.copy()
    s[2, 50:53, 60:75] = np.nan
    h[0, 7, 100] = np.inf
    mask = np.ones(hr.shape[1:], dtype=bool)
    mask[20:30, 20:24] = False
    kw = {"sensor": "sentinel2", "bands": BANDS, "metrics": ["hr_fidelity", "hr_fidelity_l2"], "maps": True}
    refs = [eosr.evaluate(a, b, lr, fused_engine=False, mask=mk, **kw) for a, b, mk in ((s, h, None), (sr, hr, mask))]
    monkeypatch.setattr(fidelity, "hr_fidelity_metrics", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ref")))
    for (a, b, mk), ref in zip(((s, h, None), (sr, hr, mask)), refs, strict=True):
        fast = eosr.evaluate(a, b, lr, mask=mk, **kw)
        _same(fast, ref)
        assert np.isnan(fast.maps["hf_difference"]).sum() > 0


def test_evaluate_runs_blas_on_one_thread_and_restores_it(monkeypatch) -> None:
    """Inside ``eosr.evaluate`` BLAS runs on one thread (the evaluation threads over bands itself:
    OpenBLAS's threads oversubscribed the cores, docs/benchmarks.md); the caller's setting comes back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from eosr.evaluation import core

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("no BLAS library seen by threadpoolctl")
    seen: list[list[int]] = []
    inner = core._fused_hr

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(core, "_fused_hr", spy)
    rng = np.random.default_rng(0)
    hr = rng.random((2, 32, 32), dtype=np.float32)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        eosr.evaluate(hr + 0.01, hr, scale=2, metrics="psnr")
        assert blas_threads() == before
    assert seen and all(t == [1] * len(t) for t in seen)
