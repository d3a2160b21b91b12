"""Which LR pixels does an SR output region depend on?

- Input gradient (Simonyan et al. 2014): A = d F / d x, with F = sum of the SR output over a region.
- Integrated gradients (Sundararajan, Taly & Yan, ICML 2017):
      IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x')) / dx_i da
  (trapezoid rule over ``steps``); completeness: sum_i IG_i = F(x) - F(x'). The default baseline x'
  is a flat field at each band's mean (a zero image is far outside the data for reflectance).
- Effective receptive field (Luo et al., NeurIPS 2016): |d y_centre / d x| averaged over inputs,
  normalised to sum 1; its 95 % radius is where the centre output pixel draws its input from.

Regions are given on the SR grid as ``(row0, row1, col0, col1)`` (half-open) or a boolean (H, W) mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eosr._arrays import as_batch, like, to_tensor, unbatch
from eosr.errors import ShapeError
from eosr.trust.uncertainty import split_output

Region = tuple[int, int, int, int] | Any


def _sr(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> torch.Tensor:
    return split_output(model(x))[0]


def _region_mask(region: Region, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(region, tuple) and len(region) == 4:
        r0, r1, c0, c1 = (int(v) for v in region)
        if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
            raise ShapeError(f"region {region} is empty or outside the SR grid {h}x{w}")
        m = torch.zeros(h, w, dtype=dtype)
        m[r0:r1, c0:c1] = 1
        return m
    m = to_tensor(region).to(dtype)
    if tuple(m.shape) != (h, w):
        raise ShapeError(f"region mask must be ({h}, {w}) on the SR grid, got {tuple(m.shape)}")
    return m


def _objective(model: Callable[[torch.Tensor], Any], x: torch.Tensor, region: Region,
               band: int | None) -> torch.Tensor:
    y = _sr(model, x)
    m = _region_mask(region, y.shape[-2], y.shape[-1], y.dtype)
    if band is not None:
        y = y[:, band : band + 1]
    return (y * m).sum()


def _eval_mode(model: Any) -> bool:
    was = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    return was


def input_gradient(model: Callable[[torch.Tensor], Any], lr: Any, region: Region, band: int | None = None) -> Any:
    """d(sum of SR over ``region`` [, ``band``]) / d LR: same shape and type as ``lr``."""
    t = to_tensor(lr).float() if not to_tensor(lr).is_floating_point() else to_tensor(lr)
    x, was3d = as_batch(t.detach().clone(), "LR input")
    x.requires_grad_(True)
    was = _eval_mode(model)
    try:
        (g,) = torch.autograd.grad(_objective(model, x, region, band), x)
    finally:
        if was and hasattr(model, "train"):
            model.train(True)
    return like(unbatch(g.detach(), was3d), lr)


@dataclass
class IntegratedGradients:
    """Attribution map (type and shape of the LR input) and the completeness check."""

    attribution: Any
    output_delta: float  # F(x) - F(baseline)
    completeness_error: float  # |sum(attribution) - output_delta|


def integrated_gradients(model: Callable[[torch.Tensor], Any], lr: Any, region: Region, band: int | None = None,
                         baseline: Any = None, steps: int = 32) -> IntegratedGradients:
    """Integrated gradients (Sundararajan et al. 2017) of the SR region sum w.r.t. the LR pixels."""
    t = to_tensor(lr)
    t = t if t.is_floating_point() else t.float()
    x, was3d = as_batch(t.detach(), "LR input")
    if baseline is None:
        base = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    else:
        base, _ = as_batch(to_tensor(baseline).to(x.dtype), "baseline")
        if base.shape != x.shape:
            base = base.expand_as(x)
    alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
    wts = torch.full((steps + 1,), 1.0 / steps, dtype=x.dtype)
    wts[0] = wts[-1] = 0.5 / steps
    total = torch.zeros_like(x)
    was = _eval_mode(model)
    try:
        for a, wt in zip(alphas, wts, strict=True):
            xi = (base + a * (x - base)).detach().requires_grad_(True)
            (g,) = torch.autograd.grad(_objective(model, xi, region, band), xi)
            total += wt * g
        with torch.no_grad():
            delta = float(_objective(model, x, region, band) - _objective(model, base, region, band))
    finally:
        if was and hasattr(model, "train"):
            model.train(True)
    attr = (x - base) * total
    return IntegratedGradients(like(unbatch(attr.detach(), was3d), lr), delta, abs(float(attr.sum()) - delta))


@dataclass
class ReceptiveField:
    """Effective receptive field of the centre SR pixel over the LR grid."""

    erf: np.ndarray  # (h, w), sums to 1
    centre: tuple[int, int]  # LR pixel under the centre SR pixel
    radius_95: int  # Chebyshev radius (LR px) around ``centre`` holding 95 % of the ERF mass
    support_radius: int  # radius holding all non-zero gradient (the theoretical receptive field seen)


def effective_receptive_field(model: Callable[[torch.Tensor], Any], n_bands: int, scale: int, size: int = 33,
                              n_samples: int = 8, inputs: Any = None, seed: int = 0) -> ReceptiveField:
    """ERF (Luo et al. 2016): mean over inputs of |d SR[centre] / d LR| summed over bands, normalised.

    ``inputs``: (N, C, size, size) LR samples (e.g. real crops); default: ``n_samples`` random
    fields 0.2 + 0.05 N(0, 1) (reflectance-like). The output pixel is SR[size*scale//2, size*scale//2].
    """
    if inputs is None:
        g = torch.Generator().manual_seed(seed)
        xs = 0.2 + 0.05 * torch.randn(n_samples, n_bands, size, size, generator=g)
    else:
        xs, _ = as_batch(to_tensor(inputs).float(), "inputs")
        size = xs.shape[-1]
    hc = (xs.shape[-2] * scale) // 2
    wc = (xs.shape[-1] * scale) // 2
    acc = torch.zeros(xs.shape[-2], xs.shape[-1], dtype=torch.float64)
    for x in xs:
        gr = input_gradient(model, x, (hc, hc + 1, wc, wc + 1))
        acc += gr.abs().sum(0).to(torch.float64)
    erf = acc.numpy()
    tot = erf.sum()
    erf = erf / tot if tot > 0 else erf
    cy, cx = hc // scale, wc // scale
    yy, xx = np.indices(erf.shape)
    cheb = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
    rmax = int(cheb.max())
    mass = np.array([erf[cheb <= r].sum() for r in range(rmax + 1)])
    r95 = int(np.searchsorted(mass, 0.95 - 1e-12))
    nz = cheb[erf > 1e-12 * max(erf.max(), 1e-300)]
    return ReceptiveField(erf, (cy, cx), min(r95, rmax), int(nz.max()) if nz.size else 0)


def attribution_mass_within(attribution: Any, centre: tuple[int, int], radius: int) -> float:
    """Share of |attribution| (summed over bands) within a Chebyshev ``radius`` of an LR ``centre``."""
    a = np.abs(to_tensor(attribution).detach().cpu().numpy().astype(np.float64))
    if a.ndim == 3:
        a = a.sum(0)
    tot = a.sum()
    if tot == 0:
        return 1.0
    yy, xx = np.indices(a.shape)
    near = np.maximum(np.abs(yy - centre[0]), np.abs(xx - centre[1])) <= radius
    return float(a[near].sum() / tot)
