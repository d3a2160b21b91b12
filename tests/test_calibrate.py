"""Calibration you can trust (issue 14, item 5) on real data: kernel families chosen by BIC, quality report
and "unreliable" flag, registration of offset grids, DN scale, sensor files that rebuild the operator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import HVN2, SAT, call_cli
from eosr.data.matfiles import read_hvn2_mat
from eosr.degrade import Degradation
from eosr.degrade.calibrate import Calibration, calibrate_pair, check_operator, operator_from_file
from eosr.degrade.kernels import family_taps, taps_mtf
from eosr.errors import ScaleError, SensorError, ShapeError
from eosr.sensors import get_sensor, load_sensor

L8 = SAT / "landsat8_LC80200392015216"
HVN2_4TAP = np.array([0.053253, 0.446747, 0.446747, 0.053253])


def _keys(s: np.ndarray) -> np.ndarray:  # Keys (1981) cubic, a = -0.5, written out independently
    s = np.abs(s)
    return np.where(s <= 1, 1.5 * s**3 - 2.5 * s**2 + 1, np.where(s < 2, -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2, 0.0))


def _true_mtf(w: np.ndarray, r: int = 2) -> float:
    x = np.arange(w.size) - (w.size - 1) / 2
    return float(abs(np.sum(w * np.exp(-2j * np.pi * x / (2 * r)))) / w.sum())


def _pair(name: str, bands: slice = slice(None)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    s = read_hvn2_mat(HVN2 / name)
    assert s.reference is not None
    return s.reference[bands], s.stacks[20][bands], list(s.stack_bands[20][bands])


@pytest.fixture(scope="module")
def reykjavik() -> tuple[Calibration, np.ndarray, np.ndarray]:
    hr, lr, names = _pair("reykjavik_cell_RR.mat")
    return calibrate_pair(hr, lr, 2, band_names=names, n_boot=50, hr_gsd_m=20, lr_gsd_m=40), hr, lr


@pytest.fixture(scope="module")
def landsat_crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uint16 crops of the Landsat 8 pan (15 m) and B4 (30 m) with their own georeference: the pan origin
    stays half a pan pixel north-west of the MS origin (as in the product). Clear: the bottom strip of the
    scene; cloudy: popcorn cumulus in the west (BQA high-confidence cloud in 29 % of it)."""
    import rasterio
    from rasterio.windows import Window

    out = tmp_path_factory.mktemp("l8")

    def crop(src: str, dst: str, r0: int, r1: int, c0: int, c1: int) -> None:
        with rasterio.open(L8 / src) as s:
            w = Window(c0, r0, c1 - c0, r1 - r0)
            prof = s.profile | {"height": r1 - r0, "width": c1 - c0, "transform": s.window_transform(w)}
            with rasterio.open(out / dst, "w", **prof) as o:
                o.write(s.read(window=w))

    crop("l8_B8.tif", "pan_clear.tif", 1000, 1207, 0, 1254)
    crop("l8_B4.tif", "b4_clear.tif", 500, 603, 0, 627)
    crop("l8_B8.tif", "pan_cloudy.tif", 300, 701, 0, 441)
    crop("l8_B4.tif", "b4_cloudy.tif", 150, 350, 0, 220)
    with rasterio.open(L8 / "l8_BQA.tif") as q:
        bqa = q.read(1)
    cloud = ((bqa >> 14) & 3) == 3
    assert cloud[500:603].mean() < 0.01 and cloud[150:350, :220].mean() > 0.25
    return out


# ------------------------------------------------------------------------------------------ kernels
def test_keys_family_is_matlab_imresize_bicubic_when_shrinking() -> None:
    """imresize(x, 1/2, 'bicubic') weights: Keys(x / 2) / 2 at the 8 HR centres +-0.5 ... +-3.5, normalised."""
    x = np.arange(8) - 3.5
    w = _keys(x / 2) / 2
    w /= w.sum()
    np.testing.assert_allclose(family_taps("keys", 2, 8), w, atol=1e-15)
    assert taps_mtf(w, 2) == pytest.approx(_true_mtf(w), abs=1e-12) == pytest.approx(0.48614, abs=1e-5)
    np.testing.assert_allclose(family_taps("box", 2, 4), [0, 0.5, 0.5, 0], atol=1e-15)
    assert _true_mtf(HVN2_4TAP) == pytest.approx(0.5565, abs=1e-4)


