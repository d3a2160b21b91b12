"""xarray / rioxarray at the edges of the functional API: DataArray in, the same kind out.

A ``DataArray`` of dims ``(band, y, x)`` (or ``(y, x)``) is taken apart into a float32 reflectance array,
its band names, its grid (affine transform and CRS through rioxarray, pixel-is-area) and its attributes;
:func:`rebuild` puts a result on a new grid back together: ``x``/``y`` coordinates at the pixel centres
of the new transform, CRS and transform written with ``rio.write_crs`` / ``rio.write_transform``, band
names and attributes carried over (docs/from_your_data.md, "xarray").

DN -> reflectance follows :func:`eosr.io.raster.resolve_radiometry`: explicit ``dn_scale``/``dn_offset``,
else the CF attributes ``scale_factor``/``add_offset`` (as rioxarray reads them without ``mask_and_scale``),
else the Sentinel-2 convention for integer data whose bands are named like ``B04``, float as is, else
refused. The encoded nodata (``rio.nodata`` / ``_FillValue``) becomes NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eosr.errors import DataError, ShapeError

#: Attributes describing the stored encoding of the input: not true of a float32 reflectance result.
_ENCODING_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "valid_range", "scales", "offsets",
                   "nodatavals")


def is_dataarray(x: Any) -> bool:
    """Whether ``x`` is an ``xarray.DataArray`` (without importing xarray when it is not loaded)."""
    import sys

    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(x, xr.DataArray)


def is_lazy(x: Any) -> bool:
    """Whether a DataArray is Dask-backed."""
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is a dependency
        return False
    return isinstance(getattr(x, "data", None), da.Array)


@dataclass
class Grid:
    """What a DataArray carries besides its values."""

    band_names: list[str]
    band_coord: list[Any] | None
    transform: Any  # affine.Affine or None (no spatial coordinates)
    crs: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    name: Any = None
    dims: tuple[str, str, str] = ("band", "y", "x")
    squeeze: bool = False  # the input had no band dimension


def _names(da: Any, n: int, band_dim: str | None) -> tuple[list[str], list[Any] | None]:
    from eosr.sensors import normalise_band_name

    coord = list(da[band_dim].values.tolist()) if band_dim is not None and band_dim in da.coords else None
    if coord is not None and all(isinstance(v, str) and v for v in coord):
        return [normalise_band_name(v) for v in coord], coord
    long = da.attrs.get("long_name")
    if isinstance(long, (list, tuple)) and len(long) == n and all(isinstance(v, str) and v for v in long):
        return [normalise_band_name(v) for v in long], coord
    if n == 1 and isinstance(long, str) and long:
        return [normalise_band_name(long)], coord
    return [f"band{i + 1}" for i in range(n)], coord


def split(da: Any, *, dn_scale: float | None = None, dn_offset: float | None = None,
          values: bool = True) -> tuple[Any, Grid]:
    """``(C, H, W)`` float32 reflectance (NumPy, or a Dask array for lazy input; None with ``values=False``)
    and the :class:`Grid` of a DataArray."""
    from eosr.io.raster import check_float_reflectance, float_sample, resolve_radiometry

    squeeze = da.ndim == 2
    if squeeze:
        da = da.expand_dims("band")
    if da.ndim != 3:
        raise ShapeError(f"a DataArray must be (band, y, x) or (y, x), got dims {da.dims}")
    band_dim, ydim, xdim = (str(d) for d in da.dims)
    transform = crs = None
    if {xdim, ydim} <= set(da.coords):
        try:
            rio = da.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim, inplace=False).rio
            transform, crs = rio.transform(recalc=True), rio.crs
        except Exception as e:  # rioxarray raises several types for irregular or missing coordinates
            raise DataError(f"the DataArray's {ydim}/{xdim} coordinates are not a regular grid: {e}") from None
        from eosr.io.raster import check_north_up

        check_north_up(transform, "DataArray")
    n = int(da.shape[0])
    names, coord = _names(da, n, band_dim if not squeeze else None)
    grid = Grid(names, coord, transform, crs, dict(da.attrs), da.name, (band_dim, ydim, xdim), squeeze)
    if not values:
        return None, grid
    dtype = np.dtype(da.dtype)
    sf, ao = da.attrs.get("scale_factor"), da.attrs.get("add_offset")
    rad = resolve_radiometry("DataArray", dtype.name, scales=[sf] if sf is not None else None,
                             offsets=[ao] if ao is not None else None,
                             labels=names if not names[0].startswith("band") else (), dn_scale=dn_scale,
                             dn_offset=dn_offset)
    nodata = da.attrs.get("_FillValue", None)
    try:
        enc = da.rio.encoded_nodata if da.rio.encoded_nodata is not None else da.rio.nodata
        nodata = enc if enc is not None else nodata
    except Exception:  # no rio accessor data: keep the attribute
        pass
    data = da.data
    lazy = is_lazy(da)
    if lazy:
        out = data.astype(np.float32)
    else:
        out = np.asarray(data).astype(np.float32)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        out = _where(data == nodata, np.float32(np.nan), out)
    if (rad.dn_scale, rad.dn_offset) != (1.0, 0.0):
        out = out * np.float32(rad.dn_scale) + np.float32(rad.dn_offset)
    if rad.rule == "float values":  # (a lazy array: the central window is computed, the rest if it is empty)
        sample = np.asarray(float_sample(out, spread=not lazy))
        if lazy and not np.isfinite(sample).any():
            sample = np.asarray(float_sample(out))
        check_float_reflectance("DataArray", sample)
    grid.attrs["eosr_radiometry"] = rad.rule
    return out, grid


def _where(cond: Any, a: Any, b: Any) -> Any:
    if hasattr(b, "dask") or type(b).__module__.startswith("dask"):
        import dask.array as da

        return da.where(cond, a, b)
    return np.where(cond, a, b)


def rebuild(data: Any, grid: Grid, *, transform: Any = None, band_names: list[str] | None = None,
            attrs: dict[str, Any] | None = None) -> Any:
    """A DataArray of ``data`` (C, H, W) on ``transform`` (default: the input's) with ``grid``'s CRS, band
    coordinate, name and attributes (encoding attributes dropped; ``attrs`` added)."""
    import xarray as xr

    c, h, w = data.shape
    band_dim, ydim, xdim = grid.dims
    t = grid.transform if transform is None else transform
    names = band_names if band_names is not None else grid.band_names
    if band_names is None and grid.band_coord is not None and len(grid.band_coord) == c:
        band = grid.band_coord
    elif band_names is not None or not names[0].startswith("band"):
        band = list(names)
    else:
        band = list(range(1, c + 1))
    coords: dict[str, Any] = {band_dim: band}
    if t is not None:
        coords[xdim] = t.c + (np.arange(w) + 0.5) * t.a
        coords[ydim] = t.f + (np.arange(h) + 0.5) * t.e
    keep = {k: v for k, v in grid.attrs.items() if k not in _ENCODING_ATTRS}
    if "long_name" in keep and isinstance(keep["long_name"], (list, tuple)) and len(keep["long_name"]) != c:
        keep.pop("long_name")
    if band_names is not None:
        keep["long_name"] = tuple(band_names)
    keep.update(attrs or {})
    out = xr.DataArray(data, dims=(band_dim, ydim, xdim), coords=coords, attrs=keep, name=grid.name)
    if t is not None:
        out = out.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim, inplace=False)
        if grid.crs is not None:
            out = out.rio.write_crs(grid.crs, inplace=False)
        out = out.rio.write_transform(t, inplace=False)
        out = out.rio.write_nodata(np.nan, encoded=False, inplace=False)
    return out[0] if grid.squeeze and c == 1 else out


def on_grid(fn: Callable[[np.ndarray], Any], da: Any, coarsen: int = 1, **attrs: Any) -> Any:
    """Apply an array function to a DataArray and return a DataArray on the grid ``coarsen`` times coarser
    (same origin, pixel-is-area; 1 = the same grid). A Dask-backed input is computed first."""
    from eosr.io.raster import lr_transform

    arr, grid = split(da)
    out = np.asarray(fn(np.asarray(arr)))
    t = grid.transform if grid.transform is None or coarsen == 1 else lr_transform(grid.transform, coarsen)
    return rebuild(out, grid, transform=t, attrs=attrs)


@dataclass
class _GridView:
    crs: Any
    transform: Any
    height: int
    width: int


def unwrap_for_evaluation(sr: Any, hr: Any, lr: Any, mask: Any, uncertainty: Any,
                          bands: Any) -> tuple[Any, Any, Any, Any, Any, Any, dict[str, Any]]:
    """NumPy arrays from DataArray inputs of an evaluation, their grids checked: HR, mask and uncertainty
    on the SR grid, LR on the SR grid at an integer coarser scale (same origin; :func:`check_grids`).
    ``bands`` defaults to the SR's band names when it names them. Returns the arrays, ``bands`` and an
    info record (CRS, SR transform)."""
    from eosr.io.raster import check_grids

    out: list[Any] = []
    grids: dict[str, Grid] = {}
    for key, v in (("sr", sr), ("hr", hr), ("lr", lr), ("mask", mask), ("uncertainty", uncertainty)):
        if is_dataarray(v):
            if key == "mask":  # validity as given (True / non-zero = valid): no radiometry
                arr, grids[key] = np.asarray(v.values), split(v, values=False)[1]
            else:
                a, grids[key] = split(v)
                arr = np.asarray(a)
            out.append(arr)
        else:
            out.append(v)
    info: dict[str, Any] = {}
    g_sr = grids.get("sr")
    if g_sr is not None and g_sr.transform is not None:
        h, w = out[0].shape[-2:]
        fine = _GridView(g_sr.crs, g_sr.transform, int(h), int(w))
        for key, idx in (("hr", 1), ("mask", 3), ("uncertainty", 4), ("lr", 2)):
            gk = grids.get(key)
            if gk is None or gk.transform is None:
                continue
            hh, ww = out[idx].shape[-2:]
            other = _GridView(gk.crs, gk.transform, int(hh), int(ww))
            r = check_grids(fine, other, None if key == "lr" else 1, names=("SR", key.upper()))
            if key != "lr" and r != 1:
                raise ShapeError(f"{key} is not on the SR grid")
        info = {"crs": str(g_sr.crs) if g_sr.crs is not None else None, "transform": list(g_sr.transform)[:6]}
        if bands is None and not g_sr.band_names[0].startswith("band"):
            bands = list(g_sr.band_names)
    return out[0], out[1], out[2], out[3], out[4], bands, info
