"""Dataset readers round-trip fixtures written here in the exact published layouts, and fail cleanly."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image

from eosr.data import PairedGeoTiffDataset, ProbaVDataset, Sen2VenusDataset, WorldStratDataset, collate_samples
from eosr.data.probav import read_probav_norm
from eosr.errors import DataError, GeoError, ScaleError

UTM = "EPSG:32631"


def _f32(dn: np.ndarray, scale: float) -> np.ndarray:
    return dn.astype(np.float32) * np.float32(scale)


def _tif(path: Path, data: np.ndarray, px: float, crs: str = UTM, x0: float = 500000.0, y0: float = 4800000.0) -> Path:
    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype=data.dtype, crs=crs,
                       transform=Affine(px, 0, x0, 0, -px, y0)) as ds:
        ds.write(data)
    return path


# ------------------------------------------------------------------ SEN2VENuS
def _sen2venus_pt(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    site = root / "ARM"
    site.mkdir(parents=True)
    cols = ["vns_site", "date", "nb_patches", "tensor_10m_b2b3b4b8", "tensor_05m_b2b3b4b8",
            "tensor_20m_b5b6b7b8a", "tensor_05m_b5b6b7b8a"]
    rows, arrays = ["\t".join(cols)], {}
    for date, n in (("2018-08-01", 3), ("2018-09-12", 2)):
        stem = f"ARM_1_31TCJ_{date}"
        names = []
        for suffix, size in (("10m_b2b3b4b8", 8), ("05m_b2b3b4b8", 16), ("20m_b4b5b6b8a", 4), ("05m_b4b5b6b8a", 16)):
            a = rng.integers(-200, 9000, size=(n, 4, size, size)).astype(np.int16)
            torch.save(torch.from_numpy(a), site / f"{stem}_{suffix}.pt")
            arrays[f"{stem}_{suffix}"] = a
            names.append(f"{stem}_{suffix}.pt")
        rows.append("\t".join(["ARM", date, str(n), *names]))
    (site / "index.csv").write_text("\n".join(rows) + "\n")
    return arrays


def test_sen2venus_tensor_layout_round_trip(tmp_path) -> None:
    arrays = _sen2venus_pt(tmp_path, np.random.default_rng(0))
    arrays["ARM_1_31TCJ_2018-08-01_10m_b2b3b4b8"][1, 2, 3, 4] = -10000  # nodata
    torch.save(torch.from_numpy(arrays["ARM_1_31TCJ_2018-08-01_10m_b2b3b4b8"]),
               tmp_path / "ARM" / "ARM_1_31TCJ_2018-08-01_10m_b2b3b4b8.pt")
    ds = Sen2VenusDataset(tmp_path, "10m")
    assert len(ds) == 5 and set(ds.location_ids) == {"ARM"}
    s = ds[1]
    lr_dn = arrays["ARM_1_31TCJ_2018-08-01_10m_b2b3b4b8"][1]
    hr_dn = arrays["ARM_1_31TCJ_2018-08-01_05m_b2b3b4b8"][1]
    expect = _f32(lr_dn, 1e-4)
    expect[2, 3, 4] = np.nan
    np.testing.assert_array_equal(s.lr.numpy(), expect)
    np.testing.assert_array_equal(s.hr.numpy(), _f32(hr_dn, 1e-4))
    assert float(np.nanmin(s.lr.numpy())) < 0  # negative reflectance is kept, not clipped
    assert not s.lr_valid[3, 4] and int(s.lr_valid.sum()) == 63 and s.hr_valid.all()
    assert s.scale == 2 and s.lr_bands == ("B02", "B03", "B04", "B08") and s.sample_id.endswith("_1")
    r = Sen2VenusDataset(tmp_path, "20m")[4]  # last patch of the second date: B5 B6 B7 B8A at x4
    np.testing.assert_array_equal(r.lr.numpy(), _f32(arrays["ARM_1_31TCJ_2018-09-12_20m_b4b5b6b8a"][1], 1e-4))
    assert r.scale == 4 and r.lr_bands == ("B05", "B06", "B07", "B8A") and r.hr.shape == (4, 16, 16)
    batch = collate_samples([ds[0], ds[2]])
    assert batch["lr"].shape == (2, 4, 8, 8) and batch["location_id"] == ["ARM", "ARM"]


def test_sen2venus_geotiff_in_zip_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(1)
    site = tmp_path / "KUDALIAR"
    site.mkdir()
    stage = tmp_path / "stage"
    stage.mkdir()
    cols = ["b2b3b4b8_10m", "b2b3b4b8_05m", "b5b6b7b8a_20m", "b5b6b7b8a_05m", "b11b12_20m"]
    data, rows = {}, ["\t".join(cols)]
    with zipfile.ZipFile(site / "KUDALIAR_patches.zip", "w") as z:
        for loc, date in (("137", "2020-05-13"), ("137", "2020-06-02"), ("138", "2020-05-13")):
            cells = []
            for col, (size, px, c) in zip(cols, [(8, 10, 4), (16, 5, 4), (4, 20, 4), (16, 5, 4), (4, 20, 2)],
                                          strict=True):
                name = f"KUDALIAR_{loc}_{date}_44QKE_{col}.tif"
                a = rng.integers(-100, 8000, size=(c, size, size)).astype(np.int16)
                _tif(stage / name, a, px, x0=600000.0 + 100 * int(loc))
                z.write(stage / name, f"patches/{name}")
                data[name] = a
                cells.append(f"KUDALIAR_patches.zip/patches/{name}")
            rows.append("\t".join(cells))
    (site / "index.csv").write_text("\n".join(rows) + "\n")
    ds = Sen2VenusDataset(tmp_path, "10m")
    assert len(ds) == 3 and ds.location_ids == ["KUDALIAR_137", "KUDALIAR_137", "KUDALIAR_138"]
    s = ds[2]
    np.testing.assert_array_equal(s.lr.numpy(), _f32(data["KUDALIAR_138_2020-05-13_44QKE_b2b3b4b8_10m.tif"], 1e-4))
    np.testing.assert_array_equal(s.hr.numpy(), _f32(data["KUDALIAR_138_2020-05-13_44QKE_b2b3b4b8_05m.tif"], 1e-4))
    assert s.lr_transform.a == 10 and s.hr_transform.a == 5 and s.hr_transform.c == 613800.0 and str(s.crs) == UTM
    assert Sen2VenusDataset(tmp_path, "20m")[0].scale == 4


def test_sen2venus_bad_layouts(tmp_path) -> None:
    with pytest.raises(DataError, match="no index.csv"):
        Sen2VenusDataset(tmp_path)
    (tmp_path / "S1").mkdir()
    (tmp_path / "S1" / "index.csv").write_text("vns_site\tdate\nS1\t2018-01-01\n")
    with pytest.raises(DataError, match=r"index\.csv: no 10m columns"):
        Sen2VenusDataset(tmp_path)
    (tmp_path / "S1" / "index.csv").write_text(
        "vns_site\tnb_patches\ttensor_10m_b2b3b4b8\ttensor_05m_b2b3b4b8\nS1\t2\ta.pt\tb.pt\n")
    with pytest.raises(DataError, match=r"not found: .*a\.pt"):
        Sen2VenusDataset(tmp_path)
    (tmp_path / "S1" / "a.pt").write_bytes(b"not a tensor")
    (tmp_path / "S1" / "b.pt").write_bytes(b"not a tensor")
    ds = Sen2VenusDataset(tmp_path)
    with pytest.raises(DataError, match=r"cannot read .*a\.pt"):
        ds[0]
    with pytest.raises(DataError, match="pair must be"):
        Sen2VenusDataset(tmp_path, "60m")


# ------------------------------------------------------------------ PROBA-V
def _png(path: Path, a: np.ndarray) -> None:
    Image.fromarray(a).save(path)


def _probav(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {}
    for split, band, name, hr in (("train", "RED", "imgset0000", True), ("train", "NIR", "imgset0594", True),
                                  ("test", "RED", "imgset1160", False)):
        d = root / split / band / name
        d.mkdir(parents=True)
        for k in range(3):
            lr = rng.integers(0, 2**14, size=(8, 8)).astype(np.uint16)
            qm = (rng.random((8, 8)) > 0.2).astype(np.uint8) * 255
            _png(d / f"LR{k:03d}.png", lr)
            _png(d / f"QM{k:03d}.png", qm)
            arrays[f"{name}/LR{k:03d}"], arrays[f"{name}/QM{k:03d}"] = lr, qm
        if hr:
            h = rng.integers(0, 2**14, size=(24, 24)).astype(np.uint16)
            sm = (rng.random((24, 24)) > 0.1).astype(np.uint8) * 255
            _png(d / "HR.png", h)
            _png(d / "SM.png", sm)
            arrays[f"{name}/HR"], arrays[f"{name}/SM"] = h, sm
    (root / "norm.csv").write_text("imgset0000 53.1\nimgset0594 47.25\nimgset1160 50.5")  # no trailing newline
    return arrays


def test_probav_round_trip_masks_and_norm(tmp_path) -> None:
    arrays = _probav(tmp_path, np.random.default_rng(2))
    ds = ProbaVDataset(tmp_path, "train")
    assert len(ds) == 2 and ds.location_ids == ["imgset0000", "imgset0594"]
    s = ds[1]
    assert s.lr.shape == (3, 1, 8, 8) and s.hr.shape == (1, 24, 24) and s.scale == 3 and s.lr_bands == ("NIR",)
    for k in range(3):
        np.testing.assert_array_equal(s.lr[k, 0].numpy(), _f32(arrays[f"imgset0594/LR{k:03d}"], 1 / 65535))
        np.testing.assert_array_equal(s.lr_valid[k].numpy(), arrays[f"imgset0594/QM{k:03d}"] > 0)
    np.testing.assert_array_equal(s.hr[0].numpy(), _f32(arrays["imgset0594/HR"], 1 / 65535))
    np.testing.assert_array_equal(s.hr_valid.numpy(), arrays["imgset0594/SM"] > 0)
    assert s.meta["norm"] == 47.25
    t = ProbaVDataset(tmp_path, "test", bands=("RED",))[0]
    assert t.hr is None and t.hr_valid is None and t.meta["norm"] == 50.5
    assert read_probav_norm(tmp_path / "norm.csv") == {"imgset0000": 53.1, "imgset0594": 47.25, "imgset1160": 50.5}


def test_probav_real_norm_file() -> None:
    from conftest import PROBAV

    norm = read_probav_norm(PROBAV / "norm.csv")
    assert len(norm) == 1450 and "imgset0000" in norm and "imgset1449" in norm
    assert all(30.0 < v < 80.0 for v in norm.values())


def test_probav_corrupt_png_and_missing_mask(tmp_path) -> None:
    _probav(tmp_path, np.random.default_rng(3))
    d = tmp_path / "train" / "RED" / "imgset0000"
    (d / "LR001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"cannot read .*LR001\.png"):
        ProbaVDataset(tmp_path)[0]
    _png(d / "LR001.png", np.zeros((8, 8), np.uint16))
    (d / "QM002.png").unlink()
    with pytest.raises(DataError, match=r"not found: .*QM002\.png"):
        ProbaVDataset(tmp_path)[0]
    with pytest.raises(DataError, match="PROBA-V folder not found"):
        ProbaVDataset(tmp_path / "nowhere")


# ------------------------------------------------------------------ WorldStrat
def test_worldstrat_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(4)
    aoi = "Landcover-1000"
    hd = tmp_path / "hr_dataset" / "12bit" / aoi
    ld = tmp_path / "lr_dataset" / aoi / "L2A"
    hd.mkdir(parents=True)
    ld.mkdir(parents=True)
    hr = rng.integers(0, 4096, size=(4, 32, 32)).astype(np.uint16)
    _tif(hd / f"{aoi}_rgbn.tiff", hr, 2.5)
    lrs, clms = [], []
    for n in (1, 2, 10):  # revisit order is numeric, not lexical
        lr = rng.random((12, 8, 8)).astype(np.float32)
        clm = (rng.random((1, 8, 8)) > 0.7).astype(np.uint8)
        _tif(ld / f"{aoi}-{n}-L2A_data.tiff", lr, 10.0)
        _tif(ld / f"{aoi}-{n}-CLM.tiff", clm, 10.0)
        lrs.append(lr)
        clms.append(clm[0])
    ds = WorldStratDataset(tmp_path)
    s = ds[0]
    assert s.lr.shape == (3, 12, 8, 8) and s.hr.shape == (4, 32, 32) and s.scale == 4
    np.testing.assert_array_equal(s.lr.numpy(), np.stack(lrs))
    np.testing.assert_array_equal(s.lr_valid.numpy(), np.stack(clms) == 0)
    np.testing.assert_array_equal(s.hr.numpy(), _f32(hr, 1 / 4095))
    assert s.lr_bands[8] == "B8A" and s.hr_bands == ("R", "G", "B", "NIR") and s.location_id == aoi
    assert WorldStratDataset(tmp_path, n_revisits=2)[0].lr.shape[0] == 2
    (ld / f"{aoi}-2-L2A_data.tiff").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match=r"cannot read .*-2-L2A_data\.tiff"):
        ds[0]
    with pytest.raises(DataError, match="WorldStrat folders not found"):
        WorldStratDataset(tmp_path / "x")


# ------------------------------------------------------------------ paired GeoTIFF folders
def _paired(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path, dict[str, np.ndarray]]:
    lr_d, hr_d = tmp_path / "lr", tmp_path / "hr"
    lr_d.mkdir()
    hr_d.mkdir()
    out = {}
    for name in ("a", "b"):
        lr = rng.integers(0, 10000, size=(2, 6, 6)).astype(np.uint16)
        hr = rng.integers(0, 10000, size=(2, 18, 18)).astype(np.uint16)
        _tif(lr_d / f"{name}.tif", lr, 30.0)
        _tif(hr_d / f"{name}.tif", hr, 10.0)
        out[name + "_lr"], out[name + "_hr"] = lr, hr
    return lr_d, hr_d, out


def test_paired_geotiff_round_trip_and_scale(tmp_path) -> None:
    lr_d, hr_d, arr = _paired(tmp_path, np.random.default_rng(5))
    with pytest.raises(DataError, match="give --dn-scale"):  # integers without metadata: never guessed
        PairedGeoTiffDataset(lr_d, hr_d)[0]
    ds = PairedGeoTiffDataset(lr_d, hr_d, location_of=lambda n: n.upper(), dn_scale=1e-4)
    assert len(ds) == 2 and ds.location_ids == ["A", "B"]
    s = ds[1]
    np.testing.assert_array_equal(s.lr.numpy(), _f32(arr["b_lr"], 1e-4))
    np.testing.assert_array_equal(s.hr.numpy(), _f32(arr["b_hr"], 1e-4))
    assert s.scale == 3 and s.lr_transform.a == 30 and s.hr_transform.a == 10
    with pytest.raises(ScaleError):
        PairedGeoTiffDataset(lr_d, hr_d, scale=2, dn_scale=1e-4)[0]


def test_paired_geotiff_errors(tmp_path) -> None:
    lr_d, hr_d, _ = _paired(tmp_path, np.random.default_rng(6))
    _tif(hr_d / "a.tif", np.zeros((2, 18, 18), np.uint16), 10.0, crs="EPSG:32632")
    with pytest.raises(GeoError, match=r"a\.tif: CRS mismatch"):
        PairedGeoTiffDataset(lr_d, hr_d, dn_scale=1e-4)[0]
    _tif(hr_d / "a.tif", np.zeros((2, 15, 15), np.uint16), 12.0)
    with pytest.raises(ScaleError, match="not an integer ratio"):
        PairedGeoTiffDataset(lr_d, hr_d, dn_scale=1e-4)[0]
    _tif(hr_d / "a.tif", np.zeros((2, 18, 18), np.uint16), 10.0, x0=500010.0)
    with pytest.raises(GeoError, match="origins differ"):
        PairedGeoTiffDataset(lr_d, hr_d, dn_scale=1e-4)[0]
    (hr_d / "a.tif").write_bytes(b"II*\x00" + b"\x00" * 40)
    with pytest.raises(DataError, match=r"a\.tif"):
        PairedGeoTiffDataset(lr_d, hr_d, dn_scale=1e-4)[0]
    (hr_d / "a.tif").unlink()
    with pytest.raises(DataError, match="unmatched LR/HR files.*: a"):
        PairedGeoTiffDataset(lr_d, hr_d)


# ------------------------------------------------------------------ S2 band folders: bad grids
def test_band_folder_crs_scale_and_corrupt_file_errors(tmp_path) -> None:
    from eosr.data import read_s2_band_folder

    d = tmp_path / "P"
    d.mkdir()
    _tif(d / "P_B02.tif", np.ones((1, 12, 12), np.uint16), 10.0)
    _tif(d / "P_B05.tif", np.ones((1, 6, 6), np.uint16), 20.0, crs="EPSG:32632")
    with pytest.raises(GeoError, match="20 m bands vs 10 m bands: CRS mismatch"):
        read_s2_band_folder(d)
    _tif(d / "P_B05.tif", np.ones((1, 8, 8), np.uint16), 15.0)
    with pytest.raises(ScaleError, match="not an integer ratio"):
        read_s2_band_folder(d)
    _tif(d / "P_B05.tif", np.ones((1, 6, 6), np.uint16), 20.0, x0=500020.0)
    with pytest.raises(GeoError, match="origins differ"):
        read_s2_band_folder(d)
    _tif(d / "P_B05.tif", np.ones((1, 6, 6), np.uint16), 20.0)
    assert read_s2_band_folder(d).resolutions == [10, 20]
    (d / "P_B03.tif").write_bytes(b"II*\x00" + b"\x01" * 64)
    with pytest.raises(DataError, match=r"P_B03\.tif"):
        read_s2_band_folder(d)
