"""The result of :func:`eosr.evaluate`: metrics, per-pixel maps, strict JSON, a grouped table, a
pandas DataFrame, an HTML view for notebooks and GeoTIFF maps.

Presentation (docs/metrics.md#reading-the-results): metrics are shown in :data:`GROUPS` order (pixel,
physical fidelity, gradient strata, frequency, registration/radiometry, hallucination, perceptual,
uncertainty, then any other metric alphabetically under "other"), each with its direction (``↑``
higher is better, ``↓`` lower is better, ``—`` a diagnostic with no better direction, from
``MetricInfo.higher_is_better``), its unit (``MetricInfo.unit``) and its per-band values in
``bands`` order. A PSNR-type value at the 120 dB cap prints as ``≥120.0000``; NaN prints ``nan``.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eosr.errors import EosrError
from eosr.metrics.base import PSNR_CAP_DB, MetricResult, json_float

#: Table groups in their stable order, each with its known metrics in order. A metric not listed is
#: placed by :func:`metric_group` (``*_low/high_gradient`` -> gradient strata, ``*_aligned`` ->
#: registration/radiometry, ``uncertainty_*`` -> uncertainty, else "other", alphabetically).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pixel", ("psnr", "rmse", "mae", "ssim", "uiqi", "sam_deg", "ergas")),
    ("physical fidelity", ("lr_fidelity", "lr_fidelity_l2", "lr_fidelity_sigma", "sam_lr_deg", "hr_fidelity",
                           "hr_fidelity_l2")),
    ("gradient strata", ("psnr_low_gradient", "psnr_high_gradient", "rmse_low_gradient", "rmse_high_gradient",
                         "mae_low_gradient", "mae_high_gradient", "ssim_low_gradient", "ssim_high_gradient")),
    ("frequency", ("effective_resolution_px", "frr", "frr_overshoot_db", "frr_undershoot_db", "hf_gain_db",
                   "lf_deviation_db")),
    ("registration/radiometry", ("shift_x_px", "shift_y_px", "gain", "bias", "psnr_aligned", "rmse_aligned",
                                 "mae_aligned", "ssim_aligned")),
    ("hallucination", ("improvement", "hallucination", "omission")),
    ("perceptual", ("lpips", "dists")),
    ("uncertainty", ("uncertainty_coverage_90", "uncertainty_spearman", "uncertainty_ause",
                     "uncertainty_mean_std")),
)
#: Group names in order; metrics no rule places go to "other", last.
GROUP_NAMES: tuple[str, ...] = (*(g for g, _ in GROUPS), "other")
_ORDER = {n: (gi, k) for gi, (_, names) in enumerate(GROUPS) for k, n in enumerate(names)}
_GROUP_INDEX = {g: i for i, g in enumerate(GROUP_NAMES)}
#: Direction symbols: higher is better, lower is better, diagnostic (no better direction).
ARROWS = {True: "↑", False: "↓", None: "—"}
#: Metrics shown in :meth:`EvaluationResult.__repr__` (the first four present).
KEY_METRICS = ("psnr", "ssim", "lr_fidelity", "hallucination", "effective_resolution_px", "frr", "lpips")


def metric_group(name: str) -> str:
    """The table group of metric ``name`` (see :data:`GROUPS`)."""
    if name in _ORDER:
        return GROUPS[_ORDER[name][0]][0]
    if name.endswith(("_low_gradient", "_high_gradient")):
        return "gradient strata"
    if name.endswith("_aligned"):
        return "registration/radiometry"
    if name.startswith("uncertainty_"):
        return "uncertainty"
    if name.startswith(("lpips", "dists")):
        return "perceptual"
    return "other"


def _sort_key(name: str) -> tuple[int, int, str]:
    if name in _ORDER:
        gi, k = _ORDER[name]
        return gi, k, name
    return _GROUP_INDEX[metric_group(name)], 10_000, name


#: Maps on the LR grid (all others are on the HR / SR grid).
LR_GRID_MAPS = ("lr_residual",)


@dataclass(repr=False)
class EvaluationResult:
    """Everything :func:`eosr.evaluate` computed.

    ``metrics``: name -> :class:`MetricResult` (floats / NumPy arrays; every PSNR-type value is
    capped at 120 dB and flagged ``extra["capped"]``). ``maps``: name -> float32 array shaped like
    the SR (``lr_residual`` on the LR grid), NaN where invalid. ``info``: what was used (operator,
    scale, which inputs, whether the LR was simulated, ``skipped`` metrics with the reason).

    Views: :meth:`table` (grouped text, what ``eosr evaluate`` prints), :meth:`to_pandas`,
    :meth:`_repr_html_` (notebooks), :meth:`to_dict` / :meth:`to_json` (strict JSON), :meth:`rows`.
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
        """Strict-JSON dict: ``{"schema_version", "metrics": {name: {"value", "per_band", ...}}, "bands",
        "data_range", "operator", "eosr_version", ...}``, metrics in table order, each with its ``group``;
        ``per_band`` lists values in ``bands`` order. A metric whose value is NaN is omitted."""
        from eosr import __version__
        from eosr._schema import stamped

        metrics: dict[str, Any] = {}
        for name in sorted(self.metrics, key=_sort_key):
            r = self.metrics[name]
            v, _ = json_float(r.value, name)
            if v is None:
                continue
            metrics[name] = {**r.to_dict(), "group": metric_group(name)}
        return stamped({
            "metrics": metrics,
            "bands": list(self.bands),
            "data_range": float(self.data_range),
            "operator": self.operator,
            "eosr_version": __version__,
            **{k: v for k, v in self.info.items() if k not in ("metrics", "bands", "data_range", "operator")},
        })

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The strict JSON text (``allow_nan=False``); written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            from eosr.io.raster import atomic_path

            with atomic_path(path) as tmp:
                Path(tmp).write_text(text + "\n")
        return text

    def rows(self) -> list[dict[str, Any]]:
        """One dict per metric in table order: ``metric``, ``group``, ``better`` (↑ / ↓ / —),
        ``higher_is_better``, ``value`` (float), ``unit``, ``capped`` (at the 120 dB PSNR cap) and
        ``per_band`` ({band: float}, empty when the metric has no value per band)."""
        out = []
        for n in sorted(self.metrics, key=_sort_key):
            r = self.metrics[n]
            v = _float(r.value)
            pb = np.asarray(_np(r.per_band), dtype=np.float64).ravel()
            per_band = {b: float(x) for b, x in zip(self.bands, pb, strict=True)} if len(pb) == len(self.bands) \
                else {}
            hib = r.info.higher_is_better
            out.append({"metric": n, "group": metric_group(n), "better": ARROWS[hib], "higher_is_better": hib,
                        "value": v, "unit": r.info.unit, "capped": bool(r.extra.get("capped", False)),
                        "per_band": per_band})
        return out

    def table(self, digits: int = 4) -> str:
        """The grouped text table ``eosr evaluate`` prints: per group (:data:`GROUPS` order) one line per
        metric with its direction (↑ higher is better, ↓ lower is better, — diagnostic), value, unit
        and per-band values (``bands`` order); metrics the inputs did not allow follow with the reason."""
        head = ["metric", "value", "unit", *self.bands]
        lines: list[list[str] | str] = []
        group = None
        for row in self.rows():
            if row["group"] != group:
                group = row["group"]
                lines.append(group)
            capped = row["capped"]
            pb = row["per_band"]
            cells = [f"  {row['better']} {row['metric']}", _fmt(row["value"], digits, capped), row["unit"]]
            cells += [_fmt(pb[b], digits, capped) if pb else "" for b in self.bands]
            lines.append(cells)
        data = [head] + [ln for ln in lines if isinstance(ln, list)]
        widths = [max(len(c[i]) for c in data) for i in range(len(head))]

        def fmt_row(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        text = [fmt_row(head)] + [fmt_row(ln) if isinstance(ln, list) else ln for ln in lines]
        text.append(f"↑ higher is better, ↓ lower is better, — diagnostic; ≥{PSNR_CAP_DB:g} = at the PSNR cap")
        skipped = self.info.get("skipped") or {}
        text += [f"not computed: {k} ({v})" for k, v in skipped.items()]
        return "\n".join(text)

    def __repr__(self) -> str:
        keys = [k for k in KEY_METRICS if k in self.metrics][:4]
        vals = []
        for k in keys:
            r = self.metrics[k]
            v = _float(r.value)
            unit = f" {r.info.unit}" if r.info.unit else ""
            vals.append(f"{k}{'≥' if r.extra.get('capped') and v >= PSNR_CAP_DB else '='}{v:.4g}{unit}")
        skipped = len(self.info.get("skipped") or {})
        return (f"EvaluationResult({len(self.metrics)} metrics, {len(self.bands)} bands {','.join(self.bands)}"
                + (f"; {', '.join(vals)}" if vals else "") + (f"; {skipped} skipped" if skipped else "") + ")")

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` (pandas is optional): one row per metric in table order,
        columns ``metric``, ``group``, ``better`` (↑ / ↓ / —), ``higher_is_better``, ``value``,
        ``unit``, ``capped``, then one column per band (named as ``bands``; NaN where the metric has
        no per-band value). ``df.attrs`` holds ``bands``, ``data_range`` and ``operator``."""
        try:
            import pandas as pd
        except ImportError:
            raise EosrError("EvaluationResult.to_pandas() needs pandas, which is not installed: "
                            "pip install pandas") from None
        fixed = ["metric", "group", "better", "higher_is_better", "value", "unit", "capped"]
        clash = set(self.bands) & set(fixed)
        if clash:
            raise EosrError(f"band names {sorted(clash)} clash with the table's columns")
        recs = [{**{k: row[k] for k in fixed}, **{b: row["per_band"].get(b, math.nan) for b in self.bands}}
                for row in self.rows()]
        df = pd.DataFrame.from_records(recs, columns=[*fixed, *self.bands])
        df.attrs.update({"bands": list(self.bands), "data_range": float(self.data_range), "operator": self.operator})
        return df

    def _repr_html_(self, digits: int = 4) -> str:
        """A small HTML table for notebooks (groups as header rows; every text escaped)."""
        e = html.escape
        ncol = 4 + len(self.bands)
        cap = (f"eosr evaluation: {len(self.metrics)} metrics, bands {', '.join(self.bands)}, "
               f"data_range {self.data_range:g}")
        out = ['<table class="eosr-evaluation">', f"<caption>{e(cap)}</caption>",
               "<thead><tr><th>metric</th><th></th><th>value</th><th>unit</th>"
               + "".join(f"<th>{e(b)}</th>" for b in self.bands) + "</tr></thead>", "<tbody>"]
        titles = {"↑": "higher is better", "↓": "lower is better", "—": "diagnostic"}
        group = None
        for row in self.rows():
            if row["group"] != group:
                group = row["group"]
                out.append(f'<tr><th colspan="{ncol}" style="text-align:left">{e(group)}</th></tr>')
            capped = row["capped"]
            pb = row["per_band"]
            cells = [f"<td>{e(row['metric'])}</td>",
                     f'<td title="{titles[row["better"]]}">{row["better"]}</td>',
                     f'<td style="text-align:right">{e(_fmt(row["value"], digits, capped))}</td>',
                     f"<td>{e(row['unit'])}</td>"]
            cells += [f'<td style="text-align:right">{e(_fmt(pb[b], digits, capped)) if pb else ""}</td>'
                      for b in self.bands]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        skipped = self.info.get("skipped") or {}
        if skipped:
            out.append("<p>not computed: " + "; ".join(f"{e(k)} ({e(str(v))})" for k, v in skipped.items()) + "</p>")
        return "\n".join(out)

    def write_maps(
        self, folder: str | os.PathLike[str], *, crs: Any = None, transform: Any = None, prefix: str = ""
    ) -> list[Path]:
        """Write every map as a float32 GeoTIFF ``<folder>/<prefix><name>.tif`` (band descriptions =
        ``bands``; NaN = nodata) on the SR grid given by ``crs`` and ``transform`` (LR-grid maps get
        the LR transform: same origin, pixel size x scale). Without a transform the rasters carry
        an identity geotransform. The set is all or nothing: staged beside ``folder``, which it then
        replaces as a whole; a folder holding anything but such maps is refused (docs/conventions.md,
        "Outputs")."""
        from affine import Affine

        from eosr.errors import DataError
        from eosr.io.raster import atomic_folder, lr_transform, write_raster

        d = Path(folder)
        if d.exists() and not d.is_dir():
            raise DataError(f"--maps must be a folder, got a file: {d}")
        t = transform if transform is not None else Affine.identity()
        arrays = {}
        for name, arr in self.maps.items():
            a = np.asarray(arr, dtype=np.float32)
            if a.ndim == 4:
                if a.shape[0] != 1:
                    raise DataError("maps of a batch cannot be written as one GeoTIFF; evaluate items one by one")
                a = a[0]
            arrays[name] = a
        with atomic_folder(d, is_map_file, MAP_SET) as stage:
            for name, a in arrays.items():
                tr = lr_transform(t, int(self.info.get("scale") or 1)) if name in LR_GRID_MAPS else t
                write_raster(stage / f"{prefix}{name}.tif", a, crs=crs, transform=tr,
                             band_names=self.bands[: a.shape[0]], dtype="float32", tags={"eosr_map": name})
        return [d / f"{prefix}{name}.tif" for name in arrays]


def _np(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _float(x: Any) -> float:
    return float(np.asarray(_np(x), dtype=np.float64))


def _fmt(v: float, digits: int, capped: bool = False) -> str:
    """A table cell: ``nan``, ``inf``, ``≥120.0000`` for a value at the PSNR cap, else fixed or
    scientific notation with ``digits`` decimals."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if capped and v >= PSNR_CAP_DB - 1e-9:
        return f"≥{v:.{digits}f}"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** (-digits)):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}f}"


MAP_SET = "eosr evaluate maps (GeoTIFFs tagged eosr_map)"


def is_map_file(path: Path) -> bool:
    """A member of a maps folder: a GeoTIFF tagged ``eosr_map`` (or a GDAL ``.aux.xml`` beside one)."""
    from rasterio.errors import RasterioError

    from eosr.io.raster import open_quietly

    name = path.name
    if name.endswith(".tif.aux.xml"):
        return True
    if not name.endswith(".tif") or not path.is_file():
        return False
    try:
        with open_quietly(path) as ds:
            return "eosr_map" in ds.tags()
    except (OSError, RasterioError):  # unreadable: not one of ours
        return False
