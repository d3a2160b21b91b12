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

    r = int(truncate * float(sigma) + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    dt = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    k = (k / k.sum()).astype(dt)
    return cv2.sepFilter2D(np.ascontiguousarray(a, dtype=dt), -1, k, k, borderType=cv2.BORDER_REFLECT)


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
