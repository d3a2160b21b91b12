"""Sentinel-2 products (.SAFE folder / zip, L1C / L2A, before and after processing baseline 04.00).

Fixtures: products written in the published layout (tests/safe_fixture.py) carrying the real pixels of a
BigEarthNet-S2 patch as lossless JPEG 2000 band files; the reference is the same patch read from its
GeoTIFF band folder (DN x 1e-4).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import BEN, call_cli
from eosr.errors import DataError, GeoError
from eosr.io.sentinel2 import SCL_INVALID, open_safe
from eosr.scene.source import open_source, read_scene
from safe_fixture import make_safe

B10 = ["B02", "B03", "B04", "B08"]
B20 = ["B05", "B06", "B07", "B8A", "B11", "B12"]
B60 = ["B01", "B09"]


@pytest.fixture(scope="module")
def patch() -> Path:
    return sorted(p for p in BEN.iterdir() if p.is_dir())[0]


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory, patch: Path) -> dict[str, Path]:
    """L2A and L1C, baselines 03.01/02.09 (no offset) and 04.00 (offset -1000), a zipped copy, and an L2A
    whose SCL marks a cloud block, a shadow block and a strip of no data."""
    root = tmp_path_factory.mktemp("safe")
    scl = np.full((60, 60), 4, np.uint8)
    scl[10:20, 30:45] = 9  # cloud, high probability
    scl[40:44, 5:17] = 3  # cloud shadow
    scl[:, 58:] = 0  # no data
    scl[50:55, 50:55] = 6  # water: valid
    out = {}
    for key, level, baseline, kw in (("l2a_new", "L2A", "04.00", {}), ("l2a_old", "L2A", "03.01", {}),
                                     ("l1c_new", "L1C", "04.00", {}), ("l1c_old", "L1C", "02.09", {}),
                                     ("l2a_zip", "L2A", "04.00", {"zip_it": True}),
                                     ("l2a_scl", "L2A", "04.00", {"scl": scl, "nodata_rows": 4})):
        d = root / key
        d.mkdir()
        out[key] = make_safe(d, patch, level=level, baseline=baseline, **kw)
    return out


def _ref(patch: Path, bands: list[str]) -> np.ndarray:
    return read_scene(patch, bands).data


@pytest.mark.parametrize("key", ["l2a_new", "l2a_old", "l1c_new", "l1c_old", "l2a_zip"])
@pytest.mark.parametrize("bands", [B10, B20, B60], ids=["10m", "20m", "60m"])
def test_same_reflectance_every_baseline(products: dict[str, Path], patch: Path, key: str, bands: list[str]) -> None:
    got = read_scene(products[key], bands)
    ref = read_scene(patch, bands)
    np.testing.assert_allclose(got.data, ref.data, rtol=0, atol=2e-7)
    assert got.band_names == bands
    assert got.transform == ref.transform and got.crs == ref.crs  # georeference exact
    if key.endswith("new"):
        assert (got.dn_scale, got.dn_offset) == pytest.approx((1e-4, -0.1))
        assert "baseline 04.00: (DN - 1000) / 10000" in got.radiometry
    elif key.endswith("old"):
        assert (got.dn_scale, got.dn_offset) == (1e-4, 0.0)


def test_offset_is_really_applied(products: dict[str, Path]) -> None:
    """The stored DN differ by 1000 between baselines; a reader ignoring the offset would be off by 0.1."""
    new, old = open_safe(products["l2a_new"]), open_safe(products["l2a_old"])
    with rasterio.open(new.band_files["B04"]) as a, rasterio.open(old.band_files["B04"]) as b:
        da, db = a.read(1).astype(int), b.read(1).astype(int)
    assert np.all(da[db > 0] - db[db > 0] == 1000)
    assert new.offsets["B04"] == -1000 and old.offsets == {}
    assert new.level == "L2A" and new.baseline == "04.00" and new.quantification == 10000


def test_metadata_and_native_resolution(products: dict[str, Path]) -> None:
    p = open_safe(products["l2a_new"])
    assert sorted(p.band_files) == sorted(B10 + B20 + B60)
    assert "/R10m/" in p.band_files["B02"] and "/R20m/" in p.band_files["B8A"] and "/R60m/" in p.band_files["B09"]
    assert p.scl is not None and p.scl.endswith("_SCL_20m.jp2")
    z = open_safe(products["l2a_zip"])
    assert z.band_files["B02"].startswith("/vsizip/") and z.level == "L2A"
    assert open_safe(products["l1c_new"]).scl is None


@pytest.mark.parametrize("bands,k", [(B10, 2), (B20, 1), (B60, -3)], ids=["10m", "20m", "60m"])
def test_scl_mask_on_every_grid(products: dict[str, Path], bands: list[str], k: int) -> None:
    src = open_source(products["l2a_scl"], bands, mask=True)
    with rasterio.open(open_safe(products["l2a_scl"]).scl) as ds:
        cls = ds.read(1)
    bad20 = np.isin(cls, SCL_INVALID)
    if k > 0:
        bad = np.repeat(np.repeat(bad20, k, 0), k, 1)
    else:
        bad = bad20.reshape(20, 3, 20, 3).any(axis=(1, 3))
    rows = 4 if k == 2 else 2 if k == 1 else 1  # the stored NO_DATA rows (DN 0)
    bad[:rows] = True
    full = src.read((0, src.height, 0, src.width))
    np.testing.assert_array_equal(np.isnan(full).all(axis=0), bad)
    assert not np.isnan(full).any(axis=0)[~bad].any()
    # windows that do not start on a class-pixel boundary see the same mask
    win = (3, src.height - 5, 1, src.width - 2)
    np.testing.assert_array_equal(src.read(win), full[:, 3:-5, 1:-2])
    unmasked = open_source(products["l2a_scl"], bands).read((0, src.height, 0, src.width))
    assert np.isnan(unmasked).all(axis=0)[:rows].all() and not np.isnan(unmasked[:, rows:]).any()


def test_broken_products_one_line(products: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / products["l1c_new"].name
    shutil.copytree(products["l1c_new"], broken)
    victim = next(broken.rglob("*_B11.jp2"))
    victim.unlink()
    with pytest.raises(DataError, match=r"band file .*_B11\.jp2 listed in MTD_MSIL1C\.xml is missing"):
        open_safe(broken)
    xml = broken / "MTD_MSIL1C.xml"
    xml.write_text(xml.read_text()[:500])
    with pytest.raises(DataError, match=r"cannot parse MTD_MSIL1C\.xml") as e:
        open_source(broken, B10)
    assert "\n" not in str(e.value)
    with pytest.raises(GeoError, match="different grids"):
        open_source(products["l1c_new"], ["B02", "B05"])


def test_cli_sr_simulate_evaluate_on_a_product(products: dict[str, Path], patch: Path, tmp_path: Path) -> None:
    """sr, simulate and evaluate take the product like a GeoTIFF; evaluate honours the SCL mask."""
    prod = products["l2a_scl"]
    lr = tmp_path / "lr.tif"
    assert call_cli(["simulate", str(prod), str(lr), "--sensor", "sentinel2", "--scale", "2", "--bands",
                     ",".join(B10)]) == 0
    with rasterio.open(lr) as ds:
        assert ds.descriptions == tuple(B10) and ds.transform.a == 20.0
    sr = tmp_path / "sr.tif"
    assert call_cli(["sr", str(prod), str(sr), "--model", "bicubic", "--scale", "2", "--bands", ",".join(B10),
                     "--no-progress"]) == 0
    with rasterio.open(sr) as ds, rasterio.open(open_safe(prod).band_files["B02"]) as ref:
        assert ds.transform.a == 5.0 and (ds.transform.c, ds.transform.f) == (ref.transform.c, ref.transform.f)
        assert ds.descriptions == tuple(B10)
    out = tmp_path / "ev.json"
    assert call_cli(["evaluate", "--sr", str(sr), "--lr", str(prod), "--bands", ",".join(B10), "--sensor", "sentinel2",
                     "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "baseline 04.00: (DN - 1000) / 10000" in res["radiometry"]["lr"]["rule"]
    src = open_source(prod, B10, mask=True)
    valid = int((~np.isnan(src.read((0, src.height, 0, src.width))).any(axis=0)).sum())
    assert valid < 120 * 120 - 4 * 120  # clouds and shadows removed, not only the NO_DATA rows
    n = res["metrics"]["lr_fidelity"]["n_valid"] // 4  # the operator's footprint widens the nodata a little
    assert n <= valid and n <= 120 * 120 - 4 * 120 - 20 * 30 - 8 * 24  # minus NO_DATA rows, cloud, shadow


def test_data_reader_takes_products(products: dict[str, Path], patch: Path) -> None:
    """The band-folder reader of eosr.data (Wald sets, datasets) reads a product alike, masks honoured."""
    from eosr.data.s2bands import read_s2_band_folder

    ref = read_s2_band_folder(patch, B10 + B20)
    got = read_s2_band_folder(products["l2a_zip"], B10 + B20)
    assert got.resolutions == [10, 20] and got[20].band_names == B20
    for gsd in (10, 20):
        np.testing.assert_allclose(got[gsd].data, ref[gsd].data, atol=2e-7)
        assert got[gsd].transform == ref[gsd].transform
    masked = read_s2_band_folder(products["l2a_scl"], B20)[20].data
    assert np.isnan(masked[:, 10:20, 30:45]).all() and not np.isnan(masked[:, 25:35, 0:20]).any()


def test_20m_sharpening_from_a_product(products: dict[str, Path], patch: Path, tmp_path: Path) -> None:
    """s2_multires_20m reads its 10 m guide and 20 m bands from a product (zip or folder) like from the band
    folder."""
    b = tmp_path / "b.tif"
    assert call_cli(["sr", str(patch), str(b), "--model", "s2_multires_20m", "--no-progress"]) == 0
    y = read_scene(b)
    for key in ("l2a_zip", "l2a_new"):
        a = tmp_path / f"{key}.tif"
        assert call_cli(["sr", str(products[key]), str(a), "--model", "s2_multires_20m", "--no-progress"]) == 0
        x = read_scene(a)
        assert x.band_names == y.band_names == B20 and x.transform == y.transform and x.data.shape == (6, 120, 120)
        np.testing.assert_allclose(x.data, y.data, atol=2e-4)  # DN rounding of two output encodings
