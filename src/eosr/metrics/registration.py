"""Registration and radiometry of SR against HR, reported apart from quality, and compensated metrics.

Conventions (docs/conventions.md#shift and docs/conventions.md#gain-and-bias; docs/metrics.md):

- **Shift** ``shift_x_px``, ``shift_y_px`` in HR pixels, the displacement of SR relative to HR:
  SR(row, col) ~ HR(row - shift_y, col - shift_x); +x = east (+column), +y = south (+row).
  Estimated by phase correlation with upsampled-DFT refinement (Guizar-Sicairos, Thurman, Fienup,
  Optics Letters 33(2), 2008) through :func:`eosr.physics.registration.estimate_shift`, all bands
  voting together (``value``, refined to 1/100 px) and each band alone (``per_band``, 1/20 px), on
  the central window of at most ``REG_WINDOW`` pixels a side (enough for a sub-pixel estimate,
  bounded memory).
- **Gain and bias**: least squares SR_aligned ~ gain * HR + bias after shift compensation. The fit is
  made on Gaussian low-passed copies of both images (sigma ``lowpass_sigma`` HR pixels), so that
  missing or invented detail (blur, noise, texture) does not masquerade as a gain: SR = 1.1 HR gives
  gain 1.10 and bias 0 exactly (a linear relation survives any linear filter), whereas a blurred SR
  keeps gain ~ 1 (an ordinary regression of a blurred image on the sharp one would read the lost
  detail as a gain below 1, "regression dilution").
- **Compensated ("_aligned") metrics**: SR is shifted back with the Fourier shift theorem (on a
  symmetrically padded copy, so no wrap-around), the border the shift invalidates (ceil(|shift|) + 1
  pixels on the side it enters) is excluded, then SR' = (SR_shifted - bias_b) / gain_b per band, and
  the standard metric is computed on SR' against HR.

Michel et al. 2024 ("Revisiting remote sensing cross-sensor SISR: the overlooked impact of geometric
and radiometric distortion") show why: on cross-sensor pairs pixel metrics are dominated by these
distortions, so eosr reports them as numbers of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft as sfft
import torch
from scipy import ndimage

from eosr._arrays import all_finite
from eosr._threads import map_planes, plane_threads
from eosr._windows import centre_box
from eosr.errors import EosrError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, prepare
from eosr.physics.filters import gaussian_blur, gaussian_lowpass_moments
from eosr.physics.registration import COARSE_UPSAMPLE, cross_power, shift_from_cross

__all__ = [
    "BIAS",
    "GAIN",
    "SHIFT_X",
    "SHIFT_Y",
    "Alignment",
    "align",
    "apply_alignment",
    "estimate_alignment",
    "mae_aligned",
    "psnr_aligned",
    "registration_metrics",
    "rmse_aligned",
    "shift_image",
    "ssim_aligned",
]

_GUIZAR = "phase correlation + upsampled DFT, Guizar-Sicairos et al., Opt. Lett. 33(2), 2008"
SHIFT_X = MetricInfo("shift_x_px", None, (-math.inf, math.inf), differentiable=False, unit="HR px", source=_GUIZAR)
SHIFT_Y = MetricInfo("shift_y_px", None, (-math.inf, math.inf), differentiable=False, unit="HR px", source=_GUIZAR)
GAIN = MetricInfo("gain", None, (-math.inf, math.inf), differentiable=False,
                  source="least squares SR_aligned ~ gain HR + bias on low-passed images")
BIAS = MetricInfo("bias", None, (-math.inf, math.inf), differentiable=False, unit="reflectance",
                  source="least squares SR_aligned ~ gain HR + bias on low-passed images")

#: Side of the central window used for shift estimation (pixels).
REG_WINDOW = 1024
#: Default Gaussian sigma (HR pixels) of the low-pass applied before the gain/bias fit.
LOWPASS_SIGMA = 8.0
#: Shifts smaller than this (HR pixels) are not resampled (resampling would only cost border pixels).
MIN_SHIFT = 1e-3


@dataclass
class Alignment:
    """Geometric and radiometric relation of one SR image to its HR reference.

    ``shift_y``/``shift_x``: joint estimate (HR px); ``band_shift``: (C, 2) per-band (dy, dx);
    ``gain``/``bias``: per band (C,), used for compensation; ``gain_pooled``/``bias_pooled``: one line
    fitted over the pixels of all bands.
    """

    shift_y: float
    shift_x: float
    band_shift: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    gain_pooled: float
    bias_pooled: float
    lowpass_sigma: float = LOWPASS_SIGMA
    extra: dict[str, Any] = field(default_factory=dict)


def _arr3(x: Any, name: str) -> np.ndarray:
    """(C, H, W) floating array without a precision change (float32 stays float32; ints -> float64)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 3:
        raise ShapeError(f"{name} must be (C, H, W) here, got shape {a.shape}")
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _centre_window(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[-2:]
    y0, y1, x0, x1 = centre_box(h, w, size)
    return a[..., y0:y1, x0:x1]


def shift_image(x: Any, dy: float, dx: float, pad: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Shift (C, H, W) by (dy, dx) pixels: out(r, c) = x(r - dy, c - dx); returns (out, valid).

    Fourier shift theorem on a copy padded symmetrically by ceil(max |shift|) + ``pad`` pixels (so the
    periodic wrap never reaches the image); ``valid`` is False on the ceil(|shift|) + 1 pixels the
    shift brings in from outside and next to NaN pixels (which are filled with the band mean before
    shifting and stay invalid).
    """
    a = _arr3(x, "image")  # float32 in, float32 out (the shift itself runs in float64 per band)
    if abs(dy) < MIN_SHIFT and abs(dx) < MIN_SHIFT:
        return a.copy(), np.isfinite(a)
    bad = ~np.isfinite(a)
    if bad.any():
        means = np.array([np.nanmean(b) if np.isfinite(b).any() else 0.0 for b in a])
        a = np.where(bad, means[:, None, None], a)
    p = int(math.ceil(max(abs(dy), abs(dx)))) + pad
    h, w = a.shape[-2:]
    out = np.empty_like(a)
    if float(dy).is_integer() and float(dx).is_integer():  # exact: a crop of the symmetric extension
        iy, ix = int(dy), int(dx)
        for i, band in enumerate(a):
            out[i] = np.pad(band, p, mode="symmetric")[p - iy : p - iy + h, p - ix : p - ix + w]
    else:
        ny, nx = sfft.next_fast_len(h + 2 * p, real=True), sfft.next_fast_len(w + 2 * p, real=True)
        cdt = np.complex64 if a.dtype == np.float32 else np.complex128
        ey = np.exp(-2j * np.pi * sfft.fftfreq(ny) * dy).astype(cdt)[:, None]  # separable phase ramp
        ex = np.exp(-2j * np.pi * sfft.rfftfreq(nx) * dx).astype(cdt)[None, :]
        for i, band in enumerate(a):  # one band at a time: the complex temporaries cover one band only
            padded = np.pad(band, ((p, ny - h - p), (p, nx - w - p)), mode="symmetric")
            spec = sfft.rfft2(padded, workers=-1)
            spec *= ey
            spec *= ex
            out[i] = sfft.irfft2(spec, s=(ny, nx), workers=-1)[p : p + h, p : p + w]
    valid = np.ones(a.shape, dtype=bool)
    ny, nx = int(math.ceil(abs(dy))) + 1, int(math.ceil(abs(dx))) + 1
    if abs(dy) >= MIN_SHIFT:
        if dy > 0:
            valid[:, : min(ny, h), :] = False
        else:
            valid[:, max(0, h - ny) :, :] = False
    if abs(dx) >= MIN_SHIFT:
        if dx > 0:
            valid[:, :, : min(nx, w)] = False
        else:
            valid[:, :, max(0, w - nx) :] = False
    if bad.any():
        moved = np.stack([ndimage.shift(b.astype(np.float64), (dy, dx), order=1, mode="constant", cval=1.0)
                          for b in bad]) > 0
        valid &= ~ndimage.binary_dilation(moved, structure=np.ones((1, 3, 3), dtype=bool))
    return out, valid


def _lowpass_pair(a: np.ndarray, b: np.ndarray, ok: np.ndarray, sigma: float, w: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Normalised Gaussian convolution of two (H, W) bands over the same valid pixels ``ok``:
    L(a) = G * (ok a) / G * ok (invalid pixels carry no weight; Knutsson & Westin 1993), the weights
    G * ok blurred once for both, in the bands' precision (float32 stays float32; the moments of
    :func:`_moments` accumulate in float64). Returns ``(L(a) - ca, L(b) - cb, ca, cb)``: the bands are
    low-passed around their valid means ca, cb (L(a - ca) = L(a) - ca), so float32 rounds the deviations,
    not the level. Only the values at valid pixels are used. ``w``: the weights :func:`_weights` of
    ``ok``, when the caller shares them between bands."""
    if sigma <= 0:
        return a, b, 0.0, 0.0
    if ok.all():  # the weights blur to 1 (normalised taps, reflected borders): one blur per band
        return gaussian_blur(a, sigma), gaussian_blur(b, sigma), 0.0, 0.0  # = gaussian_filter(mode="reflect")
    dt = np.result_type(a.dtype, b.dtype, np.float32)
    if w is None:
        w = _weights(ok, sigma, dt)
    bad = ~ok
    out: list[np.ndarray] = []
    means: list[float] = []
    for x in (a, b):
        c = float(x.mean(dtype=np.float64, where=ok))
        z = x.astype(dt, copy=True)
        z -= dt.type(c)
        z[bad] = 0
        low = gaussian_blur(z, sigma)
        low /= w
        out.append(low)
        means.append(c)
    return out[0], out[1], means[0], means[1]


def _weights(ok: np.ndarray, sigma: float, dt: np.dtype[Any]) -> np.ndarray:
    """G * ok, the normalised convolution's weights (floored at the dtype's tiny: never 0 at a valid pixel,
    where they are at least the centre tap squared)."""
    w = gaussian_blur(ok.astype(dt), sigma)
    np.maximum(w, np.finfo(dt).tiny, out=w)
    return w


def _moments(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float, float, float]:
    """(n, mean x, mean y, sum (x - mx)^2, sum (x - mx)(y - my)) of paired samples (two-pass, exact;
    float64 sums over chunks of 2^18 samples, so float32 samples need no float64 copy of the image)."""
    x, y = x.ravel(), y.ravel()
    n = float(x.size)
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    mx, my = float(x.mean(dtype=np.float64)), float(y.mean(dtype=np.float64))
    sxx = sxy = 0.0
    step = 1 << 20
    for i in range(0, x.size, step):  # einsum, not BLAS dot: no thread wake-ups for a memory-bound sum
        dx = x[i : i + step].astype(np.float64) - mx
        sxx += float(np.einsum("i,i->", dx, dx))
        sxy += float(np.einsum("i,i->", dx, y[i : i + step].astype(np.float64) - my))
    return n, mx, my, sxx, sxy


def _pool_moments(parts: Sequence[tuple[float, float, float, float, float]]) -> tuple[float, ...]:
    """Moments of the union of groups (parallel-axis rule; Chan, Golub, LeVeque 1979)."""
    n = sum(p[0] for p in parts)
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    mx = sum(p[0] * p[1] for p in parts) / n
    my = sum(p[0] * p[2] for p in parts) / n
    sxx = sum(p[3] + p[0] * (p[1] - mx) ** 2 for p in parts)
    sxy = sum(p[4] + p[0] * (p[1] - mx) * (p[2] - my) for p in parts)
    return n, mx, my, sxx, sxy


def _fit(m: Sequence[float]) -> tuple[float, float]:
    """Least squares y ~ g x + b from moments; a constant reference gives gain 1 and the mean offset."""
    n, mx, my, sxx, sxy = m
    if n == 0:
        raise ShapeError("gain/bias: no valid pixel left after shift compensation")
    if sxx / n <= 1e-20:
        return 1.0, my - mx
    g = sxy / sxx
    return g, my - g * mx


def estimate_alignment(
    sr: Any,
    hr: Any,
    *,
    mask: Any = None,
    lowpass_sigma: float = LOWPASS_SIGMA,
    upsample: int = 100,
    per_band_shift: bool = True,
) -> Alignment:
    """Shift of SR relative to HR (HR px), then per-band and pooled gain/bias after shift compensation.

    ``sr``, ``hr``: (C, H, W). Shift: :func:`eosr.physics.registration.estimate_shift` (phase
    correlation, Guizar-Sicairos et al. 2008) with SR(r, c) ~ HR(r - shift_y, c - shift_x).
    Gain/bias: least squares of low-passed SR_aligned on low-passed HR over valid pixels.
    """
    return _estimate(sr, hr, mask, lowpass_sigma, upsample, per_band_shift)[0]


def _estimate(
    sr: Any, hr: Any, mask: Any, lowpass_sigma: float, upsample: int, per_band_shift: bool
) -> tuple[Alignment, np.ndarray, np.ndarray]:
    """:func:`estimate_alignment` plus SR shifted back onto HR and the shift's validity (reused by :func:`align`)."""
    s, h = _arr3(sr, "sr"), _arr3(hr, "hr")  # the inputs' precision: no float64 copies of whole stacks
    if s.shape != h.shape:
        raise ShapeError(f"sr {s.shape} and hr {h.shape} differ in shape")
    ok0: np.ndarray | None = None  # None: every pixel valid (a finite sum: no NaN or inf anywhere; no mask)
    if mask is not None or not (all_finite(s) and all_finite(h)):
        ok0 = np.isfinite(s) & np.isfinite(h)
        if mask is not None:
            ok0 &= np.broadcast_to(np.asarray(mask, dtype=bool), s.shape)
        if not ok0.any():
            raise ShapeError("no valid pixel: the inputs are all NaN or the mask is empty")
    hw, sw = _centre_window(h, REG_WINDOW), _centre_window(s, REG_WINDOW)
    if ok0 is not None:
        okw = _centre_window(ok0, REG_WINDOW)
        hw, sw = np.where(okw, hw, np.nan), np.where(okw, sw, np.nan)
    # bands in parallel on scipy.fft's workers (set_workers; eosr.evaluate: torch's threads), one FFT thread
    # each; with one worker, band by band with every core in each transform
    threads, fw = plane_threads(s.shape[0])

    def band_cross(i: int) -> tuple[np.ndarray | None, tuple[float, float] | None]:
        try:
            cross = cross_power(hw[i : i + 1], sw[i : i + 1], half=True, workers=fw)[0]  # half spectra: same shifts
        except ShapeError:  # no valid pixel in this band's window: no shift of its own (NaN), left out of the pool
            return None, (np.nan, np.nan)
        if not per_band_shift:
            return cross, None
        return cross, shift_from_cross(cross, min(upsample, COARSE_UPSAMPLE), width=hw.shape[-1], workers=fw)

    crosses = map_planes(band_cross, s.shape[0], threads)  # one FFT pair per band: per-band and pooled shifts
    valid_crosses = [c for c, _ in crosses if c is not None]
    if not valid_crosses:
        raise ShapeError("registration: no band has a valid pixel in the central window")
    total = valid_crosses[0]
    for cross in valid_crosses[1:]:
        total += cross
    dy, dx = shift_from_cross(total, upsample, width=hw.shape[-1])  # (every core)
    bands = np.array([c[1] if per_band_shift or c[0] is None else (dy, dx) for c in crosses], dtype=np.float64)
    del total, crosses, valid_crosses
    back, vshift = shift_image(s, -dy, -dx)

    oks = [vshift[i] if ok0 is None else ok0[i] & vshift[i] & np.isfinite(back[i])  # (a shift of finite
           for i in range(s.shape[0])]  # values is finite)
    # nodata in the same pixels of every band (the usual case): the low-pass weights blurred once
    shared = None
    if lowpass_sigma > 0 and not oks[0].all() and oks[0].any() and all(np.array_equal(o, oks[0]) for o in oks[1:]):
        shared = _weights(oks[0], lowpass_sigma, np.result_type(s.dtype, h.dtype, np.float32))

    def band_moments(i: int) -> tuple[float, float, float, float, float] | None:
        ok = oks[i]
        if not ok.any():
            return None
        every = bool(ok.all())
        mom = gaussian_lowpass_moments(h[i], back[i], lowpass_sigma, workers=fw) if every and lowpass_sigma > 0 \
            else None
        if mom is None:  # (fully valid bands: the same moments from one DCT per image, no blurred copies)
            ls, lh, cs, ch = _lowpass_pair(back[i], h[i], ok, lowpass_sigma, shared)
            n, mx, my, sxx, sxy = _moments(ls if every else ls[ok], lh if every else lh[ok])
            mom = (n, mx + ch, my + cs, sxx, sxy)  # (x: HR, y: SR)
        return mom

    moments = map_planes(band_moments, s.shape[0], threads)
    gains, biases = np.full(s.shape[0], np.nan), np.full(s.shape[0], np.nan)
    parts = [m for m in moments if m is not None]
    for i, mom in enumerate(moments):
        if mom is not None:
            gains[i], biases[i] = _fit(mom)
    gp, bp = _fit(_pool_moments(parts))
    return Alignment(float(dy), float(dx), bands, gains, biases, gp, bp, float(lowpass_sigma)), back, vshift


def apply_alignment(sr: Any, al: Alignment, *, radiometric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SR compensated for ``al``: shifted back onto HR, then (SR - bias_b) / gain_b; returns (SR', valid).

    A band whose gain is not finite or below 1e-6 in magnitude is only bias-corrected.
    """
    out, valid = shift_image(_arr3(sr, "sr"), -al.shift_y, -al.shift_x)
    return _radiometric(out, al) if radiometric else out, valid & np.isfinite(out)


def _radiometric(out: np.ndarray, al: Alignment) -> np.ndarray:
    """(SR - bias_b) / gain_b in place per band (bias only where the gain is unusable)."""
    for i in range(out.shape[0]):
        g, b = float(al.gain[i]), float(al.bias[i])
        if not math.isfinite(b):
            continue
        np.subtract(out[i], b, out=out[i])  # (in place: the same values as (SR - b) / g, no temporaries)
        if math.isfinite(g) and abs(g) > 1e-6:
            np.divide(out[i], g, out=out[i])
    return out


def align(
    sr: Any, hr: Any, *, mask: Any = None, lowpass_sigma: float = LOWPASS_SIGMA
) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """Estimate and apply the alignment: returns (SR', valid, alignment) for one (C, H, W) image.

    Same result as :func:`estimate_alignment` then :func:`apply_alignment`, with one Fourier shift.
    """
    al, back, vshift = _estimate(sr, hr, mask, lowpass_sigma, 100, True)
    out = _radiometric(back, al)
    valid = vshift & np.isfinite(out)
    if mask is not None:
        valid &= np.broadcast_to(np.asarray(mask, dtype=bool), valid.shape)
    return out, valid, al


def _items(x: Any) -> list[np.ndarray]:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 3:
        return [a]
    if a.ndim == 4:
        return list(a)
    raise ShapeError(
        f"images must be (C, H, W) or (B, C, H, W), got shape {a.shape}"
        + (" (add a band axis: x[None])" if a.ndim == 2 else "")
    )


def _item_masks(mask: Any, n: int, shape: tuple[int, ...]) -> list[Any]:
    if mask is None:
        return [None] * n
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = m.astype(bool)
    if m.ndim == 4:
        return list(np.broadcast_to(m, (n, *shape)))
    try:
        b = np.broadcast_to(m, shape)
    except ValueError:
        raise ShapeError(f"mask of shape {m.shape} does not broadcast to {shape}") from None
    return [b] * n


def registration_metrics(
    sr: Any, hr: Any, *, mask: Any = None, lowpass_sigma: float = LOWPASS_SIGMA,
    alignments: Sequence[Alignment] | None = None,
) -> dict[str, MetricResult]:
    """``shift_x_px``, ``shift_y_px``, ``gain``, ``bias`` as :class:`MetricResult` (value and per band).

    For a batch (B, C, H, W) each item is registered alone; ``value`` is the mean over items and the
    items' values are listed in ``extra["per_item"]``. Not differentiable (values are floats).
    ``alignments``: the items' :func:`estimate_alignment` results when the caller already has them
    (one per item, same inputs and ``lowpass_sigma``), so the registration is not computed twice.
    """
    if alignments is None:  # (given alignments were estimated from these inputs: no float64 copies for checks)
        prepare(sr, hr, mask=mask)  # shape and validity checks with the standard messages
    elif tuple(sr.shape) != tuple(hr.shape):
        raise ShapeError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")
    items_s, items_h = _items(sr), _items(hr)
    masks = _item_masks(mask, len(items_s), items_s[0].shape)
    if alignments is not None:
        if len(alignments) != len(items_s):
            raise ShapeError(f"{len(alignments)} alignments for {len(items_s)} items")
        als = list(alignments)
    else:
        als = [estimate_alignment(s, h, mask=m, lowpass_sigma=lowpass_sigma)
               for s, h, m in zip(items_s, items_h, masks, strict=True)]
    rows = {
        SHIFT_X: ([a.shift_x for a in als], [a.band_shift[:, 1] for a in als]),
        SHIFT_Y: ([a.shift_y for a in als], [a.band_shift[:, 0] for a in als]),
        GAIN: ([a.gain_pooled for a in als], [a.gain for a in als]),
        BIAS: ([a.bias_pooled for a in als], [a.bias for a in als]),
    }
    out: dict[str, MetricResult] = {}
    for info, (vals, per) in rows.items():
        extra: dict[str, Any] = {"lowpass_sigma_px": lowpass_sigma} if info in (GAIN, BIAS) else {}
        if len(vals) > 1:
            extra["per_item"] = [float(v) for v in vals]
        out[info.name] = MetricResult(info, float(np.mean(vals)), np.mean(np.stack(per), axis=0), extra)
    return out


def _aligned_metric(fn_name: str, sr: Any, hr: Any, data_range: float, mask: Any, **kw: Any) -> MetricResult:
    from eosr.metrics import standard

    fn = getattr(standard, fn_name)
    prepare(sr, hr, mask=mask)
    items_s, items_h = _items(sr), _items(hr)
    masks = _item_masks(mask, len(items_s), items_s[0].shape)
    outs, valids, shifts = [], [], []
    for s, h, m in zip(items_s, items_h, masks, strict=True):
        o, v, al = align(s, h, mask=m)
        outs.append(o)
        valids.append(v)
        shifts.append((al.shift_y, al.shift_x))
    four = np.asarray(sr).ndim == 4 if not isinstance(sr, torch.Tensor) else sr.ndim == 4
    so, vo = (np.stack(outs), np.stack(valids)) if four else (outs[0], valids[0])
    ho = np.stack([h.astype(np.float64) for h in items_h]) if four else items_h[0].astype(np.float64)
    if not vo.any():
        raise EosrError("no valid pixel left after shift compensation (shift larger than the image?)")
    res = fn(so, ho, data_range=data_range, mask=vo, **kw)
    base = res.info
    info = MetricInfo(f"{base.name}_aligned", base.higher_is_better, base.range, differentiable=False,
                      unit=base.unit, source=f"{base.source}; after shift, gain and bias compensation")
    extra = dict(res.extra)
    extra["shift_px"] = [[float(a), float(b)] for a, b in shifts] if four else [float(x) for x in shifts[0]]
    value, per_band = res.value, res.per_band
    if isinstance(sr, torch.Tensor):
        value, per_band = torch.as_tensor(value), torch.as_tensor(per_band)
    return MetricResult(info, value, per_band, extra)


def psnr_aligned(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """PSNR = 10 log10(data_range^2 / MSE) of the shift-, gain- and bias-compensated SR (see module doc)."""
    return _aligned_metric("psnr", sr, hr, data_range, mask)


def rmse_aligned(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """RMSE sqrt(mean((SR' - HR)^2)) of the compensated SR' (see module doc)."""
    return _aligned_metric("rmse", sr, hr, data_range, mask)


def mae_aligned(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """MAE mean(|SR' - HR|) of the compensated SR' (see module doc)."""
    return _aligned_metric("mae", sr, hr, data_range, mask)


def ssim_aligned(sr: Any, hr: Any, *, data_range: float = 1.0, mask: Any = None) -> MetricResult:
    """SSIM (Wang et al. 2004, Gaussian 11 / 1.5) of the compensated SR' (see module doc)."""
    return _aligned_metric("ssim", sr, hr, data_range, mask)
