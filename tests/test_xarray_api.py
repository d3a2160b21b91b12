"""xarray/rioxarray in and out of the functional API, and the top-level ``eosr.super_resolve``.

Real data: the shared BigEarthNet float32 GeoTIFF (``hr_tif``, 4 x 120 x 120, B02 B03 B04 B08, UTM) read
with rioxarray; the reference is the GeoTIFF path through ``eosr sr``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
import xarray as xr

import eosr
from conftest import call_cli
from eosr.degrade import Degradation
from eosr.errors import DataError, GeoError, ModelError

BANDS = ["B02", "B03", "B04", "B08"]
MODEL = "carn_m_s2_x2"


@pytest.fixture(scope="module")
def cli_sr(hr_tif: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xr") / "sr.tif"
    assert call_cli(["sr", str(hr_tif), str(out), "--model", MODEL, "--float32", "--no-progress"]) == 0
    return out


def test_dataarray_round_trip_equals_geotiff_path(hr_tif: Path, cli_sr: Path) -> None:
    da = rioxarray.open_rasterio(hr_tif)
    out = eosr.super_resolve(da, MODEL, progress=False)
    assert isinstance(out, xr.DataArray) and out.dims == ("band", "y", "x")
    with rasterio.open(cli_sr) as ds:
        ref, t, crs = ds.read(), ds.transform, ds.crs
    np.testing.assert_allclose(out.values, ref, atol=1e-6, rtol=0)
    assert out.rio.transform() == t and out.rio.crs == crs
    assert out.rio.transform(recalc=True) == t  # the coordinates say the same as the stored transform
    assert list(out.band.values) == list(da.band.values) and tuple(out.attrs["long_name"]) == tuple(BANDS)
    assert out.attrs["eosr_model"] == MODEL and out.attrs["eosr_scale"] == 2
    assert "scale_factor" not in out.attrs and np.isnan(out.rio.nodata)


def test_dask_backed_stays_lazy_and_equals(hr_tif: Path) -> None:
    from eosr.models import resolve_model

    model = resolve_model(MODEL)
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    da = rioxarray.open_rasterio(hr_tif, chunks={"x": 48, "y": 64})
    out = eosr.super_resolve(da, model, progress=False)
    assert hasattr(out.data, "dask") and not calls  # nothing has run yet
    assert out.data.chunks[1] == (128, 112) and out.data.chunks[2] == (96, 96, 48)
    eager = eosr.super_resolve(rioxarray.open_rasterio(hr_tif), model, progress=False)
    np.testing.assert_allclose(out.compute().values, eager.values, atol=1e-5, rtol=0)
    assert calls and out.rio.transform() == eager.rio.transform()


def test_numpy_and_torch_give_their_kind(hr_tif: Path, cli_sr: Path) -> None:
    with rasterio.open(hr_tif) as ds, rasterio.open(cli_sr) as ref:
        x, want = ds.read(), ref.read()
    y = eosr.super_resolve(x, MODEL, bands=BANDS, progress=False)
    assert isinstance(y, np.ndarray) and y.shape == (4, 240, 240)
    np.testing.assert_allclose(y, want, atol=1e-6, rtol=0)
    t = eosr.super_resolve(torch.from_numpy(x), MODEL, bands=BANDS, progress=False)
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.from_numpy(want), atol=1e-6)
    with pytest.raises(ModelError, match="no names"):
        eosr.super_resolve(x, MODEL, progress=False)  # unnamed bands for a model trained on named bands
    with pytest.raises(ModelError, match="allow-untrained"):
        eosr.super_resolve(x, "carn_m", bands=BANDS, progress=False)


def test_integer_arrays_need_dn_scale_and_arrays_get_uncertainty(hr_tif: Path, cli_sr: Path) -> None:
    """An integer NumPy array or tensor is never taken as reflectance: refused without dn_scale, converted with
    it (the result equals the float input's); uncertainty=True on an array switches to the model's uncertainty
    companion (carn_m_s2_x2 -> carn_m_s2_x2_unc), as for a path."""
    with rasterio.open(hr_tif) as ds, rasterio.open(cli_sr) as ref:
        x, want = ds.read(), ref.read()
    dn = np.round(x * 1e4).astype(np.uint16)
    for arr in (dn, torch.from_numpy(dn.astype(np.int32))):
        with pytest.raises(DataError, match="dn_scale="):
            eosr.super_resolve(arr, MODEL, bands=BANDS, progress=False)
        y = eosr.super_resolve(arr, MODEL, bands=BANDS, dn_scale=1e-4, progress=False)
        np.testing.assert_allclose(np.asarray(y), want, atol=2e-4, rtol=0)
    with pytest.raises(DataError, match="float"):
        eosr.super_resolve(x, MODEL, bands=BANDS, dn_scale=1e-4, progress=False)
    sr, std = eosr.super_resolve(x[:, :48, :48], MODEL, bands=BANDS, uncertainty=True, progress=False)
    assert sr.shape == std.shape == (4, 96, 96) and np.isfinite(std).all() and (std > 0).all()


def test_path_in_path_out(hr_tif: Path, cli_sr: Path, tmp_path: Path) -> None:
    out = eosr.super_resolve(hr_tif, MODEL, out=tmp_path / "o.tif", output_dtype="float32", progress=False)
    with rasterio.open(out) as a, rasterio.open(cli_sr) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    with pytest.raises(DataError, match="needs out="):
        eosr.super_resolve(hr_tif, MODEL)


def test_integer_dataarray_radiometry(hr_tif: Path) -> None:
    da = rioxarray.open_rasterio(hr_tif)
    dn = (da * 10000 + 1000).round().astype("uint16")
    dn.attrs.update(scale_factor=1e-4, add_offset=-0.1, _FillValue=0)
    dn.values[:, :3] = 0  # nodata rows
    out = eosr.super_resolve(dn, "bicubic", scale=2, progress=False)
    ref = eosr.super_resolve(da, "bicubic", scale=2, progress=False)
    assert np.isnan(out.values[:, :6]).all()
    np.testing.assert_allclose(out.values[:, 20:], ref.values[:, 20:], atol=2e-4)
    bare = dn.copy()
    bare.attrs = {}
    bare = bare.rio.write_nodata(0)
    with pytest.raises(DataError, match="dn-scale|dn_scale"):
        eosr.super_resolve(bare.assign_coords(band=[1, 2, 3, 4]), "bicubic", scale=2, progress=False)


def test_degradation_and_evaluate_take_dataarrays(hr_tif: Path) -> None:
    hr = rioxarray.open_rasterio(hr_tif).assign_coords(band=BANDS)
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    lr = op(hr)
    assert isinstance(lr, xr.DataArray) and lr.shape == (4, 60, 60)
    t_hr, t_lr = hr.rio.transform(), lr.rio.transform()
    assert (t_lr.a, t_lr.e, t_lr.c, t_lr.f) == (2 * t_hr.a, 2 * t_hr.e, t_hr.c, t_hr.f)
    assert lr.rio.crs == hr.rio.crs and list(lr.band.values) == BANDS
    np.testing.assert_allclose(lr.values, op(hr.values), atol=0)
    sr = eosr.super_resolve(lr, MODEL, progress=False)
    res = eosr.evaluate(sr, hr, lr, sensor="sentinel2")
    assert res.bands == BANDS and res.info["georeference"]["crs"] == str(hr.rio.crs)
    ref = eosr.evaluate(sr.values, hr.values, lr.values, sensor="sentinel2", bands=BANDS)
    assert res["psnr"].value == pytest.approx(ref["psnr"].value, abs=1e-9)
    shifted = hr.assign_coords(x=hr.x + 10.0)
    with pytest.raises(GeoError, match="origins differ"):
        eosr.evaluate(sr, shifted, sensor="sentinel2")


def test_stackstac_style_cube_from_local_files(tmp_path: Path) -> None:
    """A (band, y, x) cube stacked from single-band files with string band names and Dask chunks, as
    stackstac / odc-stac build them (here offline from the real BigEarthNet band files), runs lazily and
    equals the band-folder path."""
    from conftest import BEN

    patch = BEN / "S2A_MSIL2A_20170613T101031_87_48"
    layers = [rioxarray.open_rasterio(next(patch.glob(f"*_{b}.tif")), chunks={"x": 64, "y": 64})
              .squeeze("band", drop=True) for b in BANDS]
    cube = xr.concat(layers, dim="band").assign_coords(band=BANDS)
    cube.attrs = {"scale_factor": 1e-4, "add_offset": 0.0}
    out = eosr.super_resolve(cube, MODEL, progress=False)
    assert hasattr(out.data, "dask") and list(out.band.values) == BANDS
    ref = tmp_path / "ref.tif"
    assert call_cli(["sr", str(patch), str(ref), "--model", MODEL, "--bands", ",".join(BANDS), "--float32",
                     "--no-progress"]) == 0
    with rasterio.open(ref) as ds:
        np.testing.assert_allclose(out.values, ds.read(), atol=1e-5, rtol=0)
        assert out.rio.transform() == ds.transform


def test_accessor(hr_tif: Path) -> None:
    import eosr.xarray  # noqa: F401  (registers da.eosr)

    da = rioxarray.open_rasterio(hr_tif)
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    lr = da.eosr.degrade(op)
    np.testing.assert_array_equal(lr.values, op(da).values)
    sr = lr.eosr.super_resolve(MODEL, progress=False)
    np.testing.assert_array_equal(sr.values, eosr.super_resolve(lr, MODEL, progress=False).values)
    assert sr.rio.transform() == da.rio.transform()
