"""1-D PSF kernel families for calibration, sampled on the HR grid around an LR block centre.

A separable kernel k (taps t = 0..L-1) maps HR to LR as

    LR[i, j] = sum_{t,u} k_y[t] k_x[u] HR[r i + a + t, r j + a + u]      a = (r - L) / 2

so tap t sits at x_t = t - (L - 1)/2 HR pixels from the centre of the r x r block (pixel-is-area;
L - r even). Parametric families are sampled at x_t - kappa and normalised to unit sum; kappa is the
kernel centre's offset from the block centre (HR px). LR then sees HR around the block centre + kappa,
so the operator-convention shift (LR = D(HR(. - shift)), docs/conventions.md "Shift") is -kappa:

- ``gaussian``: exp(-x^2 / (2 sigma^2)) (as :func:`eosr.physics.psf.gaussian_taps`).
- ``keys``: the antialiased Keys cubic (a = -0.5) stretched by r, h(x) = keys(x / r) / r, which is what
  MATLAB ``imresize(x, 1/r, 'bicubic')`` applies when it shrinks (Keys, IEEE TASSP 29(6), 1981;
  MATLAB ``imresize`` documentation: the kernel is widened by the scale when antialiasing).
- ``box``: the r-wide box integrated over each HR pixel (block average, MATLAB ``'box'``).

Free-form kernels (``separable`` signed, ``separable_nonneg``) are fitted tap by tap
(:mod:`eosr.degrade.calibrate`).
"""

from __future__ import annotations

import math

import numpy as np

from eosr.errors import SensorError
from eosr.physics.psf import gaussian_taps

PARAMETRIC = ("gaussian", "keys", "box")
FREE_FORM = ("separable", "separable_nonneg")
FAMILIES = PARAMETRIC + FREE_FORM


def keys_cubic(s: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel (Keys 1981), a = -0.5 as MATLAB and OpenCV use."""
    s = np.abs(np.asarray(s, dtype=np.float64))
    out = np.zeros_like(s)
    m1 = s <= 1
    m2 = (s > 1) & (s < 2)
    out[m1] = (a + 2) * s[m1] ** 3 - (a + 3) * s[m1] ** 2 + 1
    out[m2] = a * s[m2] ** 3 - 5 * a * s[m2] ** 2 + 8 * a * s[m2] - 4 * a
    return out


def tap_positions(length: int) -> np.ndarray:
    """x_t = t - (L - 1)/2: tap offsets from the block centre in HR pixels."""
    return np.arange(length, dtype=np.float64) - (length - 1) / 2.0


def family_taps(family: str, scale: int, length: int, shift: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    """Taps of a parametric family (``gaussian``, ``keys``, ``box``) centred at kappa = ``shift``, sum 1."""
    r = int(scale)
    if (length - r) % 2:
        raise SensorError(f"a kernel of {length} taps cannot be centred on a block of {r} pixels")
    if family == "gaussian":
        return gaussian_taps(sigma, length, shift)
    x = tap_positions(length) - shift
    if family == "keys":
        w = keys_cubic(x / r) / r
    elif family == "box":  # overlap of [x - 1/2, x + 1/2] with [-r/2, r/2]
        w = np.clip(np.minimum(x + 0.5, r / 2.0) - np.maximum(x - 0.5, -r / 2.0), 0.0, None)
    else:
        raise SensorError(f"unknown kernel family {family!r}; known: {', '.join(FAMILIES)}")
    s = w.sum()
    if not abs(s) > 1e-12:
        raise SensorError(f"{family} kernel of {length} taps has no weight at shift {shift}")
    return w / s


def taps_mtf(taps: np.ndarray, scale: int) -> float:
    """|sum_t k_t exp(-2 pi i f x_t)| / |sum_t k_t| at the LR Nyquist f = 1 / (2 r) (cycles per HR px)."""
    k = np.asarray(taps, dtype=np.float64)
    x = tap_positions(k.size)
    f = 0.5 / int(scale)
    return float(abs(np.sum(k * np.exp(-2j * np.pi * f * x))) / abs(k.sum()))


def taps_centroid(taps: np.ndarray) -> float:
    """First moment sum_t k_t x_t / sum_t k_t: the kernel-centre offset kappa in HR px (shift = -kappa)."""
    k = np.asarray(taps, dtype=np.float64)
    return float(np.sum(k * tap_positions(k.size)) / k.sum())


def embed(taps: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad centred taps to ``length`` (same parity)."""
    k = np.asarray(taps, dtype=np.float64)
    extra = length - k.size
    if extra < 0 or extra % 2:
        raise SensorError(f"cannot centre {k.size} taps in {length}")
    return np.pad(k, (extra // 2, extra // 2))


def trim(taps: np.ndarray, rel: float = 1e-7) -> np.ndarray:
    """Drop symmetric pairs of end taps whose magnitude is below ``rel`` of the peak."""
    k = np.asarray(taps, dtype=np.float64)
    peak = float(np.abs(k).max())
    while k.size > 2 and abs(k[0]) <= rel * peak and abs(k[-1]) <= rel * peak:
        k = k[1:-1]
    return k


def free_length(scale: int) -> int:
    """Taps of a free-form kernel: 4r (4r + 1 for odd r), the support of the stretched Keys cubic."""
    r = int(scale)
    return 4 * r if r % 2 == 0 else 4 * r + 1


def common_length(scale: int, max_shift: float = 1.0) -> int:
    """Taps that hold every family: a Gaussian up to sigma = r (+-4 sigma) shifted by ``max_shift``."""
    r = int(scale)
    half = 4 * r + 1 + int(math.ceil(max_shift))
    n = 2 * half + (r % 2)
    return n if (n - r) % 2 == 0 else n + 1
