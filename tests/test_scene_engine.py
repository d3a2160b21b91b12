"""Execution engines of CNN inference (eosr.scene.engine): ONNX Runtime and torch channels_last agree with
plain torch on a real Sentinel-2 patch; the "auto" rule; the on-disk export cache keyed by weights and
operator; the engine recorded in the output; bad engines refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from conftest import call_cli
from eosr.errors import ConfigError
from eosr.models import load_model
from eosr.scene import engine as E
from eosr.scene.sr import super_resolve_array


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    m = load_model("carn_m_s2_x2")
    m.self_ensemble = False
    return m.eval()


def test_engines_agree_with_plain_torch(net: torch.nn.Module, s2_10m: np.ndarray, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path / "cache"))
    x = np.ascontiguousarray(s2_10m[None, :, :64, :80], dtype=np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    cl = E.run(net, x, "torch")  # channels_last
    ort = E.run(net, x, "onnxruntime")
    assert cl.shape == ort.shape == ref.shape == (1, 4, 128, 160)
    assert np.abs(cl - ref).max() < 1e-5 and np.abs(ort - ref).max() < 1e-5
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert [p.stem for p in cached] == [E.fingerprint(net)]
    # a tiled array run on ONNX Runtime equals the torch one to float rounding
    a = super_resolve_array(s2_10m[:, :96, :96].astype(np.float32), net, tile=48, engine="onnxruntime")
    b = super_resolve_array(s2_10m[:, :96, :96].astype(np.float32), net, tile=48, engine="torch")
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fingerprint_follows_weights_and_operator(net: torch.nn.Module) -> None:
    from eosr.models.backprojection import set_model_operator

    other = load_model("carn_m_s2_x2")
    other.self_ensemble = False
    assert E.fingerprint(other.eval()) == E.fingerprint(net)
    set_model_operator(other, "full", sensor="sentinel2")  # another PSF in the back-projection skip
    assert E.fingerprint(other) != E.fingerprint(net)
    third = load_model("carn_m_s2_x2")
    third.self_ensemble = False
    with torch.no_grad():
        next(iter(third.parameters())).view(-1)[0] += 1e-6  # one weight changed: a new export
    assert E.fingerprint(third.eval()) != E.fingerprint(net)


def test_fingerprint_is_cached_until_the_model_changes(net: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    m = load_model("carn_m_s2_x2").eval()
    first = E.fingerprint(m)
    calls = []
    real = E._fingerprint
    monkeypatch.setattr(E, "_fingerprint", lambda model: calls.append(1) or real(model))
    assert E.fingerprint(m) == first and not calls  # per tile: no second hash of the weights
    with torch.no_grad():
        next(iter(m.parameters())).view(-1)[0] += 1e-6  # in place: the version counter moves
    assert E.fingerprint(m) != first and calls == [1]
    m.self_ensemble = not m.self_ensemble
    E.fingerprint(m)
    assert calls == [1, 1]


def test_auto_rule_and_refusals(net: torch.nn.Module) -> None:
    assert E.choose_engine("auto", net) == "torch"  # torch is the faster by measurement (docs/scenes.md)
    assert E.choose_engine("onnxruntime", net) == "onnxruntime"
    assert E.choose_engine("torch", net) == "torch"
    with pytest.raises(ConfigError, match="engine must be one of auto, torch, onnxruntime"):
        E.choose_engine("tensorrt", net)
    with pytest.raises(ConfigError, match="cannot run the uncertainty path"):
        E.choose_engine("onnxruntime", net, uncertainty=True)


def test_cli_records_the_engine(hr_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(hr_tif), str(out), "--model", "carn_m_s2_x2", "--no-progress"]) == 0
    with rasterio.open(out) as ds:
        assert ds.tags()["eosr_engine"] == "torch"  # the default engine
    assert call_cli(["sr", str(hr_tif), str(tmp_path / "x.tif"), "--model", "carn_m_s2_x2", "--engine", "gpu",
                     "--no-progress"]) == 2
    assert not (tmp_path / "x.tif").exists()
