"""Gradient-stratified metrics: pixel metrics computed separately on flat and on structured areas of HR.

An SR output can look excellent on average while failing where it matters (edges, texture): most
pixels of Earth-observation images are smooth. Strata come from the HR reference's gradient
magnitude (docs/conventions.md#gradient-strata):

    g = (1 / C) sum_c sqrt((d_x HR_c)^2 + (d_y HR_c)^2)

with central differences (one-sided at the image border, as ``numpy.gradient``). The magnitude is
taken per band before averaging: band-averaged *signed* gradients cancel at vegetation edges, where
red and near-infrared move in opposite directions. Default strata: low = g <= q50 and high = g >= q90
of g over the valid pixels (bottom 50 %, top 10 %); configurable quantiles or absolute thresholds
(CESBIO uses one absolute threshold of 0.00677 reflectance over B2 B3 B4 B8).

A pixel with any invalid band (NaN in SR or HR, or masked: the pixels the metrics leave out) gets no
gradient, and neither do its 4-neighbours whose central difference would use it; a band with no valid pixel
at all is left out of the average (it would otherwise void every pixel). Results are named
``<metric>_low_gradient`` / ``<metric>_high_gradient`` and carry the stratum's pixel count and
threshold in ``extra``.
Source: the gradient strata of CESBIO's Sentinel-2 SR evaluation (Michel et al. 2024, "Revisiting
remote sensing cross-sensor single image super-resolution", IEEE JSTARS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from eosr._arrays import to_tensor
from eosr.errors import EosrError, ShapeError
from eosr.metrics import standard as S
from eosr.metrics.base import MetricInfo, MetricResult, pooled_mean, prepare
from eosr.physics.filters import any_true, count_true

__all__ = ["INFOS", "STRATA", "Strata", "gradient_magnitude", "gradient_strata", "stratified_metrics"]

#: Stratum names in result names: ``psnr_low_gradient`` ...
STRATA = ("low", "high")

_BASE: dict[str, MetricInfo] = {"psnr": S.PSNR, "rmse": S.RMSE, "mae": S.MAE, "ssim": S.SSIM}
_SSIM_WIN = 11  # the SSIM window of the strata (Wang et al. 2004)
_SRC = "gradient strata of HR (Michel et al., IEEE JSTARS 2024; CESBIO sen2venus evaluation)"


def _stratum_info(base: MetricInfo, stratum: str) -> MetricInfo:
    return replace(base, name=f"{base.name}_{stratum}_gradient", source=f"{base.source}; {_SRC}")


#: The metrics of this module with their metadata (for the default base metrics).
INFOS: tuple[MetricInfo, ...] = tuple(_stratum_info(b, s) for b in _BASE.values() for s in STRATA)

MetricFn = Callable[..., MetricResult]


def gradient_magnitude(hr: Any, *, mask: Any = None, bands: Sequence[int] | None = None) -> Any:
    """Band-averaged gradient magnitude g = mean_c sqrt(dx_c^2 + dy_c^2), shape (1, H, W) or (B, 1, H, W).

    Central differences (x[i+1] - x[i-1]) / 2 inside, one-sided at the border (``numpy.gradient``).
    ``bands`` selects the bands to average (default: all). NaN where undefined (see module doc).
    """
    p = prepare(hr, mask=mask, names=("hr",), min_size=2)
    (t,) = p.tensors
    t = t.detach()
    if bands is not None:
        idx = list(bands)
        if not idx or any(not -t.shape[1] <= i < t.shape[1] for i in idx):
            raise ShapeError(f"gradient bands {idx} out of range for {t.shape[1]} bands")
        t, valid = t[:, idx], p.valid[:, idx]
    else:
        valid = p.valid
    nan = torch.full((), float("nan"), dtype=t.dtype)
    # a band with no valid pixel at all has no gradient anywhere: it is left out rather than voiding every pixel
    live = [c for c in range(t.shape[1]) if any_true(valid[:, c])] or list(range(t.shape[1]))
    g = torch.zeros((t.shape[0], 1, *t.shape[-2:]), dtype=t.dtype)
    for c in live:  # one band at a time (temporaries of one band, not of the stack)
        gy, gx = torch.gradient(torch.where(valid[:, c : c + 1], t[:, c : c + 1], nan), dim=(-2, -1))
        g += torch.sqrt(gx * gx + gy * gy)
    g /= len(live)
    out = g[0] if p.was3d else g
    return out if not p.numpy else out.cpu().numpy()


@dataclass(frozen=True)
class Strata:
    """Boolean stratum masks (B, 1, H, W) over valid pixels, with their thresholds and pixel counts."""

    low: torch.Tensor
    high: torch.Tensor
    low_threshold: float
    high_threshold: float
    quantiles: tuple[float, float] | None

    def masks(self) -> dict[str, torch.Tensor]:
        """{"low": mask, "high": mask}."""
        return {"low": self.low, "high": self.high}

    def counts(self) -> dict[str, int]:
        """Pixel counts per stratum (spatial pixels, summed over the batch)."""
        return {"low": int(count_true(self.low)), "high": int(count_true(self.high))}


def gradient_strata(
    hr: Any,
    *,
    mask: Any = None,
    quantiles: tuple[float, float] = (0.5, 0.9),
    thresholds: tuple[float, float] | None = None,
    bands: Sequence[int] | None = None,
) -> Strata:
    """Split valid pixels by the HR gradient magnitude g: low = g <= t_low, high = g >= t_high.

    t_low, t_high are the ``quantiles`` of g over the valid pixels (default q50 and q90, linear
    interpolation as ``numpy.quantile``), or the absolute ``thresholds`` (reflectance per pixel) when given.
    """
    g = to_tensor(gradient_magnitude(hr, mask=mask, bands=bands))
    if g.ndim == 3:
        g = g.unsqueeze(0)
    ok = torch.isfinite(g)
    if not any_true(ok):
        raise ShapeError("no pixel has a defined HR gradient (all invalid)")
    if thresholds is not None:
        lo, hi = (float(v) for v in thresholds)
        qs = None
    else:
        q0, q1 = (float(q) for q in quantiles)
        if not 0.0 <= q0 <= 1.0 or not 0.0 <= q1 <= 1.0:
            raise EosrError(f"quantiles must lie in [0, 1], got {quantiles}")
        lo, hi = (float(v) for v in np.quantile(g[ok].double().numpy(), [q0, q1]))
        qs = (q0, q1)
    return Strata(ok & (g <= lo), ok & (g >= hi), lo, hi, qs)


def stratified_metrics(
    sr: Any,
    hr: Any,
    *,
    metrics: Sequence[str | MetricFn] = ("psnr", "rmse", "mae", "ssim"),
    data_range: float = 1.0,
    mask: Any = None,
    quantiles: tuple[float, float] = (0.5, 0.9),
    thresholds: tuple[float, float] | None = None,
    bands: Sequence[int] | None = None,
    skip_empty: bool = False,
    ssim_parts: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, MetricResult]:
    """Base metrics per HR-gradient stratum: ``{"psnr_low_gradient": MetricResult, ...}``.

    ``metrics`` are names (psnr, rmse, mae, ssim) or callables ``f(sr, hr, *, data_range, mask)``
    returning a :class:`MetricResult` (any pixel metric). SSIM uses the SSIM map averaged over the
    stratum's pixels (window centres; the 5-pixel border and windows touching invalid pixels are
    excluded). Each result's ``extra`` holds ``n_pixels`` (stratum size), ``threshold`` and ``quantile``.
    An empty stratum raises :class:`ShapeError` unless ``skip_empty`` (then it is omitted); so does SSIM on
    images under 11 px (its window; the pixel metrics are computed on any size).
    ``ssim_parts`` = (SSIM map, window validity) as returned by :func:`eosr.metrics.standard.ssim_uiqi`
    for the same inputs skips recomputing the SSIM map.
    """
    p = prepare(sr, hr, mask=mask)
    st = gradient_strata(hr, mask=p.valid, quantiles=quantiles, thresholds=thresholds, bands=bands)
    out: dict[str, MetricResult] = {}
    err: torch.Tensor | None = None
    for m in metrics:
        for name, smask in st.masks().items():
            thr = st.low_threshold if name == "low" else st.high_threshold
            q = None if st.quantiles is None else st.quantiles[0 if name == "low" else 1]
            n_pix = int(count_true(smask))
            if n_pix == 0:
                if skip_empty:
                    continue
                raise ShapeError(f"the {name}-gradient stratum is empty (threshold {thr:.6g})")
            if m == "ssim":
                if ssim_parts is None and min(p.tensors[0].shape[-2:]) < _SSIM_WIN:
                    if skip_empty:
                        continue
                    raise ShapeError(f"stratified SSIM needs images of at least {_SSIM_WIN}x{_SSIM_WIN} px (its "
                                     f"window), got {tuple(p.tensors[0].shape[-2:])}: leave 'ssim' out of metrics")
                if ssim_parts is None:
                    smap, ok, _ = S._ssim_core(p, float(data_range), 11, 1.5, 0.01, 0.03)
                    ssim_parts = (
                        torch.nn.functional.pad(smap, (5, 5, 5, 5)),
                        torch.nn.functional.pad(ok, (5, 5, 5, 5)),
                    )
                smap_f, ok_f = ssim_parts
                sel = ok_f & smask
                if not any_true(sel):
                    if skip_empty:
                        continue
                    raise ShapeError(f"no SSIM window centre in the {name}-gradient stratum")
                per_band, value = pooled_mean(smap_f, sel)
                res = MetricResult(S.SSIM, p.out(value), p.out(per_band), {"n_valid": int(count_true(sel))})
            elif isinstance(m, str):
                if m not in _BASE:
                    raise EosrError(f"unknown base metric {m!r}; use one of {sorted(_BASE)} or a callable")
                if err is None:  # one error image serves every pixel metric and stratum
                    err = p.tensors[0] - p.tensors[1]
                res = S.pixel_error_metric(m, p, err, smask & p.valid, float(data_range))
            else:
                res = m(sr, hr, data_range=data_range, mask=_as_caller_mask(smask & p.valid, p))
            info = _stratum_info(res.info, name)
            extra = dict(res.extra, n_pixels=n_pix, threshold=thr, quantile=q)
            out[info.name] = MetricResult(info, res.value, res.per_band, extra)
    return out


def _as_caller_mask(m: torch.Tensor, p: Any) -> Any:
    """A (B, C, H, W) bool mask in the shape of the caller's input (drop the batch axis for 3-D input)."""
    return m[0] if p.was3d else m
