"""Exact aggregation of pixel metrics over tiles: pooled sums, so a metric over tiles equals the whole image.

Per band b, over the valid pixels P_b (SR and HR finite, mask true), accumulate
n_b = |P_b|, S2_b = sum (SR - HR)^2, S1_b = sum |SR - HR|, M_b = sum HR, and for SAM the sum of the
per-pixel spectral angles A and their count n_A (pixels valid in every band). Then, as in
:mod:`eosr.metrics.standard` (docs/conventions.md#aggregates: values pool all valid pixels of all
bands):

    MSE = sum_b S2_b / sum_b n_b,   PSNR = 10 log10(R^2 / MSE),   RMSE = sqrt(MSE),   MAE = sum S1 / sum n
    ERGAS = 100 / r sqrt(mean_b (S2_b / n_b) / (M_b / n_b)^2)          (Wald 2002)
    SAM = A / n_A in degrees                                            (Kruse et al. 1993)

Sums are kept in float64, so tiles and whole image agree to float error whatever the tiling; unmasked
tiles go through the fused evaluation engine's pointwise pass. Windowed metrics (SSIM, UIQI: see
``eosr.scene.evaluate``) and registration-based ones are not pixel-separable and are not covered here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eosr.errors import GeoError, ShapeError


@dataclass
class PixelStats:
    """Pooled per-band sums of a (SR, HR) pair; :meth:`update` tile by tile, :meth:`merge` across workers."""

    n_bands: int
    n: np.ndarray = field(init=False)
    sse: np.ndarray = field(init=False)
    sae: np.ndarray = field(init=False)
    sum_hr: np.ndarray = field(init=False)
    sam_sum_deg: float = 0.0
    sam_n: int = 0

    def __post_init__(self) -> None:
        self.n = np.zeros(self.n_bands, np.int64)
        self.sse = np.zeros(self.n_bands, np.float64)
        self.sae = np.zeros(self.n_bands, np.float64)
        self.sum_hr = np.zeros(self.n_bands, np.float64)

    def update(self, sr: Any, hr: Any, mask: Any = None) -> PixelStats:
        """Add one tile: ``(C, h, w)`` arrays (NaN = nodata), optional boolean ``mask`` (h, w) or (C, h, w).

        Without a mask the tile takes one pass of the fused evaluation engine (the pointwise kernel of
        :func:`eosr.evaluate`: float64 sums, float32 tiles stay float32), else NumPy in float64.
        """
        from eosr.evaluation import engine
        from eosr.metrics.standard import sam_map

        a, b = np.asarray(sr), np.asarray(hr)
        if a.shape != b.shape or a.ndim != 3 or a.shape[0] != self.n_bands:
            raise ShapeError(f"tiles must be ({self.n_bands}, h, w) and equal; got {a.shape} and {b.shape}")
        if mask is None and engine.AVAILABLE and a.size:
            fl = (np.float32, np.float64)
            a = np.ascontiguousarray(a if a.dtype in fl else a.astype(np.float64))
            b = np.ascontiguousarray(b if b.dtype in fl else b.astype(np.float64))
            band, sams = engine.pointwise(a, b)
            self.n += band[:, 3].astype(np.int64)
            self.sse += band[:, 0]
            self.sae += band[:, 1]
            self.sum_hr += band[:, 2]
            self.sam_sum_deg += math.degrees(float(sams[0]))
            self.sam_n += int(sams[1])
            return self
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        valid = np.isfinite(a) & np.isfinite(b)
        if mask is not None:
            valid &= np.broadcast_to(np.asarray(mask, dtype=bool), a.shape)
        d = np.where(valid, a - b, 0.0)
        self.n += valid.sum(axis=(1, 2))
        self.sse += (d * d).sum(axis=(1, 2))
        self.sae += np.abs(d).sum(axis=(1, 2))
        self.sum_hr += np.where(valid, b, 0.0).sum(axis=(1, 2))
        if valid.all(axis=0).any():
            ang = sam_map(np.where(valid, a, np.nan), np.where(valid, b, np.nan))
            self.sam_sum_deg += float(np.nansum(ang))
            self.sam_n += int(np.isfinite(ang).sum())
        return self

    def merge(self, other: PixelStats) -> PixelStats:
        """Add another accumulator's sums (e.g. from another worker)."""
        self.n += other.n
        self.sse += other.sse
        self.sae += other.sae
        self.sum_hr += other.sum_hr
        self.sam_sum_deg += other.sam_sum_deg
        self.sam_n += other.sam_n
        return self

    def _div(self, num: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.n > 0, num / np.maximum(self.n, 1), np.nan)

    def mse(self) -> tuple[float, np.ndarray]:
        """(pooled MSE, per-band MSE)."""
        return float(self.sse.sum() / max(int(self.n.sum()), 1)) if self.n.sum() else math.nan, self._div(self.sse)

    def psnr(self, data_range: float = 1.0) -> tuple[float, np.ndarray]:
        """PSNR in dB from the pooled MSE, and per band, with eosr's one cap (:func:`eosr.metrics.base.psnr_db`:
        120 dB for a perfect match)."""
        from eosr.metrics.base import psnr_db

        v, pb = self.mse()
        return float(psnr_db(float(v), data_range)), np.asarray(psnr_db(np.asarray(pb, np.float64), data_range))

    def rmse(self) -> tuple[float, np.ndarray]:
        """Pooled and per-band RMSE."""
        v, pb = self.mse()
        return math.sqrt(v), np.sqrt(pb)

    def mae(self) -> tuple[float, np.ndarray]:
        """Pooled and per-band MAE."""
        return float(self.sae.sum() / max(int(self.n.sum()), 1)), self._div(self.sae)

    def ergas(self, scale: float) -> tuple[float, np.ndarray]:
        """ERGAS = 100 / r sqrt(mean_b RMSE_b^2 / mu_b^2), and per band 100 / r RMSE_b / |mu_b|."""
        _, mse_b = self.mse()
        mu = self._div(self.sum_hr)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel2 = mse_b / mu**2
        has = np.isfinite(mse_b)
        return float(100.0 / scale * np.sqrt(rel2[has].mean())), 100.0 / scale * np.sqrt(rel2)

    def sam_deg(self) -> float:
        """Mean spectral angle in degrees over the pixels valid in every band."""
        return self.sam_sum_deg / self.sam_n if self.sam_n else math.nan

    def results(self, *, data_range: float = 1.0, scale: float | None = None) -> dict[str, Any]:
        """The metrics as :class:`eosr.metrics.base.MetricResult` objects keyed by metric name."""
        from eosr.metrics.base import MetricResult
        from eosr.metrics.standard import ERGAS, MAE, PSNR, RMSE, SAM

        extra = {"n_valid": int(self.n.sum()), "aggregation": "pooled over tiles"}
        out = {
            "psnr": _capped(MetricResult(PSNR, *self.psnr(data_range), dict(extra))),
            "rmse": MetricResult(RMSE, *self.rmse(), dict(extra)),
            "mae": MetricResult(MAE, *self.mae(), dict(extra)),
            "sam_deg": MetricResult(SAM, self.sam_deg(), np.zeros(0), {"n_valid": self.sam_n}),
        }
        if scale is not None:
            out["ergas"] = MetricResult(ERGAS, *self.ergas(scale), {**extra, "scale": float(scale)})
        return out


