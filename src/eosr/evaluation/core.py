"""``eosr.evaluate``: every metric the given inputs allow, in one call.

Which metrics (names as in the JSON; definitions in docs/metrics.md):

- always with LR (real, or simulated from HR through the operator) and an operator: ``lr_fidelity``
  (+ ``lr_fidelity_l2``; ``lr_fidelity_sigma`` when the noise is known) and the spectral consistency
  ``sam_lr_deg`` = SAM(D(SR), LR) in degrees;
- with LR, no HR (no-reference): ``hf_gain_db``, ``lf_deviation_db`` (frequency restoration against
  the interpolated LR);
- with HR: ``psnr``, ``rmse``, ``mae``, ``ssim``, ``sam_deg``, ``ergas`` (needs the scale), ``uiqi``;
  gradient strata ``{psnr,rmse,mae,ssim}_{low,high}_gradient``; ``hr_fidelity`` (+ ``_l2``; needs an
  operator); registration ``shift_x_px``, ``shift_y_px``, ``gain``, ``bias`` and the compensated
  ``{psnr,rmse,mae,ssim}_aligned``; ``effective_resolution_px``;
- with HR and LR (or an operator to simulate it): ``frr`` (+ over/undershoot),
  ``hallucination``, ``omission``, ``improvement``;
- the shift-, gain- and bias-compensated SR' (one alignment per item) serves the ``_aligned`` metrics,
  ``effective_resolution_px``, ``frr`` (+ over/undershoot) and the hallucination scores, so a pure
  shift or gain leaves them equal to the perfect SR's;
- every PSNR-type value is capped at 120 dB (:func:`eosr.metrics.base.psnr_db`).
- ``lpips`` only when ``lpips_weights`` is a local weights file, or "alex" / "vgg" for the weights
  assembled offline from installed pip packages (``eosr.metrics.perceptual.default_lpips_weights``).

The interpolated LR I is bicubic on the pixel-is-area grid (``torch.nn.functional.interpolate``,
``align_corners=False``, Keys a = -0.75). Computation runs in float64 up to 2^22 values per image and
in float32 above (peak memory; the pooled sums stay accurate to ~1e-6 relative); float32 inputs stay
float32 when the fused engine runs (:mod:`eosr.evaluation.engine`, float64 accumulators).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eosr._alloc import release_free, reuse_large_allocations
from eosr._arrays import all_finite
from eosr.errors import EosrError, ScaleError, SensorError, ShapeError
from eosr.evaluation.result import GROUPS, EvaluationResult
from eosr.metrics.base import MetricInfo, MetricResult, window_mean
from eosr.physics.filters import any_true

#: Above this many values per image the evaluation runs in float32.
FLOAT64_LIMIT = 1 << 22

#: ``metrics=`` groups of :func:`evaluate`: short name -> the metric names it selects (the table groups of
#: :data:`eosr.evaluation.result.GROUPS`; their table names are accepted too).
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    alias: names
    for alias, (_, names) in zip(
        ("standard", "fidelity", "strata", "frequency", "registration", "hallucination", "perceptual",
         "uncertainty"), GROUPS, strict=True)
}


def resolve_metrics(metrics: str | Sequence[str] | None) -> frozenset[str] | None:
    """The metric names a ``metrics=`` selection stands for (None = every metric the inputs allow).

    ``metrics``: metric names (as in the JSON) and/or group names (:data:`METRIC_GROUPS`, or the
    table's group names), as a sequence or one comma-separated string. An unknown name raises
    :class:`EosrError` listing the valid ones.
    """
    if metrics is None:
        return None
    items = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else [str(m).strip() for m in metrics]
    items = [m for m in items if m]
    if not items:
        raise EosrError("metrics= selects nothing: give metric or group names, or None for all")
    groups = {**METRIC_GROUPS, **{g: names for g, names in GROUPS}}
    known = {n for names in METRIC_GROUPS.values() for n in names}
    out: set[str] = set()
    for m in items:
        if m in groups:
            out.update(groups[m])
        elif m in known:
            out.add(m)
        else:
            raise EosrError(f"unknown metric or group {m!r}; valid groups: {', '.join(METRIC_GROUPS)}; "
                            f"valid metrics: {', '.join(sorted(known))}")
    return frozenset(out)


def _tensor(x: Any, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64, torch.uint16)):
        raise ShapeError(f"{name} must hold numbers, got dtype {t.dtype}")
    if t.ndim == 2:
        raise ShapeError(f"{name} is 2-D {tuple(t.shape)}: images must be (C, H, W) or (B, C, H, W) (add x[None])")
    if t.ndim not in (3, 4):
        raise ShapeError(f"{name} must be (C, H, W) or (B, C, H, W), got shape {tuple(t.shape)}")
    if min(t.shape) < 1:
        raise ShapeError(f"{name} is empty: shape {tuple(t.shape)}")
    return t


def _check_scale(scale: Any) -> int:
    try:
        f = float(scale)
    except (TypeError, ValueError):
        raise ScaleError(f"the scale must be an integer >= 1, got {scale!r}") from None
    if not math.isfinite(f) or f != int(f) or f < 1:
        raise ScaleError(f"the scale must be an integer >= 1, got {scale!r}")
    return int(f)


def _infer_scale(big: torch.Tensor, small: torch.Tensor, names: tuple[str, str]) -> int:
    (h, w), (lh, lw) = big.shape[-2:], small.shape[-2:]
    if h % lh or w % lw or h // lh != w // lw:
        raise ScaleError(
            f"{names[0]} {h}x{w} and {names[1]} {lh}x{lw} are not related by one integer scale factor"
        )
    return h // lh


def _band_names(bands: Sequence[str] | str | None, c: int, op_bands: Sequence[str] | None) -> list[str]:
    from eosr.sensors import normalise_band_name

    if bands is not None:
        names = [b.strip() for b in bands.split(",")] if isinstance(bands, str) else [str(b) for b in bands]
        names = [normalise_band_name(b) for b in names if b]
        if len(names) != c:
            raise SensorError(f"{len(names)} band names for an image of {c} bands")
        return names
    if op_bands is not None and len(op_bands) == c:
        return list(op_bands)
    return [f"band{i + 1}" for i in range(c)]


def _operator(operator: Any, sensor: Any, bands: Sequence[str] | str | None, scale: int | None, c: int) -> Any:
    from eosr.degrade.operator import Degradation

    if operator is not None:
        if not isinstance(operator, Degradation):
            raise EosrError(f"operator must be an eosr.degrade.Degradation, got {type(operator).__name__}")
        if scale is not None and operator.scale != scale:
            raise ScaleError(f"the operator's scale {operator.scale} differs from the data's scale {scale}")
        if operator.n_bands not in (1, c):
            raise SensorError(f"the operator has {operator.n_bands} band PSFs but the image has {c} bands")
        return operator
    if sensor is None:
        return None
    if scale is None:
        raise ScaleError("give the scale (or an LR image) to build the sensor's operator")
    sel: Sequence[str] | None
    sel = [b.strip() for b in bands.split(",") if b.strip()] if isinstance(bands, str) else bands
    op = Degradation.from_sensor(sensor, sel, scale)
    if op.n_bands != c:
        raise SensorError(
            f"the image has {c} bands but {op.description} selects {op.n_bands}: name the image's bands (bands=...)"
        )
    return op


def _renamed(res: MetricResult, name: str, source_suffix: str = "") -> MetricResult:
    b = res.info
    info = MetricInfo(name, b.higher_is_better, b.range, b.needs_hr, b.needs_lr, False, b.unit,
                      b.source + source_suffix)
    return MetricResult(info, res.value, res.per_band, dict(res.extra))


def _to_float(res: MetricResult) -> MetricResult:
    def conv(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            a = v.detach().cpu().double().numpy()
            return float(a) if a.ndim == 0 else a
        if isinstance(v, np.ndarray):
            return float(v) if v.ndim == 0 else v.astype(np.float64)
        return float(v)

    return MetricResult(res.info, conv(res.value), conv(res.per_band), res.extra)


def _lr_mask(mask: torch.Tensor | None, r: int) -> torch.Tensor | None:
    """LR-grid validity: an LR pixel is valid when its whole r x r HR block is (min-pool)."""
    if mask is None:
        return None
    m = mask.to(torch.float32)
    squeeze = m.ndim == 3
    if squeeze:
        m = m.unsqueeze(0)
    m = -F.max_pool2d(-m, r, r)
    out = m > 0.5
    return out[0] if squeeze else out


def _bicubic(lr: torch.Tensor, r: int) -> torch.Tensor:
    from eosr.models.interp import upsample

    up = upsample(lr if lr.ndim == 4 else lr.unsqueeze(0), r, "bicubic")
    return up if lr.ndim == 4 else up[0]


def _mask_tensor(mask: Any, shape: torch.Size) -> torch.Tensor | None:
    if mask is None:
        return None
    m = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    m = m.to(torch.bool)
    try:
        full = torch.broadcast_to(m, shape) if not (m.ndim == 3 and len(shape) == 4) else torch.broadcast_to(
            m.unsqueeze(1) if m.shape[0] == shape[0] and m.shape[0] != shape[1] else m, shape)
    except RuntimeError:
        raise ShapeError(f"mask of shape {tuple(m.shape)} does not broadcast to the image {tuple(shape)}") from None
    if not any_true(full):
        raise ShapeError("the mask is empty: no valid pixel to evaluate")
    return full.contiguous()


def _engine_settings(fn: Callable[..., EvaluationResult]) -> Callable[..., EvaluationResult]:
    """Run ``fn`` with scipy.fft's transforms on torch's intra-op thread count (pocketfft threads over
    the other axis of a 2-D transform; its default is one thread), with freed large buffers reused
    for the next temporary (:func:`eosr._alloc.reuse_large_allocations`: on 4 x 2048² a call faulted
    in ~1 GB of fresh pages without it, 0.13 GB with it) and with BLAS on one thread (threadpoolctl):
    the evaluation threads over bands itself, and the registration's small matrix DFTs on OpenBLAS's
    own threads oversubscribed the cores and left them spinning (registration on 4 x 2048², 2 cores:
    0.30 -> 0.24 s wall, 0.52 -> 0.39 s CPU; docs/benchmarks.md)."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> EvaluationResult:
        import scipy.fft
        from threadpoolctl import threadpool_limits

        with scipy.fft.set_workers(max(1, torch.get_num_threads())), reuse_large_allocations(), \
                threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapped


@_engine_settings
def evaluate(
    sr: Any,
    hr: Any = None,
    lr: Any = None,
    *,
    sensor: Any = None,
    bands: Sequence[str] | str | None = None,
    scale: int | None = None,
    operator: Any = None,
    mask: Any = None,
    data_range: float = 1.0,
    noise_sigma: float | None = None,
    lpips_weights: str | None = None,
    uncertainty: Any = None,
    maps: bool = True,
    metrics: str | Sequence[str] | None = None,
    fused_engine: bool = True,
) -> EvaluationResult:
    """Compute every metric the inputs allow (see the module docstring) and return an
    :class:`EvaluationResult` (``.to_dict()`` gives strict JSON, ``.maps`` per-pixel maps).

    ``sr`` (C, H, W) or (B, C, H, W) reflectance; ``hr`` on the same grid; ``lr`` on the grid coarser
    by the integer ``scale`` (inferred from the shapes when not given; pixel-is-area, shared origin).
    The physics (LR fidelity, HR fidelity, LR simulation when only HR is given) uses ``operator``
    (a :class:`eosr.degrade.Degradation`) or the one built from ``sensor``, ``bands`` and ``scale``.
    ``mask`` (True = valid) lives on the HR grid; NaN is nodata everywhere. ``data_range`` is used by
    PSNR/SSIM and recorded. ``uncertainty`` (predictive std, shaped like ``sr``, reflectance) adds
    the calibration metrics ``uncertainty_*`` when HR is given. ``metrics`` selects metric names and/or
    groups ("standard", "fidelity", "strata", "frequency", "registration", "hallucination", "perceptual",
    "uncertainty"; :func:`resolve_metrics`): only what they need is computed (default: everything the
    inputs allow). ``fused_engine=False`` forces the reference path of :mod:`eosr.metrics` (the fused
    engine, :mod:`eosr.evaluation.engine`, gives the same numbers faster). Bad input raises a
    :class:`eosr.errors.EosrError` with a one-line message.
    """
    from eosr.metrics import fidelity, frequency, stratified
    from eosr.metrics import standard as S

    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise EosrError(f"data_range must be a finite number > 0, got {data_range!r}")
    if noise_sigma is not None and not (math.isfinite(noise_sigma) and noise_sigma > 0):
        raise EosrError(f"noise_sigma must be > 0, got {noise_sigma!r}")
    selected = resolve_metrics(metrics)

    def want(*names: str) -> bool:
        return selected is None or any(n in selected for n in names)

    strata_names = tuple(n for n in METRIC_GROUPS["strata"] if want(n))
    need_interp = want("hf_gain_db", "lf_deviation_db", "frr", "frr_overshoot_db", "frr_undershoot_db",
                       *METRIC_GROUPS["hallucination"])
    need_align = want(*METRIC_GROUPS["registration"], *METRIC_GROUPS["hallucination"], "effective_resolution_px",
                      "frr", "frr_overshoot_db", "frr_undershoot_db")
    from eosr.io.xr import is_dataarray, unwrap_for_evaluation

    xr_info: dict[str, Any] = {}
    if any(is_dataarray(v) for v in (sr, hr, lr, mask, uncertainty)):  # grids checked, then plain arrays
        sr, hr, lr, mask, uncertainty, bands, xr_info = unwrap_for_evaluation(sr, hr, lr, mask, uncertainty, bands)
    s = _tensor(sr, "sr")
    h = _tensor(hr, "hr") if hr is not None else None
    lo = _tensor(lr, "lr") if lr is not None else None
    if h is not None and h.shape != s.shape:
        raise ShapeError(f"sr {tuple(s.shape)} and hr {tuple(h.shape)} differ in shape")
    if lo is not None and (lo.ndim != s.ndim or lo.shape[:-2] != s.shape[:-2]):
        raise ShapeError(f"lr {tuple(lo.shape)} and sr {tuple(s.shape)} differ in batch or band count")
    r = _check_scale(scale) if scale is not None else None
    if lo is not None:
        r_data = _infer_scale(s, lo, ("sr", "lr"))
        if r is not None and r != r_data:
            raise ScaleError(f"sr {tuple(s.shape[-2:])} is lr {tuple(lo.shape[-2:])} x{r_data}, not x{r}")
        r = r_data
    if r is None and operator is not None:
        r = int(operator.scale)
    if r is not None and (s.shape[-1] % r or s.shape[-2] % r):
        raise ScaleError(f"the SR size {s.shape[-2]}x{s.shape[-1]} is not divisible by the scale {r}")
    c = int(s.shape[-3])
    op = _operator(operator, sensor, bands, r, c)
    names = _band_names(bands, c, op.bands if op is not None else None)

    from eosr.evaluation import engine

    # float32 inputs stay float32 with the fused engine (its sums are float64); the reference path
    # computes small images in float64
    f32_in = s.dtype == torch.float32 and all(t is None or t.dtype == torch.float32 for t in (h, lo))
    keep32 = fused_engine and engine.AVAILABLE and f32_in
    dtype = torch.float64 if s[0].numel() <= FLOAT64_LIMIT and not keep32 else torch.float32
    s = s.to(dtype)
    h = h.to(dtype) if h is not None else None
    lo = lo.to(dtype) if lo is not None else None
    m = _mask_tensor(mask, s.shape)
    for name, t in (("sr", s), ("hr", h), ("lr", lo)):
        if t is not None and not (engine.any_finite(t.numpy()) if engine.AVAILABLE else  # stops at the first
                                  bool(np.isfinite(t.numpy()).any())):  # finite value; NumPy ~20x faster than torch
            raise ShapeError(f"{name} has no valid pixel (all NaN)")

    lr_simulated = False
    lr_side = want(*METRIC_GROUPS["fidelity"][:4])  # lr_fidelity*, sam_lr_deg
    if lo is None and h is not None and op is not None and (lr_side or need_interp):
        lo = op.downsample(h)
        lr_simulated = True
    interp = None
    if lo is not None and r is not None and need_interp:
        if engine.AVAILABLE and fused_engine and r > 1:  # the same numbers as torch's bicubic, compiled
            up = engine.bicubic_upsample(lo.numpy() if lo.ndim == 4 else lo.numpy()[None], r)
            interp = torch.from_numpy(up if lo.ndim == 4 else up[0])
            del up
        else:
            interp = _bicubic(lo, r)

    out: dict[str, MetricResult] = {}
    out_maps: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}

    def add(res: MetricResult, name: str | None = None) -> None:
        out[name or res.name] = _to_float(res)

    def keep_map(name: str, a: Any) -> None:
        if maps:
            arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
            out_maps[name] = arr.astype(np.float32, copy=False)  # float32 maps are kept, not copied

    # ---------------------------------------------------------------- LR side (no HR needed)
    if not lr_side:
        pass
    elif lo is not None and op is not None:
        fast_lr = None
        if engine.AVAILABLE and fused_engine and m is None and noise_sigma is None and not op.has_noise:
            fast_lr = _fused_lr(s, lo, op, data_range, c > 1 and want("sam_lr_deg"))
        if fast_lr is not None:
            for res in fast_lr[0].values():
                add(res)
            keep_map("lr_residual", fast_lr[1])
            del fast_lr
        else:
            lm = _lr_mask(m, op.scale)
            norms: tuple[fidelity.Norm, ...] = ("l1", "l2", "sigma") if (noise_sigma is not None or op.has_noise) \
                else ("l1", "l2")
            lrf = fidelity.lr_fidelity_metrics(s, lo, op, norms=norms, noise_sigma=noise_sigma,
                                               data_range=data_range, mask=lm)  # one D(SR): every norm, SAM, map
            for res in lrf.metrics.values():
                add(res)
            if c > 1 and want("sam_lr_deg"):
                add(_renamed(S.sam(lrf.downsampled, lo, data_range=data_range, mask=lm), "sam_lr_deg",
                             "; spectral consistency SAM(D(SR), LR)"))
            if maps:
                keep_map("lr_residual", lrf.residual)
            del lrf
    elif lo is None:
        skipped["lr_fidelity"] = "needs an LR image, or HR and an operator"
    else:
        skipped["lr_fidelity"] = "needs an operator (sensor=... and bands=..., or operator=...)"
    if h is None and interp is not None and r is not None and r >= 2 and want("hf_gain_db", "lf_deviation_db"):
        out.update({k: _to_float(v) for k, v in frequency.frequency_restoration_lr(s, interp, scale=r, mask=m).items()})

    # ---------------------------------------------------------------- HR side
    if h is not None:
        want_errors = want("psnr", "rmse", "mae")
        # the base metrics whose gradient strata are selected (psnr -> psnr_low_gradient, ...)
        base = tuple(b for b in ("psnr", "rmse", "mae", "ssim") if any(n.startswith(b + "_") for n in strata_names))
        want_ssim = want("ssim", "uiqi", "ssim_low_gradient", "ssim_high_gradient")
        fused = None
        aligned_pre = None
        if engine.AVAILABLE and fused_engine:
            if need_align:
                aligned_pre = _align_items(s, h, m, dtype)
                # (no trim here: the error and SSIM maps to come reuse the registration's freed buffers;
                # returning them to the kernel cost 40 k page faults per call on 4 x 2048², 8 % of the
                # time, for 10-20 MB less peak RSS: docs/benchmarks.md)
            s4, h4 = (t.numpy() if t.ndim == 4 else t.numpy()[None] for t in (s, h))
            if m is not None:  # masked pixels as nodata in a copy of SR: the engine leaves them out
                s4 = np.where(m.numpy() if s.ndim == 4 else m.numpy()[None], s4, np.array(np.nan, dtype=s4.dtype))
            sal4 = None
            if aligned_pre is not None and aligned_pre[2].all() and want(
                    "psnr_aligned", "rmse_aligned", "mae_aligned", "ssim_aligned"):
                sal4 = aligned_pre[1] if s.ndim == 4 else aligned_pre[1][None]
            fused = _fused_hr(s4, h4, sal4, data_range, r, maps and want_errors, want_ssim, want("sam_deg"),
                              _affine_of(aligned_pre[0], c) if sal4 is not None and aligned_pre is not None else None)
        ssim_parts = None
        fused_al: dict[str, MetricResult] = {}
        fused_done = fused is not None
        if fused is not None:
            raw, fused_al, err_map, smap, complete = fused
            fused = None  # the tuple would keep the SSIM map alive
            for k in ("psnr", "rmse", "mae", "ssim", "uiqi", "sam_deg", "ergas"):
                if k in raw and want(k):
                    add(raw[k])
            if base and complete:
                out.update(_fused_strata(s4, h4, smap, base, data_range))
            elif base:  # nodata: HR's gradient without the pixels the metrics leave out (s4 carries the mask
                # as NaN; HR's inf becomes NaN, not an infinite gradient)
                bad = ~np.isfinite(s4) | ~np.isfinite(h4)
                out.update(_fused_strata(s4, h4, smap, base, data_range,
                                         grad_hr=np.where(bad, np.array(np.nan, dtype=h4.dtype), h4)))
            if err_map is not None:
                keep_map("error", err_map if s.ndim == 4 else err_map[0])
            del err_map, smap
        else:
            if want_errors:
                for res in S.pixel_errors(s, h, data_range=data_range, mask=m).values():  # one error image
                    add(res)
            if want_ssim:
                res_ssim, res_uiqi, ssim_parts = S.ssim_uiqi(s, h, data_range=data_range, mask=m)  # one window pass
                add(res_ssim)
                add(res_uiqi)
            if want("sam_deg"):
                add(S.sam(s, h, data_range=data_range, mask=m))
            if r is not None and want("ergas"):
                add(S.ergas(s, h, scale=r, data_range=data_range, mask=m))
            if maps and want_errors:
                err = s - h
                if m is not None:
                    err = torch.where(m, err, torch.full((), float("nan"), dtype=err.dtype))
                keep_map("error", err)
                del err
        if base and not fused_done:
            out.update({k: _to_float(v) for k, v in stratified.stratified_metrics(
                s, h, metrics=base, data_range=data_range, mask=m, skip_empty=True, ssim_parts=ssim_parts).items()})
        del ssim_parts
        if op is not None and want("hr_fidelity", "hr_fidelity_l2"):
            fast_hf = _fused_hr_fidelity(s, h, op, data_range, m) if engine.AVAILABLE and fused_engine else None
            hrf, hf_map = fast_hf if fast_hf is not None else \
                fidelity.hr_fidelity_metrics(s, h, op, data_range=data_range, mask=m)  # one high-pass
            del fast_hf
            for res in hrf.values():
                add(res)
            if maps:
                keep_map("hf_difference", hf_map)
            del hf_map

        # registration, radiometry and compensated metrics (one alignment per item, reused)
        if need_align:
            _compensated(s, h, m, interp, dtype, data_range, want, add, keep_map, out, skipped, lr_simulated,
                         aligned_pre, fused_al, fused_engine)

    if uncertainty is not None and want(*METRIC_GROUPS["uncertainty"]):
        u = _tensor(uncertainty, "uncertainty")
        if u.shape != s.shape:
            raise ShapeError(f"uncertainty {tuple(u.shape)} and sr {tuple(s.shape)} differ in shape")
        if h is None:
            skipped["uncertainty_coverage_90"] = "needs HR"
        else:
            for res in uncertainty_metrics(s, h, u, m):
                add(res)
        if maps:
            keep_map("uncertainty", u)

    if lpips_weights is not None and want("lpips"):
        from eosr.metrics.perceptual import default_lpips_weights, lpips, lpips_net_of

        if h is None:
            skipped["lpips"] = "needs HR"
        else:
            rgb = None
            if c != 3 and c != 1:
                idx = {n: i for i, n in enumerate(names)}
                if not all(b in idx for b in ("B04", "B03", "B02")):
                    raise SensorError("LPIPS on more than 3 bands needs B04, B03 and B02 among the bands")
                rgb = (idx["B04"], idx["B03"], idx["B02"])
            lp_net = lpips_weights if lpips_weights in ("alex", "vgg") else lpips_net_of(lpips_weights)
            lp_path = default_lpips_weights(lp_net) if lpips_weights in ("alex", "vgg") else lpips_weights
            add(lpips(s, h, weights_path=lp_path, net=lp_net, data_range=data_range, mask=m, rgb=rgb))

    if selected is not None:  # a computation gives its siblings too (psnr brings rmse and mae): keep the selection
        out = {k: v for k, v in out.items() if k in selected}
        skipped = {k: v for k, v in skipped.items() if k in selected or (k == "hallucination" and want(k))}
    info: dict[str, Any] = {
        "scale": r,
        "inputs": {"sr": True, "hr": h is not None, "lr": lr is not None, "lr_simulated": lr_simulated},
        "shape": list(s.shape),
        "interpolation": "bicubic (align_corners=False)" if interp is not None else None,
        "precision": "float64" if dtype == torch.float64 else "float32",
    }
    if skipped:
        info["skipped"] = skipped
    if xr_info:
        info["georeference"] = xr_info
    return EvaluationResult(out, out_maps, names, float(data_range), op.describe() if op is not None else None, info)


