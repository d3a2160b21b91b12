"""Renamed options and config keys: the old name still works with a one-line warning; both names: exit 2.

First rename: ``psf`` -> ``operator`` (``eosr demo --psf``, the benchmark dataset key ``psf``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from conftest import call_cli as call
from eosr._deprecation import EosrDeprecationWarning, renamed_keys, renamed_option
from eosr.benchmark.config import parse_config
from eosr.errors import ConfigError


@pytest.fixture
def demo_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``eosr demo`` with the run replaced by a recorder (the option handling is under test, not the demo)."""
    calls: list[dict[str, Any]] = []
    import eosr.benchmark.demo

    monkeypatch.setattr(eosr.benchmark.demo, "run_demo", lambda out, **kw: calls.append(kw))
    return calls


def test_helpers() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_option(("--new", None), ("--old", None), "d") == "d"
        assert renamed_option(("--new", "x"), ("--old", None), "d") == "x"
        assert renamed_keys({"new": 1}, {"old": "new"}) == {"new": 1}
        assert renamed_keys([1], {"old": "new"}) == [1]
    with pytest.warns(EosrDeprecationWarning, match="^--old is deprecated; use --new$"):
        assert renamed_option(("--new", None), ("--old", "y"), "d") == "y"
    with pytest.raises(ConfigError, match="^give --new or the deprecated --old, not both$"):
        renamed_option(("--new", "x"), ("--old", "y"), "d")
    src = {"old": 1, "keep": 2}
    with pytest.warns(EosrDeprecationWarning, match="^dataset 'a': key 'old' is deprecated; use 'new'$"):
        assert renamed_keys(src, {"old": "new"}, "dataset 'a'") == {"keep": 2, "new": 1}
    assert src == {"old": 1, "keep": 2}  # the input is not changed
    with pytest.raises(ConfigError, match="not both"):
        renamed_keys({"old": 1, "new": 2}, {"old": "new"})
    assert issubclass(EosrDeprecationWarning, DeprecationWarning)


def test_demo_operator_and_its_deprecated_alias(demo_calls: list[dict[str, Any]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["demo", "--operator", "full"]) == 0
    assert demo_calls[-1]["operator"] == "full" and capsys.readouterr().err == ""
    assert call(["demo"]) == 0
    assert demo_calls[-1]["operator"] == "wald" and capsys.readouterr().err == ""
    assert call(["demo", "--psf", "full"]) == 0
    assert demo_calls[-1]["operator"] == "full"
    assert capsys.readouterr().err == "warning: --psf is deprecated; use --operator\n"
    n = len(demo_calls)
    assert call(["demo", "--psf", "full", "--operator", "wald"]) == 2
    assert capsys.readouterr().err == "error: give --operator or the deprecated --psf, not both\n"
    assert len(demo_calls) == n  # nothing ran


def test_demo_help_hides_the_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--operator" in out and "--psf" not in out


def test_demo_python_api_alias() -> None:
    from eosr.benchmark.demo import demo_config

    assert demo_config(with_cnn=False)[0].datasets[0].operator == "wald"
    assert demo_config("full", with_cnn=False)[0].datasets[0].operator == "full"
    with pytest.warns(EosrDeprecationWarning, match="^psf is deprecated; use operator$"):
        assert demo_config(psf="full", with_cnn=False)[0].datasets[0].operator == "full"


def _bench(**ds: Any) -> dict[str, Any]:
    return {"methods": [{"name": "bicubic"}], "datasets": [{"name": "ben", "kind": "samples", **ds}]}


def test_benchmark_key_psf_is_a_deprecated_alias() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_config(_bench(operator="full")).datasets[0].operator == "full"
        assert parse_config(_bench()).datasets[0].operator == "wald"
    with pytest.warns(EosrDeprecationWarning, match="^dataset 'ben': key 'psf' is deprecated; use 'operator'$"):
        cfg = parse_config(_bench(psf="full"))
    assert cfg.datasets[0].operator == "full" and "psf" not in cfg.hashable()["datasets"][0]
    with pytest.raises(ConfigError, match=r"^c\.toml: datasets\[0\]: dataset 'ben': give 'operator' or the deprecated"):
        parse_config(_bench(psf="full", operator="wald"), source="c.toml")
    with pytest.raises(ConfigError, match="operator"):
        parse_config(_bench(operator="box"))


def test_benchmark_cli_prints_one_line_per_deprecated_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    # the deprecated key is read and warned about; the unknown method then stops the run before any work
    cfg.write_text('[[methods]]\nname = "nosuch"\n\n[[datasets]]\nname = "ben"\nkind = "samples"\npsf = "full"\n')
    assert call(["benchmark", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: dataset 'ben': key 'psf' is deprecated; use 'operator'"
    assert len(err) == 2 and err[1].startswith("error: ") and "nosuch" in err[1]
    cfg.write_text('[[methods]]\nname = "bicubic"\n\n[[datasets]]\nname = "ben"\nkind = "samples"\n'
                   'psf = "full"\noperator = "full"\n')
    assert call(["benchmark", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == ("error: c.toml: datasets[0]: dataset 'ben': give 'operator' or the "
                                       "deprecated 'psf', not both\n")
    assert not (tmp_path / "out").exists()
