"""PSF calibration from a real LR/HR pair.

:func:`calibrate_pair` (``eosr calibrate``): per band, the kernel family (Gaussian, Keys bicubic, box,
free-form separable signed or non-negative) chosen by BIC, its taps, MTF at the LR Nyquist, sub-pixel
shift, gain and bias, with block-bootstrap uncertainties, a quality report and an "unreliable" flag;
optional registration of offset grids (pan/MS); the result becomes an operator
(:class:`CalibratedDegradation`, :func:`operator_from_file`) or a sensor file.

:func:`calibrate_psf` (Gaussian only, kept for its callers): for each band b, minimise over (sigma, dy, dx)

    || LR_b - (g * D_{sigma, dy, dx}(HR_b) + o) ||_2^2        (g, o solved in closed form)

where D is the eosr operator (Gaussian PSF, pixel-is-area decimation). The optimum answers "which
Gaussian PSF and registration explain LR from HR", so that users derive the operator of a real
cross-sensor pair instead of guessing it. A border of the LR image (the kernel's reach) is left out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import least_squares, nnls

from eosr.degrade.kernels import (
    FAMILIES,
    FREE_FORM,
    PARAMETRIC,
    common_length,
    embed,
    family_taps,
    free_length,
    taps_centroid,
    taps_mtf,
    trim,
)
from eosr.degrade.operator import Degradation, _recentre, pad_stack
from eosr.errors import ConfigError, DataError, GeoError, ScaleError, SensorError, ShapeError
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


def _np(x: Any, name: str = "an array") -> np.ndarray:
    """``x`` (NumPy or torch, (C, H, W) or (H, W)) as a float64 (C, H, W) array; one-line ShapeError otherwise."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"calibration needs (C, H, W) arrays, got {name} of shape {a.shape}")
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


# =====================================================================================================
# Kernel-family calibration with a quality report (calibrate_pair)
# =====================================================================================================

#: Limits above which a fit is flagged "unreliable" (1-sigma block-bootstrap uncertainties; docs/physics.md).
LIMITS: dict[str, float] = {
    "shift_px": 0.1,  # HR pixels, either axis
    "mtf": 0.03,
    "gain": 0.02,
    "bias": 0.005,  # reflectance
    "masked_share": 0.5,
    "min_pixels": 2000.0,
    "prior_disagreement_px": 1.0,  # |shift - prior_shift| in HR px, when a prior (georeference) is given
}
N_BOOT = 200


@dataclass(frozen=True)
class BandFit:
    """Calibration of one band: the chosen kernel family, its taps and figures, quality and flag.

    ``kernel_y``/``kernel_x`` are 1-D taps on the HR grid centred on the LR block centre (tap t at
    t - (L - 1)/2 HR px), sum 1, the fitted sub-pixel shift included. ``shift_y``/``shift_x`` follow the
    operator convention LR = g D(HR(. - shift)) + o and are relative to the HR origin (any integer
    registration offset included).
    """

    band: str
    family: str
    kernel_y: tuple[float, ...]
    kernel_x: tuple[float, ...]
    mtf: float
    mtf_y: float
    mtf_x: float
    sigma: float | None
    shift_y: float
    shift_x: float
    gain: float
    bias: float
    residual_rms: float
    n_pixels: int
    bic: dict[str, float]
    uncertainty: dict[str, float]
    quality: dict[str, float]
    unreliable: bool
    reasons: tuple[str, ...]
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # LR rows [i0, i1), cols [j0, j1) the fit used

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record (finite floats only)."""
        d = asdict(self)
        d["kernel_y"], d["kernel_x"] = list(self.kernel_y), list(self.kernel_x)
        d["reasons"] = list(self.reasons)
        return _finite(d)


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate_pair`: one :class:`BandFit` per band plus the pair's registration."""

    scale: int
    bands: tuple[BandFit, ...]
    registration: dict[str, Any]
    hr_gsd_m: float | None = None
    lr_gsd_m: float | None = None
    bootstrap: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=lambda: dict(LIMITS))

    @property
    def unreliable(self) -> bool:
        """Whether any band is flagged."""
        return any(b.unreliable for b in self.bands)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record of everything."""
        return _finite({
            "scale": self.scale, "hr_gsd_m": self.hr_gsd_m, "lr_gsd_m": self.lr_gsd_m,
            "registration": self.registration, "bootstrap": self.bootstrap, "limits": self.limits,
            "unreliable": self.unreliable, "bands": [b.as_dict() for b in self.bands],
        })

    def table(self) -> str:
        """A readable per-band table (family, MTF, shift, gain, bias, residual, flag and reasons)."""
        head = (f"{'band':<6} {'family':<16} {'MTF':>13} {'shift_y px':>14} {'shift_x px':>14} {'gain':>13} "
                f"{'bias':>15} {'resid':>8}  flag")
        lines = [head, "-" * len(head)]
        for b in self.bands:
            u = b.uncertainty
            flag = "UNRELIABLE: " + "; ".join(b.reasons) if b.unreliable else "ok"
            lines.append(
                f"{b.band:<6} {b.family:<16} {b.mtf:6.3f}±{u['mtf']:<6.3f} {b.shift_y:+7.3f}±{u['shift_y']:<6.3f} "
                f"{b.shift_x:+7.3f}±{u['shift_x']:<6.3f} {b.gain:6.3f}±{u['gain']:<6.3f} "
                f"{b.bias:+8.5f}±{u['bias']:<6.4f} {b.residual_rms:8.5f}  {flag}")
        return "\n".join(lines)

    def operator(self, **options: Any) -> CalibratedDegradation:
        """The calibrated operator (explicit per-band kernels, shifts included)."""
        return CalibratedDegradation(
            scale=self.scale, kernels=tuple(_kernel2d(b.kernel_y, b.kernel_x, self.scale) for b in self.bands),
            bands=tuple(b.band for b in self.bands), families=tuple(b.family for b in self.bands),
            description="calibrated from an LR/HR pair", **options)

    def write_sensor(self, path: str | Path, name: str | None = None, description: str = "") -> Path:
        """Write the fit as a sensor TOML (see :func:`eosr.sensors.write_sensor`); returns the path."""
        from eosr.sensors import write_sensor

        lr_gsd = self.lr_gsd_m if self.lr_gsd_m else float(self.scale)
        bands = []
        for b in self.bands:
            bands.append({
                "name": b.band, "gsd_m": lr_gsd, "mtf_nyquist": min(max(b.mtf, 1e-6), 1 - 1e-6),
                "source": f"calibrated ({b.family} kernel) from an LR/HR pair",
                "kernel_family": b.family, "kernel_scale": self.scale,
                "kernel_y": list(b.kernel_y), "kernel_x": list(b.kernel_x),
                "calibration": {k: v for k, v in b.as_dict().items()
                                if k not in ("band", "family", "kernel_y", "kernel_x")},
            })
        meta = {"scale": self.scale, "hr_gsd_m": self.hr_gsd_m, "lr_gsd_m": self.lr_gsd_m,
                "registration": self.registration, "unreliable": self.unreliable, "limits": self.limits}
        stem = Path(path).stem
        head = {"schema_version": schema_version()} if schema_version() else {}
        return write_sensor(path, head | {
            "name": name or stem, "description": description or f"calibrated x{self.scale} operator ({stem})",
            "bands": bands, "calibration": _finite(meta)})


def schema_version() -> str | None:
    """eosr's JSON schema version (``eosr.SCHEMA_VERSION``) when this eosr has one."""
    try:
        from eosr._schema import SCHEMA_VERSION
    except ImportError:  # pragma: no cover - older trees
        return None
    return str(SCHEMA_VERSION)


