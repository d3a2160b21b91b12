"""``schema_version`` in every JSON document eosr writes, and readers that accept documents with and without it.

The heavier writers are checked where they already run: benchmark outputs in test_benchmark_run.py, the
training history, split manifest and trained card in test_train.py, ``explain.json`` in test_trust_layers.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import eosr
import eosr.models as M
from conftest import call_cli as call
from eosr._schema import SCHEMA_KEY, SCHEMA_VERSION, check_schema, stamped, unstamped, version_of
from eosr.errors import DataError, ModelError


def _key_first(doc: dict) -> None:
    assert next(iter(doc)) == SCHEMA_KEY and doc[SCHEMA_KEY] == SCHEMA_VERSION, list(doc)[:3]


def _rewrite(path: Path, version: str | None) -> None:
    """Rewrite a JSON file as an older (no key) or another version's document."""
    doc = json.loads(path.read_text())
    doc.pop(SCHEMA_KEY, None)
    if version is not None:
        doc = {SCHEMA_KEY: version, **doc}
    path.write_text(json.dumps(doc))


def test_the_version_and_its_rules() -> None:
    assert eosr.SCHEMA_VERSION == SCHEMA_VERSION == "1.0"
    d = stamped({"a": 1, SCHEMA_KEY: "0.9"})
    assert list(d) == [SCHEMA_KEY, "a"] and d[SCHEMA_KEY] == SCHEMA_VERSION
    assert version_of({"a": 1}) == "0" and version_of(d) == SCHEMA_VERSION and version_of([1]) == "0"
    for ok in ({"a": 1}, {SCHEMA_KEY: "1.0"}, {SCHEMA_KEY: "1.9"}, {SCHEMA_KEY: 1}, {SCHEMA_KEY: "0.3"}, [1, 2]):
        check_schema(ok, "x.json")
    with pytest.raises(DataError, match=r"^x\.json has schema_version 2\.0, newer than this eosr reads"):
        check_schema({SCHEMA_KEY: "2.0"}, "x.json")
    with pytest.raises(ModelError, match="must be a string 'MAJOR.MINOR'"):
        check_schema({SCHEMA_KEY: "one"}, "card.json", ModelError)
    assert unstamped({SCHEMA_KEY: "1.0", "a": 1}) == {"a": 1} == unstamped({"a": 1})


def test_evaluation_json(tmp_path: Path) -> None:
    from eosr.evaluation.result import EvaluationResult

    res = EvaluationResult(metrics={}, maps={}, bands=["B02"], data_range=1.0, operator=None)
    _key_first(res.to_dict())
    res.to_json(tmp_path / "m.json")
    _key_first(json.loads((tmp_path / "m.json").read_text()))


def test_checkpoint_cards_old_and_new(tmp_path: Path) -> None:
    m = M.get_model("carn_m", scale=2, bands=["B02", "B03", "B04", "B08"], channels=8)
    _, card = M.save_checkpoint(m, tmp_path / "ck", {"metrics": {"psnr": 30.0}})
    _key_first(json.loads(card.read_text()))
    assert M.load_model(tmp_path / "ck").card[SCHEMA_KEY] == SCHEMA_VERSION  # type: ignore[index]
    _rewrite(card, None)  # a card written before the key existed
    assert SCHEMA_KEY not in M.load_model(tmp_path / "ck").card  # type: ignore[operator]
    _rewrite(card, "2.0")
    with pytest.raises(ModelError, match="newer than this eosr reads"):
        M.load_model(tmp_path / "ck")


def test_shipped_card_is_stamped_and_loads() -> None:
    stem = M.shipped_weights()["carn_m_s2_x2"]
    _key_first(json.loads(stem.with_suffix(".json").read_text()))
    assert M.load_model("carn_m_s2_x2").card[SCHEMA_KEY] == SCHEMA_VERSION  # type: ignore[index]


def test_split_manifest_old_and_new(tmp_path: Path) -> None:
    from eosr.data.splits import read_manifest, write_manifest

    p = write_manifest(tmp_path / "m.json", {"train": ["a"], "test": ["b"]}, seed=1)
    _key_first(json.loads(p.read_text()))
    assert read_manifest(p)["splits"] == {"train": ["a"], "test": ["b"]}
    _rewrite(p, None)
    assert read_manifest(p)["seed"] == 1
    _rewrite(p, "3.1")
    with pytest.raises(DataError, match="m.json has schema_version 3.1"):
        read_manifest(p)


def test_uncertainty_calibration_old_and_new(tmp_path: Path) -> None:
    from eosr.trust.calibration import ConformalCalibration

    c = ConformalCalibration(factor=1.5, p=0.9, dist="gaussian", n=100, coverage_before=0.7)
    p = c.save(tmp_path / "m.calibration.json")
    _key_first(json.loads(p.read_text()))
    assert ConformalCalibration.load(p) == c
    _rewrite(p, None)
    assert ConformalCalibration.load(p) == c


def test_benchmark_score_cache_old_and_new(tmp_path: Path) -> None:
    from eosr.benchmark.cache import Cache

    cache, scores = Cache(tmp_path), {"psnr": {"value": 31.5, "per_band": [31.0, 32.0]}}
    cache.save_scores("d", "m", "s", "img 1", scores)
    p = cache.score_path("d", "m", "s", "img 1")
    doc = json.loads(p.read_text())
    assert doc[SCHEMA_KEY] == SCHEMA_VERSION and doc["scores"] == scores
    assert cache.load_scores("d", "m", "s", "img 1") == scores
    p.write_text(json.dumps(scores))  # a cache entry written before the key existed: bare scores
    assert cache.load_scores("d", "m", "s", "img 1") == scores
    p.write_text(json.dumps({SCHEMA_KEY: "2.0", "scores": scores}))  # from a newer eosr: recomputed
    assert cache.load_scores("d", "m", "s", "img 1") is None


def test_attention_json(tmp_path: Path) -> None:
    from eosr.trust.attention_model import write_attention

    rng = np.random.default_rng(0)
    _, js = write_attention({"spatial": rng.random((1, 2, 6, 6)), "channel": rng.random((1, 2, 8))}, tmp_path / "a")
    _key_first(json.loads(js.read_text()))


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    _key_first(doc)
    assert "bicubic" in [r["name"] for r in doc["models"]]


def test_simulated_frames_and_calibration_json(tmp_path: Path, s2_10m: np.ndarray) -> None:
    hr_p = tmp_path / "hr.tif"
    hr = np.asarray(s2_10m, dtype=np.float32)[:, :64, :64]  # B02 B03 B04 B08, reflectance
    prof = dict(driver="GTiff", width=64, height=64, count=4, dtype="float32", crs="EPSG:32633",
                transform=from_origin(600000.0, 5100000.0, 10.0, 10.0))
    bands = "B02,B03,B04,B08"
    with rasterio.open(hr_p, "w", **prof) as ds:
        ds.write(hr)
        for i, b in enumerate(bands.split(",")):
            ds.set_band_description(i + 1, b)
    assert call(["simulate", str(hr_p), str(tmp_path / "set"), "--bands", bands, "--frames", "2"]) == 0
    _key_first(json.loads((tmp_path / "set" / "frames.json").read_text()))
    assert call(["simulate", str(hr_p), str(tmp_path / "lr.tif"), "--bands", bands]) == 0
    assert call(["calibrate", str(hr_p), str(tmp_path / "lr.tif"), "--json", str(tmp_path / "fit.json")]) == 0
    fit = json.loads((tmp_path / "fit.json").read_text())
    _key_first(fit)
    assert fit["scale"] == 2
