"""``eosr.evaluate`` and ``eosr evaluate``: the one call users make, on real Sentinel-2 imagery.

Known-answer probes through the whole pipeline (operator, registration, detail decomposition), the
uncertainty calibration metrics, file-level checks, windowed == whole, and one-line CLI errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import from_origin

import eosr
from conftest import call_cli as call
from eosr.degrade import Degradation
from eosr.errors import EosrError, GeoError, ScaleError, ShapeError
from eosr.scene.evaluate import evaluate_files

BANDS = ["B02", "B03", "B04", "B08"]
CRS = "EPSG:32633"


@pytest.fixture(scope="module")
def op() -> Degradation:
    return Degradation.from_sensor("sentinel2", BANDS, 2)


@pytest.fixture(scope="module")
def triplet(s2_10m: np.ndarray, op: Degradation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HR, LR = D(HR), bicubic(LR)) on a real BigEarthNet patch."""
    hr = s2_10m.astype(np.float64)
    lr = np.asarray(op(hr))
    bic = F.interpolate(torch.from_numpy(lr)[None], scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    return hr, lr, bic


def ev(sr: np.ndarray, hr: np.ndarray, lr: np.ndarray, **kw):
    return eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS, **kw)


def test_perfect_sr_scores_perfectly(triplet) -> None:
    hr, lr, _ = triplet
    res = ev(hr, hr, lr)
    assert res.value("lr_fidelity") < 1e-9
    assert res.value("hr_fidelity") < 1e-9
    assert res.value("psnr") == 120.0  # the one PSNR cap
    assert res.value("ssim") == pytest.approx(1.0, abs=1e-9)
    assert abs(res.value("shift_x_px")) < 0.01 and abs(res.value("shift_y_px")) < 0.01
    assert res.value("gain") == pytest.approx(1.0, abs=1e-6)
    assert res.value("hallucination") < 1e-6 and res.value("omission") < 1e-6
    assert res.value("improvement") == pytest.approx(1.0, abs=1e-6)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["metrics"]["psnr"]["capped"] is True


def test_bicubic_adds_nothing_and_loses_high_gradient_detail(triplet) -> None:
    hr, lr, bic = triplet
    res = ev(bic, hr, lr)
    assert res.value("hallucination") < 0.05  # only what the registration compensation perturbs
    assert res.value("omission") > 0.9
    assert res.value("psnr_high_gradient") < res.value("psnr_low_gradient") - 5.0
    assert res.value("frr") < 5.0


@pytest.mark.parametrize("dx", [0.5, 1.0, 2.0])
def test_a_shift_is_reported_as_a_shift(triplet, dx: float) -> None:
    from eosr.physics.registration import fourier_shift

    hr, lr, _ = triplet
    sr = np.stack([fourier_shift(b, 0.0, dx) for b in hr])  # SR(row, col) = HR(row, col - dx)
    res = ev(sr, hr, lr)
    assert res.value("shift_x_px") == pytest.approx(dx, abs=0.1)
    assert abs(res.value("shift_y_px")) < 0.1
    assert res.value("hallucination") < 0.15  # a shift is not invented detail
    assert res.value("psnr_aligned") > res.value("psnr") + 3.0


def test_gain_shows_up_as_gain_and_stripes_as_hallucination(triplet) -> None:
    hr, lr, _ = triplet
    g = ev(1.1 * hr, hr, lr)
    assert g.value("gain") == pytest.approx(1.1, abs=0.01)
    assert abs(g.value("bias")) < 0.005
    assert g.value("hallucination") < 0.05
    stripes = hr + 0.02 * (np.arange(hr.shape[-1]) % 2)[None, None, :]
    s = ev(stripes, hr, lr)
    assert s.value("hallucination") > 0.5
    assert s.value("hallucination") > 10 * g.value("hallucination")


def test_without_hr_only_no_reference_metrics(triplet) -> None:
    hr, lr, bic = triplet
    res = eosr.evaluate(bic, lr=lr, sensor="sentinel2", bands=BANDS)
    assert "lr_fidelity" in res and "hf_gain_db" in res and "sam_lr_deg" in res
    assert "psnr" not in res and "hallucination" not in res