def _compensated(s: torch.Tensor, h: torch.Tensor, m: torch.Tensor | None, interp: torch.Tensor | None,
                 dtype: torch.dtype, data_range: float, want: Callable[..., bool],
                 add: Callable[..., None], keep_map: Callable[[str, Any], None], out: dict[str, MetricResult],
                 skipped: dict[str, str], lr_simulated: bool,
                 aligned_pre: tuple[list[Any], np.ndarray, np.ndarray] | None = None,
                 fused: dict[str, MetricResult] | None = None, use_engine: bool = True) -> None:
    """Registration, radiometry and the metrics of the compensated SR' (one alignment per item, reused).

    ``aligned_pre``: :func:`_align_items` already run; ``fused``: aligned metrics the fused engine
    already computed (``psnr``/``rmse``/``mae``/``ssim`` of SR', under their plain names)."""
    from eosr.metrics import frequency, registration
    from eosr.metrics import standard as S
    from eosr.metrics.hallucination import detail_decomposition

    npdt = np.float64 if dtype == torch.float64 else np.float32  # float32 above FLOAT64_LIMIT (memory)
    als, s_al, v_al = aligned_pre if aligned_pre is not None else _align_items(s, h, m, dtype)
    fused = fused or {}
    if use_engine and "psnr" not in fused and want("psnr_aligned", "rmse_aligned", "mae_aligned", "ssim_aligned"):
        from eosr.evaluation import engine

        if engine.AVAILABLE and s_al.dtype == h.numpy().dtype:
            fused = _fused_aligned(s_al, h.numpy(), v_al, data_range, want("ssim_aligned"))
    if want("shift_x_px", "shift_y_px", "gain", "bias"):
        reg = registration.registration_metrics(s.numpy(), h.numpy(), mask=None if m is None else m.numpy(),
                                                alignments=als)
        for k, v in reg.items():
            add(v, k)
    frr_names = ("frr", "frr_overshoot_db", "frr_undershoot_db")
    if v_al.any():
        s_al_t = torch.from_numpy(s_al)
        v_al_t = torch.from_numpy(v_al)
        aligned: list[MetricResult] = []
        if want("psnr_aligned", "rmse_aligned", "mae_aligned"):
            aligned += [fused[k] for k in ("psnr", "rmse", "mae")] if "psnr" in fused else \
                list(S.pixel_errors(s_al_t, h, data_range=data_range, mask=v_al_t).values())
        if want("ssim_aligned"):
            aligned.append(fused["ssim"] if "ssim" in fused else
                           S.ssim(s_al_t, h, data_range=data_range, mask=v_al_t))
        for res in aligned:
            add(_renamed(res, f"{res.name}_aligned", "; after shift, gain and bias compensation"))
        # frequency metrics on the compensated SR, as the hallucination scores: a shift or a gain
        # is reported once, as registration/radiometry, not as lost resolution or overshoot
        i_np = None if interp is None or not want(*frr_names) else interp.numpy()
        fv = _spectra_valid(v_al, h.numpy(), i_np) if use_engine and want("effective_resolution_px", *frr_names) \
            else None
        shared = fv is not None
        if fv is not None:  # one spectrum per image and band serves FRR and the FRC (float32 stays float32)
            s4, h4, v4 = (x if x.ndim == 4 else x[None] for x in (s_al, h.numpy(), fv))
            i4 = None if i_np is None else (i_np if i_np.ndim == 4 else i_np[None])
            try:
                from eosr.evaluation import engine as E

                frr_res, er = frequency.restoration_and_resolution(
                    s4, h4, i4, data_range=data_range, ring_sums=E.spectrum_ring_sums if E.AVAILABLE else None,
                    valid=None if fv.all() else v4)
                release_free()  # the spectra's buffers, before the detail maps
            except EosrError as e:
                if i4 is None or "FRR" not in str(e):
                    raise
                skipped["frr"] = str(e)
                frr_res, er = {}, frequency.effective_resolution(s_al_t, h, mask=v_al_t)
            if want("effective_resolution_px"):
                er.extra["compensated"] = True
                add(er)
            for k, v in frr_res.items():
                v.extra["compensated"] = True
                add(v, k)
        elif want("effective_resolution_px"):
            er = frequency.effective_resolution(s_al_t, h, mask=v_al_t)
            er.extra["compensated"] = True
            add(er)
        if interp is not None and want(*frr_names) and not shared:
            try:
                for k, v in frequency.frequency_restoration(s_al_t, h, interp, mask=v_al_t,
                                                            data_range=data_range).items():
                    v.extra["compensated"] = True
                    add(v, k)
            except EosrError as e:
                skipped["frr"] = str(e)
    else:
        for k in ("psnr_aligned", "effective_resolution_px", "frr"):
            skipped[k] = "no valid pixel left after shift compensation"

    if interp is not None and want("hallucination", "omission", "improvement"):
        hs = h.numpy().astype(npdt, copy=False)
        it = interp.numpy().astype(npdt, copy=False)
        from eosr.evaluation import engine

        if engine.AVAILABLE and use_engine and it.dtype == s_al.dtype == hs.dtype:
            # SR' and the interpolated LR are not needed afterwards: their buffers take two of the maps;
            # the kernel skips non-finite HR and interpolation itself (no validity arrays)
            dmaps, sums = engine.detail_decomposition(s_al, hs, it, v_al, reuse=True)
        else:
            dmaps, sums = detail_decomposition(s_al, hs, it, v_al & np.isfinite(hs) & np.isfinite(it))
        del hs, it
        axes = (0,) if s.ndim == 4 else ()
        tot = {k: (v.sum(axis=axes) if axes else v) for k, v in sums.items()}
        truth = tot["truth"]
        if float(truth.sum()) > 0:
            from eosr.metrics.hallucination import HALLUCINATION, IMPROVEMENT, OMISSION

            for minfo in (HALLUCINATION, OMISSION, IMPROVEMENT):
                part = tot[minfo.name]
                pb = np.where(truth > 0, part / np.maximum(truth, 1e-300), np.nan)
                out[minfo.name] = MetricResult(minfo, float(part.sum() / truth.sum()), pb,
                                              {"compensated": True, "lr_simulated": lr_simulated})
        else:
            skipped["hallucination"] = "HR equals the interpolated LR: no detail to restore"
        for k, dm in dmaps.items():
            keep_map(k, dm)
        del dmaps


