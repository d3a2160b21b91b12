"""One model resolver (eosr.models.resolve_model) behind sr, benchmark, explain, export and `eosr models`;
learned architectures without trained weights are refused unless --allow-untrained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import BEN, ben_wald_dataset, call_cli, read_s2_10m
from eosr.errors import ConfigError, ModelError
from eosr.models import resolve_model, shipped_weights, weights_status
from eosr.models.registry import checkpoint_stem

SHIPPED = "carn_m_s2_x2"
BANDS = ["B02", "B03", "B04", "B08"]
PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"


def copy_shipped(folder: Path, stem: str = "net") -> Path:
    """The shipped checkpoint copied as ``folder/<stem>.{safetensors,json}``; returns the stem path."""
    folder.mkdir(parents=True, exist_ok=True)
    src = shipped_weights()[SHIPPED]
    for suffix in (".safetensors", ".json"):
        shutil.copy(src.with_suffix(suffix), folder / f"{stem}{suffix}")
    return folder / stem


def one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_shipped(tmp_path_factory.mktemp("ck"))


@pytest.fixture(scope="module")
def lr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 40x40 crop of Sentinel-2 B02 B03 B04 B08 (uint16 DN, named bands)."""
    x = np.rint(read_s2_10m(PATCH)[:, 30:70, 40:80] * 1e4).astype(np.uint16)
    with rasterio.open(next(PATCH.glob("*_B02.tif"))) as src:
        crs, transform = src.crs, src.transform
    p = tmp_path_factory.mktemp("lr") / "lr.tif"
    with rasterio.open(p, "w", driver="GTiff", width=40, height=40, count=4, dtype="uint16", crs=crs,
                       transform=transform) as ds:
        ds.write(x)
        for i, b in enumerate(BANDS):
            ds.set_band_description(i + 1, b)
    return p


# ---------------------------------------------------------------- reference forms


def test_every_reference_form_resolves(ck: Path) -> None:
    import torch

    ref = resolve_model(SHIPPED)
    assert weights_status(ref) == "trained" and ref.spec.bands == tuple(BANDS)
    x = torch.rand(1, 4, 10, 10) * 0.3
    ref.self_ensemble = False  # type: ignore[assignment]
    want = ref.eval()(x)
    for form in (ck.with_suffix(".safetensors"), ck.with_suffix(".json"), ck, str(ck), ck.parent):
        m = resolve_model(form, scale=2, bands=BANDS)
        assert weights_status(m) == "trained", form
        m.self_ensemble = False  # type: ignore[assignment]
        torch.testing.assert_close(m.eval()(x), want)  # the same weights, whatever the form
    assert weights_status(resolve_model("bicubic")) == "none needed"
    assert weights_status(resolve_model("carn_m", n_bands=2, allow_untrained=True)) == "untrained"
    with pytest.raises(ModelError, match="x2 model, but x4 was requested"):
        resolve_model(ck, scale=4)
    with pytest.raises(ModelError, match="cannot be changed"):
        resolve_model(ck, channels=8)


def test_untrained_architectures_are_refused_by_name_only() -> None:
    for name in ("s2_multires", "carn_m", "rcan_ca", "highresnet", "CARN"):
        with pytest.raises(ModelError, match=f"{name} is an untrained architecture.*--allow-untrained"):
            resolve_model(name)
    for name in ("nearest", "bilinear", "bicubic", "lanczos", "backprojection", "mi_median"):
        assert weights_status(resolve_model(name)) == "none needed", name  # no weights needed: usable


