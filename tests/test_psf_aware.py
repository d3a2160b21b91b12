"""PSF-aware inference (issue 16, item 4): a CNN with a back-projection skip told the operator of its LR
(API, ``eosr sr --operator``, output tags), the PSF-jitter training option, the shipped
``carn_m_s2_x2_psf`` card, and the PSF benchmark's pooled paired bootstrap. Real Sentinel-2 data."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import EOPATCH, call_cli
from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError, ModelError
from eosr.models import load_model, shipped_weights
from eosr.models.backprojection import BackProjection, gaussian_equivalent, set_model_operator
from eosr.physics.psf import mtf_from_sigma
from eosr.train.config import parse_config
from eosr.train.sources import build_datasets, jitter_grid, scaled_sensor_operator

BANDS = ["B02", "B03", "B04", "B08"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _psnr(sr: torch.Tensor, hr: torch.Tensor, c: int = 8) -> float:
    d = (sr.double() - hr.double())[..., c:-c, c:-c]
    return float(-10 * torch.log10((d * d).mean()))


@pytest.fixture(scope="module")
def x2() -> object:
    torch.set_num_threads(1)
    m = load_model("carn_m_s2_x2", scale=2, bands=BANDS)
    m.self_ensemble = False
    return m


# ----------------------------------------------------------------------------- API
def test_told_full_operator_beats_the_card_operator_on_full_psf_lr(x2: object, s2_10m: np.ndarray) -> None:
    """Real BigEarthNet patch, LR through the FULL S2 PSF: the model told that PSF is closer to HR than the
    same weights with their card's Wald operator, and rebuilding the skip is reversible."""
    hr = torch.from_numpy(s2_10m)[None]
    full = Degradation.from_sensor("sentinel2", BANDS, 2)
    lr = full.downsample(hr).float()
    card_op = x2.operator
    with torch.no_grad():
        p_card = _psnr(x2(lr), hr)
        ch = set_model_operator(x2, "full")
        assert (ch.mode, ch.source) == ("full", "option")
        assert x2.operator.sigmas == pytest.approx(full.sigmas)
        assert x2.spec.extra["bp_operator"]["sigma_hr_px"] == pytest.approx(full.sigmas, abs=1e-5)
        p_told = _psnr(x2(lr), hr)
        x2.set_operator(card_op)
        assert _psnr(x2(lr), hr) == pytest.approx(p_card, abs=1e-6)
    assert p_told > p_card + 0.2, (p_told, p_card)


def test_bp_skip_equals_backprojection_with_the_told_operator(x2: object, s2_10m: np.ndarray) -> None:
    op = scaled_sensor_operator("sentinel2", BANDS, 2, 0.8)
    lr = op.downsample(torch.from_numpy(s2_10m)[None]).float()
    x2.set_operator(op)
    try:
        with torch.no_grad():
            skip = x2.bp(lr.double()).float()
            ref = BackProjection(2, BANDS, operator=op, iterations=5)(lr.double()).float()
    finally:
        x2.set_operator(Degradation.from_sensor("sentinel2", BANDS, 2, wald=True))
    assert torch.allclose(skip, ref, atol=1e-5)


def test_bp_refine_is_back_projection_from_the_network_estimate(s2_10m: np.ndarray, tmp_path: Path) -> None:
    """x_{k+1} = x_k + up(y - D(x_k)) from the CNN's output (known answer, float64 operator), LR residual
    shrinking, receptive field grown by K (half PSF + 2) LR px, and the option surviving a checkpoint."""
    from eosr.models.carn import carn_m
    from eosr.models.checkpoint import save_checkpoint
    from eosr.models.interp import upsample

    torch.manual_seed(0)
    opts = dict(channels=8, global_skip=True, bp_skip=2, bp_sensor="sentinel2", bp_wald=True)
    base = carn_m(2, BANDS, **opts).eval()
    torch.nn.init.normal_(base.exit.weight, std=0.05)  # a residual that is not zero, so not consistent
    refined = carn_m(2, BANDS, bp_refine=3, **opts).eval()
    refined.load_state_dict(base.state_dict())
    op = Degradation.from_sensor("sentinel2", BANDS, 2, wald=True)
    hr = torch.from_numpy(s2_10m[:, :64, :64]).double()[None]
    lr = op.downsample(hr)
    with torch.no_grad():
        x = base(lr.float()).double()
        got = refined(lr.float()).double()
    want = x
    for _ in range(3):
        want = want + upsample(lr - op.downsample(want), 2, "bicubic")
    assert torch.allclose(got, want, atol=2e-5), float((got - want).abs().max())
    res = [float((lr - op.downsample(v)).abs().mean()) for v in (x, got)]
    assert res[1] < 0.5 * res[0], res
    assert refined.spec.receptive_field == base.spec.receptive_field + math.ceil(3 * (base.bp.half_psf + 2))
    with pytest.raises(ModelError, match="bp_refine needs bp_skip"):
        carn_m(2, BANDS, channels=8, bp_refine=1)
    weights, _ = save_checkpoint(refined, tmp_path / "refined")
    assert load_model(weights).bp_refine == 3


