"""Standard full-reference pixel metrics: PSNR, RMSE, MAE, SSIM, SAM, ERGAS, UIQI.

Every function takes ``(sr, hr)`` as ``(C, H, W)`` or ``(B, C, H, W)`` NumPy arrays or torch tensors,
an explicit ``data_range`` (default 1.0, reflectance) and an optional validity ``mask``; NaN is nodata
and is excluded. ``value`` pools the statistics over all valid pixels of all bands and batch items
(PSNR from the pooled MSE); ``per_band`` lists one value per band. NumPy in gives floats / NumPy out;
torch in gives tensors that carry gradients (these metrics are usable as losses).

Border handling of the windowed metrics (SSIM, UIQI): the statistics are computed only where the
whole 11 x 11 Gaussian window lies inside the image and on valid pixels ("valid" filtering, as the
reference MATLAB code of Wang et al. 2004 with ``filter2(..., 'valid')``). The maps have the input's
size with NaN on the 5-pixel border and wherever a window touches an invalid pixel; the mean is over
the remaining centres. scikit-image instead pads by reflection and then crops the same 5-pixel border
before averaging, which gives the same number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eosr.errors import EosrError, ScaleError, ShapeError
from eosr.metrics.base import (
    MetricInfo,
    MetricResult,
    Prepared,
    pooled_mean,
    prepare,
    psnr_capped,
    psnr_db,
    zero_invalid,
)
from eosr.physics.filters import all_true, any_true, count_true, sep_correlate_valid, usable

__all__ = [
    "ERGAS",
    "INFOS",
    "MAE",
    "PSNR",
    "RMSE",
    "SAM",
    "SSIM",
    "UIQI",
    "ergas",
    "gaussian_window",
    "mae",
    "pixel_error_metric",
    "pixel_errors",
    "psnr",
    "rmse",
    "sam",
    "sam_map",
    "ssim",
    "ssim_map",
    "ssim_uiqi",
    "uiqi",
]

_WANG04 = "Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 13(4), 2004"

PSNR = MetricInfo("psnr", True, (-math.inf, 120.0), unit="dB",
                  source="10 log10(data_range^2 / MSE), capped at 120 dB (MSE floored at 1e-12 data_range^2)")
RMSE = MetricInfo("rmse", False, (0.0, math.inf), unit="reflectance", source="root mean square error")
MAE = MetricInfo("mae", False, (0.0, math.inf), unit="reflectance", source="mean absolute error")
SSIM = MetricInfo("ssim", True, (-1.0, 1.0), source=_WANG04)
SAM = MetricInfo("sam_deg", False, (0.0, 180.0), unit="deg", source="Kruse et al., Remote Sens. Environ. 44, 1993")
ERGAS = MetricInfo("ergas", False, (0.0, math.inf), source="Wald, Data Fusion, Presses de l'Ecole des Mines, 2002")
UIQI = MetricInfo("uiqi", True, (-1.0, 1.0), source="Wang, Bovik, IEEE Signal Process. Lett. 9(3), 2002")

#: The metrics of this module with their metadata.
INFOS: tuple[MetricInfo, ...] = (PSNR, RMSE, MAE, SSIM, SAM, ERGAS, UIQI)


# ----------------------------------------------------------------------------- pixel errors
def pixel_error_metric(name: str, p: Prepared, err: torch.Tensor, valid: torch.Tensor,
                       data_range: float = 1.0) -> MetricResult:
    """``psnr``, ``rmse`` or ``mae`` of a prepared pair from its error image ``err`` = SR - HR over ``valid``.

    The shared core of :func:`psnr`, :func:`rmse`, :func:`mae` and their gradient strata (one error
    image serves every metric and stratum).
    """
    n_valid = {"n_valid": int(count_true(valid))}
    if name == "mae":
        per_band, value = pooled_mean(torch.abs(err), valid)
        return MetricResult(MAE, p.out(value), p.out(per_band), n_valid)
    if name not in ("psnr", "rmse"):
        raise EosrError(f"unknown pixel error metric {name!r}; use psnr, rmse or mae")
    mse_b, mse = pooled_mean(err * err, valid)
    if name == "rmse":
        return MetricResult(RMSE, p.out(torch.sqrt(mse)), p.out(torch.sqrt(mse_b)), n_valid)
    value, per_band = psnr_db(mse, data_range), psnr_db(mse_b, data_range)  # the one 120 dB cap
    extra: dict[str, Any] = dict(n_valid)
    if psnr_capped(per_band.detach()) or psnr_capped(value.detach()):
        extra["capped"] = True
    return MetricResult(PSNR, p.out(value), p.out(per_band), extra)


def pixel_errors(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None,
                 names: tuple[str, ...] = ("psnr", "rmse", "mae")) -> dict[str, MetricResult]:
    """:func:`psnr`, :func:`rmse` and :func:`mae` (or the ``names`` given) from one validation and one
    error image, as ``{name: MetricResult}``; the same numbers as the single functions."""
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask)
    err = p.tensors[0] - p.tensors[1]
    return {n: pixel_error_metric(n, p, err, p.valid, float(data_range)) for n in names}


def _pixel(name: str, sr: Any, hr: Any, data_range: float, mask: Any) -> MetricResult:
    return pixel_errors(sr, hr, data_range=data_range, mask=mask, names=(name,))[name]


def psnr(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """Peak signal-to-noise ratio, PSNR = 10 log10(data_range^2 / max(MSE, 1e-12 data_range^2)) in dB.

    ``value`` comes from the MSE pooled over all valid pixels of all bands (not the mean of per-band
    PSNRs). Capped at 120 dB (:func:`eosr.metrics.base.psnr_db`): a perfect match gives 120.0 with
    ``extra["capped"] = True``.
    """
    return _pixel("psnr", sr, hr, data_range, mask)


def rmse(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """Root mean square error sqrt(mean((SR - HR)^2)) over valid pixels (``data_range`` is recorded only)."""
    return _pixel("rmse", sr, hr, data_range, mask)


def mae(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """Mean absolute error mean(|SR - HR|) over valid pixels (``data_range`` is recorded only)."""
    return _pixel("mae", sr, hr, data_range, mask)


# ----------------------------------------------------------------------------- windowed statistics
def gaussian_window(win_size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian taps g_k = exp(-k^2 / (2 sigma^2)) / sum, k = -(n-1)/2 .. (n-1)/2."""
    if win_size < 1 or win_size % 2 == 0:
        raise ShapeError(f"the window size must be odd and >= 1, got {win_size}")
    k = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
    g = torch.exp(-(k**2) / (2 * float(sigma) ** 2))
    return (g / g.sum()).to(dtype)


