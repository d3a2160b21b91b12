"""Exact metric aggregation over tiles, windowed simulation, and bounded memory of `eosr sr`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from skimage.metrics import peak_signal_noise_ratio

from eosr.metrics.standard import ergas, mae, psnr, rmse, sam
from eosr.scene.aggregate import PixelStats, blocks, windowed_pixel_stats
from eosr.scene.simulate import simulate_file
from test_scene_sr import BANDS, write_tif
from test_scene_tiling import read_20m


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Real S2 20 m bands as 'HR' and a perturbed copy as 'SR', with nodata holes."""
    hr = read_20m(BANDS)[:, :333, :251].astype(np.float64)
    rng = np.random.default_rng(0)
    sr = hr * 1.02 + 0.003 * rng.standard_normal(hr.shape)
    sr[1, 50:90, 10:30] = np.nan
    hr[:, 200:210, :] = np.nan
    return sr, hr


def test_known_answer() -> None:
    hr = np.full((2, 10, 20), 0.2)
    st = PixelStats(2).update(hr + 0.01, hr)
    assert st.rmse()[0] == pytest.approx(0.01) and st.mae()[0] == pytest.approx(0.01)
    assert st.psnr(1.0)[0] == pytest.approx(40.0) and st.psnr(2.0)[0] == pytest.approx(40 + 20 * np.log10(2))
    assert st.ergas(2)[0] == pytest.approx(100 / 2 * 0.01 / 0.2)
    assert PixelStats(2).update(hr, hr).psnr()[0] == 120.0 and PixelStats(2).update(hr, hr).sam_deg() == 0


@pytest.mark.parametrize("block", [37, 100, 1000])
def test_tiles_equal_whole_image(pair: tuple[np.ndarray, np.ndarray], block: int) -> None:
    sr, hr = pair
    st = PixelStats(3)
    for y0, y1, x0, x1 in blocks(333, 251, block):
        st.update(sr[:, y0:y1, x0:x1], hr[:, y0:y1, x0:x1])
    res = st.results(data_range=1.0, scale=2)
    for name, fn, kw in (("psnr", psnr, {}), ("rmse", rmse, {}), ("mae", mae, {}), ("ergas", ergas, {"scale": 2}),
                         ("sam_deg", sam, {})):
        ref = fn(sr, hr, **kw)
        assert res[name].value == pytest.approx(float(ref.value), rel=1e-9), name
        np.testing.assert_allclose(res[name].per_band, ref.per_band, rtol=1e-9)
    ok = np.isfinite(sr).all(0) & np.isfinite(hr).all(0)
    sk = peak_signal_noise_ratio(hr[:, ok], sr[:, ok], data_range=1.0)  # independent reference (complete pixels)
    assert PixelStats(3).update(np.where(ok, sr, np.nan), hr).psnr()[0] == pytest.approx(sk, rel=1e-9)
    assert json.dumps(res["psnr"].to_dict(), allow_nan=False)


