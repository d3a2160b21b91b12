"""Run a benchmark: SR every image with every method (cached), score it, aggregate, write the outputs.

Output folder::

    config.toml / config.json      the exact config given, and the resolved one
    versions.json                  Python, eosr, library versions, git commit, evaluator
    per_image.{csv,json,parquet}   one row per dataset x image x method x metric x band (long format):
                                   band "all" = the metric's value over all bands, then one row per
                                   band name with the metric's per-band value (when it has one)
    summary.{csv,json,parquet}     mean, bootstrap CI, paired difference to the baseline with its CI
    leaderboard.{csv,json}         methods ranked per dataset
    results.json                   all of the above in one strict-JSON file (the report reads it)
    report.html                    the self-contained report
    .eosr-benchmark                marks the folder as eosr's (eosr.benchmark.outdir)
    cache/                         SR outputs and per-image scores (see eosr.benchmark.cache)

The folder is claimed first (a populated folder that is not eosr's is refused unless ``overwrite``);
the result files are written into a staging sibling and replace the previous set as a whole at the
end (:mod:`eosr.benchmark.outdir`); the cache is kept from run to run.

Every JSON file starts with ``"schema_version"`` (:mod:`eosr._schema`); the row tables are
``{"schema_version": ..., "<name>": [rows]}``, the same lists as in ``results.json``.
"""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from eosr._schema import stamped
from eosr.benchmark.cache import Cache, hash_of
from eosr.benchmark.config import BenchmarkConfig, MethodConfig, check_config, load_config
from eosr.benchmark.datasets import (
    ImageRef,
    Sample,
    dataset_bands,
    dataset_key,
    dataset_radiometry,
    list_images,
    load_sample,
)
from eosr.benchmark.methods import Method, load_method
from eosr.benchmark.metric_docs import doc_for
from eosr.benchmark.outdir import claim, commit, recover, release, staging
from eosr.benchmark.scoring import evaluator_name, score
from eosr.benchmark.stats import bootstrap_mean, paired_difference
from eosr.errors import DataError
from eosr.io.raster import atomic_path


@dataclass
class BenchmarkResult:
    """What a run produced: the output folder, the tables, and cache statistics."""

    out_dir: Path
    results: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    report: Path | None = None
    seconds: float = 0.0
    refs: dict[str, list[ImageRef]] = field(default_factory=dict)  # the images of each dataset, by name

    @property
    def leaderboard(self) -> list[dict[str, Any]]:
        """Leaderboard rows (all datasets)."""
        out: list[dict[str, Any]] = self.results["leaderboard"]
        return out


def versions() -> dict[str, Any]:
    """Versions of Python, eosr and the libraries that shape the numbers, plus the git commit if any."""
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("eosr", "numpy", "scipy", "torch", "rasterio", "pydantic", "matplotlib", "jinja2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    try:
        root = Path(__file__).resolve().parents[3]
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           check=False)
        out["git_commit"] = r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    out["evaluator"] = evaluator_name()
    return out


def _with_baseline(cfg: BenchmarkConfig) -> tuple[list[MethodConfig], str, bool]:
    names = [m.name for m in cfg.methods]
    if cfg.baseline in names:
        return list(cfg.methods), cfg.baseline, False
    for m in cfg.methods:
        if m.model == cfg.baseline:
            return list(cfg.methods), m.name, False
    return [MethodConfig(name=cfg.baseline), *cfg.methods], cfg.baseline, True


#: Images up to this many HR pixels are processed two at a time with one torch thread each
#: (docs/benchmark.md, "Speed"): on 120 x 120 patches torch's default intra-op threads mostly wait on each
#: other, badly so on a busy machine.
SMALL_IMAGE_PIXELS = 512 * 512


def _hr_pixels(sample: Sample, scale: int | None) -> int:
    """HR pixels per band of a sample: its HR's, else its LR's times the scale squared."""
    if sample.hr is not None:
        return int(sample.hr.shape[-1] * sample.hr.shape[-2])
    return int(sample.lr.shape[-1] * sample.lr.shape[-2]) * int(scale or 1) ** 2


