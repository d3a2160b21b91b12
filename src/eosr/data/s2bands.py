"""Sentinel-2 multi-resolution band folders: single-band files -> aligned 10 / 20 / 60 m stacks.

Layout (BigEarthNet-S2): ``<patch>/<patch>_B02.tif`` ... one file per band, any of B01..B12, B8A.
Bands are grouped by their pixel size (10, 20, 60 m for Sentinel-2), ordered canonically inside each
group, and the groups are checked to share CRS, origin and footprint (GDAL pixel-is-area) with
:func:`eosr.io.check_pair`. DN -> reflectance uses the file's scale/offset when set, else DN x 1e-4
(Sentinel-2 L1C/L2A before processing baseline 04.00; pass ``dn_offset=-0.1`` for later L2A).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosr.data.sample import Sample, SampleDataset, make_sample
from eosr.errors import DataError, GeoError
from eosr.io.raster import Raster, check_pair, read_raster
from eosr.sensors import normalise_band_name

S2_10M = ("B02", "B03", "B04", "B08")
S2_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
S2_60M = ("B01", "B09", "B10")
S2_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_BAND_FILE = re.compile(r"_(B\d{1,2}A?)\.tiff?$", re.IGNORECASE)


@dataclass
class S2Stacks:
    """Aligned stacks of one scene keyed by GSD in metres (e.g. ``{10: Raster, 20: Raster, 60: Raster}``)."""

    name: str
    stacks: dict[int, Raster]

    def __getitem__(self, gsd: int) -> Raster:
        if gsd not in self.stacks:
            raise DataError(f"{self.name}: no {gsd} m bands (have {sorted(self.stacks)} m)")
        return self.stacks[gsd]

    @property
    def resolutions(self) -> list[int]:
        """Available GSDs, finest first."""
        return sorted(self.stacks)

    @property
    def crs(self) -> Any:
        """The common CRS."""
        return self.stacks[self.resolutions[0]].crs


def band_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Map canonical band name -> file for the ``*_<band>.tif`` files of ``folder``."""
    p = Path(folder)
    if not p.is_dir():
        raise DataError(f"band folder not found: {p}")
    out: dict[str, Path] = {}
    for f in sorted(p.iterdir()):
        m = _BAND_FILE.search(f.name)
        if m:
            b = normalise_band_name(m.group(1))
            if b in out:
                raise DataError(f"{p}: two files for band {b}: {out[b].name}, {f.name}")
            out[b] = f
    if not out:
        raise DataError(f"{p}: no single-band files named like <name>_B02.tif")
    return out


def read_s2_band_folder(
    folder: str | os.PathLike[str],
    bands: Sequence[str] | None = None,
    *,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
) -> S2Stacks:
    """Read a folder of single-band files into aligned stacks keyed by GSD (metres).

    Every stack is float32 reflectance (C, H, W); coarser stacks must be integer-scale, same-origin
    versions of the finest one's footprint, else :class:`~eosr.errors.GeoError` / ``ScaleError``.
    A Sentinel-2 product (``.SAFE`` folder or zip) is read the same way, with its radiometric offset and
    its invalid SCL classes (clouds, shadows) as NaN (:mod:`eosr.io.sentinel2`).
    """
    from eosr.io.sentinel2 import is_safe

    if is_safe(folder):
        return _read_safe(folder, bands, dn_scale, dn_offset)
    files = band_files(folder)
    want = [normalise_band_name(b) for b in bands] if bands is not None else list(files)
    missing = [b for b in want if b not in files]
    if missing:
        raise DataError(f"{folder}: missing band file(s) {', '.join(missing)}")
    groups: dict[int, list[Raster]] = {}
    for b in sorted(want, key=lambda n: S2_ORDER.index(n) if n in S2_ORDER else 99):
        r = read_raster(files[b], dn_scale=dn_scale, dn_offset=dn_offset)
        if r.data.shape[0] != 1:
            raise DataError(f"{files[b]}: expected one band, found {r.data.shape[0]}")
        r.band_names = [b]
        gsd = int(round(r.pixel_size[0]))
        if gsd < 1:
            raise GeoError(f"{files[b]}: pixel size {r.pixel_size[0]} is not in metres")
        groups.setdefault(gsd, []).append(r)
    stacks: dict[int, Raster] = {}
    for gsd, rs in groups.items():
        first = rs[0]
        for r in rs[1:]:
            if r.crs != first.crs or r.transform != first.transform or r.data.shape != first.data.shape:
                raise GeoError(f"{r.path}: grid differs from {first.path} at {gsd} m")
        data = np.concatenate([r.data for r in rs])
        stacks[gsd] = Raster(data, first.crs, first.transform, [r.band_names[0] for r in rs], first.dtype,
                             first.nodata, first.dn_scale, first.dn_offset, {}, str(folder))
    fine = stacks[min(stacks)]
    for gsd in sorted(stacks)[1:]:
        try:
            check_pair(fine, stacks[gsd])
        except (GeoError, DataError) as e:
            raise type(e)(f"{folder}: {gsd} m bands vs {min(stacks)} m bands: {e}") from None
    return S2Stacks(Path(folder).name, stacks)


