"""Evaluating real files honestly: radiometry never guessed, images without georeference, common
footprints, and the operator carried from simulation (issue: evaluate anything honestly)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import BEN, SAT, sample
from eosr.errors import DataError, GeoError, ScaleError
from eosr.scene.evaluate import evaluate_files

BANDS = ["B02", "B03", "B04", "B08"]


def eosr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eosr.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


# ------------------------------------------------------------------------------ radiometry
def test_worldstrat_8bit_triplet_needs_and_uses_dn_scale(tmp_path: Path) -> None:
    """A published multi-image SR (8-bit PNG, no georeference) against its SPOT reference, with the LR revisit."""
    from PIL import Image

    d = sample("worldstrat_demo")
    args = ["evaluate", "--sr", str(d / "SR.png"), "--hr", str(d / "HR.png"), "--lr", str(d / "L1.png"),
            "--scale", "2"]
    one_line_error(eosr(*args), "--dn-scale", "8-bit")
    js = tmp_path / "m.json"
    p = eosr(*args, "--dn-scale", str(1 / 255), "--json", str(js), cwd=tmp_path)
    assert p.returncode == 0 and "Warning" not in p.stderr and p.stderr == "", p.stderr
    out = json.loads(js.read_text())
    sr = np.asarray(Image.open(d / "SR.png").convert("RGB"), np.float64) / 255
    hr = np.asarray(Image.open(d / "HR.png").convert("RGB"), np.float64) / 255
    want = 10 * np.log10(1.0 / np.mean((sr - hr) ** 2))
    assert out["metrics"]["psnr"]["value"] == pytest.approx(want, abs=1e-4)
    assert out["georeferenced"] is False and out["scale"] == 2
    assert {v["rule"] for v in out["radiometry"].values()} == {"explicit"} and len(out["radiometry"]) == 3
    assert out["radiometry"]["sr"]["dn_scale"] == pytest.approx(1 / 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]  # nothing else written


def test_radiometry_rules_on_real_files(tmp_path: Path) -> None:
    from eosr.io import read_raster

    s2 = read_raster(SAT / "sentinel2_T18SVG_20160112" / "s2_B05.tif")  # Sentinel-2 name: x 1e-4
    assert s2.radiometry == "Sentinel-2 convention" and s2.dn_scale == 1e-4
    l8 = SAT / "landsat8_LC80200392015216" / "l8_B4.tif"
    assert read_raster(l8).radiometry.startswith("Landsat MTL")  # the scene's MTL beside it (test_landsat_mtl.py)
    alone = tmp_path / l8.name
    shutil.copy(l8, alone)
    with pytest.raises(DataError, match="give --dn-scale"):  # Landsat DN without its MTL: never guessed
        read_raster(alone)
    r = read_raster(l8, dn_scale=2e-5, dn_offset=-0.1)
    assert r.radiometry == "explicit" and r.dn_offset == -0.1
    with pytest.raises(DataError, match="finite"):
        read_raster(l8, dn_scale=float("nan"))


def test_16bit_png_without_metadata_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    a = (np.random.default_rng(0).random((64, 64)) * 60000).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "sr.png")
    Image.fromarray(a).save(tmp_path / "hr.png")
    one_line_error(eosr("evaluate", "--sr", str(tmp_path / "sr.png"), "--hr", str(tmp_path / "hr.png")),
                   "--dn-scale", "uint16")


# ------------------------------------------------------------------------------ grids and footprints
def test_mixed_georeference_and_missing_scale_are_refused(tmp_path: Path, hr_tif: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((120, 120, 3), np.uint8)).save(tmp_path / "x.png")
    Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(tmp_path / "lr.png")
    one_line_error(eosr("evaluate", "--sr", str(hr_tif), "--hr", str(tmp_path / "x.png"), "--dn-scale", "1"),
                   "georeferenced")
    one_line_error(eosr("evaluate", "--sr", str(tmp_path / "x.png"), "--lr", str(tmp_path / "lr.png"),
                        "--dn-scale", "1"), "--scale")
    one_line_error(eosr("evaluate", "--sr", str(tmp_path / "x.png"), "--lr", str(tmp_path / "lr.png"),
                        "--dn-scale", "1", "--scale", "3"), "x3")


def _write(path: Path, a: np.ndarray, x0: float, y0: float, px: float) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=a.shape[2], height=a.shape[1], count=a.shape[0],
                       dtype="float32", crs="EPSG:32633", transform=from_origin(x0, y0, px, px)) as d:
        d.write(a.astype(np.float32))
    return path


def test_common_footprint_equals_the_cropped_evaluation(tmp_path: Path, hr_tif: Path) -> None:
    with rasterio.open(hr_tif) as d:
        hr, t = d.read(), d.transform
    from eosr.degrade import Degradation

    lr = np.asarray(Degradation.from_sensor("sentinel2", BANDS, 2)(hr.astype(np.float64)), np.float32)
    x0, y0 = t.c, t.f
    # SR covers columns 4.. and rows 0..111 of the HR; LR covers everything; HR everything
    sr = hr[:, :112, 4:] * 1.01
    p_sr = _write(tmp_path / "sr.tif", sr, x0 + 40, y0, 10)
    p_hr = _write(tmp_path / "hr.tif", hr, x0, y0, 10)
    p_lr = _write(tmp_path / "lr.tif", lr, x0, y0, 20)
    res = evaluate_files(p_sr, p_hr, p_lr, sensor="sentinel2", bands=BANDS)
    fp = res.info["footprint"]
    assert fp["sr_window"] == [0, 112, 0, 116] and fp["hr_window"] == [0, 112, 4, 120]
    assert fp["lr_window"] == [0, 56, 2, 60]
    ref = evaluate_files(_write(tmp_path / "sr2.tif", sr, x0 + 40, y0, 10),
                         _write(tmp_path / "hr2.tif", hr[:, :112, 4:], x0 + 40, y0, 10),
                         _write(tmp_path / "lr2.tif", lr[:, :56, 2:], x0 + 40, y0, 20), sensor="sentinel2", bands=BANDS)
    for k in ("psnr", "ssim", "lr_fidelity", "hr_fidelity"):
        assert res.value(k) == pytest.approx(ref.value(k), rel=1e-9, abs=1e-12), k
    # an SR origin off the LR grid (odd SR column) is snapped onto it
    res = evaluate_files(_write(tmp_path / "sr3.tif", hr[:, :, 3:], x0 + 30, y0, 10), p_hr, p_lr, sensor="sentinel2",
                         bands=BANDS)
    assert res.info["footprint"]["sr_window"] == [0, 120, 1, 117]
    with pytest.raises(GeoError, match="do not overlap"):
        evaluate_files(_write(tmp_path / "far.tif", sr, x0 + 5000, y0, 10), p_hr)
    with pytest.raises(GeoError, match="not aligned"):
        evaluate_files(_write(tmp_path / "half.tif", sr, x0 + 45, y0, 10), p_hr)
    p = eosr("evaluate", "--sr", str(tmp_path / "far.tif"), "--hr", str(p_hr))
    one_line_error(p, "do not overlap")


# ------------------------------------------------------------------------------ the operator travels
@pytest.mark.parametrize("mode", ["full", "wald"])
def test_simulate_then_evaluate_true_hr_is_lr_consistent(tmp_path: Path, hr_tif: Path, mode: str) -> None:
    lr = tmp_path / "lr.tif"
    p = eosr("simulate", str(hr_tif), str(lr), "--sensor", "sentinel2", "--operator", mode)
    assert p.returncode == 0, p.stderr
    with rasterio.open(lr) as d:
        assert json.loads(d.tags()["eosr_operator"])["description"].startswith(
            "sentinel2 Wald" if mode == "wald" else "sentinel2 PSF")
    res = evaluate_files(hr_tif, lr=lr)  # no sensor: the LR's tag defines the operator
    assert res.info["operator_choice"] == {"mode": "tag", "source": "tag"}
    assert res.value("lr_fidelity") < 1e-6
    other = "wald" if mode == "full" else "full"
    res = evaluate_files(hr_tif, lr=lr, sensor="sentinel2", operator=other)  # the option wins over the tag
    assert res.info["operator_choice"] == {"mode": other, "source": "option"} and res.value("lr_fidelity") > 1e-4
    js = tmp_path / "m.json"
    assert eosr("evaluate", "--sr", str(hr_tif), "--lr", str(lr), "--quiet", "--json", str(js)).returncode == 0
    out = json.loads(js.read_text())
    assert out["metrics"]["lr_fidelity"]["value"] < 1e-6 and out["operator"]["scale"] == 2


def test_simulate_crop_names_the_window_and_evaluate_uses_it(tmp_path: Path) -> None:
    src = SAT / "sentinel2_T18SVG_20160112" / "s2_B05.tif"  # 487 x 485: odd
    lr, sr = tmp_path / "lr.tif", tmp_path / "sr.tif"
    one_line_error(eosr("simulate", str(src), str(lr), "--bands", "B05"), "--crop")
    p = eosr("simulate", str(src), str(lr), "--bands", "B05", "--crop")
    assert p.returncode == 0 and "rows 0:486, columns 0:484 of the 487x485 HR" in p.stdout, p.stdout
    assert eosr("sr", str(lr), str(sr), "--model", "bicubic", "--no-progress").returncode == 0
    res = evaluate_files(sr, src, lr)
    assert res.info["footprint"]["hr_window"] == [0, 486, 0, 484]
    assert res.info["radiometry"]["hr"]["rule"] == "Sentinel-2 convention"
    assert res.value("lr_fidelity") < 0.01  # the tag's operator; bicubic SR is roughly LR-consistent


def test_operator_option_errors_and_deprecated_wald(tmp_path: Path, hr_tif: Path) -> None:
    one_line_error(eosr("evaluate", "--sr", str(hr_tif), "--hr", str(hr_tif), "--operator", "sharp"), "--operator")
    one_line_error(eosr("evaluate", "--sr", str(hr_tif), "--hr", str(hr_tif), "--operator", "wald", "--scale", "2"),
                   "sensor")
    p = eosr("simulate", str(hr_tif), str(tmp_path / "lr.tif"), "--sensor", "sentinel2", "--wald")
    assert p.returncode == 0 and "--wald is deprecated; use --operator wald" in p.stderr
    with rasterio.open(tmp_path / "lr.tif") as d:
        assert "Wald" in json.loads(d.tags()["eosr_operator"])["description"]


def test_backprojection_takes_the_operator(tmp_path: Path, hr_tif: Path) -> None:
    """``eosr sr --model backprojection`` uses --operator, else the LR's tag; other models refuse --operator."""
    import torch

    from eosr.degrade import Degradation
    from eosr.models.backprojection import BackProjection

    lr = tmp_path / "lr.tif"
    assert eosr("simulate", str(hr_tif), str(lr), "--sensor", "sentinel2", "--operator", "wald").returncode == 0
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    assert eosr("sr", str(lr), str(a), "--model", "backprojection", "--no-progress").returncode == 0
    assert eosr("sr", str(lr), str(b), "--model", "backprojection", "--operator", "full", "--sensor", "sentinel2",
                "--no-progress").returncode == 0
    with rasterio.open(lr) as d, rasterio.open(a) as da, rasterio.open(b) as db:
        x = torch.from_numpy(d.read().astype(np.float32))[None]
        want = BackProjection(2, BANDS, operator=Degradation.from_sensor("sentinel2", BANDS, 2, wald=True))
        with torch.no_grad():
            ref = want(x)[0].numpy()
        np.testing.assert_allclose(da.read(), ref, atol=1e-5)
        assert np.abs(db.read() - da.read()).max() > 1e-4  # a different operator, a different result
    one_line_error(eosr("sr", str(lr), str(a), "--model", "bicubic", "--operator", "full", "--no-progress"),
                   "physics-based")


