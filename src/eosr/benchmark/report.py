"""The benchmark report: one self-contained HTML file (Jinja2 template, Matplotlib PNGs as base64, the
interactive viewer's JavaScript ``templates/viewer.js`` and its data inlined; no network request).

Every number in the report comes from the same ``results`` dict that is written to ``results.json``;
numeric cells carry the exact value in a ``data-value`` attribute (the test compares them). Number
formats: one per column (one per row in the tables whose rows are metrics), :mod:`eosr.benchmark.numbers`.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eosr.benchmark import plots, viewer
from eosr.benchmark.cache import Cache
from eosr.benchmark.config import BenchmarkConfig
from eosr.benchmark.datasets import list_images, load_sample
from eosr.benchmark.metric_docs import doc_for
from eosr.benchmark.numbers import ColumnFormat, fmt, formatter
from eosr.io.raster import atomic_path

__all__ = ["build_context", "cell", "fmt", "render", "showcase", "write_report"]

#: Columns of the leaderboard besides the ranking metric (shown when present).
BOARD_EXTRA = ("ssim", "sam_deg", "lr_fidelity", "hr_fidelity", "hallucination", "frr")
REG_METRICS = ("shift_x_px", "shift_y_px", "gain", "bias")
STRATA = (("psnr_low_gradient", "low gradient (<= q50)"), ("psnr", "all pixels"),
          ("psnr_high_gradient", "high gradient (>= q90)"))


#: Fewer images than this: no confidence intervals (a bootstrap over 1 or 2 values says nothing).
MIN_IMAGES_FOR_CI = 3


def cell(row: dict[str, Any] | None, key: str = "mean", ci: tuple[str, str] = ("ci_low", "ci_high"),
         signed: bool = False, f: ColumnFormat | None = None, show_ci: bool = True) -> dict[str, Any]:
    """A table cell: shown text (format ``f`` of its column), exact value and CI (for the template)."""
    if row is None or row.get(key) is None:
        return {"text": "–", "value": None, "ci": ""}
    f = f or ColumnFormat()
    v = row[key]
    lo, hi = row.get(ci[0]), row.get(ci[1])
    ci_txt = f"[{f(lo)}, {f(hi)}]" if show_ci and lo is not None and hi is not None else ""
    return {"text": f(v, signed), "value": repr(float(v)), "ci": ci_txt}


def _fmt_of(rows: list[dict[str, Any] | None], metric: str, keys: tuple[str, ...] = ("mean",)) -> ColumnFormat:
    """The format of a column: ``keys[0]`` is the value, the other keys its CI bounds."""
    vals = [r.get(keys[0]) for r in rows if r is not None]
    return formatter(vals, metric, [r.get(k) for r in rows if r is not None for k in keys[1:]])


def _index(summary: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["dataset"], r["method"], r["metric"]): r for r in summary}


def _lr_up(lr: np.ndarray, r: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, r, axis=-2), r, axis=-1)


def _image_data(d: Any, ref: Any, i: int, dkey: str, cache: Cache, methods: list[Any]
                ) -> tuple[Any, dict[str, np.ndarray], np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """One image: its sample, each method's SR (from the cache, else run), the interpolated LR and,
    with an HR reference, the per-method maps (mean over bands) of |SR - HR|, |HF(SR) - HF(HR)|,
    hallucination and omission."""
    from eosr.benchmark.methods import bicubic
    from eosr.benchmark.scoring import compensate, detail_maps

    sample = load_sample(d, ref, i)
    srs: dict[str, np.ndarray] = {}
    for m in methods:
        sr = cache.load_sr(dkey, m.key, ref.id, None if sample.hr is None else sample.hr.shape)
        srs[m.name] = sr if sr is not None else np.asarray(m.run(sample.lr, sample), np.float32)
    interp = bicubic(np.nan_to_num(sample.lr).astype(np.float32), sample.scale).astype(np.float64)
    maps: dict[str, dict[str, np.ndarray]] = {}
    if sample.hr is not None:
        hr = np.asarray(sample.hr, np.float64)
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
    return sample, srs, interp, maps


def showcase(results: dict[str, Any], cfg: BenchmarkConfig, cache: Cache, methods: list[Any],
             refs: list[Any] | None = None, all_refs: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """Figures on one image of the first dataset (``refs``: its images, listed again when not given):
    spectra, triptychs, maps, uncertainty; and the viewer's data (every image of every dataset, in order,
    up to :data:`eosr.benchmark.viewer.BUDGET_CHARS`; ``all_refs``: the images of each dataset by name)."""
    from eosr.physics.spectrum import radial_power_spectrum

    d = cfg.datasets[0]
    info = results["datasets"][0]
    refs = refs if refs is not None else list_images(d)
    i = min(cfg.showcase, len(refs) - 1)
    sample, srs, interp, maps = _image_data(d, refs[i], i, info["key"], cache, methods)
    geo = viewer.georef(refs[i], sample.scale)
    pixel_m = geo["pixel_m"] if geo else None
    out: dict[str, Any] = {"dataset": d.name, "image": refs[i].id, "has_hr": sample.hr is not None,
                           "bands": sample.bands, "scale": sample.scale, "geo": geo}
    out["viewer"] = viewer_data(results, cfg, {**(all_refs or {}), d.name: refs}, cache, methods,
                                (i, sample, srs, maps, geo))
    stds: dict[str, np.ndarray] = {}
    for m in methods:
        if m.uncertainty is not None:
            u = m.uncertainty(sample.lr, sample)
            if u is not None:
                stds[m.name] = np.asarray(u, np.float64)
    if stds:
        out["uncertainty"] = plots.map_grid({k: {"sigma": np.nanmean(v, axis=0)} for k, v in stds.items()},
                                            [("sigma", "predicted uncertainty (std)", "reflectance")],
                                            pixel_m=pixel_m)
    if stds and sample.hr is not None:
        out["trust"] = trust_section(stds, srs, np.asarray(sample.hr, np.float64), sample.scale, pixel_m)
    if sample.hr is None:
        out["triptych"] = plots.triptychs(_lr_up(sample.lr, sample.scale), srs, interp, sample.bands,
                                          pixel_m=pixel_m)
        return out
    hr = np.asarray(sample.hr, np.float64)
    freqs, p_hr = radial_power_spectrum(np.nan_to_num(hr))
    curves = {"HR": p_hr.mean(0), "interpolated LR (bicubic)": radial_power_spectrum(interp)[1].mean(0)}
    for k, v in srs.items():
        curves[f"SR: {k}"] = radial_power_spectrum(np.nan_to_num(v))[1].mean(0)
    out["spectra"] = plots.spectra(freqs, curves, 0.5 / sample.scale)
    out["triptych"] = plots.triptychs(_lr_up(sample.lr, sample.scale), srs, hr, sample.bands, pixel_m=pixel_m)
    out["maps"] = plots.map_grid(maps, [("error", "|SR - HR|", "reflectance"),
                                        ("hf", "|HF(SR) - HF(HR)|, HF = x - LPF(x)", "reflectance"),
                                        ("hallucination", "hallucination |a - c|", "reflectance"),
                                        ("omission", "omission |t - c|", "reflectance")], pixel_m=pixel_m)
    return out


def viewer_data(results: dict[str, Any], cfg: BenchmarkConfig, all_refs: dict[str, list[Any]], cache: Cache,
                methods: list[Any], done: tuple[int, Any, dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], Any]
                ) -> dict[str, Any]:
    """The viewer's JSON: colour maps and the images of every dataset, in order, until the size budget is
    spent (``done``: the first dataset's showcase image: index, sample, SRs, maps and georeference, not
    computed twice)."""
    images: list[dict[str, Any]] = []
    total, n_images, full = 0, 0, False
    for k, (d, info) in enumerate(zip(cfg.datasets, results["datasets"], strict=True)):
        refs = all_refs.get(d.name) or list_images(d)
        n_images += len(refs)
        for j, ref in enumerate(refs):
            if full:
                break
            if k == 0 and j == done[0]:
                sample, srs, maps, geo = done[1], done[2], done[3], done[4]
            else:
                sample, srs, _, maps = _image_data(d, ref, j, info["key"], cache, methods)
                geo = viewer.georef(ref, sample.scale)
            entry = viewer.image_entry(ref.id, sample.lr, srs, sample.hr, sample.scale, maps, geo)
            entry.update(dataset=d.name, bands=list(sample.bands))
            size = viewer.size_of(entry)
            if images and total + size > viewer.BUDGET_CHARS:
                full = True
                break
            images.append(entry)
            total += size
    return {"images": images, "n_images": n_images,
            "cmaps": {k: viewer.colormap_hex(k) for k in ("gray", "viridis", "magma")},
            "tolerance": max(e["step"] for im in images for e in im["layers"]) / 2}


def trust_section(stds: dict[str, np.ndarray], srs: dict[str, np.ndarray], hr: np.ndarray, scale: int,
                  pixel_m: float | None = None) -> dict[str, Any]:
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
                                 ("support", "support share (detail above LR Nyquist)", "fraction")],
                         pixel_m=pixel_m)
    return {"maps": grid, "sparsification": plots.sparsification(curves), "table": rows}


def _title(metric: str) -> str:
    d = doc_for(metric)
    return f"{d.title} ({d.unit})" if d.unit else d.title


def _per_image(results: dict[str, Any], ds: str, methods: list[str], baseline: str, metric: str
               ) -> dict[str, Any]:
    """Per-image table of the ranking metric: one row per image, a value per method and the paired
    difference to the baseline per other method (columns formatted as a whole)."""
    vals: dict[tuple[str, str], float] = {}
    for r in results["per_image"]:
        if r["dataset"] == ds and r["metric"] == metric and r.get("band", "all") == "all":
            vals[(r["image"], r["method"])] = r["value"]
    images = next(d["images"] for d in results["datasets"] if d["name"] == ds)
    others = [m for m in methods if m != baseline]
    fv = formatter([vals.get((i, m)) for i in images for m in methods], metric)
    diffs = {(i, m): vals[(i, m)] - vals[(i, baseline)] for i in images for m in others
             if (i, m) in vals and (i, baseline) in vals}
    fd = formatter(list(diffs.values()), "")
    rows = []
    for i in images:
        cells = [{"text": fv(vals.get((i, m))), "value": repr(vals[(i, m)]) if (i, m) in vals else None, "cls": ""}
                 for m in methods]
        cells += [{"text": fd(diffs.get((i, m)), True), "value": repr(diffs[(i, m)]) if (i, m) in diffs else None,
                   "cls": "pos" if diffs.get((i, m), 0) * _sign(metric) > 0 else "neg" if diffs.get((i, m), 0) else ""}
                  for m in others]
        rows.append({"image": i, "cells": cells})
    return {"metric": metric, "title": _title(metric), "others": others, "rows": rows,
            "diffs": {m: [diffs.get((i, m), float("nan")) for i in images] for m in others}, "images": images}


def _per_image_metrics(results: dict[str, Any], ds: str, methods: list[str], metrics: list[str]
                       ) -> dict[str, Any]:
    """One row per image and method with the leaderboard's metrics (one format per column)."""
    vals: dict[tuple[str, str, str], float] = {}
    for r in results["per_image"]:
        if r["dataset"] == ds and r["metric"] in metrics and r.get("band", "all") == "all":
            vals[(r["image"], r["method"], r["metric"])] = r["value"]
    images = next(d["images"] for d in results["datasets"] if d["name"] == ds)
    fmts = [formatter([vals.get((i, m, k)) for i in images for m in methods], k) for k in metrics]
    rows = [{"image": i, "method": m,
             "cells": [{"text": f(vals.get((i, m, k))), "value": repr(vals[(i, m, k)]) if (i, m, k) in vals else None}
                       for k, f in zip(metrics, fmts, strict=True)]}
            for i in images for m in methods]
    return {"titles": [_title(k) for k in metrics], "metrics": metrics, "rows": rows}


