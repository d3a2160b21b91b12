"""Reproducible benchmarks of SR methods and their self-contained HTML report.

>>> from eosr.benchmark import run_benchmark          # doctest: +SKIP
>>> res = run_benchmark("configs/benchmark_ben_x2.toml", "out")
>>> res.report                                        # out/report.html

Submodules load on first use, so ``import eosr.benchmark`` stays light.
"""

from __future__ import annotations

from eosr._lazy import lazy_exports

_EXPORTS = {
    "run_benchmark": "eosr.benchmark.runner",
    "BenchmarkResult": "eosr.benchmark.runner",
    "load_config": "eosr.benchmark.config",
    "parse_config": "eosr.benchmark.config",
    "check_config": "eosr.benchmark.config",
    "BenchmarkConfig": "eosr.benchmark.config",
    "bootstrap_mean": "eosr.benchmark.stats",
    "paired_difference": "eosr.benchmark.stats",
    "run_demo": "eosr.benchmark.demo",
}


__getattr__ = lazy_exports("eosr.benchmark", _EXPORTS)


__all__ = sorted(_EXPORTS)