def _filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Correlation of every (B, C) plane with the separable window ``taps`` x ``taps``, 'valid' region.

    out[i, j] = sum_{k,l} g_k g_l x[i + k, j + l] for i <= H - n, j <= W - n. Computed with an FFT of
    the image's own size: the circular wrap only reaches the discarded last n - 1 rows/columns
    (about 10x faster than a depthwise conv2d on CPU for 4 x 2048^2; exact up to float rounding).
    Without a gradient, OpenCV's separable filter computes the same valid region (:mod:`eosr.physics.filters`).
    """
    h, w = x.shape[-2:]
    n = taps.shape[0]
    g = taps.to(x.dtype)
    if usable(x):  # no gradient needed: OpenCV's separable filter (same numbers, several times faster)
        return sep_correlate_valid(x, g, g)
    spec = torch.conj(torch.fft.rfft2(torch.outer(g, g), s=(h, w)))
    y = torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=(h, w))
    return y[..., : h - n + 1, : w - n + 1]


def _window_stats(p: Prepared, win_size: int, sigma: float) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, int]:
    """Local Gaussian means, variances and covariance of SR and HR on the 'valid' grid.

    Returns ``((mu_x, mu_y, var_x, var_y, cov), window_valid, pad)``: population (biased) moments,
    ``window_valid`` True where the whole window lies on valid pixels.
    """
    sr, hr = (zero_invalid(t, p.valid) for t in p.tensors)
    # Centre both images on the HR band mean c (a constant): variances and covariance do not change, but
    # E[x^2] - E[x]^2 of small deviations keeps its precision in float32 (without it, float32 UIQI of real
    # reflectance was off by ~0.01: no stabilising constants absorb the cancellation there).
    every = all_true(p.valid)
    n = torch.tensor(float(p.valid[0, 0].numel()), dtype=sr.dtype) if every else \
        p.valid.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
    c = (hr.sum(dim=(-2, -1), keepdim=True) / n).detach()
    if every:
        sr, hr = sr - c, hr - c
    else:
        zero = torch.zeros((), dtype=sr.dtype)
        sr, hr = torch.where(p.valid, sr - c, zero), torch.where(p.valid, hr - c, zero)
    g = gaussian_window(win_size, sigma, sr.dtype)
    # one moment at a time into a preallocated output: the FFT temporaries cover one (B, C, H, W)
    # tensor instead of all five (peak memory ~3x lower for large images; same values)
    h, w = sr.shape[-2:]
    f = torch.empty((5, *sr.shape[:-2], h - win_size + 1, w - win_size + 1), dtype=sr.dtype)
    for k, make in enumerate((lambda: sr, lambda: hr, lambda: sr * sr, lambda: hr * hr, lambda: sr * hr)):
        f[k] = _filter_valid(make(), g)
    mu_x, mu_y, xx, yy, xy = f.unbind(0)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    mu_x, mu_y = mu_x + c, mu_y + c
    if every:
        ok = torch.ones(mu_x.shape, dtype=torch.bool)
    else:
        bad = (~p.valid).to(torch.float32).flatten(0, 1).unsqueeze(1)
        bad = F.max_pool2d(F.max_pool2d(bad, (win_size, 1), stride=1), (1, win_size), stride=1)
        ok = bad.reshape(mu_x.shape) == 0
    return (mu_x, mu_y, var_x, var_y, cov), ok, (win_size - 1) // 2


def _windowed_maps(
    p: Prepared, win_size: int, sigma: float, fns: tuple[Callable[[tuple[torch.Tensor, ...]], torch.Tensor], ...]
) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Maps ``fn(window moments)`` for each fn, computed one band at a time (the moments and the
    temporaries of the map formulas then cover one band, not the whole stack: ~5x lower peak memory
    on large multi-band images; same numbers), concatenated over bands; plus window validity and pad."""
    maps: list[list[torch.Tensor]] = [[] for _ in fns]
    oks: list[torch.Tensor] = []
    pad = (win_size - 1) // 2
    for c in range(p.n_bands):
        pc = Prepared([t[:, c : c + 1] for t in p.tensors], p.valid[:, c : c + 1], p.numpy, p.was3d)
        stats, ok, pad = _window_stats(pc, win_size, sigma)
        for acc, fn in zip(maps, fns, strict=True):
            acc.append(fn(stats))
        oks.append(ok)
        del stats
    return [torch.cat(m, dim=1) for m in maps], torch.cat(oks, dim=1), pad


