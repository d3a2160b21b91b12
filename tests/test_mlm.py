"""STAC MLM metadata of every shipped weight file: built and validated with stac-model, STAC core fields
checked against the item schema that pystac ships (offline)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import call_cli, stac_core_validator
from eosr.errors import ModelError
from eosr.models.checkpoint import read_card
from eosr.models.mlm import mlm_item
from eosr.models.registry import shipped_weights


@pytest.mark.parametrize("name", sorted(shipped_weights()))
def test_every_shipped_model_has_valid_mlm(name: str) -> None:
    from stac_model.schema import MLModelProperties

    item = mlm_item(name)
    stac_core_validator().validate(item)  # type: ignore[attr-defined]
    props = item["properties"]
    mlm = {k.removeprefix("mlm:"): v for k, v in props.items() if k.startswith("mlm:")}
    parsed = MLModelProperties.model_validate(mlm)  # the MLM fields round-trip through stac-model's models
    card = read_card(shipped_weights()[name])
    assert parsed.name == name and "super-resolution" in parsed.tasks
    assert mlm["input"][0]["bands"] == card["bands"] and mlm["input"][0]["input"]["data_type"] == "float32"
    assert props["eosr:scale"] == card["scale"] and props["eosr:tiling_margin_lr_px"] == card["receptive_field"]
    assert mlm["total_parameters"] == card["n_params"]
    weights = shipped_weights()[name].with_suffix(".safetensors")
    assert item["assets"]["weights"]["eosr:weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "test" not in (mlm.get("pretrained_source") or "")  # training locations only
    bad = json.loads(json.dumps(item))
    del bad["properties"]["start_datetime"]
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):  # the validator can fail: null datetime needs both ends
        stac_core_validator().validate(bad)  # type: ignore[attr-defined]


def test_cli_prints_mlm_and_refuses_architectures(capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli(["models", "--mlm", "carn_m_s2_x2"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "carn_m_s2_x2"
    with pytest.raises(ModelError, match="architecture without weights"):
        mlm_item("carn_m")
