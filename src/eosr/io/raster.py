"""Read and write rasters as float32 reflectance (C, H, W), NaN = nodata.

DN -> reflectance: ``reflectance = DN * dn_scale + dn_offset``, resolved by :func:`resolve_radiometry`
in this order (docs/conventions.md, "Radiometry"): the caller's explicit ``dn_scale``/``dn_offset``;
the file's own GDAL band scale/offset metadata; a product convention the file identifies (Sentinel-2
band names on 16-bit integers: reflectance x 10000); float data as it is; otherwise a one-line
:class:`DataError` naming ``--dn-scale``. 8-bit data (display PNG/JPEG renderings) is never taken for
reflectance x 1e-4. The scale and the rule used are recorded on the returned :class:`Raster`, so that
writers can invert them and results can say what they assumed.

Images without georeference (PNG, JPEG, plain TIFF) are read too (``Raster.georeferenced`` is False;
GDAL's warning about them is not passed on). Every output goes to a temporary name in the target
folder and is renamed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eosr._windows import centre_box
from eosr.errors import DataError, GeoError, RadiometryError, ResourceError, ScaleError
from eosr.sensors import normalise_band_name

INTEGER_DN_SCALE = 1e-4  # Sentinel-2 L1C/L2A: reflectance x 10000
#: A Sentinel-2 band token in a band description or file name (``B02``, ``B8A``; not Landsat's ``B2``).
_S2_TOKEN = re.compile(r"(?:^|[_\-.\s])(B0[1-9]|B1[0-2]|B8A)(?:$|[_\-.\s])", re.IGNORECASE)
_LANDSAT_NAME = re.compile(r"^(L[COTEM]0?\d|l[4-9]_)", re.IGNORECASE)  # LC08_..., LC80..., l8_B10


#: A raster declaring more pixels per band than this is refused before any pixel is read (2^31: GDAL's
#: int32 pixel offsets; 46341 x 46341 px). Override: ``--no-size-check`` / :func:`size_checks`.
MAX_PIXELS_PER_BAND = 2**31
#: Whole reads and windows below this many bytes skip the free-memory check (it costs a /proc read).
MEMORY_CHECK_BYTES = 64 * 2**20
_SIZE_CHECKS: ContextVar[bool] = ContextVar("eosr_size_checks", default=True)
OVERRIDE_HINT = "pass --no-size-check to try anyway"


@contextlib.contextmanager
def size_checks(enabled: bool = True) -> Iterator[None]:
    """Turn the resource guards (:func:`check_declared_size`, :func:`check_budget`) on or off inside the
    block; ``size_checks(False)`` is the CLI's ``--no-size-check``."""
    token = _SIZE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _SIZE_CHECKS.reset(token)


