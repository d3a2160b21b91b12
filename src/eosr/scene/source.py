"""Scene-level sources: the packed 10 m + 20 m source of multi-resolution models and the resource guards
(estimates from headers before any work). The input layer itself lives in :mod:`eosr.io.source` and is
re-exported here (``eosr.scene.source.open_source`` ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosr.errors import DataError, EosrError, GeoError, ResourceError, ScaleError
from eosr.io.raster import (
    check_budget,
    check_grids,
    raster_bytes,
)
from eosr.io.source import (  # noqa: F401  (re-exported: the scene API's input layer)
    SUPPORTED_DTYPES,
    SceneSource,
    Window,
    _open_folder,
    is_multifile,
    open_source,
    read_scene,
)


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
    """Open the 10 m and 20 m bands of a band folder, Sentinel-2 product or STAC item as one
    :class:`PackedSource` on the 20 m grid; or, with
    ``guide``, the 20 m bands from the GeoTIFF ``path`` and the 10 m bands from the GeoTIFF ``guide``
    (bands chosen by description, or labelled in order when the files have none, see :func:`open_source`).

    The groups must share CRS, origin and footprint with exactly twice the pixel size (GDAL pixel-is-area).
    """
    p = Path(path)
    for f in (p, *([Path(guide)] if guide is not None else [])):
        if not f.exists():
            raise DataError(f"input not found: {f}")
    if guide is not None:
        g = Path(guide)
        for f, what in ((p, "20 m"), (g, "10 m (--guide)")):
            if not f.is_file():
                raise DataError(f"the {what} input must be a GeoTIFF file, got {f}")
        s10 = open_source(g, list(bands_10m), dn_scale=dn_scale, dn_offset=dn_offset)
        s20 = open_source(p, list(bands_20m), dn_scale=dn_scale, dn_offset=dn_offset)
    elif not is_multifile(p):
        raise DataError(f"a multi-resolution model needs a folder of band files (*_B05.tif), a Sentinel-2 product, "
                        f"a STAC item, or a 20 m GeoTIFF with --guide 10m.tif, got {p}")
    else:  # a band folder, .SAFE product or STAC item: both groups by name
        s10 = open_source(p, list(bands_10m), dn_scale=dn_scale, dn_offset=dn_offset)
        s20 = open_source(p, list(bands_20m), dn_scale=dn_scale, dn_offset=dn_offset)
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
    """The scale of a model name or checkpoint from its card or spec (2 when it cannot be told cheaply),
    relative to the grid of the input read for the budget (the 20 m bands for 20 m sharpening models)."""
    import json

    from eosr.models.registry import describe_model

    try:
        d = describe_model(str(model))
        s = d.get("scale")
        names = set(d.get("bands") or [])
        if isinstance(s, int) and names & {"B02", "B03", "B04", "B08"} and names & {"B05", "B11", "B12"}:
            s = 2 * s  # Sentinel-2 sharpening: scale relative to 10 m, while the input read here is 20 m
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
