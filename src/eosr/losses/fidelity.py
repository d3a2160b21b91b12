"""Physics losses through the eosr sensor operator (Degradation).

LR fidelity (the SR degraded by the sensor must give back the observed LR; CESBIO's LR-fidelity
metric, Michel et al. 2022, used as a loss):

    L_LR = (1/|V|) sum_V rho( D(sr) - lr )          D = Degradation.downsample (noise-free, differentiable)

HR fidelity on high-frequency detail (the seed's definition: LPF = the operator's PSF on the HR grid,
docs/conventions.md#hr-fidelity):

    L_HR = (1/|V|) sum_V rho( (sr - LPF(sr)) - (hr - LPF(hr)) )

rho is the absolute value (``kind="l1"``, default) or the square (``kind="l2"``).
"""

from __future__ import annotations

from typing import Any

import torch

from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError, ShapeError
from eosr.losses._common import batch4, masked_mean, out, validity


def _rho(d: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "l1":
        return d.abs()
    if kind == "l2":
        return d * d
    raise ConfigError(f"fidelity loss kind must be 'l1' or 'l2', got {kind!r}")


def _fill(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    bad = ~torch.isfinite(t)
    return torch.where(bad, torch.zeros((), dtype=t.dtype), t), bad


def lr_fidelity_loss(sr: Any, lr: Any, operator: Degradation, mask: Any = None, kind: str = "l1") -> Any:
    """rho(D(sr) - lr) averaged over valid LR pixels; ``mask`` is on the LR grid."""
    s, l_ = batch4(sr, "sr"), batch4(lr, "lr")
    h, w = s.shape[-2:]
    r = operator.scale
    if (h, w) != (l_.shape[-2] * r, l_.shape[-1] * r):
        raise ShapeError(f"sr {h}x{w} is not {r} x lr {l_.shape[-2]}x{l_.shape[-1]}")
    # NaN in sr propagates to the LR pixels it touches: they drop out of the mean
    d = operator.downsample(s)
    valid = validity(d, l_.to(d.dtype), mask=mask)
    diff = torch.where(valid, d - l_.to(d.dtype), torch.zeros((), dtype=d.dtype))
    return out(masked_mean(_rho(diff, kind), valid), sr)


def high_pass(x: torch.Tensor, operator: Degradation) -> torch.Tensor:
    """x - LPF(x) with LPF = the operator's PSF on the HR grid (NaN stays NaN where it reaches)."""
    return x - operator.blur(x)


def hr_fidelity_loss(sr: Any, hr: Any, operator: Degradation, mask: Any = None, kind: str = "l1") -> Any:
    """rho of the high-pass difference (sr - LPF sr) - (hr - LPF hr) over valid HR pixels."""
    s, h = batch4(sr, "sr"), batch4(hr, "hr")
    h = h.to(s.dtype)
    if s.shape != h.shape:
        raise ShapeError(f"sr {tuple(s.shape)} and hr {tuple(h.shape)} differ in shape")
    # the operator marks output pixels whose PSF support touches NaN as NaN: they leave the mean
    hs, hh = high_pass(s, operator), high_pass(h, operator)
    valid = validity(hs, hh, mask=mask)
    d = torch.where(valid, hs - hh, torch.zeros((), dtype=s.dtype))
    return out(masked_mean(_rho(d, kind), valid), sr)
