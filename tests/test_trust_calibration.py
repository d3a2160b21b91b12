"""Calibration: sparsification/AUSE, Spearman, coverage, conformal recalibration, and a held-out real-data test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import EOPATCH
from eosr.errors import DataError, ShapeError
from eosr.trust.calibration import (
    ConformalCalibration,
    calibration_path,
    calibration_table,
    coverage,
    fit_conformal,
    group_weights,
    interval_z,
    sparsification,
    spearman,
    weighted_conformal_quantile,
)

RNG = np.random.default_rng(1234)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ause_of_oracle_is_zero_and_random_is_positive() -> None:
    err = np.abs(RNG.normal(size=20000))
    sp = sparsification(err, err)
    assert sp.ause == 0.0
    assert np.array_equal(sp.curve, sp.oracle)
    rand = sparsification(err, RNG.random(err.size))
    assert rand.ause > 0.3  # random ranking: curve stays near 1 while the oracle drops
    assert abs(rand.curve[-1] - 1.0) < 0.15
    assert sparsification(err, err, metric="rmse").ause == 0.0


def test_sparsification_hand_example() -> None:
    err = np.array([4.0, 3.0, 2.0, 1.0])
    unc = np.array([1.0, 2.0, 3.0, 4.0])  # exactly inverted ranking
    sp = sparsification(err, unc, n_points=4)
    # removing 0,1,2 of the highest-uncertainty pixels leaves MAE 2.5, 3, 3.5 (oracle 2.5, 2, 1.5); / E(0) = 2.5
    assert np.allclose(sp.curve, [1.0, 3.0 / 2.5, 3.5 / 2.5, 4.0 / 2.5])
    assert np.allclose(sp.oracle, [1.0, 2.0 / 2.5, 1.5 / 2.5, 1.0 / 2.5])
    assert sp.ause == pytest.approx(np.trapezoid(sp.curve - sp.oracle, [0, 0.25, 0.5, 0.75]))
    json.dumps(sp.to_json(), allow_nan=False)


def test_coverage_of_exact_gaussian_and_laplace_residuals() -> None:
    s = RNG.uniform(0.001, 0.05, 400_000)
    e = RNG.normal(0.0, s)
    for p in (0.5, 0.8, 0.9, 0.95):
        assert coverage(e, s, p) == pytest.approx(p, abs=0.004)
    b = RNG.uniform(0.001, 0.05, 400_000)
    el = RNG.laplace(0.0, b)
    std = b * np.sqrt(2.0)
    assert coverage(el, std, 0.9, dist="laplace") == pytest.approx(0.9, abs=0.004)
    assert coverage(el, std, 0.99, dist="laplace") == pytest.approx(0.99, abs=0.002)
    # same variance, heavier tails: at 99 % the Gaussian interval (2.576 sigma) covers only 1 - e^(-2.576 sqrt 2)
    assert coverage(el, std, 0.99, dist="gaussian") == pytest.approx(1 - np.exp(-2.5758293 * np.sqrt(2)), abs=0.002)
    assert interval_z(0.9) == pytest.approx(1.6448536, abs=1e-6)


def test_nan_and_mask_are_ignored() -> None:
    e = RNG.normal(size=(2, 50, 50))
    s = np.ones_like(e)
    e2 = e.copy()
    e2[0, :10] = np.nan
    mask = np.ones((50, 50), bool)
    mask[-5:] = False
    got = coverage(e2, s, 0.9, mask=mask)
    ok = np.isfinite(e2) & mask[None]
    assert got == pytest.approx(np.mean(np.abs(e2[ok]) <= 1.6448536269514722))
    assert np.isfinite(spearman(np.abs(e2), np.abs(e2) + 1, mask=mask))
    with pytest.raises(ShapeError):
        coverage(e, s[:1])
    with pytest.raises(DataError, match="no valid"):
        coverage(np.full(3, np.nan), np.ones(3))


def test_spearman_cross_check() -> None:
    e = np.abs(RNG.normal(size=5000))
    assert spearman(e, np.exp(3 * e)) == pytest.approx(1.0)  # monotone transform
    u = e + RNG.normal(scale=0.5, size=e.size)
    want = np.corrcoef(stats.rankdata(e), stats.rankdata(u))[0, 1]
    assert spearman(e, u) == pytest.approx(want, abs=1e-9)
    assert spearman(torch.tensor(e), torch.tensor(-e)) == pytest.approx(-1.0)


def test_conformal_recalibration_restores_coverage(tmp_path: object) -> None:
    s_true = RNG.uniform(0.005, 0.05, 200_000)
    e = RNG.normal(0.0, s_true)
    s_pred = s_true / 3.0  # overconfident by 3x
    cal = fit_conformal(e[:100_000], s_pred[:100_000], p=0.9)
    assert cal.factor == pytest.approx(3.0, rel=0.03)
    assert cal.coverage_before < 0.5
    assert coverage(e[100_000:], cal.apply(s_pred[100_000:]), 0.9) == pytest.approx(0.9, abs=0.006)
    path = calibration_path(tmp_path / "carn_s2.safetensors")  # type: ignore[operator]
    assert path.name == "carn_s2.calibration.json"
    cal.save(path)
    back = ConformalCalibration.load(path)
    assert back == cal
    json.loads(path.read_text())
    with pytest.raises(DataError):
        ConformalCalibration.load(path.with_name("missing.json"))


def test_weighted_conformal_quantile_known_answers() -> None:
    """Equal weights: the ceil((n+1) p)-th smallest score; group weights: each group counts the same."""
    s = np.arange(1.0, 11.0)  # 1..10
    assert weighted_conformal_quantile(s, np.ones(10), 0.9) == 10.0  # ceil(11 * 0.9) = 10
    assert weighted_conformal_quantile(s, np.ones(10), 0.5) == 6.0  # ceil(5.5) = 6
    assert weighted_conformal_quantile(s[::-1], np.ones(10), 0.5) == 6.0  # order of the input does not matter
    # a 2-sample group of large scores outweighs 98 small ones once each group carries the same weight
    big = np.concatenate([np.full(98, 1.0), [5.0, 6.0]])
    grp = np.array(["a"] * 98 + ["b", "b"])
    w = group_weights(grp)
    assert np.allclose(w[:98], 1 / 98) and np.allclose(w[98:], 0.5)
    assert weighted_conformal_quantile(big, np.ones(100), 0.9) == 1.0
    # total 2, test weight 0.5: need cumulative weight >= 0.9 * 2.5 = 2.25 > 2: the largest score
    assert weighted_conformal_quantile(big, w, 0.9) == 6.0
    assert weighted_conformal_quantile(big, w, 0.6) == 5.0  # 1 + 0.5 >= 0.6 * 2.5 = 1.5
    with pytest.raises(DataError):
        weighted_conformal_quantile(s, -np.ones(10), 0.9)
    with pytest.raises(ShapeError):
        weighted_conformal_quantile(s, np.ones(3), 0.9)


def test_location_weighted_conformal_covers_each_location() -> None:
    """A calibration set 95 % from a calm place and 5 % from a place where the std is 2x too small: the
    pooled factor under-covers the second place, the location-balanced one covers both at >= 0.9 on average."""
    n1, n2 = 190_000, 10_000
    s = RNG.uniform(0.005, 0.05, n1 + n2)
    e = RNG.normal(0.0, s * np.r_[np.ones(n1), 2 * np.ones(n2)])
    loc = np.r_[np.zeros(n1, int), np.ones(n2, int)]
    pooled = fit_conformal(e, s, p=0.9)
    bal = fit_conformal(e, s, p=0.9, weights=group_weights(loc))
    assert bal.kind == "weighted split-conformal scaling" and pooled.kind == "split-conformal scaling"
    assert bal.factor > pooled.factor * 1.1
    cov = [coverage(e[loc == k], bal.apply(s[loc == k]), 0.9) for k in (0, 1)]
    assert np.mean(cov) == pytest.approx(0.9, abs=0.01)
    assert coverage(e[loc == 1], pooled.apply(s[loc == 1]), 0.9) < 0.7
    assert bal.coverage_before == pytest.approx(np.mean([coverage(e[loc == k], s[loc == k], 0.9) for k in (0, 1)]))
    same = fit_conformal(e, s, p=0.9, weights=np.ones(e.size))  # equal weights: the unweighted factor
    assert same.factor == pytest.approx(pooled.factor, rel=1e-4)
    with pytest.raises(ShapeError):
        fit_conformal(e, s, weights=np.ones(5))


# ------------------------------------------------------------------ real imagery, Wald protocol
S2_10M = ("B02", "B03", "B04", "B08")


def _wald_ensemble_predict(hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wald protocol x2 (Sentinel-2 Wald PSF), SR by a PSF-jitter back-projection ensemble."""
    from eosr.degrade.operator import Degradation
    from eosr.trust.classical import psf_jitter_ensemble
    from eosr.trust.uncertainty import ensemble

    op = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True)
    lr = op.downsample(hr.astype(np.float32))
    u = ensemble(psf_jitter_ensemble(2, iterations=4), lr)
    return u.mean, u.std


