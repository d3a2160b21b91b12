"""The sample record every reader yields, DN -> reflectance scaling, and batching.

A :class:`Sample` holds float32 torch tensors: ``lr`` (C, h, w) for single-image or (N, C, h, w)
for multi-image SR, ``hr`` (C', H, W) or ``None``, boolean validity masks (True = usable pixel),
band names, the integer scale, the georeference when known and the sample/location ids (splits are
made by location so that a place never appears in two splits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from eosr.errors import DataError


@dataclass(frozen=True)
class DNScale:
    """Explicit integer DN -> reflectance rule: ``reflectance = DN * scale + offset``.

    Examples: Sentinel-2 L1C/L2A before 2022-01-25 and SEN2VENuS: scale 1e-4, offset 0; Sentinel-2
    L2A from processing baseline 04.00: scale 1e-4, offset -0.1. ``nodata`` (in DN) becomes NaN.
    """

    scale: float = 1e-4
    offset: float = 0.0
    nodata: float | None = None

    def apply(self, dn: Any) -> np.ndarray:
        """DN array -> float32 reflectance, NaN where ``dn == nodata`` or non-finite."""
        a = np.asarray(dn)
        out = a.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        if self.nodata is not None:
            out[a == self.nodata] = np.nan
        out[~np.isfinite(out)] = np.nan
        return out


@dataclass
class Sample:
    """One LR/HR training or test sample (tensors are float32 torch; masks are bool, True = valid).

    ``lr``: (C, h, w) or (N, C, h, w) frames; ``hr``: (C', H, W) or None; ``lr_valid``: (h, w) or
    (N, h, w); ``hr_valid``: (H, W) or None; ``crs``/``hr_transform``/``lr_transform``: rasterio
    CRS and affine transforms (GDAL pixel-is-area, shared origin) or None when unknown.
    """

    lr: torch.Tensor
    hr: torch.Tensor | None
    lr_valid: torch.Tensor
    hr_valid: torch.Tensor | None
    lr_bands: tuple[str, ...]
    hr_bands: tuple[str, ...]
    scale: int
    sample_id: str
    location_id: str
    crs: Any = None
    lr_transform: Any = None
    hr_transform: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_image(self) -> bool:
        """True when ``lr`` holds several frames (N, C, h, w)."""
        return self.lr.ndim == 4


def valid_of(x: torch.Tensor) -> torch.Tensor:
    """Pixel validity of a (C, H, W) or (N, C, H, W) tensor: every band finite."""
    return torch.isfinite(x).all(dim=-3)


def as_float_tensor(a: Any) -> torch.Tensor:
    """NumPy or torch -> contiguous float32 torch tensor."""
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(torch.float32)


def make_sample(
    lr: Any,
    hr: Any,
    *,
    bands: Sequence[str],
    scale: int,
    sample_id: str,
    location_id: str,
    hr_bands: Sequence[str] | None = None,
    lr_valid: Any = None,
    hr_valid: Any = None,
    crs: Any = None,
    lr_transform: Any = None,
    hr_transform: Any = None,
    meta: dict[str, Any] | None = None,
) -> Sample:
    """Build a :class:`Sample`; masks default to "all bands finite" and are AND-ed with NaN checks."""
    lt = as_float_tensor(lr)
    ht = None if hr is None else as_float_tensor(hr)
    lv = valid_of(lt)
    if lr_valid is not None:
        lv = lv & torch.as_tensor(np.asarray(lr_valid), dtype=torch.bool)
    hv = None
    if ht is not None:
        hv = valid_of(ht)
        if hr_valid is not None:
            hv = hv & torch.as_tensor(np.asarray(hr_valid), dtype=torch.bool)
    return Sample(lt, ht, lv, hv, tuple(bands), tuple(hr_bands if hr_bands is not None else bands), int(scale),
                  str(sample_id), str(location_id), crs, lr_transform, hr_transform, dict(meta or {}))


def collate_samples(batch: Sequence[Sample]) -> dict[str, Any]:
    """``DataLoader`` collate function: stack tensors, keep ids and georeference as lists.

    All samples must share shapes (patches). ``hr``/``hr_valid`` are None if any sample lacks HR.
    """
    if not batch:
        raise DataError("cannot collate an empty batch")
    has_hr = all(s.hr is not None for s in batch)
    return {
        "lr": torch.stack([s.lr for s in batch]),
        "lr_valid": torch.stack([s.lr_valid for s in batch]),
        "hr": torch.stack([s.hr for s in batch if s.hr is not None]) if has_hr else None,
        "hr_valid": torch.stack([s.hr_valid for s in batch if s.hr_valid is not None]) if has_hr else None,
        "lr_bands": batch[0].lr_bands,
        "hr_bands": batch[0].hr_bands,
        "scale": batch[0].scale,
        "sample_id": [s.sample_id for s in batch],
        "location_id": [s.location_id for s in batch],
        "crs": [s.crs for s in batch],
        "lr_transform": [s.lr_transform for s in batch],
        "hr_transform": [s.hr_transform for s in batch],
    }


class SampleDataset(Dataset):  # type: ignore[type-arg]
    """A ``Dataset`` over an in-memory list of samples (e.g. Wald patches), optionally transformed."""

    def __init__(self, samples: Sequence[Sample], transform: Any = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        s = self.samples[i]
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        """Location id of every sample (for :func:`eosr.data.splits.assign_splits`)."""
        return [s.location_id for s in self.samples]
