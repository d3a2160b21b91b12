"""eosr.scene.super_resolve and `eosr sr`: georeference, dtype, nodata, COG, bad input, Ctrl-C, Dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from conftest import BEN
from eosr.errors import ConfigError, DataError, GeoError, ModelError, ScaleError
from eosr.models.base import ModelSpec
from eosr.scene.infer import predict_array
from eosr.scene.sr import super_resolve, uncertainty_path
from test_scene_tiling import S2_20M, Bicubic, TinyCNN, read_20m

BANDS = ("B05", "B8A", "B11")


def write_tif(path: Path, dn: np.ndarray, *, dtype: str = "uint16", nodata: float | None = 0,
              names: tuple[str, ...] | None = BANDS, transform: object = None) -> Path:
    c, h, w = dn.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype=dtype, nodata=nodata,
                       crs="EPSG:32618", transform=transform or from_origin(435720.0, 4179460.0, 20, 20)) as ds:
        ds.write(dn.astype(dtype))
        for i, n in enumerate(names or ()):
            ds.set_band_description(i + 1, n)
    return path


@pytest.fixture(scope="module")
def s2_tif(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A real 20 m crop (odd, non-square) as uint16 DN with nodata 0 and a nodata corner."""
    x = read_20m(BANDS)[:, :203, :151]
    dn = np.rint(x * 1e4).astype(np.uint16)
    dn[:, :30, :25] = 0
    return write_tif(tmp_path_factory.mktemp("sr") / "lr.tif", dn), dn


def no_leftovers(folder: Path, *keep: str) -> None:
    assert sorted(p.name for p in folder.iterdir() if p.name not in keep) == []