@pytest.fixture(scope="module")
def fitted() -> ConformalCalibration:
    """Conformal factor fitted on a DIFFERENT real S2 site (eo-learn Slovenia L1C, 5 dates)."""
    p = EOPATCH / "REFERENCE_SCENES.npy"
    ref = np.load(p)[:, :100, :100][..., [1, 2, 3, 7]].transpose(0, 3, 1, 2)  # B02 B03 B04 B08
    errs, stds = [], []
    for hr in ref:
        sr, sd = _wald_ensemble_predict(hr)
        errs.append(sr - hr)
        stds.append(sd)
    return fit_conformal(np.stack(errs), np.stack(stds), p=0.9)


def test_heldout_real_coverage_and_correlation(fitted: ConformalCalibration, s2_10m: np.ndarray) -> None:
    """Held-out BigEarthNet L2A patch (another site, other processing level): after recalibration the
    90 % interval covers 80-97 % of the pixels, and |error| and std are positively rank-correlated."""
    sr, sd = _wald_ensemble_predict(s2_10m)
    tab = calibration_table(sr, s2_10m, fitted.apply(sd))
    assert 0.80 <= tab["coverage"]["0.9"] <= 0.97, tab
    assert tab["spearman_abs_error_std"] > 0.2, tab
    assert coverage(sr - s2_10m, sd, 0.9) < 0.6  # the raw PSF-jitter spread alone is overconfident
    assert sparsification(np.abs(sr - s2_10m), sd).ause < sparsification(np.abs(sr - s2_10m), RNG.random(sd.shape)).ause


def _gradient_strata(hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = np.gradient(hr, axis=(1, 2))
    g = np.sqrt(gx**2 + gy**2).mean(0)
    return g <= np.quantile(g, 0.5), g >= np.quantile(g, 0.9)


def test_flat_areas_less_uncertain_than_edges_real(s2_10m: np.ndarray) -> None:
    """Both an ensemble and MC dropout give lower uncertainty on flat (low-gradient) than on edge pixels."""
    from eosr.degrade.operator import Degradation
    from eosr.trust.uncertainty import mc_dropout
    from test_trust_helpers import DetailDropout

    low, high = _gradient_strata(s2_10m)
    _, sd = _wald_ensemble_predict(s2_10m)
    assert sd.mean(0)[low].mean() * 1.5 < sd.mean(0)[high].mean()
    lr = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True).downsample(s2_10m.astype(np.float32))
    u = mc_dropout(DetailDropout(), lr, n_samples=8)
    s = u.std.mean(0)
    assert s[low].mean() * 1.5 < s[high].mean()
