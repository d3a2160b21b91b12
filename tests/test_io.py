"""Raster I/O: DN scaling, nodata, atomic writes, pair checks."""

import numpy as np
import pytest
from rasterio.transform import from_origin

from eosr.errors import DataError, GeoError, ScaleError
from eosr.io import Raster, atomic_path, check_pair, lr_transform, read_raster, write_raster


def test_real_bigearthnet_band_reads_as_reflectance(ben_patch_dir):
    r = read_raster(next(ben_patch_dir.glob("*_B04.tif")))
    assert r.shape == (1, 120, 120) and r.dn_scale == 1e-4 and r.data.dtype == np.float32
    assert 0 < np.nanmean(r.data) < 1


def test_uint16_round_trip_with_nodata(tmp_path):
    data = np.random.default_rng(0).random((2, 20, 30)).astype(np.float32)
    data[0, 3, 4] = np.nan
    t = from_origin(1000.0, 2000.0, 10.0, 10.0)
    p = write_raster(tmp_path / "a.tif", data, crs="EPSG:32631", transform=t, band_names=["B04", "B08"],
                     dtype="uint16", dn_scale=1e-4, nodata=0)
    r = read_raster(p)
    assert r.band_names == ["B04", "B08"] and np.isnan(r.data[0, 3, 4])
    ok = np.isfinite(data)
    assert np.abs(r.data[ok] - data[ok]).max() <= 0.5e-4 + 1e-7
    assert read_raster(p, ["b8"]).data.shape == (1, 20, 30)
    with pytest.raises(DataError, match="no band described"):
        read_raster(p, ["B02"])


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="does not exist"), atomic_path(tmp_path / "nope" / "x.tif"):
        pass


def test_check_pair():
    t = from_origin(0.0, 100.0, 10.0, 10.0)
    hr = Raster(np.zeros((1, 8, 8)), "EPSG:32631", t, ["B1"])
    lr = Raster(np.zeros((1, 4, 4)), "EPSG:32631", lr_transform(t, 2), ["B1"])
    assert check_pair(hr, lr) == 2
    with pytest.raises(ScaleError):
        check_pair(hr, lr, scale=3)
    with pytest.raises(GeoError, match="CRS"):
        check_pair(hr, Raster(lr.data, "EPSG:4326", lr.transform, ["B1"]))
    with pytest.raises(GeoError, match="origins"):
        check_pair(hr, Raster(lr.data, "EPSG:32631", from_origin(5.0, 100.0, 20.0, 20.0), ["B1"]))
    with pytest.raises(ScaleError):
        check_pair(hr, Raster(lr.data, "EPSG:32631", from_origin(0.0, 100.0, 15.0, 15.0), ["B1"]))
    with pytest.raises(GeoError, match="footprints"):
        check_pair(hr, Raster(np.zeros((1, 3, 4)), "EPSG:32631", lr_transform(t, 2), ["B1"]))


def test_cog_output(tmp_path):
    import rasterio

    data = np.random.default_rng(0).random((1, 300, 300)).astype(np.float32)
    t = from_origin(500000, 4600000, 10, 10)
    p = write_raster(tmp_path / "c.tif", data, crs="EPSG:32631", transform=t, cog=True)
    with rasterio.open(p) as ds:
        assert ds.profile.get("tiled") and ds.read(1).shape == (300, 300)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.tif"]
