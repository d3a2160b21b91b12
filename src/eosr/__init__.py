"""eosr: super-resolution of Earth-observation imagery, sensor physics and honest metrics first."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from eosr._schema import SCHEMA_VERSION

try:
    __version__ = version("eosr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["SCHEMA_VERSION", "__version__", "evaluate", "super_resolve"]


def __getattr__(name: str) -> Any:
    """``eosr.evaluate`` is :func:`eosr.evaluation.evaluate` and ``eosr.super_resolve`` is
    :func:`eosr.scene.api.super_resolve`, imported on first use (torch is heavy)."""
    if name == "evaluate":
        from eosr.evaluation import evaluate

        return evaluate
    if name == "super_resolve":
        from eosr.scene.api import super_resolve

        return super_resolve
    raise AttributeError(f"module 'eosr' has no attribute {name!r}")
