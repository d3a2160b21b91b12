"""The benchmark report: one self-contained HTML file (Jinja2 template, Matplotlib PNGs as base64).

Every number in the report comes from the same ``results`` dict that is written to ``results.json``;
numeric cells carry the exact value in a ``data-value`` attribute (the test compares them).
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eosr.benchmark import plots
from eosr.benchmark.cache import Cache
from eosr.benchmark.config import BenchmarkConfig
from eosr.benchmark.datasets import list_images, load_sample
from eosr.benchmark.metric_docs import doc_for
from eosr.io.raster import atomic_path

#: Columns of the leaderboard besides the ranking metric (shown when present).
BOARD_EXTRA = ("ssim", "sam_deg", "lr_fidelity", "hr_fidelity", "hallucination", "frr")
REG_METRICS = ("shift_x_px", "shift_y_px", "gain", "bias")
STRATA = (("psnr_low_gradient", "low gradient (<= q50)"), ("psnr", "all pixels"),
          ("psnr_high_gradient", "high gradient (>= q90)"))


def fmt(v: Any, digits: int = 4) -> str:
    """Human formatting: ``digits`` significant decimals, '-' for missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    f = float(v)
    if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}" if abs(f) >= 1 else f"{f:.{digits}f}"


def cell(row: dict[str, Any] | None, key: str = "mean", ci: tuple[str, str] = ("ci_low", "ci_high"),
         signed: bool = False) -> dict[str, Any]:
    """A table cell: shown text, exact value and CI (for the template)."""
    if row is None or row.get(key) is None:
        return {"text": "–", "value": None, "ci": ""}
    v = row[key]
    lo, hi = row.get(ci[0]), row.get(ci[1])
    txt = ("+" if signed and v > 0 else "") + fmt(v)
    ci_txt = f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else ""
    return {"text": txt, "value": repr(float(v)), "ci": ci_txt}


def _index(summary: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["dataset"], r["method"], r["metric"]): r for r in summary}


def _lr_up(lr: np.ndarray, r: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, r, axis=-2), r, axis=-1)


