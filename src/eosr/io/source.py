"""The one input layer of every command: window-by-window access to a scene on disk.

Inputs: one GeoTIFF/COG (any band count) or other GDAL raster (PNG, JPEG: no georeference), a folder of
band files (``*_B05.tif``), a Sentinel-2 product (``.SAFE`` folder or zip, :mod:`eosr.io.sentinel2`) or
a STAC item (:mod:`eosr.io.stac`); docs/from_your_data.md. A :class:`SceneSource` reads ``(C, h, w)``
float32 reflectance windows (``DN * dn_scale + dn_offset``, NaN where the file says nodata, the value is
not finite or, on request, a product's class mask says invalid) with rasterio windows, never the whole
scene. It is picklable (open datasets are cached per process and never pickled), so Dask workers can
read their own windows. A folder, product or item gives one source per resolution group: the selected
bands must share one grid. :func:`read_scene` reads a whole selection into a :class:`~eosr.io.raster.Raster`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eosr._windows import centre_box
from eosr.errors import DataError, GeoError, RadiometryError
from eosr.io.raster import (
    MEMORY_CHECK_BYTES,
    Radiometry,
    Raster,
    check_budget,
    check_declared_size,
    check_float_reflectance,
    check_north_up,
    file_band_name,
    is_georeferenced,
    open_quietly,
    raster_bytes,
    resolve_radiometry,
    resolve_with_mtl,
    undescribed_labels,
)
from eosr.sensors import normalise_band_name

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")

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
    #: Validity from a class raster (Sentinel-2 L2A SCL): (GDAL path, invalid classes, k) where one class
    #: pixel covers k x k source pixels (k > 0) or -k x -k class pixels make one source pixel (k < 0).
    class_mask: tuple[str, tuple[int, ...], int] | None = None
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
        need = 2 * raster_bytes(self.count, r1 - r0, c1 - c0, "float32")
        if need > MEMORY_CHECK_BYTES:
            check_budget(f"reading {self.count} bands of {r1 - r0}x{c1 - c0} px of {self.paths[0]}", memory=need)
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
        if self.class_mask is not None:
            out[:, ~self._valid(window)] = np.nan
        return out

    def _valid(self, window: Window) -> np.ndarray:
        """Validity of ``window`` from the class raster (see ``class_mask``), on this source's grid."""
        from rasterio.windows import Window as RioWindow

        path, invalid, k = self.class_mask  # type: ignore[misc]
        r0, r1, c0, c1 = window
        ds = self._handles.get(-1)
        if ds is None or ds.closed:
            ds = self._handles[-1] = _open(path)
        if k > 0:  # class pixels are k x k source pixels: read the covering window and repeat
            y0, x0 = r0 // k, c0 // k
            y1, x1 = -(-r1 // k), -(-c1 // k)
            cls = ds.read(1, window=RioWindow(x0, y0, x1 - x0, y1 - y0), boundless=True, fill_value=0)
            ok = ~np.isin(cls, invalid)
            ok = np.repeat(np.repeat(ok, k, axis=0), k, axis=1)
            return ok[r0 - y0 * k:r1 - y0 * k, c0 - x0 * k:c1 - x0 * k]
        m = -k  # one source pixel = m x m class pixels: invalid if any of them is
        cls = ds.read(1, window=RioWindow(c0 * m, r0 * m, (c1 - c0) * m, (r1 - r0) * m), boundless=True, fill_value=0)
        bad = np.isin(cls, invalid).reshape(r1 - r0, m, c1 - c0, m).any(axis=(1, 3))
        return np.asarray(~bad)


def _open(path: str | os.PathLike[str]) -> Any:
    from rasterio.errors import RasterioError

    try:
        return open_quietly(path)
    except RasterioError as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _check_dtype(path: Any, dtype: str) -> None:
    if dtype not in SUPPORTED_DTYPES:
        raise DataError(f"{path}: unsupported data type {dtype} (supported: {', '.join(SUPPORTED_DTYPES)})")


def open_source(path: str | os.PathLike[str], bands: Sequence[str | int] | None = None, *,
                dn_scale: float | None = None, dn_offset: float | None = None, mask: bool = False) -> SceneSource:
    """Open a GeoTIFF, a folder of single-band files (``*_B05.tif``) or a Sentinel-2 product (``.SAFE``
    folder or ``.zip``, :mod:`eosr.io.sentinel2`) for windowed reading.

    ``mask``: pixels that the product's scene classification marks invalid (L2A SCL: clouds, shadows,
    saturated, no data) read as NaN, like nodata (evaluation and training data use it; SR does not).

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
    src = _open_any(p, bands, dn_scale, dn_offset, mask)
    if src.radiometry == "float values":  # float read as it is: refused when it is not reflectance
        try:
            check_float_reflectance(str(p), _float_sample(src))
        except RadiometryError:
            src.close()
            raise
    return src


def _float_sample(src: SceneSource, size: int = 512) -> np.ndarray:
    """The central window of ``src`` (at most ``size``²), or, when it holds no finite value (nodata in the
    middle of the scene), every k-th row of the whole scene (about ``size`` rows, all columns)."""
    centre = src.read(centre_box(src.height, src.width, size))
    if np.isfinite(centre).any():
        return centre
    step = max(1, -(-src.height // size))
    return np.concatenate([src.read((r, r + 1, 0, src.width)) for r in range(0, src.height, step)], axis=1)


def _open_any(p: Path, bands: Sequence[str | int] | None, dn_scale: float | None, dn_offset: float | None,
              mask: bool) -> SceneSource:
    from eosr.io.sentinel2 import is_safe
    from eosr.io.stac import is_stac_item

    if is_stac_item(p):
        return _open_stac(p, bands, dn_scale, dn_offset)
    if p.is_dir() or is_safe(p):
        return _open_folder(p, bands, dn_scale, dn_offset, mask=mask)
    with _open(p) as ds:
        _check_dtype(p, ds.dtypes[0])
        check_declared_size(str(p), ds.count, ds.height, ds.width)
        check_north_up(ds.transform, str(p))
        if len(set(ds.dtypes)) > 1:
            raise DataError(f"{p}: bands of different data types {sorted(set(ds.dtypes))}")
        desc = [normalise_band_name(d) if d else "" for d in ds.descriptions]
        if bands is None:
            idx = list(range(1, ds.count + 1))
            names = [d or f"band{i}" for i, d in zip(idx, desc, strict=True)]
            if ds.count == 1 and not desc[0] and (token := file_band_name(p)):  # T33UUP_..._B04.jp2, l8_B4.tif
                names = [token]
        elif (labels := undescribed_labels(p, desc, bands)) is not None:
            idx, names = list(range(1, ds.count + 1)), labels
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
        rad = resolve_with_mtl(str(p), ds.dtypes[0], [str(p)] if len(idx) == 1 else [],
                               scales=[ds.scales[i - 1] for i in idx], offsets=[ds.offsets[i - 1] for i in idx],
                               labels=labels, dn_scale=dn_scale, dn_offset=dn_offset)
        return SceneSource((str(p),), tuple((0, i) for i in idx), tuple(names), descriptions, ds.height, ds.width,
                           ds.crs, ds.transform, ds.dtypes[0], (ds.nodata if ds.nodata is not None else rad.fill,),
                           rad.dn_scale, rad.dn_offset, rad.rule,
                           is_georeferenced(ds))


def _open_folder(p: Path, bands: Sequence[str | int] | None, dn_scale: float | None = None,
                 dn_offset: float | None = None, *, mask: bool = False) -> SceneSource:
    """A band folder (``*_B05.tif``; Landsat bands with their ``*_MTL.txt``, :mod:`eosr.io.landsat`) or a
    Sentinel-2 product (``.SAFE`` folder or zip) as one source."""
    from eosr.io.sentinel2 import is_safe

    if is_safe(p):
        return _open_safe(p, bands, dn_scale, dn_offset, mask=mask)
    return _open_band_files(str(p), _folder_files(p), bands, dn_scale, dn_offset)


def _folder_files(p: Path) -> dict[str, str]:
    """Band name -> file of a band folder (``*_B05.tif``); none is a :class:`DataError`."""
    files = {}
    for f in sorted(p.iterdir()):
        if f.suffix.lower() in (".tif", ".tiff") and (name := file_band_name(f)):
            files[name] = str(f)
    if not files:
        raise DataError(f"{p}: no band files named like *_B05.tif in the folder")
    return files


def input_bands(path: str | os.PathLike[str]) -> list[str]:
    """The band names a band folder, Sentinel-2 product or STAC item holds, on any of its grids."""
    from eosr.io.sentinel2 import is_safe, open_safe
    from eosr.io.stac import is_stac_item, item_bands

    p = Path(path)
    if is_stac_item(p):
        return sorted(item_bands(p))
    if is_safe(p):
        return sorted(open_safe(p).band_files)
    return sorted(_folder_files(p))


def _open_safe(p: Path, bands: Sequence[str | int] | None, dn_scale: float | None, dn_offset: float | None, *,
               mask: bool) -> SceneSource:
    """The selected bands of a Sentinel-2 product (:mod:`eosr.io.sentinel2`): DN -> reflectance from the
    product metadata (an explicit ``dn_scale`` wins), DN 0 = nodata, and with ``mask`` (Level-2A) the SCL
    classes :data:`~eosr.io.sentinel2.SCL_INVALID` (clouds, shadows, saturated, no data) read as NaN."""
    from eosr.io.sentinel2 import NODATA_DN, SCL_INVALID, open_safe

    prod = open_safe(p)
    src = _open_band_files(str(p), prod.band_files, bands, 1.0, 0.0, nodata=float(NODATA_DN))
    names = list(src.band_names)
    if dn_scale is not None:
        rad = resolve_radiometry(str(p), src.dtype, dn_scale=dn_scale, dn_offset=dn_offset)
    else:
        scale, offset = prod.radiometry(names)
        rad = Radiometry(scale, offset, prod.rule(names)).with_offset(dn_offset)
    src.dn_scale, src.dn_offset, src.radiometry = rad.dn_scale, rad.dn_offset, rad.rule
    if mask and prod.scl is not None:
        gsd = {prod.resolutions.get(b, 0) for b in names}
        k = {10: 2, 20: 1, 60: -3}.get(gsd.pop(), 0) if len(gsd) == 1 else 0
        if k == 0:
            raise DataError(f"{p}: cannot place the SCL mask on bands {', '.join(names)}")
        src.class_mask = (prod.scl, SCL_INVALID, k)
    return src


def _open_stac(p: Path, bands: Sequence[str | int] | None, dn_scale: float | None,
               dn_offset: float | None) -> SceneSource:
    """The selected band assets of a STAC item (:mod:`eosr.io.stac`): DN -> reflectance from an explicit
    ``dn_scale``, else the assets' ``raster:bands`` scale/offset, else the files' metadata."""
    from eosr.io.stac import item_bands, radiometry

    assets = item_bands(p)
    files = {k: v.path for k, v in assets.items()}
    sel = [normalise_band_name(str(b)) for b in bands] if bands is not None else None
    chosen = [assets[b] for b in (sel or sorted(assets)) if b in assets]
    nds = {a.nodata for a in chosen}
    nodata = nds.pop() if len(nds) == 1 else None
    if dn_scale is not None:
        return _open_band_files(str(p), files, bands, dn_scale, dn_offset, nodata=nodata)
    declared = radiometry(chosen)
    src = _open_band_files(str(p), files, bands, 1.0 if declared else None, 0.0 if declared else dn_offset,
                           nodata=nodata)
    if declared is not None:
        rad = Radiometry(declared[0], declared[1], "STAC item raster:bands scale/offset").with_offset(dn_offset)
        src.dn_scale, src.dn_offset, src.radiometry = rad.dn_scale, rad.dn_offset, rad.rule
    return src


def _open_band_files(where: str, files: dict[str, str], bands: Sequence[str | int] | None,
                     dn_scale: float | None = None, dn_offset: float | None = None, *,
                     nodata: float | None = None) -> SceneSource:
    """One source from single-band files keyed by band name; the selection must share one grid.
    ``nodata`` overrides the files' own nodata value (for products whose files do not declare it)."""
    if bands is None:
        sel = sorted(files)
    else:
        sel = []
        for b in bands:
            key = normalise_band_name(str(b))
            if key not in files:
                raise DataError(f"{where}: no file for band {b!r} (bands: {', '.join(sorted(files))})")
            sel.append(key)
    grids: dict[tuple[Any, ...], list[str]] = {}
    info = {}
    for name in sel:
        with _open(files[name]) as ds:
            _check_dtype(files[name], ds.dtypes[0])
            check_declared_size(str(files[name]), ds.count, ds.height, ds.width)
            check_north_up(ds.transform, str(files[name]))
            grid = (str(ds.crs), tuple(round(v, 6) for v in ds.transform[:6]), ds.height, ds.width)
            grids.setdefault(grid, []).append(name)
            nd = ds.nodata if nodata is None else nodata
            info[name] = (ds.dtypes[0], nd, ds.scales[0], ds.offsets[0], ds.crs, ds.transform)
            if not is_georeferenced(ds):
                raise GeoError(f"{files[name]}: a band folder needs georeferenced files")
    if len(grids) > 1:
        groups = "; ".join(f"{abs(k[1][0]):g} m {k[2]}x{k[3]}: {','.join(v)}" for k, v in grids.items())
        raise GeoError(f"{where}: the bands lie on different grids ({groups}); choose one group with --bands")
    dtypes = {info[n][0] for n in sel}
    if len(dtypes) > 1:
        raise DataError(f"{where}: band files of different data types {sorted(dtypes)}")
    (grid,) = grids
    dt, _, _, _, crs, tr = info[sel[0]]
    rad = resolve_with_mtl(where, dt, [files[n] for n in sel], scales=[info[n][2] for n in sel],
                           offsets=[info[n][3] for n in sel], labels=[Path(files[n]).stem for n in sel],
                           dn_scale=dn_scale, dn_offset=dn_offset)
    nodatas = tuple(info[n][1] if info[n][1] is not None else rad.fill for n in sel)
    return SceneSource(tuple(files[n] for n in sel), tuple((k, 1) for k in range(len(sel))), tuple(sel),
                       tuple(sel), grid[2], grid[3], crs, tr, dt, nodatas, rad.dn_scale, rad.dn_offset, rad.rule)


def is_multifile(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a band folder, a Sentinel-2 product or a STAC item (bands are chosen by name)."""
    from eosr.io.sentinel2 import is_safe
    from eosr.io.stac import is_stac_item

    return Path(path).is_dir() or is_safe(path) or is_stac_item(path)

def read_scene(path: str | os.PathLike[str], bands: Sequence[str | int] | None = None, *,
               dn_scale: float | None = None, dn_offset: float | None = None, mask: bool = False) -> Raster:
    """The whole selection of :func:`open_source` in memory: the one reader of every command's input
    (GeoTIFF/COG, band folder, Sentinel-2 product), float32 reflectance, NaN = nodata (and, with ``mask``,
    the product's invalid classes). Tags are those of a single input file."""
    src = open_source(path, bands, dn_scale=dn_scale, dn_offset=dn_offset, mask=mask)
    try:
        data = src.read((0, src.height, 0, src.width))
        tags = dict(src._ds(0).tags()) if len(set(src.paths)) == 1 else {}
    finally:
        src.close()
    return Raster(data, src.crs, src.transform, list(src.band_names), src.dtype, src.out_nodata, src.dn_scale,
                  src.dn_offset, tags, str(path), src.radiometry, src.georeferenced, all(src.descriptions))


def file_tag(path: str | os.PathLike[str] | None, key: str) -> str | None:
    """Tag ``key`` of an input file (e.g. the ``eosr_operator`` that ``eosr simulate`` writes), or None: no
    path, no such tag, or a band folder, product or STAC item (they carry no eosr tags)."""
    if path is None or not Path(path).is_file() or is_multifile(path):
        return None
    with open_quietly(path) as ds:
        tag = ds.tags().get(key)
    return str(tag) if tag else None