def _full_size(m: torch.Tensor, pad: int, fill: float) -> torch.Tensor:
    return F.pad(m, (pad, pad, pad, pad), value=fill)


def _ssim_core(
    p: Prepared, data_range: float, win_size: int, sigma: float, k1: float, k2: float
) -> tuple[torch.Tensor, torch.Tensor, int]:
    (m,), ok, pad = _windowed_maps(p, win_size, sigma, (lambda st: _ssim_from_stats(st, data_range, k1, k2),))
    return m, ok, pad


def _ssim_from_stats(stats: tuple[torch.Tensor, ...], data_range: float, k1: float, k2: float) -> torch.Tensor:
    mu_x, mu_y, var_x, var_y, cov = stats
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim_map(
    sr: Any,
    hr: Any,
    *,
    data_range: float = 1.0,
    mask: Any = None,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Any:
    """Per-pixel SSIM map (Wang et al. 2004), same shape as the input.

    SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)) with
    Gaussian-weighted local moments (window ``win_size``, ``sigma``; population covariance),
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = ``data_range``. Centres whose window leaves the image (the
    (win_size - 1)/2 border) or touches an invalid pixel are NaN.
    """
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask, min_size=win_size)
    m, ok, pad = _ssim_core(p, float(data_range), win_size, sigma, k1, k2)
    m = torch.where(ok, m, torch.full((), float("nan"), dtype=m.dtype))
    full = _full_size(m, pad, float("nan"))
    out = full[0] if p.was3d else full
    return out if not p.numpy else out.detach().cpu().numpy()


def ssim(
    sr: Any,
    hr: Any,
    *,
    data_range: float = 1.0,
    mask: Any = None,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> MetricResult:
    """Structural similarity (Wang et al. 2004): mean of :func:`ssim_map` over valid window centres.

    Gaussian window 11 / sigma 1.5, K1 = 0.01, K2 = 0.03, population covariance; equals
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` on fully valid images. Differentiable (1 - SSIM is a loss).
    """
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask, min_size=win_size)
    m, ok, _ = _ssim_core(p, float(data_range), win_size, sigma, k1, k2)
    return _pooled_result(SSIM, p, m, ok, win_size)


