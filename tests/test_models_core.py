"""Registry, interpolation baselines, CARN / CARN-M and the checkpoint format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import eosr.models as M
from eosr.degrade.operator import Degradation
from eosr.errors import ModelError, ShapeError
from eosr.models.interp import lanczos_taps, lanczos_upsample
from eosr.physics.registration import estimate_shift, fourier_shift

INTERP = ("nearest", "bilinear", "bicubic", "lanczos")
S2_10M = ("B02", "B03", "B04", "B08")


def test_registry_lists_every_model_without_importing_them() -> None:
    code = (
        "import sys, eosr.models as M; names = M.list_models(); "
        "print(','.join(names)); print(any(m.startswith(('eosr.models.carn', 'eosr.models.interp', "
        "'eosr.models.highresnet')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    names = out[0].split(",")
    for n in ("nearest", "bilinear", "bicubic", "lanczos", "backprojection", "carn", "carn_m", "s2_multires",
              "mi_median", "highresnet"):
        assert n in names
    assert out[1] == "False"


def test_unknown_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown model 'srgan'"):
        M.get_model("srgan")
    with pytest.raises(ModelError, match="bad option"):
        M.get_model("bicubic", colour=True)


@pytest.mark.parametrize("name", INTERP)
@pytest.mark.parametrize("scale", [2, 3])
def test_interpolators_shapes_and_constants(name: str, scale: int) -> None:
    m = M.get_model(name, scale=scale)
    for c in (1, 4, 13):
        x = torch.full((2, c, 7, 5), 0.3172)
        y = m(x)
        assert y.shape == (2, c, 7 * scale, 5 * scale)
        torch.testing.assert_close(y, torch.full_like(y, 0.3172), atol=1e-6, rtol=0)
    assert m.n_params() == 0


def test_predict_keeps_numpy_and_3d() -> None:
    m = M.get_model("bicubic", scale=2)
    a = np.random.default_rng(0).random((3, 9, 11)).astype(np.float32)
    out = M.predict(m, a)
    assert isinstance(out, np.ndarray) and out.shape == (3, 18, 22)
    with pytest.raises(ShapeError, match="2-D"):
        M.predict(m, a[0])


def test_lanczos_taps_known_values() -> None:
    taps = lanczos_taps(2)
    # phase 0 samples u = j - 1/4: weight of x[j] is L(-1/4) / sum, sinc(t) sinc(t/3) at t = 0.25
    assert taps.shape == (2, 7)
    np.testing.assert_allclose(taps.sum(1), 1.0)
    np.testing.assert_allclose(taps[0], taps[1][::-1], atol=1e-15)  # mirror phases
    k = np.arange(-3, 4)
    tt = -0.25 - k
    ref = np.sinc(tt) * np.sinc(tt / 3)
    ref[np.abs(tt) >= 3] = 0
    np.testing.assert_allclose(taps[0], ref / ref.sum(), atol=1e-12)
    assert taps[0][3] > 0.85 and taps[0][2] > taps[0][4]  # nearest taps dominate, x[j-1] closer than x[j+1]


def test_lanczos_matches_pillow_in_the_interior() -> None:
    from PIL import Image

    a = np.random.default_rng(1).random((20, 24)).astype(np.float32)
    ref = np.asarray(Image.fromarray(a, mode="F").resize((48, 40), Image.Resampling.LANCZOS))
    ours = lanczos_upsample(torch.from_numpy(a)[None, None], 2)[0, 0].numpy()
    np.testing.assert_allclose(ours[8:-8, 8:-8], ref[8:-8, 8:-8], atol=1e-5)


def test_bilinear_matches_scikit_image() -> None:
    from skimage.transform import resize

    a = np.random.default_rng(2).random((3, 10, 13))
    ref = resize(a, (3, 30, 39), order=1, mode="edge", anti_aliasing=False)
    ours = M.get_model("bilinear", scale=3)(torch.from_numpy(a)[None])[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("name", INTERP)
@pytest.mark.parametrize("scale", [2, 3])
def test_baselines_are_aligned_with_hr_pixel_is_area(s2_10m: np.ndarray, name: str, scale: int) -> None:
    hr = s2_10m
    op = Degradation.from_sensor("sentinel2", S2_10M, scale)
    lr = torch.from_numpy(op.downsample(hr)).float()[None]
    sr = M.get_model(name, scale=scale)(lr)[0].numpy()
    # compare with the PSF-blurred HR (same frequency content, so the estimator is not biased by detail)
    dy, dx = estimate_shift(op.blur(hr), sr)
    assert abs(dy) < 0.06 and abs(dx) < 0.06, (dy, dx)
    dy, dx = estimate_shift(hr, sr)
    assert abs(dy) < 0.12 and abs(dx) < 0.12, (dy, dx)
    # the check can fail: a quarter HR pixel off the grid is detected
    bdy, bdx = estimate_shift(op.blur(hr), fourier_shift(sr, 0.25, -0.25))
    assert bdy > 0.15 and bdx < -0.15


@pytest.mark.parametrize("name", ["bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_interpolating_d_of_a_ramp_is_centred_on_the_ramp(name: str, scale: int) -> None:
    """Known answer: a Gaussian PSF keeps a linear ramp, so up(D(ramp)) - ramp has zero mean over whole
    periods (the interpolation error of a symmetric kernel is odd in the phase) only if up and D share
    the pixel-is-area grid; a grid offset e gives a mean error of slope * e. Bilinear is exact."""
    n = 12 * scale
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    ramp = (0.2 + 0.003 * yy - 0.002 * xx)[None]
    op = Degradation.from_mtf(0.3, scale)
    lr = torch.from_numpy(op.downsample(ramp))[None]
    sr = M.get_model(name, scale=scale)(lr)[0].numpy()
    b = 4 * scale
    err = (sr - ramp)[:, b:-b, b:-b]
    assert abs(err.mean()) < 1e-9
    if name == "bilinear":
        assert np.abs(err).max() < 1e-12
    # the test can fail: decimating pixel-is-point (blur, then every r-th HR pixel) puts LR pixel i at HR i r
    # instead of the block centre i r + (r - 1)/2, a (r - 1)/2 px offset
    point = torch.from_numpy(op.blur(ramp)[:, ::scale, ::scale])[None]
    wrong = M.get_model(name, scale=scale)(point)[0].numpy()
    assert abs((wrong - ramp)[:, b:-b, b:-b].mean()) > 0.0009 * (scale - 1) / 2


# ------------------------------------------------------------------------------------------- CARN


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (dict(name="carn", scale=2), 964_163),
        (dict(name="carn", scale=3), 1_148_803),
        (dict(name="carn", scale=4), 1_111_875),
        (dict(name="carn", scale=2, multi_scale=True), 1_591_963 - 24),
        (dict(name="carn_m", scale=2, multi_scale=True), 414_787),
    ],
)
def test_carn_parameter_counts_match_the_paper(kw: dict, expected: int) -> None:
    name = kw.pop("name")
    m = M.get_model(name, n_bands=3, **kw)
    assert m.n_params() == expected
    # the frozen mean shift of the original code is replaced by 2 C normalisation buffers, not parameters
    assert sum(b.numel() for b in m.buffers()) == 6


@pytest.mark.parametrize("name", ["carn", "carn_m"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_carn_shapes(name: str, scale: int) -> None:
    for c in (1, 13):
        m = M.get_model(name, scale=scale, n_bands=c, channels=8, group=4 if name == "carn_m" else 1)
        y = m(torch.rand(1, c, 7, 9))
        assert y.shape == (1, c, 7 * scale, 9 * scale)
        assert torch.isfinite(y).all()


def test_carn_rejects_wrong_band_count_and_scale() -> None:
    m = M.get_model("carn_m", scale=2, bands=["b2", "B3", "b04", "B8"], channels=8)
    assert m.spec.bands == S2_10M
    with pytest.raises(ShapeError, match="expects 4 bands"):
        m(torch.rand(1, 3, 8, 8))
    with pytest.raises(ModelError, match="scales 2, 3 and 4"):
        M.get_model("carn", scale=5)


def test_carn_receptive_field_bounds_the_influence() -> None:
    torch.manual_seed(0)
    m = M.get_model("carn_m", scale=2, n_bands=2, channels=8).eval()
    x = torch.rand(1, 2, 61, 61)
    x2 = x.clone()
    x2[..., 30, 30] += 1.0
    with torch.no_grad():
        d = (m(x2) - m(x)).abs().sum(1)[0]
    rows = torch.nonzero(d.sum(1) > 0).flatten()
    reach = max(61 - int(rows.min()), int(rows.max()) - 60) / 2  # in LR pixels from the perturbed pixel
    assert 0 < reach <= m.spec.receptive_field


def test_carn_normalisation_global_skip_and_variance_head() -> None:
    torch.manual_seed(0)
    m = M.get_model("carn_m", scale=2, n_bands=2, channels=8, global_skip=True, variance_head="gaussian")
    # zero the residual branch: with the global skip the model is exactly bicubic in reflectance
    torch.nn.init.zeros_(m.exit.weight)
    torch.nn.init.zeros_(m.exit.bias)
    m.set_normalisation([0.1, 0.3], [0.05, 0.2])
    x = torch.rand(1, 2, 9, 7)
    sr, s = m(x, return_logvar=True)
    torch.testing.assert_close(sr, M.get_model("bicubic", scale=2)(x), atol=1e-6, rtol=0)
    assert s.shape == sr.shape
    # s is in reflectance units: with a zero head, s = 2 log std per band
    torch.nn.init.zeros_(m.logvar.weight)
    torch.nn.init.zeros_(m.logvar.bias)
    _, s = m(x, return_logvar=True)
    torch.testing.assert_close(s[0, :, 0, 0], 2 * torch.log(torch.tensor([0.05, 0.2])))
    with pytest.raises(ModelError, match="std"):
        m.set_normalisation([0, 0], [1, 0])
    plain = M.get_model("carn_m", scale=2, n_bands=2, channels=8)
    with pytest.raises(ModelError, match="variance head"):
        plain(x, return_logvar=True)


def test_mc_dropout_gives_varying_samples_in_eval() -> None:
    torch.manual_seed(0)
    m = M.get_model("carn_m", scale=2, n_bands=1, channels=8, dropout=0.2)
    x = torch.rand(1, 1, 8, 8)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    M.enable_mc_dropout(m)
    assert not torch.equal(m(x), m(x))
    assert not m.training


# ------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_card(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = M.get_model("carn_m", scale=2, bands=S2_10M, channels=8, global_skip=True, variance_head="laplace")
    m.set_normalisation([0.05, 0.07, 0.06, 0.25], [0.03, 0.03, 0.04, 0.08])
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True)
    card = {"sensor_operator": op.describe(), "training": {"data": "test", "split": {"train": ["a"], "val": ["b"]}},
            "metrics": {"psnr": float("inf"), "psnr_gain_db": 1.5}}
    w, j = M.save_checkpoint(m, tmp_path / "ck.safetensors", card)
    assert w.name == "ck.safetensors" and j.name == "ck.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]  # no temp files left
    c = json.loads(j.read_text())  # strict JSON: inf became null
    assert c["metrics"]["psnr"] is None and c["bands"] == list(S2_10M) and c["scale"] == 2
    assert c["normalisation"]["std"] == pytest.approx([0.03, 0.03, 0.04, 0.08])
    assert c["architecture"]["model"] == "carn_m" and c["n_params"] == m.n_params()
    assert c["sensor_operator"]["mtf_at_lr_nyquist"] and c["eosr_version"]
    for p in (tmp_path / "ck", str(j), w):
        m2 = M.load_checkpoint(p, scale=2, bands=["B2", "B3", "B4", "B8"])
        x = torch.rand(1, 4, 11, 9)
        with torch.no_grad():
            a, b = m(x, return_logvar=True), m2(x, return_logvar=True)
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        assert m2.spec.mean == m.spec.mean and m2.spec.name == "ck" and not m2.training
    assert M.load_model(tmp_path / "ck").card["training"]["split"]["val"] == ["b"]


def test_checkpoint_weights_are_byte_reproducible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same model saved again gives the same bytes (the safetensors writer orders its metadata at random:
    16 saves of two keys all in one order by chance has probability 2 * 2**-16)."""
    from safetensors import safe_open

    m = M.get_model("carn_m", scale=2, bands=S2_10M, channels=8)
    blobs = {M.save_checkpoint(m, tmp_path / f"ck{i}", {})[0].read_bytes() for i in range(16)}
    assert len(blobs) == 1
    blob = blobs.pop()
    n = int.from_bytes(blob[:8], "little")
    assert blob[8: 8 + n].startswith(b'{"__metadata__":{"format":"eosr-checkpoint/1","model":"carn_m"},')
    with safe_open(str(tmp_path / "ck0.safetensors"), "pt") as f:  # still a valid file for the reference reader
        assert f.metadata() == {"format": "eosr-checkpoint/1", "model": "carn_m"}
        for k, v in m.state_dict().items():
            torch.testing.assert_close(f.get_tensor(k), v, atol=0, rtol=0)


