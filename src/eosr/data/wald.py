"""Wald protocol training/test sets: the real image is HR, its degradation is LR.

Wald, Ranchin, Mangolini, "Fusion of satellite images of different spatial resolutions: assessing
the quality of resulting images", PE&RS 63(6), 1997: degrade a real image by the scale factor with the
sensor's PSF, super-resolve it back and compare with the original.

Which sigma: the operator decides. ``Degradation.from_sensor(sensor, bands, r, wald=True)`` uses the
extra blur sigma = sqrt(r^2 - 1) sqrt(-2 ln m) / pi (HR px) for an HR image that already carries the
sensor MTF m (docs/conventions.md#operator-and-wald-protocol); ``wald=False`` uses the full
sigma = r sqrt(-2 ln m) / pi.
The operator's :meth:`~eosr.degrade.Degradation.describe` is recorded in every sample's ``meta``.

The whole image is degraded once (NaN-aware: an LR pixel whose PSF support touches nodata or cloud
becomes NaN), then HR patches of ``patch`` px and the co-located LR patches of ``patch / r`` px are
cut on a ``stride`` grid; both are multiples of r so LR and HR patches share their origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosr.data.sample import Sample, SampleDataset, make_sample
from eosr.degrade.operator import Degradation
from eosr.errors import ScaleError, ShapeError


def wald_pair(hr: Any, operator: Degradation, *, seed: int | None = 0) -> tuple[Any, Any]:
    """(LR, HR): ``LR = operator(HR)`` (PSF, decimation, then the operator's noise/quantisation, seeded)
    with HR cropped so that its size is divisible by the scale. Same array type as given."""
    h = operator.crop(hr)
    return operator(h, seed=seed), h


def patch_origins(h: int, w: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left (row, col) of every ``patch`` x ``patch`` window on a ``stride`` grid inside h x w."""
    if patch < 1 or stride < 1:
        raise ShapeError(f"patch and stride must be >= 1, got {patch}, {stride}")
    if patch > h or patch > w:
        raise ShapeError(f"patch {patch} px is larger than the image {h}x{w}")
    return [(r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)]


@dataclass
class WaldStats:
    """Bookkeeping of one :func:`wald_samples` call: patches tried and rejected."""

    tried: int = 0
    rejected: int = 0


def wald_samples(
    image: Any,
    operator: Degradation,
    *,
    patch: int,
    location_id: str,
    stride: int | None = None,
    valid: Any = None,
    max_invalid: float = 0.0,
    bands: Sequence[str] | None = None,
    crs: Any = None,
    transform: Any = None,
    seed: int = 0,
    stats: WaldStats | None = None,
) -> list[Sample]:
    """Wald LR/HR patch samples of one real image (C, H, W) reflectance (HR).

    ``patch``/``stride`` in HR px (multiples of the scale; stride defaults to ``patch``). ``valid``
    (H, W) bool marks usable HR pixels (False = nodata/cloud; such pixels are set to NaN before the
    degradation). A patch is rejected when the invalid fraction of its HR or LR pixels exceeds
    ``max_invalid``. ``transform`` is the HR image's affine transform; patch transforms follow it.
    Sample ids are ``{location_id}_r{row}_c{col}`` (HR px).
    """
    from eosr.io.raster import lr_transform as lr_tf

    r = operator.scale
    stride = patch if stride is None else stride
    if patch % r or stride % r:
        raise ScaleError(f"patch ({patch}) and stride ({stride}) must be multiples of the scale {r}")
    if not 0.0 <= max_invalid <= 1.0:
        raise ShapeError(f"max_invalid must lie in [0, 1], got {max_invalid}")
    img = np.array(image.detach().cpu().numpy() if hasattr(image, "detach") else image, dtype=np.float32)
    if img.ndim != 3:
        raise ShapeError(f"wald_samples needs one (C, H, W) image, got shape {img.shape}")
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != img.shape[1:]:
            raise ShapeError(f"valid mask {v.shape} does not match the image {img.shape[1:]}")
        img[:, ~v] = np.nan
    lr, hr = wald_pair(img, operator, seed=seed)
    lr = np.asarray(lr, dtype=np.float32)
    hr_ok = np.isfinite(hr).all(axis=0)
    lr_ok = np.isfinite(lr).all(axis=0)
    names = tuple(bands) if bands is not None else (operator.bands or tuple(f"B{i + 1}" for i in range(len(img))))
    desc = operator.describe()
    out = []
    st = stats if stats is not None else WaldStats()
    for y, x in patch_origins(hr.shape[1], hr.shape[2], patch, stride):
        st.tried += 1
        hv = hr_ok[y : y + patch, x : x + patch]
        ly, lx, lp = y // r, x // r, patch // r
        lv = lr_ok[ly : ly + lp, lx : lx + lp]
        if 1.0 - hv.mean() > max_invalid or 1.0 - lv.mean() > max_invalid:
            st.rejected += 1
            continue
        ht = lt = None
        if transform is not None:
            from affine import Affine

            ht = transform @ Affine.translation(x, y)
            lt = lr_tf(ht, r)
        out.append(make_sample(lr[:, ly : ly + lp, lx : lx + lp], hr[:, y : y + patch, x : x + patch], bands=names,
                               scale=r, sample_id=f"{location_id}_r{y}_c{x}", location_id=location_id, crs=crs,
                               lr_transform=lt, hr_transform=ht,
                               meta={"origin_hr": (y, x), "degradation": desc}))
    return out


class WaldDataset(SampleDataset):
    """Wald patches of several real images, each tagged with its location (for location splits).

    ``images`` yields dicts with keys ``image`` (C, H, W), ``location_id`` and optional ``valid``,
    ``crs``, ``transform``, ``bands``; every image gets its own noise seed (``seed + index``).
    ``stats`` counts the patches tried and rejected.
    """

    def __init__(self, images: Iterable[dict[str, Any]], operator: Degradation, *, patch: int,
                 stride: int | None = None, max_invalid: float = 0.0, seed: int = 0, transform: Any = None) -> None:
        self.operator = operator
        self.stats = WaldStats()
        samples: list[Sample] = []
        for i, item in enumerate(images):
            samples += wald_samples(item["image"], operator, patch=patch, stride=stride,
                                    location_id=str(item["location_id"]), valid=item.get("valid"),
                                    max_invalid=max_invalid, bands=item.get("bands"), crs=item.get("crs"),
                                    transform=item.get("transform"), seed=seed + i, stats=self.stats)
        super().__init__(samples, transform)