@pytest.mark.parametrize(
    ("op", "match"),
    [
        (Degradation.from_sensor("sentinel2", BANDS, 4), "scale x4"),
        (Degradation.from_sensor("sentinel2", ["B02", "B03", "B04"], 2), "3 band PSFs"),
        (Degradation.from_sensor("sentinel2", ["B05", "B06", "B07", "B8A"], 2), "bands B05"),
    ],
)
def test_wrong_operator_is_refused_in_one_line(x2: object, op: Degradation, match: str) -> None:
    before = x2.operator
    with pytest.raises(ModelError, match=match) as e:
        x2.set_operator(op)
    assert "\n" not in str(e.value)
    assert x2.operator is before  # unchanged


def test_operator_precedence_and_models_without_physics(x2: object) -> None:
    full = Degradation.from_sensor("sentinel2", BANDS, 2)
    tag = json.dumps(full.describe())
    ch = set_model_operator(x2, None, tag=tag)  # no option: the LR file's eosr_operator tag
    assert ch.source == "tag" and x2.operator.sigmas == pytest.approx(full.sigmas)
    ch = set_model_operator(x2, "wald", tag=tag)  # the option wins over the tag
    assert ch.source == "option" and x2.operator.sigmas == pytest.approx(
        Degradation.from_sensor("sentinel2", BANDS, 2, wald=True).sigmas)
    ch = set_model_operator(x2, None)  # nothing given: the card's operator stays
    assert (ch.mode, ch.source) == ("card", "default")
    with pytest.raises(ModelError, match="no physics"):
        set_model_operator(load_model("bicubic"), "full")


def test_calibrated_kernel_becomes_the_gaussian_of_the_same_mtf() -> None:
    from eosr.degrade.calibrate import CalibratedDegradation
    from eosr.physics.psf import gaussian_taps, kernel_length

    sig = (0.9, 1.1)
    ks = []
    for s in sig:
        t = gaussian_taps(s, kernel_length(s, 2) + 1)  # odd taps, sum 1
        ks.append(np.outer(t, t))
    cal = CalibratedDegradation(scale=2, kernels=tuple(ks), bands=("B02", "B03"))
    g = gaussian_equivalent(cal)
    assert g.sigmas is not None and g.bands == ("B02", "B03")
    want = cal.describe()["mtf_at_lr_nyquist"]
    assert [mtf_from_sigma(s, 2) for s in g.sigmas] == pytest.approx(want, abs=1e-4)
    assert gaussian_equivalent(g) is g


def test_benchmark_method_tells_the_dataset_operator(x2: object) -> None:
    from types import SimpleNamespace

    from eosr.benchmark.config import MethodConfig
    from eosr.benchmark.methods import _told_operator

    full = Degradation.from_sensor("sentinel2", BANDS, 2)
    card = x2.operator
    assert _told_operator(MethodConfig(name="x2"), x2, SimpleNamespace(operator=full)).operator is card
    try:
        told = _told_operator(MethodConfig(name="x2", tell_operator=True), x2, SimpleNamespace(operator=full))
        assert told.operator.sigmas == pytest.approx(full.sigmas)
    finally:
        x2.set_operator(card)
    with pytest.raises(ModelError, match="takes no operator"):
        _told_operator(MethodConfig(name="b", model="bicubic", tell_operator=True), load_model("bicubic"),
                       SimpleNamespace(operator=full))


# ----------------------------------------------------------------------------- CLI
def _tags(p: Path) -> dict[str, str]:
    import rasterio

    with rasterio.open(p) as ds:
        return dict(ds.tags())


def test_sr_operator_option_is_used_and_recorded(hr_tif: Path, tmp_path: Path) -> None:
    import rasterio

    out_full, out_card = tmp_path / "full.tif", tmp_path / "card.tif"
    base = ["sr", str(hr_tif), "--model", "carn_m_s2_x2", "--no-progress", "--float32"]
    assert call_cli([*base[:2], str(out_full), *base[2:], "--operator", "full"]) == 0
    assert call_cli([*base[:2], str(out_card), *base[2:]]) == 0
    tf, tc = _tags(out_full), _tags(out_card)
    assert (tf["eosr_model_operator_mode"], tf["eosr_model_operator_source"]) == ("full", "option")
    assert (tc["eosr_model_operator_mode"], tc["eosr_model_operator_source"]) == ("card", "default")
    full = Degradation.from_sensor("sentinel2", BANDS, 2)
    assert json.loads(tf["eosr_model_operator"])["sigma_hr_px"] == pytest.approx(full.sigmas, abs=1e-5)
    assert json.loads(tc["eosr_model_operator"])["description"] == "sentinel2 Wald PSF x2"
    with rasterio.open(out_full) as a, rasterio.open(out_card) as b:
        assert np.abs(a.read() - b.read()).mean() > 1e-4  # the operator changed the output


