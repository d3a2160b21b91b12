"""Fused evaluation kernels behind :func:`eosr.evaluate`: one pass per band where the metrics can share it.

Two compiled kernels (numba, ``cache=True``: compiled once per machine and input type, then loaded
from numba's on-disk cache), both float32 or float64 data with float64 accumulators:

- :func:`pointwise`: per band the sums of (SR - HR)^2, |SR - HR|, HR and the valid count (PSNR, RMSE,
  MAE, ERGAS), the spectral angle of every pixel (SAM, Kahan's 2 atan2 form as
  :func:`eosr.metrics.standard.sam`) and, when asked, the error map written into a preallocated buffer;
  NaN is nodata (a pixel is valid in a band when SR and HR are finite there, for SAM in every band).
- :func:`ssim_uiqi_planes`: SSIM and UIQI (Wang et al. 2004; Wang & Bovik 2002; Gaussian window 11 /
  1.5, 'valid' region) of SR and, optionally, of the compensated SR' against the same HR, in strips of
  rows with a ring buffer of horizontally filtered rows (the HR moments are computed once for both),
  writing the SSIM map into a preallocated buffer. Images with nodata take the general path.

The general (reference) path is :mod:`eosr.metrics.standard`; ``tests/test_evaluate_engine.py`` checks
that both give the same numbers (1e-4 relative, PSNR-type 0.01 dB) on real imagery. Without numba
:data:`AVAILABLE` is False and :func:`eosr.evaluate` uses the reference path alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from eosr.errors import ShapeError

try:  # numba is a dependency of eosr; an environment without it falls back to the reference path
    import numba
    from numba import prange

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only without numba
    AVAILABLE = False
    prange = range  # type: ignore[misc,assignment]  # (numba.prange is a class)

__all__ = ["AVAILABLE", "any_finite", "bicubic_upsample", "detail_decomposition",
           "high_pass_difference", "pointwise",
           "separable_correlate", "ssim_uiqi_planes"]


SAM_BLOCK = 1 << 19  # pixels per block of spectral-angle arguments (two float64 buffers of 4 MB)


#: LLVM fast-math flags of the compiled kernels: reassociation (float sums vectorise: the no-SAM pointwise
#: pass over 4 x 2048² 16 -> 5-9 ms) and FMA contraction; not ``nnan``/``ninf``, so NaN and inf tests stay
#: exact (NaN is nodata). Sums differ from a serial loop's only in rounding.
FASTMATH = {"reassoc", "contract"}


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    if not AVAILABLE:  # pragma: no cover
        return fn
    return numba.njit(cache=True, parallel=True, nogil=True, fastmath=FASTMATH)(fn)  # type: ignore[no-any-return]


def _pointwise_kernel(s: np.ndarray, h: np.ndarray, err: np.ndarray, write_err: bool, do_sam: bool,
                      band_sums: np.ndarray, sam_sums: np.ndarray, r0: int, r1: int, ay: np.ndarray,
                      ax: np.ndarray) -> None:  # pragma: no cover - compiled
    """Rows r0..r1: per-band sums into ``band_sums[i]``; with ``do_sam`` the two arguments of each pixel's
    angle 2 atan2(|u - v|, |u + v|) (u, v the unit spectra) into ``ay[i - r0]``, ``ax[i - r0]`` (0 and 1 where
    a band is not finite: angle 0) and the valid and one-sided zero-vector counts into ``sam_sums[i]``."""
    c, hh, ww = s.shape
    for i in prange(r0, r1):  # band loops innermost over columns (they vectorise); rows are independent
        na = np.zeros(ww)
        nb = np.zeros(ww)
        ok = np.ones(ww, dtype=np.bool_)
        for b in range(c):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(ww):
                a = np.float64(s[b, i, j])
                t = np.float64(h[b, i, j])
                d = a - t
                if write_err:
                    err[b, i, j] = d
                f = math.isfinite(d)  # d is finite exactly when both are
                s0 += d * d if f else 0.0
                s1 += abs(d) if f else 0.0
                s2 += t if f else 0.0
                s3 += 1.0 if f else 0.0
            if do_sam:  # a loop of its own: each vectorises
                for j in range(ww):
                    a = np.float64(s[b, i, j])
                    t = np.float64(h[b, i, j])
                    na[j] += a * a
                    nb[j] += t * t
                    ok[j] &= math.isfinite(a - t)
            band_sums[i, b, 0] = s0
            band_sums[i, b, 1] = s1
            band_sums[i, b, 2] = s2
            band_sums[i, b, 3] = s3
        if not do_sam:
            continue
        ia = np.empty(ww)
        ib = np.empty(ww)
        a1 = 0.0
        a2 = 0.0
        for j in range(ww):
            ia[j] = 1.0 / math.sqrt(na[j]) if na[j] > 0 else 1.0
            ib[j] = 1.0 / math.sqrt(nb[j]) if nb[j] > 0 else 1.0
            a1 += 1.0 if ok[j] else 0.0
            a2 += 1.0 if ok[j] and ((na[j] == 0.0) != (nb[j] == 0.0)) else 0.0
        dn = np.zeros(ww)
        sn = np.zeros(ww)
        for b in range(c):
            for j in range(ww):
                u = s[b, i, j] * ia[j]
                v = h[b, i, j] * ib[j]
                dn[j] += (u - v) * (u - v)
                sn[j] += (u + v) * (u + v)
        o = i - r0
        for j in range(ww):
            ay[o, j] = math.sqrt(dn[j]) if ok[j] else 0.0
            ax[o, j] = math.sqrt(sn[j]) if ok[j] else 1.0
        sam_sums[i, 1] = a1
        sam_sums[i, 2] = a2


def _ssim_kernel(x: np.ndarray, y: np.ndarray, x2: np.ndarray, has2: bool, g: np.ndarray, cen: float,
                 c1: float, c2: float, tol: float, smap: np.ndarray, n_strips: int,
                 sums: np.ndarray, aff: bool, al: float, be: float,
                 masked: bool) -> None:  # pragma: no cover - compiled
    """11-tap symmetric window ``g`` (g[k] = g[10 - k]): each filter pass is one unrolled expression per
    output value (a single store, no read-modify-write of an accumulator row), which vectorises; the
    per-window SSIM/UIQI loop is branch-free for the same reason (2x faster than tap-by-tap loops).
    ``masked``: non-finite pixels are zeroed and flagged in one more filtered channel per image pair; a
    window whose filtered flag is not 0 touches one (the taps are positive) and is left out of the sums
    and NaN in ``smap``. ``sums[st]``: SSIM, UIQI, SSIM of x2, and the windows counted for each."""
    hh, ww = x.shape
    ho, wo = hh - 10, ww - 10
    nb = 8 if has2 else 5  # the flag channels (masked): (x, y) at nb, (x2, y) at nb + 1
    nq = nb + ((2 if has2 else 1) if masked else 0)
    g0, g1, g2, g3, g4, g5 = g[0], g[1], g[2], g[3], g[4], g[5]
    for st in prange(n_strips):
        r0 = st * ho // n_strips
        r1 = (st + 1) * ho // n_strips
        ring = np.empty((11, nq, wo))
        prod = np.empty((nq, ww))
        vert = np.empty((nq, wo))
        srow = np.empty(wo)
        urow = np.empty(wo)
        s2row = np.empty(wo)
        acc = np.zeros(5)
        for i in range(r0, r1 + 10):  # input rows of this strip's output rows
            if masked:
                for j in range(ww):
                    ra = float(x[i, j]) - cen
                    rb = float(y[i, j]) - cen
                    fb = math.isfinite(rb)
                    ok = fb and math.isfinite(ra)
                    a = ra if ok else 0.0  # (invalid pixels zeroed, as the reference path's zero_invalid)
                    b = rb if ok else 0.0
                    prod[0, j] = a
                    prod[1, j] = b
                    prod[2, j] = a * a
                    prod[3, j] = b * b
                    prod[4, j] = a * b
                    prod[nb, j] = 0.0 if ok else 1.0
                    if has2:
                        r2 = float(x2[i, j]) - cen
                        ok2 = fb and math.isfinite(r2)
                        a2 = r2 if ok2 else 0.0  # (ok2 implies ok, see ssim_uiqi_planes: b is kept)
                        prod[5, j] = a2
                        prod[6, j] = a2 * a2
                        prod[7, j] = a2 * b
                        prod[nb + 1, j] = 0.0 if ok2 else 1.0
            else:
                for j in range(ww):
                    a = np.float64(x[i, j]) - cen
                    b = np.float64(y[i, j]) - cen
                    prod[0, j] = a
                    prod[1, j] = b
                    prod[2, j] = a * a
                    prod[3, j] = b * b
                    prod[4, j] = a * b
                    if has2:
                        a2 = np.float64(x2[i, j]) - cen
                        prod[5, j] = a2
                        prod[6, j] = a2 * a2
                        prod[7, j] = a2 * b
            for q in range(nq):  # horizontal pass: the window is symmetric (g[k] = g[10 - k])
                r = ring[i % 11, q]
                p = prod[q]
                for j in range(wo):
                    r[j] = (g0 * (p[j] + p[j + 10]) + g1 * (p[j + 1] + p[j + 9]) + g2 * (p[j + 2] + p[j + 8])
                            + g3 * (p[j + 3] + p[j + 7]) + g4 * (p[j + 4] + p[j + 6]) + g5 * p[j + 5])
            o = i - 10  # the output row complete once input row i is filtered
            if o < r0:
                continue
            for q in range(nq):  # vertical pass over the ring buffer
                t0 = ring[o % 11, q]
                t1 = ring[(o + 1) % 11, q]
                t2 = ring[(o + 2) % 11, q]
                t3 = ring[(o + 3) % 11, q]
                t4 = ring[(o + 4) % 11, q]
                t5 = ring[(o + 5) % 11, q]
                t6 = ring[(o + 6) % 11, q]
                t7 = ring[(o + 7) % 11, q]
                t8 = ring[(o + 8) % 11, q]
                t9 = ring[(o + 9) % 11, q]
                t10 = ring[(o + 10) % 11, q]
                v = vert[q]
                for j in range(wo):
                    v[j] = (g0 * (t0[j] + t10[j]) + g1 * (t1[j] + t9[j]) + g2 * (t2[j] + t8[j])
                            + g3 * (t3[j] + t7[j]) + g4 * (t4[j] + t6[j]) + g5 * t5[j])
            for j in range(wo):  # SSIM and UIQI of each window (branch-free: the loop vectorises)
                mx = vert[0, j]
                my = vert[1, j]
                vx = vert[2, j] - mx * mx
                vy = vert[3, j] - my * my
                cv = vert[4, j] - mx * my
                ux = mx + cen
                uy = my + cen
                d2 = ux * ux + uy * uy
                srow[j] = (2 * ux * uy + c1) * (2 * cv + c2) / ((d2 + c1) * (vx + vy + c2))
                # UIQI (C1 = C2 = 0) with the degenerate windows of the 2002 paper's code: a factor whose
                # denominator is below tol is 1 (both: Q = 1)
                d1 = max(vx, 0.0) + max(vy, 0.0)
                qa = 2 * cv / d1 if d1 > tol else 1.0
                qb = 2 * ux * uy / d2 if d2 > tol else 1.0
                urow[j] = qa * qb
            if has2:
                for j in range(wo):
                    my = vert[1, j]
                    vy = vert[3, j] - my * my
                    uy = my + cen
                    m2 = vert[5, j]
                    v2 = vert[6, j] - m2 * m2
                    cv2 = vert[7, j] - m2 * my
                    u2 = m2 + cen
                    s2row[j] = (2 * u2 * uy + c1) * (2 * cv2 + c2) / ((u2 * u2 + uy * uy + c1) * (v2 + vy + c2))
            elif aff:  # x2 = al x + be: its window moments follow from x's
                for j in range(wo):
                    mx = vert[0, j]
                    my = vert[1, j]
                    uy = my + cen
                    u2 = al * (mx + cen) + be
                    v2 = al * al * (vert[2, j] - mx * mx)
                    cv2 = al * (vert[4, j] - mx * my)
                    vy = vert[3, j] - my * my
                    s2row[j] = (2 * u2 * uy + c1) * (2 * cv2 + c2) / ((u2 * u2 + uy * uy + c1) * (v2 + vy + c2))
            e0 = 0.0
            e1 = 0.0
            e2 = 0.0
            n1 = 0.0
            n2 = 0.0
            if masked:
                nan = np.float64(np.nan)
                for j in range(wo):
                    f = vert[nb, j] == 0.0
                    smap[o + 5, j + 5] = srow[j] if f else nan
                    e0 += srow[j] if f else 0.0
                    e1 += urow[j] if f else 0.0
                    n1 += 1.0 if f else 0.0
                if has2 or aff:
                    for j in range(wo):
                        f = vert[nb + 1, j] == 0.0 if has2 else vert[nb, j] == 0.0
                        e2 += s2row[j] if f else 0.0
                        n2 += 1.0 if f else 0.0
            else:
                for j in range(wo):
                    smap[o + 5, j + 5] = srow[j]
                    e0 += srow[j]
                    e1 += urow[j]
                n1 = wo
                if has2 or aff:
                    for j in range(wo):
                        e2 += s2row[j]
                    n2 = wo
            acc[0] += e0
            acc[1] += e1
            acc[2] += e2
            acc[3] += n1
            acc[4] += n2
        for k in range(5):
            sums[st, k] = acc[k]


def _detail_kernel(sr: np.ndarray, hr: np.ndarray, it: np.ndarray, valid: np.ndarray, imp: np.ndarray,
                   hal: np.ndarray, omi: np.ndarray, row_sums: np.ndarray) -> None:  # pragma: no cover - compiled
    c, hh, ww = sr.shape
    nan = np.float32(np.nan)
    for i in prange(hh):
        for b in range(c):
            s_imp = 0.0
            s_hal = 0.0
            s_omi = 0.0
            s_tru = 0.0
            for j in range(ww):
                t = hr[b, i, j] - it[b, i, j]
                a = sr[b, i, j] - it[b, i, j]
                if valid[b, i, j] and math.isfinite(t) and math.isfinite(a):
                    at = abs(t)
                    sg = (t > 0) - (t < 0)
                    cc = min(max(a * sg, 0.0), at) * sg
                    vi, vh, vo = abs(cc), abs(a - cc), abs(t - cc)
                    imp[b, i, j] = vi
                    hal[b, i, j] = vh
                    omi[b, i, j] = vo
                    s_imp += vi
                    s_hal += vh
                    s_omi += vo
                    s_tru += at
                else:
                    imp[b, i, j] = nan
                    hal[b, i, j] = nan
                    omi[b, i, j] = nan
            row_sums[i, b, 0] = s_imp
            row_sums[i, b, 1] = s_hal
            row_sums[i, b, 2] = s_omi
            row_sums[i, b, 3] = s_tru


def _gradient_kernel(hr: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover - compiled
    c, hh, ww = hr.shape
    for i in prange(hh):
        i0, i1 = max(i - 1, 0), min(i + 1, hh - 1)
        dyn = 0.5 if (i1 - i0) == 2 else 1.0
        acc = np.zeros(ww)
        for b in range(c):  # interior columns branch-free (the loop vectorises); the two edge columns apart
            for j in range(1, ww - 1):
                gy = (np.float64(hr[b, i1, j]) - np.float64(hr[b, i0, j])) * dyn
                gx = (np.float64(hr[b, i, j + 1]) - np.float64(hr[b, i, j - 1])) * 0.5
                acc[j] += math.sqrt(gx * gx + gy * gy)
            for e in range(2 if ww > 1 else 1):
                j = e * (ww - 1)
                j0, j1 = max(j - 1, 0), min(j + 1, ww - 1)
                dxn = 0.5 if (j1 - j0) == 2 else 1.0
                gy = (np.float64(hr[b, i1, j]) - np.float64(hr[b, i0, j])) * dyn
                gx = (np.float64(hr[b, i, j1]) - np.float64(hr[b, i, j0])) * dxn
                acc[j] += math.sqrt(gx * gx + gy * gy)
        for j in range(ww):
            g[i, j] = acc[j] / c


def _strata_kernel(sr: np.ndarray, hr: np.ndarray, g: np.ndarray, lo: float, hi: float, smap: np.ndarray,
                   pad: int, row_sums: np.ndarray, masked: bool) -> None:  # pragma: no cover - compiled
    """``masked``: a pixel counts where SR - HR is finite, an SSIM centre where the map is (NaN g: no stratum)."""
    c, hh, ww = sr.shape
    for i in prange(hh):
        inner_row = pad <= i < hh - pad
        for j in range(ww):
            gv = g[i, j]
            k = 0 if gv <= lo else (1 if gv >= hi else -1)
            if k < 0:
                continue
            inner = inner_row and pad <= j < ww - pad
            row_sums[i, 0, k, 5] += 1.0
            for b in range(c):
                d = np.float64(sr[b, i, j]) - np.float64(hr[b, i, j])
                if not masked or math.isfinite(d):
                    row_sums[i, b, k, 0] += d * d
                    row_sums[i, b, k, 1] += abs(d)
                    row_sums[i, b, k, 2] += 1.0
                if inner and (not masked or math.isfinite(smap[b, i, j])):
                    row_sums[i, b, k, 3] += smap[b, i, j]
                    row_sums[i, b, k, 4] += 1.0


_pointwise_jit = _jit(_pointwise_kernel)
_gradient_jit = _jit(_gradient_kernel)
_strata_jit = _jit(_strata_kernel)


def _bracket_count_kernel(v: np.ndarray, lo: float, hi: float, counts: np.ndarray,
                          n_blocks: int) -> None:  # pragma: no cover - compiled
    n = v.shape[0]
    for k in prange(n_blocks):
        below = 0
        inside = 0
        for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
            x = v[i]
            below += 1 if x < lo else 0
            inside += 1 if lo <= x <= hi else 0
        counts[k, 0] = below
        counts[k, 1] = inside


def _bracket_fill_kernel(v: np.ndarray, lo: float, hi: float, start: np.ndarray, out: np.ndarray,
                         n_blocks: int) -> None:  # pragma: no cover - compiled
    n = v.shape[0]
    for k in prange(n_blocks):
        o = start[k]
        for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
            x = v[i]
            if lo <= x <= hi:
                out[o] = x
                o += 1


_bracket_count_jit = _jit(_bracket_count_kernel)
_bracket_fill_jit = _jit(_bracket_fill_kernel)
SELECT_SAMPLE = 1 << 16  # sample size of the bracketed selection


def _select(v: np.ndarray, ranks: list[int]) -> dict[int, float] | None:
    """The values of the given ranks (0-based, ascending order) of the 1-D ``v``, exactly, from a random sample:
    ranks near each other share a bracket [lo, hi] taken from the sorted sample around the rank's
    expected position (6 binomial standard deviations each side); one parallel pass counts the values
    below lo and inside, a second copies those inside, and a partition of that small set gives the
    ranks. None when a rank falls outside its bracket (the caller partitions everything)."""
    n = v.size
    # positions drawn at random (fixed seed): a strided sample of an image takes the same columns every row
    sample = np.sort(v[np.random.default_rng(0).integers(0, n, min(n, SELECT_SAMPLE))])
    ns = sample.size
    blocks = _strips(n)
    out: dict[int, float] = {}
    for r in sorted(set(ranks)):
        if r in out:
            continue
        group = [q for q in ranks if abs(q - r) <= 1]
        p = r / max(n - 1, 1)
        m = int(6 * math.sqrt(ns * p * (1 - p))) + 2
        j = int(round(p * (ns - 1)))
        lo = float(sample[j - m]) if j - m > 0 else -math.inf  # a bracket reaching past the sample's
        hi = float(sample[j + m]) if j + m < ns - 1 else math.inf  # extremes takes the whole tail
        counts = np.zeros((blocks, 2), dtype=np.int64)
        _bracket_count_jit(v, lo, hi, counts, blocks)
        below, inside = int(counts[:, 0].sum()), int(counts[:, 1].sum())
        if not all(below <= q < below + inside for q in group):
            return None
        start = np.concatenate([[0], np.cumsum(counts[:, 1])[:-1]]).astype(np.int64)
        vals = np.empty(inside, dtype=v.dtype)
        _bracket_fill_jit(v, lo, hi, start, vals, blocks)
        local = sorted({q - below for q in group})
        part = np.partition(vals, local)
        for q in group:
            out[q] = float(part[q - below])
    return out


def _quantiles_linear(a: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``numpy.quantile(a, qs)`` (method "linear", its float64 interpolation step for step) of a finite
    array, in its own dtype (conversion keeps order): above 2^20 values by :func:`_select` (exact, a few
    parallel passes), else or when that fails from one ``numpy.partition`` of a copy."""
    v = a.ravel()
    n = v.size
    pos = [(n - 1) * float(q) for q in qs]
    kth = sorted({int(math.floor(p)) for p in pos} | {min(int(math.floor(p)) + 1, n - 1) for p in pos})
    got = _select(v, kth) if n > (1 << 20) and AVAILABLE else None
    if got is None:
        part = np.partition(v, kth)
        got = {k: float(part[k]) for k in kth}
    out = []
    for p in pos:
        i0 = int(math.floor(p))
        gamma = p - i0
        x0, x1 = got[i0], got[min(i0 + 1, n - 1)]
        d = x1 - x0
        out.append(x1 - d * (1 - gamma) if gamma >= 0.5 else x0 + d * gamma)
    return out