def test_uint16_roundtrip_georeference_nodata_tags(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, dn = s2_tif
    model = TinyCNN(3)
    out = super_resolve(src, tmp_path / "sr.tif", model, tile=64, progress=False)
    x = dn.astype(np.float32) * 1e-4
    x[dn == 0] = np.nan
    ref = predict_array(model, x)
    with rasterio.open(out) as ds, rasterio.open(src) as s:
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0 and ds.count == 3
        assert (ds.width, ds.height) == (302, 406) and ds.crs == s.crs
        assert ds.transform.c == s.transform.c and ds.transform.f == s.transform.f
        assert ds.transform.a == 10.0 and ds.transform.e == -10.0
        assert ds.descriptions == BANDS and ds.compression is not None
        tags = ds.tags()
        assert tags["eosr_model"] == "test-cnn" and tags["eosr_model_version"] == "0" and "eosr_version" in tags
        assert tags["eosr_tiling_exact"] == "True"
        assert ds.scales == (1e-4,) * 3
        got = ds.read()
    valid = np.isfinite(ref)
    assert ((got == 0) == ~valid).all()  # nodata exactly where the support touches input nodata
    expect = np.clip(np.rint(ref[valid] * 1e4), 0, 65535)
    assert np.abs(got[valid].astype(np.int64) - expect).max() <= 1  # same integer scale
    no_leftovers(tmp_path, "sr.tif")


def test_float32_and_cog(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, dn = s2_tif
    out = super_resolve(src, tmp_path / "sr.tif", Bicubic(), tile=50, cog=True, output_dtype="float32",
                        progress=False)
    x = dn.astype(np.float32) * 1e-4
    x[dn == 0] = np.nan
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata) and ds.descriptions == BANDS
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.tags()["eosr_model"] == "test-bicubic"
        np.testing.assert_allclose(ds.read(), predict_array(Bicubic(), x), atol=1e-6, equal_nan=True)
    no_leftovers(tmp_path, "sr.tif")


def test_s2_folder_windowed_and_mixed_resolutions(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match="different grids"):
        super_resolve(S2_20M, tmp_path / "x.tif", Bicubic(), progress=False)
    out = super_resolve(S2_20M, tmp_path / "sr.tif", Bicubic(), bands=["B1", "B9"], tile=128, progress=False)
    with rasterio.open(out) as ds, rasterio.open(S2_20M / "s2_B01.tif") as s:
        assert ds.descriptions == ("B01", "B09") and (ds.height, ds.width) == (2 * s.height, 2 * s.width)
        assert ds.transform.a == s.transform.a / 2 and ds.transform.c == s.transform.c
        a = ds.read(2, window=((100, 300), (100, 300)))
    with rasterio.open(S2_20M / "s2_B09.tif") as s:
        x = s.read(1).astype(np.float32)[None] * 1e-4
    ref = predict_array(Bicubic(), x)[0, 100:300, 100:300]
    assert np.abs(a.astype(np.float64) - np.clip(np.rint(ref * 1e4), 0, None)).max() <= 1


def test_model_bands_and_scale_checked(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, _ = s2_tif
    m = Bicubic()
    m.spec = ModelSpec(name="rgbn", scale=2, bands=("B02", "B03", "B04"), receptive_field=2)
    with pytest.raises(ModelError, match="trained for bands B02,B03,B04, not B05,B8A,B11"):
        super_resolve(src, tmp_path / "sr.tif", m, progress=False)
    m.spec = ModelSpec(name="ok", scale=2, bands=("b5", "B8a", "B11"), receptive_field=2)
    super_resolve(src, tmp_path / "ok.tif", m, tile=300, progress=False)
    with pytest.raises(ScaleError, match="x2, not the requested x3"):
        super_resolve(src, tmp_path / "sr.tif", Bicubic(), scale=3, progress=False)
    with pytest.raises(ScaleError):
        super_resolve(src, tmp_path / "sr.tif", Bicubic(), scale="1.5", progress=False)
    with pytest.raises(ModelError, match="no uncertainty"):
        super_resolve(src, tmp_path / "sr.tif", Bicubic(), uncertainty=True, progress=False)
    no_leftovers(tmp_path, "ok.tif")


def test_bad_inputs_one_line_errors_no_partial_files(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, dn = s2_tif
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="not found"):
        super_resolve(tmp_path / "missing.tif", out / "a.tif", Bicubic(), progress=False)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(DataError, match="cannot read"):
        super_resolve(junk, out / "a.tif", Bicubic(), progress=False)
    trunc = tmp_path / "trunc.tif"
    with rasterio.open(tmp_path / "big.tif", "w", driver="GTiff", width=151, height=203, count=3, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(0, 0, 20, 20)) as ds:
        ds.write(dn)
        ds.scales = [1e-4] * 3
    data = (tmp_path / "big.tif").read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read"):
        super_resolve(trunc, out / "a.tif", Bicubic(), tile=32, progress=False)
    cplx = write_tif(tmp_path / "c.tif", dn[:1].astype(np.complex64), dtype="complex64", nodata=None, names=None)
    with pytest.raises(DataError, match="unsupported data type complex64"):
        super_resolve(cplx, out / "a.tif", Bicubic(), progress=False)
    with pytest.raises(DataError, match="does not exist"):
        super_resolve(src, tmp_path / "nofolder" / "a.tif", Bicubic(), progress=False)
    with pytest.raises(DataError, match="not writable"):  # sysfs refuses new files, even to root
        super_resolve(src, Path("/sys/eosr_sr_test.tif"), Bicubic(), progress=False)
    with pytest.raises(ConfigError):
        super_resolve(src, out / "a.tif", Bicubic(), tile=0, progress=False)
    no_leftovers(out)


class Interrupting(Bicubic):
    """Raises KeyboardInterrupt on its third tile, like a Ctrl-C in the middle of a scene."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return super().forward(x)


def test_ctrl_c_leaves_no_partial_output(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, _ = s2_tif
    with pytest.raises(KeyboardInterrupt):
        super_resolve(src, tmp_path / "sr.tif", Interrupting(), tile=32, progress=False)
    no_leftovers(tmp_path)


class WithStd(Bicubic):
    def forward_with_uncertainty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self(x)
        return y, 0.01 * y.abs()


def test_uncertainty_sidecar(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, _ = s2_tif
    out = super_resolve(src, tmp_path / "sr.tif", WithStd(), tile=64, uncertainty=True, progress=False)
    side = uncertainty_path(out)
    assert side.name == "sr.uncertainty.tif"
    with rasterio.open(out) as a, rasterio.open(side) as b:
        assert a.transform == b.transform and a.crs == b.crs and b.dtypes[0] == "float32"
        assert b.descriptions == tuple(n + "_std" for n in BANDS) and b.tags()["eosr_layer"] == "std"
        sr, std = a.read().astype(np.float64) * 1e-4, b.read()
        ok = np.isfinite(std)
        assert ((a.read_masks(1) > 0) == ok[0]).all()
    np.testing.assert_allclose(std[ok], 0.01 * np.abs(sr[ok]), atol=2e-6)
    no_leftovers(tmp_path, "sr.tif", "sr.uncertainty.tif")


def test_evaluate_pairs_the_std_written_with_the_sr_and_a_rewrite_drops_it(s2_tif: tuple[Path, np.ndarray],
                                                                           tmp_path: Path) -> None:
    """``evaluate_files`` reads SR.uncertainty.tif when it was written with the SR (and says so), not another
    run's std under that name; SR rewritten without uncertainty takes the stale std away."""
    import os

    from eosr.scene.evaluate import evaluate_files

    src, _ = s2_tif
    out = super_resolve(src, tmp_path / "sr.tif", WithStd(), tile=64, uncertainty=True, progress=False)
    side = uncertainty_path(out)
    res = evaluate_files(out, out, metrics="uncertainty")  # (the SR as its own HR: pairing is what is tested)
    assert res.info["uncertainty"] == {"path": str(side), "source": "sidecar"}
    assert "uncertainty_coverage_90" in res.metrics
    assert "uncertainty" not in evaluate_files(out, out, metrics="psnr").info  # not wanted: not read
    other = super_resolve(src, tmp_path / "other.tif", WithStd(), tile=32, uncertainty=True, progress=False)
    os.replace(uncertainty_path(other), side)  # another run's std (its tiling differs) under the SR's name
    res = evaluate_files(out, out, metrics="uncertainty")
    assert "uncertainty" not in res.info and "uncertainty_coverage_90" not in res.metrics
    assert "not the std written with this SR" in res.info["skipped"]["uncertainty"]
    super_resolve(src, out, WithStd(), tile=64, progress=False)  # a run without uncertainty into the same OUT
    assert not side.exists()
    no_leftovers(tmp_path, "sr.tif", "other.tif")


def test_cli_sr_and_one_line_errors(s2_tif: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture
                                    ) -> None:
    from eosr.cli.main import main

    src, _ = s2_tif
    with pytest.raises(SystemExit) as e:
        main(["sr", str(src), str(tmp_path / "sr.tif"), "--model", "bicubic", "--scale", "2", "--float32",
              "--no-progress", "--tile", "100"])
    assert e.value.code == 0
    with rasterio.open(tmp_path / "sr.tif") as ds:
        assert ds.dtypes[0] == "float32" and ds.tags()["eosr_model"] == "bicubic" and ds.width == 302
    with pytest.raises(SystemExit) as e:
        main(["sr", str(tmp_path / "nope.tif"), str(tmp_path / "x.tif"), "--model", "bicubic"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: input not found") and "\n" not in err


def test_dask_cluster_identical_to_single_process(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """2 workers on loopback (threads: processes=False keeps the test fast; `--workers` uses processes)."""
    from distributed import LocalCluster

    src, _ = s2_tif
    model = TinyCNN(3)
    a = super_resolve(src, tmp_path / "a.tif", model, tile=48, progress=False, output_dtype="float32")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        b = super_resolve(src, tmp_path / "b.tif", model, tile=48, progress=False, output_dtype="float32",
                          scheduler=cluster.scheduler_address)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())
        assert da.transform == db.transform


# ------------------------------------------------------- Sentinel-2 multi-resolution model on a band folder
BEN_PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"


@pytest.mark.parametrize("scale", [1, 2])
def test_s2_multires_on_a_mixed_resolution_folder(tmp_path: Path, scale: int) -> None:
    """10 m + 20 m band files in, 20 m bands at 10 m (x1) or every band at 5 m (x2) out; tiled == whole."""
    from eosr.models import get_model
    from eosr.scene.source import open_multires

    torch.manual_seed(0)
    model = get_model("s2_multires", scale=scale, features=8, blocks=1).eval()
    out = super_resolve(BEN_PATCH, tmp_path / "sr.tif", model, tile=24, output_dtype="float32", progress=False)
    want = model.spec.extra["output_bands"]
    with rasterio.open(out) as ds, rasterio.open(next(BEN_PATCH.glob("*_B02.tif"))) as b02:
        assert list(ds.descriptions) == want and ds.count == len(want)
        assert (ds.height, ds.width) == (120 * scale, 120 * scale)
        assert ds.crs == b02.crs and ds.transform.a == pytest.approx(b02.transform.a / scale)
        assert (ds.transform.c, ds.transform.f) == (b02.transform.c, b02.transform.f)
        got = ds.read()
    src = open_multires(BEN_PATCH, model.spec.extra["bands_10m"], model.spec.extra["bands_20m"])
    x10 = src.s10.read((0, 120, 0, 120))
    x20 = src.s20.read((0, 60, 0, 60))
    src.close()
    with torch.no_grad():
        ref = model(torch.from_numpy(x10)[None], torch.from_numpy(x20)[None])[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_s2_multires_needs_a_band_folder_on_matching_grids(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from eosr.models import get_model

    with pytest.raises(DataError, match="folder of band files"):
        super_resolve(s2_tif[0], tmp_path / "x.tif", "s2_multires", progress=False, allow_untrained=True)
    with pytest.raises(ScaleError, match="x1"):
        super_resolve(BEN_PATCH, tmp_path / "x.tif", get_model("s2_multires", scale=1), scale=2, progress=False)
    assert not (tmp_path / "x.tif").exists()


def test_self_ensemble_override(s2_tif: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """--self-ensemble switches a CARN's dihedral ensemble on for a scene (seamless, tiled = 8-pass
    whole image); a model without the option refuses it with a one-line error, leaving no file."""
    from eosr.models import get_model
    from eosr.models.base import dihedral_ensemble

    src, dn = s2_tif
    torch.manual_seed(0)
    m = get_model("carn_m", scale=2, bands=["B05", "B8A", "B11"], global_skip=True).eval()
    super_resolve(src, tmp_path / "se.tif", m, tile=64, output_dtype="float32", progress=False, self_ensemble=True)
    assert m.self_ensemble
    with rasterio.open(tmp_path / "se.tif") as ds:
        got = ds.read()
    x = torch.from_numpy(dn[:, 40:150, 40:150].astype(np.float32) / 1e4)[None]
    m.self_ensemble = False
    with torch.no_grad():
        ref = dihedral_ensemble(m, x)[0].numpy()
        plain = m(x)[0].numpy()
    # interior of the 110 x 110 LR crop, farther than the receptive field from its edges (HR px)
    rf = m.spec.receptive_field
    sl = slice(2 * rf, 2 * (110 - rf))
    assert sl.stop - sl.start > 100
    win = got[:, 80:300, 80:300][:, sl, sl]
    assert np.allclose(win, ref[:, sl, sl], atol=1e-5)
    assert not np.allclose(win, plain[:, sl, sl], atol=1e-5)
    # by default one pass, even for a model whose card switched the ensemble on (issue 16: whole tiles)
    m.self_ensemble = True
    super_resolve(src, tmp_path / "one.tif", m, tile=64, output_dtype="float32", progress=False)
    assert not m.self_ensemble
    with rasterio.open(tmp_path / "one.tif") as ds:
        assert np.allclose(ds.read()[:, 80:300, 80:300][:, sl, sl], plain[:, sl, sl], atol=1e-5)
    with pytest.raises(ModelError, match="no self-ensemble option"):
        super_resolve(src, tmp_path / "b.tif", Bicubic(), progress=False, self_ensemble=True)
    no_leftovers(tmp_path, "se.tif", "one.tif")
