"""Bootstrap statistics of the benchmark: known answers and a cross-check against SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from eosr.benchmark.stats import bootstrap_mean, paired_difference


def test_constant_values_have_a_zero_width_interval() -> None:
    e = bootstrap_mean([0.25] * 7)
    assert (e.mean, e.lo, e.hi, e.n) == (0.25, 0.25, 0.25, 7)


def test_mean_is_exact_and_nan_is_dropped() -> None:
    e = bootstrap_mean([1.0, 2.0, np.nan, 6.0])
    assert e.mean == pytest.approx(3.0, abs=1e-15)
    assert e.n == 3
    assert e.lo < 3.0 < e.hi


def test_one_and_zero_values() -> None:
    e1 = bootstrap_mean([4.0])
    assert (e1.lo, e1.hi) == (4.0, 4.0)
    e0 = bootstrap_mean([np.nan])
    assert e0.n == 0 and np.isnan(e0.mean)
    assert e0.to_dict()["mean"] is None  # strict JSON: no NaN


def test_interval_matches_the_normal_approximation_for_many_values() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(10.0, 2.0, 400)
    e = bootstrap_mean(v, n_boot=4000)
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert (e.hi - e.lo) / 2 == pytest.approx(half, rel=0.1)
    assert (e.hi + e.lo) / 2 == pytest.approx(v.mean(), abs=0.1 * half)


def test_cross_check_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(2)
    v = rng.gamma(2.0, 1.5, 60)
    e = bootstrap_mean(v, n_boot=20000, seed=3)
    ref = stats.bootstrap((v,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                          random_state=4).confidence_interval
    width = ref.high - ref.low
    assert e.lo == pytest.approx(ref.low, abs=0.05 * width)
    assert e.hi == pytest.approx(ref.high, abs=0.05 * width)


def test_seeded_and_reproducible() -> None:
    v = [1.0, 5.0, 2.0, 8.0, 3.0]
    assert bootstrap_mean(v, seed=7) == bootstrap_mean(v, seed=7)


def test_pairing_removes_the_shared_between_image_variance() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(35.0, 4.0, 12)  # images differ a lot
    method = base + 0.5 + rng.normal(0.0, 0.05, 12)  # a small, consistent gain
    d = paired_difference(method, base)
    assert d.mean == pytest.approx(0.5, abs=0.05)
    assert d.lo > 0.0  # significant when paired
    a, b = bootstrap_mean(method), bootstrap_mean(base)
    assert a.lo < b.hi  # ... while the unpaired intervals overlap


def test_paired_difference_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])
