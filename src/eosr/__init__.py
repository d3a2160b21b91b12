"""eosr: super-resolution of Earth-observation imagery, sensor physics and honest metrics first."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from eosr._schema import SCHEMA_VERSION

try:
    __version__ = version("eosr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["SCHEMA_VERSION", "__version__", "evaluate"]


def __getattr__(name: str) -> Any:
    """``eosr.evaluate`` is :func:`eosr.evaluation.evaluate`, imported on first use (torch is heavy)."""
    if name == "evaluate":
        from eosr.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'eosr' has no attribute {name!r}")
