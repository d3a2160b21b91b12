"""Time and size of the benchmark report of `eosr demo`, and the share of its interactive viewer, one run.

    .venv/bin/python benchmarks/bench_report.py [--out /tmp/eosr-bench-report] [--quick]

Runs the demo benchmark once without a report (SR outputs and scores cached in ``--out``), then builds
the report 3 times and prints the median wall and CPU seconds of the whole report, of the viewer's data
(every image at full resolution: decoding from the cache, error and hallucination maps, uint16
encoding) and of the rest (Matplotlib figures, tables, template), the viewer's share, and the size of
the HTML file and of its parts. ``--quick`` uses 2 of the 6 demo patches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/eosr-bench-report")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)

    from eosr.benchmark import report
    from eosr.benchmark.cache import Cache
    from eosr.benchmark.demo import demo_config
    from eosr.benchmark.methods import load_method
    from eosr.benchmark.runner import _with_baseline, run_benchmark

    cfg, _ = demo_config(limit=2 if a.quick else None)
    out = Path(a.out)
    res = run_benchmark(cfg, out, progress=False, report=False, overwrite=True)
    methods = [load_method(m, False, False) for m in _with_baseline(cfg)[0]]
    spent: dict[str, list[float]] = {"viewer_wall": [], "viewer_cpu": []}
    inner = report.viewer_data

    def timed(*args: Any, **kw: Any) -> dict[str, Any]:
        t, c = time.perf_counter(), time.process_time()
        v = inner(*args, **kw)
        spent["viewer_wall"].append(time.perf_counter() - t)
        spent["viewer_cpu"].append(time.process_time() - c)
        return v

    report.viewer_data = timed  # type: ignore[assignment]
    walls, cpus, html = [], [], ""
    report.render(report.build_context(res.results, cfg, Cache(out / "cache"), methods, res.refs[cfg.datasets[0].name]))
    spent = {k: [] for k in spent}  # the first build warms imports and the cache
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        ctx = report.build_context(res.results, cfg, Cache(out / "cache"), methods, res.refs[cfg.datasets[0].name])
        html = report.render(ctx)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    vw, vc = statistics.median(spent["viewer_wall"]), statistics.median(spent["viewer_cpu"])
    size = len(html.encode("utf-8"))
    viewer_bytes = len(ctx["viewer_json"].encode("utf-8"))
    n = len(json.loads(ctx["viewer_json"].replace("<\\/", "</"))["images"])
    print(f"{'part':<34}{'wall s':>9}{'CPU s':>9}{'MB':>9}")
    print(f"{'report (build + render)':<34}{wall:>9.2f}{cpu:>9.2f}{size / 1e6:>9.2f}")
    print(f"{'  viewer data (' + str(n) + ' images)':<34}{vw:>9.2f}{vc:>9.2f}{viewer_bytes / 1e6:>9.2f}")
    print(f"{'  the rest':<34}{wall - vw:>9.2f}{cpu - vc:>9.2f}{(size - viewer_bytes) / 1e6:>9.2f}")
    print(f"viewer share of the report's CPU time: {100 * vc / cpu:.0f} %; report with / without the viewer: "
          f"{cpu / max(cpu - vc, 1e-9):.2f}x CPU")


if __name__ == "__main__":
    main()