def test_folders(tmp_path: Path) -> None:
    one = copy_shipped(tmp_path / "one", "mine")
    assert checkpoint_stem(one.parent) == one
    two = tmp_path / "two"
    copy_shipped(two, "a"), copy_shipped(two, "b")
    with pytest.raises(ModelError, match=r"holds 2 checkpoints \(a, b\)"):
        resolve_model(two)
    run = tmp_path / "run"  # an `eosr train` output folder: best.* and the final <name>.* (same weights)
    copy_shipped(run, "best"), copy_shipped(run, "tiny")
    (run / "split_manifest.json").write_text(json.dumps({"schema_version": "1", "splits": {}}))
    (run / "history.json").write_text("{}")
    (run / ".tiny.json.eosr-1-x.tmp").write_text("{}")  # a temporary of a writer: ignored
    assert checkpoint_stem(run) == run / "tiny"
    assert weights_status(resolve_model(run)) == "trained"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no checkpoint in folder"):
        resolve_model(tmp_path / "empty")


def test_missing_path_is_one_line_naming_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as e:
        resolve_model(tmp_path / "nope")
    msg = str(e.value)
    assert "\n" not in msg and f"{tmp_path / 'nope'}.safetensors" in msg and f"{tmp_path / 'nope'}.json" in msg
    assert f"a folder {tmp_path / 'nope'}" in msg
    with pytest.raises(ModelError, match="looked for .*x.safetensors"):
        resolve_model(tmp_path / "x.json")


# ---------------------------------------------------------------- eosr sr


