"""Hallucination / omission / improvement: known answers and the probe battery on real Sentinel-2 data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from eosr.degrade.operator import Degradation
from eosr.errors import ShapeError
from eosr.metrics.hallucination import detail_decomposition, hallucination
from eosr.physics.registration import fourier_shift

M = 8


@pytest.fixture(scope="module")
def scene(s2_10m: np.ndarray) -> dict[str, np.ndarray]:
    hr = s2_10m[:, M:-M, M:-M]
    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2)
    lr = op.downsample(hr)
    bic = F.interpolate(torch.from_numpy(lr)[None], scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    return {"full": s2_10m, "hr": hr, "lr": lr, "bic": bic}


def shifted(full: np.ndarray, sy: float, sx: float) -> np.ndarray:
    if float(sy).is_integer() and float(sx).is_integer():
        iy, ix = int(sy), int(sx)
        return full[:, M - iy : full.shape[1] - M - iy, M - ix : full.shape[2] - M - ix]
    return fourier_shift(full, sy, sx)[:, M:-M, M:-M]


def scores(sr: np.ndarray, s: dict[str, np.ndarray], **kw: object) -> dict[str, float]:
    r = hallucination(sr, s["hr"], s["bic"], **kw)  # type: ignore[arg-type]
    return {k: float(v.value) for k, v in r.metrics.items()}


def test_hand_computed_decomposition() -> None:
    hr = np.array([[[1.0, 1.0, -1.0, 0.0]]])
    interp = np.zeros_like(hr)
    sr = np.array([[[0.5, 2.0, 1.0, 0.3]]])
    maps, sums = detail_decomposition(sr, hr, interp, np.ones(hr.shape, bool))
    # t = (1, 1, -1, 0), a = (0.5, 2, 1, 0.3): c = (0.5, 1, 0, 0)
    np.testing.assert_allclose(maps["improvement"][0, 0], [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(maps["hallucination"][0, 0], [0.0, 1.0, 1.0, 0.3])
    np.testing.assert_allclose(maps["omission"][0, 0], [0.5, 0.0, 1.0, 0.0])
    assert sums["truth"][0] == 3.0
    r = hallucination(sr[:, :, None, :].repeat(2, 2)[..., :4].reshape(1, 2, 4), hr.repeat(2, 1).reshape(1, 2, 4),
                      interp.repeat(2, 1).reshape(1, 2, 4), compensate=False)
    assert r.metrics["hallucination"].value == pytest.approx(2.3 / 3)
    assert r.metrics["improvement"].value == pytest.approx(1.5 / 3)
    assert r.metrics["omission"].value == pytest.approx(1.5 / 3)


def test_improvement_plus_omission_is_one(scene: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    sr = scene["hr"] + 0.01 * rng.standard_normal(scene["hr"].shape)
    r = hallucination(sr, scene["hr"], scene["bic"])
    tot = r.metrics["improvement"].value + r.metrics["omission"].value
    assert tot == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        np.asarray(r.metrics["improvement"].per_band) + np.asarray(r.metrics["omission"].per_band), 1.0, atol=1e-12
    )
    assert r.maps["hallucination"].shape == scene["hr"].shape


# ---------------------------------------------------------------- probe battery (real imagery)
def test_probe_perfect(scene: dict[str, np.ndarray]) -> None:
    s = scores(scene["hr"], scene)
    assert s["hallucination"] < 1e-9 and s["omission"] < 1e-9 and s["improvement"] == pytest.approx(1.0)


def test_probe_bicubic_adds_nothing(scene: dict[str, np.ndarray]) -> None:
    s = scores(scene["bic"], scene)
    assert s["hallucination"] < 0.05 and s["improvement"] < 0.05 and s["omission"] > 0.95
    assert scores(scene["bic"], scene, compensate=False)["hallucination"] == 0.0


@pytest.mark.parametrize("sy,sx", [(0.5, 0.0), (1.0, 1.0), (2.0, -2.0)])
def test_probe_shift_is_not_hallucination(scene: dict[str, np.ndarray], sy: float, sx: float) -> None:
    sr = shifted(scene["full"], sy, sx)
    r = hallucination(sr, scene["hr"], scene["bic"])
    assert r.metrics["hallucination"].value < 0.05
    assert r.alignments[0].shift_y == pytest.approx(sy, abs=0.1)
    assert r.alignments[0].shift_x == pytest.approx(sx, abs=0.1)
    # without compensation the same SR would read as heavy hallucination (the opensr-test failure)
    assert scores(sr, scene, compensate=False)["hallucination"] > 0.3


def test_probe_gain_shows_as_gain(scene: dict[str, np.ndarray]) -> None:
    r = hallucination(1.1 * scene["hr"], scene["hr"], scene["bic"])
    assert r.metrics["hallucination"].value < 1e-6
    assert r.alignments[0].gain_pooled == pytest.approx(1.10, abs=0.01)


def test_probe_stripes_are_hallucination(scene: dict[str, np.ndarray]) -> None:
    hr = scene["hr"]
    xx = np.arange(hr.shape[-1])
    sr = hr + 0.02 * np.sin(2 * np.pi * xx / 4)[None, None, :]
    s = scores(sr, scene)
    assert s["hallucination"] > 0.5
    hmap = hallucination(sr, hr, scene["bic"]).maps["hallucination"]
    assert np.nanmean(hmap) > 10 * np.nanmean(hallucination(hr, hr, scene["bic"]).maps["hallucination"]) + 1e-3


def test_probe_blur_and_noise(scene: dict[str, np.ndarray]) -> None:
    hr = scene["hr"]
    blurred = np.stack([ndimage.gaussian_filter(b, 1.0) for b in hr])
    s = scores(blurred, scene)
    assert s["omission"] > 0.5 and s["hallucination"] < 0.1  # blur omits detail, invents little
    rng = np.random.default_rng(0)
    n = scores(hr + 0.01 * rng.standard_normal(hr.shape), scene)
    assert n["hallucination"] > 0.3  # noise is detail HR does not have


def test_nan_and_mask(scene: dict[str, np.ndarray]) -> None:
    sr = scene["hr"].copy()
    sr[:, 10:20, 10:20] = np.nan
    r = hallucination(sr, scene["hr"], scene["bic"])
    assert r.metrics["hallucination"].value < 1e-9
    assert np.isnan(r.maps["hallucination"][:, 15, 15]).all()
    with pytest.raises(ShapeError, match="no valid pixel"):
        hallucination(scene["hr"], scene["hr"], scene["bic"], mask=np.zeros(scene["hr"].shape[-2:], bool))


def test_bad_input(scene: dict[str, np.ndarray]) -> None:
    with pytest.raises(ShapeError, match="band axis"):
        hallucination(scene["hr"][0], scene["hr"][0], scene["bic"][0])
    with pytest.raises(ShapeError, match="differ"):
        hallucination(scene["hr"], scene["hr"], scene["lr"])
    with pytest.raises(ShapeError, match="no detail"):
        hallucination(scene["bic"], scene["bic"], scene["bic"])
