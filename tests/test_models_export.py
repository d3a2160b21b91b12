"""ONNX export (checked against onnxruntime) and the ``eosr models`` / ``eosr export`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import eosr.models as M
from eosr import SCHEMA_VERSION
from eosr.errors import ModelError

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(
    ("name", "kw"),
    [("carn_m", dict(n_bands=4, channels=16, global_skip=True)), ("carn", dict(n_bands=1, channels=8, scale=3)),
     ("bicubic", {}), ("lanczos", {}), ("s2_multires", dict(features=8, blocks=1)),
     ("highresnet", dict(n_bands=2, channels=8))],
)
def test_onnx_matches_torch_at_dynamic_sizes(tmp_path, name: str, kw: dict) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    kw = dict(kw)
    m = M.get_model(name, scale=kw.pop("scale", 2), **kw)
    if m.n_bands is not None:
        m.set_normalisation(torch.full((m.n_bands,), 0.1), torch.full((m.n_bands,), 0.05))
    out = tmp_path / "m.onnx"
    rep = M.export_onnx(m, out, height=16, width=20)
    assert rep["max_abs_diff"] <= 1e-4 and out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    # an independent size, run here, not by the exporter
    sess = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    if name == "s2_multires":
        args = (torch.rand(1, 4, 26, 14), torch.rand(1, 6, 13, 7))
    elif m.spec.multi_image:
        args = (torch.rand(1, 4, 2, 11, 13), torch.ones(1, 4, 11, 13))
    else:
        args = (torch.rand(3, m.n_bands or 5, 11, 13),)
    got = sess.run(None, {k: a.numpy() for k, a in zip(inputs, args, strict=True)})[0]
    with torch.no_grad():
        ref = m(*args).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["eosr_model"] == name and int(meta["scale"]) == m.spec.scale


def test_export_refuses_non_network_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match="cannot be exported"):
        M.export_onnx(M.get_model("backprojection"), tmp_path / "b.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_models_lists_every_model(capsys) -> None:  # type: ignore[no-untyped-def]
    from eosr.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["models"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for n in M.list_models():
        assert n in out
    assert "bicubic" in out and "964,163" in out
    with pytest.raises(SystemExit):
        main(["models", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == SCHEMA_VERSION
    rows = doc["models"]
    carn = next(r for r in rows if r["name"] == "carn")
    assert carn["params"] == 964_163 and carn["receptive_field"] == 21 and carn["scale"] == 2


def test_cli_export_and_its_errors(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from eosr.cli.main import main

    m = M.get_model("carn_m", scale=2, bands=["B02", "B03", "B04", "B08"], channels=8)
    M.save_checkpoint(m, tmp_path / "ck", {})
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "ck"), str(tmp_path / "ck.onnx"), "--bands", "B2,B3,B4,B8", "--height", "12",
              "--width", "10"])
    assert e.value.code == 0 and (tmp_path / "ck.onnx").exists()
    assert "max |diff|" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "ck"), str(tmp_path / "x.onnx"), "--scale", "4"])
    assert e.value.code == 2
    assert "x2 model, but x4 was requested" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", "nosuchmodel", str(tmp_path / "y.onnx")])
    assert e.value.code == 2
    assert "no model or checkpoint named 'nosuchmodel'" in capsys.readouterr().err
