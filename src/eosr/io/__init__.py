"""GeoTIFF/COG input and output with georeferencing intact (pixel-is-area), atomic writes."""

from eosr.io.raster import (
    Raster,
    atomic_path,
    check_pair,
    lr_transform,
    read_raster,
    write_raster,
)

__all__ = ["Raster", "atomic_path", "check_pair", "lr_transform", "read_raster", "write_raster"]
