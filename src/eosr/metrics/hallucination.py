"""Hallucination, omission and improvement: does SR add the detail HR has, and only that?

One definition that meets every required behaviour (docs/conventions.md#hallucination-omission-improvement).
With I the interpolated LR (bicubic on the pixel-is-area grid), SR' the shift-, gain- and bias-compensated SR
(:mod:`eosr.metrics.registration`), per pixel and band:

    t = HR - I                                   true missing detail
    a = SR' - I                                  detail added by SR
    c = sign(t) * clip(a * sign(t), 0, |t|)      the correct part of a, capped at the truth

Maps: improvement |c|, hallucination |a - c|, omission |t - c|. Scores over valid pixels:

    improvement = sum |c| / sum |t|,  hallucination = sum |a - c| / sum |t|,  omission = sum |t - c| / sum |t|

All three are in units of the true missing detail, so they compare across images and scales.
SR = HR gives (improvement 1, hallucination 0, omission 0); bicubic SR = I gives (0, 0, 1); detail of
the right sign but twice the amplitude gives hallucination = improvement; a pure shift or a gain error
is removed by the compensation and reported by ``shift_x_px``/``gain`` instead. Hallucination is not
bounded by 1 (invented texture can exceed the true detail).

Compared with opensr-test (Aybar et al. 2024), which scores hallucination as relative differences on
the pixels above the 75th percentile of |SR - I| after histogram matching, this form is absolute, uses
every valid pixel, and keeps geometry and radiometry out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eosr.errors import ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, prepare
from eosr.metrics.registration import LOWPASS_SIGMA, Alignment, align

__all__ = [
    "HALLUCINATION",
    "IMPROVEMENT",
    "OMISSION",
    "DetailResult",
    "detail_decomposition",
    "hallucination",
]

_SRC = "eosr (docs/conventions.md): t = HR - I, a = SR' - I, c = sign(t) clip(a sign(t), 0, |t|)"
HALLUCINATION = MetricInfo("hallucination", False, (0.0, math.inf), needs_lr=True, differentiable=False,
                           source=f"sum|a - c| / sum|t|; {_SRC}")
OMISSION = MetricInfo("omission", False, (0.0, 1.0), needs_lr=True, differentiable=False,
                      source=f"sum|t - c| / sum|t|; {_SRC}")
IMPROVEMENT = MetricInfo("improvement", True, (0.0, 1.0), needs_lr=True, differentiable=False,
                         source=f"sum|c| / sum|t|; {_SRC}")


@dataclass
class DetailResult:
    """Scores (``metrics``: hallucination, omission, improvement), per-pixel ``maps`` (same shape as
    the input, NaN where invalid) and the ``alignments`` used (one per batch item, or empty)."""

    metrics: dict[str, MetricResult]
    maps: dict[str, np.ndarray]
    alignments: list[Alignment] = field(default_factory=list)


def detail_decomposition(
    sr: np.ndarray, hr: np.ndarray, interp: np.ndarray, valid: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Maps and per-band sums of the decomposition, for inputs already compensated (C, H, W).

    Returns ``(maps, sums)``: maps improvement |c|, hallucination |a - c|, omission |t - c| (NaN where
    not ``valid``); sums (C,) of |t|, |c|, |a - c|, |t - c| over valid pixels.
    """
    dt = np.result_type(sr.dtype, hr.dtype, interp.dtype)
    shape = np.broadcast_shapes(sr.shape, hr.shape, interp.shape)
    lead = shape[:-2]
    maps = {k: np.empty(shape, dtype=dt) for k in ("improvement", "hallucination", "omission")}
    sums = {k: np.zeros(lead) for k in ("improvement", "hallucination", "omission", "truth")}
    nan = np.asarray(np.nan, dtype=dt)  # maps keep the inputs' precision (float32 in: float32 maps)
    # one (H, W) plane at a time: the temporaries are one band's size and are reused (first-touch page
    # faults of whole-stack temporaries cost more than the arithmetic on large images)
    for idx in np.ndindex(*lead):
        t = np.subtract(hr[idx], interp[idx], dtype=dt)
        a = np.subtract(sr[idx], interp[idx], dtype=dt)
        ok = valid[idx] & np.isfinite(t) & np.isfinite(a)
        at = np.abs(t)
        st = np.sign(t)
        c = np.clip(a * st, 0.0, at) * st
        for name, v in (("improvement", np.abs(c)), ("hallucination", np.abs(a - c)), ("omission", np.abs(t - c))):
            np.copyto(maps[name][idx], np.where(ok, v, nan))
            sums[name][idx] = v.sum(where=ok, dtype=np.float64)
        sums["truth"][idx] = at.sum(where=ok, dtype=np.float64)
    return maps, {k: np.asarray(v) for k, v in sums.items()}