def _spectra_valid(v_al: np.ndarray, h: np.ndarray, interp: np.ndarray | None) -> np.ndarray | None:
    """The pixels valid for both FRR (SR', HR, interpolated LR) and the FRC (SR', HR): ``v_al`` (the
    shift's, the mask's and SR''s) and HR's finite ones; None when the interpolated LR has a gap of its
    own there (FRR and the FRC would fill different pixels: no shared spectrum)."""
    fv = v_al if all_finite(h) else v_al & np.isfinite(h)
    if interp is not None and not all_finite(interp) and bool((fv & ~np.isfinite(interp)).any()):
        return None
    return fv


def _align_items(s: torch.Tensor, h: torch.Tensor, m: torch.Tensor | None,
                 dtype: torch.dtype) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """(alignments, SR' = (shift^-1(SR) - bias) / gain, its validity): one alignment per batch item."""
    from eosr.metrics import registration

    items = [(s, h, m)] if s.ndim == 3 else [(s[i], h[i], None if m is None else m[i]) for i in range(s.shape[0])]
    npdt = np.float64 if dtype == torch.float64 else np.float32  # float32 above FLOAT64_LIMIT (memory)
    als: list[Any] = []
    comp: list[np.ndarray] = []
    cvalid: list[np.ndarray] = []
    for si, hi, mi in items:  # estimate and compensate with one Fourier shift per item
        o, ok, al = registration.align(si.numpy(), hi.numpy(), mask=None if mi is None else mi.numpy())
        als.append(al)
        comp.append(o.astype(npdt, copy=False))
        cvalid.append(ok)
        del o
    s_al = np.stack(comp) if s.ndim == 4 else comp[0]
    v_al = np.stack(cvalid) if s.ndim == 4 else cvalid[0]
    return als, s_al, v_al


