"""Sub-pixel registration: phase correlation refined by a local upsampled DFT.

Guizar-Sicairos, Thurman, Fienup, "Efficient subpixel image registration algorithms",
Optics Letters 33(2), 2008. The cross-power spectrum of all bands is summed before whitening, so
every band votes for one shift. Two robustness measures for real, non-periodic images: both images
are Tukey-windowed (alpha 0.5) so that border discontinuities do not create a false peak at zero
shift, and the cross-power spectrum is whitened partially (divided by |R|^0.5 instead of |R|), which
keeps noisy high frequencies from dominating. Measured on real Sentinel-2 patches: errors <= 0.02 px
for Fourier shifts up to 4 px and <= 0.05 px for spline-interpolated shifts (tests/test_physics.py).
Convention: ``moving(row, col) ~ reference(row - dy, col - dx)`` (+x = east / +column, +y = south / +row).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy.signal.windows import tukey

from eosr.errors import ShapeError

WHITENING = 0.5  # exponent p of |R|^p in the normalisation of the cross-power spectrum
COARSE_UPSAMPLE = 20  # first refinement step 1/20 px; a finer upsample refines around its peak


def _prep(x: Any, win: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) in float32 for float32 input, else float64: each band minus its (float64) mean over finite
    pixels, NaN set to 0 (the mean), times ``win``. The transforms then run in that precision (float32:
    the same shifts and gains on the benchmark triplet, 0.51 -> 0.39 s CPU for 4 x 2048²)."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"registration needs (C, H, W) or (H, W) arrays, got shape {a.shape}")
    out = np.empty(a.shape, dtype=np.float32 if a.dtype == np.float32 else np.float64)
    for i, band in enumerate(a):
        mean = float(band.mean(dtype=np.float64))
        if math.isfinite(mean):  # a finite mean: every value is finite (no masking, no float64 copy first)
            np.subtract(band, mean, out=out[i], dtype=out.dtype)
        else:
            ok = np.isfinite(band)
            if not ok.any():
                raise ShapeError("registration: a band has no valid pixel")
            b64 = band.astype(np.float64)
            out[i] = np.where(ok, b64 - b64[ok].mean(), 0.0)  # (cast to out's dtype)
        if win is not None:
            out[i] *= win
    return out


@functools.lru_cache(maxsize=4)
def _tukey_window(h: int, w: int) -> np.ndarray:
    """The 2-D Tukey(0.5) window (cached per shape, read-only: shared by threads and calls)."""
    win = np.outer(tukey(h, 0.5), tukey(w, 0.5))
    win.flags.writeable = False
    return win


def _upsampled_dft(cross: np.ndarray, up: int, size: int, oy: float, ox: float, width: int | None = None
                   ) -> np.ndarray:
    """Real part of the inverse DFT of ``cross`` on a size x size grid of step 1/up around (oy, ox)
    (matrix DFT; the correlation peak is searched on the real part).

    ``width``: ``cross`` is the half spectrum (``rfft2`` layout, H x (width // 2 + 1)) of a real
    signal's full spectrum of that width; the result is then the real part of the full inverse DFT
    (each column but the zero and, for an even width, the Nyquist one stands for its mirror too)."""
    h, w = cross.shape
    fy = np.fft.fftfreq(h)
    fx = np.fft.fftfreq(w) if width is None else np.fft.fftfreq(width)[:w]
    if width is not None and width % 2 == 0:
        fx[-1] = -0.5  # the Nyquist column at fftfreq's -1/2, as in the full spectrum
    ys = oy + (np.arange(size) - size // 2) / up
    xs = ox + (np.arange(size) - size // 2) / up
    ey = np.exp(2j * np.pi * ys[:, None] * fy[None, :])
    ex = np.exp(2j * np.pi * fx[:, None] * xs[None, :])
    if width is not None:
        wt = np.full(w, 2.0)
        wt[0] = 1.0
        if width % 2 == 0:
            wt[-1] = 1.0
        return np.real(ey @ (cross * wt) @ ex)
    return np.real(ey @ cross @ ex)


def cross_power(reference: Any, moving: Any, half: bool = False, workers: int = -1) -> np.ndarray:
    """Per-band cross-power spectra FFT(moving w) conj(FFT(reference w)), (C, H, W) complex.

    w is a Tukey(0.5) window; NaN pixels are set to the band mean. Sum over bands before
    :func:`shift_from_cross` to let every band vote for one shift (:func:`estimate_shift`).
    ``half``: only the non-redundant half (C, H, W // 2 + 1) of these Hermitian spectra (real FFTs,
    half the work; pass ``width=W`` to :func:`shift_from_cross`). ``workers``: scipy.fft's threads
    (-1: every core).
    """
    shape_r, shape_m = np.shape(reference), np.shape(moving)
    if shape_r != shape_m:
        raise ShapeError(f"registration: shapes differ {shape_r} vs {shape_m}")
    win = _tukey_window(*shape_r[-2:]) if len(shape_r) >= 2 else None
    ref, mov = _prep(reference, win), _prep(moving, win)
    fft = sfft.rfft2 if half else sfft.fft2
    out = fft(mov, workers=workers)
    out *= np.conj(fft(ref, workers=workers))
    return out


def shift_from_cross(cross: np.ndarray, upsample: int = 100, width: int | None = None, workers: int = -1
                     ) -> tuple[float, float]:
    """Shift (dy, dx) from one (H, W) cross-power spectrum: integer peak of its partially whitened
    inverse, refined on a 1.5-pixel neighbourhood by a matrix DFT at step 1/20 px, then (``upsample`` >
    20) at step 1/``upsample`` over 0.1 px around that peak. ``width``: ``cross`` is the half spectrum
    of :func:`cross_power` (``half=True``) of images that wide. ``workers``: scipy.fft's threads."""
    h, w = cross.shape
    scale = np.abs(cross)  # |R|^-p where |R| > 1e-12 max |R|, else 0 (in place: no extra arrays)
    keep = scale > 1e-12 * scale.max()
    with np.errstate(divide="ignore", over="ignore"):  # a flat spectrum (float32 floor 0): zeroed just below
        np.maximum(scale, 1e-300, out=scale)
        if WHITENING == 0.5:
            np.sqrt(scale, out=scale)
        else:
            np.power(scale, WHITENING, out=scale)
        np.divide(1.0, scale, out=scale)
    scale[~keep] = 0.0
    cross = cross * scale
    if width is not None:
        corr = sfft.irfft2(cross, s=(h, width), workers=workers)
        w = width
    else:
        corr = np.real(sfft.ifft2(cross, workers=workers))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy = float(iy if iy <= h // 2 else iy - h)
    dx = float(ix if ix <= w // 2 else ix - w)
    if upsample > 1:  # 1.5 px around the integer peak at step 1/min(upsample, 20), then, for a finer
        coarse = min(upsample, COARSE_UPSAMPLE)  # step, 2 coarse steps around that peak at 1/upsample
        dy, dx = _refine(cross, coarse, 1.5, dy, dx, width)
        if upsample > coarse:  # (the coarse peak is within half a coarse step of the fine one)
            dy, dx = _refine(cross, upsample, 2.0 / coarse, dy, dx, width)
    return dy, dx


def _refine(cross: np.ndarray, upsample: int, span: float, dy: float, dx: float, width: int | None
            ) -> tuple[float, float]:
    """Peak of the upsampled correlation on a grid of step 1/upsample spanning ``span`` px
    (odd size, centred on (dy, dx))."""
    size = int(np.ceil(upsample * span))
    size += 1 - size % 2
    up = _upsampled_dft(cross, upsample, size, dy, dx, width)
    jy, jx = np.unravel_index(int(np.argmax(up)), up.shape)
    return dy + (jy - size // 2) / upsample, dx + (jx - size // 2) / upsample


def estimate_shift(reference: Any, moving: Any, upsample: int = 100) -> tuple[float, float]:
    """Shift (dy, dx) in pixels such that moving(r, c) ~ reference(r - dy, c - dx).

    Integer peak of the (partially) whitened cross-power spectrum of the windowed images, summed over
    bands, then a 1.5-pixel neighbourhood refined on a grid of step 1/``upsample`` by a matrix DFT
    (Guizar-Sicairos et al. 2008). NaN pixels are set to the band mean. Valid for shifts well below
    half the image size (the window down-weights borders, so shifts beyond about a quarter of the
    size lose accuracy).
    """
    return shift_from_cross(cross_power(reference, moving).sum(axis=0), upsample)


def fourier_shift(x: Any, dy: float, dx: float) -> np.ndarray:
    """Shift an image by (dy, dx) pixels with the Fourier shift theorem (periodic borders).

    Returns ``out`` with out(r, c) = x(r - dy, c - dx).
    """
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    fy = np.fft.fftfreq(a.shape[-2])[:, None]
    fx = np.fft.fftfreq(a.shape[-1])[None, :]
    ph = np.exp(-2j * np.pi * (fy * dy + fx * dx))
    return np.real(sfft.ifft2(sfft.fft2(a, axes=(-2, -1), workers=-1) * ph, axes=(-2, -1), workers=-1))