def test_checkpoint_wrong_bands_scale_or_weights_is_a_model_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = M.get_model("carn_m", scale=2, bands=S2_10M, channels=8)
    M.save_checkpoint(m, tmp_path / "ck", {})
    with pytest.raises(ModelError, match=r"x2 model, but x4 was requested"):
        M.load_checkpoint(tmp_path / "ck", scale=4)
    with pytest.raises(ModelError, match=r"trained on bands B02,B03,B04,B08, but B02,B03,B04,B05"):
        M.load_model(tmp_path / "ck", bands=["B02", "B03", "B04", "B05"])
    with pytest.raises(ModelError, match="takes 4 bands, but 3"):
        M.load_checkpoint(tmp_path / "ck", n_bands=3)
    # weights of another architecture under this card
    other = M.get_model("carn_m", scale=2, bands=S2_10M, channels=16)
    M.save_checkpoint(other, tmp_path / "other", {})
    (tmp_path / "ck.safetensors").write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(ModelError, match="do not match their card"):  # the card's hash catches the swap
        M.load_checkpoint(tmp_path / "ck")
    card = json.loads((tmp_path / "ck.json").read_text())  # a card whose hash was updated but not its architecture
    card["weights_sha256"] = json.loads((tmp_path / "other.json").read_text())["weights_sha256"]
    (tmp_path / "ck.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not fit architecture carn_m"):
        M.load_checkpoint(tmp_path / "ck")
    with pytest.raises(ModelError, match="no model or checkpoint"):
        M.load_model(tmp_path / "missing")


