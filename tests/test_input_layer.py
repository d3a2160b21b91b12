"""One input layer for every command: GeoTIFF, band folder and PNG/JPEG take the same path through
``simulate``, ``sr``, ``evaluate`` and ``calibrate`` (real BigEarthNet pixels; the product case is in
test_sentinel2_safe.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import BEN, call_cli

PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"
BANDS = "B02,B03,B04,B08"
U8 = str(1 / 255)


@pytest.fixture(scope="module")
def rgb_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-bit display rendering (PNG, no georeference) of the real patch: reflectance x 255 / 0.3."""
    from eosr.scene.source import read_scene

    r = read_scene(PATCH, ["B04", "B03", "B02"])
    img = np.clip(np.round(r.data / 0.3 * 255), 0, 255).astype(np.uint8)
    p = tmp_path_factory.mktemp("png") / "rgb.png"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), \
            rasterio.open(p, "w", driver="PNG", width=120, height=120, count=3, dtype="uint8") as ds:
        ds.write(img)
    return p


def test_simulate_reads_a_band_folder_like_the_stacked_geotiff(hr_tif: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    from eosr.scene.source import read_scene

    assert call_cli(["simulate", str(PATCH), str(a), "--bands", BANDS, "--scale", "2"]) == 0
    assert call_cli(["simulate", str(hr_tif), str(b), "--scale", "2"]) == 0
    x, y = read_scene(a), read_scene(b)  # uint16 DN x 1e-4 (the folder's type) vs float32
    np.testing.assert_allclose(x.data, y.data, atol=6e-5)  # DN rounding
    assert x.transform == y.transform and x.crs == y.crs and x.band_names == y.band_names == BANDS.split(",")


def test_png_through_every_command(rgb_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sr, lr = tmp_path / "sr.tif", tmp_path / "lr.tif"
    assert call_cli(["sr", str(rgb_png), str(sr), "--model", "bicubic", "--scale", "2", "--no-progress"]) == 2
    assert "--dn-scale" in capsys.readouterr().err  # 8-bit values are never taken as reflectance silently
    assert call_cli(["sr", str(rgb_png), str(sr), "--model", "bicubic", "--scale", "2", "--no-progress",
                     "--dn-scale", U8, "--float32"]) == 0
    with rasterio.open(sr) as ds:
        assert (ds.count, ds.height, ds.width) == (3, 240, 240) and ds.crs is None
    assert call_cli(["simulate", str(rgb_png), str(lr), "--bands", "B04,B03,B02", "--scale", "2",
                     "--dn-scale", U8]) == 0
    with rasterio.open(lr) as ds:
        assert (ds.height, ds.width) == (60, 60) and ds.descriptions == ("B04", "B03", "B02")
    sr2 = tmp_path / "sr2.tif"
    assert call_cli(["sr", str(lr), str(sr2), "--model", "bicubic", "--scale", "2", "--no-progress", "--float32"]) == 0
    out = tmp_path / "ev.json"
    assert call_cli(["evaluate", "--sr", str(sr2), "--hr", str(rgb_png), "--lr", str(lr), "--dn-scale", U8,
                     "--scale", "2", "--bands", "B04,B03,B02", "--sensor", "sentinel2", "--json", str(out)]) == 0
    assert call_cli(["calibrate", str(rgb_png), str(lr), "--scale", "2", "--dn-scale", U8, "--n-boot", "10"]) == 0
    captured = capsys.readouterr()
    assert "Warning" not in captured.err


def test_outputs_are_geotiff_by_name(rgb_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A GeoTIFF is never written under another format's name."""
    for cmd in (["sr", str(rgb_png), str(tmp_path / "o.png"), "--model", "bicubic", "--scale", "2",
                 "--dn-scale", U8, "--no-progress"],
                ["simulate", str(rgb_png), str(tmp_path / "o.jpg"), "--bands", "B04,B03,B02", "--dn-scale", U8]):
        assert call_cli(cmd) == 2
        assert "name the output .tif" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_float_dn_without_a_scale_is_refused_everywhere(hr_tif: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Float32 DN (reflectance x 10000, no scale tag) were read as reflectance in the thousands (PSNR
    -66 dB, SSIM 0, no word): every reader refuses them, naming --dn-scale; the option reads them."""
    import xarray as xr

    from eosr.errors import DataError
    from eosr.io.raster import read_raster
    from eosr.io.source import open_source
    from eosr.io.xr import split

    with rasterio.open(hr_tif) as ds:
        profile, refl, desc = ds.profile, ds.read(), ds.descriptions
    dn = tmp_path / "dn.tif"
    with rasterio.open(dn, "w", **profile) as ds:
        ds.write((refl * 10000).astype(np.float32))
        ds.descriptions = desc
    for read in (lambda: read_raster(dn), lambda: open_source(dn),
                 lambda: split(xr.DataArray(refl * 10000, dims=("band", "y", "x")))):
        with pytest.raises(DataError, match="--dn-scale"):
            read()
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(dn), str(out), "--model", "bicubic", "--scale", "2", "--no-progress"]) == 2
    assert "median" in capsys.readouterr().err and not out.exists()
    ev = tmp_path / "ev.json"
    assert call_cli(["evaluate", "--sr", str(dn), "--hr", str(hr_tif), "--json", str(ev)]) == 2
    assert "--dn-scale" in capsys.readouterr().err and not ev.exists()
    # evaluate's --dn-scale: integer files, and float files that hold DN; the reflectance HR stays as it is
    assert call_cli(["evaluate", "--sr", str(dn), "--hr", str(hr_tif), "--dn-scale", "1e-4", "--json", str(ev)]) == 0
    res = json.loads(ev.read_text())
    assert res["radiometry"]["sr"]["rule"] == "explicit" and res["radiometry"]["hr"]["rule"] == "float values"
    assert res["metrics"]["psnr"]["value"] > 80  # the same reflectance, to float32 rounding
    np.testing.assert_allclose(read_raster(dn, dn_scale=1e-4).data, refl, rtol=1e-6)
    np.testing.assert_array_equal(read_raster(hr_tif).data, refl)  # reflectance itself still reads as it is
    # nodata in the middle of a scene does not hide the DN around it (the real patch tiled to 1200², its
    # central 600² NaN: the windowed reader's central window holds no value)
    big = np.tile(refl * 10000, (1, 10, 10)).astype(np.float32)
    big[:, 300:900, 300:900] = np.nan
    holed = tmp_path / "holed.tif"
    with rasterio.open(holed, "w", **{**profile, "width": 1200, "height": 1200}) as ds:
        ds.write(big)
    for read in (lambda: read_raster(holed), lambda: open_source(holed)):
        with pytest.raises(DataError, match="median"):
            read()


def test_band_descriptions_with_a_sensor_prefix_read_by_the_sensors_names(hr_tif: Path, tmp_path: Path) -> None:
    """A file describing its bands VENUS_B1 or S2_B02 (as the VENµS samples do) was a dead end: the sensor
    refused the names and --bands selected by description. The prefix is dropped on reading."""
    from eosr.scene.source import read_scene

    with rasterio.open(hr_tif) as ds:
        profile, refl = ds.profile, ds.read()
    src = tmp_path / "prefixed.tif"
    with rasterio.open(src, "w", **profile) as ds:
        ds.write(refl)
        ds.descriptions = ("S2_B2", "S2_B3", "S2_B4", "S2_B8")
    assert read_scene(src).band_names == BANDS.split(",")
    lr = tmp_path / "lr.tif"
    assert call_cli(["simulate", str(src), str(lr), "--scale", "2", "--sensor", "sentinel2", "--bands", "B04,B08"]) == 0
    with rasterio.open(lr) as ds:
        assert ds.descriptions == ("B04", "B08")
