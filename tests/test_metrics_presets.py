"""Published-protocol presets: PROBA-V cPSNR (Kelvins) on fixtures in the PROBA-V layout, and the
WorldStrat / MuS2-style shift- and bias-searched PSNR / SSIM on real Sentinel-2 data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PROBAV
from eosr.errors import DataError, ShapeError
from eosr.metrics.presets import (
    cpsnr,
    probav_score,
    read_norm_csv,
    read_probav_scene,
    shift_bias_psnr_ssim,
)
from eosr.physics.registration import fourier_shift

NORM = PROBAV / "norm.csv"
K = 30  # DN amplitude of the checkerboard error


def _png(path: Path, a: np.ndarray) -> None:
    Image.fromarray(a).save(path)


@pytest.fixture()
def imgset(tmp_path: Path) -> Path:
    """imgset0000 in PROBA-V layout: HR.png (384^2, 16-bit), SM.png, two LR/QM frames; plus an SR."""
    rng = np.random.default_rng(3)
    hr = rng.integers(2000, 14000, (384, 384)).astype(np.uint16)  # 14-bit values in 16-bit PNG
    sm = np.ones((384, 384), np.uint8) * 255
    sm[100:140, :] = 0  # 40 cloudy rows
    sr = np.full((384, 384), 7000, np.uint16)
    yy, xx = np.mgrid[0:378, 0:378]
    checker = np.where((yy + xx) % 2 == 0, K, -K)
    # best alignment at HR offset (6, 6): only the 7 x 7 search reaches it
    sr[3:381, 3:381] = (hr[6:384, 6:384].astype(np.int64) + 100 + checker).astype(np.uint16)
    d = tmp_path / "imgset0000"
    d.mkdir()
    _png(d / "HR.png", hr)
    _png(d / "SM.png", sm)
    for k in range(2):
        _png(d / f"LR{k:03d}.png", hr[::3, ::3].copy())
        _png(d / f"QM{k:03d}.png", np.full((128, 128), 255, np.uint8))
    np.save(tmp_path / "sr.npy", sr)
    return d


def test_cpsnr_hand_computed(imgset: Path) -> None:
    scene = read_probav_scene(imgset)
    assert scene.hr is not None and scene.sm is not None
    assert scene.hr.dtype == np.uint16 and scene.hr.shape == (384, 384) and scene.lr.shape == (2, 128, 128)
    sr = np.load(imgset.parent / "sr.npy")
    r = cpsnr(sr, scene.hr, scene.sm)
    # at (6, 6) the error is the zero-mean checkerboard +-K on every clear row: cMSE = (K / 65535)^2
    assert r.value == pytest.approx(20 * math.log10(65535 / K), abs=1e-9)
    assert r.extra["cmse"] == pytest.approx((K / 65535) ** 2, rel=1e-9)
    assert r.extra["shift"] == [6, 6] and r.extra["n_shifts"] == 49
    assert r.extra["n_clear"] == 378 * 378 - 40 * 378


def test_cpsnr_is_not_the_6x6_variant(imgset: Path) -> None:
    scene = read_probav_scene(imgset)
    sr = np.load(imgset.parent / "sr.npy").astype(np.float64) / 65535
    hr = scene.hr.astype(np.float64) / 65535  # type: ignore[union-attr]
    sm = scene.sm
    best6 = -math.inf
    for u in range(6):  # the popular but wrong loop
        for v in range(6):
            m = sm[u : u + 378, v : v + 378]  # type: ignore[index]
            d = (hr[u : u + 378, v : v + 378] - sr[3:381, 3:381])[m]
            best6 = max(best6, -10 * math.log10(((d - d.mean()) ** 2).mean()))
    assert cpsnr(np.load(imgset.parent / "sr.npy"), scene.hr, scene.sm).value > best6 + 30


def test_cpsnr_bias_and_clear_mask(imgset: Path) -> None:
    scene = read_probav_scene(imgset)
    hr = scene.hr.astype(np.float64)  # type: ignore[union-attr]
    sr = hr - 500.0  # a pure brightness bias is free
    perfect = cpsnr(sr, hr, scene.sm)
    assert perfect.value == 120.0 and perfect.extra["capped"] is True  # the one PSNR cap
    noisy = sr.copy()
    noisy[100:140, :] += 3000  # errors only under cloud: ignored through SM
    assert cpsnr(noisy, hr, scene.sm).value > cpsnr(noisy, hr, None).value + 20


def test_norm_csv_and_score(imgset: Path) -> None:
    norm = read_norm_csv(NORM)
    assert len(norm) == 1450 and norm["imgset0000"] == pytest.approx(52.352172662454414)
    assert "imgset1449" in norm  # last line, no trailing newline
    scene = read_probav_scene(imgset)
    sr = np.load(imgset.parent / "sr.npy")
    score = probav_score(sr, scene.hr, scene.sm, norm["imgset0000"])
    assert score == pytest.approx(52.352172662454414 / (20 * math.log10(65535 / K)))


def test_bad_probav_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_norm_csv(tmp_path / "norm.csv")
    (tmp_path / "bad.csv").write_text("imgset0000 1.0\nimgset0001\n")
    with pytest.raises(DataError, match="expected"):
        read_norm_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="not a PROBA-V"):
        read_probav_scene(tmp_path / "nope")
    with pytest.raises(ShapeError, match="empty"):
        cpsnr(np.ones((384, 384)), np.ones((384, 384)), np.zeros((384, 384)))
    with pytest.raises(ShapeError, match="one band"):
        cpsnr(np.ones((2, 384, 384)), np.ones((2, 384, 384)))


def test_shift_bias_search_on_real_data(s2_10m: np.ndarray) -> None:
    hr = s2_10m[:, 4:-4, 4:-4]
    sr = s2_10m[:, 3:-5, 6:-2] + 0.01  # SR(r, c) = HR(r - 1, c + 2) plus a brightness bias
    res = shift_bias_psnr_ssim(sr, hr, border=3)
    assert res["psnr_shift_bias"].value == 120.0 and res["psnr_shift_bias"].extra["capped"] is True
    np.testing.assert_array_equal(res["psnr_shift_bias"].per_band, 120.0)
    assert res["psnr_shift_bias"].extra["shift"] == [-1.0, 2.0]
    assert res["ssim_shift_bias"].value == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(res["psnr_shift_bias"].extra["bias"], -0.01, atol=1e-12)


def test_shift_bias_subpixel(s2_10m: np.ndarray) -> None:
    moved = fourier_shift(s2_10m, 0.25, -0.5)[:, 8:-8, 8:-8]
    hr = s2_10m[:, 8:-8, 8:-8]
    res = shift_bias_psnr_ssim(moved, hr, border=2)
    u, v = res["psnr_shift_bias"].extra["shift"]
    assert (u, v) == (-0.25, 0.5)
    integer_only = shift_bias_psnr_ssim(moved, hr, border=2, subpixel_step=0)
    assert res["psnr_shift_bias"].value > integer_only["psnr_shift_bias"].value + 3