# ------------------------------------------------------------------------------------------ third-party sets
def test_reykjavik_bicubic_set_gain_bias_and_mtf(reykjavik: tuple[Calibration, np.ndarray, np.ndarray]) -> None:
    """MATLAB bicubic x1/2 (negative lobes): no spurious gain/bias, MTF within 5 % of the true 0.486."""
    cal = reykjavik[0]
    x = np.arange(8) - 3.5
    true = _true_mtf(_keys(x / 2))
    for b in cal.bands:
        assert b.family in ("keys", "separable"), b.family
        assert abs(b.gain - 1) <= 0.01 and abs(b.bias) <= 0.001, (b.band, b.gain, b.bias)
        assert abs(b.mtf - true) <= 0.05 * true, (b.band, b.mtf, true)
        assert abs(b.shift_y) < 0.02 and abs(b.shift_x) < 0.02
        assert not b.unreliable and b.quality["masked_share"] == 0.0
    assert max(cal.bootstrap["seconds_per_band"]) < 30


def test_coastal_set_four_tap_kernel() -> None:
    """coastalA: the separable 4-tap kernel is recovered tap by tap (free-form family), MTF 0.556."""
    hr, lr, names = _pair("coastalA_cell_RR.mat", slice(0, 6, 2))
    cal = calibrate_pair(hr, lr, 2, band_names=names, n_boot=50)
    for b in cal.bands:
        assert b.family in ("separable", "separable_nonneg")
        np.testing.assert_allclose(b.kernel_y, HVN2_4TAP, atol=1e-4)
        np.testing.assert_allclose(b.kernel_x, HVN2_4TAP, atol=1e-4)
        assert b.mtf == pytest.approx(_true_mtf(HVN2_4TAP), abs=0.02)
        assert not b.unreliable
        assert set(b.uncertainty) == {"mtf", "shift_y", "shift_x", "gain", "bias"}
        assert {"residual_rms", "texture", "masked_share"} <= set(b.quality)


def test_register_finds_a_large_integer_plus_subpixel_offset_on_real_imagery() -> None:
    """coastalA HR cut 5 rows / 3 columns short at the top-left: LR = D(HR(. - (5, 3)))."""
    hr, lr, _ = _pair("coastalA_cell_RR.mat", slice(3, 4))
    cal = calibrate_pair(hr[:, 5:, 3:], lr, 2, register=True, families=("keys", "separable"), n_boot=20)
    b = cal.bands[0]
    assert (b.shift_y, b.shift_x) == (pytest.approx(5.0, abs=0.02), pytest.approx(3.0, abs=0.02))
    with pytest.raises(ShapeError, match="register"):
        calibrate_pair(hr[:, 5:, 3:], lr, 2)


def test_masked_share_flags_the_fit() -> None:
    hr, lr, _ = _pair("coastalA_cell_RR.mat", slice(0, 1))
    mask = np.zeros(lr.shape[1:], bool)
    mask[:70] = True
    b = calibrate_pair(hr, lr, 2, families=("gaussian",), mask=mask, n_boot=10).bands[0]
    assert b.quality["masked_share"] > 0.5 and b.unreliable
    assert any("masked" in r for r in b.reasons)