def _read_safe(path: str | os.PathLike[str], bands: Sequence[str] | None, dn_scale: float | None,
               dn_offset: float | None) -> S2Stacks:
    from eosr.io.sentinel2 import open_safe
    from eosr.io.source import read_scene

    prod = open_safe(path)
    want = [normalise_band_name(b) for b in bands] if bands is not None else list(prod.band_files)
    missing = [b for b in want if b not in prod.band_files]
    if missing:
        raise DataError(f"{path}: the product has no band {', '.join(missing)}")
    groups: dict[int, list[str]] = {}
    for b in sorted(want, key=lambda n: S2_ORDER.index(n) if n in S2_ORDER else 99):
        groups.setdefault(prod.resolutions.get(b, 0), []).append(b)
    stacks = {gsd: read_scene(path, names, dn_scale=dn_scale, dn_offset=dn_offset, mask=True)
              for gsd, names in groups.items()}
    return S2Stacks(Path(path).name, stacks)


def scene_folders(root: str | os.PathLike[str]) -> list[Path]:
    """Sub-folders of ``root`` that hold band files (sorted by name)."""
    p = Path(root)
    if not p.is_dir():
        raise DataError(f"folder not found: {p}")
    out = [d for d in sorted(p.iterdir()) if d.is_dir() and any(_BAND_FILE.search(f.name) for f in d.iterdir())]
    if not out:
        raise DataError(f"{p}: no sub-folder with band files like <name>_B02.tif")
    return out


def stacks_sample(st: S2Stacks, lr_gsd: int, hr_gsd: int | None) -> Sample:
    """A :class:`Sample` with the ``lr_gsd`` stack as LR and the ``hr_gsd`` stack (or None) as HR."""
    lr = st[lr_gsd]
    hr = st[hr_gsd] if hr_gsd is not None else None
    scale = lr_gsd // hr_gsd if hr_gsd is not None else 1
    return make_sample(lr.data, None if hr is None else hr.data, bands=lr.band_names,
                       hr_bands=None if hr is None else hr.band_names, scale=scale, sample_id=st.name,
                       location_id=st.name, crs=lr.crs, lr_transform=lr.transform,
                       hr_transform=None if hr is None else hr.transform)


class S2BandFolderDataset(SampleDataset):
    """Scenes of a root folder (one sub-folder each, BigEarthNet layout) as samples.

    Each sample's ``lr`` is the ``lr_gsd`` stack (default the 20 m bands) and ``hr`` the ``hr_gsd``
    stack (default the 10 m bands: a guide with *other* bands, as in 20 m -> 10 m sharpening);
    ``hr_gsd=None`` gives ``hr=None``. Scenes are read lazily; the location id is the folder name.
    """

    def __init__(self, root: str | os.PathLike[str], lr_gsd: int = 20, hr_gsd: int | None = 10,
                 transform: Any = None) -> None:
        super().__init__([], transform)
        self.folders = scene_folders(root)
        self.lr_gsd, self.hr_gsd = lr_gsd, hr_gsd

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> Sample:
        s = stacks_sample(read_s2_band_folder(self.folders[i]), self.lr_gsd, self.hr_gsd)
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return [f.name for f in self.folders]
