"""Array plumbing shared by every numeric module: NumPy in, NumPy out; torch in, torch out."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

from eosr.errors import ShapeError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def to_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` as a torch tensor (no copy for tensors; float64 NumPy stays float64)."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        t = torch.as_tensor(np.asarray(x))
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def like(t: torch.Tensor, ref: Any) -> Any:
    """Return ``t`` in the array type of ``ref`` (NumPy for NumPy input, torch otherwise)."""
    if isinstance(ref, torch.Tensor):
        return t
    return t.detach().cpu().numpy()


def as_batch(t: torch.Tensor, name: str = "image") -> tuple[torch.Tensor, bool]:
    """View a ``(C, H, W)`` or ``(B, C, H, W)`` tensor as 4-D; the flag says whether it was 3-D."""
    if t.ndim == 3:
        return t.unsqueeze(0), True
    if t.ndim == 4:
        return t, False
    raise ShapeError(
        f"{name} must be (C, H, W) or (B, C, H, W); got shape {tuple(t.shape)}"
        + (" (a 2-D array has no band axis: add one with x[None])" if t.ndim == 2 else "")
    )


def unbatch(t: torch.Tensor, was3d: bool) -> torch.Tensor:
    """Undo :func:`as_batch`."""
    return t[0] if was3d else t


def all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in ``a``: one pairwise sum (finite exactly when every value is, unless it overflows;
    then the element test decides)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(float(a.sum())) or bool(np.isfinite(a).all())