def showcase(results: dict[str, Any], cfg: BenchmarkConfig, cache: Cache, methods: list[Any],
             refs: list[Any] | None = None) -> dict[str, Any]:
    """Figures on one image of the first dataset (``refs``: its images, listed again when not given):
    spectra, triptychs, maps, uncertainty."""
    from eosr.benchmark.methods import bicubic
    from eosr.benchmark.scoring import compensate, detail_maps
    from eosr.physics.spectrum import radial_power_spectrum

    d = cfg.datasets[0]
    info = results["datasets"][0]
    refs = refs if refs is not None else list_images(d)
    i = min(cfg.showcase, len(refs) - 1)
    sample = load_sample(d, refs[i], i)
    srs: dict[str, np.ndarray] = {}
    for m in methods:
        sr = cache.load_sr(info["key"], m.key, refs[i].id, None if sample.hr is None else sample.hr.shape)
        srs[m.name] = sr if sr is not None else np.asarray(m.run(sample.lr, sample), np.float32)
    out: dict[str, Any] = {"dataset": d.name, "image": refs[i].id, "has_hr": sample.hr is not None,
                           "bands": sample.bands, "scale": sample.scale}
    interp = bicubic(np.nan_to_num(sample.lr).astype(np.float32), sample.scale).astype(np.float64)
    stds: dict[str, np.ndarray] = {}
    for m in methods:
        if m.uncertainty is not None:
            u = m.uncertainty(sample.lr, sample)
            if u is not None:
                stds[m.name] = np.asarray(u, np.float64)
    if stds:
        out["uncertainty"] = plots.map_grid({k: {"sigma": np.nanmean(v, axis=0)} for k, v in stds.items()},
                                            [("sigma", "predicted uncertainty (std)", "reflectance")])
    if stds and sample.hr is not None:
        out["trust"] = trust_section(stds, srs, np.asarray(sample.hr, np.float64), sample.scale)
    if sample.hr is None:
        out["triptych"] = plots.triptychs(_lr_up(sample.lr, sample.scale), srs, interp, sample.bands)
        return out
    hr = np.asarray(sample.hr, np.float64)
    curves = {"HR": radial_power_spectrum(np.nan_to_num(hr))[1].mean(0),
              "interpolated LR (bicubic)": radial_power_spectrum(interp)[1].mean(0)}
    freqs = radial_power_spectrum(np.nan_to_num(hr))[0]
    for k, v in srs.items():
        curves[f"SR: {k}"] = radial_power_spectrum(np.nan_to_num(v))[1].mean(0)
    out["spectra"] = plots.spectra(freqs, curves, 0.5 / sample.scale)
    out["triptych"] = plots.triptychs(_lr_up(sample.lr, sample.scale), srs, hr, sample.bands)
    maps: dict[str, dict[str, np.ndarray]] = {}
    op = sample.operator
    hf_hr = hr - np.asarray(op.blur(hr))
    for k, v in srs.items():
        sr = np.asarray(v, np.float64)
        comp, _ = compensate(sr, hr, sample.scale)
        dm = detail_maps(sr, hr, interp, comp)
        hf = np.abs((sr - np.asarray(op.blur(sr))) - hf_hr)
        maps[k] = {"error": np.nanmean(np.abs(sr - hr), axis=0), "hf": np.nanmean(hf, axis=0),
                   "hallucination": np.nanmean(dm["hallucination"], axis=0),
                   "omission": np.nanmean(dm["omission"], axis=0)}
    out["maps"] = plots.map_grid(maps, [("error", "|SR - HR|", "reflectance"),
                                        ("hf", "|HF(SR) - HF(HR)|, HF = x - LPF(x)", "reflectance"),
                                        ("hallucination", "hallucination |a - c|", "reflectance"),
                                        ("omission", "omission |t - c|", "reflectance")])
    return out


def trust_section(stds: dict[str, np.ndarray], srs: dict[str, np.ndarray], hr: np.ndarray, scale: int
                  ) -> dict[str, Any]:
    """Uncertainty, |error| and support maps side by side, sparsification curves and the calibration table.

    Support share: fraction of the local detail energy above the LR Nyquist (:mod:`eosr.trust.support`);
    calibration: coverage of central intervals, Spearman rho(|error|, std), AUSE (Ilg et al., ECCV 2018).
    """
    from eosr.trust.calibration import calibration_table, sparsification
    from eosr.trust.support import support_maps

    maps, curves, rows = {}, {}, []
    for name, std in stds.items():
        sr = np.asarray(srs[name], np.float64)
        err = np.abs(sr - hr)
        maps[name] = {"sigma": np.nanmean(std, axis=0), "error": np.nanmean(err, axis=0),
                      "support": np.nanmean(np.asarray(support_maps(sr, scale).share, np.float64), axis=0)}
        curves[name] = sparsification(err, std)
        rows.append({"method": name, **calibration_table(sr, hr, std, curve=curves[name])})
    grid = plots.map_grid(maps, [("sigma", "predicted std", "reflectance"), ("error", "|SR - HR|", "reflectance"),
                                 ("support", "support share (detail above LR Nyquist)", "fraction")])
    return {"maps": grid, "sparsification": plots.sparsification(curves), "table": rows}


def _title(metric: str) -> str:
    d = doc_for(metric)
    return f"{d.title} ({d.unit})" if d.unit else d.title


