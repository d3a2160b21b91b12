"""The result of :func:`eosr.evaluate`: metrics, per-pixel maps, strict JSON, a table and GeoTIFF maps."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eosr.metrics.base import MetricResult, json_float

#: Order of the main metrics in tables (others follow alphabetically).
TABLE_ORDER = (
    "psnr", "rmse", "mae", "ssim", "sam_deg", "ergas", "uiqi", "lr_fidelity", "hr_fidelity",
    "psnr_low_gradient", "psnr_high_gradient", "rmse_low_gradient", "rmse_high_gradient", "frr",
    "effective_resolution_px", "shift_x_px", "shift_y_px", "gain", "bias", "hallucination", "omission",
    "improvement", "psnr_aligned", "rmse_aligned", "mae_aligned", "ssim_aligned",
)

#: Maps on the LR grid (all others are on the HR / SR grid).
LR_GRID_MAPS = ("lr_residual",)


@dataclass
class EvaluationResult:
    """Everything :func:`eosr.evaluate` computed.

    ``metrics``: name -> :class:`MetricResult` (floats / NumPy arrays; PSNR of a perfect match is
    ``inf`` here and capped with a flag in :meth:`to_dict`). ``maps``: name -> float32 array shaped
    like the SR (``lr_residual`` on the LR grid), NaN where invalid. ``info``: what was used
    (operator, scale, which inputs, whether the LR was simulated).
    """

    metrics: dict[str, MetricResult]
    maps: dict[str, np.ndarray]
    bands: list[str]
    data_range: float
    operator: dict[str, Any] | None
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> MetricResult:
        return self.metrics[name]

    def __contains__(self, name: object) -> bool:
        return name in self.metrics

    def value(self, name: str) -> float:
        """The aggregate value of metric ``name`` as a float."""
        return float(self.metrics[name].value)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict: ``{"metrics": {name: {"value", "per_band", ...}}, "bands", "data_range",
        "operator", "eosr_version", ...}``. A metric whose value is not finite (other than a capped
        perfect PSNR) is omitted."""
        from eosr import __version__

        metrics: dict[str, Any] = {}
        for name, r in self.metrics.items():
            v, _ = json_float(r.value, name)
            if v is None:
                continue
            metrics[name] = r.to_dict()
        return {
            "metrics": metrics,
            "bands": list(self.bands),
            "data_range": float(self.data_range),
            "operator": self.operator,
            "eosr_version": __version__,
            **{k: v for k, v in self.info.items() if k not in ("metrics", "bands", "data_range", "operator")},
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The strict JSON text (``allow_nan=False``); written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            from eosr.io.raster import atomic_path

            with atomic_path(path) as tmp:
                Path(tmp).write_text(text + "\n")
        return text

    def table(self, digits: int = 4) -> str:
        """A compact text table: metric, value, per-band values (bands in ``bands`` order)."""
        names = [n for n in TABLE_ORDER if n in self.metrics]
        names += sorted(n for n in self.metrics if n not in TABLE_ORDER)
        head = ["metric", "value", *self.bands]
        rows = [head]
        for n in names:
            r = self.metrics[n]
            pb = np.asarray(r.per_band, dtype=np.float64).ravel()
            cells = [_fmt(float(r.value), digits)] + [_fmt(float(x), digits) for x in pb]
            if len(pb) != len(self.bands):
                cells = cells[:1] + [""] * len(self.bands)
            rows.append([n, *cells])
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                 for row in rows]
        return "\n".join(lines)

    def write_maps(
        self, folder: str | os.PathLike[str], *, crs: Any = None, transform: Any = None, prefix: str = ""
    ) -> list[Path]:
        """Write every map as a float32 GeoTIFF ``<folder>/<prefix><name>.tif`` (band descriptions =
        ``bands``; NaN = nodata) on the SR grid given by ``crs`` and ``transform`` (LR-grid maps get
        the LR transform: same origin, pixel size x scale). Without a transform the rasters carry
        an identity geotransform."""
        from affine import Affine

        from eosr.errors import DataError
        from eosr.io.raster import lr_transform, write_raster

        d = Path(folder)
        if d.exists() and not d.is_dir():
            raise DataError(f"--maps must be a folder, got a file: {d}")
        d.mkdir(parents=True, exist_ok=True)
        t = transform if transform is not None else Affine.identity()
        out = []
        for name, arr in self.maps.items():
            a = np.asarray(arr, dtype=np.float32)
            if a.ndim == 4:
                if a.shape[0] != 1:
                    raise DataError("maps of a batch cannot be written as one GeoTIFF; evaluate items one by one")
                a = a[0]
            tr = lr_transform(t, int(self.info.get("scale") or 1)) if name in LR_GRID_MAPS else t
            p = d / f"{prefix}{name}.tif"
            write_raster(p, a, crs=crs, transform=tr, band_names=self.bands[: a.shape[0]], dtype="float32",
                         tags={"eosr_map": name})
            out.append(p)
        return out


def _fmt(v: float, digits: int) -> str:
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** (-digits)):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}f}"
