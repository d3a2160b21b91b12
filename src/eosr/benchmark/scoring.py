"""Scoring one SR image with ``eosr.evaluate``, plus the per-pixel maps the report shows (error,
high-frequency difference, hallucination).

A minimal private fallback (:func:`fallback_metrics`) computes the same names following
docs/conventions.md (pooled statistics, NaN = nodata, percentile gradient strata, shift/gain/bias
reported apart, hallucination against the interpolated LR). It is used only when ``eosr.evaluate``
cannot be found, which does not happen in an installed eosr; results name the evaluator that was used.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
from scipy import ndimage

from eosr.benchmark.metric_docs import METRICS
from eosr.metrics.base import psnr_db


def _evaluate_api() -> Any:
    for mod_name in ("eosr.evaluation", "eosr"):
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            continue
        fn = getattr(mod, "evaluate", None)
        if callable(fn):
            return fn
    return None


def evaluator_name() -> str:
    """``"eosr.evaluate"`` or ``"benchmark-fallback"``: which implementation scores the images."""
    return "eosr.evaluate" if _evaluate_api() is not None else "benchmark-fallback"


def score(sample: Any, sr: np.ndarray, *, data_range: float = 1.0, metrics: list[str] | None = None
          ) -> dict[str, dict[str, Any]]:
    """Every metric the inputs allow as ``{name: {"value": float, "per_band": [...]}}`` (strict JSON).

    ``metrics`` restricts the names kept; metrics whose value is not finite are omitted.
    """
    fn = _evaluate_api()
    if fn is not None:
        kw = {"hr": sample.hr, "lr": sample.lr, "bands": list(sample.bands), "scale": sample.scale,
              "data_range": data_range}
        try:  # the dataset's operator carries the exact PSF the LR was made with
            res = fn(sr, operator=sample.operator, **kw)
        except TypeError:
            res = fn(sr, sensor=sample.sensor, **kw)
        d = res.to_dict() if hasattr(res, "to_dict") else dict(res)
        out = dict(d.get("metrics", {}))
    else:
        out = fallback_metrics(sample, sr, data_range)
    keep = {}
    for name, d in out.items():
        if metrics is not None and name not in metrics:
            continue
        v = d.get("value") if isinstance(d, dict) else d
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            continue
        keep[name] = d if isinstance(d, dict) else {"value": float(v), "per_band": []}
    return keep


# --------------------------------------------------------------------------- fallback
def _pooled(e: np.ndarray, valid: np.ndarray) -> tuple[float, list[float]]:
    per = [float(e[b][valid[b]].mean()) if valid[b].any() else float("nan") for b in range(e.shape[0])]
    return float(e[valid].mean()), per


def _psnr(mse: float, data_range: float) -> float:
    return float(psnr_db(mse, data_range))  # the one 120 dB cap (eosr.metrics.base.PSNR_CAP_DB)


def gradient_magnitude(hr: np.ndarray) -> np.ndarray:
    """g = mean over bands of sqrt(dx^2 + dy^2), central differences (docs/conventions.md#gradient-strata)."""
    a = np.nan_to_num(np.asarray(hr, np.float64))
    gy, gx = np.gradient(a, axis=(1, 2))
    return np.sqrt(gx**2 + gy**2).mean(axis=0)


def _ssim_band(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def f(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, 1.5, truncate=3.5, mode="reflect")

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean()) if min(m.shape) > 10 else float(m.mean())


def compensate(sr: np.ndarray, hr: np.ndarray, scale: int = 2) -> tuple[np.ndarray, dict[str, float]]:
    """SR' = (shift-compensated SR - bias) / gain.

    The shift comes from phase correlation; gain and bias from least squares on low-passed images
    (Gaussian, sigma = 2 r HR pixels), so that the smoothing of an interpolator does not read as a
    gain below 1 (regression dilution), while SR = 1.1 HR still gives gain 1.1.
    """
    from eosr.physics.registration import estimate_shift, fourier_shift

    dy, dx = estimate_shift(hr, sr)
    al = fourier_shift(np.nan_to_num(sr), -dy, -dx)
    ok = (np.isfinite(hr) & np.isfinite(sr)).all(0)
    sig = (0, 2.0 * scale, 2.0 * scale)
    lh = ndimage.gaussian_filter(np.nan_to_num(hr.astype(np.float64)), sig, mode="reflect")
    ls = ndimage.gaussian_filter(al, sig, mode="reflect")
    h, s = lh[:, ok].ravel(), ls[:, ok].ravel()
    var = float(((h - h.mean()) ** 2).mean())
    gain = float(((h - h.mean()) * (s - s.mean())).mean() / var) if var > 0 else 1.0
    bias = float(s.mean() - gain * h.mean())
    comp = (al - bias) / (gain if abs(gain) > 1e-6 else 1.0)
    return comp, {"shift_x_px": float(dx), "shift_y_px": float(dy), "gain": gain, "bias": bias}


def detail_maps(sr: np.ndarray, hr: np.ndarray, interp: np.ndarray, comp: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Per-pixel improvement |c|, hallucination |a - c| and omission |t - c| (docs/conventions.md).

    t = HR - I (true missing detail), a = SR' - I (added detail), c = sign(t) clip(a sign(t), 0, |t|).
    """
    if comp is None:
        comp, _ = compensate(sr, hr)
    t = hr.astype(np.float64) - interp
    a = comp - interp
    st = np.sign(t)
    c = st * np.clip(a * st, 0.0, np.abs(t))
    return {"improvement": np.abs(c), "hallucination": np.abs(a - c), "omission": np.abs(t - c), "truth": np.abs(t)}


def _frr(sr: np.ndarray, hr: np.ndarray, interp: np.ndarray, scale: int) -> float:
    from eosr.physics.spectrum import radial_power_spectrum

    f, pt = radial_power_spectrum(np.nan_to_num(hr))
    _, pi = radial_power_spectrum(np.nan_to_num(interp))
    _, pp = radial_power_spectrum(np.nan_to_num(sr))
    sel = f > 0.5 / scale
    eps = 1e-30
    t, i, p = (10 * np.log10(x.mean(axis=0)[sel] + eps) for x in (pt, pi, pp))
    pfr = float(np.sum(t - np.minimum(t, i)))
    afr = float(np.sum(np.maximum(np.minimum(p, t), np.minimum(i, t)) - np.minimum(t, i)))
    return 100.0 * afr / pfr if pfr > 0 else float("nan")


def fallback_metrics(sample: Any, sr: np.ndarray, data_range: float = 1.0) -> dict[str, dict[str, Any]]:
    """The private fallback scorer (see module docstring)."""
    from eosr.benchmark.methods import bicubic

    out: dict[str, dict[str, Any]] = {}
    sr64 = np.asarray(sr, np.float64)
    lr = np.asarray(sample.lr, np.float64)
    op = sample.operator
    d_sr = np.asarray(op.downsample(sr64))
    e_lr = np.abs(lr - d_sr)
    ok_lr = np.isfinite(e_lr)
    v, pb = _pooled(e_lr, ok_lr)
    out["lr_fidelity"] = {"value": v, "per_band": pb}
    if sample.hr is None:
        return out
    hr = np.asarray(sample.hr, np.float64)
    valid = np.isfinite(hr) & np.isfinite(sr64)
    err = sr64 - hr
    mse, mse_b = _pooled(err**2, valid)
    out["psnr"] = {"value": _psnr(mse, data_range), "per_band": [_psnr(m, data_range) for m in mse_b]}
    out["rmse"] = {"value": math.sqrt(mse), "per_band": [math.sqrt(m) for m in mse_b]}
    v, pb = _pooled(np.abs(err), valid)
    out["mae"] = {"value": v, "per_band": pb}
    ss = [_ssim_band(np.nan_to_num(sr64[b]), np.nan_to_num(hr[b]), data_range) for b in range(hr.shape[0])]
    out["ssim"] = {"value": float(np.mean(ss)), "per_band": ss}
    dot = (sr64 * hr).sum(0)
    nrm = np.linalg.norm(sr64, axis=0) * np.linalg.norm(hr, axis=0)
    okp = valid.all(0) & (nrm > 0)
    ang = np.degrees(np.arccos(np.clip(dot[okp] / nrm[okp], -1, 1)))
    if ang.size:
        out["sam_deg"] = {"value": float(ang.mean()), "per_band": []}
    means = np.array([hr[b][valid[b]].mean() for b in range(hr.shape[0])])
    if np.all(np.abs(means) > 0):
        erg = 100.0 / sample.scale * math.sqrt(float(np.mean(np.asarray(mse_b) / means**2)))
        out["ergas"] = {"value": erg, "per_band": []}
    hf = (hr - np.asarray(op.blur(hr))) - (sr64 - np.asarray(op.blur(sr64)))
    okh = np.isfinite(hf)
    v, pb = _pooled(np.abs(hf), okh)
    out["hr_fidelity"] = {"value": v, "per_band": pb}
    g = gradient_magnitude(hr)
    vg = valid.all(0)
    q50, q90 = np.quantile(g[vg], [0.5, 0.9])
    for stratum, sel in (("low", vg & (g <= q50)), ("high", vg & (g >= q90))):
        m = np.broadcast_to(sel, valid.shape) & valid
        if m.any():
            ms, ms_b = _pooled(err**2, m)
            n = int(sel.sum())
            out[f"psnr_{stratum}_gradient"] = {"value": _psnr(ms, data_range),
                                               "per_band": [_psnr(x, data_range) for x in ms_b], "n_pixels": n}
            out[f"rmse_{stratum}_gradient"] = {"value": math.sqrt(ms), "per_band": [math.sqrt(x) for x in ms_b],
                                               "n_pixels": n}
    comp, reg = compensate(sr64, hr, sample.scale)
    for k, val in reg.items():
        out[k] = {"value": val, "per_band": []}
    mse_al, mse_al_b = _pooled((comp - hr) ** 2, valid)
    out["psnr_aligned"] = {"value": _psnr(mse_al, data_range), "per_band": [_psnr(x, data_range) for x in mse_al_b]}
    interp = bicubic(np.nan_to_num(sample.lr).astype(np.float32), sample.scale).astype(np.float64)
    maps = detail_maps(sr64, hr, interp, comp)
    tot = float(maps["truth"][valid].sum())
    if tot > 0:
        for k in ("improvement", "hallucination", "omission"):
            out[k] = {"value": float(maps[k][valid].sum()) / tot, "per_band": []}
    frr = _frr(sr64, hr, interp, sample.scale)
    if math.isfinite(frr):
        out["frr"] = {"value": frr, "per_band": []}
    return {k: v for k, v in out.items() if k in METRICS}
