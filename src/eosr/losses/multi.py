"""Shift- and bias-invariant loss for multi-image SR (PROBA-V; RAMS, Salvetti et al., Remote Sensing
2020; HighRes-net, Deudon et al. 2020): the HR target may be misregistered by a few pixels and carry
a brightness bias, so the loss takes the minimum over integer shifts of a bias-corrected masked L1.

With SR cropped by ``border`` b on each side and, for u, v in {0 .. 2b}, HR_uv = HR[u:u+H-2b, v:v+W-2b]
and its mask M_uv (as the PROBA-V cPSNR of the ESA Kelvins challenge, docs/metrics.md):

    bias_uv = mean_{M_uv}(HR_uv - SR_c)
    L = min_{u,v} mean_{M_uv} |HR_uv - SR_c - bias_uv|

per batch item (then averaged over the batch). The bias is computed per band.
"""

from __future__ import annotations

from typing import Any

import torch

from eosr.errors import ConfigError, ShapeError
from eosr.losses._common import batch4, out, validity


def shift_bias_invariant_l1(
    sr: Any, hr: Any, mask: Any = None, border: int = 3, detach_bias: bool = False
) -> Any:
    """min over (2b+1)^2 shifts of the bias-corrected masked L1 (see module docstring).

    ``detach_bias`` stops gradients through the bias (as HighRes-net's training does).
    Returns the batch mean of per-item minima.
    """
    if border < 0:
        raise ConfigError(f"border must be >= 0, got {border}")
    s, h = batch4(sr, "sr"), batch4(hr, "hr")
    h = h.to(s.dtype)
    if s.shape != h.shape:
        raise ShapeError(f"sr {tuple(s.shape)} and hr {tuple(h.shape)} differ in shape")
    H, W = s.shape[-2:]
    b = border
    if min(H, W) <= 2 * b:
        raise ShapeError(f"images of {H}x{W} px are too small for a shift border of {b}")
    valid = validity(h, mask=mask)
    sc = s[..., b : H - b, b : W - b]
    hh, ww = H - 2 * b, W - 2 * b
    zero = torch.zeros((), dtype=s.dtype)
    losses = []
    for u in range(2 * b + 1):
        for v in range(2 * b + 1):
            t = h[..., u : u + hh, v : v + ww]
            m = valid[..., u : u + hh, v : v + ww] & torch.isfinite(sc)
            d = torch.where(m, t - sc, zero)
            n_b = m.sum(dim=(-2, -1)).to(s.dtype)
            bias = d.sum(dim=(-2, -1)) / n_b.clamp(min=1)
            if detach_bias:
                bias = bias.detach()
            e = torch.where(m, (d - bias[..., None, None]).abs(), zero)
            n = n_b.sum(dim=1)
            losses.append(e.sum(dim=(1, 2, 3)) / n.clamp(min=1))
    per_item = torch.stack(losses, dim=1).min(dim=1).values
    return out(per_item.mean(), sr)