# ------------------------------------------------------------------------------------------ sensor files
def test_write_sensor_round_trip(reykjavik: tuple[Calibration, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    cal, hr, lr = reykjavik
    p = cal.write_sensor(tmp_path / "rk.toml")
    s = get_sensor(str(p))
    assert s == load_sensor(p) and s.band_names == [b.band for b in cal.bands]
    assert s.calibration is not None and s.calibration["unreliable"] is False
    b0 = s.bands[0]
    assert b0.gsd_m == 40 and b0.kernel_scale == 2 and b0.kernel_family == cal.bands[0].family
    assert b0.calibration is not None and b0.calibration["unreliable"] is False
    op = operator_from_file(p, None, 2)
    d = np.asarray(op.downsample(hr.astype(np.float64)))
    for k, b in enumerate(cal.bands):
        i0, i1, j0, j1 = b.window
        res = (b.gain * d[k] + b.bias - lr[k])[i0:i1, j0:j1]
        assert np.sqrt(np.mean(res**2)) <= b.residual_rms * (1 + 1e-6) + 1e-12
    # the Gaussian equivalent from the MTF alone, as any sensor file gives
    g = Degradation.from_sensor(load_sensor(p), ["B05"], 2)
    assert g.describe()["mtf_at_lr_nyquist"][0] == pytest.approx(cal.bands[0].mtf, abs=1e-6)
    with pytest.raises(ScaleError, match="scale 2"):
        operator_from_file(p, None, 3)
    with pytest.raises(SensorError, match="wald"):
        operator_from_file(p, ["B05"], 2, wald=True)
    # eosr simulate --operator FILE applies the calibrated taps (Reykjavik's Keys kernel), as evaluate does,
    # not the Gaussian of the same MTF
    from eosr.io import write_raster
    from eosr.scene.simulate import simulate_file

    hr_tif = write_raster(tmp_path / "hr.tif", hr.astype(np.float32), band_names=s.band_names, crs="EPSG:32627",
                          transform=from_origin(500000, 7100000, 20, 20))
    out = simulate_file(hr_tif, tmp_path / "lr.tif", operator=str(p), scale=2)
    with rasterio.open(out) as ds:
        sim = ds.read()
        assert json.loads(ds.tags()["eosr_operator"])["psf"] == "explicit"
    np.testing.assert_allclose(sim, d.astype(np.float32), atol=1e-6)


# ------------------------------------------------------------------------------------------ CLI, Landsat
def test_cli_landsat_pan_ms_register_dn_scale_json_and_sensor(landsat_crops: Path, capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    pan, ms = str(landsat_crops / "pan_clear.tif"), str(landsat_crops / "b4_clear.tif")
    assert call_cli(["calibrate", pan, ms, "--dn-scale", "2e-5", "--dn-offset", "-0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "origins differ" in err and "--register" in err and len(err.splitlines()) == 1
    j, s = tmp_path / "c.json", tmp_path / "l8.toml"
    assert call_cli(["calibrate", pan, ms, "--register", "--dn-scale", "2e-5", "--dn-offset", "-0.1",
                     "--n-boot", "50", "--json", str(j), "--write-sensor", str(s)]) == 0
    out = capsys.readouterr().out
    assert "family" in out and "MTF" in out and "UNRELIABLE" not in out
    doc = json.loads(j.read_text())
    assert "schema_version" in doc and doc["georeferenced"] is True
    assert doc["radiometry"]["lr"] == {"dn_scale": 2e-5, "dn_offset": -0.1, "rule": "explicit"}
    b = doc["bands"][0]
    # the pan origin sits half a pan pixel north-west of the MS origin: LR = D(HR(. - (-0.5, -0.5)))
    assert doc["registration"]["prior_shift_px"] == [-0.5, -0.5]
    assert b["shift_y"] == pytest.approx(-0.5, abs=0.1) and b["shift_x"] == pytest.approx(-0.5, abs=0.1)
    assert b["unreliable"] is False and b["reasons"] == []
    assert 0.2 < b["mtf"] < 0.6 and b["uncertainty"]["shift_y"] < 0.1
    sen = get_sensor(str(s))
    assert sen.bands[0].gsd_m == 30 and sen.calibration is not None and sen.calibration["lr_gsd_m"] == 30


def test_cli_cloudy_landsat_crop_is_flagged(landsat_crops: Path, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    """Cumulus move between the pan and MS exposures (parallax): the fit follows the clouds, several pixels
    away from the georeference's half pixel; flagged, exit code 0."""
    j = tmp_path / "cloudy.json"
    assert call_cli(["calibrate", str(landsat_crops / "pan_cloudy.tif"), str(landsat_crops / "b4_cloudy.tif"),
                     "--register", "--dn-scale", "2e-5", "--dn-offset", "-0.1", "--n-boot", "50",
                     "--json", str(j)]) == 0
    assert "UNRELIABLE" in capsys.readouterr().out
    doc = json.loads(j.read_text())
    assert doc["unreliable"] is True and doc["bands"][0]["unreliable"] is True
    assert any("disagrees" in r for r in doc["bands"][0]["reasons"])


@pytest.mark.parametrize("extra, match", [
    ([], "--dn-scale"),
    (["--dn-scale", "2e-5", "--register", "--write-sensor", "x.txt"], ".toml"),
    (["--dn-scale", "2e-5", "--register", "--families", "gaussian,spline"], "spline"),
    (["--dn-offset", "-0.1"], "--dn-scale"),
    (["--dn-scale", "2e-5", "--register", "--scale", "3"], "scale 2"),
])
def test_cli_bad_input_one_line_exit_2(landsat_crops: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                       match: str) -> None:
    pan, ms = str(landsat_crops / "pan_clear.tif"), str(landsat_crops / "b4_clear.tif")
    assert call_cli(["calibrate", pan, ms, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("extra", [["--register"], []])
def test_cli_swapped_hr_and_lr_are_named(landsat_crops: Path, capsys: pytest.CaptureFixture[str],
                                         extra: list[str]) -> None:
    """The 30 m band given as HR and the 15 m pan as LR: the message says the LR is the finer one (not that
    15 and 30 m are "not an integer ratio")."""
    pan, ms = str(landsat_crops / "pan_clear.tif"), str(landsat_crops / "b4_clear.tif")
    assert call_cli(["calibrate", ms, pan, "--dn-scale", "2e-5", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "is finer than the HR pixel" in err and len(err.splitlines()) == 1, err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli(["calibrate", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--dn-scale", "1"]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ stated operator
def test_check_operator_separates_the_true_kernel_from_wrong_ones(
        reykjavik: tuple[Calibration, np.ndarray, np.ndarray]) -> None:
    """The Reykjavik set is MATLAB bicubic: the calibrated operator explains it as well as the fit; a
    Gaussian of the same MTF (0.49) needs a 5 % gain and leaves 3e-3 of residual: it disagrees."""
    cal, hr, lr = reykjavik
    same = check_operator(hr, lr, cal.operator(), cal)
    assert same.consistent and all(abs(b["excess"]) < 0.05 and b["gain"] == pytest.approx(1, abs=1e-4)
                                   for b in same.bands)
    gauss = check_operator(hr, lr, Degradation.from_mtf(0.49, 2), cal)
    assert not gauss.consistent and all(b["residual_rms"] > 1e-3 and b["gain"] > 1.02 for b in gauss.bands)
    assert "DISAGREES" in gauss.table() and gauss.as_dict()["consistent"] is False
    with pytest.raises(ScaleError, match="scale 3"):
        check_operator(hr, lr, Degradation.from_mtf(0.49, 3), cal)


@pytest.fixture(scope="module")
def s2_pair(hr_tif: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real BigEarthNet 10 m patch (float32 reflectance, band names) and its LR from ``eosr simulate``
    (full Sentinel-2 PSF, noise 0.002): the LR carries the operator in its eosr_operator tag."""
    lr = tmp_path_factory.mktemp("s2pair") / "lr.tif"
    assert call_cli(["simulate", str(hr_tif), str(lr), "--sensor", "sentinel2", "--operator", "full",
                     "--noise", "0.002"]) == 0
    return hr_tif, lr


def test_cli_scores_the_tagged_operator_and_a_stated_one(s2_pair: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    hr, lr = s2_pair
    capsys.readouterr()
    j = tmp_path / "c.json"
    assert call_cli(["calibrate", str(hr), str(lr), "--n-boot", "20", "--json", str(j)]) == 0
    out = capsys.readouterr().out
    assert "stated operator (tag, from the tag)" in out
    doc = json.loads(j.read_text())["stated_operator"]
    assert doc["source"] == "tag" and doc["consistent"] is True and len(doc["bands"]) == 4
    assert all(abs(b["gain"] - 1) < 0.02 and abs(b["excess"]) < 0.1 for b in doc["bands"])
    # Wald's extra blur is far narrower than the sensor PSF that made this LR: it disagrees
    assert call_cli(["calibrate", str(hr), str(lr), "--n-boot", "20", "--json", str(j), "--operator", "wald",
                     "--sensor", "sentinel2"]) == 0
    assert "DISAGREES" in capsys.readouterr().out
    doc = json.loads(j.read_text())["stated_operator"]
    assert doc["source"] == "option" and doc["mode"] == "wald" and doc["consistent"] is False
    assert doc["operator"]["description"].startswith("sentinel2 Wald")


def test_cli_sensor_file_round_trip_scores_consistent(landsat_crops: Path, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    pan, ms = str(landsat_crops / "pan_clear.tif"), str(landsat_crops / "b4_clear.tif")
    s, j = tmp_path / "l8.toml", tmp_path / "c.json"
    common = ["--register", "--dn-scale", "2e-5", "--dn-offset", "-0.1", "--n-boot", "20"]
    assert call_cli(["calibrate", pan, ms, *common, "--write-sensor", str(s)]) == 0
    assert call_cli(["calibrate", pan, ms, *common, "--operator", str(s), "--json", str(j)]) == 0
    doc = json.loads(j.read_text())["stated_operator"]
    assert doc["mode"] == str(s) and doc["consistent"] is True
    assert abs(doc["bands"][0]["excess"]) < 0.01 and doc["bands"][0]["shift_applied_px"] == [0.0, 0.0]
    capsys.readouterr()
    assert call_cli(["calibrate", pan, ms, *common, "--operator", "full"]) == 2
    assert "needs a sensor" in capsys.readouterr().err


def test_cli_mask_on_the_lr_or_hr_grid(s2_pair: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A validity raster (non-zero = use) on either grid leaves pixels out of the fit; the masked share is
    reported; a mask on neither grid is a one-line error."""
    import rasterio

    hr, lr = s2_pair
    for n, grid in ((60, lr), (120, hr)):
        m = np.ones((n, n), np.uint8)
        m[:, : n // 2 + n // 20] = 0  # the west half and a bit: > 50 % masked
        path = tmp_path / f"m{n}.tif"
        with rasterio.open(grid) as g, rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1,
                                                     dtype="uint8", crs=g.crs, transform=g.transform) as o:
            o.write(m[None])
        j = tmp_path / f"c{n}.json"
        assert call_cli(["calibrate", str(hr), str(lr), "--n-boot", "20", "--mask", str(path),
                         "--json", str(j)]) == 0
        b = json.loads(j.read_text())["bands"][0]
        assert b["quality"]["masked_share"] > 0.5 and b["unreliable"] is True
        assert any("masked" in r for r in b["reasons"])
    with rasterio.open(lr) as g:
        crs, t = g.crs, g.transform
    for name, n, tr, needle in (("size", 50, t, "LR grid (60x60)"),
                                ("shifted", 60, t * rasterio.Affine.translation(1, 0), "not on the same grid")):
        bad = tmp_path / f"{name}.tif"
        with rasterio.open(bad, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint8", crs=crs,
                           transform=tr) as o:
            o.write(np.ones((1, n, n), np.uint8))
        capsys.readouterr()
        assert call_cli(["calibrate", str(hr), str(lr), "--mask", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
