"""Validation metrics of a model on whole-window Wald pairs, pooled over every pixel of every image.

For each LR noise level sigma (Gaussian, fixed seed per image, added to the noise-free Wald LR):

- ``psnr``: 10 log10(R^2 / MSE) with the MSE pooled over all valid pixels, bands and images
  (data_range R = 1 reflectance; docs/conventions.md#data-range);
- ``psnr_high``: the same over the high-gradient stratum, g >= q90 of each HR image, where
  g = mean over bands of sqrt(gx^2 + gy^2) with central differences (docs/conventions.md#gradient-strata);
- ``lr_fidelity``: RMSE between D(SR) and the observed LR (CESBIO, Michel et al. 2022);
- ``hr_fidelity``: RMSE between the high-pass parts x - LPF(x) of SR and HR, LPF = the operator's PSF
  on the HR grid (the seed's definition).

``eosr.metrics.psnr`` is used for the pooled PSNR when available (it is the same formula).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from eosr.degrade.operator import Degradation

Model = Callable[[torch.Tensor], torch.Tensor]


def gradient_magnitude(hr: torch.Tensor) -> torch.Tensor:
    """g (H, W) = mean over bands of per-band sqrt(gx^2 + gy^2), central differences (edges one-sided)."""
    gy, gx = torch.gradient(hr.double(), dim=(-2, -1))
    return torch.sqrt(gx * gx + gy * gy).mean(dim=0)


def noisy_lr(lr: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``lr`` plus Gaussian noise of ``sigma`` drawn from ``seed`` (identity for sigma = 0)."""
    if sigma <= 0:
        return lr
    g = torch.Generator().manual_seed(int(seed))
    return lr + sigma * torch.randn(lr.shape, generator=g, dtype=lr.dtype)


def _psnr(mse: float) -> float:
    """PSNR of reflectance (data range 1) with eosr's one cap (:func:`eosr.metrics.base.psnr_db`, 120 dB)."""
    from eosr.metrics.base import psnr_db

    return float(psnr_db(float(mse), 1.0))


def evaluate_model(
    model: Model,
    items: Sequence[Any],
    operator: Degradation,
    noise_sigmas: Sequence[float] = (0.0,),
    seed: int = 12345,
) -> dict[str, dict[str, float]]:
    """Metrics (see module docstring) per noise level: ``{"sigma=0.001": {"psnr": ..., ...}}``.

    ``items`` have ``lr`` (C, h, w) noise-free LR and ``hr`` (C, H, W); ``model`` maps (1, C, h, w)
    to (1, C, H, W). Noise for image i at level k uses seed ``seed + 1000 k + i``.
    """
    out: dict[str, dict[str, float]] = {}
    for k, sigma in enumerate(noise_sigmas):
        se = se_hi = se_lr = se_hf = 0.0
        n = n_hi = n_lr = n_hf = 0
        for i, it in enumerate(items):
            lr = noisy_lr(it.lr, float(sigma), seed + 1000 * k + i)
            with torch.no_grad():
                sr = model(lr[None].float())[0].double()
            hr = it.hr.double()
            valid = torch.isfinite(hr) & torch.isfinite(sr)
            d2 = torch.where(valid, (sr - hr) ** 2, 0.0)
            se += float(d2.sum())
            n += int(valid.sum())
            g = gradient_magnitude(torch.nan_to_num(hr))
            ok = valid.all(dim=0)
            thr = torch.quantile(g[ok], 0.9)
            hi = ok & (g >= thr)
            se_hi += float(d2[:, hi].sum())
            n_hi += int(hi.sum()) * hr.shape[0]
            dl = operator.downsample(sr) - lr.double()
            okl = torch.isfinite(dl)
            se_lr += float(torch.where(okl, dl * dl, 0.0).sum())
            n_lr += int(okl.sum())
            dh = (sr - operator.blur(sr)) - (hr - operator.blur(hr))
            okh = torch.isfinite(dh)
            se_hf += float(torch.where(okh, dh * dh, 0.0).sum())
            n_hf += int(okh.sum())
        out[f"sigma={sigma:g}"] = {
            "psnr": _psnr(se / max(n, 1)),
            "psnr_high": _psnr(se_hi / max(n_hi, 1)),
            "lr_fidelity": math.sqrt(se_lr / max(n_lr, 1)),
            "hr_fidelity": math.sqrt(se_hf / max(n_hf, 1)),
        }
    return out


def monitored(metrics: dict[str, dict[str, float]], name: str) -> float:
    """Mean of metric ``name`` over the noise levels (the early-stopping value)."""
    vals = [m[name] for m in metrics.values() if name in m]
    if not vals:
        from eosr.errors import ConfigError

        raise ConfigError(f"unknown validation metric {name!r}; use psnr, psnr_high, lr_fidelity or hr_fidelity")
    return float(sum(vals) / len(vals))


HIGHER_IS_BETTER = {"psnr": True, "psnr_high": True, "lr_fidelity": False, "hr_fidelity": False}
