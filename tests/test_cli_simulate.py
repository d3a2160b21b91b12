"""`eosr simulate` and `eosr sensors`: georeference kept, one-line errors, no partial files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import call_cli as call
from eosr.degrade import Degradation


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eosr.cli.main", *args], capture_output=True, text=True)


def write_real_s2(path: Path, hr: np.ndarray, dtype: str = "uint16", describe: bool = True) -> None:
    prof = dict(driver="GTiff", width=hr.shape[2], height=hr.shape[1], count=hr.shape[0], dtype=dtype,
                crs="EPSG:32633", transform=from_origin(600000.0, 5100000.0, 10.0, 10.0))
    with rasterio.open(path, "w", **prof) as ds:
        ds.write((np.round(hr * 1e4)).astype(dtype) if dtype == "uint16" else hr.astype(dtype))
        if describe:  # Sentinel-2 band names: DN x 1e-4 by the product convention
            for i, b in enumerate(["B02", "B03", "B04", "B08"]):
                ds.set_band_description(i + 1, b)
        elif dtype == "uint16":  # no names: the scale must be in the metadata (or given as --dn-scale)
            ds.scales = [1e-4] * hr.shape[0]


def test_simulate_keeps_origin_crs_and_integer_scale(tmp_path, s2_10m, capsys):
    hr_p, lr_p = tmp_path / "hr.tif", tmp_path / "lr.tif"
    write_real_s2(hr_p, s2_10m)
    code = call(["simulate", str(hr_p), str(lr_p), "--sensor", "sentinel2", "--bands", "B02,B03,B04,B08",
                 "--scale", "2"])
    assert code == 0
    with rasterio.open(lr_p) as ds, rasterio.open(hr_p) as src:
        assert (ds.width, ds.height, ds.count) == (60, 60, 4)
        assert ds.crs == src.crs
        assert ds.transform.c == src.transform.c and ds.transform.f == src.transform.f
        assert ds.transform.a == pytest.approx(2 * src.transform.a)
        assert ds.dtypes[0] == "uint16"  # integer in, same integer type out
        assert list(ds.descriptions) == ["B02", "B03", "B04", "B08"]
        assert json.loads(ds.tags()["eosr_operator"])["scale"] == 2
        lr = ds.read().astype(np.float64) / 1e4
    expect = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2)(np.round(s2_10m * 1e4) / 1e4)
    assert np.abs(lr - expect).max() <= 0.5e-4 + 1e-9  # one DN of rounding


def test_simulate_float_input_odd_scale_and_crop(tmp_path, s2_10m):
    hr_p, lr_p = tmp_path / "hr.tif", tmp_path / "lr.tif"
    write_real_s2(hr_p, s2_10m[:, :119, :118], dtype="float32", describe=False)
    assert call(["simulate", str(hr_p), str(lr_p), "--bands", "B2,B3,B4,B8", "--scale", "3"]) == 2
    assert not lr_p.exists()
    assert call(["simulate", str(hr_p), str(lr_p), "--bands", "B2,B3,B4,B8", "--scale", "3", "--crop",
                 "--noise", "0.001", "--seed", "4"]) == 0
    with rasterio.open(lr_p) as ds:
        assert (ds.width, ds.height) == (39, 39) and ds.dtypes[0] == "float32"
        assert ds.transform.a == pytest.approx(30.0)


def test_simulate_frames_writes_a_set(tmp_path, s2_10m):
    hr_p, out = tmp_path / "hr.tif", tmp_path / "set"
    write_real_s2(hr_p, s2_10m)
    assert call(["simulate", str(hr_p), str(out), "--bands", "B02,B03,B04,B08", "--frames", "3", "--seed", "1"]) == 0
    meta = json.loads((out / "frames.json").read_text())
    assert len(meta["shifts_hr_px_dy_dx"]) == 3 and meta["scale"] == 2
    assert len(list(out.glob("frame_*.tif"))) == 3


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--scale", "2.5"], "integer"),
        (["--scale", "0"], "integer"),
        (["--sensor", "nosuch"], "unknown sensor"),
        (["--bands", "B02,B03,B04,B99"], "unknown band"),
        (["--mtf", "1.3"], "(0, 1)"),
        (["--bands", "B02,B03"], "bands"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, s2_10m, extra, message):
    hr_p, lr_p = tmp_path / "hr.tif", tmp_path / "lr.tif"
    write_real_s2(hr_p, s2_10m, describe=False)
    args = ["simulate", str(hr_p), str(lr_p), "--bands", "B02,B03,B04,B08", *extra]
    p = run(args)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not lr_p.exists() and not list(tmp_path.glob(".lr.tif*"))


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    for path in (bad, tmp_path / "missing.tif"):
        p = run(["simulate", str(path), str(tmp_path / "o.tif"), "--bands", "B02"])
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


def test_sensors_command():
    p = run(["sensors", "sentinel2"])
    assert p.returncode == 0 and "B8A" in p.stdout and "0.233" in p.stdout
    p = run(["sensors"])
    assert p.returncode == 0 and "venus" in p.stdout and "landsat8" in p.stdout
    p = run(["sensors", "nosuch"])
    assert p.returncode == 2 and "unknown sensor" in p.stderr


def test_calibrate_command_recovers_the_simulation(tmp_path, s2_10m):
    hr_p, lr_p, js = tmp_path / "hr.tif", tmp_path / "lr.tif", tmp_path / "fit.json"
    write_real_s2(hr_p, s2_10m, dtype="float32")
    assert call(["simulate", str(hr_p), str(lr_p), "--bands", "B02,B03,B04,B08", "--mtf", "0.3"]) == 0
    assert call(["calibrate", str(hr_p), str(lr_p), "--json", str(js)]) == 0
    fit = json.loads(js.read_text())
    assert fit["scale"] == 2
    assert [round(b["mtf"], 2) for b in fit["bands"]] == [0.3] * 4