def _as_items(x: Any, name: str) -> list[np.ndarray]:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 3:
        return [a.astype(np.float64, copy=False)]
    if a.ndim == 4:
        return [i.astype(np.float64, copy=False) for i in a]
    raise ShapeError(f"{name} must be (C, H, W) or (B, C, H, W), got shape {a.shape}"
                     + (" (add a band axis: x[None])" if a.ndim == 2 else ""))


def hallucination(
    sr: Any,
    hr: Any,
    interp: Any,
    *,
    mask: Any = None,
    compensate: bool = True,
    lowpass_sigma: float = LOWPASS_SIGMA,
) -> DetailResult:
    """Hallucination / omission / improvement scores and maps (definitions in the module docstring).

    ``interp`` is the LR interpolated to the HR grid (bicubic, pixel-is-area; e.g.
    ``torch.nn.functional.interpolate(lr, scale_factor=r, mode="bicubic", align_corners=False)``).
    With ``compensate`` (default) SR is first registered to HR and its gain and bias removed
    (:func:`eosr.metrics.registration.align`); pixels the shift invalidates are excluded. ``value`` pools
    the sums over all valid pixels, bands and batch items; ``per_band`` divides per band.
    """
    prepare(sr, hr, interp, mask=mask, names=("sr", "hr", "interp"))
    s_items, h_items, i_items = _as_items(sr, "sr"), _as_items(hr, "hr"), _as_items(interp, "interp")
    m_all = None
    if mask is not None:
        m_all = np.broadcast_to(
            (mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)).astype(bool),
            (len(s_items), *s_items[0].shape) if np.ndim(mask) == 4 else s_items[0].shape,
        )
    tot: dict[str, np.ndarray] = {}
    all_maps: dict[str, list[np.ndarray]] = {"improvement": [], "hallucination": [], "omission": []}
    als: list[Alignment] = []
    for k, (s, h, i) in enumerate(zip(s_items, h_items, i_items, strict=True)):
        m = None if m_all is None else (m_all[k] if m_all.ndim == 4 else m_all)
        if compensate:
            s2, valid, al = align(s, h, mask=m, lowpass_sigma=lowpass_sigma)
            als.append(al)
        else:
            s2 = s
            valid = np.isfinite(s) if m is None else np.isfinite(s) & m
        valid = valid & np.isfinite(h) & np.isfinite(i)
        maps, sums = detail_decomposition(s2, h, i, valid)
        for key, v in maps.items():
            all_maps[key].append(v)
        for key, v in sums.items():
            tot[key] = tot.get(key, 0.0) + v
    truth = tot["truth"]
    if not float(truth.sum()) > 0:
        raise ShapeError("hallucination: HR equals the interpolated LR on every valid pixel (no detail to restore)")
    metrics: dict[str, MetricResult] = {}
    for info in (HALLUCINATION, OMISSION, IMPROVEMENT):
        part = tot[info.name]
        per_band = np.where(truth > 0, part / np.maximum(truth, 1e-300), np.nan)
        metrics[info.name] = MetricResult(info, float(part.sum() / truth.sum()), per_band,
                                          {"compensated": compensate})
    four = len(s_items) > 1 or (np.ndim(sr) == 4 if not isinstance(sr, torch.Tensor) else sr.ndim == 4)
    out_maps = {k: (np.stack(v) if four else v[0]) for k, v in all_maps.items()}
    return DetailResult(metrics, out_maps, als)