def _map_images(fn: Any, refs: list[ImageRef]) -> Any:
    """``fn(i, ref) -> (rows, counts, hr_pixels)`` for every image; yields ``(rows, counts)`` in image order.

    Torch runs on one intra-op thread; the first image alone, then, when it was small (at most
    :data:`SMALL_IMAGE_PIXELS` HR pixels, or all cached) the rest two at a time in threads, else one at a time
    with torch's thread count restored."""
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if not refs:
            return
        rows, n, pixels = fn(0, refs[0])
        yield rows, n
        workers = min(2, os.cpu_count() or 1)
        if pixels is not None and pixels > SMALL_IMAGE_PIXELS or workers < 2:
            torch.set_num_threads(before)
            for i in range(1, len(refs)):
                rows, n, _ = fn(i, refs[i])
                yield rows, n
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eosr-bench") as pool:
            for rows, n, _ in pool.map(fn, range(1, len(refs)), refs[1:]):
                yield rows, n
    finally:
        torch.set_num_threads(before)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    """A progress bar over (image, method) pairs: one step = one SR output scored (unit "SR")."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, unit="SR")


def run_benchmark(config: BenchmarkConfig | str | Path, out_dir: str | Path, *, progress: bool = True,
                  report: bool | None = None, config_text: str | None = None, allow_code: bool = False,
                  overwrite: bool = False, allow_untrained: bool = False) -> BenchmarkResult:
    """Run a benchmark into ``out_dir``; resumes from the cache of a previous or interrupted run.

    Every config problem raises :class:`eosr.errors.ConfigError` before any image is processed; readers
    and methods given as dotted paths run only with ``allow_code`` (:mod:`eosr.benchmark.plugins`); learned
    architectures without trained weights only with ``allow_untrained``.
    A populated ``out_dir`` that holds no eosr results is refused unless ``overwrite``; the result files
    replace the previous set as a whole at the end (:mod:`eosr.benchmark.outdir`).
    """
    t0 = time.perf_counter()
    if not isinstance(config, BenchmarkConfig):
        cfg_path = Path(config)
        cfg = load_config(cfg_path)
        config_text = cfg_path.read_text(encoding="utf-8")
    else:
        cfg = config
    check_config(cfg, allow_code=allow_code, allow_untrained=allow_untrained)
    out = Path(out_dir)
    do_report = cfg.report if report is None else report
    all_refs = {d.name: list_images(d, allow_code) for d in cfg.datasets}  # readers run here, before any work
    methods_cfg, baseline, auto_baseline = _with_baseline(cfg)
    methods: list[Method] = [load_method(m, allow_code, allow_untrained) for m in methods_cfg]
    lock = claim(out, overwrite)
    try:
        cache = Cache(cfg.cache_dir or out / "cache")
        res = _run(cfg, out, progress, all_refs, methods, (baseline, auto_baseline), cache)
        stage = staging(out)
        try:
            res.out_dir = stage
            _write_outputs(stage, res.results, cfg, config_text)
            if do_report:
                from eosr.benchmark.report import write_report

                write_report(res, cfg, cache, methods)
            commit(stage, out)
        finally:
            recover(out)  # after a failure: the previous set (and the cache) back in place, no staging left
        res.out_dir = out
        res.report = out / "report.html" if do_report else None
    finally:
        release(lock)
    res.seconds = time.perf_counter() - t0
    return res


def _expected_shape(sample: Sample) -> tuple[int, ...] | None:
    return None if sample.hr is None else tuple(sample.hr.shape)


def _run(cfg: BenchmarkConfig, out: Path, progress: bool, all_refs: dict[str, list[ImageRef]],
         methods: list[Method], baseline_of: tuple[str, bool], cache: Cache) -> BenchmarkResult:
    """SR and score every image (cached) and aggregate; writes only the cache."""
    baseline, auto_baseline = baseline_of
    metric_sel = list(cfg.metrics) if cfg.metrics is not None else None
    ver = versions()
    skey = hash_of({"metrics": metric_sel, "data_range": cfg.data_range, "evaluator": ver["evaluator"],
                    "eosr": ver["eosr"]})

    rows: list[dict[str, Any]] = []
    counts = {"sr_computed": 0, "sr_cached": 0, "scores_computed": 0, "scores_cached": 0, "cache_invalid": 0}
    datasets_info: list[dict[str, Any]] = []
    for d in cfg.datasets:
        refs = all_refs[d.name]
        dkey = dataset_key(d, refs)
        band_names = dataset_bands(d)
        datasets_info.append({"name": d.name, "kind": d.kind, "key": dkey, "n_images": len(refs),
                              "images": [r.id for r in refs], "sensor": d.sensor, "scale": d.scale,
                              "operator": d.operator, "has_hr": d.has_hr,
                              "radiometry": dataset_radiometry(d, refs)})
        bar = _progress(len(refs) * len(methods), progress, f"{d.name}: {len(refs)} images × {len(methods)} methods")

        def one_image(i: int, ref: ImageRef, d: Any = d, dkey: str = dkey, bar: Any = bar,
                      band_names: Any = band_names) -> tuple[list[dict[str, Any]], dict[str, int], int | None]:
            """Rows, cache counts and HR pixel count (None: nothing loaded) of one image, every method: SR
            from the cache or computed, then scored."""
            img_rows: list[dict[str, Any]] = []
            n = dict.fromkeys(counts, 0)
            sample: Sample | None = None
            for m in methods:
                sc = cache.load_scores(dkey, m.key, skey, ref.id)
                if sc is not None:
                    n["scores_cached"] += 1
                else:
                    if sample is None:
                        sample = load_sample(d, ref, i)
                    sr = cache.load_sr(dkey, m.key, ref.id, _expected_shape(sample))
                    if sr is None:
                        sr = np.asarray(m.run(sample.lr, sample), dtype=np.float32)
                        if sample.hr is not None and sr.shape != sample.hr.shape:
                            raise DataError(f"method {m.name!r} returned {sr.shape} for image {ref.id!r}, "
                                            f"expected {sample.hr.shape}")
                        cache.save_sr(dkey, m.key, ref.id, sr)
                        n["sr_computed"] += 1
                    else:
                        n["sr_cached"] += 1
                    sc = score(sample, sr, data_range=cfg.data_range, metrics=metric_sel)
                    cache.save_scores(dkey, m.key, skey, ref.id, sc)
                    n["scores_computed"] += 1
                for name, val in sorted(sc.items()):
                    img_rows.extend(_metric_rows(d.name, ref.id, m.name, name, val, band_names))
                bar.update(1)
            return img_rows, n, None if sample is None else _hr_pixels(sample, d.scale)

        try:
            for img_rows, n in _map_images(one_image, refs):
                rows.extend(img_rows)
                for k, v in n.items():
                    counts[k] += v
        finally:
            bar.close()
    counts["cache_invalid"] = cache.invalid

    summary = summarise(rows, [m.name for m in methods], baseline, cfg)
    board = leaderboard(summary, cfg, [d.name for d in cfg.datasets], [bool(dd["has_hr"]) for dd in datasets_info])
    results: dict[str, Any] = stamped({
        "name": cfg.name,
        "config": cfg.hashable(),
        "versions": ver,
        "baseline": baseline,
        "baseline_added": auto_baseline,
        "methods": [{"name": m.name, "key": m.key, **m.info} for m in methods],
        "datasets": datasets_info,
        "data_range": cfg.data_range,
        "confidence": cfg.confidence,
        "bootstrap": cfg.bootstrap,
        "metric_docs": {n: _doc_dict(n) for n in sorted({r["metric"] for r in rows})},
        "per_image": rows,
        "summary": summary,
        "leaderboard": board,
        "cache": counts,
    })
    return BenchmarkResult(out, results, counts, refs=all_refs)


#: ``band`` of the row that holds a metric's value over all bands (the value the summary uses).
ALL_BANDS = "all"


def _metric_rows(dataset: str, image: str, method: str, metric: str, score: dict[str, Any], bands: list[str]
                 ) -> list[dict[str, Any]]:
    """Per-image rows of one metric (long format): band ``"all"`` with the metric's value, then one row
    per band with its per-band value when the metric has one value per band (non-finite ones omitted)."""
    base = {"dataset": dataset, "image": image, "method": method, "metric": metric}
    out = [{**base, "band": ALL_BANDS, "value": float(score["value"])}]
    pb = score.get("per_band") or []
    if len(pb) == len(bands):
        out += [{**base, "band": b, "value": float(v)} for b, v in zip(bands, pb, strict=True)
                if isinstance(v, (int, float)) and np.isfinite(v)]
    return out


def _doc_dict(name: str) -> dict[str, Any]:
    d = doc_for(name)
    return {"title": d.title, "higher_is_better": d.higher_is_better, "unit": d.unit, "formula": d.formula,
            "source": d.source, "quality": d.quality, "how": d.how}


def summarise(rows: list[dict[str, Any]], methods: list[str], baseline: str, cfg: BenchmarkConfig
              ) -> list[dict[str, Any]]:
    """Per dataset, method and metric: mean with bootstrap CI, and the paired difference to the baseline
    (of the values over all bands: rows with band ``"all"``, or rows without a band)."""
    table: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in rows:
        if r.get("band", ALL_BANDS) != ALL_BANDS:
            continue
        table.setdefault((r["dataset"], r["method"], r["metric"]), {})[r["image"]] = r["value"]
    out = []
    kw: dict[str, Any] = {"n_boot": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    for (ds, meth, metric), vals in sorted(table.items(), key=lambda kv: (kv[0][0], methods.index(kv[0][1]),
                                                                            kv[0][2])):
        ids = sorted(vals)
        est = bootstrap_mean([vals[i] for i in ids], **kw)
        row: dict[str, Any] = {"dataset": ds, "method": meth, "metric": metric, **est.to_dict()}
        base = table.get((ds, baseline, metric))
        if base is not None and meth != baseline:
            common = [i for i in ids if i in base]
            diff = paired_difference([vals[i] for i in common], [base[i] for i in common], **kw)
            dd = diff.to_dict()
            row.update(diff_mean=dd["mean"], diff_ci_low=dd["ci_low"], diff_ci_high=dd["ci_high"])
        else:
            row.update(diff_mean=None, diff_ci_low=None, diff_ci_high=None)
        out.append(row)
    return out


def default_rank_metric(has_hr: bool) -> str:
    """PSNR with an HR reference, LR fidelity without."""
    return "psnr" if has_hr else "lr_fidelity"


def leaderboard(summary: list[dict[str, Any]], cfg: BenchmarkConfig, datasets: list[str], has_hr: list[bool]
                ) -> list[dict[str, Any]]:
    """Methods ranked per dataset by ``rank_by`` (in the metric's better direction)."""
    board = []
    for ds, hr in zip(datasets, has_hr, strict=True):
        metric = cfg.rank_by or default_rank_metric(hr)
        rows = [r for r in summary if r["dataset"] == ds and r["metric"] == metric and r["mean"] is not None]
        hib = doc_for(metric).higher_is_better
        rows.sort(key=lambda r: -r["mean"] if hib is not False else r["mean"])
        for rank, r in enumerate(rows, 1):
            board.append({"dataset": ds, "rank": rank, "method": r["method"], "metric": metric, "mean": r["mean"],
                          "ci_low": r["ci_low"], "ci_high": r["ci_high"], "diff_mean": r["diff_mean"],
                          "diff_ci_low": r["diff_ci_low"], "diff_ci_high": r["diff_ci_high"], "n": r["n"]})
    return board


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, allow_nan=False), encoding="utf-8")


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> bool:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return True


def _write_outputs(out: Path, results: dict[str, Any], cfg: BenchmarkConfig, config_text: str | None) -> None:
    if config_text is not None:
        with atomic_path(out / "config.toml") as tmp:
            tmp.write_text(config_text, encoding="utf-8")
    _write_json(out / "config.json", stamped(results["config"]))
    _write_json(out / "versions.json", stamped(results["versions"]))
    for name in ("per_image", "summary", "leaderboard"):
        _write_csv(out / f"{name}.csv", results[name])
        _write_json(out / f"{name}.json", stamped({name: results[name]}))
        if name != "leaderboard":
            _write_parquet(out / f"{name}.parquet", results[name])
    _write_json(out / "results.json", stamped(results))
