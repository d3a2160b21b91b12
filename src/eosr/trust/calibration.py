"""Is the uncertainty honest? Sparsification/AUSE, rank correlation, interval coverage, conformal recalibration.

- Sparsification (Ilg et al., ECCV 2018): remove the fraction f of pixels with the highest uncertainty
  and measure the error E(f) of the rest; the oracle removes by the true error. Curves are normalised
  by E(0); AUSE = integral over f of (E_unc(f) - E_oracle(f)) (0 = perfect ranking).
- Spearman rank correlation between |error| and uncertainty (scipy.stats.spearmanr).
- Coverage of the central p interval: share of pixels with |y - y_hat| <= h_p, with
  h_p = z_{(1+p)/2} sigma (Gaussian) or h_p = -b ln(1 - p), b = sigma / sqrt(2) (Laplace, same variance).
- Split conformal scaling (Vovk et al. 2005; Angelopoulos & Bates 2021): on a held-out calibration set,
  q = the ceil((n+1) p)-th smallest normalised residual |y - y_hat| / h_p(sigma); sigma' = q sigma then
  covers the p interval with probability >= p for exchangeable pixels. Saved as JSON next to the checkpoint.
  Weighted form (Tibshirani, Foygel Barber, Candes, Ramdas, NeurIPS 2019): with weights w_i >= 0,
  q = min{s_(k) : sum_{j <= k} w_(j) >= p (sum_i w_i + max_i w_i)}; equal total weight per location
  (:func:`group_weights`) makes a calibration set dominated by one place stand for every place in it.

All functions take arrays of any shape (NumPy or torch), an optional boolean validity mask, and
ignore NaN and non-finite values.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from eosr._schema import check_schema, stamped
from eosr.errors import DataError, ShapeError

DISTRIBUTIONS = ("gaussian", "laplace")


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def valid_pairs(a: Any, b: Any, mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Flatten two same-shape arrays to their jointly valid (finite, masked-in) values."""
    x, y = _np(a), _np(b)
    if x.shape != y.shape:
        raise ShapeError(f"shapes differ: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m = _np(mask).astype(bool)
        try:
            ok &= np.broadcast_to(m, x.shape)
        except ValueError:
            raise ShapeError(f"mask of shape {m.shape} does not broadcast to {x.shape}") from None
    if not ok.any():
        raise DataError("no valid pixels (all NaN or masked out)")
    return x[ok], y[ok]


def interval_halfwidth(std: Any, p: float = 0.9, dist: str = "gaussian") -> Any:
    """Half-width of the central ``p`` interval for a predictive std: z_{(1+p)/2} sigma (Gaussian)
    or -ln(1 - p) sigma / sqrt(2) (Laplace with the same variance)."""
    return std * interval_z(p, dist)


def interval_z(p: float, dist: str = "gaussian") -> float:
    """Half-width of the central ``p`` interval in units of the standard deviation."""
    if not 0.0 < p < 1.0:
        raise DataError(f"interval probability must lie in (0, 1), got {p}")
    if dist == "gaussian":
        return float(stats.norm.ppf(0.5 + p / 2.0))
    if dist == "laplace":
        return float(-math.log(1.0 - p) / math.sqrt(2.0))
    raise DataError(f"unknown distribution {dist!r}; expected one of {DISTRIBUTIONS}")


def coverage(error: Any, std: Any, p: float = 0.9, dist: str = "gaussian", mask: Any = None) -> float:
    """Share of valid pixels whose |error| lies inside the central ``p`` interval of N(0, std^2) (or Laplace)."""
    e, s = valid_pairs(error, std, mask)
    return float(np.mean(np.abs(e) <= s * interval_z(p, dist)))


def spearman(abs_error: Any, uncertainty: Any, mask: Any = None, max_samples: int = 1_000_000, seed: int = 0) -> float:
    """Spearman rank correlation between |error| and uncertainty (random subsample above ``max_samples``)."""
    e, u = valid_pairs(abs_error, uncertainty, mask)
    e = np.abs(e)
    if e.size > max_samples:
        idx = np.random.default_rng(seed).choice(e.size, max_samples, replace=False)
        e, u = e[idx], u[idx]
    if e.size < 3 or np.ptp(e) == 0 or np.ptp(u) == 0:
        return float("nan")
    return float(stats.spearmanr(e, u).statistic)


@dataclass
class Sparsification:
    """Sparsification curves (normalised by the error at f = 0) and AUSE."""

    fractions: np.ndarray
    curve: np.ndarray
    oracle: np.ndarray
    ause: float
    metric: str

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (rounded lists)."""
        return {"metric": self.metric, "ause": round(self.ause, 6),
                "fractions": [round(float(f), 4) for f in self.fractions],
                "curve": [round(float(c), 6) for c in self.curve], "oracle": [round(float(o), 6) for o in self.oracle]}


def _remaining_error(err_sorted_removal: np.ndarray, ks: np.ndarray, metric: str) -> np.ndarray:
    """Error of the pixels left after removing the first k of the removal order, for each k."""
    v = err_sorted_removal**2 if metric == "rmse" else err_sorted_removal
    tail = np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])  # tail[k] = sum of v[k:]
    n = v.size
    out = tail[ks] / np.maximum(n - ks, 1)
    return np.sqrt(out) if metric == "rmse" else out


def sparsification(abs_error: Any, uncertainty: Any, mask: Any = None, n_points: int = 50,
                   metric: str = "mae") -> Sparsification:
    """Sparsification curve and AUSE (Ilg et al., ECCV 2018) with fractions 0, 1/n, ..., (n-1)/n.

    E(f) = MAE (or RMSE) of the pixels left after removing the fraction f with the largest
    uncertainty (ties broken by a stable sort); oracle: the same removing by |error|. Both divided
    by E(0); AUSE is the trapezoid area between them. An oracle uncertainty gives exactly 0.
    """
    if metric not in ("mae", "rmse"):
        raise DataError(f"sparsification metric must be 'mae' or 'rmse', got {metric!r}")
    e, u = valid_pairs(abs_error, uncertainty, mask)
    e = np.abs(e)
    n = e.size
    fr = np.arange(n_points) / n_points
    ks = np.minimum((fr * n).astype(np.int64), n - 1)
    order_u = np.argsort(-u, kind="stable")
    order_o = np.argsort(-e, kind="stable")
    cu = _remaining_error(e[order_u], ks, metric)
    co = _remaining_error(e[order_o], ks, metric)
    e0 = cu[0]
    if e0 <= 0:
        cu, co = np.zeros_like(cu), np.zeros_like(co)
    else:
        cu, co = cu / e0, co / e0
    ause = float(np.trapezoid(cu - co, fr))
    return Sparsification(fr, cu, co, ause, metric)


@dataclass
class ConformalCalibration:
    """Split-conformal scale factor for predictive std: sigma_calibrated = factor * sigma."""

    factor: float
    p: float
    dist: str
    n: int
    coverage_before: float
    kind: str = "split-conformal scaling"
    version: int = 1

    def apply(self, std: Any) -> Any:
        """Calibrated std (same array type)."""
        return std * self.factor

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the calibration as JSON atomically."""
        from eosr.io.raster import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(stamped(self.to_json()), indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConformalCalibration:
        """Read a calibration JSON written by :meth:`save` (with or without ``schema_version``)."""
        p = Path(path)
        if not p.exists():
            raise DataError(f"calibration file not found: {p}")
        try:
            d = json.loads(p.read_text())
        except ValueError as e:
            raise DataError(f"{p}: not a calibration file ({e})") from None
        check_schema(d, str(p))
        try:
            return cls(**{k: d[k] for k in ("factor", "p", "dist", "n", "coverage_before")},
                       kind=d.get("kind", "split-conformal scaling"), version=int(d.get("version", 1)))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{p}: not a calibration file ({e})") from None


def card_calibration(card: Any) -> ConformalCalibration | None:
    """The calibration stored in a checkpoint card (field ``calibration``, as written by
    :meth:`ConformalCalibration.to_json` plus provenance keys), or None when the card has none."""
    d = card.get("calibration") if isinstance(card, dict) else None
    if not d:
        return None
    try:
        return ConformalCalibration(**{k: d[k] for k in ("factor", "p", "dist", "n", "coverage_before")},
                                    kind=d.get("kind", "split-conformal scaling"), version=int(d.get("version", 1)))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"card {card.get('name', '?')}: invalid calibration ({e})") from None


def calibration_path(checkpoint: str | os.PathLike[str]) -> Path:
    """Where the calibration of a checkpoint lives: ``model.safetensors`` -> ``model.calibration.json``."""
    c = Path(checkpoint)
    return c.with_name(c.name.split(".")[0] + ".calibration.json")


def group_weights(groups: Any) -> np.ndarray:
    """Per-sample weights 1 / n_g (n_g: size of the sample's group), so that every group (e.g. location)
    carries the same total weight in :func:`fit_conformal`."""
    g = np.asarray(groups).ravel()
    if g.size == 0:
        raise DataError("no samples to weight")
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv].astype(np.float64)


