"""Where is the SR output unconstrained by the observation? Detail above the LR Nyquist frequency.

The LR image only determines frequencies |f_x|, |f_y| <= f_N = 1 / (2 r) cycles per HR pixel.
Split SR = P(SR) + Q(SR) with P the ideal separable low-pass at f_N (FFT with half-sample symmetric
extension, so borders do not wrap) and Q = SR - P(SR) the part no LR observation can confirm. With
a Gaussian local average G (sigma = ``2 r`` HR pixels, about two LR pixels, by default):

    unconstrained(x) = sqrt(G * Q^2)                                  (reflectance units)
    support share(x) = G * Q^2 / (G * Q^2 + G * (P - G * P)^2)        (in [0, 1])

The share is the fraction of the local detail energy (variance around the local mean) that lies
above the LR Nyquist: 0 where every detail is band-limited (fully supported by the LR), 1 where all
detail is invented or aliased. "Detail" is the deviation from the local mean at the scale of G: a
band-limited cosine of frequency f counts with the factor (1 - M_G(f))^2, M_G(f) = exp(-2 pi^2 sigma^2 f^2),
so very smooth variations (much wider than G) hardly count as detail. The ideal low-pass rings near
borders (Gibbs; a few % of the amplitude over about 8 px). It is a property of the SR image alone: it
says where SR must be trusted less, not whether that detail is right (that needs a reference: see
the hallucination maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from eosr.errors import ShapeError
from eosr.physics.psf import check_scale


def _as_chw(x: Any) -> tuple[np.ndarray, bool]:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim == 2:
        return a[None], True
    if a.ndim != 3:
        raise ShapeError(f"expected an SR image (C, H, W) or (H, W), got shape {a.shape}")
    return a, False


def _back(a: np.ndarray, ref: Any, was2d: bool) -> Any:
    out = a[0] if was2d else a
    if hasattr(ref, "detach"):
        import torch

        return torch.from_numpy(out.astype(np.float32))
    return out.astype(np.float32)


def band_limited(sr: Any, scale: int) -> Any:
    """P(SR): the ideal separable low-pass at the LR Nyquist 1/(2r) cycles per HR pixel (NaN kept as NaN)."""
    r = check_scale(scale)
    a, was2d = _as_chw(sr)
    return _back(_lowpass(a, r), sr, was2d)


def _lowpass(a: np.ndarray, r: int) -> np.ndarray:
    c, h, w = a.shape
    bad = ~np.isfinite(a)
    filled = a.copy()
    for i in range(c):
        ok = ~bad[i]
        filled[i][bad[i]] = a[i][ok].mean() if ok.any() else 0.0
    ext = np.concatenate([filled, filled[:, ::-1]], axis=1)
    ext = np.concatenate([ext, ext[:, :, ::-1]], axis=2)  # half-sample symmetric: periodic with period 2H, 2W
    fy = np.abs(np.fft.fftfreq(2 * h))[:, None]
    fx = np.abs(np.fft.rfftfreq(2 * w))[None, :]
    fn = 0.5 / r
    keep = ((fy <= fn + 1e-12) & (fx <= fn + 1e-12)).astype(np.float64)
    lp = np.fft.irfft2(np.fft.rfft2(ext) * keep, s=(2 * h, 2 * w))[:, :h, :w]
    lp[bad] = np.nan
    return lp


@dataclass
class SupportMaps:
    """Per-pixel, per-band maps on the SR grid (type of the input)."""

    share: Any  # fraction of local detail energy above the LR Nyquist, [0, 1]
    unconstrained: Any  # RMS of the above-Nyquist detail, reflectance units
    mean_share: float  # energy-weighted share over the image


def support_maps(sr: Any, scale: int, sigma_px: float | None = None, eps: float = 1e-12) -> SupportMaps:
    """Support maps of an SR image (C, H, W): see the module docstring for the formulas."""
    r = check_scale(scale)
    a, was2d = _as_chw(sr)
    bad = ~np.isfinite(a)
    lp = _lowpass(a, r)
    q = np.where(bad, 0.0, a - lp)
    p = np.where(bad, 0.0, lp)
    s = float(2 * r if sigma_px is None else sigma_px)
    hi = np.empty_like(a)
    lo = np.empty_like(a)
    for i in range(a.shape[0]):
        gp = ndimage.gaussian_filter(p[i], s, mode="reflect")
        hi[i] = ndimage.gaussian_filter(q[i] ** 2, s, mode="reflect")
        lo[i] = ndimage.gaussian_filter((p[i] - gp) ** 2, s, mode="reflect")
    share = hi / (hi + lo + eps)
    mean_share = float(hi[~bad].sum() / max(hi[~bad].sum() + lo[~bad].sum(), eps))
    share[bad] = np.nan
    unc = np.sqrt(hi)
    unc[bad] = np.nan
    return SupportMaps(_back(share, sr, was2d), _back(unc, sr, was2d), mean_share)
