"""Fast separable correlation of image planes (OpenCV) for tensors that need no gradient.

``sep_correlate_valid`` computes, for every (B, C) plane,
out[i, j] = sum_{t,u} ky[c, t] kx[c, u] x[i s + t, j s + u] on the 'valid' region
(0 <= i s <= H - Ky, 0 <= j s <= W - Kx), the same numbers as the FFT paths of
:mod:`eosr.degrade.conv` and the SSIM window statistics, up to float rounding. OpenCV's
``sepFilter2D`` is 10-25x faster than a torch FFT or depthwise ``conv2d`` on this CPU for the short
kernels used here (a PSF or the 11-tap SSIM window; ``benchmarks/bench_metrics.py``). Differentiable
callers (tensors that require a gradient) keep the torch path: :func:`usable` says which to use.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def usable(x: torch.Tensor) -> bool:
    """True when ``x`` may take the OpenCV path: CPU float32/float64 that does not need a gradient."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def sep_correlate_valid(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Valid separable correlation of each plane of ``x`` (B, C, H, W) with ky[c] (rows) x kx[c] (columns).

    ``ky`` / ``kx`` are (C, K) per-band taps or (K,) shared by every band. Output
    (B, C, ceil((H - Ky + 1) / s), ceil((W - Kx + 1) / s)), same dtype as ``x``; no gradient.
    """
    import cv2

    a = x.detach().numpy()
    dt = a.dtype
    b, c, h, w = a.shape
    ky2 = ky.detach().cpu().numpy().reshape(-1, ky.shape[-1]).astype(dt)
    kx2 = kx.detach().cpu().numpy().reshape(-1, kx.shape[-1]).astype(dt)
    kh, kw = ky2.shape[1], kx2.shape[1]
    ho, wo = h - kh + 1, w - kw + 1
    out = np.empty((b, c, -(-ho // stride), -(-wo // stride)), dtype=dt)
    for i in range(b):
        for j in range(c):
            plane = np.ascontiguousarray(a[i, j])
            y = cv2.sepFilter2D(plane, -1, kx2[j % len(kx2)], ky2[j % len(ky2)], anchor=(0, 0),
                                borderType=cv2.BORDER_CONSTANT)
            out[i, j] = y[:ho:stride, :wo:stride]
    return torch.from_numpy(out)


def isfinite(x: torch.Tensor) -> torch.Tensor:
    """``torch.isfinite`` through NumPy for CPU tensors (about 20x faster on this CPU; same result)."""
    if x.device.type != "cpu":
        return torch.isfinite(x)
    return torch.from_numpy(np.isfinite(x.detach().numpy()))


def gaussian_blur(a: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur of a 2-D array with half-sample symmetric ('reflect') borders.

    The taps are scipy.ndimage.gaussian_filter's (exp(-k^2 / (2 sigma^2)) normalised, radius
    int(truncate sigma + 0.5)), so the result equals ``gaussian_filter(a, sigma, mode="reflect")``
    up to float rounding; computed with OpenCV's separable filter.
    """
    import cv2

    dt = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    k = gaussian_blur_taps(sigma, truncate).astype(dt)
    return cv2.sepFilter2D(np.ascontiguousarray(a, dtype=dt), -1, k, k, borderType=cv2.BORDER_REFLECT)


def blur_radius(sigma: float, truncate: float = 4.0) -> int:
    """Radius of :func:`gaussian_blur`'s kernel: int(truncate sigma + 0.5) taps each side (scipy.ndimage's)."""
    return int(truncate * float(sigma) + 0.5)


