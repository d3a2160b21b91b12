"""The shipped uncertainty model ``carn_m_s2_x2_unc``: a variance head on the frozen ``carn_m_s2_x2``.

Real data only (a BigEarthNet 10 m patch, Wald x2 with the Sentinel-2 operator). Checked: the card (base and
its hash, calibration fitted on the validation split, never BigEarthNet), the SR equals the base's, a
changed base is refused, the calibration is applied, tiling is exact for the std too, ``eosr sr
--uncertainty`` with the base's name writes the calibrated map that ``eosr evaluate --uncertainty`` reads,
``eosr models`` says it, and the std ranks the errors on held-out data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, call_cli

NAME, BASE = "carn_m_s2_x2_unc", "carn_m_s2_x2"
BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def unc() -> torch.nn.Module:
    from eosr.models import resolve_model

    m = resolve_model(NAME)
    m.self_ensemble = False  # one pass, as eosr sr by default
    return m


@pytest.fixture(scope="module")
def lr_hr(hr_tif: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR (1, 4, 60, 60), HR (1, 4, 120, 120)) of the real patch, Wald x2 with the Sentinel-2 operator."""
    import rasterio

    from eosr.degrade import Degradation

    with rasterio.open(hr_tif) as ds:
        hr = torch.from_numpy(ds.read().astype(np.float32))[None]
    op = Degradation.from_sensor("sentinel2", BANDS, 2, wald=True)
    return op.downsample(hr.double()).float(), hr


