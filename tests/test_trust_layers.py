"""Layer-level analysis, the channel-attention model, and ``eosr explain``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from eosr import SCHEMA_VERSION
from eosr.errors import ConfigError, ModelError
from eosr.trust.attention_model import ChannelAttentionSR, write_attention
from eosr.trust.layers import (
    STIMULI,
    activation_stats,
    filter_responses,
    hallucination_trace,
    high_frequency_share,
    make_stimulus,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> object:
    """Small tensors: one intra-op thread avoids heavy thread contention on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



class PreUpsample(nn.Module):
    """Upsample (given mode) then a 3x3 smoothing conv on the HR grid: a pre-upsampling SR net."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 1, 1] = 1.0  # identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


def test_stimuli_shapes_and_content() -> None:
    for kind in STIMULI:
        hr, lr = make_stimulus(kind, 3, 16, 2)
        assert hr.shape == (3, 32, 32) and lr.shape == (3, 16, 16)
        assert torch.isfinite(lr).all()
    hr, lr = make_stimulus("stripes", 1, 32, 2)
    assert high_frequency_share(hr[None], 2.0) > 0.95  # stripes live above the LR Nyquist ...
    assert float(lr.std()) < 0.2 * float(hr.std())  # ... and reach the LR only as a weak alias
    flat_hr, flat_lr = make_stimulus("flat", 1, 8, 2)
    assert float(flat_lr.std()) < 1e-6
    with pytest.raises(ConfigError):
        make_stimulus("zebra", 1, 8, 2)


def test_high_frequency_share_known_answers() -> None:
    n = 64
    xx = torch.arange(n, dtype=torch.float64)[None, :].expand(n, n)
    low = torch.cos(2 * np.pi * (6 / 64) * xx)[None, None]
    high = torch.cos(2 * np.pi * (24 / 64) * xx)[None, None]
    assert high_frequency_share(low, 2.0) < 0.01
    assert high_frequency_share(high, 2.0) > 0.99
    assert high_frequency_share(low + high, 2.0) == pytest.approx(0.5, abs=0.02)
    assert high_frequency_share(high, 1.0) == 0.0  # an LR-grid layer cannot carry such detail


def test_hallucination_trace_finds_where_detail_appears() -> None:
    _, lr = make_stimulus("edge", 1, 24, 2)
    nearest = hallucination_trace(PreUpsample("nearest"), lr, 2)
    assert nearest.first_layer == "up"  # nearest-neighbour blocks are detail absent from the LR
    assert nearest.output_share > nearest.input_reference + 0.01
    smooth = hallucination_trace(PreUpsample("bilinear"), lr, 2)
    assert smooth.first_layer is None  # bilinear adds less than the bicubic reference
    json.dumps(nearest.to_json(), allow_nan=False)


def test_activation_stats_records() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.PixelShuffle(2))
    _, lr = make_stimulus("noise", 2, 16, 2)
    recs = activation_stats(m, lr)
    assert [r.name for r in recs] == ["0", "1", "2", "3"]
    assert recs[1].kind == "ReLU" and 0.0 < recs[1].zero_fraction < 1.0
    assert recs[0].zero_fraction == 0.0
    assert recs[3].shape == (1, 2, 32, 32)
    assert recs[0].hf_share == 0.0 and recs[3].hf_share > 0.0
    assert activation_stats(m, lr, layers=["1"])[0].name == "1"
    with pytest.raises(ConfigError):
        activation_stats(m, lr, layers=["nope"])


def test_filter_responses_known_answers() -> None:
    box = nn.Conv2d(1, 1, 3, bias=False)
    lap = nn.Conv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        box.weight.fill_(1 / 9)
        lap.weight.copy_(torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])[None, None])
    fr = filter_responses(nn.Sequential(box, lap, nn.Conv2d(1, 1, 1)))
    assert [f.name for f in fr] == ["0", "1"]  # 1x1 convs have a flat response: skipped
    b, lp = fr
    assert b.response[16, 16] == pytest.approx(1.0)  # DC gain of the box filter
    assert lp.response[16, 16] == pytest.approx(0.0, abs=1e-12)  # the Laplacian removes DC
    # analytic: box response at (0, 0.5) cycles/px = (1/3)(1 + 2 cos(pi)) = -1/3
    assert b.response[16, 0] == pytest.approx(1 / 3)
    assert b.hf_gain_ratio < 0.5 < 2.0 < lp.hf_gain_ratio


def test_attention_model_any_bands_and_maps() -> None:
    for c, r in ((1, 2), (5, 3)):
        m = ChannelAttentionSR(c, r, n_feats=8, n_blocks=2, reduction=4)
        sr, maps = m.forward_with_attention(torch.rand(2, c, 6, 7))
        assert sr.shape == (2, c, 6 * r, 7 * r)
        assert maps["channel"].shape == (2, 2, 8)
        assert maps["spatial"].shape == (2, 2, 6, 7)
        assert float(maps["channel"].min()) > 0 and float(maps["channel"].max()) < 1
        assert m.spec.scale == r and m.spec.receptive_field == 2 * 2 + 4
    with pytest.raises(ModelError):
        ChannelAttentionSR(2, 2)(torch.rand(1, 3, 4, 4))
    # the receptive field it declares bounds the true one
    from eosr.trust.saliency import effective_receptive_field

    m = ChannelAttentionSR(1, 2, n_feats=4, n_blocks=1)
    # channel attention pools globally, so gradients reach every pixel: check the local path alone
    for blk in m.blocks:
        blk.ca.forward = lambda f: f  # type: ignore[method-assign]
    rf = effective_receptive_field(m, 1, 2, size=21, n_samples=1)
    assert rf.support_radius <= m.spec.receptive_field


def test_write_attention_georeferenced(tmp_path: Path) -> None:
    import rasterio
    from affine import Affine

    m = ChannelAttentionSR(2, 2, n_feats=8, n_blocks=3)
    _, maps = m.forward_with_attention(torch.rand(1, 2, 10, 12))
    t = Affine(20.0, 0, 500000.0, 0, -20.0, 4600000.0)
    tif, js = write_attention(maps, tmp_path / "scene_sr", crs="EPSG:32632", transform=t)
    with rasterio.open(tif) as ds:
        assert ds.count == 3 and ds.shape == (10, 12) and ds.transform == t and ds.crs.to_epsg() == 32632
        assert np.allclose(ds.read(2), maps["spatial"][0, 1].numpy())
    doc = json.loads(js.read_text())
    assert len(doc["blocks"]) == 3 and len(doc["blocks"][0]["channel_weights"]) == 8


def test_mc_dropout_on_attention_model() -> None:
    from eosr.trust.uncertainty import mc_dropout

    with pytest.raises(ModelError):
        mc_dropout(ChannelAttentionSR(1, 2, n_feats=4, n_blocks=1), torch.rand(1, 1, 6, 6))
    u = mc_dropout(ChannelAttentionSR(1, 2, n_feats=4, n_blocks=1, dropout=0.3), torch.rand(1, 1, 6, 6), n_samples=3)
    assert float(u.epistemic_var.max()) > 0


@pytest.fixture(scope="module")
def lr_tif(tmp_path_factory: pytest.TempPathFactory, ben_patch_dir: Path) -> Path:
    """A real LR GeoTIFF: BigEarthNet B02 B03 B04 B08 degraded x2 with the Sentinel-2 Wald PSF (40 x 40 crop)."""
    import rasterio

    from conftest import read_s2_10m
    from eosr.degrade.operator import Degradation
    from eosr.io.raster import lr_transform, write_raster

    hr = read_s2_10m(ben_patch_dir)[:, :80, :80].astype(np.float32)
    lr = Degradation.from_sensor("sentinel2", ("B02", "B03", "B04", "B08"), 2, wald=True).downsample(hr)
    with rasterio.open(next(ben_patch_dir.glob("*_B02.tif"))) as ds:
        crs, t = ds.crs, ds.transform
    p = tmp_path_factory.mktemp("explain") / "lr.tif"
    write_raster(p, lr, crs=crs, transform=lr_transform(t, 2), band_names=["B02", "B03", "B04", "B08"])
    return p


def test_cli_explain_writes_json_figures_and_geotiffs(lr_tif: Path, tmp_path: Path) -> None:
    import rasterio
    from affine import Affine

    from eosr.cli.main import main

    out = tmp_path / "exp"
    with pytest.raises(SystemExit) as ex:
        main(["explain", "rcan-ca", "--image", str(lr_tif), "--out", str(out), "--stimuli", "edge,stripes",
              "--size", "12", "--max-lr", "24", "--ig-steps", "4", "--erf-samples", "1", "--allow-untrained"])
    assert ex.value.code == 0
    doc = json.loads((out / "explain.json").read_text())  # strict JSON (json.loads rejects nothing, so check)
    json.dumps(doc, allow_nan=False)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert json.loads((out / "image_attention.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert set(doc["stimuli"]) == {"edge", "stripes"}
    assert doc["model"]["n_bands"] == 4 and doc["model"]["scale"] == 2
    assert doc["image"]["integrated_gradients"]["mass_within_erf95"] > 0.5
    assert 0.0 <= doc["image"]["support_mean_share"] <= 1.0
    for f in ("hallucination_trace.png", "filter_responses.png", "erf.png", "image_maps.png", "support.tif",
              "sr.tif", "image_attention.tif", "image_attention.json"):
        assert (out / f).is_file(), f
    with rasterio.open(lr_tif) as lr_ds, rasterio.open(out / "support.tif") as s_ds, \
            rasterio.open(out / "image_attention.tif") as a_ds:
        assert s_ds.shape == (48, 48) and s_ds.res == (lr_ds.res[0] / 2, lr_ds.res[1] / 2)
        y0, x0 = doc["image"]["crop_offset_lr_px"]
        assert (y0, x0) == (8, 8)  # centre crop of 24 of 40 LR px
        t_crop = lr_ds.transform * Affine.translation(x0, y0)
        assert (s_ds.transform.c, s_ds.transform.f) == (t_crop.c, t_crop.f)  # SR grid shares the crop's origin
        assert a_ds.transform == t_crop and a_ds.crs == lr_ds.crs
    with rasterio.open(out / "sr.tif") as sr_ds, rasterio.open(out / "support.tif") as s_ds:
        assert sr_ds.transform == s_ds.transform and sr_ds.count == 4  # the SR lies beside its maps


def test_cli_explain_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.cli.main import main

    with pytest.raises(SystemExit) as ex:
        main(["explain", "rcan-ca", "--stimuli", "zebra", "--out", str(tmp_path / "x"), "--no-figures"])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "unknown stimuli" in err and len(err.strip().splitlines()) == 1


def test_explain_api_on_registry_model(tmp_path: Path) -> None:
    """Any registry model works (here an interpolator without learned layers)."""
    pytest.importorskip("eosr.models.registry")
    from eosr.trust.explain import explain, resolve_model

    m = resolve_model("bicubic", scale=2, n_bands=2)
    doc = explain(m, tmp_path, stimuli=["stripes"], size=12, n_bands=2, figures=False,
                  image=np.random.default_rng(0).random((2, 14, 14)).astype(np.float32))
    assert doc["filters"] == [] and doc["effective_receptive_field"]["support_radius_lr_px"] <= 3


def test_cli_explain_shipped_models(lr_tif: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every shipped model is analysed or refused in one line: the variance-head model through its SR network,
    carn_m_s2_x2 in one pass (its sr.tif equals `eosr sr`'s crop), 20 m sharpening and multi-image models
    refused with no folder left behind."""
    import rasterio

    from eosr.cli.main import main

    for name, why in (("s2_multires_20m", "two inputs"), ("highresnet_s2_x2", "several frames")):
        with pytest.raises(SystemExit) as ex:
            main(["explain", name, "--out", str(tmp_path / name), "--no-figures"])
        assert ex.value.code == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1 and not (tmp_path / name).exists(), err
    out = tmp_path / "unc"
    with pytest.raises(SystemExit) as ex:
        main(["explain", "carn_m_s2_x2_unc", "--out", str(out), "--no-figures", "--stimuli", "edge", "--size", "12",
              "--erf-samples", "1"])
    assert ex.value.code == 0
    doc = json.loads((out / "explain.json").read_text())
    assert "SR network of carn_m_s2_x2_unc" in doc["model"]["analysed"] and doc["model"]["inference"] == "single pass"
    out = tmp_path / "carn"
    with pytest.raises(SystemExit) as ex:
        main(["explain", "carn_m_s2_x2", "--image", str(lr_tif), "--out", str(out), "--no-figures", "--stimuli",
              "edge", "--size", "12", "--max-lr", "40", "--ig-steps", "2", "--erf-samples", "1"])
    assert ex.value.code == 0
    with pytest.raises(SystemExit) as ex:
        main(["sr", str(lr_tif), str(tmp_path / "sr.tif"), "--model", "carn_m_s2_x2", "--float32", "--no-progress"])
    capsys.readouterr()
    with rasterio.open(out / "sr.tif") as a, rasterio.open(tmp_path / "sr.tif") as b:
        assert a.descriptions == ("B02", "B03", "B04", "B08")
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-5)