def test_no_library_warning_reaches_the_terminal(tmp_path: Path) -> None:
    from PIL import Image

    a = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "sr.png")
    Image.fromarray(a).save(tmp_path / "hr.png")
    p = eosr("evaluate", "--sr", str(tmp_path / "sr.png"), "--hr", str(tmp_path / "hr.png"), "--dn-scale", "0.004",
             "--maps", str(tmp_path / "maps"), "--quiet")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with pytest.raises(ScaleError):
        evaluate_files(tmp_path / "sr.png", lr=tmp_path / "hr.png", dn_scale=0.004)


def test_calibrated_operator_survives_the_tag() -> None:
    """A fitted (block-centred, signed) kernel described in an eosr_operator tag is rebuilt exactly."""
    import torch

    from eosr.data.s2bands import read_s2_band_folder
    from eosr.degrade.calibrate import CalibratedDegradation
    from eosr.degrade.kernels import family_taps
    from eosr.degrade.resolve import operator_from_tag

    t = np.asarray(family_taps("keys", 2, 8), np.float64)
    t = np.concatenate([[0.0], t])  # even taps stored odd-sized with a leading zero, as calibrate does
    op = CalibratedDegradation(scale=2, kernels=(np.outer(t, t),))
    back = operator_from_tag(json.dumps(op.describe()))
    assert isinstance(back, CalibratedDegradation)
    x = torch.from_numpy(np.asarray(read_s2_band_folder(BEN / "S2A_MSIL2A_20170613T101031_87_48")[10].data[:1],
                                    np.float64))
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(op(x)), atol=1e-8)


