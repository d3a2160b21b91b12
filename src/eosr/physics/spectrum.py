"""Spectral diagnostics: radial power spectrum and the aliasing a PSF lets through."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.fft as sfft

from eosr.errors import ShapeError


def _as3d(x: Any) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"expected (C, H, W) or (H, W), got shape {a.shape}")
    return a


def _hann2d(h: int, w: int, window: bool) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)) if window and min(h, w) > 2 else np.ones((h, w))


def _centred(band: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Mean-removed (NaN -> band mean), windowed band."""
    ok = np.isfinite(band)
    m = band[ok].mean() if ok.any() else 0.0
    return np.where(ok, band - m, 0.0) * win


def _band_power(band: np.ndarray, win: np.ndarray) -> np.ndarray:
    """|FFT|^2 of one mean-removed, windowed band (NaN -> band mean), scaled to the unwindowed power."""
    h, w = band.shape
    return np.abs(sfft.fft2(_centred(band, win), workers=-1)) ** 2 / win.sum() ** 2 * (h * w)


def half_spectrum(band: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``rfft2`` of the mean-removed, windowed band: the non-negative-fx half of its (Hermitian) FFT."""
    return sfft.rfft2(_centred(band, win), workers=-1)


def power_spectrum_2d(x: Any, window: bool = True) -> np.ndarray:
    """|FFT|^2 per band of the mean-removed image (Hann-windowed by default to limit edge leakage).

    NaN pixels are replaced by the band mean. Returns (C, H, W), unshifted FFT order.
    """
    a = _as3d(x)
    h, w = a.shape[-2:]
    win = _hann2d(h, w, window)
    return np.stack([_band_power(band, win) for band in a])


@functools.lru_cache(maxsize=4)
def ring_bins(h: int, w: int, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Annuli of the half spectrum ``rfft2`` of an (h, w) image:
    ``(flat index of the kept coefficients, their ring, their weight, ring counts, centres)``.

    Rings of equal width over 0 < |f| <= 0.5 cycles per pixel, |f| = sqrt(fx^2 + fy^2); DC and the
    corners beyond 0.5 are dropped. A half-plane coefficient stands for itself and its mirror
    (weight 2) except on the fx = 0 and fx = 1/2 columns (weight 1), so weighted ring sums and counts
    equal those of the full FFT of a real image. Cached: the digitisation costs more than an FFT.
    """
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    rad = np.sqrt(fy**2 + fx**2)
    wt = np.full(rad.shape, 2.0)
    wt[:, 0] = 1.0
    if w % 2 == 0:
        wt[:, -1] = 1.0
    rad, wt = rad.ravel(), wt.ravel()
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    keep = np.flatnonzero((rad > 0) & (rad <= 0.5))
    ring = np.digitize(rad[keep], edges[1:-1], right=True)
    weight = wt[keep]
    counts = np.bincount(ring, weights=weight, minlength=n_bins)
    for arr in (keep, ring, weight, counts):
        arr.flags.writeable = False
    return keep, ring, weight, counts, 0.5 * (edges[1:] + edges[:-1])


def ring_sum(values: np.ndarray, h: int, w: int, n_bins: int) -> np.ndarray:
    """Weighted sum over the rings of :func:`ring_bins` of a half-spectrum array (h, w // 2 + 1)."""
    keep, ring, weight, _, _ = ring_bins(h, w, n_bins)
    return np.bincount(ring, weights=values.ravel()[keep] * weight, minlength=n_bins)


def radial_profile(half_power: np.ndarray, h: int, w: int, n_bins: int) -> np.ndarray:
    """Mean over the rings of a half-spectrum power array (= the ring mean of the full spectrum)."""
    return ring_sum(half_power, h, w, n_bins) / np.maximum(ring_bins(h, w, n_bins)[3], 1)


def radial_power_spectrum(x: Any, n_bins: int | None = None, window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum per band.

    Returns ``(freqs, power)``: bin centres in cycles per pixel over (0, 0.5] and power (C, n_bins)
    averaged over annuli of radius |f| = sqrt(fx^2 + fy^2). The DC bin is excluded. Bands are
    transformed one at a time (peak memory: one band's spectrum).
    """
    a = _as3d(x)
    h, w = a.shape[-2:]
    n = n_bins or max(4, min(h, w) // 2)
    win = _hann2d(h, w, window)
    scale = (h * w) / win.sum() ** 2
    power = np.stack([radial_profile(np.abs(half_spectrum(band, win)) ** 2 * scale, h, w, n) for band in a])
    return ring_bins(h, w, n)[4], power


def aliasing_fraction(x: Any, sigma: float | list[float], scale: int) -> np.ndarray:
    """Share of the PSF-filtered signal energy above the LR Nyquist (it aliases when sampled).

    A = sum_{|fx| > f_N or |fy| > f_N} P(f) MTF(f)^2 / sum_{f != 0} P(f) MTF(f)^2, with
    MTF(f) = exp(-2 pi^2 sigma^2 |f|^2), f_N = 1 / (2 r) cycles per HR pixel, P the image's power
    spectrum (the HR image stands in for the scene). One value per band.
    """
    p = power_spectrum_2d(x)
    h, w = p.shape[-2:]
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (p.shape[0],))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    fn = 0.5 / scale
    above = (np.abs(fy) > fn) | (np.abs(fx) > fn)
    out = np.empty(p.shape[0])
    for i, band in enumerate(p):
        mtf2 = np.exp(-4 * np.pi**2 * sig[i] ** 2 * (fy**2 + fx**2))
        e = band * mtf2
        e[0, 0] = 0.0
        tot = e.sum()
        out[i] = e[above].sum() / tot if tot > 0 else 0.0
    return out