def _affine_of(als: Sequence[Any], c: int) -> list[np.ndarray | None]:
    """Per item: (C, 2) (a, b) with SR' = a SR + b per band when the alignment did not resample (shift
    below ``registration.MIN_SHIFT``: SR' is SR compensated for gain and bias only, as
    ``registration._radiometric``), else None."""
    from eosr.metrics.registration import MIN_SHIFT

    out: list[np.ndarray | None] = []
    for al in als:
        if abs(al.shift_y) >= MIN_SHIFT or abs(al.shift_x) >= MIN_SHIFT:
            out.append(None)
            continue
        ab = np.empty((c, 2))
        for k in range(c):
            g, b = float(al.gain[k]), float(al.bias[k])
            if not math.isfinite(b):
                ab[k] = (1.0, 0.0)
            elif math.isfinite(g) and abs(g) > 1e-6:
                ab[k] = (1.0 / g, -b / g)
            else:
                ab[k] = (1.0, -b)
        out.append(ab)
    return out


def _fused_hr(s: np.ndarray, h: np.ndarray, s_al: np.ndarray | None, data_range: float, scale: int | None,
              err_map: bool, ssim_needed: bool, sam_needed: bool = True,
              affine: Sequence[np.ndarray | None] | None = None,
              ) -> tuple[dict[str, MetricResult], dict[str, MetricResult], np.ndarray | None, np.ndarray | None,
                         bool] | None:
    """The HR-side metrics of (B, C, H, W) inputs by the fused engine (:mod:`eosr.evaluation.engine`).

    Returns ``(raw, aligned, error map, SSIM map, complete)``: ``raw`` psnr, rmse, mae, sam_deg, ergas
    (with ``scale``) and, when ``ssim_needed``, ssim and uiqi; ``aligned`` psnr, rmse, mae, ssim of
    ``s_al`` (SR' valid wherever finite, or None); the SSIM map's 5-pixel border is not written.
    Nodata (NaN or inf in SR or HR; ``complete`` False) is left out as the reference path leaves it out:
    pixels where either is not finite, spectral angles where a band is not, SSIM windows touching such a
    pixel (NaN in the map). None when a band has no valid pixel or window: the caller takes the
    reference path (:mod:`eosr.metrics.standard`), which says so. ``affine`` (per item,
    :func:`_affine_of`): where SR' = a SR + b per band, SSIM(SR', HR) comes from SR's window moments
    (mean a mu + b, variance a^2 var, covariance a cov) in the same pass, without filtering SR'.
    """
    from eosr.evaluation import engine as E
    from eosr.metrics import standard as S

    b, c, hh, ww = s.shape
    err = np.empty(s.shape, dtype=s.dtype) if err_map else None
    band = np.zeros((c, 4))
    sam = np.zeros(3)
    for i in range(b):
        bb, ss = E.pointwise(s[i], h[i], None if err is None else err[i], sam=sam_needed)
        band += bb
        sam += ss
    n_pix = b * hh * ww
    complete = bool((band[:, 3] == n_pix).all())
    if not (band[:, 3] > 0).all():
        return None  # a band without any valid pixel: the reference path says so

    raw = _error_results(band, data_range)
    if sam_needed:
        raw["sam_deg"] = MetricResult(S.SAM, math.degrees(sam[0] / sam[1]), np.zeros(0),
                                      {"n_valid": int(sam[1]), "n_zero_vector": int(sam[2])})
    if scale is not None:
        mse_b, mu_b = band[:, 0] / band[:, 3], band[:, 2] / band[:, 3]
        with np.errstate(divide="ignore"):
            rel2 = mse_b / mu_b**2
        raw["ergas"] = MetricResult(S.ERGAS, float(100.0 / scale * math.sqrt(rel2.mean())),
                                    100.0 / scale * np.sqrt(rel2), {"n_valid": int(band[:, 3].sum()),
                                                                    "scale": float(scale)})
    aligned: dict[str, MetricResult] = {}
    if s_al is not None:
        band_al = np.zeros((c, 4))
        for i in range(b):
            band_al += E.pointwise(s_al[i], h[i], sam=False)[0]
        if (band_al[:, 3] > 0).all():
            aligned = _error_results(band_al, data_range)
        else:
            s_al = None
    smap = None
    if (ssim_needed or s_al is not None) and min(hh, ww) >= 11:
        smap = np.empty(s.shape, dtype=s.dtype)  # (the strata read its valid centres only: no memset)
        sums = np.zeros((c, 5))
        for i in range(b):
            for k in range(c):
                ab = affine[i] if affine is not None and s_al is not None else None
                st = E.ssim_uiqi_planes(s[i, k], h[i, k], None if s_al is None or ab is not None else s_al[i, k],
                                        data_range, smap[i, k],
                                        affine=None if ab is None else (float(ab[k, 0]), float(ab[k, 1])),
                                        masked=not complete)
                sums[k] += st
        if not (sums[:, 3] > 0).all() or (s_al is not None and not (sums[:, 4] > 0).all()):
            return None  # no window on valid pixels in a band: the reference path says so
        raw["ssim"] = window_mean(S.SSIM, sums[:, 0], sums[:, 3])
        raw["uiqi"] = window_mean(S.UIQI, sums[:, 1], sums[:, 3])
        if s_al is not None:
            aligned["ssim"] = window_mean(S.SSIM, sums[:, 2], sums[:, 4])
    return raw, aligned, err, smap, complete