@pytest.fixture(scope="module")
def lr_tif(hr_tif: Path, lr_hr: tuple[torch.Tensor, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LR of ``lr_hr`` as a float32 GeoTIFF on the 20 m grid of the HR patch, with band names."""
    import rasterio
    from affine import Affine

    with rasterio.open(hr_tif) as ds:
        crs, t = ds.crs, ds.transform
    lr = lr_hr[0][0].numpy()
    p = tmp_path_factory.mktemp("unc") / "lr.tif"
    with rasterio.open(p, "w", driver="GTiff", width=60, height=60, count=4, dtype="float32", crs=crs,
                       transform=t * Affine.scale(2)) as d:
        d.write(lr)
        for i, b in enumerate(BANDS):
            d.set_band_description(i + 1, b)
    return p


def test_card_names_the_base_and_a_validation_calibration(unc: torch.nn.Module) -> None:
    from eosr.models.checkpoint import read_card
    from eosr.models.registry import shipped_weights

    card, base = unc.card, read_card(shipped_weights()[BASE])
    assert card["base"] == {"name": BASE, "weights_sha256": base["weights_sha256"]}
    assert card["architecture"]["kwargs"]["base_sha256"] == base["weights_sha256"]
    cal = card["calibration"]
    assert cal["split"] == "val" and cal["p"] == 0.9 and cal["factor"] > 0 and cal["n"] > 10_000
    # location-balanced, over the noise range and radiometric augmentation the base was trained with
    from eosr.train.config import load_config

    cfg = load_config(ROOT / "configs" / f"{BASE}.toml")
    assert cal["kind"] == "weighted split-conformal scaling" and cal["weighting"].startswith("equal total weight")
    assert sorted(cal["pixels_per_location"]) == base["training"]["split_manifest"]["splits"]["val"]
    assert min(cal["noise_sigmas"]) == 0.0 and max(cal["noise_sigmas"]) == cfg.noise.sigma_max
    assert cal["radiometric_draws"] >= 1 and cal["radiometric"] == cfg.radiometric.model_dump(mode="json")
    val = base["training"]["split_manifest"]["val_images"]
    assert cal["images"] == val and not any("S2A_MSIL2A" in i or "reykjavik" in i for i in val)
    assert card["training"]["split_manifest"]["splits"] == base["training"]["split_manifest"]["splits"]
    assert shipped_weights()[NAME].with_suffix(".safetensors").stat().st_size < 10 * 2**20
    assert unc.n_params() < 100_000 and not any(k.startswith("base") for k in unc.state_dict())


def test_sr_is_the_base_models_and_the_calibration_is_applied(unc: torch.nn.Module,
                                                              lr_hr: tuple[torch.Tensor, torch.Tensor]) -> None:
    from eosr.models import resolve_model

    lr, _ = lr_hr
    base = resolve_model(BASE)
    base.self_ensemble = False
    with torch.no_grad():
        want = base(lr)
        sr, std = unc.forward_with_uncertainty(lr)
        _, s = unc(lr, return_logvar=True)
    assert torch.equal(sr, want)
    q = unc.card["calibration"]["factor"]
    assert torch.allclose(std, q * torch.exp(0.5 * s), rtol=1e-6)
    assert std.shape == sr.shape and bool((std > 0).all()) and bool(torch.isfinite(std).all())


def test_a_changed_base_is_refused(tmp_path: Path) -> None:
    from eosr.errors import ModelError
    from eosr.models.checkpoint import load_checkpoint
    from eosr.models.registry import shipped_weights

    stem = shipped_weights()[NAME]
    card = json.loads(stem.with_suffix(".json").read_text())
    card["architecture"]["kwargs"]["base_sha256"] = "0" * 64
    (tmp_path / "h.json").write_text(json.dumps(card))
    (tmp_path / "h.safetensors").write_bytes(stem.with_suffix(".safetensors").read_bytes())
    with pytest.raises(ModelError, match="refit the head"):
        load_checkpoint(tmp_path / "h")


def test_std_ranks_the_errors_on_held_out_data(unc: torch.nn.Module,
                                               lr_hr: tuple[torch.Tensor, torch.Tensor]) -> None:
    """On a BigEarthNet patch (never seen in training or calibration) the std follows |error|."""
    from eosr.trust.calibration import coverage, spearman

    lr, hr = lr_hr
    sr, std = unc.forward_with_uncertainty(lr)
    c = slice(8, -8)
    err = (hr - sr)[..., c, c].numpy()
    u = std[..., c, c].numpy()
    assert spearman(np.abs(err), u) > 0.3
    assert 0.75 < coverage(err, u, 0.9) < 0.99
    flat = np.ones_like(u) * u.mean()  # a constant std of the same mean ranks nothing
    assert np.isnan(spearman(np.abs(err), flat))


def test_uncertainty_is_exact_under_tiling(unc: torch.nn.Module, lr_hr: tuple[torch.Tensor, torch.Tensor]) -> None:
    from eosr.scene.sr import super_resolve_array

    lr = lr_hr[0][0]
    whole = torch.cat(unc.forward_with_uncertainty(lr[None]), dim=1)[0]
    rf = unc.spec.receptive_field
    # 3 x 3 tiles of 20 LR px; windows of 54 px cut 34 px = rf + 2 from their core: exact if rf is right
    tiled = super_resolve_array(lr, unc, tile=20, overlap=rf + 2, uncertainty=True)
    assert tiled.shape == (8, 120, 120)
    assert torch.allclose(tiled, whole, rtol=1e-5, atol=1e-7)


def test_uncertain_sr_api_loads_the_shipped_calibration(unc: torch.nn.Module,
                                                        lr_hr: tuple[torch.Tensor, torch.Tensor]) -> None:
    from eosr.trust import UncertainSR

    w = UncertainSR.from_checkpoint(NAME)
    assert w.method == "head" and w.calibration.factor == unc.card["calibration"]["factor"]
    w.model.self_ensemble = False
    lr = lr_hr[0][:, :, :20, :20]
    a = w.forward_with_uncertainty(lr)
    b = unc.forward_with_uncertainty(lr)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1], rtol=1e-5)


def test_cli_sr_with_the_base_name_writes_the_map_and_evaluate_reads_it(
        lr_tif: Path, hr_tif: Path, unc: torch.nn.Module, tmp_path: Path,
        lr_hr: tuple[torch.Tensor, torch.Tensor], capsys: pytest.CaptureFixture[str]) -> None:
    import rasterio

    out = tmp_path / "sr.tif"
    assert call_cli(["sr", str(lr_tif), str(out), "--model", BASE, "--uncertainty", "--no-progress"]) == 0
    side = tmp_path / "sr.uncertainty.tif"
    with rasterio.open(side) as ds:
        std = ds.read()
        assert ds.descriptions == tuple(f"{b}_std" for b in BANDS) and ds.tags()["eosr_model"] == NAME
    with rasterio.open(out) as ds:
        sr = ds.read()
    want_sr, want_std = unc.forward_with_uncertainty(lr_hr[0])
    np.testing.assert_allclose(sr, want_sr[0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, want_std[0].numpy(), rtol=1e-5, atol=1e-8)
    js = tmp_path / "m.json"
    assert call_cli(["evaluate", "--sr", str(out), "--hr", str(hr_tif), "--uncertainty", str(side), "--quiet",
                     "--json", str(js)]) == 0
    m = json.loads(js.read_text())["metrics"]
    assert 0.5 < m["uncertainty_coverage_90"]["value"] <= 1.0 and m["uncertainty_spearman"]["value"] > 0.3
    capsys.readouterr()
    assert call_cli(["sr", str(lr_tif), str(tmp_path / "b.tif"), "--model", "bicubic", "--uncertainty"]) == 2
    assert "offers no uncertainty" in capsys.readouterr().err


def test_models_lists_what_offers_uncertainty(capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.models import describe_model
    from eosr.models.registry import uncertainty_companion

    assert describe_model(NAME)["uncertainty"].startswith("variance head")
    assert describe_model(BASE)["uncertainty"] is None and uncertainty_companion(BASE) == NAME
    assert uncertainty_companion(NAME) is None and uncertainty_companion("bicubic") is None
    capsys.readouterr()
    assert call_cli(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows[NAME]["uncertainty"] and rows[NAME]["weights"] == "trained" and rows["variance_head"]["weights"] == (
        "untrained")
