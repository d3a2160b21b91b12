"""GDAL reads for the dataset readers: any GDAL path (incl. ``/vsizip/``), one-line DataError on failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eosr.data.sample import DNScale
from eosr.errors import DataError


@dataclass
class Grid:
    """Data (C, H, W) float32 reflectance with its CRS and transform (None when the file has none)."""

    data: np.ndarray
    crs: Any
    transform: Any


def why(e: BaseException) -> str:
    """First line of an exception's message (or its type name): for one-line errors."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_gdal(path: str, dn: DNScale | None = None) -> Grid:
    """Read every band of ``path``; integers use ``dn`` (default x1e-4), floats are kept (NaN = nodata).

    The file's own nodata value becomes NaN. Raises :class:`DataError` naming ``path`` on failure.
    """
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            raw = ds.read()
            crs = ds.crs
            tf = ds.transform if not ds.transform.is_identity else None
            nodata = ds.nodata
    except (RasterioError, OSError) as e:
        raise DataError(f"cannot read {path}: {why(e)}") from None
    if np.issubdtype(raw.dtype, np.integer):
        rule = dn or DNScale()
        out = rule.apply(raw)
    else:
        out = raw.astype(np.float32)
    if nodata is not None and not np.isnan(nodata):
        out[raw == nodata] = np.nan
    out[~np.isfinite(out)] = np.nan
    return Grid(out, crs, tf)
