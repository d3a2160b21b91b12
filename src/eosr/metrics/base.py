"""Plumbing shared by every metric: input checks, validity masks, pooled statistics, results.

Conventions (docs/metrics.md):
- Inputs are ``(C, H, W)`` or ``(B, C, H, W)``, NumPy or torch; computation runs in torch (float64
  for NumPy input, the tensor's dtype otherwise; float16 / bfloat16 tensors in float32, which CPU
  kernels such as the FFT need) so differentiable metrics can serve as losses.
- A pixel is valid where ``mask`` is True (when given) and every input is finite: NaN is nodata
  and never poisons a result. ``mask`` broadcasts to (B, C, H, W): (H, W), (C, H, W), (B, 1, H, W)...
- ``value`` pools the metric's statistics over all valid pixels of all bands (and batch items):
  PSNR comes from the pooled MSE, not the mean of per-band PSNRs. ``per_band`` lists bands in order.
- ``data_range`` is explicit (default 1.0 for reflectance) and never inferred from the data.
- A NumPy caller gets floats / NumPy arrays back; a torch caller gets tensors (with gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eosr._arrays import to_tensor
from eosr.errors import ShapeError
from eosr.physics.filters import all_true, any_true, count_true, isfinite

#: The one cap of every PSNR-type value (psnr, psnr_aligned, gradient strata, per band, cPSNR,
#: shift/bias-searched PSNR, benchmark fallback): PSNR = min(10 log10(R^2 / MSE), 120 dB), i.e. the
#: MSE is floored at 1e-12 R^2. Float64 rounding of a perfect (or perfectly compensated) SR leaves an
#: MSE of ~1e-33, which would otherwise read as 330 dB.
PSNR_CAP_DB = 120.0
#: The MSE floor relative to data_range^2 that gives :data:`PSNR_CAP_DB`.
PSNR_CAP_MSE = 10.0 ** (-PSNR_CAP_DB / 10.0)


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: direction, range, what it needs, whether it is differentiable, its source."""

    name: str
    higher_is_better: bool | None
    range: tuple[float, float]
    needs_hr: bool = True
    needs_lr: bool = False
    differentiable: bool = True
    unit: str = ""
    source: str = ""


@dataclass
class MetricResult:
    """A metric's aggregate ``value``, its ``per_band`` values and metadata.

    ``extra`` holds JSON-friendly details (pixel counts, flags such as ``capped``).
    """

    info: MetricInfo
    value: Any
    per_band: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Metric name (stable snake_case, as in the JSON)."""
        return self.info.name

    def __float__(self) -> float:
        return float(self.value)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict ``{"value": float, "per_band": [...], ...}`` (no NaN or inf)."""
        val, capped = json_float(self.value, self.info.name)
        pb = []
        for v in np.asarray(_np(self.per_band), dtype=np.float64).ravel():
            f, c = json_float(v, self.info.name)
            pb.append(f)
            capped = capped or c
        d: dict[str, Any] = {"value": val, "per_band": pb}
        if capped:
            d["capped"] = True
        for k, v in self.extra.items():
            d[k] = _jsonable(v)
        d["higher_is_better"] = self.info.higher_is_better
        if self.info.unit:
            d["unit"] = self.info.unit
        return d


