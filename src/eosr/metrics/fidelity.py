"""Physically informed metrics: consistency of SR with the LR through the sensor's own operator, and
high-frequency agreement with HR.

Both use the ONE degradation operator of :mod:`eosr.degrade` (a :class:`~eosr.degrade.operator.Degradation`,
e.g. ``Degradation.from_sensor("sentinel2", bands, scale)``), so a perfect SR is never penalised by
a degradation that is not the sensor's:

- LR fidelity: LR - D(SR) with D = ``operator.downsample`` (per-band PSF, then sampling at the LR
  block centres, GDAL pixel-is-area). No HR needed. L1 (mean absolute), L2 (root mean square) or,
  when the noise is known, the RMS of the residual in units of the noise sigma (about 1 for an SR
  that explains the LR down to the noise).
- HR fidelity: (HR - LPF(HR)) - (SR - LPF(SR)) with LPF = ``operator.blur`` (the same PSF on the HR
  grid, no decimation): only the detail the LR sensor cannot see is compared (docs/conventions.md#hr-fidelity).
  CESBIO's x - up(down(x)) variant is a different metric and is not offered under this name.

Borders: the operator extends images by half-sample symmetric reflection. NaN: the operator turns
every output pixel whose PSF support touches a NaN into NaN, and such pixels are excluded. Masks are
given on the grid of the compared images (LR grid for LR fidelity, HR grid for HR fidelity).
Source of the idea: Michel et al., "Sentinel-2 super-resolution ... LR / HR fidelity", CESBIO
(torchsisr / sen2venus evaluation), and the Wald protocol (Wald, Ranchin, Mangolini, PE&RS 1997).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from eosr._arrays import to_tensor
from eosr.degrade.operator import Degradation
from eosr.errors import EosrError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, Prepared, pooled_mean, prepare, upcast_half
from eosr.physics.filters import any_true, count_true

__all__ = [
    "HR_FIDELITY",
    "HR_FIDELITY_L2",
    "INFOS",
    "LRFidelity",
    "LR_FIDELITY",
    "LR_FIDELITY_L2",
    "LR_FIDELITY_SIGMA",
    "high_pass",
    "hr_fidelity",
    "hr_fidelity_map",
    "hr_fidelity_metrics",
    "lr_fidelity",
    "lr_fidelity_metrics",
    "lr_residual_map",
]

_SRC = "LR/HR fidelity through the sensor operator (Michel et al., CESBIO; Wald et al., PE&RS 63(6), 1997)"
LR_FIDELITY = MetricInfo("lr_fidelity", False, (0.0, math.inf), False, True, True, "reflectance", _SRC)
LR_FIDELITY_L2 = MetricInfo("lr_fidelity_l2", False, (0.0, math.inf), False, True, True, "reflectance", _SRC)
LR_FIDELITY_SIGMA = MetricInfo("lr_fidelity_sigma", False, (0.0, math.inf), False, True, True, "noise sigma", _SRC)
HR_FIDELITY = MetricInfo("hr_fidelity", False, (0.0, math.inf), True, False, True, "reflectance", _SRC)
HR_FIDELITY_L2 = MetricInfo("hr_fidelity_l2", False, (0.0, math.inf), True, False, True, "reflectance", _SRC)

#: The metrics of this module with their metadata.
INFOS: tuple[MetricInfo, ...] = (LR_FIDELITY, LR_FIDELITY_L2, LR_FIDELITY_SIGMA, HR_FIDELITY, HR_FIDELITY_L2)

Norm = Literal["l1", "l2", "sigma"]


def _check_operator(operator: Any) -> Degradation:
    if not isinstance(operator, Degradation):
        raise EosrError(f"operator must be an eosr.degrade Degradation, got {type(operator).__name__}")
    return operator


def _reduce(p: Prepared, r: torch.Tensor, norm: str, info_l1: MetricInfo, info_l2: MetricInfo) -> MetricResult:
    if norm == "l1":
        per_band, value = pooled_mean(torch.abs(r), p.valid)
        info = info_l1
    else:
        per_band, value = pooled_mean(r * r, p.valid)
        per_band, value = torch.sqrt(per_band), torch.sqrt(value)
        info = info_l2
    return MetricResult(info, p.out(value), p.out(per_band), {"n_valid": int(count_true(p.valid))})


def l1_l2_from_sums(info_l1: MetricInfo, info_l2: MetricInfo, sum_abs: Any, sum_sq: Any, count: Any,
                    extra: dict[str, Any]) -> dict[str, MetricResult]:
    """The L1 and L2 results from per-band sums of a residual r accumulated elsewhere (a compiled pass, or
    tile by tile): L1 = sum |r| / n and L2 = sqrt(sum r^2 / n), pooled (sums over bands first) and per band
    (NaN for a band without valid pixels), as :func:`_reduce`; ``extra`` (copied) goes to both results."""
    a, q, n = (np.asarray(v, dtype=np.float64) for v in (sum_abs, sum_sq, count))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {info_l1.name: MetricResult(info_l1, float(a.sum() / n.sum()), a / n, dict(extra)),
                info_l2.name: MetricResult(info_l2, math.sqrt(q.sum() / n.sum()), np.sqrt(q / n), dict(extra))}


class LRFidelity(NamedTuple):
    """:func:`lr_fidelity_metrics`: results by name, the residual LR - D(SR) (NaN where invalid) and D(SR)."""

    metrics: dict[str, MetricResult]
    residual: Any
    downsampled: Any


def lr_fidelity_metrics(
    sr: Any,
    lr: Any,
    operator: Degradation,
    *,
    norms: Sequence[Norm] = ("l1", "l2"),
    noise_sigma: float | None = None,
    data_range: float = 1.0,
    mask: Any = None,
) -> LRFidelity:
    """LR fidelity in each of ``norms`` from ONE D(SR) (see :func:`lr_fidelity` for the definitions),
    with the signed residual map LR - D(SR) on the LR grid and D(SR) itself, in the caller's type."""
    op = _check_operator(operator)
    for norm in norms:
        if norm not in ("l1", "l2", "sigma"):
            raise EosrError(f"norm must be 'l1', 'l2' or 'sigma', got {norm!r}")
    d = op.downsample(upcast_half(sr))
    p = prepare(d, lr, mask=mask, names=("D(sr)", "lr"))
    d_t, lr_t = p.tensors
    res = lr_t - d_t
    out: dict[str, MetricResult] = {}
    for norm in norms:
        if norm != "sigma":
            r = _reduce(p, res, norm, LR_FIDELITY, LR_FIDELITY_L2)
        else:
            if noise_sigma is not None:
                if not (math.isfinite(noise_sigma) and noise_sigma > 0):
                    raise EosrError(f"noise_sigma must be > 0, got {noise_sigma!r}")
                sig = torch.full((), float(noise_sigma), dtype=res.dtype)
            elif op.has_noise:
                sig = op.noise_std(torch.where(p.valid, d_t, torch.zeros((), dtype=d_t.dtype)))
            else:
                raise EosrError("lr_fidelity in noise-sigma units needs noise_sigma or an operator with a noise model")
            r = _reduce(p, res / sig, "l2", LR_FIDELITY_SIGMA, LR_FIDELITY_SIGMA)
        r.extra["data_range"] = float(data_range)
        r.extra["operator"] = op.description
        out[r.name] = r
    resmap = torch.where(p.valid, res, torch.full((), float("nan"), dtype=res.dtype))
    resmap = resmap[0] if p.was3d else resmap
    return LRFidelity(out, resmap if not p.numpy else resmap.detach().cpu().numpy(), d)


