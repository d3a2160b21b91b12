"""Issue 15, benchmark part: a config is data (no code runs from it unless the user says --allow-code, and
--check never imports anything), the output folder is never silently overwritten, the result set is replaced
as a whole, and a hostile cache heals itself."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import BEN, call_cli, read_s2_10m
from eosr.benchmark.runner import run_benchmark
from eosr.errors import ConfigError, DataError

PATCH = "S2A_MSIL2A_20170613T101031_87_48"

REAL = f"""
name = "h"
metrics = ["psnr"]
bootstrap = 100
report = false
[[datasets]]
name = "ben"
kind = "wald"
path = "{BEN}"
limit = 1
[[methods]]
name = "bicubic"
"""


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


def _write(folder: Path, text: str, name: str = "bench.toml") -> Path:
    p = folder / name
    p.write_text(textwrap.dedent(text))
    return p


def _module(folder: Path, name: str, body: str, marker: Path | None = None) -> None:
    """A Python module in ``folder``; with ``marker`` it writes that file when imported."""
    head = f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n" if marker else ""
    (folder / f"{name}.py").write_text(head + textwrap.dedent(body))


# a harmless reader and method, real data: the first BigEarthNet patch saved as .npy by the test
HARMLESS = """
import numpy as np
import torch

def read(path):
    yield "p0", np.load(path)

def make(scale, bands, **kw):
    return lambda t: torch.nn.functional.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
"""


def _code_config(tmp: Path, reader: str, model: str = "bicubic", options: str = "") -> Path:
    return _write(tmp, f"""
        name = "code"
        metrics = ["psnr"]
        bootstrap = 100
        report = false
        [[datasets]]
        name = "r"
        kind = "reader"
        reader = "{reader}"
        options = {{{options}}}
        bands = ["B02", "B03", "B04", "B08"]
        [[methods]]
        name = "m"
        model = "{model}"
        """)


# 1. configs cannot run code ------------------------------------------------------------------------------

@pytest.mark.parametrize("check", [True, False])
def test_os_system_reader_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], check: bool) -> None:
    marker = tmp_path / "MARKER"
    cfg = _code_config(tmp_path, "os:system", options=f'command = "touch {marker}"')
    out = tmp_path / "out"
    code = call_cli(["benchmark", str(cfg), "--out", str(out), "--no-progress", *(["--check"] if check else [])])
    assert code == 2
    _one_line_error(capsys.readouterr().err, "os:system", "--allow-code")
    assert not marker.exists() and not out.exists()


def test_dotted_path_method_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, REAL.replace('name = "bicubic"', 'name = "m"\nmodel = "os:system"'))
    for extra in (["--check"], []):
        assert call_cli(["benchmark", str(cfg), "--out", str(tmp_path / "o"), "--no-progress", *extra]) == 2
        _one_line_error(capsys.readouterr().err, "'os:system'", "--allow-code")
    with pytest.raises(ConfigError, match="--allow-code"):
        run_benchmark(cfg, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_check_with_allow_code_imports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``--check --allow-code`` validates the names only: modules that write a marker at import stay unimported."""
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "h15_evil_reader", HARMLESS, tmp_path / "READER_IMPORTED")
    _module(tmp_path, "h15_evil_method", HARMLESS, tmp_path / "METHOD_IMPORTED")
    cfg = _code_config(tmp_path, "h15_evil_reader:read", "h15_evil_method:make", 'path = "x.npy"')
    assert call_cli(["benchmark", str(cfg), "--check", "--allow-code"]) == 0
    assert "valid (1 methods, 1 datasets)" in capsys.readouterr().out
    assert not (tmp_path / "READER_IMPORTED").exists() and not (tmp_path / "METHOD_IMPORTED").exists()
    assert "h15_evil_reader" not in sys.modules and "h15_evil_method" not in sys.modules
    # a malformed dotted path is caught by --check, still without importing
    bad = _code_config(tmp_path, "h15_evil_reader:read()", "h15_evil_method:make")
    assert call_cli(["benchmark", str(bad), "--check", "--allow-code"]) == 2
    _one_line_error(capsys.readouterr().err, "not a dotted path")


