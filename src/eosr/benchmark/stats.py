"""Statistics over images: mean with a percentile-bootstrap confidence interval, paired differences.

The bootstrap resamples images with replacement (Efron & Tibshirani, An Introduction to the Bootstrap,
1993, ch. 13: percentile interval). Paired differences resample the per-image differences
d_i = m_i(method) - m_i(baseline), which removes the between-image variance that both methods share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with its ``confidence`` interval [lo, hi] (NaN bounds when n < 2)."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly (NaN -> None)."""

        def f(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {"mean": f(self.mean), "ci_low": f(self.lo), "ci_high": f(self.hi), "n": self.n,
                "confidence": self.confidence}


def bootstrap_mean(values: np.ndarray | list[float], *, n_boot: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> Estimate:
    """Mean and percentile-bootstrap CI: quantiles (1 -/+ confidence)/2 of the means of ``n_boot`` resamples.

    Non-finite values are dropped. With one value the interval is [v, v]; with none everything is NaN.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, confidence)
    m = float(v.mean())
    if n == 1:
        return Estimate(m, m, m, 1, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = v[idx].mean(axis=1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return Estimate(m, float(lo), float(hi), n, confidence)


def paired_difference(values: np.ndarray | list[float], baseline: np.ndarray | list[float], *, n_boot: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of per-image differences ``values - baseline`` with its bootstrap CI (pairs with a NaN dropped)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired difference needs equal lengths, got {a.size} and {b.size}")
    return bootstrap_mean(a - b, n_boot=n_boot, confidence=confidence, seed=seed)