def gradient_strata_sums(sr: np.ndarray, hr: np.ndarray, smap: np.ndarray | None,
                         quantiles: tuple[float, float] = (0.5, 0.9), grad_hr: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, float, float]:
    """Sums per HR-gradient stratum of (B, C, H, W) inputs, as
    :func:`eosr.metrics.stratified.stratified_metrics`: gradient magnitude g = band mean of
    sqrt(gx^2 + gy^2) (central differences, one-sided at the border, as ``numpy.gradient``), thresholds
    the ``quantiles`` of g over all pixels (``numpy.quantile``, linear), low = g <= t_low,
    high = g >= t_high. Returns ``(sums (C, 2, 6), t_low, t_high)``: per band and stratum
    sum (SR - HR)^2, sum |SR - HR|, pixel count, sum of the SSIM map on its valid centres (``smap``, the
    5-pixel border excluded), their count, and (band 0 only) the stratum's spatial pixel count.
    Nodata: g is taken of ``grad_hr`` (HR with NaN at the pixels invalid for the strata; default ``hr``),
    NaN where a difference touches one, and left out of the quantiles and strata; pixels where SR - HR
    is not finite and NaN SSIM centres are left out of the sums.
    """
    b, c, hh, ww = sr.shape
    gsrc = hr if grad_hr is None else grad_hr
    g = np.empty((b, hh, ww), dtype=hr.dtype)
    for i in range(b):
        _gradient_jit(gsrc[i], g[i])
    masked = grad_hr is not None
    fin = g[np.isfinite(g)] if masked else g
    if fin.size == 0:
        raise ShapeError("no pixel has a defined HR gradient (all invalid)")
    lo, hi = _quantiles_linear(fin, quantiles)
    del fin
    sums = np.zeros((c, 2, 6))
    sm = smap if smap is not None else np.zeros((b, c, 1, 1), dtype=sr.dtype)
    for i in range(b):
        rows = np.zeros((hh, c, 2, 6))
        _strata_jit(sr[i], hr[i], g[i], lo, hi, sm[i] if smap is not None else np.zeros_like(sr[i]),
                    5 if smap is not None else hh, rows, masked)
        sums += rows.sum(axis=0)
    return sums, lo, hi