def test_torch_in_numpy_out_and_mask_nan(triplet) -> None:
    hr, lr, bic = triplet
    a = ev(bic, hr, lr, maps=False)
    b = eosr.evaluate(torch.from_numpy(bic), torch.from_numpy(hr), torch.from_numpy(lr), sensor="sentinel2",
                      bands=BANDS, maps=False)
    assert a.value("psnr") == pytest.approx(b.value("psnr"), abs=1e-9)
    # NaN (nodata) in SR never poisons a result; a mask removes the same pixels
    nan_sr = bic.copy()
    nan_sr[:, :10] = np.nan
    mask = np.ones(hr.shape[-2:], bool)
    mask[:10] = False
    c = ev(nan_sr, hr, lr, maps=False)
    d = ev(bic, hr, lr, mask=mask, maps=False)
    assert np.isfinite(c.value("psnr")) and c.value("psnr") == pytest.approx(d.value("psnr"), abs=1e-9)


def test_uncertainty_calibration_metrics(triplet) -> None:
    hr, lr, _ = triplet
    rng = np.random.default_rng(0)
    std = np.full_like(hr, 0.01)
    sr = hr + rng.normal(0, 1, hr.shape) * std
    res = ev(sr, hr, lr, uncertainty=std)
    assert res.value("uncertainty_coverage_90") == pytest.approx(0.9, abs=0.02)
    std2 = np.abs(sr - hr)  # oracle ranking
    res2 = ev(sr, hr, lr, uncertainty=std2)
    assert res2.value("uncertainty_ause") < 1e-9
    assert res2.value("uncertainty_spearman") > 0.99
    assert "uncertainty" in res2.maps
    with pytest.raises(ShapeError):
        ev(sr, hr, lr, uncertainty=std[:, :10])


def test_bad_input_is_a_clear_error(triplet) -> None:
    hr, lr, bic = triplet
    with pytest.raises(ShapeError, match="2-D"):
        eosr.evaluate(hr[0], hr[0])
    with pytest.raises(ShapeError):
        eosr.evaluate(bic, hr[:, :-2])
    with pytest.raises(ScaleError):
        eosr.evaluate(bic[:, :119], lr=lr)
    with pytest.raises(ShapeError, match="all NaN"):
        eosr.evaluate(np.full_like(hr, np.nan), hr)
    with pytest.raises(ShapeError, match="empty"):
        eosr.evaluate(bic, hr, mask=np.zeros(hr.shape[-2:], bool))
    with pytest.raises(EosrError):
        eosr.evaluate(bic, hr, data_range=0.0)


# ------------------------------------------------------------------------------------------- files, CLI


def _tif(path: Path, a: np.ndarray, px: float, x0: float = 600000.0, crs: str = CRS) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=a.shape[2], height=a.shape[1], count=a.shape[0],
                       dtype="float32", crs=crs, transform=from_origin(x0, 5100000.0, px, px), nodata=np.nan) as d:
        d.write(a.astype(np.float32))
    return path


@pytest.fixture()
def files(tmp_path: Path, triplet) -> dict[str, Path]:
    hr, lr, bic = triplet
    return {"hr": _tif(tmp_path / "hr.tif", hr, 10.0), "lr": _tif(tmp_path / "lr.tif", lr, 20.0),
            "sr": _tif(tmp_path / "sr.tif", bic, 10.0), "dir": tmp_path}


def test_cli_writes_strict_json_and_georeferenced_maps(files, capsys) -> None:
    js, maps = files["dir"] / "m.json", files["dir"] / "maps"
    code = call(["evaluate", "--sr", str(files["sr"]), "--hr", str(files["hr"]), "--lr", str(files["lr"]),
                 "--sensor", "sentinel2", "--bands", ",".join(BANDS), "--json", str(js), "--maps", str(maps)])
    assert code == 0, capsys.readouterr().err
    d = json.loads(js.read_text())
    assert d["bands"] == BANDS and d["data_range"] == 1.0
    assert d["metrics"]["hallucination"]["value"] < 0.05
    for name in ("error", "hallucination", "omission", "improvement", "hf_difference"):
        with rasterio.open(maps / f"{name}.tif") as m, rasterio.open(files["sr"]) as s:
            assert m.transform == s.transform and m.crs == s.crs and m.count == 4
    with rasterio.open(maps / "lr_residual.tif") as m, rasterio.open(files["lr"]) as lr:
        assert m.transform.almost_equals(lr.transform) and m.shape == lr.shape