def test_band_descriptions_label_the_result_without_an_lr(tmp_path: Path, hr_tif: Path) -> None:
    """SR and HR described B02..B08, no LR and no --bands: the table and the JSON use those names (not band1..);
    an undescribed SR keeps the generic labels."""
    res = evaluate_files(hr_tif, hr_tif)
    assert res.bands == BANDS
    with rasterio.open(hr_tif) as d:
        a, t = d.read(), d.transform
    plain = _write(tmp_path / "plain.tif", a, t.c, t.f, 10)
    assert evaluate_files(plain, plain).bands != BANDS


def test_warnings_reach_the_terminal_as_one_line(tmp_path: Path, hr_tif: Path) -> None:
    """A 1 x 1 image: the refusal is the only line on stderr (no numpy warning from the registration); a tiling
    overlap below the receptive field is one ``warning:`` line (no file name, no source line)."""
    _write(tmp_path / "px.tif", np.full((1, 1, 1), 0.2), 500000, 6000000, 10)
    one_line_error(eosr("evaluate", "--sr", str(tmp_path / "px.tif"), "--hr", str(tmp_path / "px.tif")))
    p = eosr("sr", str(hr_tif), str(tmp_path / "sr.tif"), "--model", "carn_m_s2_x2", "--tile", "16", "--overlap",
             "2", "--no-progress")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: overlap 2 < receptive field"), p.stderr


def test_misspelt_sensor_is_refused_even_when_the_lr_tag_decides(tmp_path: Path, hr_tif: Path) -> None:
    from eosr.errors import SensorError

    lr = tmp_path / "lr.tif"
    assert eosr("simulate", str(hr_tif), str(lr), "--sensor", "sentinel2").returncode == 0
    assert evaluate_files(hr_tif, lr=lr).info["operator_choice"]["source"] == "tag"
    with pytest.raises(SensorError, match="unknown sensor 'bogus'"):
        evaluate_files(hr_tif, lr=lr, sensor="bogus")


def test_no_progress_bar_into_a_log(tmp_path: Path, hr_tif: Path) -> None:
    """stderr is not a terminal (a log file, a pipe): no progress bar unless --progress is given."""
    p = eosr("sr", str(hr_tif), str(tmp_path / "a.tif"), "--model", "bicubic", "--scale", "2")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = eosr("sr", str(hr_tif), str(tmp_path / "b.tif"), "--model", "bicubic", "--scale", "2", "--progress")
    assert p.returncode == 0 and "eosr sr" in p.stderr, p.stderr
