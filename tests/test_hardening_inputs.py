"""Issue 15 (inputs): resource guards before any pixel is read or written, numeric option validation,
and graceful edge cases (rotated grids, tiny images, float16). Real data (BigEarthNet Sentinel-2) where
the numbers matter; the hostile files are built here with rasterio."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.transform import from_origin

from conftest import BEN, call_cli
from eosr.errors import ConfigError, GeoError, ResourceError, ShapeError

PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"
B04 = next(PATCH.glob("*_B04.tif"))  # real Sentinel-2 L2A band, 120 x 120 uint16


def write_header_bomb(path: Path, n: int = 100_000) -> Path:
    """A GeoTIFF declaring n x n uint16 pixels with no pixel data written (sparse tiles: a small file)."""
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint16", tiled=True,
                       blockxsize=2048, blockysize=2048, sparse_ok=True, BIGTIFF="YES", nodata=0,
                       crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10)) as ds:
        ds.set_band_description(1, "B04")
    return path


@pytest.fixture()
def no_pixel_io(monkeypatch):
    """Fail any pixel read or write through rasterio; yields the list of attempted calls."""
    calls: list[str] = []

    def refuse(name):
        def f(self, *a, **k):
            calls.append(name)
            raise AssertionError(f"pixel {name} attempted")
        return f

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", refuse("read"))
    monkeypatch.setattr(rasterio.io.DatasetWriter, "read", refuse("read"))
    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", refuse("write"))
    return calls


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*")}


# --- 1. header bombs ---------------------------------------------------------------------------------

BOMB_COMMANDS = {
    "simulate": lambda b, d: ["simulate", str(b), str(d / "lr.tif")],
    "simulate_frames": lambda b, d: ["simulate", str(b), str(d / "frames"), "--frames", "4"],
    "evaluate": lambda b, d: ["evaluate", "--sr", str(b), "--hr", str(b), "--json", str(d / "m.json")],
    "sr": lambda b, d: ["sr", str(b), str(d / "sr.tif"), "--model", "bicubic", "--no-progress"],
    "calibrate": lambda b, d: ["calibrate", str(b), str(b), "--json", str(d / "c.json")],
}


@pytest.mark.parametrize("cmd", sorted(BOMB_COMMANDS))
def test_header_bomb_refused_before_any_pixel(cmd, tmp_path, no_pixel_io, capsys):
    bomb = write_header_bomb(tmp_path / "bomb.tif")
    assert bomb.stat().st_size < 200_000  # a small file declaring 10^10 pixels
    before = files_in(tmp_path)
    assert call_cli(BOMB_COMMANDS[cmd](bomb, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "100000x100000" in line and "2^31" in line and "--no-size-check" in line
    assert no_pixel_io == []  # nothing read, nothing written
    assert files_in(tmp_path) == before  # no output, stage or temporary file


def test_declared_size_limit_in_the_readers(tmp_path, no_pixel_io):
    from eosr.io import read_raster
    from eosr.io.raster import size_checks
    from eosr.scene.source import open_source

    bomb = write_header_bomb(tmp_path / "bomb.tif")
    for fn in (read_raster, open_source):
        with pytest.raises(ResourceError, match="2\\^31"):
            fn(bomb)
    with size_checks(False):  # the override: the header is accepted (windows can still be read)
        src = open_source(bomb)
        assert (src.height, src.width) == (100_000, 100_000)
    assert no_pixel_io == []


def test_disk_budget_refuses_sr_and_simulate(tmp_path, monkeypatch, capsys):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))  # 1000 bytes free
    for args in (["sr", str(B04), str(tmp_path / "sr.tif"), "--model", "bicubic", "--no-progress"],
                 ["simulate", str(B04), str(tmp_path / "lr.tif"), "--bands", "B04"]):
        assert call_cli(args) == 2
        line = one_error_line(capsys)
        assert "of disk in" in line and "1000 B free" in line and "--no-size-check" in line
        assert files_in(tmp_path) == set()
    # the override runs the real work (the patched free space is only what the guard sees)
    assert call_cli(["simulate", str(B04), str(tmp_path / "lr.tif"), "--bands", "B04", "--no-size-check"]) == 0
    with rasterio.open(tmp_path / "lr.tif") as ds:
        assert (ds.width, ds.height) == (60, 60)


def test_sr_disk_estimate_scales_with_r_squared(tmp_path, monkeypatch):
    """sr at x4 on a 120 px uint16 band: 480^2 x 2 bytes, stage + final = 921600 bytes."""
    from eosr.scene.source import check_sr_budget

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=921_600))
    check_sr_budget(B04, tmp_path / "sr.tif", scale=4)  # fits exactly
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=921_599))
    with pytest.raises(ResourceError, match="900.0 KiB"):
        check_sr_budget(B04, tmp_path / "sr.tif", scale=4)


def test_memory_budget_refuses_evaluate_and_calibrate(tmp_path, monkeypatch, no_pixel_io, capsys):
    import eosr.io.raster as R

    monkeypatch.setattr(R, "available_memory", lambda: 1_000_000)
    b03 = next(PATCH.glob("*_B03.tif"))
    assert call_cli(["evaluate", "--sr", str(B04), "--hr", str(b03)]) == 2
    assert "of memory" in one_error_line(capsys)
    assert call_cli(["calibrate", str(B04), str(b03), "--scale", "1"]) == 2
    assert "of memory" in one_error_line(capsys)
    assert no_pixel_io == []


def test_large_whole_read_checks_memory(tmp_path, monkeypatch, no_pixel_io):
    """read_raster of a 20000^2 float32 header (1.5 GiB to hold) is refused when the memory is not there."""
    import eosr.io.raster as R

    p = tmp_path / "big.tif"
    with rasterio.open(p, "w", driver="GTiff", width=20000, height=20000, count=1, dtype="float32", tiled=True,
                       sparse_ok=True, blockxsize=1024, blockysize=1024, crs="EPSG:32633",
                       transform=from_origin(0, 20000, 1, 1)):
        pass
    monkeypatch.setattr(R, "available_memory", lambda: 2**30)
    with pytest.raises(ResourceError, match="3.0 GiB of memory, 1.0 GiB available"):
        R.read_raster(p)
    assert no_pixel_io == []


# --- 2. numeric options ------------------------------------------------------------------------------

NAN, INF = "nan", "inf"
DN = {"--dn-scale": [NAN, INF, "-inf", "0"], "--dn-offset": [NAN, INF]}
OPTIONS = {
    "simulate": {"--scale": [NAN, INF, "0", "-1", "2.5", "100000"], "--noise": [NAN, INF, "-1", "1e9"],
                 "--snr": [NAN, INF, "0", "-1", "1e12"], "--snr-reference": [NAN, INF, "0", "1e9"],
                 "--bits": ["0", "-1", "100000"], "--quant-range": [NAN, INF, "0", "-1"],
                 "--gain": [NAN, INF, "0", "-1", "1e9"], "--offset": [NAN, INF, "-1e9", "1e9"],
                 "--frames": ["-1", "100000"], "--max-shift": [NAN, INF, "-1", "1e9"], "--seed": ["-1"], **DN},
    "sr": {"--scale": [NAN, INF, "0", "-1", "100000"], "--tile": ["0", "-1", "100000"],
           "--overlap": ["-1", "100000"], **DN},
    "evaluate": {"--scale": ["0", "-1", "100000"], "--data-range": [NAN, INF, "0", "-1"],
                 "--noise-sigma": [NAN, INF, "0", "-1", "1e9"], **DN},
    "calibrate": {"--scale": ["0", "-1", "100000"], "--n-boot": ["0", "-1", "1000000000"], **DN},
    "train": {"--epochs": ["0", "-1", "1000000000"]},
}


def _base(cmd: str, out: Path) -> list[str]:
    return {"simulate": ["simulate", str(B04), str(out / "lr.tif"), "--bands", "B04"],
            "sr": ["sr", str(B04), str(out / "sr.tif"), "--model", "bicubic", "--no-progress"],
            "evaluate": ["evaluate", "--sr", str(B04), "--hr", str(B04), "--json", str(out / "m.json")],
            "calibrate": ["calibrate", str(B04), str(B04), "--json", str(out / "c.json")],
            "train": ["train", str(Path(__file__).parents[1] / "configs" / "carn_m_s2_x2.toml"),
                      "--output", str(out / "run")]}[cmd]


@pytest.mark.parametrize(("cmd", "option", "value"),
                         [(c, o, v) for c, opts in OPTIONS.items() for o, vals in opts.items() for v in vals])
def test_bad_numeric_option_is_one_line_exit_2(cmd, option, value, tmp_path, no_pixel_io, capsys):
    code = call_cli([*_base(cmd, tmp_path), f"{option}={value}"])
    assert code == 2
    line = one_error_line(capsys)
    assert option in line or (option == "--scale" and "scale" in line), line
    assert no_pixel_io == [] and files_in(tmp_path) == set()


def test_validation_helper():
    from eosr._validate import check_number

    assert check_number("--x", 0.5, lo=0, hi=1) == 0.5
    assert check_number("--x", None, lo=0) is None
    for bad in (math.nan, math.inf, -math.inf, -0.1, 2, True, "a"):
        with pytest.raises(ConfigError, match="--x must be a finite number in \\[0, 1\\]"):
            check_number("--x", bad, lo=0, hi=1)
    with pytest.raises(ConfigError, match="an integer"):
        check_number("--n", 2.5, lo=0, integer=True)
    with pytest.raises(ConfigError, match="in \\(0, 1\\]"):
        check_number("--x", 0, lo=0, lo_open=True, hi=1)


def _cfg(**over):
    import tomllib

    doc = tomllib.loads((Path(__file__).parents[1] / "configs" / "carn_m_s2_x2.toml").read_text())
    for key, v in over.items():
        d = doc
        *path, last = key.split(".")
        for k in path:
            d = d[k]
        d[last] = v
    return doc


@pytest.mark.parametrize(("key", "value", "match"), [
    ("batch_size", 10**9, "batch_size"), ("patch", 10**6, "patch"), ("epochs", 10**9, "epochs"),
    ("threads", 10**6, "threads"), ("seed", -1, "seed"),
    ("model.options", {"channels": 100_000}, "channels"), ("model.options", {"n_feats": 0}, "n_feats"),
    ("model.options", {"blocks": 10**6}, "blocks"), ("model.options", {"step": math.nan}, "finite"),
    ("optimizer.lr", math.nan, "lr"), ("optimizer.lr", math.inf, "lr"), ("noise.sigma_max", math.inf, "sigma_max"),
    ("radiometric.gain", [1.0, math.inf], "gain"), ("losses", [{"name": "smooth_l1", "weight": math.nan}], "weight"),
    ("validation.noise_sigmas", [math.nan], "noise_sigmas"), ("validation.noise_sigmas", [5.0], "noise_sigmas"),
])
def test_train_config_values_are_finite_and_bounded(key, value, match):
    from eosr.train.config import parse_config

    with pytest.raises(ConfigError, match=match) as e:
        parse_config(_cfg(**{key: value}))
    assert "\n" not in str(e.value)


def test_train_memory_estimate():
    from eosr.train.config import parse_config, training_memory_bytes

    base = training_memory_bytes(parse_config(_cfg()))
    assert 50 * 2**20 < base < 2 * 2**30  # the shipped config: a few hundred MiB
    big = _cfg(batch_size=1024, patch=2048, **{"model.options": {"channels": 1024}})
    assert training_memory_bytes(parse_config(big)) > 2**40


def test_train_cli_refuses_a_config_too_big_for_memory(tmp_path, no_pixel_io, capsys):
    text = (Path(__file__).parents[1] / "configs" / "carn_m_s2_x2.toml").read_text()
    text = text.replace("batch_size = 16", "batch_size = 1024").replace("patch = 56", "patch = 2048")
    text = text.replace('output = "../out/train/carn_m_s2_x2"', 'output = "run"')
    cfg = tmp_path / "big.toml"
    cfg.write_text(text)
    assert call_cli(["train", str(cfg), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "training (batch 1024 of 2048 px) needs about" in line and "--no-size-check" in line
    assert not (tmp_path / "run").exists() and no_pixel_io == []


# --- 3. edge cases -----------------------------------------------------------------------------------

@pytest.mark.parametrize("transform", [Affine(0, 10, 500000, 10, 0, 6000000),  # rotated 90 degrees
                                       Affine(10, 2, 500000, 0, -10, 6000000)],  # sheared
                         ids=["rotated", "sheared"])
def test_rotated_or_sheared_grid_is_refused_in_every_reader(transform, tmp_path, capsys):
    from types import SimpleNamespace

    from eosr.io.raster import check_grids, read_raster
    from eosr.scene.source import open_source

    with rasterio.open(B04) as src:
        data, prof = src.read(), src.profile
    p = tmp_path / "rot_B04.tif"
    prof.update(transform=transform)
    with rasterio.open(p, "w", **prof) as ds:
        ds.write(data)
        ds.set_band_description(1, "B04")
    for fn in (read_raster, open_source):
        with pytest.raises(GeoError, match="rotated or sheared"):
            fn(p)
    folder = tmp_path / "bands"
    folder.mkdir()
    shutil.copy(p, folder / "x_B04.tif")
    with pytest.raises(GeoError, match="rotated or sheared"):
        open_source(folder)
    grid = SimpleNamespace(crs="EPSG:32633", transform=transform, height=120, width=120)
    north_up = SimpleNamespace(crs="EPSG:32633", transform=from_origin(500000, 6000000, 20, 20), height=60, width=60)
    with pytest.raises(GeoError, match="rotated or sheared"):  # was a ZeroDivisionError
        check_grids(grid, north_up)
    with pytest.raises(GeoError, match="rotated or sheared"):
        check_grids(north_up, grid)
    assert call_cli(["evaluate", "--sr", str(p), "--hr", str(p)]) == 2
    assert "rotated or sheared" in one_error_line(capsys)


def test_stratified_metrics_on_tiny_images(s2_10m):
    from eosr.metrics.stratified import stratified_metrics

    hr = s2_10m[:, :8, :8]
    sr = hr + 0.01
    with pytest.raises(ShapeError, match="at least 11x11 px"):  # was "negative dimension"
        stratified_metrics(sr, hr)
    res = stratified_metrics(sr, hr, skip_empty=True)
    assert "psnr_low_gradient" in res and not any(k.startswith("ssim") for k in res)
    pix = stratified_metrics(sr, hr, metrics=("psnr", "rmse", "mae"))
    assert pix["rmse_high_gradient"].value == pytest.approx(0.01, rel=1e-6)
    assert {"ssim_low_gradient", "ssim_high_gradient"} <= set(stratified_metrics(s2_10m[:, :24, :24] + 0.01,
                                                                                 s2_10m[:, :24, :24]))


@pytest.mark.parametrize("torch_in", [False, True], ids=["numpy", "torch"])
def test_lr_fidelity_accepts_float16(torch_in, s2_10m):
    from eosr.degrade import Degradation
    from eosr.metrics.fidelity import hr_fidelity, lr_fidelity

    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2)
    hr = s2_10m.astype(np.float32)
    lr = np.asarray(op.downsample(hr.astype(np.float64))).astype(np.float32)
    sr = hr + np.float32(0.003)

    def cast(a, dt):
        return torch.from_numpy(a.astype(dt)) if torch_in else a.astype(dt)

    ref = float(lr_fidelity(cast(sr, np.float32), cast(lr, np.float32), op).value)
    half = float(lr_fidelity(cast(sr, np.float16), cast(lr, np.float16), op).value)  # was "Unsupported dtype Half"
    assert half == pytest.approx(ref, abs=2e-4) and ref == pytest.approx(0.003, abs=1e-4)
    h16 = float(hr_fidelity(cast(sr, np.float16), cast(hr, np.float16), op).value)
    assert math.isfinite(h16)
    if torch_in:
        bf = float(lr_fidelity(torch.from_numpy(sr).bfloat16(), torch.from_numpy(lr).bfloat16(), op).value)
        assert bf == pytest.approx(ref, abs=2e-3)


def test_frc_refuses_tiny_images_and_returns_no_nan_otherwise(s2_10m):
    from eosr.metrics.frequency import fourier_ring_correlation

    hr = s2_10m
    sr = hr + 0.001 * np.random.default_rng(0).standard_normal(hr.shape)
    with pytest.raises(ShapeError, match="smaller than the 8 px"):  # was NaN rings
        fourier_ring_correlation(sr[:, :4, :4], hr[:, :4, :4])
    for n in (8, 9, 12, 120):
        freqs, frc, ct, frc_b, ct_b = fourier_ring_correlation(sr[:, :n, :n], hr[:, :n, :n])
        assert len(freqs) >= 4 and all(np.isfinite(a).all() for a in (frc, ct, frc_b, ct_b))
    with pytest.raises(ShapeError, match="n_bins <= 4"):
        fourier_ring_correlation(sr[:, :8, :8], hr[:, :8, :8], n_bins=16)


def test_evaluate_accepts_float16(s2_10m):
    import eosr

    hr = s2_10m.astype(np.float32)
    sr = hr + np.float32(0.002)
    ref = eosr.evaluate(sr, hr, sensor="sentinel2", bands=["B02", "B03", "B04", "B08"], scale=2)
    half = eosr.evaluate(torch.from_numpy(sr).half(), torch.from_numpy(hr).half(), sensor="sentinel2",
                         bands=["B02", "B03", "B04", "B08"], scale=2)
    for k in ("psnr", "rmse", "lr_fidelity", "ssim"):
        assert float(half.metrics[k].value) == pytest.approx(float(ref.metrics[k].value), rel=2e-2), k


@pytest.mark.parametrize("kind", ["nan", "nodata"])
def test_input_without_a_valid_pixel_gives_no_output(kind, tmp_path, capsys):
    """A raster that is all NaN (float) or all nodata (uint16, nodata 0) is refused by sr and simulate in one
    line (exit 2) and no file is written; the windowed simulation path refuses it too (DataError)."""
    from eosr.errors import DataError
    from eosr.scene.simulate import simulate_file

    dtype, fill, nodata = ("float32", np.nan, None) if kind == "nan" else ("uint16", 0, 0)
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=64, height=64, count=4, dtype=dtype, nodata=nodata,
                       crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10)) as ds:
        ds.write(np.full((4, 64, 64), fill, dtype=dtype))
        for i, b in enumerate(("B02", "B03", "B04", "B08")):
            ds.set_band_description(i + 1, b)
    extra = ["--dn-scale", "1e-4"] if kind == "nodata" else []
    assert call_cli(["sr", str(src), str(tmp_path / "sr.tif"), "--model", "carn_m_s2_x2", "--no-progress",
                     *extra]) == 2
    assert "no valid pixel" in one_error_line(capsys)
    assert call_cli(["simulate", str(src), str(tmp_path / "lr.tif"), "--sensor", "sentinel2", "--scale", "2",
                     *extra]) == 2
    assert "no valid pixel" in one_error_line(capsys)
    with pytest.raises(DataError, match="no valid pixel"):
        simulate_file(src, tmp_path / "lr2.tif", sensor="sentinel2", scale=2, block=16,
                      dn_scale=1e-4 if kind == "nodata" else None)
    assert files_in(tmp_path) == {"in.tif"}


def test_no_valid_pixel_is_written_as_nodata(tmp_path, capsys):
    """uint16 input with nodata 0: SR values that round or clip to 0 DN (dark water next to bright land, bicubic
    undershoot) are written as 1 DN, so the output's nodata pixels are exactly the NaN pixels of a float run."""
    from eosr.io.raster import to_dn

    assert to_dn(np.array([[[0.0, -0.2, np.nan, 0.5]]]), "uint16", 1e-4, 0.0, 0).tolist() == [[[1, 1, 0, 5000]]]
    assert to_dn(np.array([[[9.0, np.nan]]]), "uint16", 1e-4, 0.0, 65535).tolist() == [[[65534, 65535]]]
    a = np.full((1, 64, 64), 3, np.uint16)  # dark water (3 DN) ...
    a[:, :, 32:] = 6000  # ... next to bright land: bicubic undershoots below 0 on the dark side
    a[:, 40:50, 5:15] = 0  # a nodata hole
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10)) as ds:
        ds.write(a)
        ds.set_band_description(1, "B04")
    for name, extra in (("u.tif", []), ("f.tif", ["--float32"])):
        assert call_cli(["sr", str(src), str(tmp_path / name), "--model", "bicubic", "--scale", "2", "--no-progress",
                         "--dn-scale", "1e-4", *extra]) == 0
    capsys.readouterr()
    with rasterio.open(tmp_path / "u.tif") as u, rasterio.open(tmp_path / "f.tif") as f:
        dn, refl = u.read(1), f.read(1)
    assert np.nanmin(refl) < 0  # the undershoot is there
    np.testing.assert_array_equal(dn == 0, np.isnan(refl))


def test_a_single_band_file_is_named_by_its_file_name(tmp_path, capsys):
    """BigEarthNet's `..._B04.tif` (no band description): the output band is named B04, as in a band folder."""
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(B04), str(out), "--model", "nearest", "--scale", "2", "--no-progress"]) == 0
    capsys.readouterr()
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("B04",)