def test_windowed_equals_whole_image(files, triplet) -> None:
    whole = evaluate_files(files["sr"], files["hr"], files["lr"], sensor="sentinel2", bands=BANDS, windowed=False)
    win = evaluate_files(files["sr"], files["hr"], files["lr"], sensor="sentinel2", bands=BANDS, windowed=True,
                         block=32)
    for k in ("psnr", "rmse", "mae", "sam_deg", "ergas", "lr_fidelity", "lr_fidelity_l2", "ssim", "uiqi"):
        assert win.value(k) == pytest.approx(whole.value(k), rel=1e-5, abs=1e-7), k
        np.testing.assert_allclose(np.asarray(win[k].per_band, float), np.asarray(whole[k].per_band, float),
                                   rtol=1e-5, atol=1e-7) if k != "sam_deg" else None
    assert win["ssim"].extra["n_valid"] == whole["ssim"].extra["n_valid"]
    assert "ssim" not in win.info["skipped"] and "frr" in win.info["skipped"]
    odd = evaluate_files(files["sr"], files["hr"], windowed=True, block=29)  # blocks not aligned to anything
    assert odd.value("ssim") == pytest.approx(whole.value("ssim"), rel=1e-6)


def test_windowed_ssim_with_nodata_and_a_mask_equals_whole_image(files, triplet) -> None:
    """NaN in SR and HR and a mask: windowed SSIM/UIQI leave out the windows touching nodata, as the
    whole image does (blocks not aligned to the holes; one hole across a block edge)."""
    hr, _, bic = triplet
    holed, hr_holed = bic.copy(), hr.copy()
    holed[1, 40, 40] = np.nan
    hr_holed[:, 30:36, 60:70] = np.nan
    sr, hrf = _tif(files["dir"] / "sr_nodata.tif", holed, 10.0), _tif(files["dir"] / "hr_nodata.tif", hr_holed, 10.0)
    mask = np.ones((1, *hr.shape[1:]), dtype=np.float32)
    mask[0, 5:12, 80:95] = 0
    mf = _tif(files["dir"] / "mask.tif", mask, 10.0)
    for kw in ({}, {"mask": mf}):
        win = evaluate_files(sr, hrf, windowed=True, block=29, **kw)
        whole = evaluate_files(sr, hrf, windowed=False, **kw)
        for k in ("psnr", "ssim", "uiqi"):
            assert win.value(k) == pytest.approx(whole.value(k), rel=1e-5), (kw, k)
            np.testing.assert_allclose(np.asarray(win[k].per_band, float), np.asarray(whole[k].per_band, float),
                                       rtol=1e-5)
        assert win["ssim"].extra["n_valid"] == whole["ssim"].extra["n_valid"]
        assert "ssim" not in win.info["skipped"]


def test_file_errors_are_one_line(files, capsys) -> None:
    d = files["dir"]
    hr, lr, _ = (rasterio.open(files[k]).read() for k in ("hr", "lr", "sr"))
    shifted = _tif(d / "lr_shift.tif", lr, 20.0, x0=600005.0)  # half an SR pixel: no common pixel grid
    with pytest.raises(GeoError, match="not aligned"):
        evaluate_files(files["sr"], lr=shifted, sensor="sentinel2", bands=BANDS)
    odd = _tif(d / "lr_odd.tif", lr[:, :48, :48], 25.0)
    with pytest.raises(ScaleError, match="integer multiple"):
        evaluate_files(files["sr"], lr=odd)
    other = _tif(d / "hr_crs.tif", hr, 10.0, crs="EPSG:32632")
    with pytest.raises(GeoError, match="CRS"):
        evaluate_files(files["sr"], other)
    (d / "bad.tif").write_bytes(b"II*\x00garbage")
    for args in (["--sr", str(d / "bad.tif"), "--hr", str(files["hr"])],
                 ["--sr", str(d / "missing.tif"), "--hr", str(files["hr"])],
                 ["--sr", str(files["sr"]), "--lr", str(odd)]):
        capsys.readouterr()
        assert call(["evaluate", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


def test_a_band_all_nodata_in_hr_is_left_out_not_fatal(triplet) -> None:
    """One HR band entirely NaN (e.g. a band missing from the reference product): that band is NaN per band and
    every pooled figure equals the evaluation of the other bands (registration, strata and spectra included)."""
    import warnings

    hr, lr, bic = triplet
    hr_gap = hr.copy()
    hr_gap[2] = np.nan
    keep = [0, 1, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the empty band either
        res = eosr.evaluate(bic, hr_gap, data_range=1.0)
    ref = eosr.evaluate(bic[keep], hr[keep], data_range=1.0)
    for k in ("psnr", "ssim", "psnr_high_gradient", "ssim_low_gradient", "psnr_aligned", "shift_x_px"):
        assert res.value(k) == pytest.approx(ref.value(k), rel=1e-6, abs=1e-9), k
        per = np.asarray(res.metrics[k].per_band, dtype=float)
        if per.ndim:
            assert np.isnan(per[2]) and np.allclose(per[keep], ref.metrics[k].per_band, rtol=1e-6, atol=1e-9), k
