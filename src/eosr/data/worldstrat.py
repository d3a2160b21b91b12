"""WorldStrat reader (Cornebise, Orsolic, Kalaitzis, NeurIPS Datasets and Benchmarks 2022).

Layout: ``hr_dataset/12bit/{AOI}/{AOI}_{pan|ps|rgbn}.tiff`` (SPOT 6/7: pan 1 band, ps = pansharpened
4 bands at 1.5 m, rgbn 4 bands at 6 m) and ``lr_dataset/{AOI}/L2A/{AOI}-{n}-L2A_data.tiff`` (Sentinel-2
revisits n = 1, 2, ..., 12 bands) with ``{AOI}-{n}-CLM.tiff`` cloud masks (nonzero = cloud; turned
into boolean valid) and optionally ``{AOI}-{n}-dataMask.tiff`` (nonzero = data).

DN -> value: LR L2A_data is stored as float reflectance (kept as is); if stored as integers it is
DN x 1e-4. HR 12-bit SPOT DN are divided by 4095 (offset 0): normalised DN, not reflectance.
The scale is the ratio of the LR and HR pixel sizes from the GeoTIFF transforms when present; WorldStrat's
HR/LR footprints are not an exact integer ratio, so ``scale`` is the rounded ratio and
``meta['scale_exact']`` the exact one. The location id is the AOI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from eosr.data._gdal import read_gdal
from eosr.data.sample import DNScale, Sample, SampleDataset, make_sample
from eosr.errors import DataError

WORLDSTRAT_HR_DN = DNScale(1.0 / 4095.0, 0.0)
WORLDSTRAT_LR_DN = DNScale(1e-4, 0.0)
S2_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
HR_BANDS = {"pan": ("PAN",), "ps": ("R", "G", "B", "NIR"), "rgbn": ("R", "G", "B", "NIR")}


class WorldStratDataset(SampleDataset):
    """WorldStrat AOIs as multi-image samples: ``lr`` (N, 12, h, w) revisits, ``hr`` SPOT product.

    ``hr_product`` in pan/ps/rgbn; ``n_revisits`` keeps the first n revisits (all by default);
    ``level`` L2A or L1C.
    """

    def __init__(self, root: str | os.PathLike[str], hr_product: str = "rgbn", n_revisits: int | None = None,
                 level: str = "L2A", transform: Any = None) -> None:
        super().__init__([], transform)
        if hr_product not in HR_BANDS:
            raise DataError(f"hr_product must be one of {', '.join(HR_BANDS)}, got {hr_product!r}")
        self.root, self.hr_product, self.n_revisits, self.level = Path(root), hr_product, n_revisits, level
        hr_dir = self.root / "hr_dataset" / "12bit"
        if not hr_dir.is_dir() or not (self.root / "lr_dataset").is_dir():
            raise DataError(f"WorldStrat folders not found under {self.root} (need hr_dataset/12bit and lr_dataset)")
        self.aois = [d.name for d in sorted(hr_dir.iterdir()) if d.is_dir()]
        if not self.aois:
            raise DataError(f"{hr_dir}: no AOI folders")

    def __len__(self) -> int:
        return len(self.aois)

    def revisits(self, aoi: str) -> list[Path]:
        """The revisit data files of ``aoi`` in revisit order."""
        d = self.root / "lr_dataset" / aoi / self.level
        pat = re.compile(rf"^{re.escape(aoi)}-(\d+)-{self.level}_data\.tiff?$")
        found = sorted(((int(m.group(1)), f) for f in (d.iterdir() if d.is_dir() else []) if (m := pat.match(f.name))),
                       key=lambda t: t[0])
        if not found:
            raise DataError(f"{d}: no {aoi}-<n>-{self.level}_data.tiff revisits")
        return [f for _, f in found][: self.n_revisits]

    def __getitem__(self, i: int) -> Sample:
        aoi = self.aois[i]
        hp = self.root / "hr_dataset" / "12bit" / aoi / f"{aoi}_{self.hr_product}.tiff"
        if not hp.is_file():
            raise DataError(f"file not found: {hp}")
        hr = read_gdal(str(hp), WORLDSTRAT_HR_DN)
        frames, valid = [], []
        lr0 = None
        for f in self.revisits(aoi):
            g = read_gdal(str(f), WORLDSTRAT_LR_DN)
            lr0 = lr0 or g
            if g.data.shape != lr0.data.shape:
                raise DataError(f"{f}: shape {g.data.shape} differs from the first revisit {lr0.data.shape}")
            ok = np.ones(g.data.shape[1:], bool)
            stem = f.name.split(f"-{self.level}_data")[0]
            for suffix, bad_if_nonzero in (("CLM", True), ("dataMask", False)):
                m = f.with_name(f"{stem}-{suffix}{f.suffix}")
                if m.exists():
                    mk = read_gdal(str(m), DNScale(1.0)).data[0]
                    if mk.shape != ok.shape:
                        raise DataError(f"{m}: mask size {mk.shape} differs from {f.name} {ok.shape}")
                    ok &= (mk == 0) if bad_if_nonzero else (mk != 0)
            frames.append(g.data)
            valid.append(ok)
        assert lr0 is not None
        lr = np.stack(frames)
        bands = S2_12 if lr.shape[1] == 12 else tuple(f"B{k + 1}" for k in range(lr.shape[1]))
        hb = HR_BANDS[self.hr_product] if hr.data.shape[0] == len(HR_BANDS[self.hr_product]) else tuple(
            f"HR{k + 1}" for k in range(hr.data.shape[0]))
        if lr0.transform is not None and hr.transform is not None:
            exact = abs(lr0.transform.a) / abs(hr.transform.a)
        else:
            exact = hr.data.shape[-1] / lr.shape[-1]
        s = make_sample(lr, hr.data, bands=bands, hr_bands=hb, scale=max(1, round(exact)), sample_id=aoi,
                        location_id=aoi, lr_valid=np.stack(valid), crs=hr.crs or lr0.crs,
                        lr_transform=lr0.transform, hr_transform=hr.transform, meta={"scale_exact": exact})
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return list(self.aois)
