"""Spectral diagnostics: radial power spectrum and the aliasing a PSF lets through."""

from __future__ import annotations

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


def power_spectrum_2d(x: Any, window: bool = True) -> np.ndarray:
    """|FFT|^2 per band of the mean-removed image (Hann-windowed by default to limit edge leakage).

    NaN pixels are replaced by the band mean. Returns (C, H, W), unshifted FFT order.
    """
    a = _as3d(x)
    out = np.empty_like(a)
    h, w = a.shape[-2:]
    win = np.outer(np.hanning(h), np.hanning(w)) if window and min(h, w) > 2 else np.ones((h, w))
    for i, band in enumerate(a):
        ok = np.isfinite(band)
        m = band[ok].mean() if ok.any() else 0.0
        b = np.where(ok, band - m, 0.0) * win
        out[i] = np.abs(sfft.fft2(b, workers=-1)) ** 2 / win.sum() ** 2 * (h * w)
    return out


def radial_power_spectrum(x: Any, n_bins: int | None = None, window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum per band.

    Returns ``(freqs, power)``: bin centres in cycles per pixel over (0, 0.5] and power (C, n_bins)
    averaged over annuli of radius |f| = sqrt(fx^2 + fy^2). The DC bin is excluded.
    """
    p = power_spectrum_2d(x, window)
    h, w = p.shape[-2:]
    n = n_bins or max(4, min(h, w) // 2)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    rad = np.sqrt(fy**2 + fx**2)
    edges = np.linspace(0.0, 0.5, n + 1)
    idx = np.digitize(rad.ravel(), edges[1:-1], right=True)
    keep = (rad.ravel() > 0) & (rad.ravel() <= 0.5)
    counts = np.bincount(idx[keep], minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(idx[keep], weights=band.ravel()[keep], minlength=n) for band in p])
    return 0.5 * (edges[1:] + edges[:-1]), sums / np.maximum(counts, 1)[None, :]


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