def test_allow_code_runs_a_harmless_reader_and_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "h15_harmless", HARMLESS)
    hr = read_s2_10m(BEN / PATCH).astype(np.float32)
    np.save(tmp_path / "p0.npy", hr)
    cfg = _code_config(tmp_path, "h15_harmless:read", "h15_harmless:make", f'path = "{tmp_path / "p0.npy"}"')
    with pytest.raises(ConfigError, match="--allow-code"):
        run_benchmark(cfg, tmp_path / "o", progress=False)
    assert "h15_harmless" not in sys.modules
    res = run_benchmark(cfg, tmp_path / "o", progress=False, allow_code=True)
    psnr = next(r for r in res.results["summary"] if r["method"] == "m" and r["metric"] == "psnr")
    base = next(r for r in res.results["summary"] if r["method"] == "bicubic" and r["metric"] == "psnr")
    assert 25 < psnr["mean"] < 60 and psnr["mean"] == pytest.approx(base["mean"], abs=0.5)  # bicubic both ways
    assert res.results["methods"][1]["kind"] == "code"
    assert call_cli(["benchmark", str(cfg), "--out", str(tmp_path / "o"), "--no-progress", "--allow-code"]) == 0
    assert "from the cache" in capsys.readouterr().out


def test_entry_points_are_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package's entry points (groups eosr.readers / eosr.methods) need no flag; checking imports
    nothing, running loads them."""
    from eosr.benchmark.plugins import reader_names

    dist = tmp_path / "h15_toy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: h15-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[eosr.readers]\ntoy = h15_toy:read\n\n"
                                           "[eosr.methods]\ntoy_up = h15_toy:make\n")
    _module(tmp_path, "h15_toy", HARMLESS, tmp_path / "TOY_IMPORTED")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy" in reader_names() and "paired_geotiff" in reader_names()
    np.save(tmp_path / "p0.npy", read_s2_10m(BEN / PATCH).astype(np.float32))
    cfg = _code_config(tmp_path, "toy", "toy_up", f'path = "{tmp_path / "p0.npy"}"')
    assert call_cli(["benchmark", str(cfg), "--check"]) == 0
    assert not (tmp_path / "TOY_IMPORTED").exists()
    res = run_benchmark(cfg, tmp_path / "o", progress=False)
    assert (tmp_path / "TOY_IMPORTED").exists()
    assert res.results["methods"][1] | {"key": ""} == {"name": "m", "key": "", "kind": "entry_point", "model": "toy_up",
                                                       "inference": "single pass"}


def test_unknown_reader_names_the_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _code_config(tmp_path, "paired_geotif")
    assert call_cli(["benchmark", str(cfg), "--check"]) == 2
    _one_line_error(capsys.readouterr().err, "unknown reader 'paired_geotif'", "did you mean 'paired_geotiff'",
                    "eosr.readers")


def test_eosr_reader_paired_geotiff(tmp_path: Path) -> None:
    """eosr's own reader by name: real HR patch and its 2x2-mean LR as a GeoTIFF pair."""
    import rasterio
    from rasterio.transform import Affine

    hr = read_s2_10m(BEN / PATCH).astype(np.float32)
    lr = hr.reshape(4, 60, 2, 60, 2).mean(axis=(2, 4))
    with rasterio.open(next((BEN / PATCH).glob("*_B02.tif"))) as src:
        crs, t = src.crs, src.transform
    for sub, a, tr in (("hr", hr, t), ("lr", lr, t * Affine.scale(2))):
        (tmp_path / sub).mkdir()
        with rasterio.open(tmp_path / sub / "p0.tif", "w", driver="GTiff", width=a.shape[2], height=a.shape[1],
                           count=4, dtype="float32", crs=crs, transform=tr) as ds:
            ds.write(a)
    cfg = _code_config(tmp_path, "paired_geotiff",
                       options=f'lr_dir = "{tmp_path / "lr"}", hr_dir = "{tmp_path / "hr"}", scale = 2')
    res = run_benchmark(cfg, tmp_path / "o", progress=False)
    assert res.results["datasets"][0]["images"] == ["p0"]
    psnr = next(r for r in res.results["summary"] if r["method"] == "m" and r["metric"] == "psnr")
    assert 25 < psnr["mean"] < 60