def test_sr_operator_file_of_another_scale_is_one_line_error(hr_tif: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.sensors import write_sensor

    f = write_sensor(tmp_path / "cal4.toml", {
        "name": "cal4", "bands": [{"name": b, "gsd_m": 40.0, "mtf_nyquist": 0.3, "kernel_scale": 4,
                                   "kernel_family": "gaussian", "kernel_y": [0.25, 0.5, 0.25],
                                   "kernel_x": [0.25, 0.5, 0.25]} for b in BANDS]})
    code = call_cli(["sr", str(hr_tif), str(tmp_path / "o.tif"), "--model", "carn_m_s2_x2", "--no-progress",
                     "--operator", str(f)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "scale 4" in err[0], err
    assert not (tmp_path / "o.tif").exists()
    code = call_cli(["sr", str(hr_tif), str(tmp_path / "o.tif"), "--model", "bicubic", "--no-progress",
                     "--operator", "full", "--sensor", "sentinel2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "physics-based" in err[0], err


# ----------------------------------------------------------------------------- training option
def _doc(out: Path, **data: object) -> dict:
    return {
        "name": "tiny_psf", "epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch": 32, "stride": 32,
        "progress": False, "threads": 1, "output": str(out),
        "model": {"name": "carn_m", "options": {"channels": 8, "global_skip": True, "bp_skip": 1,
                                                "bp_sensor": "sentinel2", "bp_wald": True}},
        "data": {"bands": BANDS, "sources": [
            {"kind": "eopatch", "path": str(EOPATCH), "dates": [0], "window": [0, 64, 0, 96],
             "location": "north", "split": "train"},
            {"kind": "eopatch", "path": str(EOPATCH), "dates": [0], "window": [64, 100, 0, 96],
             "location": "south", "split": "val"}]} | data,
        "losses": [{"name": "smooth_l1", "beta": 0.01}, {"name": "lr_fidelity"}],
    }


def test_scaled_operator_multiplies_the_catalog_mtf() -> None:
    from eosr.sensors import get_sensor

    cat = [b.mtf_nyquist for b in get_sensor("sentinel2").select(BANDS)]
    assert scaled_sensor_operator("sentinel2", BANDS, 2, 1.0).sigmas == Degradation.from_sensor(
        "sentinel2", BANDS, 2).sigmas
    for f in (0.7, 1.3):
        full = scaled_sensor_operator("sentinel2", BANDS, 2, f)
        assert [mtf_from_sigma(s, 2) for s in full.sigmas] == pytest.approx([f * m for m in cat], rel=1e-9)
        wald = scaled_sensor_operator("sentinel2", BANDS, 2, f, wald=True)
        assert all(w < s for w, s in zip(wald.sigmas, full.sigmas, strict=True))  # Wald extra blur is narrower
    with pytest.raises(ConfigError):
        scaled_sensor_operator("sentinel2", BANDS, 2, 0.0)


@pytest.mark.parametrize(("data", "match"), [({"mtf_jitter": [1.3, 0.7]}, "mtf_jitter"),
                                             ({"mtf_jitter": [0.0, 1.0]}, "mtf_jitter"),
                                             ({"mtf_jitter_modes": []}, "mtf_jitter_modes"),
                                             ({"mtf_jitter_modes": ["blur"]}, "mtf_jitter_modes")])
def test_jitter_config_errors_are_one_line(tmp_path: Path, data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse_config(_doc(tmp_path / "o", **data))
    assert "\n" not in str(e.value)


def test_jitter_builds_one_lr_set_per_operator_and_each_step_tells_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eosr.models.carn import CARN
    from eosr.train.loop import train

    cfg = parse_config(_doc(tmp_path / "o", mtf_jitter=[0.7, 1.3], mtf_jitter_steps=3,
                            mtf_jitter_modes=["wald", "full"]))
    assert jitter_grid(cfg) == [("wald", 0.7), ("wald", 1.0), ("wald", 1.3), ("full", 0.7), ("full", 1.0),
                                ("full", 1.3)]
    sp = build_datasets(cfg)
    assert len(sp.psf_train) == 6 and [m for m, _, _ in sp.psf_val] == ["wald", "full"]
    for op, lr in sp.psf_train:  # each LR set is its operator applied to the same HR (interior of a patch)
        assert lr.shape == sp.train_lr.shape
        own = op.downsample(sp.train_hr[0:1].double())[0].float()
        assert torch.allclose(lr[0][..., 4:-4, 4:-4], own[..., 4:-4, 4:-4], atol=1e-5)
    # the catalog Wald entry reproduces the plain Wald LR; the widest PSF gives the smoothest LR
    assert torch.allclose(sp.psf_train[1][1], sp.train_lr, atol=1e-6)

    def detail(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert detail(sp.psf_train[3][1]) < detail(sp.psf_train[1][1]) < detail(sp.psf_train[2][1])
    told: list[tuple[float, ...]] = []
    orig = CARN.set_operator

    def spy(self: CARN, op: Degradation) -> None:
        told.append(tuple(op.sigmas or ()))
        orig(self, op)

    monkeypatch.setattr(CARN, "set_operator", spy)
    res = train(cfg, splits=sp, resume=False)
    grid = {tuple(op.sigmas or ()) for op, _ in sp.psf_train}
    assert told and set(told[:2]) <= grid  # one drawn operator per step, then validation per form
    assert set(res.history[0]["val"]) == {"wald/sigma=0", "full/sigma=0"}
    assert res.model.operator.sigmas == pytest.approx(sp.operator.sigmas)  # given back after validation
    from eosr.models.checkpoint import read_card

    card = read_card(res.checkpoint)  # the card states the PSF range
    assert card["psf_range"]["mtf_factor"] == [0.7, 1.3] and card["psf_range"]["forms"] == ["wald", "full"]


def test_jitter_needs_a_model_with_physics(tmp_path: Path) -> None:
    from eosr.train.loop import train

    doc = _doc(tmp_path / "o", mtf_jitter=[0.9, 1.1], mtf_jitter_steps=2)
    doc["model"]["options"] = {"channels": 8, "global_skip": True}
    with pytest.raises(ConfigError, match="bp_skip"):
        train(parse_config(doc), resume=False)


# ----------------------------------------------------------------------------- shipped weights, benchmark
def test_shipped_psf_model_card_states_the_psf_range() -> None:
    ws = shipped_weights()
    if "carn_m_s2_x2_psf" not in ws:
        pytest.skip("carn_m_s2_x2_psf weights not shipped in this tree")
    assert ws["carn_m_s2_x2_psf"].with_suffix(".safetensors").stat().st_size <= 10 * 2**20
    m = load_model("carn_m_s2_x2_psf", scale=2, bands=BANDS)
    card = m.card
    rng = card["psf_range"]
    assert rng["mtf_factor"] == [0.7, 1.3] and set(rng["forms"]) == {"wald", "full"}
    assert card["training"]["config"]["data"]["mtf_jitter"] == [0.7, 1.3]
    assert m.operator is not None and m.operator.sigmas == pytest.approx(
        Degradation.from_sensor("sentinel2", BANDS, 2, wald=True).sigmas)
    assert card["name"] == "carn_m_s2_x2_psf" and "carn_m_s2_x2" in shipped_weights()  # both shipped
    # WiSE-FT of the fine-tune with its start (eosr.train.interpolate), alpha chosen on validation
    wi = card["weight_interpolation"]
    start = load_model("carn_m_s2_x2").card
    assert wi["start"] == "carn_m_s2_x2" and wi["start_sha256"] == start["weights_sha256"]
    assert 0.0 < wi["alpha"] < 1.0 and wi["alpha"] in wi["grid"]
    means = {float(a): sum(v["psnr"] for v in val.values()) / len(val) for a, val in wi["validation"].items()}
    assert max(means, key=lambda a: means[a]) == wi["alpha"] and card["metrics"]["validation"] == wi["validation"][
        str(wi["alpha"])]


def test_pooled_paired_bootstrap() -> None:
    from _eval_psf import paired_bootstrap, pooled_psnr, squared_errors

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(6, 2, 40, 40, generator=g, dtype=torch.float64)
    a = hr + 0.01 * torch.randn(hr.shape, generator=g, dtype=torch.float64)
    b = hr + 0.02 * torch.randn(hr.shape, generator=g, dtype=torch.float64)
    ea, eb = squared_errors(a, hr), squared_errors(b, hr)
    assert ea[1].tolist() == [2 * 24 * 24] * 6  # 8-px crop
    assert pooled_psnr(*ea) == pytest.approx(-10 * math.log10(float(((a - hr)[..., 8:-8, 8:-8] ** 2).mean())))
    d = paired_bootstrap(ea, eb)
    assert d["ci_low"] < d["diff"] < d["ci_high"] and d["diff"] == pytest.approx(20 * math.log10(2), abs=0.1)
    z = paired_bootstrap(ea, ea)
    assert z == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}
