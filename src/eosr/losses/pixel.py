"""Pixel losses on reflectance: L1, L2 and Smooth-L1 (Huber), masked, NaN-safe.

Smooth-L1 (Girshick, "Fast R-CNN", ICCV 2015), with d = sr - hr and threshold beta in DATA UNITS:

    l(d) = 0.5 d^2 / beta      if |d| < beta
           |d| - 0.5 beta      otherwise

On reflectance choose beta explicitly (e.g. 0.01): torch's default beta = 1 makes it 0.5 MSE for
every realistic error (docs/conventions.md#losses).
"""

from __future__ import annotations

from typing import Any

import torch

from eosr.errors import ConfigError
from eosr.losses._common import batch4, masked_mean, out, validity


def _diff(sr: Any, hr: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, h = batch4(sr, "sr"), batch4(hr, "hr").to(batch4(sr, "sr").dtype)
    valid = validity(s, h, mask=mask)
    d = torch.where(valid, s - h, torch.zeros((), dtype=s.dtype))
    return d, valid


def l1_loss(sr: Any, hr: Any, mask: Any = None) -> Any:
    """Mean absolute error over valid pixels: (1/|V|) sum_V |sr - hr|."""
    d, v = _diff(sr, hr, mask)
    return out(masked_mean(d.abs(), v), sr)


def l2_loss(sr: Any, hr: Any, mask: Any = None) -> Any:
    """Mean squared error over valid pixels: (1/|V|) sum_V (sr - hr)^2."""
    d, v = _diff(sr, hr, mask)
    return out(masked_mean(d * d, v), sr)


def smooth_l1_loss(sr: Any, hr: Any, beta: float = 0.01, mask: Any = None) -> Any:
    """Smooth-L1 (Huber / beta) of Girshick 2015 with ``beta`` in data units (see module docstring)."""
    if not beta > 0:
        raise ConfigError(f"smooth-L1 beta must be > 0 (in data units, e.g. 0.01), got {beta}")
    d, v = _diff(sr, hr, mask)
    a = d.abs()
    loss = torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return out(masked_mean(loss, v), sr)