def test_shipped_weights_are_listed_and_loadable(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from eosr.models import registry

    m = M.get_model("carn_m", scale=2, bands=S2_10M, channels=8)
    M.save_checkpoint(m, tmp_path / "carn_m_s2_x2", {"metrics": {"psnr": 40.0}})
    (tmp_path / "orphan.json").write_text("{}")  # a card without weights is not listed
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert "carn_m_s2_x2" in M.list_models() and "orphan" not in M.list_models()
    got = M.get_model("carn_m_s2_x2", scale=2, bands=S2_10M)
    assert got.spec.name == "carn_m_s2_x2"
    assert M.describe_model("carn_m_s2_x2")["params"] == m.n_params()
    with pytest.raises(ModelError, match="x3 was requested"):
        M.get_model("carn_m_s2_x2", scale=3)


def test_carn_bp_skip_starts_at_backprojection_and_declares_its_field(tmp_path: Path) -> None:
    from eosr.models.backprojection import BackProjection, SpatialBackProjection
    from eosr.models.registry import build_from_arch

    kw = dict(global_skip=True, bp_skip=3, bp_sensor="sentinel2", bp_wald=True)
    m = M.get_model("carn_m", scale=2, bands=list(S2_10M), channels=8, **kw).eval()
    m.set_normalisation([0.05, 0.08, 0.07, 0.3], [0.02, 0.03, 0.04, 0.1])
    lr = 0.05 + 0.3 * torch.rand(1, 4, 17, 23, generator=torch.Generator().manual_seed(0))
    bp = BackProjection(2, list(S2_10M), sensor="sentinel2", wald=True, iterations=3)
    with torch.no_grad():
        assert float((m(lr) - bp(lr.double()).float()).abs().max()) < 1e-5  # zero exit: untrained = BP
    assert isinstance(m.bp, SpatialBackProjection)
    assert m.spec.receptive_field >= max(m.bp.receptive_field(), bp.spec.receptive_field)
    # the option survives the architecture record (checkpoint JSON) and defaults stay untouched
    assert build_from_arch(json.loads(json.dumps(m.arch))).bp is not None
    assert M.get_model("carn_m", scale=2, n_bands=4, multi_scale=True).bp is None
    with pytest.raises(ModelError, match="needs global_skip"):
        M.get_model("carn_m", scale=2, bands=list(S2_10M), channels=8, bp_skip=2, bp_sensor="sentinel2")
    pytest.importorskip("onnxruntime")
    from eosr.models.export import export_onnx

    rep = export_onnx(m, tmp_path / "m.onnx", height=20, width=20)
    assert rep["max_abs_diff"] < 1e-4
