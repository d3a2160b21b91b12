"""Reader for an eo-learn EOPatch saved as NumPy files (``eolearn_testeopatch_s2`` layout).

``REFERENCE_SCENES.npy`` (T, H, W, 13) float32 TOA reflectance of Sentinel-2 L1C bands B01..B12 with
B8A after B08 and B10 included, resampled to ~10 m; ``CLM.npy`` (T', H, W, 1) cloud masks with
cloud = 1 (converted here to boolean *valid* = not cloud); ``IS_DATA.npy`` (T', H, W, 1) data masks;
``timestamps.json`` (dates of the T' mask layers, not of the reference scenes); ``bbox.geojson``
(the footprint and CRS, from which the pixel-is-area transform is built).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosr.data.s2bands import S2_ORDER
from eosr.errors import DataError


@dataclass
class EOPatchS2:
    """Reference scenes (T, 13, H, W) float32 reflectance, masks (T', H, W) bool valid, georeference."""

    scenes: np.ndarray
    bands: tuple[str, ...]
    clear: np.ndarray | None
    is_data: np.ndarray | None
    timestamps: list[str]
    crs: Any
    transform: Any

    def select(self, bands: list[str]) -> np.ndarray:
        """Scenes restricted to ``bands`` (canonical names), shape (T, len(bands), H, W)."""
        from eosr.sensors import normalise_band_name

        idx = []
        for b in bands:
            n = normalise_band_name(b)
            if n not in self.bands:
                raise DataError(f"band {b!r} not in the EOPatch (bands: {', '.join(self.bands)})")
            idx.append(self.bands.index(n))
        return self.scenes[:, idx]


def _load(p: Path) -> np.ndarray:
    try:
        return np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"file not found: {p}") from None
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{p}: not a readable .npy file ({str(e).splitlines()[0]})") from None


def _nhw(a: np.ndarray, p: Path) -> np.ndarray:
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise DataError(f"{p}: expected (T, H, W, 1) masks, got shape {a.shape}")
    return a


def read_eopatch_s2(folder: str | os.PathLike[str]) -> EOPatchS2:
    """Read the EOPatch folder; masks are boolean *valid* (CLM cloud = 1 becomes False)."""
    from affine import Affine
    from rasterio.crs import CRS

    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"EOPatch folder not found: {d}")
    f = d / "REFERENCE_SCENES.npy"
    sc = _load(f)
    if sc.ndim != 4 or sc.shape[-1] != len(S2_ORDER):
        raise DataError(f"{f}: expected (T, H, W, {len(S2_ORDER)}), got shape {sc.shape}")
    scenes = np.ascontiguousarray(np.moveaxis(sc, -1, 1), dtype=np.float32)
    h, w = scenes.shape[-2:]
    clear = ~_nhw(_load(d / "CLM.npy"), d / "CLM.npy").astype(bool) if (d / "CLM.npy").exists() else None
    isd = _nhw(_load(d / "IS_DATA.npy"), d / "IS_DATA.npy").astype(bool) if (d / "IS_DATA.npy").exists() else None
    for m, n in ((clear, "CLM"), (isd, "IS_DATA")):
        if m is not None and m.shape[1:] != (h, w):
            raise DataError(f"{d / (n + '.npy')}: mask size {m.shape[1:]} differs from scenes {(h, w)}")
    ts = json.loads((d / "timestamps.json").read_text()) if (d / "timestamps.json").exists() else []
    crs = transform = None
    bb = d / "bbox.geojson"
    if bb.exists():
        try:
            g = json.loads(bb.read_text())
            xy = np.asarray(g["coordinates"][0], dtype=float)
            crs = CRS.from_user_input(g["crs"]["properties"]["name"])
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise DataError(f"{bb}: not a polygon with a named CRS ({e})") from None
        x0, x1, y0, y1 = xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()
        transform = Affine((x1 - x0) / w, 0.0, x0, 0.0, -(y1 - y0) / h, y1)
    return EOPatchS2(scenes, S2_ORDER, clear, isd, list(ts), crs, transform)