def uiqi(
    sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None, win_size: int = 11, sigma: float = 1.5
) -> MetricResult:
    """Universal image quality index Q (Wang & Bovik 2002) = SSIM with C1 = C2 = 0.

    Q = 4 s_xy mu_x mu_y / ((s_x^2 + s_y^2)(mu_x^2 + mu_y^2)) on Gaussian windows (11 / 1.5, as
    torchmetrics; the 2002 paper used 8 x 8 boxes). Degenerate windows follow the paper's code:
    flat in both images -> 2 mu_x mu_y / (mu_x^2 + mu_y^2); zero means -> 2 s_xy / (s_x^2 + s_y^2);
    both -> 1. Borders and NaN as SSIM. ``data_range`` only scales the degeneracy tolerance.
    """
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask, min_size=win_size)
    (q,), ok, _ = _windowed_maps(p, win_size, sigma, (lambda st: _uiqi_map(st, float(data_range)),))
    return _pooled_result(UIQI, p, q, ok, win_size)


def _uiqi_map(stats: tuple[torch.Tensor, ...], data_range: float) -> torch.Tensor:
    mu_x, mu_y, var_x, var_y, cov = stats
    var_x, var_y = var_x.clamp(min=0), var_y.clamp(min=0)
    tol = (1e-6 * data_range) ** 2
    d1 = var_x + var_y
    d2 = mu_x * mu_x + mu_y * mu_y
    z1, z2 = d1 <= tol, d2 <= tol
    one = torch.ones((), dtype=d1.dtype)
    d1s, d2s = torch.where(z1, one, d1), torch.where(z2, one, d2)
    q = (2 * cov / d1s) * (2 * mu_x * mu_y / d2s)
    q = torch.where(z1 & ~z2, 2 * mu_x * mu_y / d2s, q)
    q = torch.where(~z1 & z2, 2 * cov / d1s, q)
    return torch.where(z1 & z2, one, q)


