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

from eosr.errors import DataError, EosrError, GeoError, ResourceError, ScaleError
from eosr.io.raster import (
    MEMORY_CHECK_BYTES,
    check_budget,
    check_declared_size,
    check_grids,
    check_north_up,
    is_georeferenced,
    open_quietly,
    raster_bytes,
    resolve_radiometry,
)
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
        check_declared_size(str(p), ds.count, ds.height, ds.width)
        check_north_up(ds.transform, str(p))
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
            check_declared_size(str(files[name]), ds.count, ds.height, ds.width)
            check_north_up(ds.transform, str(files[name]))
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
                  guide: str | os.PathLike[str] | None = None, dn_scale: float | None = None,
                  dn_offset: float | None = None) -> PackedSource:
    """Open the 10 m and 20 m bands of a band folder as one :class:`PackedSource` on the 20 m grid; or, with
    ``guide``, the 20 m bands from the GeoTIFF ``path`` and the 10 m bands from the GeoTIFF ``guide``
    (bands chosen by description, or labelled in order when the files have none, see :func:`open_source`).

    The groups must share CRS, origin and footprint with exactly twice the pixel size (GDAL pixel-is-area).
    """
    p = Path(path)
    if guide is not None:
        g = Path(guide)
        for f, what in ((p, "20 m"), (g, "10 m (--guide)")):
            if not f.is_file():
                raise DataError(f"the {what} input must be a GeoTIFF file, got {f}")
        s10 = open_source(g, list(bands_10m), dn_scale=dn_scale, dn_offset=dn_offset)
        s20 = open_source(p, list(bands_20m), dn_scale=dn_scale, dn_offset=dn_offset)
    elif not p.is_dir():
        raise DataError(f"a multi-resolution model needs a folder of band files (*_B05.tif), or a 20 m GeoTIFF "
                        f"with --guide 10m.tif, got {p}")
    else:
        s10 = _open_folder(p, list(bands_10m), dn_scale, dn_offset)
        s20 = _open_folder(p, list(bands_20m), dn_scale, dn_offset)
    try:
        check_grids(s10, s20, 2, names=("10 m bands", "20 m bands"))
    except (GeoError, ScaleError) as e:
        raise type(e)(f"{p}: {e}") from None
    if s10.dtype != s20.dtype or (s10.dn_scale, s10.dn_offset) != (s20.dn_scale, s20.dn_offset):
        raise DataError(f"{p}: 10 m and 20 m bands differ in data type or DN scale")
    return PackedSource(s10, s20)


# --- resource guards: estimates made from the headers, before any pixel is read or written -------------
#: Peak bytes per SR value of whole-image evaluation (float64 copies of SR, HR, LR, SSIM moments, maps) and
#: per HR + LR value of calibration (float64 pair, kernel fits, bootstrap): measured ~175 and ~205 (4 x 1024^2
#: SR with HR and LR; 1024^2 HR with its x2 LR), x 1.5 (docs/conventions.md, "Limits and guards").
EVALUATE_BYTES_PER_VALUE = 260
CALIBRATE_BYTES_PER_VALUE = 300


def _header(path: str | os.PathLike[str], bands: Sequence[str | int] | None = None) -> SceneSource | None:
    """The source's grid from its header (declared size and geotransform checked), or None when the header
    cannot say (e.g. a band folder needing a choice of bands): the run itself then reports the problem."""
    try:
        src = open_source(path, bands, dn_scale=1.0)  # radiometry plays no part in sizes
    except ResourceError:
        raise
    except EosrError:
        return None
    src.close()
    return src


def check_simulate_budget(hr_path: str | os.PathLike[str], lr_path: str | os.PathLike[str], *, scale: int,
                          frames: int = 0) -> None:
    """Refuse ``eosr simulate`` when its output (a stage file and the final LR in the windowed path; every
    frame) does not fit the free disk of the output folder, or the whole-image path does not fit in memory."""
    from eosr.scene.simulate import WINDOWED_PIXELS

    src = _header(hr_path)
    if src is None:
        return
    c, h, w = src.count, src.height, src.width
    out_dtype = src.dtype if np.issubdtype(np.dtype(src.dtype), np.integer) or src.dtype == "float32" else "float32"
    lr = raster_bytes(c, h // scale, w // scale, out_dtype)
    windowed = frames <= 0 and h * w > WINDOWED_PIXELS
    disk = 2 * lr if windowed else lr * max(1, frames)
    memory = 0 if windowed else raster_bytes(c, h, w, "float64") * 3 + raster_bytes(c, h // scale, w // scale,
                                                                                    "float64") * max(1, frames)
    folder = Path(lr_path) if frames > 0 else Path(lr_path).parent
    check_budget(f"simulating {c}x{h}x{w} px at x{scale}" + (f" ({frames} frames)" if frames > 0 else ""),
                 memory=memory, disk=disk, folder=folder)


def model_scale_hint(model: str) -> int:
    """The scale of a model name or checkpoint from its card or spec (2 when it cannot be told cheaply)."""
    import json

    from eosr.models.registry import describe_model

    try:
        s = describe_model(str(model)).get("scale")
    except (EosrError, TypeError):
        s = None
    card = Path(str(model)).with_suffix(".json")
    if s is None and card.is_file():
        try:
            s = json.loads(card.read_text()).get("scale")
        except (OSError, ValueError, AttributeError):
            s = None
    return int(s) if isinstance(s, int) and s >= 1 else 2


def check_sr_budget(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *, scale: int,
                    bands: Sequence[str | int] | None = None, float32: bool = False,
                    uncertainty: bool = False) -> None:
    """Refuse ``eosr sr`` when the uncompressed stage file plus the final GeoTIFF (and the uncertainty
    sidecar) at ``scale`` do not fit the free disk of the output folder."""
    src = _header(in_path, bands)
    if src is None:
        return
    c, h, w = src.count, src.height * scale, src.width * scale
    dtype = src.dtype if np.issubdtype(np.dtype(src.dtype), np.integer) and not float32 else "float32"
    one = raster_bytes(c, h, w, dtype) + (raster_bytes(c, h, w, "float32") if uncertainty else 0)
    check_budget(f"super-resolving {src.count}x{src.height}x{src.width} px at x{scale} ({c}x{h}x{w} px out)",
                 disk=2 * one, folder=Path(out_path).parent)


def check_evaluate_budget(sr: str | os.PathLike[str], *, whole: bool | None = None,
                          maps_dir: str | os.PathLike[str] | None = None) -> None:
    """Refuse ``eosr evaluate`` when its whole-image path (default below ``WHOLE_LIMIT`` values, or forced)
    does not fit in memory, or its maps do not fit the free disk."""
    from eosr.scene.evaluate import WHOLE_LIMIT

    src = _header(sr)
    if src is None:
        return
    n = src.count * src.height * src.width
    if whole is None:
        whole = n <= WHOLE_LIMIT
    if not whole:
        return
    check_budget(f"evaluating {src.count}x{src.height}x{src.width} px as a whole image",
                 memory=EVALUATE_BYTES_PER_VALUE * n, disk=8 * 4 * n if maps_dir is not None else 0,
                 folder=Path(maps_dir).parent if maps_dir is not None else None)


def check_calibrate_budget(hr_path: str | os.PathLike[str], lr_path: str | os.PathLike[str]) -> None:
    """Refuse ``eosr calibrate`` (whole-image) when the pair does not fit in memory."""
    n = 0
    for p in (hr_path, lr_path):
        src = _header(p)
        if src is None:
            return
        n += src.count * src.height * src.width
    check_budget("calibrating the pair", memory=CALIBRATE_BYTES_PER_VALUE * n)
