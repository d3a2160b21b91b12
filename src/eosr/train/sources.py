"""Data sources of a training config -> Wald-protocol train patches and whole val/test images, split by location.

Wald protocol (Wald, Ranchin, Mangolini, PE&RS 1997): the real image is HR and its degradation
through the eosr sensor operator (``Degradation.from_sensor(sensor, bands, r, wald=...)``) is LR.
Training patches come from :func:`eosr.data.wald_samples` with the NOISE-FREE operator: noise is
added per step by the training loop (noise augmentation), and at validation with a fixed seed.
Validation and test use whole windows (one Wald pair per location and date), so their scores are
pooled over every held-out pixel without patch-border effects.

A location never appears in two splits (:func:`eosr.data.split_locations` for sources without an
explicit ``split``); the manifest records which location went where.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.data.samples import resolve
from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError, DataError
from eosr.train.config import SourceCfg, TrainConfig


@dataclass
class Image:
    """One real HR image (C, H, W) float32 reflectance of one location (and date)."""

    hr: np.ndarray
    location: str
    name: str


@dataclass
class EvalItem:
    """A whole-window Wald pair: clean LR (C, h, w) and HR (C, H, W) tensors."""

    lr: torch.Tensor
    hr: torch.Tensor
    location: str
    name: str


@dataclass
class Splits:
    """Training patches (stacked tensors), val/test Wald pairs, the operator and the split manifest."""

    train_lr: torch.Tensor
    train_hr: torch.Tensor
    val: list[EvalItem]
    test: list[EvalItem]
    operator: Degradation
    bands: tuple[str, ...]
    locations: dict[str, list[str]]
    train_ids: list[str] = field(default_factory=list)
    #: PSF augmentation (``data.mtf_jitter``): (operator, its training LR patches, same order as train_hr)
    psf_train: list[tuple[Degradation, torch.Tensor]] = field(default_factory=list)
    #: validation per operator form: (mode, catalog operator of that form, its val pairs)
    psf_val: list[tuple[str, Degradation, list[EvalItem]]] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        """JSON-friendly record of the split (locations per split, patch and image counts)."""
        return {
            "splits": {k: sorted(v) for k, v in self.locations.items()},
            "n_train_patches": int(self.train_lr.shape[0]),
            "val_images": [i.name for i in self.val],
            "test_images": [i.name for i in self.test],
        }


def _crop(a: np.ndarray, window: tuple[int, int, int, int] | None, what: str) -> np.ndarray:
    if window is None:
        return a
    r0, r1, c0, c1 = window
    if r1 > a.shape[-2] or c1 > a.shape[-1]:
        raise ConfigError(f"{what}: window {list(window)} exceeds the image size {a.shape[-2]}x{a.shape[-1]}")
    return a[..., r0:r1, c0:c1]


def _select(arr: np.ndarray, have: tuple[str, ...] | list[str], want: tuple[str, ...], what: str) -> np.ndarray:
    from eosr.sensors import normalise_band_name

    have_n = [normalise_band_name(b) for b in have]
    missing = [b for b in want if b not in have_n]
    if missing:
        raise DataError(f"{what}: bands {', '.join(missing)} not found (has {', '.join(have_n)})")
    return arr[..., [have_n.index(b) for b in want], :, :]


def load_images(src: SourceCfg, bands: tuple[str, ...]) -> list[Image]:
    """Read one source as HR images (bands in ``bands`` order), cropped to its window."""
    what = src.path or (src.files[0] if src.files else src.kind)
    loc = src.location or Path(what).stem
    src = src.model_copy(update={"path": resolve(src.path) if src.path else None,
                                 "files": [resolve(f) for f in src.files] if src.files else None})
    out: list[Image] = []
    if src.kind == "hvn2_mat":
        from eosr.data.matfiles import read_hvn2_mat

        sc = read_hvn2_mat(str(src.path))
        g = next((g for g, names in sc.stack_bands.items() if set(bands) <= set(names)), None)
        if g is None:
            raise DataError(f"{what}: no band group holds all of {', '.join(bands)}")
        out.append(Image(_select(sc.stacks[g], sc.stack_bands[g], bands, what), loc, loc))
    elif src.kind == "eopatch":
        from eosr.data.eopatch import read_eopatch_s2

        ep = read_eopatch_s2(str(src.path))
        scenes = ep.select(list(bands))
        dates = src.dates if src.dates is not None else list(range(len(scenes)))
        for t in dates:
            if not 0 <= t < len(scenes):
                raise ConfigError(f"{what}: date index {t} out of range (0..{len(scenes) - 1})")
            out.append(Image(scenes[t], loc, f"{loc}_d{t}"))
    elif src.kind == "geotiff":
        from eosr.io.raster import read_raster

        if src.files:
            arrs = [read_raster(f, dn_scale=src.dn_scale, dn_offset=src.dn_offset).data[:1] for f in src.files]
            shapes = {a.shape for a in arrs}
            if len(shapes) != 1:
                raise DataError(f"{what}: band files differ in size {sorted(shapes)}")
            if len(arrs) != len(bands):
                raise ConfigError(f"{what}: {len(arrs)} band files for {len(bands)} bands (give one file per band)")
            out.append(Image(np.concatenate(arrs), loc, loc))
        else:
            r = read_raster(str(src.path), dn_scale=src.dn_scale, dn_offset=src.dn_offset)
            data = r.data if r.data.shape[0] == len(bands) else _select(r.data, r.band_names, bands, what)
            out.append(Image(data, loc, loc))
    else:
        from eosr.data.s2bands import read_s2_band_folder

        st = read_s2_band_folder(str(src.path), list(bands))
        ras = st[st.resolutions[0]]
        out.append(Image(_select(ras.data, ras.band_names, bands, what), loc, loc))
    res = []
    for im in out:
        a = np.ascontiguousarray(_crop(np.asarray(im.hr, dtype=np.float32), src.window, what))
        res.append(Image(a, im.location, im.name))
    return res


def scaled_sensor_operator(sensor: str, bands: Sequence[str], scale: int, factor: float = 1.0, *,
                           wald: bool = False) -> Degradation:
    """The sensor operator with each band's catalog MTF at Nyquist m_b replaced by min(f m_b, 0.99):
    sigma_b = r sqrt(-2 ln m) / pi (full PSF) or sqrt(r^2 - 1) sqrt(-2 ln m) / pi (Wald extra blur;
    Wald, Ranchin, Mangolini 1997). ``factor`` = 1 is ``Degradation.from_sensor``."""
    from eosr.physics.psf import sigma_from_mtf, wald_sigma
    from eosr.sensors import get_sensor

    if not (factor > 0 and math.isfinite(factor)):
        raise ConfigError(f"the MTF factor must be finite and > 0, got {factor}")
    base = Degradation.from_sensor(sensor, list(bands), scale, wald=wald)
    if factor == 1.0:
        return base
    fn = wald_sigma if wald else sigma_from_mtf
    sel = get_sensor(sensor).select(list(bands))
    sig = tuple(fn(min(factor * b.mtf_nyquist, 0.99), base.scale) for b in sel)
    return Degradation(scale=base.scale, sigmas=sig, bands=base.bands,
                       description=f"{base.description} MTF x{factor:g}")


def jitter_grid(cfg: TrainConfig) -> list[tuple[str, float]]:
    """The (mode, MTF factor) pairs of ``data.mtf_jitter`` (empty without it)."""
    d = cfg.data
    if d.mtf_jitter is None:
        return []
    lo, hi = d.mtf_jitter
    n = d.mtf_jitter_steps if hi > lo else 1
    fs = [round(lo + (hi - lo) * i / max(n - 1, 1), 6) for i in range(n)]
    modes = d.mtf_jitter_modes or ["wald" if d.wald else "full"]
    return [(m, f) for m in modes for f in fs]


def build_datasets(cfg: TrainConfig) -> Splits:
    """Read every source, assign locations to splits, cut Wald training patches and val/test pairs."""
    from eosr.data.splits import split_locations
    from eosr.data.wald import wald_samples
    from eosr.sensors import normalise_band_name

    d = cfg.data
    bands = tuple(normalise_band_name(b) for b in d.bands)
    op = Degradation.from_sensor(d.sensor, list(bands), d.scale, wald=d.wald)
    images: list[Image] = []
    forced: dict[str, str] = {}
    for s in d.sources:
        ims = load_images(s, bands)
        for im in ims:
            if s.split is not None:
                if forced.get(im.location, s.split) != s.split:
                    raise ConfigError(f"location {im.location!r} is given two splits")
                forced[im.location] = s.split
        images += ims
    free = sorted({im.location for im in images} - set(forced))
    auto = split_locations(free, d.split_fractions, seed=d.split_seed) if free else {}
    where = dict(forced)
    for k, locs in auto.items():
        for loc in locs:
            where[loc] = k
    locations: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for loc, k in sorted(where.items()):
        locations.setdefault(k, []).append(loc)
    if not locations["train"]:
        raise ConfigError("no location is assigned to the training split")
    stride = cfg.stride or max(d.scale, cfg.patch // 2)
    lrs, hrs, ids = [], [], []
    val: list[EvalItem] = []
    test: list[EvalItem] = []
    for im in images:
        split = where[im.location]
        if split == "train":
            try:
                ss = wald_samples(im.hr, op, patch=cfg.patch, stride=stride, location_id=im.location,
                                  max_invalid=d.max_invalid, bands=bands)
            except Exception as e:  # noqa: BLE001 - re-raised with the image name
                raise DataError(f"{im.name}: {str(e).splitlines()[0]}") from None
            for smp in ss:
                lrs.append(smp.lr)
                hrs.append(smp.hr)
                ids.append(f"{im.name}:{smp.sample_id}")
        else:
            hr = torch.from_numpy(op.crop(im.hr).copy())
            item = EvalItem(op.downsample(hr).float(), hr, im.location, im.name)
            (val if split == "val" else test).append(item)
    if not lrs:
        raise ConfigError(f"no training patch of {cfg.patch} px fits the training images")
    sp = Splits(torch.stack(lrs), torch.stack([h for h in hrs if h is not None]), val, test, op, bands,
                locations, ids)
    grid = jitter_grid(cfg)
    for mode, f in grid:
        opj = scaled_sensor_operator(d.sensor, bands, d.scale, f, wald=mode == "wald")
        jl: list[torch.Tensor] = []
        for im in images:
            if where[im.location] == "train":
                ss = wald_samples(im.hr, opj, patch=cfg.patch, stride=stride, location_id=im.location,
                                  max_invalid=d.max_invalid, bands=bands)
                jl += [torch.as_tensor(smp.lr) for smp in ss]
        if len(jl) != len(lrs):  # the same patches (the HR and the valid mask do not depend on the PSF)
            raise DataError(f"MTF x{f:g} ({mode}) gives {len(jl)} training patches, the catalog operator {len(lrs)}")
        sp.psf_train.append((opj, torch.stack(jl)))
    for mode in dict.fromkeys(m for m, _ in grid):
        opm = scaled_sensor_operator(d.sensor, bands, d.scale, 1.0, wald=mode == "wald")
        items = [EvalItem(opm.downsample(it.hr).float(), it.hr, it.location, it.name) for it in val]
        sp.psf_val.append((mode, opm, items))
    return sp
