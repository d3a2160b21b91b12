"""Reader for the Sentinel-2 ``.mat`` scenes of the S2 sharpening literature (s2_ssc_cnn_hvn2 files).

Each file holds ``Yim``: a 1x12 (or 12x1) MATLAB cell of Sentinel-2 L1C bands in the order
B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12 (no B10), DN = reflectance x 10000, each band at its
own resolution. Reduced-resolution (Wald) files add ``Xm_im`` (H, W, 6): the ORIGINAL 20 m bands
B05 B06 B07 B8A B11 B12, the real reference for 40 m -> 20 m sharpening of ``Yim``'s degraded bands.

MATLAB v7.3 files are HDF5 (read with h5py): arrays are stored transposed (column-major) and cell
entries are object references. Older files (v5) are read with :func:`scipy.io.loadmat`.
Bands that are all zero (Reykjavik's reduced B01/B09) are placeholders, not data: they are left out
of the stacks and listed in :attr:`HVN2Scene.placeholders`. The files carry no georeference.
Known degradation of the reduced sets: one separable 4-tap kernel [0.053253, 0.446747, 0.446747,
0.053253], block-centred, edge padding, x2 decimation (not the Sentinel-2 MTF).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eosr.data.s2bands import S2_10M, S2_20M
from eosr.data.sample import DNScale, Sample, make_sample
from eosr.errors import DataError

MAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
MAT_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
MAT_60M = ("B01", "B09")
HVN2_KERNEL = (0.053253, 0.446747, 0.446747, 0.053253)
_GROUPS = {10: S2_10M, 20: S2_20M, 60: MAT_60M}


@dataclass
class HVN2Scene:
    """One ``.mat`` scene: bands as float32 reflectance, grouped by nominal GSD of the file's grid.

    ``stacks[g]`` is (C, H, W) for g in 10, 20, 60 (bands in canonical order, placeholders
    excluded); for a reduced-resolution file the grids are 20, 40, 120 m but the keys keep the
    native band-group names (10 = B02 B03 B04 B08 group). ``reference`` is ``Xm_im`` as (6, H, W)
    reflectance (bands :data:`MAT_20M`) or None.
    """

    name: str
    stacks: dict[int, np.ndarray]
    stack_bands: dict[int, tuple[str, ...]]
    reference: np.ndarray | None
    placeholders: tuple[str, ...] = field(default=())

    @property
    def reduced(self) -> bool:
        """True for a reduced-resolution (Wald) file that carries ``Xm_im``."""
        return self.reference is not None

    def wald_sample(self) -> Sample:
        """Reduced-resolution set as a sample: LR = degraded 20 m bands (x2 coarser), HR = ``Xm_im``.

        ``meta['guide']`` holds the degraded 10 m bands (on the HR grid of the sample), the usual
        extra input of 20 m -> 10 m sharpening methods.
        """
        if self.reference is None:
            raise DataError(f"{self.name}: not a reduced-resolution file (no Xm_im reference)")
        lr = self.stacks[20]
        if self.stack_bands[20] != MAT_20M:
            raise DataError(f"{self.name}: 20 m bands incomplete: {self.stack_bands[20]}")
        return make_sample(lr, self.reference, bands=MAT_20M, scale=self.reference.shape[-1] // lr.shape[-1],
                           sample_id=self.name, location_id=self.name,
                           meta={"guide": self.stacks[10], "guide_bands": self.stack_bands[10]})


def _read_v73(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    import h5py

    with h5py.File(path, "r") as h:
        if "Yim" not in h:
            raise DataError(f"{path}: no 'Yim' variable (keys: {', '.join(k for k in h if k != '#refs#')})")
        cell = h["Yim"]
        refs = np.asarray(cell).ravel()
        try:
            bands = [np.asarray(h[r][()]).T for r in refs]
        except (TypeError, ValueError, KeyError) as e:
            raise DataError(f"{path}: 'Yim' is not a cell of arrays ({e})") from None
        ref = np.moveaxis(np.asarray(h["Xm_im"][()]).T, -1, 0) if "Xm_im" in h else None
    return bands, ref


def _read_v5(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    import scipy.io

    try:
        d = scipy.io.loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise DataError(f"{path}: not a readable MATLAB file ({str(e).splitlines()[0] if str(e) else e})") from None
    if "Yim" not in d:
        raise DataError(f"{path}: no 'Yim' variable (keys: {', '.join(k for k in d if not k.startswith('__'))})")
    cell = d["Yim"]
    if cell.dtype != object:
        raise DataError(f"{path}: 'Yim' is not a cell array")
    bands = [np.asarray(x) for x in cell.ravel()]
    ref = np.moveaxis(np.asarray(d["Xm_im"]), -1, 0) if "Xm_im" in d else None
    return bands, ref


def read_hvn2_mat(path: str | os.PathLike[str], dn: DNScale = DNScale(1e-4, 0.0)) -> HVN2Scene:
    """Read a ``.mat`` S2 scene (v7.3 or v5) into float32 reflectance stacks (``dn`` rule, default x1e-4)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    bands, ref = _read_v73(p) if h5py.is_hdf5(p) else _read_v5(p)
    if len(bands) != len(MAT_BANDS) or any(b.ndim != 2 for b in bands):
        raise DataError(f"{p}: 'Yim' must hold {len(MAT_BANDS)} 2-D bands, found {[b.shape for b in bands]}")
    by_name = dict(zip(MAT_BANDS, bands, strict=True))
    placeholders = tuple(n for n, b in by_name.items() if not np.any(b))
    h10 = by_name["B02"].shape
    stacks: dict[int, np.ndarray] = {}
    names: dict[int, tuple[str, ...]] = {}
    for g, group in _GROUPS.items():
        sel = [n for n in group if n in by_name and n not in placeholders]
        if not sel:
            continue
        shapes = {by_name[n].shape for n in sel}
        if len(shapes) != 1:
            raise DataError(f"{p}: bands {sel} of the {g} m group have different sizes {sorted(shapes)}")
        (hh, ww), f = shapes.pop(), g // 10
        if (hh * f, ww * f) != h10:
            raise DataError(f"{p}: {g} m group is {hh}x{ww}, expected {h10[0] // f}x{h10[1] // f}")
        stacks[g] = dn.apply(np.stack([by_name[n] for n in sel]))
        names[g] = tuple(sel)
    refl = None
    if ref is not None:
        if ref.shape != (len(MAT_20M), h10[0], h10[1]):
            raise DataError(f"{p}: Xm_im has shape {ref.shape}, expected {(len(MAT_20M), *h10)}")
        refl = dn.apply(ref)
    return HVN2Scene(p.stem, stacks, names, refl, placeholders)