def _sign(metric: str) -> int:
    hib = doc_for(metric).higher_is_better
    return 1 if hib is not False else -1


def _per_band(results: dict[str, Any], ds: str, methods: list[str]) -> dict[str, Any]:
    """Per band, metric and method: the mean over images of the per-band values (one format per metric)."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    bands: list[str] = []
    for r in results["per_image"]:
        b = r.get("band", "all")
        if r["dataset"] != ds or b == "all":
            continue
        if b not in bands:
            bands.append(b)
        acc.setdefault((r["metric"], r["method"], b), []).append(r["value"])
    rows = []
    for metric in sorted({k[0] for k in acc}):
        means = {(m, b): float(np.mean(acc[(metric, m, b)])) for m in methods for b in bands
                 if (metric, m, b) in acc}
        f = formatter(list(means.values()), metric)
        for m in methods:
            if any((m, b) in means for b in bands):
                rows.append({"metric": metric, "title": _title(metric), "method": m,
                             "cells": [{"text": f(means.get((m, b))),
                                        "value": repr(means[(m, b)]) if (m, b) in means else None} for b in bands]})
    return {"bands": bands, "rows": rows}


def build_context(results: dict[str, Any], cfg: BenchmarkConfig, cache: Cache, methods: list[Any],
                  refs: list[Any] | None = None, all_refs: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """Everything the template shows (``refs``: the images of the first dataset, ``all_refs``: of every
    dataset by name, when known)."""
    idx = _index(results["summary"])
    method_names = [m["name"] for m in results["methods"]]
    baseline = results["baseline"]
    datasets = []
    for dinfo in results["datasets"]:
        ds = dinfo["name"]
        show_ci = int(dinfo["n_images"]) >= MIN_IMAGES_FOR_CI
        board = [r for r in results["leaderboard"] if r["dataset"] == ds]
        metric = board[0]["metric"] if board else None
        extra = [m for m in BOARD_EXTRA if m != metric and any((ds, n, m) in idx for n in method_names)]
        f_main = _fmt_of(list(board), metric or "", ("mean", "ci_low", "ci_high"))
        f_diff = _fmt_of(list(board), "", ("diff_mean", "diff_ci_low", "diff_ci_high"))
        f_extra = [_fmt_of([idx.get((ds, n, m)) for n in method_names], m, ("mean", "ci_low", "ci_high"))
                   for m in extra]
        rows = []
        for r in board:
            rows.append({"rank": r["rank"], "method": r["method"], "main": cell(r, f=f_main, show_ci=show_ci),
                         "diff": cell(r, "diff_mean", ("diff_ci_low", "diff_ci_high"), signed=True, f=f_diff,
                                      show_ci=show_ci),
                         "extra": [cell(idx.get((ds, r["method"], m)), f=fe, show_ci=show_ci)
                                   for m, fe in zip(extra, f_extra, strict=True)]})
        present = sorted({k[2] for k in idx if k[0] == ds})
        full = []
        for metric_name in present:
            d = doc_for(metric_name)
            rs = [idx.get((ds, n, metric_name)) for n in method_names]
            fr = _fmt_of(rs, metric_name, ("mean", "ci_low", "ci_high"))
            fdr = _fmt_of(rs, "", ("diff_mean", "diff_ci_low", "diff_ci_high"))
            full.append({"metric": metric_name, "title": d.title, "unit": d.unit, "how": d.how,
                         "dir": {True: "↑", False: "↓", None: ""}[d.higher_is_better],
                         "cells": [cell(r, f=fr, show_ci=show_ci) for r in rs],
                         "diffs": [cell(r, "diff_mean", ("diff_ci_low", "diff_ci_high"), signed=True, f=fdr,
                                        show_ci=show_ci) for r in rs]})
        reg_f = [_fmt_of([idx.get((ds, n, m)) for n in method_names], m, ("mean", "ci_low", "ci_high"))
                 for m in REG_METRICS]
        reg = [{"method": n, "cells": [cell(idx.get((ds, n, m)), f=fm, show_ci=show_ci)
                                       for m, fm in zip(REG_METRICS, reg_f, strict=True)]}
               for n in method_names if any((ds, n, m) in idx for m in REG_METRICS)]
        figs: dict[str, str] = {"leaderboard": "", "strata": "", "per_image": ""}  # "": no figure
        per_image = _per_image(results, ds, method_names, baseline, metric) if metric else None
        if board and metric:
            d = doc_for(metric)
            figs["leaderboard"] = plots.bar_with_ci(
                [r["method"] for r in board], [r["mean"] for r in board],
                [r["ci_low"] if show_ci and r["ci_low"] is not None else r["mean"] for r in board],
                [r["ci_high"] if show_ci and r["ci_high"] is not None else r["mean"] for r in board],
                ylabel=f"{d.title} ({d.unit})" if d.unit else d.title,
                title=f"{ds}: mean and {round(100 * results['confidence'])} % CI" if show_ci
                else f"{ds}: mean over {dinfo['n_images']} image(s), no CI", highlight=baseline)
            if per_image and per_image["others"]:
                figs["per_image"] = plots.paired_differences(
                    per_image["images"], per_image["diffs"],
                    xlabel=f"Δ {d.title} vs {baseline}" + (f" ({d.unit})" if d.unit else ""),
                    better=_sign(metric))
        strata = {}
        for key, label in STRATA:
            rs = [idx.get((ds, n, key)) for n in method_names]
            if all(r is not None and r["mean"] is not None for r in rs):
                strata[label] = ([r["mean"] for r in rs if r],
                                 [r["ci_low"] if r and show_ci and r["ci_low"] is not None else r["mean"]
                                  for r in rs if r],
                                 [r["ci_high"] if r and show_ci and r["ci_high"] is not None else r["mean"]
                                  for r in rs if r])
        if len(strata) > 1:
            figs["strata"] = plots.strata_bars(method_names, strata, unit="PSNR (dB)",
                                               title=f"{ds}: PSNR per gradient stratum of HR")
        datasets.append({"info": dinfo, "metric": metric, "metric_title": _title(metric) if metric else "",
                         "extra": [_title(m) for m in extra], "rows": rows, "full": full, "reg": reg,
                         "figs": figs, "show_ci": show_ci, "per_image": per_image,
                         "per_image_all": _per_image_metrics(results, ds, method_names,
                                                             ([metric] if metric else []) + extra),
                         "per_band": _per_band(results, ds, method_names)})
    docs = [{"name": k, **v} for k, v in sorted(results["metric_docs"].items())]
    sc = showcase(results, cfg, cache, methods, refs, all_refs)
    viewer_json = json.dumps(sc.pop("viewer"), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return {
        "title": f"eosr benchmark: {results['name']}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": results,
        "methods": method_names,
        "baseline": baseline,
        "datasets": datasets,
        "showcase": sc,
        "viewer_json": viewer_json,
        "viewer_js": (Path(__file__).parent / "templates" / "viewer.js").read_text(encoding="utf-8"),
        "min_images_ci": MIN_IMAGES_FOR_CI,
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
    all_refs = getattr(res, "refs", {})
    ctx = build_context(res.results, cfg, cache, methods, all_refs.get(cfg.datasets[0].name), all_refs)
    path = Path(res.out_dir) / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render(ctx), encoding="utf-8")
    return path