def build_context(results: dict[str, Any], cfg: BenchmarkConfig, cache: Cache, methods: list[Any],
                  refs: list[Any] | None = None) -> dict[str, Any]:
    """Everything the template shows (``refs``: the images of the first dataset, when known)."""
    idx = _index(results["summary"])
    method_names = [m["name"] for m in results["methods"]]
    baseline = results["baseline"]
    datasets = []
    for dinfo in results["datasets"]:
        ds = dinfo["name"]
        board = [r for r in results["leaderboard"] if r["dataset"] == ds]
        metric = board[0]["metric"] if board else None
        extra = [m for m in BOARD_EXTRA if m != metric and any((ds, n, m) in idx for n in method_names)]
        rows = []
        for r in board:
            rows.append({"rank": r["rank"], "method": r["method"], "main": cell(r),
                         "diff": cell(r, "diff_mean", ("diff_ci_low", "diff_ci_high"), signed=True),
                         "extra": [cell(idx.get((ds, r["method"], m))) for m in extra]})
        present = sorted({k[2] for k in idx if k[0] == ds})
        full = []
        for metric_name in present:
            d = doc_for(metric_name)
            full.append({"metric": metric_name, "title": d.title, "unit": d.unit,
                         "dir": {True: "↑", False: "↓", None: ""}[d.higher_is_better],
                         "cells": [cell(idx.get((ds, n, metric_name))) for n in method_names],
                         "diffs": [cell(idx.get((ds, n, metric_name)), "diff_mean", ("diff_ci_low", "diff_ci_high"),
                                        signed=True) for n in method_names]})
        reg = [{"method": n, "cells": [cell(idx.get((ds, n, m))) for m in REG_METRICS]} for n in method_names
               if any((ds, n, m) in idx for m in REG_METRICS)]
        figs: dict[str, str] = {"leaderboard": "", "strata": ""}  # "": no figure (e.g. metrics selected)
        if board and metric:
            d = doc_for(metric)
            figs["leaderboard"] = plots.bar_with_ci(
                [r["method"] for r in board], [r["mean"] for r in board],
                [r["ci_low"] if r["ci_low"] is not None else r["mean"] for r in board],
                [r["ci_high"] if r["ci_high"] is not None else r["mean"] for r in board],
                ylabel=f"{d.title} ({d.unit})" if d.unit else d.title,
                title=f"{ds}: mean and {round(100 * results['confidence'])} % CI", highlight=baseline)
        strata = {}
        for key, label in STRATA:
            rs = [idx.get((ds, n, key)) for n in method_names]
            if all(r is not None and r["mean"] is not None for r in rs):
                strata[label] = ([r["mean"] for r in rs if r], [r["ci_low"] if r and r["ci_low"] is not None
                                                                 else r["mean"] for r in rs if r],
                                 [r["ci_high"] if r and r["ci_high"] is not None else r["mean"] for r in rs if r])
        if len(strata) > 1:
            figs["strata"] = plots.strata_bars(method_names, strata, unit="PSNR (dB)",
                                               title=f"{ds}: PSNR per gradient stratum of HR")
        datasets.append({"info": dinfo, "metric": metric, "metric_title": _title(metric) if metric else "",
                         "extra": [_title(m) for m in extra], "rows": rows, "full": full, "reg": reg,
                         "figs": figs})
    docs = [{"name": k, **v} for k, v in sorted(results["metric_docs"].items())]
    return {
        "title": f"eosr benchmark: {results['name']}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": results,
        "methods": method_names,
        "baseline": baseline,
        "datasets": datasets,
        "showcase": showcase(results, cfg, cache, methods, refs),
        "docs": docs,
        "config_json": json.dumps(results["config"], indent=1),
        "versions": results["versions"],
        "confidence_pct": round(100 * results["confidence"]),
    }


def render(context: dict[str, Any]) -> str:
    """Render the report template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("eosr.benchmark", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined)
    env.filters["e_attr"] = lambda s: html.escape(str(s), quote=True)
    return env.get_template("report.html.j2").render(**context)


def write_report(res: Any, cfg: BenchmarkConfig, cache: Cache, methods: list[Any]) -> Path:
    """Write ``report.html`` into the result's output folder (atomically) and return its path."""
    refs = getattr(res, "refs", {}).get(cfg.datasets[0].name)
    ctx = build_context(res.results, cfg, cache, methods, refs)
    path = Path(res.out_dir) / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render(ctx), encoding="utf-8")
    return path