def human_bytes(n: float) -> str:
    """``1.5 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes of memory available to a new allocation without swapping (``psutil``'s ``available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def free_disk(folder: str | os.PathLike[str]) -> int:
    """Free bytes on the file system of ``folder`` (its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def raster_bytes(count: int, height: int, width: int, dtype: str = "float32") -> int:
    """Uncompressed size of a (count, height, width) raster of ``dtype``."""
    return int(count) * int(height) * int(width) * np.dtype(dtype).itemsize


def check_declared_size(where: str, count: int, height: int, width: int) -> None:
    """Refuse (:class:`ResourceError`) a raster whose header declares more than
    :data:`MAX_PIXELS_PER_BAND` pixels per band, or no pixel at all, before any pixel is read."""
    if int(height) < 1 or int(width) < 1 or int(count) < 1:
        raise DataError(f"{where}: empty raster ({count} bands of {height}x{width} px)")
    n = int(height) * int(width)
    if _SIZE_CHECKS.get() and n > MAX_PIXELS_PER_BAND:
        raise ResourceError(f"{where}: the header declares {height}x{width} px per band ({n / 1e9:.1f} Gpx), "
                            f"above the limit of 2^31 px; refusing before reading ({OVERRIDE_HINT})")


def check_budget(what: str, *, memory: int = 0, disk: int = 0, folder: str | os.PathLike[str] | None = None) -> None:
    """Refuse work (:class:`ResourceError`, one line) whose estimate exceeds what the machine has: ``memory``
    bytes against :func:`available_memory`, ``disk`` bytes against the free space of ``folder``
    (:func:`free_disk`). Call it before reading or writing any pixel; ``size_checks(False)`` disables it."""
    if not _SIZE_CHECKS.get():
        return
    if memory > 0:
        have = available_memory()
        if memory > have:
            raise ResourceError(f"{what} needs about {human_bytes(memory)} of memory, {human_bytes(have)} available "
                                f"({OVERRIDE_HINT})")
    if disk > 0 and folder is not None:
        have = free_disk(folder)
        if disk > have:
            raise ResourceError(f"{what} needs about {human_bytes(disk)} of disk in {folder}, {human_bytes(have)} free "
                                f"({OVERRIDE_HINT})")


def check_north_up(transform: Any, where: str) -> None:
    """Refuse (:class:`GeoError`) a rotated or sheared geotransform, or one with a zero pixel size: eosr's grids
    are north-up (docs/conventions.md, "Grid: pixel is area")."""
    t = transform
    if float(t.b) != 0.0 or float(t.d) != 0.0:
        raise GeoError(f"{where}: rotated or sheared geotransform {tuple(t)[:6]} is not supported; warp it to a "
                       "north-up grid first (e.g. gdalwarp)")
    if float(t.a) == 0.0 or float(t.e) == 0.0 or not (np.isfinite(float(t.a)) and np.isfinite(float(t.e))):
        raise GeoError(f"{where}: geotransform {tuple(t)[:6]} has a zero or non-finite pixel size")


@dataclass(frozen=True)
class Radiometry:
    """How stored values become reflectance: ``DN * dn_scale + dn_offset``, and why."""

    dn_scale: float
    dn_offset: float
    rule: str  # "explicit", "file metadata", "Sentinel-2 convention", "float values", "Landsat MTL (...)"
    fill: float | None = None  # the product's fill DN, nodata where a file declares none (Landsat: 0)

    def with_offset(self, dn_offset: float | None) -> Radiometry:
        """This rule with an explicit ``dn_offset`` in place of its own (itself when None)."""
        if dn_offset is None:
            return self
        return Radiometry(self.dn_scale, float(dn_offset), f"{self.rule}, offset explicit", self.fill)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record (for results and reports)."""
        return {"dn_scale": self.dn_scale, "dn_offset": self.dn_offset, "rule": self.rule}


class HasRadiometry(Protocol):
    """A raster or windowed grid that records how its values were made reflectance."""

    dn_scale: float
    dn_offset: float
    radiometry: str


def radiometry_record(src: HasRadiometry) -> dict[str, Any]:
    """``{dn_scale, dn_offset, rule}`` of a raster or grid, as :meth:`Radiometry.as_dict` (results, reports)."""
    return Radiometry(src.dn_scale, src.dn_offset, src.radiometry).as_dict()


def check_dn_values(dn_scale: float | None, dn_offset: float | None) -> None:
    """:class:`DataError` unless an explicit ``dn_scale`` is finite and non-zero and ``dn_offset`` finite."""
    for v, what in ((dn_scale, "dn_scale"), (dn_offset, "dn_offset")):
        if v is not None and not np.isfinite(v):
            raise DataError(f"{what} must be finite, got {v}")
    if dn_scale is not None and dn_scale == 0:
        raise DataError("dn_scale must not be 0")


def resolve_radiometry(
    where: str,
    dtype: str,
    *,
    scales: Sequence[float | None] | None = None,
    offsets: Sequence[float | None] | None = None,
    labels: Sequence[str] = (),
    dn_scale: float | None = None,
    dn_offset: float | None = None,
) -> Radiometry:
    """DN -> reflectance for one raster (module docstring): explicit > file metadata > Sentinel-2
    convention (uint16/int16 whose band ``labels``, descriptions or file names, are all Sentinel-2
    band tokens) > float as is > :class:`RadiometryError` naming ``--dn-scale``."""
    check_dn_values(dn_scale, dn_offset)
    if dn_scale is not None:
        return Radiometry(float(dn_scale), float(dn_offset or 0.0), "explicit")
    sc = [float(s) if s is not None else 1.0 for s in scales or []]
    of = [float(o) if o is not None else 0.0 for o in offsets or []]
    if any(s != 1.0 for s in sc) or any(o != 0.0 for o in of):
        if len(set(sc)) > 1 or len(set(of)) > 1:
            raise DataError(f"{where}: bands with different scale/offset metadata ({sc}, {of}); read them apart "
                            "or give --dn-scale/--dn-offset")
        found = Radiometry(sc[0] if sc else 1.0, of[0] if of else 0.0, "file metadata")
    elif not np.issubdtype(np.dtype(dtype), np.integer):
        found = Radiometry(1.0, 0.0, "float values")
    elif (dtype in ("uint16", "int16") and labels
          and all(_S2_TOKEN.search(f"_{x}_") and not _LANDSAT_NAME.match(x) for x in labels)):
        found = Radiometry(INTEGER_DN_SCALE, 0.0, "Sentinel-2 convention")
    else:
        kind = "8-bit (display rendering?)" if dtype == "uint8" else f"integer ({dtype})"
        raise RadiometryError(f"{where}: {kind} values without a scale in the file's metadata: give --dn-scale "
                              "(Python: dn_scale=), e.g. 1/255 for 8-bit renderings or 1e-4 for reflectance x 10000")
    return found.with_offset(dn_offset)


#: Largest median |value| a float raster read as it is (no scale given, none in its metadata) may have:
#: reflectance stays below ~1.5 even over snow and cloud, while DN (reflectance x 10000), percent and
#: radiance are far above (docs/conventions.md, "Radiometry").
FLOAT_REFLECTANCE_LIMIT = 2.0


def check_float_reflectance(where: str, sample: np.ndarray) -> None:
    """Refuse float values read as reflectance when they are not: :class:`RadiometryError` naming ``--dn-scale``
    when the median |value| of the finite values of ``sample`` exceeds :data:`FLOAT_REFLECTANCE_LIMIT`
    (for example float32 DN, reflectance x 10000 with no scale tag, which would otherwise be evaluated
    as reflectance in the thousands)."""
    v = np.abs(np.asarray(sample, dtype=np.float32)).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return
    med = float(np.median(v))
    if med > FLOAT_REFLECTANCE_LIMIT:
        raise RadiometryError(f"{where}: float values with median {med:.4g} are not reflectance (0-1) and no scale "
                              "is given: give --dn-scale (Python: dn_scale=), e.g. 1e-4 for reflectance x 10000, or "
                              "1 to take the values as they are")


def float_sample(data: np.ndarray, size: int = 512, *, spread: bool = True) -> np.ndarray:
    """What :func:`check_float_reflectance` reads of a (C, H, W) array: about ``size`` x ``size`` pixels spread
    over the whole image (every k-th row and column: nodata in one part cannot hide the rest), or with
    ``spread=False`` (lazy arrays, windowed files: only the window is read) the central window."""
    h, w = data.shape[-2:]
    if spread:
        return data[..., :: max(1, -(-h // size)), :: max(1, -(-w // size))]
    y0, y1, x0, x1 = centre_box(h, w, size)
    return data[..., y0:y1, x0:x1]


_BAND_FILE = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?)$", re.IGNORECASE)


def file_band_name(path: str | os.PathLike[str]) -> str | None:
    """The band a file's name gives (``T33UUP_..._B05.jp2``, ``l8_B4.tif``, ``SR_B4.TIF`` -> ``B05``, ``B04``), or
    None."""
    m = _BAND_FILE.search(Path(path).stem)
    return normalise_band_name(m.group(1)) if m else None


def is_georeferenced(ds: Any) -> bool:
    """Whether a dataset has a CRS or a non-identity geotransform (GDAL gives the identity otherwise)."""
    from affine import Affine

    return ds.crs is not None or ds.transform != Affine.identity()


def open_quietly(path: str | os.PathLike[str]) -> Any:
    """``rasterio.open`` without GDAL's NotGeoreferencedWarning (images without georeference are fine)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


@dataclass
class Raster:
    """A raster in memory: reflectance data and what is needed to write it back faithfully."""

    data: np.ndarray
    crs: Any
    transform: Any
    band_names: list[str]
    dtype: str = "float32"
    nodata: float | None = None
    dn_scale: float = 1.0
    dn_offset: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    radiometry: str = "explicit"
    georeferenced: bool = True
    described: bool = True  # the file names every band (else band_names are band1, band2, ... by position)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.data.shape
        return c, h, w

    @property
    def pixel_size(self) -> tuple[float, float]:
        """(x, y) pixel size in CRS units (y positive)."""
        return abs(float(self.transform.a)), abs(float(self.transform.e))


def _open(path: str | os.PathLike[str]) -> Any:
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.exists():
        raise DataError(f"file not found: {p}")
    try:
        return open_quietly(p)
    except RasterioIOError as e:
        raise DataError(f"cannot read {p}: {str(e).splitlines()[0]}") from None


def undescribed_labels(path: str | os.PathLike[str], descriptions: Sequence[str | None],
                       bands: Sequence[str | int] | None) -> list[str] | None:
    """Band names that label, in order, the bands of a file describing none of them (one name per band; else
    :class:`DataError`); None when ``bands`` selects instead (no names, an index, or a described file)."""
    if bands is None or any(descriptions) or not all(isinstance(b, str) for b in bands):
        return None
    if len(bands) != len(descriptions):
        raise DataError(f"{path}: {len(bands)} band names for a file of {len(descriptions)} undescribed bands")
    return [normalise_band_name(str(b)) for b in bands]


def _band_index(ds: Any, bands: Sequence[str | int] | None) -> list[int]:
    names = [normalise_band_name(d) if d else "" for d in ds.descriptions]
    if bands is None:
        return list(range(1, ds.count + 1))
    out = []
    for b in bands:
        if isinstance(b, int):
            if not 1 <= b <= ds.count:
                raise DataError(f"{ds.name}: band index {b} outside 1..{ds.count}")
            out.append(b)
            continue
        key = normalise_band_name(b)
        if key in names:
            out.append(names.index(key) + 1)
        else:
            raise DataError(f"{ds.name}: no band described as {b!r} (bands: {', '.join(n or '?' for n in names)})")
    return out


def read_raster(
    path: str | os.PathLike[str],
    bands: Sequence[str | int] | None = None,
    *,
    window: Any = None,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
) -> Raster:
    """Read a GeoTIFF (or any GDAL raster) as float32 reflectance, NaN where nodata or non-finite.

    ``bands`` selects by 1-based index or by band description (``B2`` == ``B02``); for a file whose bands have
    no description, names (one per band) label them in order, as :func:`eosr.io.source.open_source` does. The
    DN scale and offset follow :func:`resolve_radiometry` (explicit ``dn_scale``/``dn_offset`` first).
    """
    from rasterio.errors import RasterioIOError

    with _open(path) as ds:
        labels = undescribed_labels(path, ds.descriptions, bands)
        idx = _band_index(ds, None if labels else bands)
        dtype = ds.dtypes[0]
        rad = _radiometry_of(ds, path, idx, dn_scale, dn_offset)
        check_declared_size(str(path), ds.count, ds.height, ds.width)
        check_north_up(ds.transform, str(path))
        if window is not None and not hasattr(window, "height"):  # ((row0, row1), (col0, col1))
            from rasterio.windows import Window

            window = Window.from_slices(*window)
        h, w = (ds.height, ds.width) if window is None else (int(window.height), int(window.width))
        need = raster_bytes(len(idx), h, w, "float32") + raster_bytes(len(idx), h, w, dtype)
        if need > MEMORY_CHECK_BYTES:
            check_budget(f"reading {path} ({len(idx)} bands of {h}x{w} px)", memory=need)
        try:
            raw = ds.read(idx, window=window, masked=False)
        except RasterioIOError as e:
            raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        desc = [ds.descriptions[i - 1] for i in idx]
        s, o = rad.dn_scale, rad.dn_offset
        data = raw.astype(np.float32) * np.float32(s) + np.float32(o)
        nd = ds.nodata if ds.nodata is not None else rad.fill
        if nd is not None:
            bad = np.isnan(raw) if np.isnan(nd) else raw == nd
            data[bad] = np.nan
        data[~np.isfinite(data)] = np.nan
        if rad.rule == "float values":
            check_float_reflectance(str(path), float_sample(data))
        names = labels or [normalise_band_name(ds.descriptions[i - 1]) if ds.descriptions[i - 1] else f"band{i}"
                           for i in idx]
        transform = ds.window_transform(window) if window is not None else ds.transform
        return Raster(data, ds.crs, transform, names, dtype, nd, s, o, dict(ds.tags()), str(path), rad.rule,
                      is_georeferenced(ds), bool(labels) or all(desc))


def _radiometry_of(ds: Any, path: str | os.PathLike[str], idx: list[int], dn_scale: float | None,
                   dn_offset: float | None) -> Radiometry:
    dtype = ds.dtypes[0]
    if dtype not in ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"):
        raise DataError(f"{path}: unsupported data type {dtype}")
    desc = [ds.descriptions[i - 1] for i in idx]
    labels = desc if all(desc) else ([Path(path).stem] if len(idx) == 1 else [])
    return resolve_with_mtl(str(path), dtype, [str(path)] if len(idx) == 1 else [],
                            scales=[ds.scales[i - 1] for i in idx], offsets=[ds.offsets[i - 1] for i in idx],
                            labels=labels, dn_scale=dn_scale, dn_offset=dn_offset)


def resolve_with_mtl(where: str, dtype: str, files: Sequence[str], **kw: Any) -> Radiometry:
    """:func:`resolve_radiometry` (``kw``: its options), where integer Landsat band ``files`` (one file per
    band) without any scale found take the ``*_MTL.txt`` beside them (:func:`eosr.io.landsat.files_radiometry`:
    after the files' metadata and the Sentinel-2 convention, before the refusal)."""
    try:
        return resolve_radiometry(where, dtype, **kw)
    except RadiometryError:
        from eosr.io.landsat import files_radiometry

        rad = files_radiometry(files, dtype)
        if rad is None:
            raise
        return rad.with_offset(kw.get("dn_offset"))


def raster_radiometry(
    path: str | os.PathLike[str],
    bands: Sequence[str | int] | None = None,
    *,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
) -> Radiometry:
    """The DN -> reflectance rule :func:`read_raster` would apply to ``path`` (metadata only, no pixels read)."""
    with _open(path) as ds:
        return _radiometry_of(ds, path, _band_index(ds, bands), dn_scale, dn_offset)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only for an instant)
    os.umask(mask)
    return mask


