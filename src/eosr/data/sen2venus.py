"""SEN2VENuS reader (Michel, Vinasco-Salinas, Inglada, Hagolle, *Data* 7(7), 96, 2022; Zenodo 6514159).

Two layouts, detected from each site's ``index.csv`` (tab separated):

* tensors: columns ``tensor_10m_b2b3b4b8``, ``tensor_05m_b2b3b4b8``, ``tensor_20m_b5b6b7b8a`` (the files
  are named ``..._20m_b4b5b6b8a.pt`` but hold B5 B6 B7 B8A; the column spelling ``b4b5b6b8a`` is also
  accepted) and ``tensor_05m_b5b6b7b8a``; each ``.pt`` is one int16 tensor [N, 4, H, W] (N patches);
* GeoTIFF-in-zip: columns ``b2b3b4b8_10m``, ``b2b3b4b8_05m``, ``b5b6b7b8a_20m``, ``b5b6b7b8a_05m``; cells
  ``<inner>.zip/<path>.tif`` read through GDAL ``/vsizip/``, one patch per file, with georeference.

DN -> reflectance: DN x 1e-4 + 0 (reflectance x 10000; negative values occur and are kept);
-10000 is nodata (NaN). Pairs: ``"10m"`` = B2 B3 B4 B8 10 m -> 5 m (x2), ``"20m"`` = B5 B6 B7 B8A
20 m -> 5 m (x4). Location id: the site for tensors (patch positions are not in the tensors; the
site is the safe unit), ``SITE_LOCATION`` from the patch name for GeoTIFFs (a location recurs on
many dates). Split by location with :func:`eosr.data.splits.split_locations`.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eosr.data._gdal import read_gdal, why
from eosr.data.sample import DNScale, Sample, SampleDataset, make_sample
from eosr.errors import DataError, GeoError

SEN2VENUS_DN = DNScale(1e-4, 0.0, nodata=-10000)
_PAIRS = {
    "10m": (("B02", "B03", "B04", "B08"), 2,
            ("tensor_10m_b2b3b4b8",), ("tensor_05m_b2b3b4b8",), ("b2b3b4b8_10m",), ("b2b3b4b8_05m",)),
    "20m": (("B05", "B06", "B07", "B8A"), 4,
            ("tensor_20m_b5b6b7b8a", "tensor_20m_b4b5b6b8a"), ("tensor_05m_b5b6b7b8a", "tensor_05m_b4b5b6b8a"),
            ("b5b6b7b8a_20m",), ("b5b6b7b8a_05m",)),
}


@dataclass
class _Item:
    site: str
    lr: str
    hr: str
    index: int | None  # patch index inside a tensor file; None for one-patch GeoTIFFs
    sample_id: str
    location_id: str


def _rows(index: Path) -> list[dict[str, str]]:
    try:
        with index.open(newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {index}: {e}") from None


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((row[n] for n in names if row.get(n)), None)


def _site_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"SEN2VENuS folder not found: {root}")
    if (root / "index.csv").exists():
        return [root]
    dirs = [d for d in sorted(root.iterdir()) if (d / "index.csv").exists()]
    if not dirs:
        raise DataError(f"{root}: no index.csv here nor in any site sub-folder")
    return dirs


def _location_from_name(name: str) -> str:
    m = re.match(r"^([A-Za-z0-9-]+_\d+)_", Path(name).name)
    return m.group(1) if m else Path(name).stem


class Sen2VenusDataset(SampleDataset):
    """SEN2VENuS patches as samples (``pair="10m"``: x2, ``"20m"``: x4), both layouts, lazy reads.

    ``root`` is one site folder (with ``index.csv``) or a folder of site folders; ``sites`` limits
    the sites read. Tensor files are memory-mapped (``torch.load(mmap=True, weights_only=True)``).
    """

    def __init__(self, root: str | os.PathLike[str], pair: str = "10m", sites: list[str] | None = None,
                 dn: DNScale = SEN2VENUS_DN, transform: Any = None) -> None:
        super().__init__([], transform)
        if pair not in _PAIRS:
            raise DataError(f"SEN2VENuS pair must be one of {', '.join(_PAIRS)}, got {pair!r}")
        self.bands, self.scale, t_lr, t_hr, z_lr, z_hr = _PAIRS[pair]
        self.dn = dn
        self.items: list[_Item] = []
        self._cache: dict[str, torch.Tensor] = {}
        for d in _site_dirs(Path(root)):
            if sites is not None and d.name not in sites:
                continue
            index = d / "index.csv"
            for row in _rows(index):
                lr_t, hr_t = _pick(row, t_lr), _pick(row, t_hr)
                lr_z, hr_z = _pick(row, z_lr), _pick(row, z_hr)
                if lr_t and hr_t:
                    self._add_tensor_rows(d, index, row, lr_t, hr_t)
                elif lr_z and hr_z:
                    self.items.append(_Item(d.name, f"/vsizip/{d / lr_z}", f"/vsizip/{d / hr_z}", None,
                                            Path(lr_z).stem, _location_from_name(lr_z)))
                else:
                    raise DataError(f"{index}: no {pair} columns (need {t_lr[0]}/{t_hr[0]} or {z_lr[0]}/{z_hr[0]}); "
                                    f"columns: {', '.join(row)}")

    def _add_tensor_rows(self, d: Path, index: Path, row: dict[str, str], lr: str, hr: str) -> None:
        try:
            n = int(row.get("nb_patches") or -1)
        except ValueError:
            raise DataError(f"{index}: nb_patches {row.get('nb_patches')!r} is not an integer") from None
        lr_p, hr_p = d / lr, d / hr
        for p in (lr_p, hr_p):
            if not p.is_file():
                raise DataError(f"file not found: {p} (listed in {index})")
        if n < 0:
            n = int(self._tensor(str(lr_p)).shape[0])
        site = row.get("vns_site") or d.name
        for i in range(n):
            self.items.append(_Item(site, str(lr_p), str(hr_p), i, f"{Path(lr).stem}_{i}", site))

    def _tensor(self, path: str) -> torch.Tensor:
        t = self._cache.get(path)
        if t is None:
            try:
                t = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:  # torch raises many types for a corrupt file
                raise DataError(f"cannot read {path}: {why(e)}") from None
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 4:
                raise DataError(f"{path}: expected one [N, 4, H, W] tensor, got {getattr(t, 'shape', type(t))}")
            if len(self._cache) >= 4:  # keep a few memory-mapped files open per worker
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = t
        return t

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        it = self.items[i]
        crs = lt = ht = None
        if it.index is None:
            lg, hg = read_gdal(it.lr, self.dn), read_gdal(it.hr, self.dn)
            lr, hr, crs, lt, ht = lg.data, hg.data, lg.crs, lg.transform, hg.transform
            if lg.crs != hg.crs:
                raise GeoError(f"{it.lr}: CRS differs from {it.hr}")
        else:
            a, b = self._tensor(it.lr), self._tensor(it.hr)
            if it.index >= a.shape[0] or it.index >= b.shape[0]:
                raise DataError(f"{it.lr}: patch {it.index} missing (tensor holds {a.shape[0]}, HR {b.shape[0]})")
            lr, hr = self.dn.apply(a[it.index].numpy()), self.dn.apply(b[it.index].numpy())
        if (hr.shape[-2], hr.shape[-1]) != (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale):
            raise DataError(f"{it.lr}: LR {lr.shape[-2:]} and HR {hr.shape[-2:]} are not at scale {self.scale}")
        s = make_sample(lr, hr, bands=self.bands, scale=self.scale, sample_id=it.sample_id,
                        location_id=it.location_id, crs=crs, lr_transform=lt, hr_transform=ht,
                        meta={"site": it.site})
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return [it.location_id for it in self.items]
