"""PSF calibration from a real LR/HR pair: fit sigma, sub-pixel offset, gain and bias per band.

For each band b, minimise over (sigma, dy, dx)

    || LR_b - (g * D_{sigma, dy, dx}(HR_b) + o) ||_2^2        (g, o solved in closed form)

where D is the eosr operator (Gaussian PSF, pixel-is-area decimation). The optimum answers "which
Gaussian PSF and registration explain LR from HR", so that users derive the operator of a real
cross-sensor pair instead of guessing it. A border of the LR image (the kernel's reach) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from eosr.degrade.operator import Degradation
from eosr.errors import ShapeError
from eosr.physics.psf import check_scale, mtf_from_sigma
from eosr.physics.registration import estimate_shift


@dataclass(frozen=True)
class PSFFit:
    """Per-band result of :func:`calibrate_psf` (sigma and shifts in HR pixels)."""

    sigma: tuple[float, ...]
    mtf: tuple[float, ...]
    shift_y: tuple[float, ...]
    shift_x: tuple[float, ...]
    gain: tuple[float, ...]
    bias: tuple[float, ...]
    rmse: tuple[float, ...]
    scale: int

    def operator(self, **options: Any) -> Degradation:
        """The fitted operator (mean shift over bands; per-band sigmas)."""
        return Degradation(
            scale=self.scale,
            sigmas=self.sigma,
            shift=(float(np.mean(self.shift_y)), float(np.mean(self.shift_x))),
            description="calibrated from an LR/HR pair",
            **options,
        )


def _np(x: Any) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"calibration needs (C, H, W) arrays, got shape {a.shape}")
    return a


def calibrate_psf(hr: Any, lr: Any, scale: int, margin: int | None = None) -> PSFFit:
    """Fit the Gaussian PSF sigma, sub-pixel offset (dy, dx), gain and bias of each band.

    ``hr`` is (C, H, W), ``lr`` is (C, H/r, W/r). The offset follows the operator's ``shift``:
    LR ~ g D(HR(. - shift)) + o. Least squares (trust region reflective) from a start found by a
    coarse sigma scan and phase correlation.
    """
    r = check_scale(scale)
    h, lo = _np(hr), _np(lr)
    if h.shape[0] != lo.shape[0] or h.shape[1] != lo.shape[1] * r or h.shape[2] != lo.shape[2] * r:
        raise ShapeError(f"HR {h.shape} and LR {lo.shape} do not match at scale {r}")
    m = margin if margin is not None else 3 + int(np.ceil(4 * r / r))
    if min(lo.shape[1:]) <= 2 * m + 4:
        raise ShapeError(f"LR of {lo.shape[1:]} is too small to calibrate (needs > {2 * m + 4} px)")
    res: dict[str, list[float]] = {k: [] for k in ("sigma", "dy", "dx", "gain", "bias", "rmse")}
    for b in range(h.shape[0]):
        hb, lb = h[b], lo[b]
        target = lb[m:-m, m:-m].ravel()
        ok = np.isfinite(target)

        def model(p: np.ndarray, hb: np.ndarray = hb) -> np.ndarray:
            op = Degradation(scale=r, sigmas=(abs(p[0]),), shift=(p[1], p[2]))
            return np.asarray(op.downsample(hb[None]))[0][m:-m, m:-m].ravel()

        def fit_lin(d: np.ndarray, target: np.ndarray = target, ok: np.ndarray = ok) -> tuple[float, float]:
            a = np.stack([d[ok], np.ones(ok.sum())], 1)
            g, o = np.linalg.lstsq(a, target[ok], rcond=None)[0]
            return float(g), float(o)

        def resid(p: np.ndarray, target: np.ndarray = target, ok: np.ndarray = ok) -> np.ndarray:
            d = model(p)
            g, o = fit_lin(d)
            return (g * d + o - target)[ok]

        grid = np.linspace(0.2, 1.5 * r, 12)
        s0 = min(grid, key=lambda s: float(np.sum(resid(np.array([s, 0.0, 0.0])) ** 2)))
        d0 = np.asarray(Degradation(scale=r, sigmas=(s0,)).downsample(hb[None]))
        sy, sx = estimate_shift(d0, lb[None])
        sol = least_squares(resid, np.array([s0, sy * r, sx * r]), x_scale=np.array([0.2, 0.2, 0.2]),
                            xtol=1e-10, ftol=1e-12)
        p = sol.x
        g, o = fit_lin(model(p))
        res["sigma"].append(abs(float(p[0])))
        res["dy"].append(float(p[1]))
        res["dx"].append(float(p[2]))
        res["gain"].append(g)
        res["bias"].append(o)
        res["rmse"].append(float(np.sqrt(np.mean(sol.fun**2))))
    return PSFFit(
        sigma=tuple(res["sigma"]),
        mtf=tuple(mtf_from_sigma(s, r) if r > 1 else float("nan") for s in res["sigma"]),
        shift_y=tuple(res["dy"]),
        shift_x=tuple(res["dx"]),
        gain=tuple(res["gain"]),
        bias=tuple(res["bias"]),
        rmse=tuple(res["rmse"]),
        scale=r,
    )