def blocks(height: int, width: int, block: int = 1024) -> Iterator[tuple[int, int, int, int]]:
    """Windows (row0, row1, col0, col1) of at most ``block`` x ``block`` covering an image, row-major."""
    for y in range(0, height, block):
        for x in range(0, width, block):
            yield y, min(height, y + block), x, min(width, x + block)


def windowed_pixel_stats(
    sr_path: str | os.PathLike[str],
    hr_path: str | os.PathLike[str],
    *,
    bands: Sequence[str | int] | None = None,
    block: int = 1024,
) -> PixelStats:
    """Pooled pixel statistics of two rasters on the same grid, read window by window (bounded memory).

    Both are read as reflectance (DN scale from the file metadata, NaN = nodata).
    """
    from eosr.scene.source import open_source

    sr, hr = open_source(sr_path, bands), open_source(hr_path, bands)
    try:
        if (sr.count, sr.height, sr.width) != (hr.count, hr.height, hr.width):
            raise ShapeError(f"SR {sr.count}x{sr.height}x{sr.width} and HR {hr.count}x{hr.height}x{hr.width} differ")
        if sr.crs != hr.crs or not sr.transform.almost_equals(hr.transform):
            raise GeoError(f"SR and HR lie on different grids: {sr.transform} vs {hr.transform}")
        stats = PixelStats(sr.count)
        for win in blocks(sr.height, sr.width, block):
            stats.update(sr.read(win), hr.read(win))
        return stats
    finally:
        sr.close()
        hr.close()


def _capped(r: Any) -> Any:
    """Flag a PSNR at the cap (``extra["capped"]``), as the whole-image metrics do."""
    from eosr.metrics.base import psnr_capped

    if psnr_capped(r.value) or psnr_capped(r.per_band):
        r.extra["capped"] = True
    return r

