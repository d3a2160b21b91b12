"""Gaussian PSF <-> MTF relations and PSF kernel builders (pixel-is-area sampling).

A Gaussian PSF of standard deviation sigma has MTF(f) = exp(-2 pi^2 sigma^2 f^2). With the MTF value
m at the Nyquist frequency f_N = 1 / (2 r) cycles per HR pixel of an LR grid r times coarser:

    sigma_HR_px = r * sqrt(-2 ln m) / pi                       (Michel et al., CESBIO; S2Sharp)

Kernels are sampled on the HR grid, normalised to unit sum, and sized from sigma (+-4 sigma), because
a Gaussian truncated too tightly no longer reproduces the requested MTF.
"""

from __future__ import annotations

import math

import numpy as np

from eosr.errors import ScaleError, SensorError

#: The largest scale factor eosr accepts (aerial 0.3 m -> Sentinel-2 10 m is ~33); a larger one is
#: refused before any kernel or image is allocated.
MAX_SCALE = 64
TRUNCATE = 4.0  # half-width of a Gaussian kernel in sigmas
_MIN_SIGMA = 0.05  # below this a Gaussian is replaced by linear interpolation (a sampling delta)


def check_scale(scale: object) -> int:
    """Return ``scale`` as an int in 1..:data:`MAX_SCALE`, or raise :class:`ScaleError`."""
    try:
        f = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScaleError(f"scale must be an integer >= 1, got {scale!r}") from None
    if not math.isfinite(f) or f != int(f) or f < 1:
        raise ScaleError(f"scale must be an integer >= 1, got {scale!r}")
    if f > MAX_SCALE:
        raise ScaleError(f"scale must be at most {MAX_SCALE}, got {scale!r}")
    return int(f)


def check_mtf(m: float) -> float:
    """Return ``m`` if it lies in the open interval (0, 1), else raise :class:`SensorError`."""
    if not (isinstance(m, (int, float)) and 0.0 < float(m) < 1.0):
        raise SensorError(f"MTF at Nyquist must lie in (0, 1), got {m!r}")
    return float(m)


def sigma_from_mtf(m: float, scale: int) -> float:
    """PSF sigma in HR pixels for MTF ``m`` at the LR Nyquist frequency: r sqrt(-2 ln m) / pi."""
    return check_scale(scale) * math.sqrt(-2.0 * math.log(check_mtf(m))) / math.pi


def mtf_from_sigma(sigma: float, scale: int) -> float:
    """MTF at the LR Nyquist of a Gaussian PSF (sigma in HR px): exp(-pi^2 sigma^2 / (2 r^2))."""
    r = check_scale(scale)
    return math.exp(-(math.pi**2) * sigma**2 / (2.0 * r**2))


def wald_sigma(m: float, scale: int) -> float:
    """Extra blur for the Wald protocol, sigma = sqrt(r^2 - 1) sqrt(-2 ln m) / pi (HR px).

    A real HR image already carries its sensor's MTF m at its own Nyquist; blurring it by this
    sigma gives MTF m at the LR Nyquist in total, instead of over-blurring with the full r-sigma
    (Gaussians compose in quadrature: sigma_total^2 = sigma_HR^2 + sigma_extra^2).
    """
    r = check_scale(scale)
    return math.sqrt(r * r - 1.0) * math.sqrt(-2.0 * math.log(check_mtf(m))) / math.pi


def kernel_length(sigma: float, scale: int = 1, shift: float = 0.0) -> int:
    """Taps of a 1-D kernel: covers +-4 sigma (+|shift|), at least ``scale``, same parity as ``scale``."""
    half = math.ceil(TRUNCATE * max(sigma, _MIN_SIGMA) + abs(shift)) + 1
    k = max(2 * half + 1, scale)
    if (k - scale) % 2:
        k += 1
    return k