def _error_results(bs: np.ndarray, data_range: float) -> dict[str, MetricResult]:
    """PSNR, RMSE and MAE from per-band sums ``bs`` (C, >= 4): sum err^2, sum |err|, (unused), count."""
    from eosr.metrics import standard as S
    from eosr.metrics.base import psnr_capped, psnr_db

    n_valid = {"n_valid": int(bs[:, 3].sum())}
    mse_b = bs[:, 0] / bs[:, 3]
    mse = bs[:, 0].sum() / bs[:, 3].sum()
    pb, pv = psnr_db(mse_b, data_range), psnr_db(float(mse), data_range)
    extra: dict[str, Any] = dict(n_valid)
    if psnr_capped(pb) or psnr_capped(pv):
        extra["capped"] = True
    return {"psnr": MetricResult(S.PSNR, float(pv), pb, extra),
            "rmse": MetricResult(S.RMSE, math.sqrt(mse), np.sqrt(mse_b), dict(n_valid)),
            "mae": MetricResult(S.MAE, float(bs[:, 1].sum() / bs[:, 3].sum()), bs[:, 1] / bs[:, 3], dict(n_valid))}


def _valid_box(v: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding rectangle of the True pixels of any band of (C, H, W) ``v`` (the part a shift
    compensation leaves valid), or None when there is none."""
    anyv = np.asarray(v.any(axis=0))
    rows, cols = np.flatnonzero(anyv.any(axis=1)), np.flatnonzero(anyv.any(axis=0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _fused_aligned(s_al: np.ndarray, h: np.ndarray, v_al: np.ndarray, data_range: float,
                   want_ssim: bool) -> dict[str, MetricResult]:
    """psnr, rmse, mae (and ssim) of SR' against HR over the valid pixels ``v_al`` by the fused engine:
    per item, the crop to the valid pixels' bounding rectangle (the shift's border cut off), the invalid
    pixels inside it set to NaN in SR''s crop (a copy), which the engine leaves out as the reference
    path's masked metrics do (:func:`eosr.metrics.standard.pixel_errors`, and SSIM over the windows lying
    on valid pixels). ``{}`` when a crop is under the 11-px window (the caller takes the reference path)."""
    from eosr.evaluation import engine as E
    from eosr.metrics import standard as S

    s4, h4, v4 = (x if x.ndim == 4 else x[None] for x in (s_al, h, v_al))
    boxes = [_valid_box(v) for v in v4]
    if any(bx is None or min(bx[0].stop - bx[0].start, bx[1].stop - bx[1].start) < 11 for bx in boxes):
        return {}
    c = s4.shape[1]
    band, ssim = np.zeros((c, 4)), np.zeros((c, 5))
    for i, bx in enumerate(boxes):
        assert bx is not None
        for k in range(c):  # contiguous crops, one plane at a time (the compiled kernels' layout)
            ha = np.ascontiguousarray(h4[i, k, bx[0], bx[1]])
            vk = v4[i, k, bx[0], bx[1]]
            sa = np.array(s4[i, k, bx[0], bx[1]], order="C")  # (a copy: nodata written into it)
            if not vk.all():
                sa[~vk] = np.nan
            pw = E.pointwise(sa[None], ha[None], sam=False)[0][0]
            band[k] += pw
            if want_ssim:
                ssim[k] += E.ssim_uiqi_planes(sa, ha, None, data_range, np.empty_like(sa),
                                              masked=pw[3] < sa.size)
    if not (band[:, 3] > 0).all() or (want_ssim and not (ssim[:, 3] > 0).all()):
        return {}  # a band without valid pixels or windows: the reference path says so
    out = _error_results(band, data_range)
    if want_ssim:
        out["ssim"] = window_mean(S.SSIM, ssim[:, 0], ssim[:, 3])
    return out


def _fused_lr(s: torch.Tensor, lo: torch.Tensor, op: Any, data_range: float, sam: bool
              ) -> tuple[dict[str, MetricResult], np.ndarray] | None:
    """LR fidelity (L1, L2) and SAM(D(SR), LR) of fully valid inputs by the fused engine: D(SR) by one
    compiled separable pass per band, then one pointwise pass for the residual LR - D(SR) (map), its
    sums and the spectral angles, as :func:`eosr.metrics.fidelity.lr_fidelity_metrics` and
    :func:`eosr.metrics.standard.sam`. Returns ``(results, residual map)``, or None (explicit PSF
    kernels, or nodata anywhere: the caller takes the reference path)."""
    from eosr.evaluation import engine as E
    from eosr.metrics import fidelity
    from eosr.metrics import standard as S

    taps = op.separable_taps(s.shape[-3])
    if taps is None:
        return None
    s4, l4 = (t.numpy() if t.ndim == 4 else t.numpy()[None] for t in (s, lo))
    d = E.separable_correlate(s4, taps[0], taps[1], op.scale)
    res = np.empty(l4.shape, dtype=np.result_type(l4.dtype, d.dtype))
    band, sams = np.zeros((l4.shape[1], 4)), np.zeros(3)
    for i in range(l4.shape[0]):
        bb, ss = E.pointwise(l4[i], d[i], res[i], sam=sam)  # residual LR - D(SR); angle(LR, D(SR))
        band += bb
        sams += ss
    del d
    n_all = l4.shape[0] * l4.shape[2] * l4.shape[3]
    if not (band[:, 3] == n_all).all() or (sam and sams[1] != n_all):
        return None
    extra = {"n_valid": int(band[:, 3].sum()), "data_range": float(data_range), "operator": op.description}
    out = fidelity.l1_l2_from_sums(fidelity.LR_FIDELITY, fidelity.LR_FIDELITY_L2, band[:, 1], band[:, 0],
                                   band[:, 3], extra)
    if sam:
        sres = MetricResult(S.SAM, math.degrees(sams[0] / sams[1]), np.zeros(0),
                            {"n_valid": int(sams[1]), "n_zero_vector": int(sams[2])})
        out["sam_lr_deg"] = _renamed(sres, "sam_lr_deg", "; spectral consistency SAM(D(SR), LR)")
    return out, (res if lo.ndim == 4 else res[0])


def _fused_hr_fidelity(s: torch.Tensor, h: torch.Tensor, op: Any, data_range: float, m: torch.Tensor | None = None
                       ) -> tuple[dict[str, MetricResult], np.ndarray] | None:
    """HR fidelity (L1, L2) and its map hp(SR - HR) by the fused engine, as
    :func:`eosr.metrics.fidelity.hr_fidelity_metrics`: one compiled horizontal and vertical pass per band;
    with NaN, the operator's blur with nodata (:meth:`eosr.degrade.Degradation.blur`: normalised over the
    valid pixels, NaN where its support touches a NaN) from three separable passes. The mask's pixels
    enter their neighbours' low-pass and are left out themselves (NaN in the map). None for explicit PSF
    kernels or a band without a valid pixel (the caller takes the reference path, which says so)."""
    from eosr.evaluation import engine as E
    from eosr.metrics import fidelity

    taps = op.separable_taps(s.shape[-3], blur=True)
    if taps is None:
        return None
    ky, kx = taps
    s4, h4 = (t.numpy() if t.ndim == 4 else t.numpy()[None] for t in (s, h))
    hp, sums = E.high_pass_difference(s4, h4, ky, kx)
    complete = bool((sums[:, 2] == s4.shape[0] * s4.shape[2] * s4.shape[3]).all())
    if not complete:  # nodata: NaN spreads as the operator's blur spreads it (inf: below)
        d = s4 - h4
        nan = np.isnan(d)
        if nan.any():
            one = np.array(1, dtype=d.dtype)
            np.copyto(hp, d)
            hp[nan] = 0
            low = E.separable_correlate(hp, ky, kx)
            low /= np.maximum(E.separable_correlate(np.where(nan, 0, one), ky, kx), 1e-12)
            thr = op.support_threshold
            sy, sx = ((k >= thr * k.max(axis=1, keepdims=True)).astype(k.dtype) for k in (ky, kx))
            low[E.separable_correlate(np.where(nan, one, 0), sy, sx) > 0.5] = np.nan
            with np.errstate(invalid="ignore"):  # (inf - inf next to an infinite input: NaN, left out)
                np.subtract(d, low, out=hp)
            del low
        del d, nan
    if m is not None:
        hp[~(m.numpy() if s.ndim == 4 else m.numpy()[None])] = np.nan
    if m is not None or not complete:  # sums over the finite values; inf (an infinite input's) NaN in the map
        hp[np.isinf(hp)] = np.nan
        a = np.abs(hp, dtype=np.float64)
        sums = np.stack([np.nansum(a, axis=(0, 2, 3)), np.nansum(a * a, axis=(0, 2, 3)),
                         np.isfinite(a).sum(axis=(0, 2, 3)).astype(np.float64)], axis=1)
        del a
    n = sums[:, 2]
    if not (n > 0).all():
        return None
    extra = {"n_valid": int(n.sum()), "data_range": float(data_range), "operator": op.description}
    out = fidelity.l1_l2_from_sums(fidelity.HR_FIDELITY, fidelity.HR_FIDELITY_L2, sums[:, 0], sums[:, 1], n, extra)
    return out, (hp if s.ndim == 4 else hp[0])


def _fused_strata(s: np.ndarray, h: np.ndarray, smap: np.ndarray | None, base: tuple[str, ...],
                  data_range: float, grad_hr: np.ndarray | None = None) -> dict[str, MetricResult]:
    """:func:`eosr.metrics.stratified.stratified_metrics` (q50 / q90, ``skip_empty``) of (B, C, H, W)
    inputs from the fused engine's one pass (same names, values and extras). Nodata: ``grad_hr`` is HR
    with NaN where the strata leave pixels out (:func:`eosr.evaluation.engine.gradient_strata_sums`)."""
    from eosr.evaluation import engine as E
    from eosr.metrics import standard as S
    from eosr.metrics.base import psnr_capped, psnr_db
    from eosr.metrics.stratified import _stratum_info

    quantiles = (0.5, 0.9)
    sums, lo, hi = E.gradient_strata_sums(s, h, smap if "ssim" in base else None, quantiles, grad_hr)
    res: dict[str, MetricResult] = {}
    for m in base:
        for k, name in enumerate(("low", "high")):
            st = sums[:, k]
            n_pix = int(st[0, 5])
            if n_pix == 0:
                continue
            extra = {"n_pixels": n_pix, "threshold": lo if k == 0 else hi, "quantile": quantiles[k]}
            if m == "ssim":
                if smap is None or st[:, 4].sum() == 0:
                    continue
                r = MetricResult(S.SSIM, float(st[:, 3].sum() / st[:, 4].sum()), st[:, 3] / st[:, 4],
                                 {"n_valid": int(st[:, 4].sum())})
            elif m == "mae":
                r = MetricResult(S.MAE, float(st[:, 1].sum() / st[:, 2].sum()), st[:, 1] / st[:, 2],
                                 {"n_valid": int(st[:, 2].sum())})
            else:
                mse_b, mse = st[:, 0] / st[:, 2], float(st[:, 0].sum() / st[:, 2].sum())
                if m == "rmse":
                    r = MetricResult(S.RMSE, math.sqrt(mse), np.sqrt(mse_b), {"n_valid": int(st[:, 2].sum())})
                else:
                    pb, pv = psnr_db(mse_b, data_range), psnr_db(mse, data_range)
                    ex: dict[str, Any] = {"n_valid": int(st[:, 2].sum())}
                    if psnr_capped(pb) or psnr_capped(pv):
                        ex["capped"] = True
                    r = MetricResult(S.PSNR, float(pv), pb, ex)
            info = _stratum_info(r.info, name)
            res[info.name] = MetricResult(info, r.value, r.per_band, dict(r.extra, **extra))
    return res


UNCERTAINTY_INFO = {
    "uncertainty_coverage_90": MetricInfo(
        "uncertainty_coverage_90", None, (0.0, 1.0), differentiable=False,
        source="share of |SR - HR| inside the central 90 % Gaussian interval z_0.95 * std (ideal 0.9)"),
    "uncertainty_spearman": MetricInfo(
        "uncertainty_spearman", True, (-1.0, 1.0), differentiable=False,
        source="Spearman rank correlation of |SR - HR| and std"),
    "uncertainty_ause": MetricInfo(
        "uncertainty_ause", False, (0.0, math.inf), differentiable=False,
        source="area under sparsification error (MAE), Ilg et al., ECCV 2018"),
    "uncertainty_mean_std": MetricInfo(
        "uncertainty_mean_std", None, (0.0, math.inf), differentiable=False, unit="reflectance",
        source="mean predicted std"),
}


def uncertainty_metrics(sr: torch.Tensor, hr: torch.Tensor, std: torch.Tensor,
                        mask: torch.Tensor | None = None) -> list[MetricResult]:
    """Calibration of a predictive std map against the true error, pooled and per band.

    coverage_90 = mean(|SR - HR| <= 1.645 std) (a calibrated map gives 0.9), Spearman rho(|SR - HR|, std)
    (> 0: the map ranks errors), AUSE of the MAE sparsification curve (Ilg et al., ECCV 2018; 0 = oracle
    ranking), and the mean std. Pixels where any input is NaN or ``mask`` is False are ignored.
    """
    from eosr.trust.calibration import coverage, sparsification, spearman

    err = (sr - hr).numpy().astype(np.float64)
    u = std.numpy().astype(np.float64)
    ok = np.isfinite(err) & np.isfinite(u)
    if mask is not None:
        ok &= np.broadcast_to(mask.numpy(), ok.shape)
    if not ok.any():
        raise ShapeError("the uncertainty map has no valid pixel where SR and HR are valid")
    band_axis = err.ndim - 3
    fns = {
        "uncertainty_coverage_90": lambda e, s, k: coverage(e, s, 0.9, "gaussian", k),
        "uncertainty_spearman": lambda e, s, k: spearman(np.abs(e), s, k),
        "uncertainty_ause": lambda e, s, k: sparsification(np.abs(e), s, k).ause,
        "uncertainty_mean_std": lambda e, s, k: float(s[k].mean()),
    }
    out = []
    for name, fn in fns.items():
        per_band = []
        for b in range(err.shape[band_axis]):
            eb, ub, kb = (np.take(a, b, axis=band_axis) for a in (err, u, ok))
            per_band.append(fn(eb, ub, kb) if kb.any() else math.nan)
        out.append(MetricResult(UNCERTAINTY_INFO[name], float(fn(err, u, ok)), np.asarray(per_band),
                                {"n_valid": int(ok.sum())}))
    return out
