"""Readers on the real files in ../shared/data: S2 band folders, .mat Wald sets, the EOPatch."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from conftest import BEN, EOPATCH, HVN2
from eosr.data import S2BandFolderDataset, read_eopatch_s2, read_hvn2_mat, read_s2_band_folder
from eosr.data.matfiles import HVN2_KERNEL, MAT_20M
from eosr.errors import DataError


def _patches() -> list:
    return sorted(p for p in BEN.iterdir() if p.is_dir())


def test_band_folder_stacks_shapes_footprints_and_values() -> None:
    for p in _patches():
        st = read_s2_band_folder(p)
        assert st.resolutions == [10, 20, 60]
        assert st[10].data.shape == (4, 120, 120) and st[10].band_names == ["B02", "B03", "B04", "B08"]
        assert st[20].data.shape == (6, 60, 60)
        assert st[20].band_names == ["B05", "B06", "B07", "B8A", "B11", "B12"]
        assert st[60].data.shape == (2, 20, 20) and st[60].band_names == ["B01", "B09"]
        for g in (10, 20, 60):  # same origin, footprint 1200 m, same CRS
            t = st[g].transform
            assert (t.c, t.f) == (st[10].transform.c, st[10].transform.f)
            assert t.a * st[g].data.shape[2] == pytest.approx(1200.0)
            assert st[g].crs == st[10].crs
        # DN x 1e-4, independent check with rasterio
        with rasterio.open(next(p.glob("*_B8A.tif"))) as ds:
            np.testing.assert_allclose(st[20].data[3], ds.read(1) * 1e-4, rtol=1e-6)


def test_band_folder_dataset_and_band_selection() -> None:
    ds = S2BandFolderDataset(BEN)
    assert len(ds) == 6
    s = ds[0]
    assert s.lr.shape == (6, 60, 60) and s.hr is not None and s.hr.shape == (4, 120, 120) and s.scale == 2
    assert s.lr_valid.all() and s.location_id == ds.folders[0].name
    st = read_s2_band_folder(_patches()[0], ["b4", "B2"])
    assert st.resolutions == [10] and st[10].band_names == ["B02", "B04"]


def test_band_folder_missing_band_and_bad_grid(tmp_path) -> None:
    with pytest.raises(DataError, match="B10"):
        read_s2_band_folder(_patches()[0], ["B02", "B10"])
    with pytest.raises(DataError, match="not found"):
        read_s2_band_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no single-band files"):
        read_s2_band_folder(tmp_path)


def test_mat_native_scene_v73() -> None:
    s = read_hvn2_mat(HVN2 / "CoastalA_cell.mat")
    assert not s.reduced and s.placeholders == ()
    assert {g: a.shape for g, a in s.stacks.items()} == {10: (4, 408, 408), 20: (6, 204, 204), 60: (2, 68, 68)}
    assert s.stack_bands[20] == MAT_20M and s.stack_bands[60] == ("B01", "B09")
    for a in s.stacks.values():  # L1C TOA reflectance of a coastal scene
        assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() < 1.0 and 0.02 < a.mean() < 0.2
    # DN x 1e-4: B02 (10 m) mean DN 892.0 of the file
    assert s.stacks[10][0].mean() == pytest.approx(0.0892, abs=1e-4)


def test_mat_reduced_set_is_the_documented_degradation_of_the_native_scene() -> None:
    """Known answer tying both files together: Xm_im == native 20 m bands, Yim == 4-tap kernel x2."""
    native = read_hvn2_mat(HVN2 / "CoastalA_cell.mat")
    rr = read_hvn2_mat(HVN2 / "coastalA_cell_RR.mat")
    assert rr.reference is not None
    np.testing.assert_array_equal(rr.reference, native.stacks[20])
    k = np.asarray(HVN2_KERNEL)

    def dec(z: np.ndarray, ax: int) -> np.ndarray:
        z = np.moveaxis(z, ax, -1)
        n = (z.shape[-1] - 2) // 2
        return np.moveaxis(sum(k[t] * z[..., t : t + 2 * n : 2] for t in range(4)), -1, ax)

    for g in (10, 20, 60):
        x = np.pad(native.stacks[g].astype(np.float64), ((0, 0), (1, 1), (1, 1)), mode="edge")
        np.testing.assert_allclose(dec(dec(x, 1), 2), rr.stacks[g], atol=2e-6)
    w = rr.wald_sample()
    assert w.lr.shape == (6, 102, 102) and w.hr is not None and w.hr.shape == (6, 204, 204) and w.scale == 2
    assert w.lr_bands == MAT_20M and w.meta["guide"].shape == (4, 204, 204)


def test_mat_reduced_v5_reykjavik_placeholders() -> None:
    s = read_hvn2_mat(HVN2 / "reykjavik_cell_RR.mat")
    assert s.placeholders == ("B01", "B09") and 60 not in s.stacks
    assert s.stacks[10].shape == (4, 256, 256) and s.stacks[20].shape == (6, 128, 128)
    assert s.reference is not None and s.reference.shape == (6, 256, 256)
    assert s.reference.min() > 0.0 and s.reference.max() < 1.0
    # the reference is sharper than its reduced version yet has the same mean (a real Wald pair)
    w = s.wald_sample()
    assert w.hr is not None
    assert float(w.hr.mean()) == pytest.approx(float(w.lr.mean()), rel=0.01)
    assert float(w.hr.diff(dim=-1).abs().mean()) > 1.3 * float(w.lr.diff(dim=-1).abs().mean()) / 2


def test_mat_bad_input(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_hvn2_mat(tmp_path / "missing.mat")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB 5.0 garbage" * 10)
    with pytest.raises(DataError, match="bad.mat"):
        read_hvn2_mat(bad)
    import scipy.io

    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"X": np.zeros((2, 2))})
    with pytest.raises(DataError, match="no 'Yim'"):
        read_hvn2_mat(other)


def test_eopatch_reader() -> None:
    e = read_eopatch_s2(EOPATCH)
    assert e.scenes.shape == (5, 13, 101, 100) and e.bands[8] == "B8A" and e.bands[10] == "B10"
    assert e.clear is not None and e.clear.shape == (68, 101, 100) and e.clear.dtype == bool
    raw = np.load(EOPATCH / "CLM.npy")[..., 0]
    np.testing.assert_array_equal(e.clear, raw == 0)  # CLM cloud = 1 -> valid False
    assert str(e.crs) == "EPSG:32633" and e.transform.a == pytest.approx(9.995, abs=0.01)
    assert e.select(["B04"]).shape == (5, 1, 101, 100)
    with pytest.raises(DataError, match="B13"):
        e.select(["B13"])
