"""Bad benchmark configs give one-line errors before any work starts (no output folder, no cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BEN
from eosr.benchmark.config import load_config, parse_config
from eosr.benchmark.runner import run_benchmark
from eosr.cli.main import main
from eosr.errors import ConfigError

GOOD = f"""
name = "t"
[[datasets]]
name = "ben"
kind = "wald"
path = "{BEN}"
limit = 1
[[methods]]
name = "bicubic"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bench.toml"
    p.write_text(text)
    return p


def _fails(tmp_path: Path, text: str, *needles: str) -> str:
    """Run the config; assert a one-line ConfigError containing ``needles`` and that nothing was written."""
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as ei:
        run_benchmark(_write(tmp_path, text), out, progress=False)
    msg = str(ei.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    assert not out.exists(), "work started before the config was validated"
    return msg


def test_good_config_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.methods[0].model == "bicubic"
    assert cfg.datasets[0].path == BEN
    rel = parse_config({"methods": [{"name": "x", "folder": "sr"}], "datasets": [{"name": "d", "path": "data"}]},
                       base_dir=tmp_path)
    assert rel.methods[0].folder == (tmp_path / "sr").resolve()
    assert rel.datasets[0].path == (tmp_path / "data").resolve()


def test_typo_in_a_key_suggests_the_right_one(tmp_path: Path) -> None:
    _fails(tmp_path, GOOD.replace('name = "bicubic"', 'name = "bicubic"\nmodle = "bicubic"'),
           "methods[0].modle", "did you mean 'model'")
    _fails(tmp_path, GOOD.replace("limit = 1", "limits = 1"), "did you mean 'limit'")


def test_unknown_model(tmp_path: Path) -> None:
    _fails(tmp_path, GOOD.replace('name = "bicubic"', 'name = "bicubc"'), "unknown model 'bicubc'",
           "did you mean 'bicubic'")


def test_missing_dataset_path(tmp_path: Path) -> None:
    _fails(tmp_path, GOOD.replace(str(BEN), str(tmp_path / "nowhere")), "path not found", "nowhere")


def test_missing_sr_folder(tmp_path: Path) -> None:
    _fails(tmp_path, GOOD + '[[methods]]\nname = "theirs"\nfolder = "no_such_folder"\n', "SR folder not found")


def test_metric_that_needs_hr_without_hr(tmp_path: Path) -> None:
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    (lr_dir / "a.tif").write_bytes(b"")  # listed, never read: the check happens before any work
    text = f'metrics = ["psnr", "lr_fidelity"]\n[[datasets]]\nname = "real"\nkind = "lr"\npath = "{lr_dir}"\n' \
           '[[methods]]\nname = "bicubic"\n'
    _fails(tmp_path, text, "'psnr' needs an HR reference", "'real'")


def test_unknown_metric_sensor_band_and_kind(tmp_path: Path) -> None:
    _fails(tmp_path, 'metrics = ["psnrr"]\n' + GOOD, "unknown metric 'psnrr'", "did you mean 'psnr'")
    _fails(tmp_path, GOOD.replace('kind = "wald"', 'kind = "wald"\nsensor = "sentinel3"'), "unknown sensor")
    _fails(tmp_path, GOOD.replace('kind = "wald"', 'kind = "wald"\nbands = ["B02", "B99"]'), "unknown band")
    _fails(tmp_path, GOOD.replace('kind = "wald"', 'kind = "walt"'), "datasets[0].kind")


def test_structural_errors(tmp_path: Path) -> None:
    _fails(tmp_path, "name = 'x'\n", "missing required key 'methods'")
    _fails(tmp_path, GOOD + '[[methods]]\nname = "bicubic"\n', "duplicate method name")
    _fails(tmp_path, GOOD.replace("limit = 1", "scale = 0"), "datasets[0].scale")
    _fails(tmp_path, "name = \n", "invalid TOML")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path, GOOD.replace('name = "bicubic"', 'name = "nope"'))
    with pytest.raises(SystemExit) as ei:
        main(["benchmark", str(p), "--out", str(tmp_path / "o"), "--no-progress"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown model 'nope'" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_corrupt_checkpoint_is_refused_before_the_output_folder(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A method naming a user's checkpoint whose weights file is truncated: one line, exit 2, and the output
    folder is never made (docs/benchmark.md: methods are loaded before the output is touched)."""
    import shutil

    from eosr.models.registry import shipped_weights

    stem = shipped_weights()["carn_m_s2_x2"]
    for suffix in (".safetensors", ".json"):
        shutil.copy(str(stem) + suffix, tmp_path / f"mine{suffix}")
    data = (tmp_path / "mine.safetensors").read_bytes()
    (tmp_path / "mine.safetensors").write_bytes(data[: len(data) // 2])
    p = _write(tmp_path, GOOD + f'[[methods]]\nname = "{tmp_path / "mine.safetensors"}"\n')
    with pytest.raises(SystemExit) as ei:
        main(["benchmark", str(p), "--out", str(tmp_path / "o"), "--no-progress"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "o").exists()


def test_cli_check_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["benchmark", str(_write(tmp_path, GOOD)), "--check"])
    assert ei.value.code == 0
    assert "valid (1 methods, 1 datasets)" in capsys.readouterr().out


def test_cache_key_follows_the_checkpoint_weights(tmp_path, monkeypatch) -> None:
    """A retrained shipped checkpoint under the same name gets a new cache key (stale SR outputs are never
    reused); registry architectures keep a stable key."""
    import torch

    import eosr.models.registry as registry
    from eosr.benchmark.config import MethodConfig
    from eosr.benchmark.methods import load_method
    from eosr.models import get_model
    from eosr.models.checkpoint import save_checkpoint

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    torch.manual_seed(0)
    save_checkpoint(get_model("carn_m", scale=2, n_bands=4), tmp_path / "mynet")
    k1 = load_method(MethodConfig(name="mynet")).key
    assert load_method(MethodConfig(name="mynet")).key == k1
    torch.manual_seed(1)
    save_checkpoint(get_model("carn_m", scale=2, n_bands=4), tmp_path / "mynet")
    assert load_method(MethodConfig(name="mynet")).key != k1
    assert load_method(MethodConfig(name="bicubic")).key == load_method(MethodConfig(name="bicubic")).key


def test_operator_file_and_dn_scale_keys(tmp_path: Path) -> None:
    """``operator`` takes a sensor file (relative to the config); ``dn_scale``/``dn_offset`` reach the reader."""
    from eosr.benchmark.datasets import operator_for
    from eosr.degrade import Degradation
    from eosr.sensors import get_sensor

    s2 = get_sensor("sentinel2")
    (tmp_path / "s.toml").write_text(f'name = "mys2"\n[[bands]]\nname = "B02"\ngsd_m = 10\nmtf_nyquist = 0.25\n'
                                     f'center_nm = {s2.band("B02").center_nm}\n')
    cfg = parse_config({"methods": [{"name": "bicubic"}],
                        "datasets": [{"name": "d", "path": str(BEN), "bands": ["B02"], "operator": "s.toml",
                                      "dn_scale": 1e-4}]}, base_dir=tmp_path)
    d = cfg.datasets[0]
    assert d.operator == str(tmp_path / "s.toml") and d.dn_scale == 1e-4
    want = Degradation.from_mtf(0.25, 2)
    assert operator_for(d).sigmas == pytest.approx(want.sigmas)
    with pytest.raises(ConfigError, match="operator"):
        parse_config({"methods": [{"name": "bicubic"}],
                      "datasets": [{"name": "d", "path": str(BEN), "operator": "sharp"}]}, base_dir=tmp_path)
