"""Paired GeoTIFF folders: ``lr/<name>.tif`` and ``hr/<name>.tif`` matched by file name.

Each pair is checked with :func:`eosr.io.check_pair`: same CRS (else GeoError), same origin and
footprint (GeoError), and an integer scale inferred from the pixel sizes (else ScaleError).
DN -> reflectance: the file's GDAL scale/offset when set, else DN x 1e-4 for integer files, floats
unchanged (:func:`eosr.io.read_raster`); explicit ``dn_scale``/``dn_offset`` override both.
The location id is the file stem unless a ``location_of(name)`` function is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eosr.data.sample import Sample, SampleDataset, make_sample
from eosr.errors import DataError, GeoError, ScaleError
from eosr.io.raster import check_pair, read_raster

_EXT = (".tif", ".tiff")


class PairedGeoTiffDataset(SampleDataset):
    """LR/HR GeoTIFF pairs from two folders; unmatched names raise DataError listing them."""

    def __init__(self, lr_dir: str | os.PathLike[str], hr_dir: str | os.PathLike[str], *, scale: int | None = None,
                 location_of: Callable[[str], str] | None = None, dn_scale: float | None = None,
                 dn_offset: float | None = None, transform: Any = None) -> None:
        super().__init__([], transform)
        self.lr_dir, self.hr_dir = Path(lr_dir), Path(hr_dir)
        for d in (self.lr_dir, self.hr_dir):
            if not d.is_dir():
                raise DataError(f"folder not found: {d}")
        lr = {f.stem: f for f in sorted(self.lr_dir.iterdir()) if f.suffix.lower() in _EXT}
        hr = {f.stem: f for f in sorted(self.hr_dir.iterdir()) if f.suffix.lower() in _EXT}
        if not lr:
            raise DataError(f"{self.lr_dir}: no .tif files")
        unmatched = sorted(set(lr) ^ set(hr))
        if unmatched:
            raise DataError(f"unmatched LR/HR files in {self.lr_dir} / {self.hr_dir}: {', '.join(unmatched[:5])}"
                            + (" ..." if len(unmatched) > 5 else ""))
        self.names = sorted(lr)
        self.pairs = [(lr[n], hr[n]) for n in self.names]
        self.scale, self.location_of = scale, location_of or (lambda n: n)
        self.dn_scale, self.dn_offset = dn_scale, dn_offset

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Sample:
        lp, hp = self.pairs[i]
        lr = read_raster(lp, dn_scale=self.dn_scale, dn_offset=self.dn_offset)
        hr = read_raster(hp, dn_scale=self.dn_scale, dn_offset=self.dn_offset)
        try:
            r = check_pair(hr, lr, self.scale)
        except (GeoError, ScaleError) as e:
            raise type(e)(f"{lp.name}: {e}") from None
        s = make_sample(lr.data, hr.data, bands=lr.band_names, hr_bands=hr.band_names, scale=r,
                        sample_id=self.names[i], location_id=self.location_of(self.names[i]), crs=hr.crs,
                        lr_transform=lr.transform, hr_transform=hr.transform)
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return [self.location_of(n) for n in self.names]