def lr_residual_map(sr: Any, lr: Any, operator: Degradation) -> Any:
    """Signed per-pixel residual LR - D(SR) on the LR grid (NaN where invalid); D = ``operator.downsample``."""
    return lr_fidelity_metrics(sr, lr, operator, norms=()).residual


def lr_fidelity(
    sr: Any,
    lr: Any,
    operator: Degradation,
    *,
    norm: Norm = "l1",
    noise_sigma: float | None = None,
    data_range: float = 1.0,
    mask: Any = None,
) -> MetricResult:
    """LR fidelity: how well the SR explains the LR through the sensor's operator D.

    - ``norm="l1"`` (``lr_fidelity``): mean |LR - D(SR)|;
    - ``norm="l2"`` (``lr_fidelity_l2``): sqrt(mean (LR - D(SR))^2);
    - ``norm="sigma"`` (``lr_fidelity_sigma``): sqrt(mean ((LR - D(SR)) / s)^2), s the noise sigma:
      ``noise_sigma`` if given, else the operator's noise model ``operator.noise_std(D(SR))``
      (read noise and/or SNR). About 1 when the SR is consistent with the LR down to the noise.

    D = ``operator.downsample`` (noise-free, differentiable). ``mask`` lives on the LR grid.
    A perfect SR (LR = D(HR), SR = HR) scores 0 up to float error. ``data_range`` is recorded only.
    """
    res = lr_fidelity_metrics(sr, lr, operator, norms=(norm,), noise_sigma=noise_sigma, data_range=data_range,
                              mask=mask)
    return next(iter(res.metrics.values()))