def _finite(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON and TOML)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


# ------------------------------------------------------------------------------------------ geometry
@dataclass
class _Pair:
    """One band pair: HR (NaN -> 0), LR rectangle of usable pixels, valid mask, origin and taps length."""

    x: np.ndarray  # HR (H, W), float64, NaN replaced by 0
    y: np.ndarray  # LR values on the rectangle (ni, nj)
    valid: np.ndarray  # (ni, nj) bool
    r: int
    oy: int
    ox: int
    i0: int
    j0: int
    length: int

    @property
    def a(self) -> int:
        return (self.r - self.length) // 2

    def filt(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        """sum_{t,u} ky[t] kx[u] x[r i + oy + a + t, r j + ox + a + u] on the rectangle (taps centred in L)."""
        return self.along_y(self.along_x_full(kx), ky)

    def along_x_full(self, kx: np.ndarray) -> np.ndarray:
        """x filtered along columns at the LR column positions: (H, nj)."""
        ni, nj = self.y.shape
        e = (self.length - kx.size) // 2
        cs = self.r * self.j0 + self.ox + self.a + e
        span = self.r * (nj - 1) + 1
        out = np.zeros((self.x.shape[0], nj))
        for u, w in enumerate(kx):
            if w != 0:
                out += w * self.x[:, cs + u : cs + u + span : self.r]
        return out

    def along_y(self, z: np.ndarray, ky: np.ndarray) -> np.ndarray:
        """z (H, nj) filtered along rows at the LR row positions: (ni, nj)."""
        ni = self.y.shape[0]
        e = (self.length - ky.size) // 2
        rs = self.r * self.i0 + self.oy + self.a + e
        span = self.r * (ni - 1) + 1
        out = np.zeros((ni, z.shape[1]))
        for t, w in enumerate(ky):
            if w != 0:
                out += w * z[rs + t : rs + t + span : self.r]
        return out

    def design_y(self, kx: np.ndarray, n_taps: int) -> np.ndarray:
        """Columns d/dky[t] of the model for centred free taps along y (kx fixed): (n_valid, n_taps)."""
        z = self.along_x_full(kx)
        ni = self.y.shape[0]
        rs = self.r * self.i0 + self.oy + self.a + (self.length - n_taps) // 2
        span = self.r * (ni - 1) + 1
        return np.stack([z[rs + t : rs + t + span : self.r][self.valid] for t in range(n_taps)], 1)

    def design_x(self, ky: np.ndarray, n_taps: int) -> np.ndarray:
        """Columns d/dkx[u] for centred free taps along x (ky fixed): (n_valid, n_taps)."""
        z = self.along_y(self.x, ky)
        nj = self.y.shape[1]
        cs = self.r * self.j0 + self.ox + self.a + (self.length - n_taps) // 2
        span = self.r * (nj - 1) + 1
        return np.stack([z[:, cs + u : cs + u + span : self.r][self.valid] for u in range(n_taps)], 1)


def _rect(n_hr: int, n_lr: int, r: int, origin: int, length: int) -> tuple[int, int]:
    """LR index range [i0, i1) whose L-tap support r i + origin + a + t lies inside 0..n_hr-1."""
    a = (r - length) // 2
    i0 = max(0, -((origin + a) // r))
    i1 = min(n_lr, (n_hr - length - origin - a) // r + 1)
    return i0, max(i0, i1)


def _make_pair(hr: np.ndarray, lr: np.ndarray, r: int, oy: int, ox: int, length: int,
               mask: np.ndarray | None) -> tuple[_Pair, int]:
    i0, i1 = _rect(hr.shape[0], lr.shape[0], r, oy, length)
    j0, j1 = _rect(hr.shape[1], lr.shape[1], r, ox, length)
    if i1 - i0 < 8 or j1 - j0 < 8:
        raise ShapeError(f"HR {hr.shape} and LR {lr.shape} overlap on too few LR pixels to calibrate "
                         f"({max(0, i1 - i0)}x{max(0, j1 - j0)}; a kernel needs {length} HR px of support)")
    nan = ~np.isfinite(hr)
    x = np.where(nan, 0.0, hr)
    y = lr[i0:i1, j0:j1]
    p = _Pair(x, np.where(np.isfinite(y), y, 0.0), np.ones(y.shape, bool), r, oy, ox, i0, j0, length)
    ones = np.ones(length)
    touched = _Pair(nan.astype(np.float64), p.y, p.valid, r, oy, ox, i0, j0, length).filt(ones, ones) > 0
    valid = np.isfinite(y) & ~touched
    if mask is not None:
        valid &= ~mask[i0:i1, j0:j1]
    p.valid = valid
    return p, int(y.size)


# ------------------------------------------------------------------------------------------ fits
@dataclass
class _Fit:
    family: str
    ky: np.ndarray
    kx: np.ndarray
    gain: float
    bias: float
    rss: float
    n_params: int
    sigma: float | None = None
    dy: float = 0.0
    dx: float = 0.0
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    jac: np.ndarray | None = None


def _dot(a: np.ndarray, b: np.ndarray) -> Any:
    """a^T b without BLAS (einsum's own loop): BLAS threads on shared cores make small products slow."""
    return np.einsum("i...,i...->...", a, b) if a.ndim == 1 else np.einsum("ij,ik->jk", a, b)


def _linfit(m: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least squares y ~ g m + o in closed form: g = cov(m, y) / var(m), o = mean(y) - g mean(m)."""
    mm, my = float(m.mean()), float(y.mean())
    dm = m - mm
    var = float(_dot(dm, dm))
    g = float(_dot(dm, y - my)) / var if var > 0 else 0.0
    o = my - g * mm
    return g, o, g * m + o - y


def _fit_parametric(p: _Pair, family: str, shift0: tuple[float, float], sigma0: float) -> _Fit:
    yv = p.y[p.valid]
    r, L = p.r, p.length

    def taps(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = float(q[0]) if family == "gaussian" else 1.0
        dy, dx = float(q[-2]), float(q[-1])
        return family_taps(family, r, L, dy, s), family_taps(family, r, L, dx, s)

    def model(q: np.ndarray) -> np.ndarray:
        ky, kx = taps(q)
        return p.filt(ky, kx)[p.valid]

    def resid(q: np.ndarray) -> np.ndarray:
        return _linfit(model(q), yv)[2]

    lim = 1.0
    q0 = [min(max(sigma0, 0.06), r - 1e-3)] if family == "gaussian" else []
    q0 += [float(np.clip(shift0[0], -lim + 1e-3, lim - 1e-3)), float(np.clip(shift0[1], -lim + 1e-3, lim - 1e-3))]
    lo = ([0.05] if family == "gaussian" else []) + [-lim, -lim]
    hi = ([float(r)] if family == "gaussian" else []) + [lim, lim]
    sol = least_squares(resid, np.array(q0), bounds=(lo, hi), x_scale=0.2, xtol=1e-8, ftol=1e-10,
                        diff_step=1e-4)
    q = sol.x
    m = model(q)
    g, o, res = _linfit(m, yv)
    ky, kx = taps(q)
    # Jacobian in theta = (kernel params, gain, bias) by central differences (for the bootstrap)
    cols = []
    for k in range(q.size):
        h = 1e-3
        qp, qm = q.copy(), q.copy()
        qp[k] += h
        qm[k] -= h
        cols.append(g * (model(qp) - model(qm)) / (2 * h))
    jac = np.stack(cols + [m, np.ones_like(m)], 1)
    return _Fit(family, ky, kx, g, o, float(res @ res), q.size + 2,
                sigma=float(q[0]) if family == "gaussian" else None, dy=float(q[-2]), dx=float(q[-1]),
                theta=np.concatenate([q, [g, o]]), jac=jac)


def _lsq(d: np.ndarray, y: np.ndarray, nonneg: bool) -> np.ndarray:
    """Least squares of y on [d, 1] by scaled normal equations (taps >= 0 when ``nonneg``; bias free).

    The small normal system keeps the cost independent of BLAS threading (a tall LAPACK solve is many
    times slower when cores are shared); columns are scaled to unit norm first.
    """
    a = np.concatenate([d, np.ones((d.shape[0], 1))], 1)
    sc = np.sqrt(np.einsum("ij,ij->j", a, a))
    sc[sc == 0] = 1.0
    ata = _dot(a, a) / np.outer(sc, sc)
    atb = _dot(a, y[:, None])[:, 0] / sc
    if not nonneg:
        try:
            return np.asarray(np.linalg.solve(ata, atb) / sc)
        except np.linalg.LinAlgError:
            return np.asarray(np.linalg.lstsq(ata, atb, rcond=None)[0] / sc)
    # bias = b+ - b-; min |A x - y|^2 = |R x - R^-T A^T y|^2 + const with A^T A = R^T R
    k = a.shape[1]
    ext = np.zeros((k + 1, k + 1))
    ext[:k, :k] = ata
    ext[k, k] = ata[k - 1, k - 1]
    ext[:k, k] = -ata[:k, k - 1]
    ext[k, :k] = -ata[k - 1, :k]
    rhs = np.concatenate([atb, [-atb[k - 1]]])
    w, v = np.linalg.eigh(ext)
    w = np.clip(w, w.max() * 1e-14, None)
    rm = (v * np.sqrt(w)).T  # rm^T rm = ext (up to the clipped null direction b+ = b-)
    sol = nnls(rm, (v.T @ rhs) / np.sqrt(w), maxiter=50 * (k + 1))[0]
    x = sol[:k].copy()
    x[k - 1] -= sol[k]
    return x / sc


def _fit_free(p: _Pair, nonneg: bool, start: tuple[np.ndarray, np.ndarray]) -> _Fit:
    """Separable free-form taps (Lf per axis) by alternating least squares; gain = sum of the taps."""
    yv = p.y[p.valid]
    lf = free_length(p.r)
    ky = np.asarray(start[0], dtype=np.float64)
    kx = np.asarray(start[1], dtype=np.float64)
    if nonneg:
        ky, kx = np.clip(ky, 0, None), np.clip(kx, 0, None)
    ky, kx = ky / ky.sum(), kx / kx.sum()
    last = np.inf
    g = o = 0.0
    for _ in range(60):
        b = _lsq(p.design_y(kx, lf), yv, nonneg)
        ky = b[:lf] / b[:lf].sum()
        b = _lsq(p.design_x(ky, lf), yv, nonneg)
        g, o = float(b[:lf].sum()), float(b[-1])
        kx = b[:lf] / g
        res = p.filt(embed(ky, p.length), embed(kx, p.length))[p.valid] * g + o - yv
        rss = float(_dot(res, res))
        if rss >= last * (1 - 1e-10):
            break
        last = rss
    dy_ = p.design_y(kx, lf)  # d model / d(g ky)
    dx_ = g * p.design_x(ky, lf)  # d model / d kx
    jac = np.concatenate([dy_, dx_, np.ones((yv.size, 1))], 1)
    theta = np.concatenate([g * ky, kx, [o]])
    return _Fit("separable_nonneg" if nonneg else "separable", ky, kx, g, o, rss, 2 * lf + 1,
                dy=taps_centroid(ky), dx=taps_centroid(kx), theta=theta, jac=jac)


def _derived(fit: _Fit, theta: np.ndarray, r: int, length: int) -> np.ndarray:
    """(mtf, kappa_y, kappa_x, gain, bias) of parameters theta (kappa: kernel-centre offset, HR px)."""
    if fit.family in FREE_FORM:
        lf = (theta.size - 1) // 2
        by, bx, o = theta[:lf], theta[lf : 2 * lf], theta[-1]
        ky, kx = by / by.sum(), bx / bx.sum()
        return np.array([(taps_mtf(ky, r) + taps_mtf(kx, r)) / 2, taps_centroid(ky), taps_centroid(kx),
                         by.sum() * bx.sum(), o])
    q, g, o = theta[:-2], theta[-2], theta[-1]
    s = float(q[0]) if fit.family == "gaussian" else 1.0
    if fit.family == "gaussian" and s < 0.05:
        s = 0.05
    ky = family_taps(fit.family, r, length, float(q[-2]), s)
    kx = family_taps(fit.family, r, length, float(q[-1]), s)
    return np.array([(taps_mtf(ky, r) + taps_mtf(kx, r)) / 2, q[-2], q[-1], g, o])


def _block_bootstrap(p: _Pair, fit: _Fit, res: np.ndarray, n_boot: int, block: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Std of (mtf, shift_y, shift_x, gain, bias) over block-bootstrap resamples (one Gauss-Newton step).

    Spatial blocks of ``block`` LR px are drawn with replacement; for each resample the parameters
    move by Delta = -(sum_b c_b J_b^T J_b)^+ sum_b c_b J_b^T r_b from the full-data optimum (the
    linearised, "one-step" bootstrap; Davison & Hinkley 1997, sec. 6.2 and 8.2 for blocks).
    """
    assert fit.jac is not None
    ii, jj = np.nonzero(p.valid)
    bid = (ii // block) * (p.valid.shape[1] // block + 1) + jj // block
    ids, inv = np.unique(bid, return_inverse=True)
    nb, k = ids.size, fit.jac.shape[1]
    jtj = np.zeros((nb, k, k))
    jtr = np.zeros((nb, k))
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(nb + 1))
    for b in range(nb):
        sel = order[bounds[b] : bounds[b + 1]]
        jb = fit.jac[sel]
        jtj[b] = _dot(jb, jb)
        jtr[b] = _dot(jb, res[sel][:, None])[:, 0]
    out = []
    for _ in range(n_boot):
        c = rng.multinomial(nb, np.full(nb, 1.0 / nb)).astype(np.float64)
        a = np.tensordot(c, jtj, 1)
        rhs = -np.tensordot(c, jtr, 1)
        delta = np.linalg.lstsq(a, rhs, rcond=1e-12)[0]
        out.append(_derived(fit, fit.theta + delta, p.r, p.length))
    return np.std(np.array(out), axis=0, ddof=1)


def _texture(y: np.ndarray, valid: np.ndarray) -> float:
    """RMS finite-difference gradient of the LR over valid neighbour pairs (reflectance per LR px)."""
    gy = np.diff(y, axis=0)[valid[1:] & valid[:-1]]
    gx = np.diff(y, axis=1)[valid[:, 1:] & valid[:, :-1]]
    if gy.size + gx.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(gy**2) + np.mean(gx**2))) if gy.size and gx.size else 0.0


def _kernel2d(ky: Sequence[float], kx: Sequence[float], r: int) -> np.ndarray:
    """2-D odd-sized kernel for :class:`CalibratedDegradation`: a zero row/column first for even taps."""
    k = np.outer(np.asarray(ky, dtype=np.float64), np.asarray(kx, dtype=np.float64))
    if k.shape[0] % 2 == 0:
        k = np.pad(k, ((1, 0), (0, 0)))
    if k.shape[1] % 2 == 0:
        k = np.pad(k, ((0, 0), (1, 0)))
    return k


def coarse_offset(hr: np.ndarray, lr: np.ndarray, scale: int, prior: tuple[float, float] = (0.0, 0.0)
                  ) -> tuple[float, float]:
    """Large offset (HR px, operator convention) of LR relative to HR by phase correlation.

    HR is blurred and decimated (Gaussian PSF, MTF 0.3) on the integer grid nearest to ``prior`` (e.g.
    the offset the georeference implies), then phase-correlated with LR (Guizar-Sicairos et al. 2008,
    :func:`eosr.physics.registration.estimate_shift`): integer and sub-pixel parts in one estimate,
    returned as ``prior``'s integer part plus r times the LR-pixel shift found.
    """
    r = check_scale(scale)
    h = _np(hr, "HR")
    lo = _np(lr, "LR")
    oy, ox = int(math.floor(0.5 - prior[0])), int(math.floor(0.5 - prior[1]))  # HR index of LR block 0
    i0, i1 = max(0, -(oy // r)), min(lo.shape[1], (h.shape[1] - oy) // r)
    j0, j1 = max(0, -(ox // r)), min(lo.shape[2], (h.shape[2] - ox) // r)
    if i1 - i0 < 16 or j1 - j0 < 16:
        raise GeoError(f"HR and LR overlap on {max(0, i1 - i0)}x{max(0, j1 - j0)} LR px: too little to register")
    sub = h[:, r * i0 + oy : r * i1 + oy, r * j0 + ox : r * j1 + ox]
    d = np.asarray(Degradation.from_mtf([0.3], r).downsample(sub))
    ref = lo[:, i0:i1, j0:j1]
    if d.shape[0] != ref.shape[0]:
        d = np.repeat(d[:1], ref.shape[0], 0) if d.shape[0] == 1 else d.mean(0, keepdims=True)
        ref = ref if d.shape[0] == ref.shape[0] else ref.mean(0, keepdims=True)
    sy, sx = estimate_shift(d, ref)
    return r * sy - oy, r * sx - ox


def calibrate_pair(
    hr: Any,
    lr: Any,
    scale: int,
    *,
    families: Sequence[str] = FAMILIES,
    band_names: Sequence[str] | None = None,
    register: bool = False,
    prior_shift: tuple[float, float] | None = None,
    mask: Any = None,
    n_boot: int = N_BOOT,
    block: int | None = None,
    seed: int = 0,
    limits: dict[str, float] | None = None,
    hr_gsd_m: float | None = None,
    lr_gsd_m: float | None = None,
) -> Calibration:
    """Fit each band's PSF kernel (family chosen by BIC), shift, gain and bias, with uncertainties.

    Model per band: LR = g sum_{t,u} k_y[t] k_x[u] HR[r i + oy + a + t, r j + ox + a + u] + o, for every
    family in ``families`` (:mod:`eosr.degrade.kernels`); the family with the smallest
    BIC = n ln(RSS / n) + k ln n (Schwarz 1978; k free parameters, n LR pixels) wins. Uncertainties are
    1-sigma block-bootstrap spreads (``n_boot`` resamples of ``block``-px LR blocks); a fit whose
    uncertainty or masked share exceeds ``limits`` (default :data:`LIMITS`) is flagged unreliable.

    ``hr`` is (C, H, W) or (1, H, W) (one HR band for every LR band, e.g. a panchromatic band), ``lr``
    (C, h, w). Without ``register`` the grids are pixel-is-area (same origin, H = r h); with it the HR
    may be larger or offset: the offset is estimated by :func:`coarse_offset` around ``prior_shift``
    (HR px, operator convention, e.g. from the georeference) and only the sub-pixel rest is fitted; a
    fitted shift farther than ``limits["prior_disagreement_px"]`` from ``prior_shift`` is flagged.
    ``mask`` (h, w) True = exclude (clouds, water...). Shifts are in HR pixels, bias in LR units.
    """
    t_start = time.perf_counter()
    r = check_scale(scale)
    h, lo = _np(hr, "HR"), _np(lr, "LR")
    if h.shape[0] not in (1, lo.shape[0]):
        raise ShapeError(f"HR has {h.shape[0]} bands and LR {lo.shape[0]}: give as many, or one HR band")
    bad_fam = [f for f in families if f not in FAMILIES]
    if bad_fam or not families:
        raise SensorError(f"unknown kernel families {bad_fam or 'none given'}; known: {', '.join(FAMILIES)}")
    if n_boot < 2:
        raise ConfigError(f"n_boot must be >= 2, got {n_boot}")
    lim = dict(LIMITS, **(limits or {}))
    names = list(band_names) if band_names is not None else [f"band{i + 1}" for i in range(lo.shape[0])]
    if len(names) != lo.shape[0]:
        raise ShapeError(f"{len(names)} band names for {lo.shape[0]} LR bands")
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != lo.shape[1:]:
            raise ShapeError(f"mask {m.shape} does not match the LR {lo.shape[1:]}")
    if register:
        total = coarse_offset(h, lo, r, prior_shift or (0.0, 0.0))
        oy, ox = int(math.floor(0.5 - total[0])), int(math.floor(0.5 - total[1]))  # HR index of LR block 0
        reg: dict[str, Any] = {"register": True, "prior_shift_px": None if prior_shift is None else list(prior_shift),
                               "coarse_shift_px": [float(total[0]), float(total[1])], "hr_index_of_lr_origin": [oy, ox]}
    else:
        if h.shape[1] != lo.shape[1] * r or h.shape[2] != lo.shape[2] * r:
            raise ShapeError(f"HR {h.shape[1:]} and LR {lo.shape[1:]} do not match at scale {r} "
                             "(pixel-is-area: HR = r x LR; use register=True / --register for other layouts)")
        total, oy, ox = (0.0, 0.0), 0, 0
        reg = {"register": False}
    length = common_length(r)
    rng = np.random.default_rng(seed)
    fits = []
    boot_seconds = []
    for b in range(lo.shape[0]):
        hb = h[0 if h.shape[0] == 1 else b]
        p, n_rect = _make_pair(hb, lo[b], r, oy, ox, length, m)
        n = int(p.valid.sum())
        if n < 50:
            raise DataError(f"band {names[b]}: only {n} valid LR pixels to calibrate")
        yv = p.y[p.valid]
        # start: sigma scan (Gaussian, zero sub-pixel shift) then phase correlation for the shift
        # taps are offset by the kernel centre kappa: LR sees HR at r i + origin + (r-1)/2 + kappa,
        # i.e. shift = -(origin + kappa) in the operator convention
        sub0 = (-total[0] - oy, -total[1] - ox) if register else (0.0, 0.0)

        def g_rss(s: float, p: _Pair = p, yv: np.ndarray = yv, sub0: tuple[float, float] = sub0) -> float:
            k1 = family_taps("gaussian", r, length, float(np.clip(sub0[0], -0.99, 0.99)), s)
            k2 = family_taps("gaussian", r, length, float(np.clip(sub0[1], -0.99, 0.99)), s)
            res = _linfit(p.filt(k1, k2)[p.valid], yv)[2]
            return float(_dot(res, res))

        s0 = min(np.linspace(0.3, r, 10), key=g_rss)
        if register:
            shift0 = sub0
        else:
            k0 = family_taps("gaussian", r, length, 0.0, s0)
            mod = np.where(p.valid, p.filt(k0, k0), np.nan)
            sy, sx = estimate_shift(mod[None], np.where(p.valid, p.y, np.nan)[None])
            shift0 = (-r * sy, -r * sx) if abs(r * sy) < 1 and abs(r * sx) < 1 else (0.0, 0.0)
        cands: dict[str, _Fit] = {}
        for fam in families:
            if fam in PARAMETRIC:
                cands[fam] = _fit_parametric(p, fam, shift0, s0)
        lf = free_length(r)
        start = (family_taps("gaussian", r, lf, float(np.clip(shift0[0], -0.9, 0.9)), s0),
                 family_taps("gaussian", r, lf, float(np.clip(shift0[1], -0.9, 0.9)), s0))
        for fam in families:
            if fam in FREE_FORM:
                cands[fam] = _fit_free(p, fam == "separable_nonneg", start)
        bic = {f: n * math.log(max(c.rss, 1e-300) / n) + c.n_params * math.log(n) for f, c in cands.items()}
        best = cands[min(bic, key=lambda f: bic[f])]
        ky_full = embed(best.ky, length) if best.ky.size < length else best.ky
        kx_full = embed(best.kx, length) if best.kx.size < length else best.kx
        res = p.filt(ky_full, kx_full)[p.valid] * best.gain + best.bias - yv
        t0 = time.perf_counter()
        bs = block or max(8, int(math.ceil(min(p.valid.shape) / 8)))
        unc = _block_bootstrap(p, best, res, n_boot, bs, rng)
        boot_seconds.append(time.perf_counter() - t0)
        der = _derived(best, best.theta, r, length)
        rms = float(np.sqrt(np.mean(res**2)))
        lr_std = float(np.std(yv))
        tex = _texture(np.where(p.valid, p.y, 0.0), p.valid)
        masked = 1.0 - n / n_rect
        u = {"mtf": float(unc[0]), "shift_y": float(unc[1]), "shift_x": float(unc[2]), "gain": float(unc[3]),
             "bias": float(unc[4])}
        reasons = []
        if max(u["shift_y"], u["shift_x"]) > lim["shift_px"]:
            reasons.append(f"shift uncertainty {max(u['shift_y'], u['shift_x']):.3f} px > {lim['shift_px']:g}")
        if u["mtf"] > lim["mtf"]:
            reasons.append(f"MTF uncertainty {u['mtf']:.3f} > {lim['mtf']:g}")
        if u["gain"] > lim["gain"]:
            reasons.append(f"gain uncertainty {u['gain']:.3f} > {lim['gain']:g}")
        if u["bias"] > lim["bias"]:
            reasons.append(f"bias uncertainty {u['bias']:.4f} > {lim['bias']:g}")
        if masked > lim["masked_share"]:
            reasons.append(f"masked/invalid share {masked:.2f} > {lim['masked_share']:g}")
        sy_, sx_ = -(oy + float(der[1])), -(ox + float(der[2]))
        if prior_shift is not None:
            off = max(abs(sy_ - prior_shift[0]), abs(sx_ - prior_shift[1]))
            if off > lim["prior_disagreement_px"]:
                reasons.append(f"shift ({sy_:+.2f}, {sx_:+.2f}) px disagrees with the expected ({prior_shift[0]:+.2f}, "
                               f"{prior_shift[1]:+.2f}) by {off:.2f} px > {lim['prior_disagreement_px']:g} (clouds, "
                               "parallax or a wrong georeference)")
        if n < lim["min_pixels"]:
            reasons.append(f"{n} valid LR pixels < {lim['min_pixels']:g}")
        ky_t, kx_t = trim(best.ky), trim(best.kx)
        fits.append(BandFit(
            band=names[b], family=best.family, kernel_y=tuple(float(v) for v in ky_t),
            kernel_x=tuple(float(v) for v in kx_t), mtf=float(der[0]), mtf_y=taps_mtf(best.ky, r),
            mtf_x=taps_mtf(best.kx, r), sigma=best.sigma, shift_y=sy_, shift_x=sx_,
            gain=best.gain, bias=best.bias, residual_rms=rms, n_pixels=n,
            bic={f: float(v) for f, v in bic.items()}, uncertainty=u,
            quality={"residual_rms": rms, "relative_residual": rms / lr_std if lr_std > 0 else float("inf"),
                     "texture": tex, "texture_to_residual": tex / rms if rms > 0 else float("inf"),
                     "masked_share": masked, "n_pixels": float(n)},
            unreliable=bool(reasons), reasons=tuple(reasons),
            window=(p.i0, p.i0 + p.y.shape[0], p.j0, p.j0 + p.y.shape[1])))
    boot = {"method": "block bootstrap, one Gauss-Newton step per resample", "n_boot": n_boot,
            "seconds_per_band": [round(s, 4) for s in boot_seconds],
            "total_seconds": round(time.perf_counter() - t_start, 3)}
    return Calibration(r, tuple(fits), reg, hr_gsd_m, lr_gsd_m, boot, lim)


# ------------------------------------------------------------------------------------------ stated operator
STATED_EXCESS = 0.10  # a stated operator whose residual RMS exceeds the fit's by more than 10 % "disagrees"


@dataclass(frozen=True)
class OperatorCheck:
    """How well a stated operator D explains an LR/HR pair, next to the calibrated fit (per band).

    ``residual_rms`` is that of LR - (g D(HR) + o) with g, o fitted by least squares on the fit's window
    and validity; ``excess`` = (residual_rms - fit residual_rms) / max(fit residual_rms, 1e-4 std(LR))
    (the floor keeps noise-free pairs meaningful). ``consistent`` when every band's excess is at most
    ``limit`` (docs/physics.md, "PSF calibration").
    """

    operator: dict[str, Any]
    bands: tuple[dict[str, Any], ...]
    limit: float = STATED_EXCESS

    @property
    def consistent(self) -> bool:
        """Whether the stated operator explains every band within ``limit`` of the calibrated fit."""
        return all(b["excess"] <= self.limit for b in self.bands)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        return _finite({"operator": self.operator, "limit": self.limit, "consistent": self.consistent,
                        "bands": list(self.bands)})

    def table(self) -> str:
        """One line per band: gain, bias, residual of the stated operator against the fit's."""
        head = f"{'band':<6} {'gain':>7} {'bias':>9} {'resid':>9} {'fit resid':>9} {'excess':>8}  verdict"
        lines = [head, "-" * len(head)]
        for b in self.bands:
            ok = "ok" if b["excess"] <= self.limit else f"DISAGREES (> {self.limit:.0%} above the fit)"
            ex = f"{b['excess']:+8.1%}" if abs(b["excess"]) < 10 else f"{'>+999%' if b['excess'] > 0 else '<-999%':>8}"
            lines.append(f"{b['band']:<6} {b['gain']:7.3f} {b['bias']:+9.5f} {b['residual_rms']:9.2e} "
                         f"{b['fit_residual_rms']:9.2e} {ex}  {ok}")
        return "\n".join(lines)


def _reach(op: Degradation) -> int:
    """HR pixels an operator's kernel reaches from its centre (its half length plus the shift)."""
    from eosr.physics.psf import kernel_length

    shift = max(abs(op.shift[0]), abs(op.shift[1]))
    if op.kernels is not None:
        half = max(max(k.shape) for k in op.kernels) // 2
    else:
        half = kernel_length(max(op.sigmas or (0.0,)), op.scale) // 2
    return int(math.ceil(half + shift)) + 1


def check_operator(hr: Any, lr: Any, op: Degradation, cal: Calibration, *, mask: Any = None,
                   limit: float = STATED_EXCESS) -> OperatorCheck:
    """Score a stated operator ``op`` (e.g. ``--operator full``) on the pair that ``cal`` was fitted on.

    Per band: g, o = argmin || LR - (g D(HR) + o) ||^2 over the LR pixels the calibration used (its
    window, mask and NaN validity; LR pixels whose operator support leaves the HR are dropped), then
    residual RMS and its excess over the calibrated fit's. Arrays as for :func:`calibrate_pair`.
    """
    r = cal.scale
    if op.scale != r:
        raise ScaleError(f"the stated operator is for scale {op.scale}, the calibration for {r}")
    h, lo = _np(hr, "HR"), _np(lr, "LR")
    if op.n_bands not in (1, lo.shape[0]):
        raise SensorError(f"the stated operator has {op.n_bands} band PSFs for {lo.shape[0]} LR bands")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if m is not None and m.shape != lo.shape[1:]:
        raise ShapeError(f"mask {m.shape} does not match the LR {lo.shape[1:]}")
    oy, ox = cal.registration.get("hr_index_of_lr_origin", (0, 0))
    det = op.with_options(noise_sigma=0.0, snr=None, bits=None, gain=1.0, offset=0.0)
    pad = -(-_reach(op) // r) + 1  # LR pixels of NaN padding: outputs that reach it become NaN
    rows = []
    for b, fit in enumerate(cal.bands):
        i0, i1, j0, j1 = fit.window
        # HR block of LR pixel (i, j) starts at (oy + r i, ox + r j); NaN outside the HR
        hy0, hx0 = oy + r * (i0 - pad), ox + r * (j0 - pad)
        ny, nx = r * (i1 - i0 + 2 * pad), r * (j1 - j0 + 2 * pad)
        src = h[0 if h.shape[0] == 1 else b]
        block = np.full((ny, nx), np.nan, np.float32)
        ys, xs = max(0, hy0), max(0, hx0)
        ye, xe = min(src.shape[0], hy0 + ny), min(src.shape[1], hx0 + nx)
        if ye > ys and xe > xs:
            block[ys - hy0 : ye - hy0, xs - hx0 : xe - hx0] = src[ys:ye, xs:xe]
        one = replace(det, sigmas=None if det.sigmas is None else (det._band_values(det.sigmas, lo.shape[0])[b],),
                      kernels=None if det.kernels is None else (det._band_values(det.kernels, lo.shape[0])[b],),
                      bands=None)
        sub = (0.0, 0.0)
        if not isinstance(op, CalibratedDegradation):  # its taps carry their own shift
            sub = (fit.shift_y + oy, fit.shift_x + ox)  # the fit's sub-pixel shift: compare kernels, not registration
            one = replace(one, shift=(op.shift[0] + sub[0], op.shift[1] + sub[1]))
        pred = np.asarray(one.downsample(block[None]), dtype=np.float64)[0, pad:-pad, pad:-pad]
        y = lo[b, i0:i1, j0:j1].astype(np.float64)
        valid = np.isfinite(pred) & np.isfinite(y)
        if m is not None:
            valid &= ~m[i0:i1, j0:j1]
        n = int(valid.sum())
        if n < 50:
            raise DataError(f"band {fit.band}: only {n} LR pixels to score the stated operator on")
        g, o, res = _linfit(pred[valid], y[valid])
        rms = float(np.sqrt(np.mean(res**2)))
        # floor: a noise-free pair fits to ~1e-8; float32 arithmetic alone leaves ~1e-7 relative
        ref = max(fit.residual_rms, 1e-4 * float(np.std(y[valid])), 1e-12)
        excess = (rms - fit.residual_rms) / ref
        rows.append({"band": fit.band, "gain": g, "bias": o, "residual_rms": rms,
                     "fit_residual_rms": fit.residual_rms, "excess": excess, "n_pixels": n,
                     "shift_applied_px": [sub[0], sub[1]]})
    return OperatorCheck(det.describe(), tuple(rows), limit)


# ------------------------------------------------------------------------------------------ operator
@dataclass(frozen=True, eq=False)
class CalibratedDegradation(Degradation):
    """:class:`Degradation` with calibrated explicit kernels that are already block-centred.

    A calibrated kernel of even taps (even r) is stored with a leading zero row/column (odd size, as the
    operator requires) and applied without the operator's Fourier recentring, which would clip its
    negative lobes: the taps act exactly as fitted. ``shift`` other than (0, 0) and the stride-1
    ``blur`` fall back to the operator's recentring (negative lobes clipped there).
    """

    families: tuple[str, ...] | None = None

    def _kernel_stack(self, c: int, stride: int, dtype: torch.dtype) -> torch.Tensor:
        ks = self._band_values(self.kernels or (), c)
        if stride == 1 and self.scale % 2 == 0:  # blur(): centre the even taps on a sample (Fourier shift)
            ks = [_recentre(k, 1, (-0.5 * (not k[0].any()), -0.5 * (not k[:, 0].any()))) for k in ks]
            return replace(self, kernels=tuple(ks), scale=1)._base_stack(c, 1, dtype)
        if self.shift != (0.0, 0.0) or stride % 2:
            return super()._kernel_stack(c, stride, dtype)
        return pad_stack(ks, stride, dtype)

    def _base_stack(self, c: int, stride: int, dtype: torch.dtype) -> torch.Tensor:
        return Degradation._kernel_stack(self, c, stride, dtype)

    def describe(self) -> dict[str, Any]:
        """As :meth:`Degradation.describe`, plus the kernel family and MTF of each band."""
        d = super().describe()
        d["block_centred"] = True  # the kernels' taps sit on the LR block centre as stored (no recentring)
        if self.families:
            d["kernel_family"] = list(self.families)
        ks = self.kernels or ()
        d["mtf_at_lr_nyquist"] = [round((taps_mtf(k.sum(1), self.scale) + taps_mtf(k.sum(0), self.scale)) / 2, 6)
                                  for k in ks]
        return d


def operator_from_file(path: str | Path, bands: Sequence[str] | str | None, scale: int, *, wald: bool = False,
                       **options: Any) -> Degradation:
    """The operator a sensor file defines for ``bands`` at ``scale``.

    A file written by ``eosr calibrate --write-sensor`` (bands with ``kernel_y``/``kernel_x``) gives its
    calibrated explicit kernels (:class:`CalibratedDegradation`), valid only at the calibrated scale and
    without ``wald`` (the kernel already maps that HR to that LR). Any other sensor file gives
    :meth:`Degradation.from_sensor` (Gaussian from each band's MTF, ``wald`` as there).
    """
    from eosr.sensors import load_sensor

    s = load_sensor(path)
    r = check_scale(scale)
    sel = s.select(list(bands) if bands is not None and not isinstance(bands, str) else bands)
    have = [b.kernel_y is not None for b in sel]
    if not any(have):
        return Degradation.from_sensor(s, [b.name for b in sel], r, wald=wald, **options)
    if not all(have):
        missing = [b.name for b, k in zip(sel, have, strict=True) if not k]
        raise SensorError(f"{path}: bands {', '.join(missing)} have no calibrated kernel")
    if wald:
        raise SensorError(f"{path} holds a calibrated operator (it already maps its HR to its LR); wald does not apply")
    bad = sorted({b.kernel_scale for b in sel if b.kernel_scale != r}, key=str)
    if bad:
        raise ScaleError(f"{path} was calibrated at scale {bad[0]}, not {r}")
    return CalibratedDegradation(
        scale=r, kernels=tuple(_kernel2d(b.kernel_y or (), b.kernel_x or (), r) for b in sel),
        bands=tuple(b.name for b in sel), families=tuple(b.kernel_family or "explicit" for b in sel),
        description=f"calibrated {s.name} x{r} ({Path(path).name})", **options)
