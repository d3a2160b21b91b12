"""Whole scenes: file-level simulation, and (later) tiled super-resolution of GeoTIFF/COG."""