def _tmp_prefix(target: Path) -> str:
    """``.<name>.eosr-<pid>-``: temporaries of ``target`` say whose they are and which process owns them."""
    return f".{target.name}.eosr-{os.getpid()}-"


_TEMPORARY = re.compile(r"^\..+\.(eosr-\d+-[A-Za-z0-9_]+\.|[a-z0-9_]{8}\.(tmp|stage\.tif))")


def is_eosr_temporary(name: str) -> bool:
    """True for the name of a temporary of an eosr writer (``.<name>.eosr-<pid>-<random>.*``, or the
    ``.<name>.XXXXXXXX.tmp`` of older versions)."""
    return _TEMPORARY.match(name) is not None


def _process_alive(pid: int) -> bool:
    """True if process ``pid`` exists on this machine and is not a zombie (unknown counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    try:  # a killed child not yet reaped by its parent still answers os.kill
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> int:
    """Remove the temporaries of ``path`` (``.<name>.eosr-<pid>-*``: files, stage files, staging folders)
    left by eosr runs whose process no longer exists, e.g. after a SIGKILL; returns how many were
    removed and says so in one line on stderr. A live process's temporaries are never touched;
    temporaries named by older eosr versions (``.<name>.XXXXXXXX.tmp``, no process id) are reported, not removed."""
    target = Path(os.path.abspath(path))
    folder = target.parent
    ours = re.compile(rf"^\.{re.escape(target.name)}\.eosr-(\d+)-[A-Za-z0-9_]+\.")
    legacy = re.compile(rf"^\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.(tmp|stage\.tif)")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed, old = 0, []
    for e in entries:
        m = ours.match(e.name)
        if m is None:
            if legacy.match(e.name):
                old.append(e.name)
            continue
        if _process_alive(int(m.group(1))):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed += 1
        except FileNotFoundError:  # another run cleaned it meanwhile
            pass
        except OSError:
            continue
    if removed:
        print(f"removed {removed} stale temporary file{'s' if removed > 1 else ''} of {target} from a killed run",
              file=sys.stderr)
    if old:
        print(f"found {len(old)} temporary file{'s' if len(old) > 1 else ''} of {target} from an older eosr "
              f"({', '.join(sorted(old)[:3])}{', ...' if len(old) > 3 else ''}): delete them if no run is writing it",
              file=sys.stderr)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary is ``.<name>.eosr-<pid>-<random>.tmp`` (writers may add stage files named after it);
    temporaries of the same target left by a killed run are removed first
    (:func:`remove_stale_temporaries`). The final file gets the mode the umask gives a new file
    (e.g. 0644 under umask 022), not the 0600 of the temporary.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise DataError(f"output folder is not writable: {folder}")
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output_folder(path: str | os.PathLike[str], owned: Callable[[Path], bool], what: str) -> None:
    """Raise :class:`DataError` if ``path`` is a file, or a folder holding anything ``owned`` does not
    recognise as a member of ``what`` other than eosr temporaries (eosr replaces a set as a whole and
    never deletes other files)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise DataError(f"the output of {what} must be a folder, got a file: {target}")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if not (owned(p) or is_eosr_temporary(p.name)))
        if foreign:
            raise DataError(f"{target} holds files that are not {what} ({', '.join(foreign[:3])}"
                            f"{', ...' if len(foreign) > 3 else ''}): choose a new or empty folder")


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str], owned: Callable[[Path], bool], what: str) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; if the block succeeds it replaces ``path`` as a
    whole (an earlier set there is removed), else it is deleted. An interruption leaves the previous
    set or none, never part of one. ``path`` must be absent, empty or hold only files ``owned``
    recognises (:func:`check_output_folder`); missing parent folders are created."""
    target = Path(os.path.abspath(path))
    check_output_folder(target, owned, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    stage = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())
        check_output_folder(target, owned, what)  # nothing foreign arrived meanwhile
        old = stage.with_suffix(".old")
        if target.exists():
            os.rename(target, old)
        try:
            os.rename(stage, target)
        except OSError:
            if old.exists():
                os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def to_dn(data: np.ndarray, dtype: str, dn_scale: float, dn_offset: float, nodata: float | None) -> np.ndarray:
    """Reflectance -> stored values of ``dtype`` (rounded and clipped for integers; NaN -> nodata). A valid
    value that would be stored as the integer nodata value (e.g. a dark pixel clipped to 0 when nodata is 0)
    is stored one DN away from it, so that no valid pixel reads back as nodata."""
    bad = ~np.isfinite(data)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        v = np.rint((np.nan_to_num(data) - dn_offset) / dn_scale)
        v = np.clip(v, info.min, info.max).astype(dtype)
        if nodata is not None and np.isfinite(nodata) and info.min <= nodata <= info.max:
            clash = (v == nodata) & ~bad
            if clash.any():
                v[clash] = nodata + 1 if nodata < info.max else nodata - 1
        if bad.any():
            if nodata is None:
                raise DataError("integer output with nodata pixels needs a nodata value")
            v[bad] = nodata
        return v
    out = ((data - dn_offset) / dn_scale).astype(dtype) if (dn_scale, dn_offset) != (1.0, 0.0) else data.astype(dtype)
    if nodata is not None and not np.isnan(nodata):
        out[bad] = nodata
    return out


#: Suffixes of other image formats: eosr writes GeoTIFF only, and never under another format's name.
OTHER_FORMATS = (".png", ".jpg", ".jpeg", ".jp2", ".webp", ".bmp", ".gif", ".nc", ".zarr", ".vrt", ".img")


def check_geotiff_name(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataError` when an output path names another image format (eosr writes GeoTIFF/COG)."""
    suffix = Path(path).suffix.lower()
    if suffix in OTHER_FORMATS:
        raise DataError(f"{path}: eosr writes GeoTIFF (or COG); name the output .tif (convert afterwards with "
                        "gdal_translate if you need another format)")


