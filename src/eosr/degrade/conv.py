"""Per-band strided correlation with half-sample symmetric borders, computed with FFTs (torch).

Depthwise ``conv2d`` is slow on CPU for 1-D kernels along W (about 5x slower than this FFT path on
4 x 2048^2, see ``benchmarks/bench_degrade.py``). The FFT path is exact up to float rounding and
differentiable. Separable kernels on tensors that need no gradient go through OpenCV instead
(:mod:`eosr.physics.filters`; same numbers, several times faster again).
"""

from __future__ import annotations

import torch
from scipy.fft import next_fast_len

from eosr.physics.filters import sep_correlate_valid, usable


def symmetric_pad_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of a half-sample symmetric extension (b a | a b c | c b) of length n + before + after.

    Works for pads larger than ``n`` (the extension is periodic with period 2n).
    """
    i = torch.arange(-before, n + after, device=device)
    j = torch.remainder(i, 2 * n)
    return torch.where(j >= n, 2 * n - 1 - j, j)


def _pad1(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    if p == 0:
        return x
    if p <= n:  # mirror slices are much faster than a gather
        return torch.cat([x.narrow(dim, 0, p).flip(dim), x, x.narrow(dim, n - p, p).flip(dim)], dim)
    return x.index_select(dim, symmetric_pad_index(n, p, p, x.device))


def _pad(x: torch.Tensor, py: int, px: int) -> torch.Tensor:
    return _pad1(_pad1(x, px, -1), py, -2)


def _fast(n: int) -> int:
    return int(next_fast_len(n, real=True))


def _fft_correlate(xp: torch.Tensor, spec: torch.Tensor, kh: int, kw: int, stride: int) -> torch.Tensor:
    """Circular correlation on a zero-padded fast FFT size; the kept (valid) region never wraps."""
    hp, wp = xp.shape[-2:]
    n = (_fast(hp), _fast(wp))
    y = torch.fft.irfft2(torch.fft.rfft2(xp, s=n) * spec, s=n)
    return y[..., : hp - kh + 1 : stride, : wp - kw + 1 : stride]


def sep_conv(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, stride: int) -> torch.Tensor:
    """out[b, c, i, j] = sum_{t,u} ky[c, t] kx[c, u] xpad[b, c, i*s + t, j*s + u].

    ``x`` (B, C, H, W); ``ky``/``kx`` (C, Ky)/(C, Kx) with K - stride even, so that the output,
    (B, C, H/s, W/s), is centred on the HR block centres. Borders: half-sample symmetric extension.
    """
    ky, kx = ky.to(x.dtype), kx.to(x.dtype)
    kh, kw = ky.shape[1], kx.shape[1]
    xp = _pad(x, (kh - stride) // 2, (kw - stride) // 2)
    if usable(xp) and not (ky.requires_grad or kx.requires_grad):  # no gradient needed: OpenCV, ~10x faster
        return sep_correlate_valid(xp, ky, kx, stride)
    hp, wp = _fast(xp.shape[-2]), _fast(xp.shape[-1])
    fy = torch.conj(torch.fft.fft(ky, n=hp))
    fx = torch.conj(torch.fft.rfft(kx, n=wp))
    return _fft_correlate(xp, fy[:, :, None] * fx[:, None, :], kh, kw, stride)


def full_conv(x: torch.Tensor, k: torch.Tensor, stride: int) -> torch.Tensor:
    """Correlate each band of ``x`` with its own 2-D kernel ``k`` (C, K, K), symmetric borders."""
    k = k.to(x.dtype)
    kh, kw = k.shape[-2:]
    xp = _pad(x, (kh - stride) // 2, (kw - stride) // 2)
    spec = torch.conj(torch.fft.rfft2(k, s=(_fast(xp.shape[-2]), _fast(xp.shape[-1]))))
    return _fft_correlate(xp, spec, kh, kw, stride)