# 2. no silent overwrite ----------------------------------------------------------------------------------

def _populated(folder: Path) -> dict[str, str]:
    folder.mkdir()
    files = {"config.toml": "my config\n", "results.json": '{"mine": 1}\n', "report.html": "<p>mine</p>",
             "notes.txt": "keep me"}
    for k, v in files.items():
        (folder / k).write_text(v)
    return files


def test_populated_foreign_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    files = _populated(out)
    cfg = _write(tmp_path, REAL)
    assert call_cli(["benchmark", str(cfg), "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys.readouterr().err, str(out), "--overwrite")
    assert {p.name: p.read_text() for p in out.iterdir()} == files  # untouched, no marker, no cache
    with pytest.raises(DataError, match="--overwrite"):
        run_benchmark(cfg, out, progress=False)
    assert call_cli(["benchmark", str(cfg), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert (out / "config.toml").read_text() == cfg.read_text()
    assert json.loads((out / "results.json").read_text())["name"] == "h"
    assert not (out / "report.html").exists()  # the result set is replaced as a whole (report = false)
    assert (out / "notes.txt").read_text() == "keep me"  # not a result file: kept
    # now it is eosr's folder: a re-run needs no flag and is served from the cache
    capsys.readouterr()
    assert call_cli(["benchmark", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert "0 computed, 1 from the cache" in capsys.readouterr().out


def test_demo_refuses_a_populated_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    files = _populated(out)
    assert call_cli(["demo", "--out", str(out), "--no-progress", "--limit", "1"]) == 2
    _one_line_error(capsys.readouterr().err, "--overwrite")
    assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_empty_and_earlier_eosr_folders_are_accepted(tmp_path: Path) -> None:
    cfg = _write(tmp_path, REAL)
    (tmp_path / "empty").mkdir()
    run_benchmark(cfg, tmp_path / "empty", progress=False)
    old = tmp_path / "old"  # written by an eosr without the marker: recognised by its results.json
    run_benchmark(cfg, old, progress=False)
    (old / ".eosr-benchmark").unlink()
    res = run_benchmark(cfg, old, progress=False)
    assert res.counts["scores_cached"] == 1 and (old / ".eosr-benchmark").is_file()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        run_benchmark(cfg, tmp_path / "afile", progress=False)


# 3. atomic result set ------------------------------------------------------------------------------------

def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if ".eosr-" in p.name)


def test_interrupted_run_keeps_the_previous_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interruption while the new set is written leaves the previous complete set (and the cache)."""
    import eosr.benchmark.runner as runner

    cfg = _write(tmp_path, REAL.replace("report = false", "report = true"))
    out = tmp_path / "out"
    run_benchmark(cfg, out, progress=False)
    before = _snapshot(out)
    assert "report.html" in before and "results.json" in before
    _write(tmp_path, REAL.replace("report = false", "report = true").replace('["psnr"]', '["psnr", "ssim"]'))

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("eosr.benchmark.report.write_report", boom)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cfg, out, progress=False)
    assert _snapshot(out) == before  # nothing of the half-written new set
    assert _leftovers(tmp_path) == []
    assert (out / "cache" / "sr").is_dir() and (out / "cache" / "scores").is_dir()
    monkeypatch.undo()

    # killed (no clean-up at all) between the two renames of the swap: the next run recovers
    real_replace = runner.commit.__globals__["os"].replace

    def killed_after_first_rename(src: object, dst: object) -> None:
        real_replace(src, dst)
        if Path(str(src)) == out:
            raise SystemExit(137)

    monkeypatch.setattr(runner, "recover", lambda out: None)  # as after SIGKILL: no finally ran
    monkeypatch.setattr(runner.commit.__globals__["os"], "replace", killed_after_first_rename)
    with pytest.raises(SystemExit):
        run_benchmark(cfg, out, progress=False)
    monkeypatch.undo()
    assert not out.exists() and _leftovers(tmp_path) == [".out.eosr-new", ".out.eosr-old"]
    res = run_benchmark(cfg, out, progress=False, report=False)
    assert _leftovers(tmp_path) == []
    assert res.counts["scores_cached"] == 1 and res.counts["sr_computed"] == 0  # the cache survived
    assert not (out / "report.html").exists()  # this run's set, as a whole
    assert {p.name for p in out.iterdir()} >= {"results.json", "config.toml", "summary.csv", "cache", ".eosr-benchmark"}


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    from eosr.benchmark.outdir import claim, release

    cfg = _write(tmp_path, REAL)
    out = tmp_path / "out"
    lock = claim(out)
    try:
        with pytest.raises(DataError, match="another eosr benchmark run"):
            run_benchmark(cfg, out, progress=False)
    finally:
        release(lock)
    run_benchmark(cfg, out, progress=False)


# 4. hostile cache ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [
    '{"schema_version": "1.0", "scores": [1, 2]}',
    '{"schema_version": "1.0", "scores": {"psnr": {"per_band": []}}}',
    '{"schema_version": "1.0", "scores": {"psnr": "high"}}',
    '{"schema_version": "1.0", "scores": {"psnr": {"value": "30"}}}',
    '{"schema_version": "1.0", "scores": {"psnr": {"value": 30.0, "per_band": 3}}}',
    '{"schema_version": ["1"], "scores": {}}',
    '[1, 2, 3]',
    '"scores"',
    '{"schema_version": "1.0", "sco',
])
def test_hand_edited_score_json_heals(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: str) -> None:
    cfg = _write(tmp_path, REAL)
    out = tmp_path / "out"
    first = run_benchmark(cfg, out, progress=False)
    (victim,) = (out / "cache" / "scores").rglob("*.json")
    victim.write_text(doc)
    capsys.readouterr()
    again = run_benchmark(cfg, out, progress=False)
    err = capsys.readouterr().err
    assert err.count("warning: invalid cache entry") == 1 and str(victim) in err and "Traceback" not in err
    assert again.counts["cache_invalid"] == 1 and again.counts["scores_computed"] == 1
    assert again.results["per_image"] == first.results["per_image"]
    assert json.loads(victim.read_text())["scores"]["psnr"]["value"] == first.results["per_image"][0]["value"]
    third = run_benchmark(cfg, out, progress=False)  # healed, not stuck
    assert third.counts["cache_invalid"] == 0 and third.counts["scores_cached"] == 1


@pytest.mark.parametrize("bad", ["wrong_shape", "2d", "text", "truncated"])
def test_bad_cached_sr_array_is_recomputed(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    cfg = _write(tmp_path, REAL)
    out = tmp_path / "out"
    first = run_benchmark(cfg, out, progress=False)
    (sr_file,) = (out / "cache" / "sr").rglob("*.npy")
    good = np.load(sr_file)
    for f in (out / "cache" / "scores").rglob("*.json"):
        f.unlink()  # so the SR output is read again
    if bad == "wrong_shape":
        np.save(sr_file, good[:, :, :-1])
    elif bad == "2d":
        np.save(sr_file, good[0])
    elif bad == "text":
        np.save(sr_file, np.array(["a", "b"]))
    else:
        sr_file.write_bytes(sr_file.read_bytes()[:100])
    capsys.readouterr()
    again = run_benchmark(cfg, out, progress=False)
    err = capsys.readouterr().err
    assert err.count("warning: invalid cache entry") == 1 and "Traceback" not in err
    assert again.counts["sr_computed"] == 1 and again.counts["cache_invalid"] == 1
    assert again.results["per_image"] == first.results["per_image"]
    np.testing.assert_array_equal(np.load(sr_file), good)  # overwritten with the right array