def write_raster(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    band_names: Sequence[str] | None = None,
    dtype: str = "float32",
    dn_scale: float = 1.0,
    dn_offset: float = 0.0,
    nodata: float | None = None,
    tags: dict[str, Any] | None = None,
    cog: bool = False,
) -> Path:
    """Write (C, H, W) reflectance to a GeoTIFF (or COG) atomically; returns the path.

    Integer ``dtype`` stores ``(reflectance - dn_offset) / dn_scale`` rounded; NaN becomes
    ``nodata`` (defaults: NaN for float, 0 for integers when needed).
    """
    import rasterio

    check_geotiff_name(path)
    a = np.asarray(data)
    if a.ndim != 3:
        raise DataError(f"write_raster needs (C, H, W), got shape {a.shape}")
    if nodata is None:
        if np.issubdtype(np.dtype(dtype), np.floating):
            nodata = float("nan")
        elif not np.isfinite(a).all():
            nodata = 0
    vals = to_dn(a, dtype, dn_scale, dn_offset, nodata)
    c, h, w = a.shape
    profile = dict(driver="GTiff", width=w, height=h, count=c, dtype=dtype, crs=crs, transform=transform,
                   nodata=nodata, compress="deflate", tiled=w >= 256 and h >= 256)
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp:
        stage = tmp.with_suffix(".stage.tif") if cog else tmp
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                ds = rasterio.open(stage, "w", **profile)
            with ds:
                ds.write(vals)
                for i, n in enumerate(band_names or []):
                    ds.set_band_description(i + 1, str(n))
                if not np.issubdtype(np.dtype(dtype), np.floating) or (dn_scale, dn_offset) != (1.0, 0.0):
                    ds.scales = [dn_scale] * c
                    ds.offsets = [dn_offset] * c
                if tags:
                    ds.update_tags(**{k: str(v) for k, v in tags.items()})
            if cog:
                copy_to_cog(stage, tmp)
        finally:
            if cog and stage.exists():
                stage.unlink()
    return Path(path)


