"""STAC items as inputs: an item built with pystac from a real BigEarthNet patch (relative hrefs, eo:bands
names, raster:bands scale/nodata) reads exactly like the band folder it points to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from conftest import BEN, call_cli
from eosr.errors import DataError
from eosr.scene.source import open_source, read_scene

PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"
B10 = ["B02", "B03", "B04", "B08"]


def _item(folder: Path, *, keys: str = "common", offset: float | None = None, remote: bool = False) -> Path:
    common = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge1", "B11": "swir16"}
    item = pystac.Item("patch", geometry=None, bbox=None, datetime=datetime(2017, 6, 13, tzinfo=UTC),
                       properties={})
    for band, key in common.items():
        src = next(PATCH.glob(f"*_{band}.tif"))
        href = f"https://example.invalid/{src.name}" if remote else f"./data/{band}.tif"
        if not remote:
            (folder / "data").mkdir(exist_ok=True)
            (folder / "data" / f"{band}.tif").write_bytes(src.read_bytes())
        raster = {"scale": 1e-4, "nodata": 0} | ({"offset": offset} if offset is not None else {})
        item.add_asset(key if keys == "common" else band, pystac.Asset(
            href, media_type=pystac.MediaType.COG, roles=["data"],
            extra_fields={"eo:bands": [{"name": band, "common_name": key}], "raster:bands": [raster]}))
    item.add_asset("thumbnail", pystac.Asset("./thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    path = folder / "item.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return path


def test_item_reads_like_the_folder(tmp_path: Path) -> None:
    item = _item(tmp_path)
    got, ref = read_scene(item, B10), read_scene(PATCH, B10)
    np.testing.assert_array_equal(got.data, ref.data)
    assert got.band_names == B10 and got.transform == ref.transform and got.crs == ref.crs
    assert got.radiometry == "STAC item raster:bands scale/offset"
    (tmp_path / "o").mkdir()
    shifted = read_scene(_item(tmp_path / "o", offset=-0.1), B10)
    np.testing.assert_allclose(shifted.data, ref.data - 0.1, atol=1e-6)  # the asset's offset is applied
    with pytest.raises(Exception, match="different grids"):
        open_source(item, ["B02", "B05"])


def test_sr_on_an_item(tmp_path: Path) -> None:
    item = _item(tmp_path)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    assert call_cli(["sr", str(item), str(a), "--model", "carn_m_s2_x2", "--bands", ",".join(B10),
                     "--no-progress"]) == 0
    assert call_cli(["sr", str(PATCH), str(b), "--model", "carn_m_s2_x2", "--bands", ",".join(B10),
                     "--no-progress"]) == 0
    with rasterio.open(a) as x, rasterio.open(b) as y:
        xa, ya = x.read(), y.read()
        # the item declares nodata 0 (the folder's files declare none): there a valid 0 DN is written as 1
        assert x.nodata == 0 and y.nodata is None
        nudged = (ya == 0) & (xa == 1)
        np.testing.assert_array_equal(np.where(nudged, 0, xa), ya)
        assert x.transform == y.transform and x.descriptions == tuple(B10)


def test_remote_or_missing_assets_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="remote .* eosr reads no network"):
        open_source(_item(tmp_path, remote=True), B10)
    (tmp_path / "m").mkdir()
    item = _item(tmp_path / "m")
    (item.parent / "data" / "B03.tif").unlink()
    with pytest.raises(DataError, match=r"asset file not found: .*B03\.tif"):
        open_source(item, B10)


def test_sr_writes_a_stac_item(tmp_path: Path, hr_tif: Path) -> None:
    import jsonschema

    from conftest import stac_core_validator, stac_validate
    from eosr.io.stac import EXTENSIONS

    item = _item(tmp_path)
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(item), str(out), "--model", "carn_m_s2_x2", "--bands", ",".join(B10), "--stac",
                     "--no-progress"]) == 0
    d = json.loads((tmp_path / "sr.stac.json").read_text())
    assert sorted(stac_validate(d)) == sorted(EXTENSIONS.values())  # core + every extension it writes
    p = d["properties"]
    assert d["properties"]["datetime"].startswith("2017-06-13") and "acquisition time" in p["eosr:datetime"]
    with rasterio.open(out) as ds:
        assert p["proj:shape"] == [ds.height, ds.width] and p["proj:transform"] == list(ds.transform)[:6]
        assert p["proj:code"] == f"EPSG:{ds.crs.to_epsg()}"
    assert p["eosr:model"] == "carn_m_s2_x2" and len(p["eosr:weights_sha256"]) == 64
    assert [b["name"] for b in d["assets"]["data"]["eo:bands"]] == B10
    rb = d["assets"]["data"]["raster:bands"]
    assert len(rb) == 4 and {(b["data_type"], b["scale"], b["nodata"]) for b in rb} == {("uint16", 1e-4, 0.0)}
    assert rb[0]["spatial_resolution"] == 5.0
    assert (tmp_path / d["assets"]["data"]["href"]).resolve() == out.resolve()
    lon0, lat0, lon1, lat1 = d["bbox"]
    assert -180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90
    bad = json.loads(json.dumps(d))
    bad["bbox"] = "nowhere"
    with pytest.raises(Exception, match="nowhere"):
        stac_core_validator().validate(bad)
    for field, value in (("proj:shape", [1, 2, 3]), ("processing:software", "eosr")):
        bad = json.loads(json.dumps(d))
        bad["properties"][field] = value  # the vendored extension schemas catch what the core one cannot
        stac_core_validator().validate(bad)
        with pytest.raises(jsonschema.ValidationError):
            stac_validate(bad)
    bad = json.loads(json.dumps(d))
    bad["assets"]["data"]["raster:bands"][0]["data_type"] = "float31"
    with pytest.raises(jsonschema.ValidationError, match="float31"):
        stac_validate(bad)
    bad = json.loads(json.dumps(d))
    bad["stac_extensions"].append("https://stac-extensions.github.io/sat/v1.0.0/schema.json")
    with pytest.raises(AssertionError, match="no vendored schema"):
        stac_validate(bad)
    plain = tmp_path / "plain.tif"  # a GeoTIFF input: the processing time, said so
    assert call_cli(["sr", str(hr_tif), str(plain), "--model", "bicubic", "--scale", "2", "--stac",
                     "--no-progress"]) == 0
    q = json.loads((tmp_path / "plain.stac.json").read_text())
    stac_validate(q)
    assert "processing time" in q["properties"]["eosr:datetime"] and "eosr:weights_sha256" not in q["properties"]
