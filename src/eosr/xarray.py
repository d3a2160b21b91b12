"""``import eosr.xarray`` registers the ``.eosr`` accessor on ``xarray.DataArray``:
``da.eosr.super_resolve("carn_m_s2_x2")`` is :func:`eosr.super_resolve` applied to ``da``, and
``da.eosr.degrade(op)`` is ``op(da)`` (docs/from_your_data.md). Nothing is registered by ``import eosr``
alone (xarray is not imported until needed)."""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataarray_accessor("eosr")
class EosrAccessor:
    """The ``.eosr`` namespace of a DataArray (state: the array it was taken from)."""

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    def super_resolve(self, model: Any, **options: Any) -> Any:
        """:func:`eosr.super_resolve` of this DataArray (a DataArray on the HR grid; lazy stays lazy)."""
        from eosr.scene.api import super_resolve

        return super_resolve(self._da, model, **options)

    def degrade(self, operator: Any, seed: int | None = None) -> Any:
        """``operator(da, seed)``: the simulated LR DataArray (pixel size x r, same origin)."""
        return operator(self._da, seed)