def copy_to_cog(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a tiled GeoTIFF to a Cloud-Optimized GeoTIFF (GDAL's COG driver cannot write by window)."""
    from rasterio.shutil import copy as rio_copy

    rio_copy(str(src), str(dst), driver="COG", compress="deflate", overviews="auto")


def lr_transform(transform: Any, scale: int) -> Any:
    """Transform of the LR grid: same origin, pixel size x ``scale`` (GDAL pixel-is-area)."""
    from affine import Affine

    t = transform
    return Affine(t.a * scale, t.b * scale, t.c, t.d * scale, t.e * scale, t.f)


def integer_ratio(px_fine: Sequence[float], px_coarse: Sequence[float], scale: int | None = None,
                  names: tuple[str, str] = ("HR", "LR")) -> int:
    """The integer r with coarse pixel = r x fine pixel along every axis given (within 1e-6), checked against a
    requested ``scale``; :class:`ScaleError` naming the case (coarse finer than fine: swapped inputs)."""
    ratio = px_coarse[0] / px_fine[0]
    r = int(round(ratio))
    if ratio < 1 - 1e-6:
        raise ScaleError(f"the {names[1]} pixel ({_sizes(px_coarse)}) is finer than the {names[0]} pixel "
                         f"({_sizes(px_fine)}): are the two swapped?")
    if r < 1 or any(abs(c / f - r) > 1e-6 * max(1.0, ratio) for f, c in zip(px_fine, px_coarse, strict=True)):
        raise ScaleError(f"pixel sizes {_sizes(px_coarse)} and {_sizes(px_fine)} are not an integer ratio (the "
                         f"{names[1]} pixel must be an integer multiple of the {names[0]} pixel)")
    if scale is not None and int(scale) != r:
        raise ScaleError(f"the rasters are at scale {r}, not the requested {scale}")
    return r


def _sizes(px: Sequence[float]) -> str:
    return " x ".join(f"{float(v):g}" for v in px)


def check_grids(fine: Any, coarse: Any, scale: int | None = None, names: tuple[str, str] = ("HR", "LR"),
                tol: float = 1e-6) -> int:
    """Check that grid ``coarse`` is grid ``fine`` at an integer coarser scale r (GDAL pixel-is-area): same
    CRS, same origin (within 1e-3 fine pixel), pixel size x r and footprint x r. Grids are anything with
    ``crs``, ``transform``, ``height`` and ``width`` (a rasterio dataset, a scene source). Returns r.
    """
    if fine.crs != coarse.crs:
        raise GeoError(f"CRS mismatch: {fine.crs} vs {coarse.crs}")
    check_north_up(fine.transform, names[0])
    check_north_up(coarse.transform, names[1])
    px_f = abs(float(fine.transform.a))
    r = integer_ratio((px_f,), (abs(float(coarse.transform.a)),), scale, names)
    tf, tc = fine.transform, coarse.transform
    if abs(tf.c - tc.c) > tol * px_f * 1e3 or abs(tf.f - tc.f) > tol * px_f * 1e3:
        raise GeoError(f"origins differ: {names[0]} ({tf.c}, {tf.f}) vs {names[1]} ({tc.c}, {tc.f}); "
                       "pixel-is-area grids share their origin")
    if (fine.height, fine.width) != (coarse.height * r, coarse.width * r):
        raise GeoError(f"footprints differ: {names[0]} {fine.height}x{fine.width} px vs {names[1]} "
                       f"{coarse.height}x{coarse.width} px at scale {r}")
    return r


def check_pair(hr: Raster, lr: Raster, scale: int | None = None, tol: float = 1e-6) -> int:
    """Check that ``lr`` is ``hr`` at an integer coarser scale: same CRS, origin and footprint
    (:func:`check_grids` on the rasters' grids). Returns the scale factor inferred from the pixel sizes
    (or checks the given one).
    """
    from types import SimpleNamespace

    def grid(x: Raster) -> Any:
        return SimpleNamespace(crs=x.crs, transform=x.transform, height=x.shape[1], width=x.shape[2])

    return check_grids(grid(hr), grid(lr), scale, tol=tol)
