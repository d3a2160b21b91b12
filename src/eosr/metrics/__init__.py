"""Metrics that tell the truth: standard, physically informed, gradient-stratified, spectral,
registration- and radiometry-aware, hallucination, and published-protocol presets.

Submodules are imported lazily on first attribute access, so ``import eosr.metrics`` stays light:
``from eosr.metrics import psnr`` finds ``psnr`` in whichever submodule defines it.
"""

from __future__ import annotations

import importlib
from typing import Any

from eosr.metrics.base import MetricInfo, MetricResult

_SUBMODULES = (
    "standard",
    "fidelity",
    "stratified",
    "frequency",
    "registration",
    "hallucination",
    "presets",
    "perceptual",
)


def __getattr__(name: str) -> Any:
    for sub in _SUBMODULES:
        try:
            mod = importlib.import_module(f"eosr.metrics.{sub}")
        except ModuleNotFoundError as e:
            if e.name == f"eosr.metrics.{sub}":
                continue
            raise
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module 'eosr.metrics' has no attribute {name!r}")


__all__ = ["MetricInfo", "MetricResult"]