_detail_jit = _jit(_detail_kernel)


def detail_decomposition(sr: np.ndarray, hr: np.ndarray, interp: np.ndarray, valid: np.ndarray,
                         reuse: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`eosr.metrics.hallucination.detail_decomposition` in one compiled pass per item (same inputs,
    same maps in the inputs' precision and the same float64 per-band sums). ``reuse``: the improvement
    map is written over ``sr`` and the hallucination map over ``interp`` (same dtype and shape; each
    pixel is read before it is written), saving two image-sized buffers."""
    dt = np.result_type(sr.dtype, hr.dtype, interp.dtype)
    maps = {k: np.empty(sr.shape, dtype=dt) for k in ("improvement", "hallucination", "omission")
            if not (reuse and k != "omission")}
    if reuse:
        if not (sr.dtype == interp.dtype == dt and sr.flags.writeable and interp.flags.writeable):
            raise ValueError("reuse needs writeable inputs of the maps' dtype")
        maps = {"improvement": sr, "hallucination": interp, **maps}
    lead = sr.shape[:-3]
    sums = {k: np.zeros(lead + sr.shape[-3:-2]) for k in ("improvement", "hallucination", "omission", "truth")}
    for idx in np.ndindex(*lead):
        rows = np.zeros((sr.shape[-2], sr.shape[-3], 4))
        _detail_jit(sr[idx].astype(dt, copy=False), hr[idx].astype(dt, copy=False),
                    interp[idx].astype(dt, copy=False), valid[idx], maps["improvement"][idx],
                    maps["hallucination"][idx], maps["omission"][idx], rows)
        tot = rows.sum(axis=0)
        for k, name in enumerate(("improvement", "hallucination", "omission", "truth")):
            sums[name][idx] = tot[:, k]
    return maps, sums
_ssim_jit = _jit(_ssim_kernel)


def pointwise(sr: np.ndarray, hr: np.ndarray, err_out: np.ndarray | None = None,
              sam: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-band sums and the spectral-angle sums of one (C, H, W) pair in one pass.

    Returns ``(band (C, 4), sam (3,))``: per band sum (SR - HR)^2, sum |SR - HR|, sum HR and the
    valid count; SAM: sum of angles (radians), valid pixel count, one-sided zero vectors.
    ``err_out`` (C, H, W), when given, receives SR - HR (NaN where either is NaN). ``sam=False`` skips
    the angles (their sums stay 0). The angles' arctangents are NumPy's (SIMD; 5x the compiled scalar
    ``atan2`` here), over blocks of rows whose arguments the compiled pass wrote.
    """
    c, h, w = sr.shape
    band = np.zeros((h, c, 4))
    sams = np.zeros((h, 3))
    write = err_out is not None
    err = err_out if write else np.empty((1, 1, 1), sr.dtype)
    step = max(1, SAM_BLOCK // max(w, 1)) if sam else h
    ay = np.empty((min(step, h), w) if sam else (1, 1))
    ax = np.empty_like(ay)
    angle = 0.0
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        _pointwise_jit(sr, hr, err, write, sam, band, sams, r0, r1, ay, ax)
        if sam:
            n = r1 - r0
            angle += 2.0 * float(np.arctan2(ay[:n], ax[:n], out=ay[:n]).sum())
    tot = sams.sum(axis=0)
    tot[0] = angle
    return band.sum(axis=0), tot


def ssim_uiqi_planes(x: np.ndarray, y: np.ndarray, x2: np.ndarray | None, data_range: float,
                     smap: np.ndarray, n_strips: int = 0, affine: tuple[float, float] | None = None,
                     masked: bool = False) -> tuple[float, float, float, int, int]:
    """SSIM and UIQI of one (H, W) plane pair (and SSIM of ``x2`` against ``y``).

    Gaussian window 11 / sigma 1.5, K1 = 0.01, K2 = 0.03, population moments, 'valid' centres (as
    :func:`eosr.metrics.standard.ssim_uiqi`). ``smap`` (H, W) receives the SSIM map on the valid
    centres (its 5-pixel border is left untouched). Returns (sum SSIM, sum UIQI, sum SSIM of x2, number
    of windows in the first two sums, in the third). The moments are centred on the HR plane mean
    (float64 accumulators; the centring only keeps the float64 window variances free of cancellation,
    any value near the mean gives the same result). Fully valid planes, unless ``masked``: then the
    windows touching a non-finite pixel of either image are left out (NaN in ``smap``), as the
    reference path leaves out windows touching invalid pixels; ``affine`` x2 = a x + b shares x's.
    """
    from eosr.metrics.standard import gaussian_window

    g = gaussian_window(11, 1.5).numpy()
    h, w = x.shape
    ho = h - 10
    strips = n_strips or _strips(ho)
    sums = np.zeros((strips, 5))
    # a centring constant (any value near the mean): NumPy's fast pairwise sum; with nodata, the mean of
    # the finite values of a subsample
    if masked:
        sub = y[::7, ::7]
        fin = sub[np.isfinite(sub)]
        cen = float(fin.mean()) if fin.size else 0.0
    else:
        cen = float(y.mean())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    tol = (1e-6 * data_range) ** 2
    has2 = x2 is not None
    if masked and x2 is not None and bool((np.isfinite(x2) & ~np.isfinite(x) & np.isfinite(y)).any()):
        # the pass zeroes HR where x is invalid: x2 valid there takes a pass of its own
        first = ssim_uiqi_planes(x, y, None, data_range, smap, n_strips, None, True)
        second = ssim_uiqi_planes(x2, y, None, data_range, np.empty_like(smap), n_strips, None, True)
        return first[0], first[1], second[0], first[3], second[3]
    aff = x2 is None and affine is not None
    a, b = affine if aff and affine is not None else (1.0, 0.0)
    _ssim_jit(x, y, x2 if x2 is not None else x, has2, g, cen, c1, c2, tol, smap, strips, sums, aff, float(a),
              float(b), masked)
    tot = sums.sum(axis=0)
    return float(tot[0]), float(tot[1]), float(tot[2]), int(tot[3]), int(tot[4])


# ------------------------------------------------------------------ separable filters (operator PSF, bicubic)
def _hpass_kernel(x: np.ndarray, y: np.ndarray, sub: bool, kx: np.ndarray, stride: int, tmp: np.ndarray,
                  n_strips: int) -> None:  # pragma: no cover - compiled
    """tmp[i, jo] = sum_u kx[u] z[i, refl(jo * stride + u - p)], z = x - y (``sub``) or x; p = (K - stride) // 2,
    half-sample symmetric borders (b a | a b c | c b). Only the border samples are reflected index by index."""
    hh, ww = x.shape
    wo = tmp.shape[1]
    k = kx.shape[0]
    p = (k - stride) // 2
    nb = (wo - 1) * stride + k
    lo = min(p, nb)  # buf[j] = z[j - p]: reflected below lo and from hi on, direct in between
    hi = max(lo, min(nb, ww + p))
    for st in prange(n_strips):
        r0 = st * hh // n_strips
        r1 = (st + 1) * hh // n_strips
        buf = np.empty(nb)
        row = np.empty(wo)
        for i in range(r0, r1):
            for t in range(lo + nb - hi):  # the border samples [0, lo) and [hi, nb), reflected one by one
                j = t if t < lo else t - lo + hi
                q = j - p
                while q < 0 or q >= ww:
                    q = -q - 1 if q < 0 else 2 * ww - 1 - q
                buf[j] = np.float64(x[i, q]) - np.float64(y[i, q]) if sub else np.float64(x[i, q])
            if sub:
                for j in range(lo, hi):
                    buf[j] = np.float64(x[i, j - p]) - np.float64(y[i, j - p])
            else:
                for j in range(lo, hi):
                    buf[j] = x[i, j - p]
            if stride == 1:  # taps four at a time over contiguous samples: a quarter of the accumulator traffic
                for jo in range(wo):
                    row[jo] = 0.0
                u = 0
                while u + 4 <= k:
                    k0 = kx[u]
                    k1 = kx[u + 1]
                    k2 = kx[u + 2]
                    k3 = kx[u + 3]
                    for jo in range(wo):
                        row[jo] += k0 * buf[jo + u] + k1 * buf[jo + u + 1] + k2 * buf[jo + u + 2] + k3 * buf[jo + u + 3]
                    u += 4
                while u < k:
                    kt = kx[u]
                    for jo in range(wo):
                        row[jo] += kt * buf[jo + u]
                    u += 1
            else:
                for jo in range(wo):
                    row[jo] = kx[0] * buf[jo * stride]
                for u in range(1, k):
                    ku = kx[u]
                    for jo in range(wo):
                        row[jo] += ku * buf[jo * stride + u]
            for jo in range(wo):
                tmp[i, jo] = row[jo]


def _vpass_kernel(tmp: np.ndarray, x: np.ndarray, y: np.ndarray, highpass: bool, ky: np.ndarray, stride: int,
                  out: np.ndarray, row_sums: np.ndarray, n_strips: int) -> None:  # pragma: no cover - compiled
    """out[io, j] = sum_t ky[t] tmp[refl(io * stride + t - p), j] (symmetric borders, p = (K - stride) // 2);
    ``highpass`` (stride 1): out = (x - y) - that instead, with the per-row sums of |out|, out^2 and the
    finite count in ``row_sums``."""
    hh = tmp.shape[0]
    ho, wo = out.shape
    k = ky.shape[0]
    p = (k - stride) // 2
    for st in prange(n_strips):
        r0 = st * ho // n_strips
        r1 = (st + 1) * ho // n_strips
        acc = np.empty(wo)
        for io in range(r0, r1):
            for t in range(k):
                q = io * stride + t - p
                while q < 0 or q >= hh:
                    q = -q - 1 if q < 0 else 2 * hh - 1 - q
                kt = ky[t]
                if t == 0:
                    for j in range(wo):
                        acc[j] = kt * tmp[q, j]
                else:
                    for j in range(wo):
                        acc[j] += kt * tmp[q, j]
            if highpass:
                s1 = 0.0
                s2 = 0.0
                n = 0.0
                for j in range(wo):
                    out[io, j] = np.float64(x[io, j]) - np.float64(y[io, j]) - acc[j]
                    v = np.float64(out[io, j])  # the stored value (the map's precision) enters the sums
                    if math.isfinite(v):
                        s1 += abs(v)
                        s2 += v * v
                        n += 1.0
                row_sums[io, 0] = s1
                row_sums[io, 1] = s2
                row_sums[io, 2] = n
            else:
                for j in range(wo):
                    out[io, j] = acc[j]


def _cubic_kernel(x: np.ndarray, iy: np.ndarray, wy: np.ndarray, ix: np.ndarray, wx: np.ndarray,
                  tmp: np.ndarray, out: np.ndarray, n_strips: int) -> None:  # pragma: no cover - compiled
    """out[o, q] = sum_a wy[o, a] sum_b wx[q, b] x[iy[o, a], ix[q, b]] (4-tap separable interpolation)."""
    h = x.shape[0]
    hh, ww = out.shape
    for st in prange(n_strips):  # horizontal pass, every LR row
        r0 = st * h // n_strips
        r1 = (st + 1) * h // n_strips
        for i in range(r0, r1):
            for q in range(ww):
                tmp[i, q] = (wx[q, 0] * np.float64(x[i, ix[q, 0]]) + wx[q, 1] * np.float64(x[i, ix[q, 1]])
                             + wx[q, 2] * np.float64(x[i, ix[q, 2]]) + wx[q, 3] * np.float64(x[i, ix[q, 3]]))
    for st in prange(n_strips):  # vertical pass
        r0 = st * hh // n_strips
        r1 = (st + 1) * hh // n_strips
        for o in range(r0, r1):
            a0, a1, a2, a3 = iy[o, 0], iy[o, 1], iy[o, 2], iy[o, 3]
            w0, w1, w2, w3 = wy[o, 0], wy[o, 1], wy[o, 2], wy[o, 3]
            for q in range(ww):
                out[o, q] = w0 * tmp[a0, q] + w1 * tmp[a1, q] + w2 * tmp[a2, q] + w3 * tmp[a3, q]


_hpass_jit = _jit(_hpass_kernel)
_vpass_jit = _jit(_vpass_kernel)
_cubic_jit = _jit(_cubic_kernel)


def _strips(n: int) -> int:
    return max(1, min(n, 4 * max(1, numba.get_num_threads() if AVAILABLE else 1)))


def separable_correlate(x: np.ndarray, ky: np.ndarray, kx: np.ndarray, stride: int = 1,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Per-band separable correlation of (B, C, H, W) with half-sample symmetric borders, sampled every
    ``stride`` pixels: out[b, c, i, j] = sum_{t,u} ky[c, t] kx[c, u] xpad[b, c, i s + t, j s + u], pad
    (K - s) / 2 (as :func:`eosr.degrade.conv.sep_conv`, the operator's ``blur`` and ``downsample``);
    float64 sums, output in the input's dtype."""
    b, c, hh, ww = x.shape
    ho, wo = hh // stride, ww // stride
    if out is None:
        out = np.empty((b, c, ho, wo), dtype=x.dtype)
    tmp = np.empty((hh, wo), dtype=x.dtype)
    dummy = np.zeros((1, 2))
    for i in range(b):
        for k in range(c):
            _hpass_jit(x[i, k], x[i, k], False, kx[k], stride, tmp, _strips(hh))
            _vpass_jit(tmp, x[i, k], x[i, k], False, ky[k], stride, out[i, k], dummy, _strips(ho))
    return out


def high_pass_difference(s: np.ndarray, h: np.ndarray, ky: np.ndarray, kx: np.ndarray,
                         out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """hp(SR - HR) = (SR - HR) - LPF(SR - HR) of (B, C, H, W), LPF the separable PSF ky x kx (symmetric
    borders, as the operator's ``blur``), in one horizontal and one vertical pass per plane. Returns
    ``(map, sums (C, 3))``: per band sum |hp|, sum hp^2 and the finite count (float64)."""
    b, c, hh, ww = s.shape
    if out is None:
        out = np.empty(s.shape, dtype=s.dtype)
    tmp = np.empty((hh, ww), dtype=s.dtype)
    sums = np.zeros((c, 3))
    for i in range(b):
        for k in range(c):
            rows = np.zeros((hh, 3))
            _hpass_jit(s[i, k], h[i, k], True, kx[k], 1, tmp, _strips(hh))
            _vpass_jit(tmp, s[i, k], h[i, k], True, ky[k], 1, out[i, k], rows, _strips(hh))
            sums[k] += rows.sum(axis=0)
    return out, sums


def _cubic_table(n: int, r: int, a: float = -0.75) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (clamped) and Keys weights of each output index of a x r bicubic on the
    pixel-is-area grid (``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``)."""
    o = np.arange(n * r)
    u = (o + 0.5) / r - 0.5
    i0 = np.floor(u)
    t = u - i0
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)
    ad = np.abs(d)
    w = np.where(ad <= 1, ((a + 2) * ad - (a + 3)) * ad * ad + 1,
                 ((a * ad - 5 * a) * ad + 8 * a) * ad - 4 * a)
    idx = np.clip(i0[:, None].astype(np.int64) + np.arange(-1, 3)[None, :], 0, n - 1)
    return np.ascontiguousarray(idx), np.ascontiguousarray(w)


def bicubic_upsample(lr: np.ndarray, r: int) -> np.ndarray:
    """Bicubic x ``r`` of (B, C, h, w) on the pixel-is-area grid (Keys a = -0.75, clamped borders), the
    numbers of ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` up to float
    rounding (float64 sums; output in the input's dtype)."""
    b, c, h, w = lr.shape
    iy, wy = _cubic_table(h, r)
    ix, wx = _cubic_table(w, r)
    out = np.empty((b, c, h * r, w * r), dtype=lr.dtype)
    tmp = np.empty((h, w * r))
    for i in range(b):
        for k in range(c):
            _cubic_jit(lr[i, k], iy, wy, ix, wx, tmp, out[i, k], _strips(h))
    return out


# ------------------------------------------------------------------ ring sums of half spectra (FRR, FRC)
def _ring_kernel(fs: np.ndarray, fh: np.ndarray, fi: np.ndarray, pair: bool, has_i: bool, ringmap: np.ndarray,
                 wrow: np.ndarray, wcol: np.ndarray, out: np.ndarray,
                 n_strips: int) -> None:  # pragma: no cover - compiled
    hh, w2 = ringmap.shape
    for st in prange(n_strips):
        r0 = st * hh // n_strips
        r1 = (st + 1) * hh // n_strips
        for i in range(r0, r1):
            gi = wrow[i]
            for j in range(w2):
                k = ringmap[i, j]
                if k < 0:
                    continue
                g = gi * wcol[j]
                if pair:
                    a = fs[i, j]
                    b = fh[i, j]
                    ar, ai = np.float64(a.real), np.float64(a.imag)
                    br, bi = np.float64(b.real), np.float64(b.imag)
                    out[st, 0, k] += g * (ar * br + ai * bi)
                    out[st, 1, k] += g * (ar * ar + ai * ai)
                    out[st, 2, k] += g * (br * br + bi * bi)
                if has_i:
                    q = fi[i, j]
                    qr, qi = np.float64(q.real), np.float64(q.imag)
                    out[st, 3, k] += g * (qr * qr + qi * qi)


_ring_jit = _jit(_ring_kernel)


@functools.lru_cache(maxsize=4)
def _ring_map(h: int, w: int, n: int, transposed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ring index per half-spectrum bin or -1, row weights, column weights); ``transposed``: the layout
    of a column-major (h, w // 2 + 1) spectrum's transpose, whose rows are the spectrum's columns."""
    from eosr.physics.spectrum import ring_bins

    keep, ring, _, _, _ = ring_bins(h, w, n)
    w2 = w // 2 + 1
    rm = np.full(h * w2, -1, dtype=np.int32)
    rm[keep] = ring
    half = np.full(w2, 2.0)  # a half-spectrum column stands for its mirror too (not 0 and, w even, w / 2)
    half[0] = 1.0
    if w % 2 == 0:
        half[-1] = 1.0
    if transposed:
        return np.ascontiguousarray(rm.reshape(h, w2).T), half, np.ones(h)
    return rm.reshape(h, w2), np.ones(h), half


def spectrum_ring_sums(fs: np.ndarray | None, fh: np.ndarray | None, fi: np.ndarray | None, h: int, w: int,
                       n: int) -> np.ndarray:
    """Ring sums (:func:`eosr.physics.spectrum.ring_bins` rings and weights) of Re(FS conj FH), |FS|^2,
    |FH|^2 and |FI|^2 of (h, w // 2 + 1) half spectra in one compiled pass (float64 sums), as
    :func:`eosr.physics.spectrum.ring_sum` of each product: (4, n); rows 0-2 are 0 without ``fs`` and
    ``fh``, row 3 without ``fi``. Row-major or column-major spectra (all alike) are read in their order."""
    given = [a for a in (fs, fh, fi) if a is not None]
    transposed = all(a.flags.f_contiguous and not a.flags.c_contiguous for a in given)
    rm, wrow, wcol = _ring_map(h, w, n, transposed)
    a, b, q = ((x.T if transposed and x is not None else x) for x in (fs, fh, fi))
    strips = _strips(rm.shape[0])
    out = np.zeros((strips, 4, n))
    first = next(x for x in (a, b, q) if x is not None)  # (stands in for an absent one: not read)
    _ring_jit(first if a is None else a, first if b is None else b, first if q is None else q,
              a is not None and b is not None, q is not None, rm, wrow, wcol, out, strips)
    return out.sum(axis=0)


def _any_finite_kernel(a: np.ndarray) -> bool:  # pragma: no cover - compiled
    for v in a:  # noqa: SIM110 - numba compiles loops, not generator expressions
        if math.isfinite(v):
            return True
    return False


_any_finite_jit = numba.njit(cache=True, nogil=True)(_any_finite_kernel) if AVAILABLE else _any_finite_kernel


def any_finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds a finite value: a compiled scan that stops at the first one (no mask array)."""
    flat = a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
    if flat.dtype.kind != "f":
        return flat.size > 0
    return bool(_any_finite_jit(flat))