def _pooled_result(info: MetricInfo, p: Prepared, m: torch.Tensor, ok: torch.Tensor, win_size: int) -> MetricResult:
    """Mean of a windowed map over the valid window centres, as a result (SSIM, UIQI)."""
    if not any_true(ok):
        raise ShapeError(f"no {win_size}x{win_size} window lies entirely on valid pixels")
    per_band, value = pooled_mean(m, ok)
    return MetricResult(
        info, p.out(value), p.out(per_band), {"n_valid": int(count_true(ok)), "border_px": (win_size - 1) // 2}
    )


def ssim_uiqi(
    sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None
) -> tuple[MetricResult, MetricResult, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`ssim` and :func:`uiqi` (defaults: Gaussian 11 / 1.5) from one set of window moments.

    Also returns the SSIM map and its window validity padded to the input size (B, C, H, W), which
    :func:`eosr.metrics.stratified.stratified_metrics` takes as ``ssim_parts`` (one SSIM pass for the
    SSIM, UIQI and the gradient strata of :func:`eosr.evaluate`). Same numbers as the separate calls.
    """
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask, min_size=11)
    (smap, qmap), ok, pad = _windowed_maps(p, 11, 1.5, (
        lambda st: _ssim_from_stats(st, float(data_range), 0.01, 0.03),
        lambda st: _uiqi_map(st, float(data_range)),
    ))
    res_s = _pooled_result(SSIM, p, smap, ok, 11)
    res_u = _pooled_result(UIQI, p, qmap, ok, 11)
    del qmap
    parts = (F.pad(smap, (pad, pad, pad, pad)), F.pad(ok, (pad, pad, pad, pad)))
    return res_s, res_u, parts


# ----------------------------------------------------------------------------- spectral metrics
def _band_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the band axis (B, 1, H, W): sqrt of a band-by-band sum of squares.

    Same value as ``torch.linalg.vector_norm(x, dim=1)`` (which is ~10x slower here on CPU); the
    double ``where`` keeps the gradient finite at zero vectors (0, as vector_norm's).
    """
    ss = x[:, :1] * x[:, :1]
    for c in range(1, x.shape[1]):
        ss = ss + x[:, c : c + 1] * x[:, c : c + 1]
    pos = ss > 0
    one, zero = torch.ones((), dtype=ss.dtype), torch.zeros((), dtype=ss.dtype)
    return torch.where(pos, torch.sqrt(torch.where(pos, ss, one)), zero)


def _sam_rad(p: Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel angle (B, 1, H, W) in radians, its validity and the one-sided zero-vector flags."""
    ok = p.valid.all(dim=1, keepdim=True)
    a, b = (zero_invalid(t, p.valid) for t in p.tensors)
    na, nb = _band_norm(a), _band_norm(b)
    one = torch.ones((), dtype=a.dtype)
    u = a / torch.where(na > 0, na, one)
    v = b / torch.where(nb > 0, nb, one)
    # Kahan's formula: accurate near 0 and 180 degrees, unlike arccos of the cosine.
    dn, sn = _band_norm(u - v), _band_norm(u + v)
    ang = 2 * torch.atan2(dn, sn)
    one_zero = ok & ((na == 0) ^ (nb == 0))
    return ang, ok, one_zero


def sam_map(sr: Any, hr: Any, *, mask: Any = None) -> Any:
    """Per-pixel spectral angle in degrees, shape (1, H, W) or (B, 1, H, W); NaN where a band is invalid."""
    p = prepare(sr, hr, mask=mask)
    ang, ok, _ = _sam_rad(p)
    m = torch.where(ok, torch.rad2deg(ang), torch.full((), float("nan"), dtype=ang.dtype))
    out = m[0] if p.was3d else m
    return out if not p.numpy else out.detach().cpu().numpy()


def sam(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """Spectral angle mapper in degrees: mean over pixels of arccos(<x, y> / (|x| |y|)).

    Computed as 2 atan2(|x/|x| - y/|y||, |x/|x| + y/|y||) (exact near 0). Pixels where any band is
    invalid are excluded. Zero vectors: SR and HR both zero -> 0 deg (identical); exactly one of them
    zero -> 90 deg (no spectral information, the largest angle between non-negative spectra), counted
    in ``extra["n_zero_vector"]``. ``per_band`` is empty (SAM is a cross-band metric).
    """
    _check_range(data_range)
    p = prepare(sr, hr, mask=mask)
    ang, ok, one_zero = _sam_rad(p)
    deg = torch.rad2deg(ang)
    _, value = pooled_mean(deg, ok)
    empty = torch.zeros(0, dtype=deg.dtype)
    return MetricResult(
        SAM, p.out(value), p.out(empty), {"n_valid": int(count_true(ok)), "n_zero_vector": int(count_true(one_zero))}
    )


def ergas(sr: Any, hr: Any, *, scale: float, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """ERGAS (Wald 2002) = 100 (h / l) sqrt(mean_b (RMSE_b / mu_b)^2), with h / l = 1 / ``scale``.

    ``scale`` is the SR factor r (HR pixel size h = LR pixel size l / r); mu_b is the mean of HR band b
    over its valid pixels. ``per_band`` = 100 / r * RMSE_b / |mu_b| (the ERGAS of each band alone).
    ERGAS is scale-free: ``data_range`` is recorded only. A band with mu_b = 0 gives inf.
    torchmetrics' ``ErrorRelativeGlobalDimensionlessSynthesis(ratio=r)`` (>= 1.x: 100 / ratio) agrees.
    """
    _check_range(data_range)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ScaleError(f"ERGAS needs the SR scale factor r > 0, got {scale!r}")
    p = prepare(sr, hr, mask=mask)
    sr_t, hr_t = p.tensors
    mse_b, _ = pooled_mean((sr_t - hr_t) ** 2, p.valid)
    mu_b, _ = pooled_mean(hr_t, p.valid)
    has = torch.isfinite(mse_b)
    rel2 = torch.where(has, mse_b / torch.where(has, mu_b, torch.ones((), dtype=mu_b.dtype)) ** 2, mse_b)
    value = 100.0 / scale * torch.sqrt(rel2[has].mean())
    per_band = 100.0 / scale * torch.sqrt(rel2)
    extra = {"n_valid": int(count_true(p.valid)), "scale": float(scale)}
    return MetricResult(ERGAS, p.out(value), p.out(per_band), extra)


def _check_range(data_range: float) -> None:
    if not (isinstance(data_range, (int, float, np.floating)) and math.isfinite(data_range) and data_range > 0):
        raise EosrError(f"data_range must be a finite number > 0, got {data_range!r}")
