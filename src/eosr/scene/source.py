"""Window-by-window access to a scene on disk: one GeoTIFF (any band count) or a folder of band files.

A :class:`SceneSource` reads ``(C, h, w)`` float32 reflectance windows (``DN * dn_scale + dn_offset``,
NaN where the file says nodata or the value is not finite) with rasterio windows, never the whole
scene. It is picklable (open datasets are cached per process and never pickled), so Dask workers can
read their own windows. A Sentinel-2 folder (``*_B05.tif`` ... one file per band, as in
``eosr.data``) gives one source per resolution group: the selected bands must share one grid.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eosr.errors import DataError, GeoError, ScaleError
from eosr.io.raster import check_grids, is_georeferenced, open_quietly, resolve_radiometry
from eosr.sensors import normalise_band_name

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")
_BAND_FILE = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?)$", re.IGNORECASE)

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


@dataclass
class SceneSource:
    """Band ``k`` of the scene is band ``bands[k][1]`` (1-based) of file ``paths[bands[k][0]]``."""

    paths: tuple[str, ...]
    bands: tuple[tuple[int, int], ...]
    band_names: tuple[str, ...]
    descriptions: tuple[str, ...]
    height: int
    width: int
    crs: Any
    transform: Any
    dtype: str
    nodata: tuple[float | None, ...]  # per file
    dn_scale: float
    dn_offset: float
    radiometry: str = "explicit"
    georeferenced: bool = True
    _handles: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def count(self) -> int:
        """Number of bands."""
        return len(self.bands)

    @property
    def out_nodata(self) -> float | None:
        """The nodata value written back (the first file's)."""
        return self.nodata[0]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _ds(self, k: int) -> Any:
        ds = self._handles.get(k)
        if ds is None or ds.closed:
            ds = _open(self.paths[k])
            self._handles[k] = ds
        return ds

    def close(self) -> None:
        """Close the cached datasets of this process."""
        for ds in self._handles.values():
            ds.close()
        self._handles.clear()

    def read(self, window: Window) -> np.ndarray:
        """Read rows ``[r0, r1)`` and columns ``[c0, c1)`` as float32 reflectance, NaN = nodata."""
        from rasterio.errors import RasterioError
        from rasterio.windows import Window as RioWindow

        r0, r1, c0, c1 = window
        win = RioWindow(c0, r0, c1 - c0, r1 - r0)
        out = np.empty((self.count, r1 - r0, c1 - c0), dtype=np.float32)
        for k, (f, b) in enumerate(self.bands):
            try:
                raw = self._ds(f).read(b, window=win)
            except RasterioError as e:
                raise DataError(f"cannot read {self.paths[f]}: {str(e).splitlines()[0]}") from None
            v = raw.astype(np.float32)
            if (self.dn_scale, self.dn_offset) != (1.0, 0.0):
                v = v * np.float32(self.dn_scale) + np.float32(self.dn_offset)
            nd = self.nodata[f]
            if nd is not None:
                v[np.isnan(raw) if np.isnan(nd) else raw == nd] = np.nan
            v[~np.isfinite(v)] = np.nan
            out[k] = v
        return out


def _open(path: str | os.PathLike[str]) -> Any:
    from rasterio.errors import RasterioError

    try:
        return open_quietly(path)
    except RasterioError as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _file_band_name(path: Path) -> str | None:
    m = _BAND_FILE.search(path.stem)
    return normalise_band_name(m.group(1)) if m else None


def _check_dtype(path: Any, dtype: str) -> None:
    if dtype not in SUPPORTED_DTYPES:
        raise DataError(f"{path}: unsupported data type {dtype} (supported: {', '.join(SUPPORTED_DTYPES)})")


def open_source(path: str | os.PathLike[str], bands: Sequence[str | int] | None = None, *,
                dn_scale: float | None = None, dn_offset: float | None = None) -> SceneSource:
    """Open a GeoTIFF or a folder of single-band files (``*_B05.tif``) for windowed reading.

    DN -> reflectance follows :func:`eosr.io.raster.resolve_radiometry` (explicit ``dn_scale`` /
    ``dn_offset`` first, then the files' metadata, the Sentinel-2 naming convention, float as is).

    GeoTIFF: ``bands`` selects by 1-based index or by band description (``B5`` == ``B05``); when the
    file has no band descriptions, names in ``bands`` label the file's bands in order (their count
    must match). Folder: ``bands`` selects files by band name; the selection must share one grid
    (CRS, origin, pixel size, size), e.g. the 20 m group of a Sentinel-2 scene.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"input not found: {p}")
    if p.is_dir():
        return _open_folder(p, bands, dn_scale, dn_offset)
    with _open(p) as ds:
        _check_dtype(p, ds.dtypes[0])
        if len(set(ds.dtypes)) > 1:
            raise DataError(f"{p}: bands of different data types {sorted(set(ds.dtypes))}")
        desc = [normalise_band_name(d) if d else "" for d in ds.descriptions]
        if bands is None:
            idx = list(range(1, ds.count + 1))
            names = [d or f"band{i}" for i, d in zip(idx, desc, strict=True)]
        elif all(isinstance(b, str) for b in bands) and not any(desc):
            if len(bands) != ds.count:
                raise DataError(f"{p}: {len(bands)} band names for a file of {ds.count} undescribed bands")
            idx = list(range(1, ds.count + 1))
            names = [normalise_band_name(str(b)) for b in bands]
        else:
            idx, names = [], []
            for b in bands:
                if isinstance(b, int) or (isinstance(b, str) and b.isdigit()):
                    i = int(b)
                    if not 1 <= i <= ds.count:
                        raise DataError(f"{p}: band index {i} outside 1..{ds.count}")
                    idx.append(i)
                    names.append(desc[i - 1] or f"band{i}")
                    continue
                key = normalise_band_name(b)
                if key not in desc:
                    raise DataError(f"{p}: no band described as {b!r} (bands: {', '.join(d or '?' for d in desc)})")
                idx.append(desc.index(key) + 1)
                names.append(key)
        descriptions = tuple(ds.descriptions[i - 1] or "" for i in idx)
        labels = list(descriptions) if all(descriptions) else ([p.stem] if len(idx) == 1 else [])
        rad = resolve_radiometry(str(p), ds.dtypes[0], scales=[ds.scales[i - 1] for i in idx],
                                 offsets=[ds.offsets[i - 1] for i in idx], labels=labels, dn_scale=dn_scale,
                                 dn_offset=dn_offset)
        return SceneSource((str(p),), tuple((0, i) for i in idx), tuple(names), descriptions, ds.height, ds.width,
                           ds.crs, ds.transform, ds.dtypes[0], (ds.nodata,), rad.dn_scale, rad.dn_offset, rad.rule,
                           is_georeferenced(ds))


def _open_folder(p: Path, bands: Sequence[str | int] | None, dn_scale: float | None = None,
                 dn_offset: float | None = None) -> SceneSource:
    files = {}
    for f in sorted(p.iterdir()):
        if f.suffix.lower() in (".tif", ".tiff") and (name := _file_band_name(f)):
            files[name] = f
    if not files:
        raise DataError(f"{p}: no band files named like *_B05.tif in the folder")
    if bands is None:
        sel = sorted(files)
    else:
        sel = []
        for b in bands:
            key = normalise_band_name(str(b))
            if key not in files:
                raise DataError(f"{p}: no file for band {b!r} (bands: {', '.join(sorted(files))})")
            sel.append(key)
    grids: dict[tuple[Any, ...], list[str]] = {}
    info = {}
    for name in sel:
        with _open(files[name]) as ds:
            _check_dtype(files[name], ds.dtypes[0])
            grid = (str(ds.crs), tuple(round(v, 6) for v in ds.transform[:6]), ds.height, ds.width)
            grids.setdefault(grid, []).append(name)
            info[name] = (ds.dtypes[0], ds.nodata, ds.scales[0], ds.offsets[0], ds.crs, ds.transform)
            if not is_georeferenced(ds):
                raise GeoError(f"{files[name]}: a band folder needs georeferenced files")
    if len(grids) > 1:
        groups = "; ".join(f"{abs(k[1][0]):g} m {k[2]}x{k[3]}: {','.join(v)}" for k, v in grids.items())
        raise GeoError(f"{p}: the bands lie on different grids ({groups}); choose one group with --bands")
    dtypes = {info[n][0] for n in sel}
    if len(dtypes) > 1:
        raise DataError(f"{p}: band files of different data types {sorted(dtypes)}")
    (grid,) = grids
    dt, _, _, _, crs, tr = info[sel[0]]
    rad = resolve_radiometry(str(p), dt, scales=[info[n][2] for n in sel], offsets=[info[n][3] for n in sel],
                             labels=[files[n].stem for n in sel], dn_scale=dn_scale, dn_offset=dn_offset)
    return SceneSource(tuple(str(files[n]) for n in sel), tuple((k, 1) for k in range(len(sel))), tuple(sel),
                       tuple(sel), grid[2], grid[3], crs, tr, dt, tuple(info[n][1] for n in sel), rad.dn_scale,
                       rad.dn_offset, rad.rule)


@dataclass
class PackedSource:
    """A Sentinel-2 10 m + 20 m band folder as ONE source on the 20 m grid (for multi-resolution models).

    ``read(window)`` (20 m pixels) returns the 10 m bands of the same footprint space-to-depth packed by
    2 (channel 4 c + 2 i + j = 10 m pixel (2 y + i, 2 x + j) of band c, as ``torch.pixel_unshuffle``),
    followed by the 20 m bands: (4 C10 + C20, h, w) float32 reflectance, NaN = nodata.
    """

    s10: SceneSource
    s20: SceneSource

    def __getattr__(self, name: str) -> Any:  # grid, dtype, DN scale: those of the 20 m bands
        if name in ("s10", "s20") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.s20, name)

    @property
    def count(self) -> int:
        """Packed channel count 4 C10 + C20."""
        return 4 * self.s10.count + self.s20.count

    @property
    def nodata(self) -> tuple[float | None, ...]:
        """Nodata values of every file (10 m files first)."""
        return self.s10.nodata + self.s20.nodata

    def read(self, window: Window) -> np.ndarray:
        """The packed window (see the class docstring)."""
        r0, r1, c0, c1 = window
        a10 = self.s10.read((2 * r0, 2 * r1, 2 * c0, 2 * c1))
        c, h, w = a10.shape
        packed = a10.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3).reshape(4 * c, h // 2, w // 2)
        return np.concatenate([packed, self.s20.read(window)])

    def close(self) -> None:
        """Close the datasets of this process."""
        self.s10.close()
        self.s20.close()


def open_multires(path: str | os.PathLike[str], bands_10m: Sequence[str], bands_20m: Sequence[str], *,
                  dn_scale: float | None = None, dn_offset: float | None = None) -> PackedSource:
    """Open the 10 m and 20 m bands of a band folder as one :class:`PackedSource` on the 20 m grid.

    The groups must share CRS, origin and footprint with exactly twice the pixel size (GDAL pixel-is-area).
    """
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"a multi-resolution model needs a folder of band files (*_B05.tif), got {p}")
    s10 = _open_folder(p, list(bands_10m), dn_scale, dn_offset)
    s20 = _open_folder(p, list(bands_20m), dn_scale, dn_offset)
    try:
        check_grids(s10, s20, 2, names=("10 m bands", "20 m bands"))
    except (GeoError, ScaleError) as e:
        raise type(e)(f"{p}: {e}") from None
    if s10.dtype != s20.dtype or (s10.dn_scale, s10.dn_offset) != (s20.dn_scale, s20.dn_offset):
        raise DataError(f"{p}: 10 m and 20 m bands differ in data type or DN scale")
    return PackedSource(s10, s20)