def gaussian_taps(sigma: float, length: int, shift: float = 0.0) -> np.ndarray:
    """1-D Gaussian sampled at t - (length - 1)/2 - shift, t = 0..length-1, normalised to sum 1.

    ``length`` odd: centred on a sample; even: centred between two samples (the block centre of an
    even scale factor). Below sigma = 0.05 px the kernel becomes linear interpolation (a delta).
    """
    x = np.arange(length, dtype=np.float64) - (length - 1) / 2.0 - shift
    if sigma < _MIN_SIGMA:
        w = np.clip(1.0 - np.abs(x), 0.0, None)
    else:
        w = np.exp(-0.5 * (x / sigma) ** 2)
    s = w.sum()
    if s <= 0:
        raise SensorError(f"PSF kernel of sigma {sigma} and shift {shift} has no weight on {length} taps")
    return w / s


def gaussian_kernel(sigma: float, scale: int = 1, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """2-D normalised Gaussian PSF on the HR grid; even size for even ``scale`` (block-centred)."""
    ky = gaussian_taps(sigma, kernel_length(sigma, scale, shift[0]), shift[0])
    kx = gaussian_taps(sigma, kernel_length(sigma, scale, shift[1]), shift[1])
    return np.outer(ky, kx)


def kernel_mtf(kernel: np.ndarray, freqs: np.ndarray | float) -> np.ndarray:
    """MTF of a kernel along x: |sum_k w_k exp(-2 pi i f k)| / |sum_k w_k| (f in cycles per HR px).

    For a 2-D kernel the profile along the x axis is used (the kernel summed over rows), which is
    the 1-D MTF of a separable kernel.
    """
    w = np.asarray(kernel, dtype=np.float64)
    if w.ndim == 2:
        w = w.sum(axis=0)
    f = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    k = np.arange(w.size) - (w.size - 1) / 2.0
    resp = np.abs(np.exp(-2j * np.pi * f[:, None] * k[None, :]) @ w) / abs(w.sum())
    return resp if np.ndim(freqs) else resp[:1]


def kernel_from_mtf_curve(
    freqs_lr: np.ndarray, mtf: np.ndarray, scale: int, size: int | None = None
) -> np.ndarray:
    """2-D PSF kernel on the HR grid from a measured radial MTF curve.

    ``freqs_lr`` are in cycles per LR pixel (Nyquist = 0.5) and ``mtf`` the measured values; the
    curve is linearly interpolated (0 beyond its last sample, 1 at f = 0), sampled on a fine DFT grid
    of the HR pixel, and inverse transformed with the half-pixel phase that centres an even kernel
    between samples. The kernel is cropped to ``size`` (default: where the curve's Gaussian fit
    says +-4 sigma) and renormalised.
    """
    r = check_scale(scale)
    f = np.asarray(freqs_lr, dtype=np.float64) / r
    m = np.asarray(mtf, dtype=np.float64)
    if f.ndim != 1 or f.shape != m.shape or f.size < 2:
        raise SensorError("an MTF curve needs matching 1-D arrays of at least 2 frequencies and values")
    if np.any(np.diff(f) <= 0) or np.any(m < 0):
        raise SensorError("MTF curve frequencies must increase and values be non-negative")
    if size is None:
        mn = float(np.interp(0.5 / r, f, m, right=0.0))
        sig = sigma_from_mtf(min(max(mn, 1e-3), 0.999), r)
        size = kernel_length(sig, r)
    n = 8 * size
    fy = np.fft.fftfreq(n)
    rad = np.hypot(fy[:, None], fy[None, :])
    spec = np.interp(rad, np.concatenate([[0.0], f]), np.concatenate([[1.0], m]), right=0.0)
    c = (size - 1) / 2.0
    ph = np.exp(-2j * np.pi * fy * c)
    phase = ph[:, None] * ph[None, :]
    k = np.real(np.fft.ifft2(spec * phase))[:size, :size]
    k = np.clip(k, 0.0, None)
    return k / k.sum()
