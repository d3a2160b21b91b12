"""Evaluate rasters on disk: ``eosr evaluate``'s Python twin, whole image or window by window.

:func:`evaluate_files` checks the grids (SR and HR share CRS, transform and size; LR has the same
origin and an integer multiple of the pixel size, GDAL pixel-is-area), then

- **whole image** (default up to :data:`WHOLE_LIMIT` values per raster): reads everything and calls
  :func:`eosr.evaluate`, so every metric the inputs allow is computed, maps included;
- **windowed** (larger scenes, or ``windowed=True``): streams blocks and pools exact sums, so the
  pixel metrics (PSNR, RMSE, MAE, SAM, ERGAS; :class:`eosr.scene.aggregate.PixelStats`) and the LR
  fidelity (L1, L2: mean |LR - D(SR)| with D applied to each SR block plus a halo that covers the PSF)
  equal the whole-image values to float error, with memory bounded by the block size. Windowed
  (SSIM, UIQI), spectral and registration metrics need the whole image and are listed as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from eosr.errors import DataError, GeoError, ScaleError, ShapeError

#: Above this many values (bands x rows x columns) per raster, :func:`evaluate_files` goes windowed.
WHOLE_LIMIT = 4 * 2048 * 2048

PathLike = str | os.PathLike[str]


def _grid(path: PathLike) -> Any:
    from eosr.scene.source import open_source

    return open_source(path)


def _same_grid(a: Any, b: Any, names: tuple[str, str]) -> None:
    if (a.count, a.height, a.width) != (b.count, b.height, b.width):
        raise ShapeError(f"{names[0]} {a.count}x{a.height}x{a.width} and {names[1]} {b.count}x{b.height}x{b.width} "
                         "differ in bands or size")
    if a.crs != b.crs:
        raise GeoError(f"{names[0]} and {names[1]}: CRS mismatch ({a.crs} vs {b.crs})")
    if not a.transform.almost_equals(b.transform):
        raise GeoError(f"{names[0]} and {names[1]} lie on different grids: {tuple(a.transform)[:6]} vs "
                       f"{tuple(b.transform)[:6]}")


def _lr_scale(sr: Any, lr: Any, scale: Any) -> int:
    """Scale of LR against the SR grid from the transforms: integer, same origin, same footprint."""
    from eosr.io.raster import check_grids

    if lr.count != sr.count:
        raise ShapeError(f"LR has {lr.count} bands, SR {sr.count}")
    return check_grids(sr, lr, scale, names=("SR", "LR"))


def evaluate_files(
    sr: PathLike,
    hr: PathLike | None = None,
    lr: PathLike | None = None,
    *,
    sensor: Any = None,
    bands: Sequence[str] | str | None = None,
    scale: int | None = None,
    mask: PathLike | None = None,
    uncertainty: PathLike | None = None,
    data_range: float = 1.0,
    noise_sigma: float | None = None,
    lpips_weights: str | None = None,
    maps_dir: PathLike | None = None,
    windowed: bool | None = None,
    block: int = 1024,
) -> Any:
    """Evaluate an SR GeoTIFF against an optional HR (same grid) and LR (coarser by an integer r).

    Files are read as reflectance (DN scale from the file metadata, 1e-4 for integers; NaN and the
    file's nodata value = nodata). ``bands`` names the files' bands in order (for the sensor
    operator); ``mask`` is a raster on the SR grid, non-zero = valid. ``maps_dir`` receives the
    per-pixel maps as GeoTIFF on the SR grid (the LR residual on the LR grid). Returns an
    :class:`eosr.evaluation.EvaluationResult`; bad input raises a one-line :class:`eosr.errors.EosrError`.
    """
    from eosr.evaluation import evaluate

    if hr is None and lr is None:
        raise DataError("give HR, LR or both to evaluate SR against")
    g_sr = _grid(sr)
    g_hr = _grid(hr) if hr is not None else None
    g_lr = _grid(lr) if lr is not None else None
    try:
        if g_hr is not None:
            _same_grid(g_sr, g_hr, ("SR", "HR"))
        r = _lr_scale(g_sr, g_lr, scale) if g_lr is not None else scale
        names = None
        if bands is not None:
            names = [b.strip() for b in bands.split(",") if b.strip()] if isinstance(bands, str) else list(bands)
            if len(names) != g_sr.count:
                raise ShapeError(f"{len(names)} band names for rasters of {g_sr.count} bands")
        n_values = g_sr.count * g_sr.height * g_sr.width
        if windowed is None:
            windowed = n_values > WHOLE_LIMIT
        if windowed:
            if maps_dir is not None or uncertainty is not None or lpips_weights is not None:
                raise DataError("maps, uncertainty and LPIPS need the whole image: pass windowed=False "
                                f"(this scene has {n_values} values)")
            return _windowed(g_sr, g_hr, g_lr, sensor=sensor, bands=names, scale=r, mask=mask, data_range=data_range,
                             block=block)
    finally:
        for g in (g_sr, g_hr, g_lr):
            if g is not None:
                g.close()

    from eosr.io.raster import read_raster

    s = read_raster(sr)
    h = read_raster(hr).data if hr is not None else None
    lo = read_raster(lr).data if lr is not None else None
    m = _read_mask(mask, s.data.shape[-2:]) if mask is not None else None
    u = read_raster(uncertainty).data if uncertainty is not None else None
    if names is None and sensor is not None:
        names = [n for n in s.band_names]
    res = evaluate(s.data, h, lo, sensor=sensor, bands=names, scale=r, mask=m, data_range=data_range,
                   noise_sigma=noise_sigma, lpips_weights=lpips_weights, uncertainty=u, maps=maps_dir is not None)
    res.info["files"] = {"sr": str(sr), "hr": None if hr is None else str(hr), "lr": None if lr is None else str(lr)}
    res.info["aggregation"] = "whole image"
    if maps_dir is not None:
        res.write_maps(maps_dir, crs=s.crs, transform=s.transform)
    return res


def _read_mask(path: PathLike, shape: tuple[int, ...], window: Any = None) -> np.ndarray:
    from eosr.io.raster import read_raster

    a = read_raster(path, window=window, dn_scale=1.0, dn_offset=0.0).data
    if a.shape[-2:] != tuple(shape):
        raise ShapeError(f"mask {a.shape[-2:]} is not on the SR grid {tuple(shape)}")
    ok = np.isfinite(a) & (a != 0)
    return ok[0] if ok.shape[0] == 1 else ok


def _windowed(g_sr: Any, g_hr: Any, g_lr: Any, *, sensor: Any, bands: list[str] | None, scale: int | None,
              mask: PathLike | None, data_range: float, block: int) -> Any:
    """Pooled pixel metrics and LR fidelity block by block (see the module docstring)."""
    from eosr.evaluation.result import EvaluationResult
    from eosr.metrics.base import MetricResult
    from eosr.metrics.fidelity import LR_FIDELITY, LR_FIDELITY_L2
    from eosr.scene.aggregate import PixelStats, blocks
    from eosr.scene.simulate import build_operator, psf_halo_lr

    if block < 1:
        raise ScaleError(f"block must be >= 1 pixel, got {block}")
    metrics: dict[str, Any] = {}
    skipped = {k: "needs the whole image (windowed evaluation)" for k in
               ("ssim", "uiqi", "hr_fidelity", "frr", "shift_x_px", "hallucination")}
    if g_hr is not None:
        st = PixelStats(g_sr.count)
        for win in blocks(g_sr.height, g_sr.width, block):
            m = _read_mask(mask, (win[1] - win[0], win[3] - win[2]), _rio_window(win)) if mask is not None else None
            st.update(g_sr.read(win), g_hr.read(win), m)
        metrics.update(st.results(data_range=data_range, scale=scale))
    op = None
    if g_lr is not None and scale is not None and (sensor is not None):
        op = build_operator(sensor, bands, scale, g_sr.count)
        r = op.scale
        halo = psf_halo_lr(op)
        n = np.zeros(g_sr.count, np.int64)
        s1 = np.zeros(g_sr.count)
        s2 = np.zeros(g_sr.count)
        for y0, y1, x0, x1 in blocks(g_lr.height, g_lr.width, max(1, block // r)):
            wy0, wy1 = max(0, y0 - halo), min(g_lr.height, y1 + halo)
            wx0, wx1 = max(0, x0 - halo), min(g_lr.width, x1 + halo)
            srb = g_sr.read((wy0 * r, wy1 * r, wx0 * r, wx1 * r)).astype(np.float64)
            d = np.asarray(op.downsample(srb))[:, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
            diff = g_lr.read((y0, y1, x0, x1)).astype(np.float64) - d
            ok = np.isfinite(diff)
            diff = np.where(ok, diff, 0.0)
            n += ok.sum(axis=(1, 2))
            s1 += np.abs(diff).sum(axis=(1, 2))
            s2 += (diff * diff).sum(axis=(1, 2))
        if n.sum() == 0:
            raise DataError("no LR pixel is valid where D(SR) is valid")
        with np.errstate(divide="ignore", invalid="ignore"):
            metrics["lr_fidelity"] = MetricResult(LR_FIDELITY, float(s1.sum() / n.sum()), s1 / n,
                                                  {"n_valid": int(n.sum()), "aggregation": "pooled over tiles"})
            metrics["lr_fidelity_l2"] = MetricResult(LR_FIDELITY_L2, float(np.sqrt(s2.sum() / n.sum())),
                                                     np.sqrt(s2 / n), {"n_valid": int(n.sum())})
    elif g_lr is not None:
        skipped["lr_fidelity"] = "needs an operator (sensor and bands)"
    info = {"scale": scale, "inputs": {"sr": True, "hr": g_hr is not None, "lr": g_lr is not None,
                                       "lr_simulated": False},
            "shape": [g_sr.count, g_sr.height, g_sr.width], "aggregation": f"windowed, blocks of {block} px",
            "skipped": skipped,
            "files": {"sr": g_sr.paths[0], "hr": g_hr.paths[0] if g_hr is not None else None,
                      "lr": g_lr.paths[0] if g_lr is not None else None}}
    names = bands if bands is not None else list(g_sr.band_names)
    return EvaluationResult(metrics, {}, list(names), float(data_range), op.describe() if op is not None else None,
                            info)


def _rio_window(win: tuple[int, int, int, int]) -> Any:
    from rasterio.windows import Window

    y0, y1, x0, x1 = win
    return Window(x0, y0, x1 - x0, y1 - y0)


__all__ = ["WHOLE_LIMIT", "evaluate_files"]