def _np(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _jsonable(v: Any) -> Any:
    v = _np(v)
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def psnr_db(mse: Any, data_range: float = 1.0) -> Any:
    """PSNR = 10 log10(R^2 / max(MSE, 1e-12 R^2)) in dB, R = ``data_range``: capped at
    :data:`PSNR_CAP_DB` = 120 dB. The single place every PSNR-type value of eosr is computed.

    ``mse``: a float, a NumPy array or a torch tensor (returned in kind; NaN stays NaN; the gradient
    is zero where the cap applies).
    """
    peak = float(data_range) ** 2
    floor = PSNR_CAP_MSE * peak
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(peak / torch.clamp(mse, min=floor))
    if isinstance(mse, np.ndarray):
        with np.errstate(invalid="ignore"):
            return 10.0 * np.log10(peak / np.maximum(mse, floor))
    m = float(mse)
    return math.nan if math.isnan(m) else 10.0 * math.log10(peak / max(m, floor))


def psnr_capped(value: Any) -> bool:
    """True when a PSNR-type value (or any of an array's values) sits at :data:`PSNR_CAP_DB`."""
    a = np.asarray(_np(value), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return bool(np.any(a >= PSNR_CAP_DB - 1e-9))


def json_float(v: Any, name: str = "") -> tuple[float | None, bool]:
    """A finite float for JSON. +inf / -inf (no eosr PSNR returns them: :func:`psnr_db` caps) become
    +/-120 dB (:data:`PSNR_CAP_DB`) and are flagged; NaN becomes None (callers omit such metrics)."""
    f = float(_np(v))
    if math.isfinite(f):
        return f, False
    if f == math.inf:
        return PSNR_CAP_DB, True
    if f == -math.inf:
        return -PSNR_CAP_DB, True
    return None, False


@dataclass
class Prepared:
    """Inputs as (B, C, H, W) tensors of one dtype, plus the validity mask and the caller's type."""

    tensors: list[torch.Tensor]
    valid: torch.Tensor
    numpy: bool
    was3d: bool

    @property
    def n_bands(self) -> int:
        """Number of bands C."""
        return int(self.tensors[0].shape[1])

    def out(self, t: torch.Tensor) -> Any:
        """Return ``t`` in the caller's type (float / NumPy for NumPy callers)."""
        if not self.numpy:
            return t
        a = t.detach().cpu().numpy()
        return float(a) if a.ndim == 0 else a


def upcast_half(x: Any) -> Any:
    """``x`` in float32 if it is a float16 / bfloat16 array or tensor (gradients kept), else ``x`` itself."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if isinstance(x, np.ndarray) and x.dtype == np.float16:
        return x.astype(np.float32)
    return x


def prepare(*arrays: Any, mask: Any = None, names: tuple[str, ...] = ("sr", "hr"), min_size: int = 1) -> Prepared:
    """Check shapes (all equal, 3-D or 4-D), convert to torch, and build the validity mask.

    Raises :class:`ShapeError` on mismatching shapes, 2-D input, images smaller than ``min_size``,
    or when no pixel is valid (an all-NaN input or an empty mask).
    """
    is_np = not isinstance(arrays[0], torch.Tensor)
    ts = [to_tensor(a) for a in arrays]
    dtype = torch.float64 if is_np else ts[0].dtype
    if not dtype.is_floating_point or dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    out, was3d = [], False
    for t, n in zip(ts, names, strict=False):
        if t.ndim == 3:
            t, was3d = t.unsqueeze(0), True
        elif t.ndim != 4:
            raise ShapeError(
                f"{n} must be (C, H, W) or (B, C, H, W), got shape {tuple(t.shape)}"
                + (" (add a band axis: x[None])" if t.ndim == 2 else "")
            )
        out.append(t.to(dtype))
    s0 = out[0].shape
    for t, n in zip(out[1:], names[1:], strict=False):
        if t.shape != s0:
            raise ShapeError(f"{names[0]} {tuple(s0)} and {n} {tuple(t.shape)} differ in shape")
    if min(s0[-2:]) < min_size:
        raise ShapeError(f"images of {s0[-2]}x{s0[-1]} px are smaller than the {min_size} px this metric needs")
    valid = torch.ones(s0, dtype=torch.bool)
    for t in out:
        valid &= isfinite(t)
    if mask is not None:
        m = to_tensor(mask, dtype=torch.bool) if not isinstance(mask, torch.Tensor) else mask.to(torch.bool)
        try:
            valid &= torch.broadcast_to(m, s0) if m.ndim != 3 or s0[0] == 1 or m.shape[0] == s0[1] else m
        except RuntimeError:
            raise ShapeError(f"mask of shape {tuple(m.shape)} does not broadcast to {tuple(s0)}") from None
    if not any_true(valid):
        raise ShapeError("no valid pixel: the inputs are all NaN or the mask is empty")
    return Prepared(out, valid, is_np, was3d)


def zero_invalid(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``t`` with invalid pixels set to 0 (gradient-safe: no NaN flows through ``where``).

    ``valid`` must be False wherever ``t`` is not finite (as :func:`prepare` builds it); when every
    pixel is valid, ``t`` itself is returned (no copy).
    """
    if all_true(valid):
        return t
    return torch.where(valid, t, torch.zeros((), dtype=t.dtype))


def window_mean(info: MetricInfo, sums: np.ndarray, counts: np.ndarray, **extra: Any) -> MetricResult:
    """A windowed map's mean over its valid window centres from per-band sums and counts (C,): per band
    sum / count (NaN for a band without a window), pooled sum / count over all, as :func:`pooled_mean`;
    ``extra`` holds ``n_valid``, ``border_px`` (5, the 11-px window's) and ``extra``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_band = sums / counts
    return MetricResult(info, float(sums.sum() / counts.sum()), per_band,
                        {"n_valid": int(counts.sum()), "border_px": 5, **extra})


def pooled_mean(t: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``t`` over valid pixels: (per_band (C,), pooled scalar) over batch and pixels.

    A band without any valid pixel gets NaN in ``per_band`` (and does not enter the pooled value).
    """
    z = zero_invalid(t, valid)
    n_b = count_true(valid, (0, 2, 3)).to(t.dtype)
    s_b = z.sum(dim=(0, 2, 3))
    per_band = torch.where(n_b > 0, s_b / n_b.clamp(min=1), torch.full((), float("nan"), dtype=t.dtype))
    return per_band, s_b.sum() / n_b.sum()