def test_sr_refuses_an_untrained_architecture_unless_allowed(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.tif"
    assert call_cli(["sr", str(PATCH), str(out), "--model", "s2_multires", "--no-progress"]) == 2
    assert "--allow-untrained" in one_line(capsys.readouterr().err) and not out.exists()
    assert call_cli(["sr", str(PATCH), str(out), "--model", "s2_multires", "--no-progress",
                     "--allow-untrained"]) == 0
    with rasterio.open(out) as ds:
        assert ds.count == 6 and ds.width == 120  # the 20 m bands on the 10 m grid
    from eosr.models import get_model, save_checkpoint

    (tmp_path / "mr").mkdir()  # a checkpoint of the same architecture needs no flag, and is packed the same way
    save_checkpoint(get_model("s2_multires", scale=1, features=8, blocks=1), tmp_path / "mr" / "net")
    assert call_cli(["sr", str(PATCH), str(tmp_path / "ck.tif"), "--model", str(tmp_path / "mr"), "--no-progress"]) == 0
    with rasterio.open(tmp_path / "ck.tif") as ds:
        assert ds.count == 6 and ds.width == 120


def test_sr_takes_a_checkpoint_path_or_folder(ck: Path, lr10: Path, tmp_path: Path) -> None:
    outs = {}
    for tag, ref in (("shipped", SHIPPED), ("file", str(ck.with_suffix(".safetensors"))), ("folder", str(ck.parent))):
        outs[tag] = tmp_path / f"{tag}.tif"
        assert call_cli(["sr", str(lr10), str(outs[tag]), "--model", ref, "--no-progress"]) == 0, tag
    with rasterio.open(outs["shipped"]) as a:
        want = a.read()
        assert a.width == 80
    for tag in ("file", "folder"):
        with rasterio.open(outs[tag]) as b:
            np.testing.assert_array_equal(b.read(), want)


# ---------------------------------------------------------------- benchmark


def bench_config(folder: Path, model: str) -> Path:
    p = folder / "b.toml"
    p.write_text(f"""
name = "r"
metrics = ["psnr"]
bootstrap = 100
{ben_wald_dataset(1)}[[methods]]
name = "net"
model = "{model}"
""")
    return p


def test_benchmark_method_with_a_checkpoint_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.benchmark.runner import run_benchmark

    copy_shipped(tmp_path / "ck", "mine")
    cfg = bench_config(tmp_path, "ck/mine.safetensors")  # relative to the config file, not the working dir
    assert call_cli(["benchmark", str(cfg), "--check"]) == 0
    res = run_benchmark(cfg, tmp_path / "out", progress=False)
    row = next(r for r in res.results["summary"] if r["method"] == "net" and r["metric"] == "psnr")  # type: ignore[attr-defined]
    base = next(r for r in res.results["summary"] if r["method"] == "bicubic" and r["metric"] == "psnr")  # type: ignore[attr-defined]
    assert row["mean"] > base["mean"]  # trained weights, not random ones
    bench_config(tmp_path, "ck/missing.safetensors")
    capsys.readouterr()
    assert call_cli(["benchmark", str(cfg), "--check"]) == 2
    assert f"{tmp_path / 'ck' / 'missing'}.json" in one_line(capsys.readouterr().err)


def test_benchmark_refuses_an_untrained_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.benchmark.runner import run_benchmark

    cfg = bench_config(tmp_path, "carn_m")
    assert call_cli(["benchmark", str(cfg), "--check"]) == 2
    assert "carn_m is an untrained architecture" in one_line(capsys.readouterr().err)
    with pytest.raises(ConfigError, match="--allow-untrained"):
        run_benchmark(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert call_cli(["benchmark", str(cfg), "--check", "--allow-untrained"]) == 0


# ---------------------------------------------------------------- explain, export, models


def test_explain(lr10: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "carn_m", "--out", str(tmp_path / "x"), "--stimuli", "edge", "--size", "8", "--max-lr", "16",
            "--ig-steps", "1", "--erf-samples", "1", "--no-figures"]
    assert call_cli([*args, "--image", str(lr10)]) == 2
    assert "--allow-untrained" in one_line(capsys.readouterr().err) and not (tmp_path / "x").exists()
    assert call_cli(["explain", "rcan-ca", "--image", str(lr10), "--out", str(tmp_path / "x")]) == 2  # an alias
    assert "rcan_ca is an untrained architecture" in one_line(capsys.readouterr().err)
    assert call_cli(args) == 0  # stimuli analysis of an architecture: allowed, and reported
    assert "untrained" in capsys.readouterr().err
    doc = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert doc["model"]["weights"] == "untrained" and "untrained" in doc["warning"]


def test_export_of_an_untrained_architecture_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert call_cli(["export", "carn_m", str(out), "--n-bands", "1", "--height", "8", "--width", "8"]) == 0
    err = capsys.readouterr().err
    assert out.exists() and err.count("warning:") == 1 and "random weights" in err


def test_models_marks_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli(["models", "--json"]) == 0
    rows = {r["name"]: r["weights"] for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows[SHIPPED] == "trained" and rows["s2_multires"] == "untrained" and rows["carn_m"] == "untrained"
    assert rows["bicubic"] == rows["backprojection"] == rows["mi_median"] == "none needed"
    assert call_cli(["models"]) == 0
    table = capsys.readouterr().out
    assert "trained weights" in table and "untrained (--allow-untrained)" in table and "no weights needed" in table


def test_benchmark_checkpoint_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    from eosr.benchmark.config import check_config, parse_config

    copy_shipped(tmp_path / "runs" / "tiny", "tiny")
    copy_shipped(tmp_path, "mine")
    methods = [{"name": "a", "model": "runs/tiny"}, {"name": "b", "model": "mine.json"}, {"name": "mine"},
               {"name": "c", "model": "bicubic"}]
    cfg = parse_config({"datasets": [{"name": "d", "path": str(BEN), "bands": BANDS}], "methods": methods}, tmp_path)
    t = tmp_path.resolve()
    want = [str(t / "runs" / "tiny"), str(t / "mine.json"), str(t / "mine"), "bicubic"]
    assert [m.model for m in cfg.methods] == want
    check_config(cfg)  # paths are data: no --allow-code, no --allow-untrained


def test_sidecar_json_is_not_a_shipped_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A <name>.calibration.json beside <name>.safetensors (what ConformalCalibration.save writes) is not
    listed as shipped weights named '<name>.calibration'."""
    import eosr.models.registry as R

    (tmp_path / "m.safetensors").write_bytes(b"x")
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "m.calibration.json").write_text("{}")
    monkeypatch.setattr(R, "WEIGHTS_DIR", tmp_path)
    assert R.shipped_weights() == {"m": tmp_path / "m"}