def test_merge_equals_single_pass(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    a = PixelStats(3).update(sr[:, :100], hr[:, :100]).merge(PixelStats(3).update(sr[:, 100:], hr[:, 100:]))
    b = PixelStats(3).update(sr, hr)
    np.testing.assert_allclose(a.sse, b.sse, rtol=1e-12)
    assert (a.n == b.n).all() and a.sam_n == b.sam_n


def test_windowed_pixel_stats_on_files(pair: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    sr, hr = pair
    t = from_origin(0, 0, 10, 10)
    for name, a in (("sr.tif", sr), ("hr.tif", hr)):
        write_tif(tmp_path / name, a.astype(np.float32), dtype="float32", nodata=float("nan"), transform=t)
    st = windowed_pixel_stats(tmp_path / "sr.tif", tmp_path / "hr.tif", block=64)
    assert st.psnr()[0] == pytest.approx(float(psnr(sr.astype(np.float32), hr.astype(np.float32)).value), rel=1e-6)


def test_simulate_windowed_equals_whole_image(tmp_path: Path) -> None:
    hr = np.rint(read_20m(BANDS)[:, :300, :222] * 1e4).astype(np.uint16)
    hr[:, 10:40, 100:130] = 0  # nodata hole
    src = write_tif(tmp_path / "hr.tif", hr)
    kw = dict(sensor="sentinel2", bands="B05,B8A,B11", scale=2)
    whole = simulate_file(src, tmp_path / "whole.tif", **kw)
    win = simulate_file(src, tmp_path / "win.tif", block=40, **kw)
    with rasterio.open(whole) as a, rasterio.open(win) as b:
        assert (a.transform, a.crs, a.descriptions, a.dtypes, a.nodata) == (b.transform, b.crs, b.descriptions,
                                                                              b.dtypes, b.nodata)
        assert "eosr_windowed" in b.tags() and (b.height, b.width) == (150, 111)
        da, db = a.read().astype(int), b.read().astype(int)
    assert np.abs(da - db).max() <= 1 and (da == 0).sum() == (db == 0).sum() > 0
    assert np.mean(da != db) < 1e-3  # only rare rounding ties differ
    # float input: equal to float error
    f = write_tif(tmp_path / "hrf.tif", hr.astype(np.float32) * 1e-4, dtype="float32", nodata=0)
    a = simulate_file(f, tmp_path / "wf.tif", **kw)
    b = simulate_file(f, tmp_path / "bf.tif", block=33, **kw)
    with rasterio.open(a) as x, rasterio.open(b) as y:
        np.testing.assert_allclose(x.read(), y.read(), atol=1e-6)


RSS_SCRIPT = """
import resource, sys, numpy as np, rasterio, torch
from rasterio.transform import from_origin
import eosr.scene.sr as S
from eosr.models.base import ModelSpec
S.GDAL_CACHE_BYTES = 16 * 2**20
n, path = int(sys.argv[1]), sys.argv[2]
class Up(torch.nn.Module):
    spec = ModelSpec(name="up", scale=2, receptive_field=2)
    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
with rasterio.open(path + ".in.tif", "w", driver="GTiff", width=n, height=n, count=2, dtype="uint16",
                   crs="EPSG:32631", transform=from_origin(0, 0, 20, 20), tiled=True) as ds:
    for y in range(0, n, 256):
        h = min(256, n - y)
        ds.write((np.random.default_rng(y).random((2, h, n)) * 3000).astype("uint16"),
                 window=rasterio.windows.Window(0, y, n, h))
    ds.scales = [1e-4, 1e-4]
S.super_resolve(path + ".in.tif", path + ".out.tif", Up(), tile=256, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak_rss(n: int, tmp: Path) -> int:
    p = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(n), str(tmp / f"s{n}")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[-1])


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_scene_size(tmp_path: Path) -> None:
    small, big = _peak_rss(256, tmp_path), _peak_rss(2048, tmp_path)
    whole_image_bytes = 2 * 4096 * 4096 * 4  # the float32 SR of the big scene held in memory at once
    assert big - small < 0.35 * whole_image_bytes, (small, big)


def test_simulate_windowed_scale_must_divide(tmp_path: Path) -> None:
    from eosr.errors import ScaleError

    src = write_tif(tmp_path / "hr.tif", np.full((3, 31, 40), 500, np.uint16))
    with pytest.raises(ScaleError, match="not divisible"):
        simulate_file(src, tmp_path / "lr.tif", bands="B05,B8A,B11", scale=2, block=16)
    out = simulate_file(src, tmp_path / "lr.tif", bands="B05,B8A,B11", scale=2, block=16, crop=True)
    with rasterio.open(out) as ds:
        assert (ds.height, ds.width) == (15, 20) and (ds.read() == 500).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "lr.tif"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_tiles_equal_numpy_tiles(pair: tuple[np.ndarray, np.ndarray], dtype, monkeypatch) -> None:
    """Tiles through the fused engine's pointwise pass give the NumPy path's sums (holes, zero vectors)."""
    from eosr.evaluation import engine

    if not engine.AVAILABLE:
        pytest.skip("numba not installed")
    sr, hr = (x.astype(dtype) for x in pair)
    sr[:, 0, :5] = 0.0  # one-sided zero vectors (90 degrees)
    fast = PixelStats(3)
    for y0, y1, x0, x1 in blocks(333, 251, 100):
        fast.update(sr[:, y0:y1, x0:x1], hr[:, y0:y1, x0:x1])
    monkeypatch.setattr(engine, "AVAILABLE", False)
    ref = PixelStats(3)
    for y0, y1, x0, x1 in blocks(333, 251, 100):
        ref.update(sr[:, y0:y1, x0:x1], hr[:, y0:y1, x0:x1])
    assert (fast.n == ref.n).all() and fast.sam_n == ref.sam_n
    for k in ("sse", "sae", "sum_hr"):
        np.testing.assert_allclose(getattr(fast, k), getattr(ref, k), rtol=1e-9, err_msg=k)
    assert fast.sam_sum_deg == pytest.approx(ref.sam_sum_deg, rel=1e-9)
