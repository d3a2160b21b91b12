"""Whole scenes: tiled super-resolution of GeoTIFF/COG, windowed simulation, exact metric aggregation.

Public API (imported lazily): :func:`super_resolve`, :func:`super_resolve_array`, :func:`sharpen_20m`,
:func:`simulate_file`, :func:`evaluate_files`, :class:`PixelStats`, :func:`windowed_pixel_stats`.
"""

from __future__ import annotations

from eosr._lazy import lazy_exports

_EXPORTS = {
    "super_resolve": "eosr.scene.sr",
    "super_resolve_array": "eosr.scene.sr",
    "sharpen_20m": "eosr.scene.sr",
    "simulate_file": "eosr.scene.simulate",
    "PixelStats": "eosr.scene.aggregate",
    "windowed_pixel_stats": "eosr.scene.aggregate",
    "TilePlan": "eosr.scene.tiling",
    "open_source": "eosr.scene.source",
    "open_multires": "eosr.scene.source",
    "evaluate_files": "eosr.scene.evaluate",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports("eosr.scene", _EXPORTS)
