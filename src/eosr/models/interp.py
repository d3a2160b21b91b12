"""Interpolation baselines on the pixel-is-area grid of :mod:`eosr.degrade`.

For an integer scale r, HR pixel i has its centre at u = (i + 0.5) / r - 0.5 in LR pixel coordinates
(LR pixel j covers HR pixels [j r, (j + 1) r)). ``torch.nn.functional.interpolate`` with
``align_corners=False`` uses exactly this mapping (nearest, bilinear, bicubic with Keys' a = -0.75 and
clamped borders). Lanczos (Duchon 1979, "Lanczos filtering in one and two dimensions") is a separable
kernel L(t) = sinc(t) sinc(t / a) for |t| < a, a = 3, on the same grid, with half-sample symmetric
borders; its taps are normalised to sum 1 so that a constant image is preserved exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eosr.models.base import ModelSpec, SRNet, check_bands
from eosr.physics.psf import check_scale

RECEPTIVE = {"nearest": 1, "bilinear": 1, "bicubic": 2, "lanczos": 3}


def lanczos_taps(scale: int, a: int = 3) -> np.ndarray:
    """Phase-wise Lanczos-a taps (r, 2a + 1): out[j r + p] = sum_k taps[p, k] x[j + k - a].

    Phase p samples u = j + d_p with d_p = (p + 0.5) / r - 0.5; weights L(d_p - (k - a)), normalised.
    """
    r = check_scale(scale)
    k = np.arange(-a, a + 1, dtype=np.float64)
    taps = np.zeros((r, 2 * a + 1))
    for p in range(r):
        t = (p + 0.5) / r - 0.5 - k
        w = np.sinc(t) * np.sinc(t / a)
        w[np.abs(t) >= a] = 0.0
        taps[p] = w / w.sum()
    return taps


def _sym_pad(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    """Half-sample symmetric extension by p along ``dim`` (b a | a b c | c b); repeats for short sides."""
    while p > 0:
        q = min(p, x.shape[dim])
        x = torch.cat([x.narrow(dim, 0, q).flip(dim), x, x.narrow(dim, x.shape[dim] - q, q).flip(dim)], dim)
        p -= q
    return x


def lanczos_upsample(x: torch.Tensor, scale: int, a: int = 3) -> torch.Tensor:
    """Separable Lanczos-a upsampling of (B, C, h, w) by the integer ``scale`` (pixel-is-area grid)."""
    r = check_scale(scale)
    if r == 1:
        return x
    b, c, h, w = x.shape
    wt = torch.as_tensor(lanczos_taps(r, a), dtype=x.dtype, device=x.device)  # (r, 2a+1)
    y = _sym_pad(_sym_pad(x, a, -1), a, -2).reshape(b * c, 1, h + 2 * a, w + 2 * a)
    y = F.conv2d(y, wt[:, None, None, :])  # (BC, r, h+2a, w): phase along W
    y = y.permute(0, 2, 3, 1).reshape(b * c, 1, h + 2 * a, w * r)
    y = F.conv2d(y, wt[:, None, :, None])  # (BC, r, h, w r): phase along H
    y = y.permute(0, 2, 1, 3).reshape(b, c, h * r, w * r)
    return y


def lanczos_shift(x: torch.Tensor, dy: float, dx: float, a: int = 3) -> torch.Tensor:
    """Sub-pixel shift of (..., H, W) by (dy, dx) pixels with separable Lanczos-a interpolation
    (Duchon 1979): out(r, c) = x(r - dy, c - dx) (the convention of
    :func:`eosr.physics.registration.fourier_shift`), half-sample symmetric borders. Local: an output
    pixel depends on input pixels at most a + ceil(|shift|) away, so tiles with that overlap are exact."""
    for d, dim in ((dy, -2), (dx, -1)):
        if d == 0:
            continue
        t = -float(d)  # out(r) = x(r + t)
        m = math.floor(t)
        f = t - m
        k = np.arange(-a + 1, a + 1)
        w = np.sinc(f - k) * np.sinc((f - k) / a)
        w = w / w.sum()
        pad = a + abs(m) + 1
        n = x.shape[dim]
        y = _sym_pad(x, pad, dim)
        x = sum((float(wk) * y.narrow(dim, pad + m + int(kk), n) for wk, kk in zip(w, k, strict=True)),
                torch.zeros_like(x))
    return x


def upsample(x: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Upsample (B, C, h, w) by an integer scale on the pixel-is-area grid (align_corners=False)."""
    if method == "lanczos":
        return lanczos_upsample(x, scale)
    if scale == 1:
        return x
    if method == "nearest":
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.interpolate(x, scale_factor=scale, mode=method, align_corners=False)


class Interpolator(SRNet):
    """Nearest / bilinear / bicubic / Lanczos-3 baseline: no parameters, any band count.

    Bicubic: Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP 1981.
    """

    def __init__(self, method: str, scale: int = 2, bands: Sequence[str] | None = None) -> None:
        r = check_scale(scale)
        names, _ = check_bands(bands, None, None)
        spec = ModelSpec(name=method, scale=r, bands=names, receptive_field=RECEPTIVE[method],
                         extra={"kind": "interpolation", "grid": "pixel-is-area"})
        super().__init__(spec, {"model": method, "kwargs": {"scale": r, "bands": list(names) if names else None}},
                         None)
        self.method = method
        self.scale = r
        self.fixed_bands = len(names) if names else None

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """SR = interpolation of the LR image on the pixel-is-area grid."""
        self.check_input(lr)
        if self.fixed_bands is not None and lr.shape[1] != self.fixed_bands:
            from eosr.errors import ShapeError

            raise ShapeError(f"{self.method}: built for {self.fixed_bands} bands, input has {lr.shape[1]}")
        return upsample(lr, self.scale, self.method)


def _factory(method: str) -> Any:
    def make(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None) -> Interpolator:
        return Interpolator(method, scale=scale, bands=bands)

    make.__name__ = method
    make.__doc__ = f"{method} interpolation baseline (pixel-is-area grid); any band count."
    return make


nearest = _factory("nearest")
bilinear = _factory("bilinear")
bicubic = _factory("bicubic")
lanczos = _factory("lanczos")

__all__ = ["Interpolator", "lanczos_shift", "lanczos_taps", "lanczos_upsample", "upsample", "nearest", "bilinear",
           "bicubic", "lanczos"]
