"""Whole scenes: tiled super-resolution of GeoTIFF/COG, windowed simulation, exact metric aggregation.

Public API (imported lazily): :func:`super_resolve`, :func:`super_resolve_array`,
:func:`simulate_file`, :class:`PixelStats`, :func:`windowed_pixel_stats`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "super_resolve": "eosr.scene.sr",
    "super_resolve_array": "eosr.scene.sr",
    "simulate_file": "eosr.scene.simulate",
    "PixelStats": "eosr.scene.aggregate",
    "windowed_pixel_stats": "eosr.scene.aggregate",
    "TilePlan": "eosr.scene.tiling",
    "open_source": "eosr.scene.source",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'eosr.scene' has no attribute {name!r}")
