"""The shipped CARN-M x4 Sentinel-2 model (``carn_m_s2_x4``, 10 m -> 2.5 m): found by the one resolver,
its card reproduces from ``configs/carn_m_s2_x4.toml``, ``eosr sr`` tiles it exactly with the georeference
of x4 (pixel size / 4, same origin), it exports to ONNX, and it beats bicubic on a real held-out patch
under the Wald protocol at x4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import eosr.models as M
from conftest import BEN, ROOT, call_cli
from eosr.degrade import Degradation
from eosr.errors import ModelError
from eosr.models.interp import upsample

NAME = "carn_m_s2_x4"
BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def model() -> M.SRNet:
    m = M.resolve_model(NAME, scale=4, bands=BANDS)
    m.self_ensemble = False  # type: ignore[assignment]  # the single pass, as eosr sr runs it by default
    return m.eval()


def test_resolves_by_name_with_its_card(model: M.SRNet) -> None:
    stem = M.shipped_weights()[NAME]
    assert stem.with_suffix(".safetensors").stat().st_size <= 10 * 1024 * 1024
    assert M.weights_status(model) == "trained"
    assert model.spec.scale == 4 and list(model.spec.bands or ()) == BANDS
    card = json.loads(stem.with_suffix(".json").read_text())
    op = card["sensor_operator"]
    assert op["scale"] == 4 and op["sensor"] == "sentinel2" and op["wald"] is True
    assert len(card["weights_sha256"]) == 64
    assert card["training"]["split_manifest"]["splits"]["val"]  # selected on a validation split
    assert M.describe_model(NAME)["scale"] == 4
    with pytest.raises(ModelError, match="x4 model, but x2 was requested"):
        M.resolve_model(NAME, scale=2)
    with pytest.raises(ModelError, match="trained on bands B02,B03,B04,B08"):
        M.resolve_model(NAME, scale=4, bands=["B02", "B03", "B04", "B8A"])


def test_card_reproduces_from_the_config() -> None:
    """The shipped card's training config is the committed config (data named by sample, no machine paths)."""
    from eosr.train.config import load_config
    from eosr.train.loop import config_hash

    cfg = load_config(ROOT / "configs" / f"{NAME}.toml")
    card = json.loads(M.shipped_weights()[NAME].with_suffix(".json").read_text())
    shown = {"output", "progress"}  # where it ran and whether a progress bar was drawn (not in the hash)
    from eosr.train.config import TrainConfig

    # parsed again: config fields added after the run (with defaults) compare equal to their absence
    assert TrainConfig.model_validate(card["training"]["config"]).model_dump(mode="json", exclude=shown) == \
        cfg.model_dump(mode="json", exclude=shown)
    assert card["training"]["config_hash"] == config_hash(cfg)
    refs = [p for s in cfg.data.sources for p in ([s.path] if s.path else []) + (s.files or [])]
    assert refs and all(p.startswith("sample:") and "bigearthnet" not in p for p in refs)


def test_beats_bicubic_on_a_real_held_out_patch(model: M.SRNet, s2_10m: np.ndarray) -> None:
    """Wald x4 (Sentinel-2 operator) on one BigEarthNet patch, 8-HR-px border crop, with and without noise."""
    op = Degradation.from_sensor("sentinel2", BANDS, 4, wald=True)
    hr = torch.from_numpy(s2_10m)[None]
    lr = op.downsample(hr)
    noisy = lr + 0.001 * torch.randn(lr.shape, generator=torch.Generator().manual_seed(0), dtype=lr.dtype)

    def psnr(x: torch.Tensor) -> float:
        d = (x.double() - hr)[..., 8:-8, 8:-8]
        return float(-10 * torch.log10((d * d).mean()))

    for x, need in ((lr, 1.0), (noisy, 1.0)):
        with torch.no_grad():
            sr = model(x.float())
        assert sr.shape == hr.shape
        gain = psnr(sr) - psnr(upsample(x, 4, "bicubic"))
        assert gain >= need, gain


@pytest.fixture(scope="module")
def lr_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 72 x 60 crop of a BigEarthNet patch (B02 B03 B04 B08 at 10 m) as a float32 reflectance GeoTIFF
    with its georeference (the crop's window transform) and band names."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from eosr.data.s2bands import read_s2_band_folder

    st = read_s2_band_folder(BEN / "S2A_MSIL2A_20170613T101031_87_48")[10]
    win = Window(30, 20, 60, 72)  # col_off, row_off, width, height
    p = tmp_path_factory.mktemp("x4") / "lr.tif"
    with rasterio.open(p, "w", driver="GTiff", width=60, height=72, count=4, dtype="float32", crs=st.crs,
                       transform=window_transform(win, st.transform)) as d:
        d.write(np.asarray(st.data, np.float32)[:, 20:92, 30:90])
        for i, b in enumerate(st.band_names):
            d.set_band_description(i + 1, b)
    return p


def test_sr_tiles_exactly_with_the_x4_georeference(model: M.SRNet, lr_tif: Path, tmp_path: Path) -> None:
    """``eosr sr`` on a real GeoTIFF in 2 x 2 tiles equals one pass over the whole image."""
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(lr_tif), str(out), "--model", NAME, "--tile", "36", "--no-progress"]) == 0
    with rasterio.open(lr_tif) as src, rasterio.open(out) as ds:
        x = src.read()
        assert (ds.width, ds.height) == (240, 288) and ds.crs == src.crs
        assert ds.transform.a == src.transform.a / 4 == 2.5 and ds.transform.e == src.transform.e / 4
        assert (ds.transform.c, ds.transform.f) == (src.transform.c, src.transform.f)
        assert ds.descriptions == src.descriptions == tuple(BANDS)
        assert ds.tags()["eosr_tiling_exact"] == "True" and ds.tags()["eosr_scale"] == "4"
        got = ds.read()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]


def test_export_matches_onnxruntime_on_real_data(model: M.SRNet, s2_10m: np.ndarray, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "x4.onnx"
    assert call_cli(["export", NAME, str(out), "--height", "16", "--width", "16"]) == 0
    assert "wrote" in capsys.readouterr().out
    x = s2_10m[:, 10:40, 20:56].astype(np.float32)[None]  # 30 x 36 LR: another size than the export's
    sess = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 4, 120, 144)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