def weighted_conformal_quantile(scores: Any, weights: Any, p: float) -> float:
    """Weighted split-conformal quantile (Tibshirani et al. 2019): the smallest score s_(k) with
    sum_{j <= k} w_(j) >= p (sum_i w_i + max_i w_i), the test point's weight taken as the largest; the
    largest score when no k qualifies. Equal weights give the ceil((n+1) p)-th smallest score."""
    s, w = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(weights, dtype=np.float64).ravel()
    if s.shape != w.shape:
        raise ShapeError(f"scores and weights differ in size: {s.size} vs {w.size}")
    if s.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise DataError("conformal weights must be finite, >= 0 and not all 0")
    order = np.argsort(s, kind="stable")
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, p * (cum[-1] + w.max()) * (1 - 1e-12), side="left"))
    return float(s[order][min(k, s.size - 1)])


def fit_conformal(error: Any, std: Any, p: float = 0.9, dist: str = "gaussian", mask: Any = None,
                  max_samples: int | None = None, seed: int = 0, weights: Any = None) -> ConformalCalibration:
    """Fit the split-conformal factor q on held-out residuals (finite-sample quantile ceil((n+1)p)/n).

    Scores are |y - y_hat| / h_p(sigma) with h_p the central-interval half-width; pixels with
    sigma = 0 are skipped. After recalibration the p interval of ``factor * sigma`` covers >= p of
    exchangeable new pixels (Angelopoulos & Bates 2021, section 2.3). ``weights`` (same shape as
    ``error``, >= 0; e.g. :func:`group_weights` of each pixel's location) give the weighted quantile of
    :func:`weighted_conformal_quantile`; ``coverage_before`` is then weighted too.
    """
    if weights is not None:
        ea, sa, wa = _np(error), _np(std), _np(weights)
        if wa.shape != ea.shape or sa.shape != ea.shape:
            raise ShapeError(f"residuals, std and weights differ in shape: {ea.shape}, {sa.shape}, {wa.shape}")
        ok = np.isfinite(wa)
        if mask is not None:
            try:
                ok &= np.broadcast_to(_np(mask).astype(bool), wa.shape)
            except ValueError:
                raise ShapeError(f"mask of shape {_np(mask).shape} does not broadcast to {wa.shape}") from None
        e, s = valid_pairs(ea, sa, ok)
        w = wa[ok & np.isfinite(ea) & np.isfinite(sa)]
    else:
        e, s = valid_pairs(error, std, mask)
        w = None
    keep = s > 0
    e, s = np.abs(e[keep]), s[keep]
    w = w[keep] if w is not None else None
    if e.size == 0:
        raise DataError("no pixels with a positive predictive std to calibrate on")
    if max_samples is not None and e.size > max_samples:
        idx = np.random.default_rng(seed).choice(e.size, max_samples, replace=False)
        e, s = e[idx], s[idx]
        w = w[idx] if w is not None else None
    z = interval_z(p, dist)
    scores = e / (s * z)
    n = scores.size
    if w is not None:
        q = weighted_conformal_quantile(scores, w, p)
        before = float(np.sum(w * (e <= s * z)) / np.sum(w))
        return ConformalCalibration(factor=q, p=p, dist=dist, n=int(n), coverage_before=before,
                                    kind="weighted split-conformal scaling")
    level = min(1.0, math.ceil((n + 1) * p) / n)
    q = float(np.quantile(scores, level, method="higher"))
    before = float(np.mean(e <= s * z))
    return ConformalCalibration(factor=q, p=p, dist=dist, n=int(n), coverage_before=before)


def calibration_table(sr: Any, hr: Any, std: Any, mask: Any = None, dist: str = "gaussian",
                      levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95),
                      curve: Sparsification | None = None) -> dict[str, Any]:
    """Coverage at several levels, Spearman rho(|error|, std), AUSE and mean std: one JSON-safe dict.

    ``curve``: the MAE :func:`sparsification` of the same inputs when the caller already has it
    (plotted beside the table), so it is not computed twice.
    """
    err = _np(sr) - _np(hr)
    sp = curve if curve is not None else sparsification(np.abs(err), std, mask)
    rho = spearman(np.abs(err), std, mask)
    _, s = valid_pairs(err, std, mask)
    return {
        "distribution": dist,
        "coverage": {f"{p:g}": round(coverage(err, std, p, dist, mask), 6) for p in levels},
        "spearman_abs_error_std": None if math.isnan(rho) else round(rho, 6),
        "ause_mae": round(sp.ause, 6),
        "mean_std": round(float(s.mean()), 8),
    }
