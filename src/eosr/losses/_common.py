"""Input plumbing of the losses: tensors, shapes, validity (mask AND finite), masked means."""

from __future__ import annotations

from typing import Any

import torch

from eosr._arrays import to_tensor
from eosr.errors import ShapeError


def batch4(x: Any, name: str) -> torch.Tensor:
    """``x`` as a 4-D float tensor (a 3-D ``(C, H, W)`` gets a batch axis)."""
    t = to_tensor(x)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise ShapeError(f"{name} must be (C, H, W) or (B, C, H, W), got shape {tuple(t.shape)}")
    return t


def validity(*ts: torch.Tensor, mask: Any = None) -> torch.Tensor:
    """Boolean mask of pixels that are finite in every tensor and True in ``mask`` (broadcast)."""
    shape = ts[0].shape
    valid = torch.ones(shape, dtype=torch.bool, device=ts[0].device)
    for t in ts:
        if t.shape != shape:
            raise ShapeError(f"shapes {tuple(shape)} and {tuple(t.shape)} differ")
        valid = valid & torch.isfinite(t)
    if mask is not None:
        m = to_tensor(mask, dtype=torch.bool) if not isinstance(mask, torch.Tensor) else mask.to(torch.bool)
        if m.ndim == 3 and len(shape) == 4 and m.shape[0] == shape[0] and m.shape[0] != shape[1]:
            m = m.unsqueeze(1)  # (B, H, W) per-item masks
        try:
            valid = valid & torch.broadcast_to(m, shape)
        except RuntimeError:
            raise ShapeError(f"mask of shape {tuple(m.shape)} does not broadcast to {tuple(shape)}") from None
    return valid


def masked_mean(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over valid pixels (gradient-safe: invalid entries never enter, even as NaN).

    With no valid pixel the result is 0 (and no gradient), so one empty patch never poisons a batch.
    """
    z = torch.where(valid, t, torch.zeros((), dtype=t.dtype, device=t.device))
    n = valid.sum()
    return z.sum() / n.clamp(min=1).to(t.dtype)


def out(value: torch.Tensor, ref: Any) -> Any:
    """A tensor for torch callers, a float for NumPy callers."""
    return value if isinstance(ref, torch.Tensor) else float(value.detach())