def gaussian_blur_taps(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The normalised taps of :func:`gaussian_blur` (float64), radius :func:`blur_radius`."""
    r = blur_radius(sigma, truncate)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    return np.asarray(k / k.sum())


@functools.lru_cache(maxsize=16)
def _dct_gains_squared(sigma: float, truncate: float, n: int) -> np.ndarray:
    """l_k^2, k < n: the squared DCT-II eigenvalues of the :func:`gaussian_blur_taps` filter (read-only)."""
    k = gaussian_blur_taps(sigma, truncate)
    m = np.arange(-((k.size - 1) // 2), (k.size - 1) // 2 + 1)
    out = np.asarray((k[None, :] * np.cos(np.pi * np.arange(n)[:, None] * m[None, :] / n)).sum(axis=1) ** 2)
    out.flags.writeable = False
    return out


def gaussian_lowpass_moments(x: np.ndarray, y: np.ndarray, sigma: float, truncate: float = 4.0,
                             gain_floor: float = 1e-9, workers: int = -1
                             ) -> tuple[float, float, float, float, float] | None:
    """(n, mean Lx, mean Ly, sum (Lx - mean)^2, sum (Lx - mean)(Ly - mean)) of two (H, W) arrays, L the
    Gaussian blur of :func:`gaussian_blur` (reflected borders), without blurring either image.

    A symmetric filter with half-sample symmetric borders is diagonal in the orthonormal DCT-II basis
    (Martucci, "Symmetric convolution and the discrete sine and cosine transforms", IEEE TSP 42(5),
    1994): L = C^T diag(l) C with l_k = sum_m h_m cos(pi k m / N) per axis, so by Parseval the
    centred sums are sum over k != 0 of l_ky^2 l_kx^2 X_k Y_k (X = C x, Y = C y), and mean Lx = mean x
    (the taps sum to 1). Coefficients whose per-axis squared gain l_k^2 is below ``gain_floor`` are
    left out: they change the sums by less than ``gain_floor`` times the images' AC energy (the
    truncated kernel's side lobes are near 1e-10). So the transform is pruned: a DCT along the rows,
    then along the columns of the kept coefficients only (sigma 8 on 2048^2: 428 of 2048 per axis,
    half the work of a full 2-D DCT; float32 stays float32, float64 sums). None when the filter is wider
    than the image (radius >= the shorter side): then blur (:func:`gaussian_blur`). ``workers``: scipy.fft's
    threads (-1: every core).
    """
    import scipy.fft as sfft

    r = blur_radius(sigma, truncate)
    h, w = x.shape
    if r >= min(h, w) or x.shape != y.shape:
        return None

    def kept(l2: np.ndarray) -> int:
        return int(np.nonzero(l2 >= gain_floor)[0].max()) + 1  # l_0 = 1: at least one

    ly2, lx2 = (_dct_gains_squared(float(sigma), float(truncate), n) for n in (h, w))
    ky, kx = kept(ly2), kept(lx2)
    dt = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    def coefficients(a: np.ndarray) -> np.ndarray:
        rows = sfft.dct(np.asarray(a, dtype=dt), type=2, norm="ortho", axis=1, workers=workers)[:, :kx]
        return np.asarray(sfft.dct(rows, type=2, norm="ortho", axis=0, workers=workers)[:ky], dtype=np.float64)

    cx, cy = coefficients(x), coefficients(y)
    cx[0, 0] = 0.0  # the DC term is the mean: centred sums
    cy[0, 0] = 0.0
    sxx = float(ly2[:ky] @ ((cx * cx) @ lx2[:kx]))
    sxy = float(ly2[:ky] @ ((cx * cy) @ lx2[:kx]))
    return float(x.size), float(x.mean(dtype=np.float64)), float(y.mean(dtype=np.float64)), sxx, sxy


def all_true(mask: torch.Tensor) -> bool:
    """``bool(mask.all())`` through NumPy for CPU tensors (about 15x faster on this CPU)."""
    if mask.device.type != "cpu":
        return bool(mask.all())
    return bool(mask.detach().numpy().all())


def any_true(mask: torch.Tensor) -> bool:
    """``bool(mask.any())`` through NumPy for CPU tensors."""
    if mask.device.type != "cpu":
        return bool(mask.any())
    return bool(mask.detach().numpy().any())


def count_true(mask: torch.Tensor, dim: tuple[int, ...] | None = None) -> torch.Tensor:
    """Number of True values (over ``dim``, int64), through NumPy for CPU tensors (torch sums of bool
    tensors are ~15x slower here)."""
    if mask.device.type != "cpu":
        return mask.sum(dim=dim) if dim is not None else mask.sum()
    a = mask.detach().numpy()
    return torch.as_tensor(np.count_nonzero(a, axis=dim) if dim is not None else np.count_nonzero(a),
                           dtype=torch.int64)