def high_pass(x: Any, operator: Degradation) -> Any:
    """x - LPF(x), LPF = ``operator.blur`` (the sensor PSF on the HR grid): the detail the LR cannot see."""
    _check_operator(operator)
    t = to_tensor(upcast_half(x))
    hp = t - to_tensor(operator.blur(t))
    return hp if isinstance(x, torch.Tensor) else hp.detach().cpu().numpy()


def _hf_diff(sr: Any, hr: Any, operator: Degradation, mask: Any) -> tuple[Prepared, torch.Tensor]:
    """prepare() the pair and return the signed high-frequency difference hp(SR) - hp(HR) = hp(SR - HR)."""
    _check_operator(operator)
    p = prepare(sr, hr, mask=mask)
    sr_t, hr_t = p.tensors
    diff = sr_t - hr_t  # the LPF is linear: hp(SR) - hp(HR) = hp(SR - HR), one blur instead of two
    hp = diff - to_tensor(operator.blur(diff))
    valid = p.valid & torch.isfinite(hp)
    if not any_true(valid):
        raise ShapeError("no valid pixel: every pixel's PSF support touches nodata")
    return Prepared(p.tensors, valid, p.numpy, p.was3d), hp


def hr_fidelity_metrics(
    sr: Any,
    hr: Any,
    operator: Degradation,
    *,
    norms: Sequence[Literal["l1", "l2"]] = ("l1", "l2"),
    data_range: float = 1.0,
    mask: Any = None,
) -> tuple[dict[str, MetricResult], Any]:
    """HR fidelity in each of ``norms`` from ONE high-pass of SR - HR (see :func:`hr_fidelity`), with
    the signed map (SR - LPF(SR)) - (HR - LPF(HR)) (NaN where invalid) in the caller's type."""
    for norm in norms:
        if norm not in ("l1", "l2"):
            raise EosrError(f"norm must be 'l1' or 'l2', got {norm!r}")
    p, hp = _hf_diff(sr, hr, operator, mask)
    out: dict[str, MetricResult] = {}
    for norm in norms:
        r = _reduce(p, hp, norm, HR_FIDELITY, HR_FIDELITY_L2)
        r.extra["data_range"] = float(data_range)
        r.extra["operator"] = operator.description
        out[r.name] = r
    m = torch.where(p.valid, hp, torch.full((), float("nan"), dtype=hp.dtype))
    m = m[0] if p.was3d else m
    return out, (m if not p.numpy else m.detach().cpu().numpy())


def hr_fidelity_map(sr: Any, hr: Any, operator: Degradation, *, mask: Any = None) -> Any:
    """Signed high-frequency difference map (SR - LPF(SR)) - (HR - LPF(HR)), NaN where invalid."""
    return hr_fidelity_metrics(sr, hr, operator, norms=(), mask=mask)[1]


def hr_fidelity(
    sr: Any,
    hr: Any,
    operator: Degradation,
    *,
    norm: Literal["l1", "l2"] = "l1",
    data_range: float = 1.0,
    mask: Any = None,
) -> MetricResult:
    """HR fidelity = mean |(HR - LPF(HR)) - (SR - LPF(SR))| (``norm="l2"``: root mean square).

    LPF = ``operator.blur``, the sensor PSF on the HR grid: errors the LR sensor would blur away
    entirely (e.g. a constant offset) do not count; missing or invented fine detail does.
    SR = HR scores 0. ``mask`` lives on the HR grid; ``data_range`` is recorded only.
    """
    res, _ = hr_fidelity_metrics(sr, hr, operator, norms=(norm,), data_range=data_range, mask=mask)
    return next(iter(res.values()))
