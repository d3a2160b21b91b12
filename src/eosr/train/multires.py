"""Trainer of the Sentinel-2 20 m -> 10 m sharpening network (``s2_multires`` with presence flags).

The single-input loop of :mod:`eosr.train.loop` cannot express the two-input task, so this module is
its small two-input sibling; it reuses the loop's pieces (config sections, learning-rate schedule,
optimiser, run-folder checks, split manifest, checkpoint writer). A config with ``kind = "s2_multires"``
(``configs/s2_multires_20m.toml``) is dispatched here by ``eosr train``.

Task (Lanaras et al. 2018, DSen2 "T2x", reduced resolution after Wald et al. 1997): the 10 m bands
degraded x2 to 20 m and the 20 m bands degraded x2 to 40 m with the Sentinel-2 Wald operator
(:meth:`eosr.degrade.Degradation.from_sensor` ``("sentinel2", bands, 2, wald=True)``) are the inputs; the
ORIGINAL 20 m bands are the target. PSF robustness: the training images are degraded once per MTF factor
pair (10 m group, 20 m group) of ``psf.mtf_factors`` (the Wald blur of MTF f m_b), and reduced-resolution
files made by third parties (``Xm_im`` of the hvn2 ``_RR`` sets) are used as they are. Landsat 8 OLI scenes
(``landsat8`` sources) teach B11/B12 only: SWIR 1/2 degraded x2 with the B11/B12 operator, guided by the
visible/NIR bands on their native grid; an image holds only the 20 m slots it has (``MRImage.present``).

Augmentation per patch: the 8 flips/rotations (same for every input and the target), radiometric gain and
offset per band (20 m bands: on input and target alike; 10 m bands: on the guide), Gaussian noise on both
inputs, and band dropout (all six 20 m bands with ``p_all``, only B11+B12 with ``p_swir``, else a random
non-empty subset): absent bands are flagged, and the loss (L1 of the normalised error) counts the given
bands only. Epochs are selected on the validation split only: the monitored score is the mean over
validation images and band sets (all six; B11+B12) of RMSE(model) / RMSE(bicubic) (lower is better).

Determinism: every random choice is a pure function of (seed, global step); 1 torch thread.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eosr.errors import ConfigError, DataError
from eosr.train.config import NoiseCfg, OptimCfg, RadiometricCfg, ScheduleCfg

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
SWIR = ("B11", "B12")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MRModelCfg(_Strict):
    features: int = Field(48, ge=4, le=256)
    blocks: int = Field(6, ge=1, le=32)
    res_scaling: float = Field(0.1, gt=0, le=1)
    guided_skip: bool = False
    # PSF-told training: the guided skip of each patch uses the 20 m operator that made it (unknown
    # third-party kernels: the catalogue one), so the operator can be told at inference.
    psf_told: bool = False


class MRSourceCfg(_Strict):
    """One real source with native 10 m AND 20 m bands; ``window`` = (r0, r1, c0, c1) on the 20 m grid.

    ``hvn2_mat``: an s2_ssc_cnn_hvn2 ``.mat`` (native: degraded here; reduced ``_RR``: used as given, its
    ``Xm_im`` is the target). ``eopatch``: the eo-learn test patch (all dates), whose 20 m bands were
    nearest-resampled to 10 m: its 2x2 blocks (rows from 1, columns from 0) are the 20 m pixels.

    ``landsat8``: a Landsat 8 OLI Level-1 folder (``*B2``..``*B7`` band files and the MTL, read as TOA
    reflectance): SWIR 1/2 (B6, B7) stand in for B11/B12 and B2 B3 B4 B5 for the guide B02 B03 B04 B08
    (matching spectral bands; the radiometric augmentation covers the sensors' differences). The guide is
    used at its native 30 m grid and B6/B7 are degraded x2 with the B11/B12 operator, so the image has the
    layout of the real task (guide on the output grid) with only the B11 and B12 slots present; its
    ``window`` is on the 30 m grid.
    """

    kind: Literal["hvn2_mat", "eopatch", "landsat8"]
    path: str
    window: tuple[int, int, int, int] | None = None
    dates: list[int] | None = None  # eopatch: date indices (default all)
    location: str
    split: Literal["train", "val", "test"]
    weight: float = Field(1.0, gt=0)  # sampling weight per pixel (patches are drawn by area x weight)


class DropoutCfg(_Strict):
    p_all: float = Field(0.35, ge=0, le=1)
    p_swir: float = Field(0.15, ge=0, le=1)


class PSFCfg(_Strict):
    mtf_factors: list[tuple[float, float]] = [(1.0, 1.0)]
    # validation images of native sources, once per factor pair; a psf_told network is told each one's operator
    val_factors: list[tuple[float, float]] = [(1.0, 1.0)]


class MultiResConfig(_Strict):
    """``kind = "s2_multires"`` training config (see the module docstring)."""

    kind: Literal["s2_multires"]
    name: str
    seed: int = 0
    epochs: int = Field(20, ge=1)
    steps_per_epoch: int = Field(100, ge=1)
    batch_size: int = Field(16, ge=1)
    patch: int = Field(32, ge=8)
    threads: int = Field(1, ge=1)
    output: str
    progress: bool = True
    model: MRModelCfg = Field(default_factory=lambda: MRModelCfg.model_validate({}))
    sources: list[MRSourceCfg]
    psf: PSFCfg = Field(default_factory=lambda: PSFCfg.model_validate({}))
    dropout: DropoutCfg = Field(default_factory=lambda: DropoutCfg.model_validate({}))
    noise: NoiseCfg = Field(default_factory=lambda: NoiseCfg.model_validate({}))
    radiometric: RadiometricCfg = Field(default_factory=lambda: RadiometricCfg.model_validate({}))
    optimizer: OptimCfg = Field(default_factory=lambda: OptimCfg.model_validate({}))
    schedule: ScheduleCfg = Field(default_factory=lambda: ScheduleCfg.model_validate({}))
    patience: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _even(self) -> MultiResConfig:
        if self.patch % 2:
            raise ValueError(f"patch must be even (the 40 m input is patch/2), got {self.patch}")
        return self


def is_multires_config(path: str | Path) -> bool:
    """Whether the TOML file at ``path`` declares ``kind = "s2_multires"`` (False when unreadable)."""
    from eosr.train.config import config_kind

    return config_kind(path) == "s2_multires"


def load_multires_config(path: str | Path, doc: dict[str, Any] | None = None) -> MultiResConfig:
    """Parse a ``kind = "s2_multires"`` TOML file (relative paths from its folder) into a config."""
    from eosr.train.config import load_kind_config

    return load_kind_config(path, MultiResConfig, doc)


@dataclass
class MRImage:
    """One training/evaluation image: guide (4, H, W) at 20 m, 20 m bands (6, H/2, W/2) at 40 m, target
    (6, H, W) at 20 m (float32 reflectance), with its name, location, split, degradation, the 20 m slots
    it holds (``present``, 6 bool; absent slots are 0) and its sampling weight."""

    x10: torch.Tensor
    x20: torch.Tensor
    hr: torch.Tensor
    name: str
    location: str
    split: str
    degradation: str
    present: torch.Tensor = field(default_factory=lambda: torch.ones(6, dtype=torch.bool))
    weight: float = 1.0
    sigmas: tuple[float, ...] | None = None  # PSF sigmas (10 m px) of the 20 m bands' x2 operator; None: unknown


def wald_operators(f10: float = 1.0, f20: float = 1.0) -> tuple[Any, Any]:
    """The Sentinel-2 x2 Wald operators of the 10 m and 20 m bands, MTF scaled by f10 / f20 (clipped < 1)."""
    from eosr.degrade import Degradation
    from eosr.physics.psf import wald_sigma
    from eosr.sensors import get_sensor

    s = get_sensor("sentinel2")
    ops = []
    for names, f in ((BANDS_10M, f10), (BANDS_20M, f20)):
        if f == 1.0:
            ops.append(Degradation.from_sensor("sentinel2", list(names), 2, wald=True))
            continue
        sig = tuple(wald_sigma(min(0.95, b.mtf_nyquist * f), 2) for b in s.select(list(names)))
        ops.append(Degradation(scale=2, sigmas=sig, bands=names, description=f"sentinel2 Wald PSF x2, MTF x{f}"))
    return ops[0], ops[1]


def native_pairs(src: MRSourceCfg) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(10 m bands (4, 2h, 2w), 20 m bands (6, h, w), name) of a native source, cropped to its window."""
    from eosr.data.samples import resolve

    path = resolve(src.path)
    out = []
    if src.kind == "hvn2_mat":
        from eosr.data.matfiles import read_hvn2_mat

        sc = read_hvn2_mat(path)
        if sc.reduced:
            raise DataError(f"{src.path}: a reduced-resolution file is not a native pair")
        out.append((sc.stacks[10], sc.stacks[20], src.location))
    else:
        from eosr.data.eopatch import read_eopatch_s2

        ep = read_eopatch_s2(path)
        s10 = ep.select(list(BANDS_10M))[:, :, 1:, :]
        s20 = ep.select(list(BANDS_20M))[:, :, 1::2, ::2]
        h, w = s20.shape[-2:]
        for t in (src.dates if src.dates is not None else range(len(s10))):
            if not 0 <= t < len(s10):
                raise ConfigError(f"{src.path}: date index {t} out of range (0..{len(s10) - 1})")
            out.append((s10[t, :, : 2 * h, : 2 * w], s20[t], f"{src.location}_d{t}"))
    res = []
    for a10, a20, name in out:
        r0, r1, c0, c1 = _window(src.window, a20.shape[1:], src.path)
        res.append((np.ascontiguousarray(a10[:, 2 * r0: 2 * r1, 2 * c0: 2 * c1], dtype=np.float32),
                    np.ascontiguousarray(a20[:, r0:r1, c0:c1], dtype=np.float32), name))
    return res


def _window(window: tuple[int, int, int, int] | None, shape: tuple[int, ...], where: str
            ) -> tuple[int, int, int, int]:
    """``window`` (r0, r1, c0, c1) checked to be even-sized inside ``shape`` (default: the largest even one)."""
    h, w = shape[-2], shape[-1]
    r0, r1, c0, c1 = window or (0, h // 2 * 2, 0, w // 2 * 2)
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w) or (r1 - r0) % 2 or (c1 - c0) % 2:
        raise ConfigError(f"{where}: window {window} must be even-sized inside {(h, w)}")
    return r0, r1, c0, c1


LANDSAT_GUIDE = ("B02", "B03", "B04", "B05")  # OLI B2 B3 B4 B5 -> B02 B03 B04 B08
LANDSAT_SWIR = ("B06", "B07")  # OLI B6 B7 -> B11 B12


def _landsat_band(folder: Path, band: str, window: tuple[int, int, int, int] | None) -> np.ndarray:
    from eosr.io.raster import file_band_name, read_raster

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".tif", ".tiff") and file_band_name(f) == band)
    if len(files) != 1:
        raise DataError(f"{folder}: expected one Landsat band file of {band} (*_B{int(band[1:])}.tif), "
                        f"found {len(files)}")
    a = read_raster(files[0]).data[0]
    r0, r1, c0, c1 = _window(window, a.shape, str(folder))
    a = a[r0:r1, c0:c1]
    if not np.isfinite(a).all():
        raise DataError(f"{files[0]}: nodata inside the window {window}; choose a window of valid pixels")
    return np.ascontiguousarray(a, dtype=np.float32)


def landsat_images(src: MRSourceCfg, factors: list[tuple[float, float]]) -> list[MRImage]:
    """A ``landsat8`` source (see :class:`MRSourceCfg`) as one image per distinct 20 m MTF factor."""
    from eosr.data.samples import resolve

    folder = Path(resolve(src.path))
    x10 = torch.from_numpy(np.stack([_landsat_band(folder, b, src.window) for b in LANDSAT_GUIDE]))
    hr = torch.zeros((6, *x10.shape[-2:]), dtype=torch.float32)
    for b, a in zip(SWIR, LANDSAT_SWIR, strict=True):
        hr[BANDS_20M.index(b)] = torch.from_numpy(_landsat_band(folder, a, src.window))
    present = torch.tensor([b in SWIR for b in BANDS_20M])
    out = []
    for f20 in sorted({f for _, f in factors}):
        op20 = wald_operators(1.0, f20)[1]
        tag = "" if f20 == 1.0 else f"_mtf{f20:g}"
        out.append(MRImage(x10, op20.downsample(hr).float() * present[:, None, None], hr, src.location + tag,
                           src.location, src.split, f"Landsat 8 guide native; B6/B7 Wald x2 with the B11/B12 "
                           f"operator, MTF x{f20:g}", present, src.weight, op20.sigmas))
    return out


def build_images(cfg: MultiResConfig) -> list[MRImage]:
    """Every source as Wald images: one per MTF factor pair for native data, as given for ``_RR`` files.

    Validation images: one per ``psf.val_factors`` pair (default the catalogue operator only) and their ``_RR``
    form; test images: the catalogue operator and their ``_RR`` form.
    """
    from eosr.data.matfiles import read_hvn2_mat
    from eosr.data.samples import resolve

    images: list[MRImage] = []
    for src in cfg.sources:
        if src.kind == "landsat8":
            images.extend(landsat_images(src, _factors(cfg, src.split)))
            continue
        if src.kind == "hvn2_mat":
            sc = read_hvn2_mat(resolve(src.path))
            if sc.reduced:
                assert sc.reference is not None
                r0, r1, c0, c1 = src.window or (0, sc.reference.shape[1], 0, sc.reference.shape[2])
                if (r1 - r0) % 2 or (c1 - c0) % 2 or r0 % 2 or c0 % 2:
                    raise ConfigError(f"{src.path}: window {src.window} must be even on the 20 m grid")
                images.append(MRImage(torch.from_numpy(sc.stacks[10][:, r0:r1, c0:c1].copy()),
                                      torch.from_numpy(sc.stacks[20][:, r0 // 2: r1 // 2, c0 // 2: c1 // 2].copy()),
                                      torch.from_numpy(sc.reference[:, r0:r1, c0:c1].copy()),
                                      f"{src.location}_rr", src.location, src.split, "third-party (file)",
                                      weight=src.weight))
                continue
        factors = _factors(cfg, src.split)
        for a10, a20, name in native_pairs(src):
            t10, t20 = torch.from_numpy(a10), torch.from_numpy(a20)
            for f10, f20 in factors:
                op10, op20 = wald_operators(f10, f20)
                tag = "" if (f10, f20) == (1.0, 1.0) else f"_mtf{f10:g}_{f20:g}"
                images.append(MRImage(op10.downsample(t10).float(), op20.downsample(t20).float(), t20.clone(),
                                      name + tag, src.location, src.split, f"sentinel2 Wald x2, MTF x{f10:g}/x{f20:g}",
                                      weight=src.weight, sigmas=op20.sigmas))
    return images


def _factors(cfg: MultiResConfig, split: str) -> list[tuple[float, float]]:
    return {"train": cfg.psf.mtf_factors, "val": cfg.psf.val_factors}.get(split, [(1.0, 1.0)])


def _dihedral(t: torch.Tensor, code: int) -> torch.Tensor:
    if code & 1:
        t = t.flip(-1)
    if code & 2:
        t = t.flip(-2)
    if code & 4:
        t = t.transpose(-2, -1)
    return t


def sample_batch(train: list[MRImage], cfg: MultiResConfig, g: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random augmented batch: (x10, x20, mask (B, 6) bool, hr, sigmas (B, 6)) (see the module docstring);
    ``sigmas`` = the PSF sigmas of the operator that made each patch's 20 m bands (catalogue when unknown)."""
    from eosr.models.guided import band_sigmas

    catalogue = band_sigmas(BANDS_20M)
    p = cfg.patch
    sizes = torch.tensor([im.hr.shape[-2] * im.hr.shape[-1] * im.weight for im in train],
                         dtype=torch.float64)  # by area x weight
    x10s, x20s, hrs, masks, sigs = [], [], [], [], []
    for _ in range(cfg.batch_size):
        im = train[int(torch.multinomial(sizes, 1, generator=g))]
        y = 2 * int(torch.randint(0, (im.hr.shape[-2] - p) // 2 + 1, (1,), generator=g))
        x = 2 * int(torch.randint(0, (im.hr.shape[-1] - p) // 2 + 1, (1,), generator=g))
        code = int(torch.randint(0, 8, (1,), generator=g))
        a10 = _dihedral(im.x10[:, y: y + p, x: x + p], code)
        a20 = _dihedral(im.x20[:, y // 2: (y + p) // 2, x // 2: (x + p) // 2], code)
        hr = _dihedral(im.hr[:, y: y + p, x: x + p], code)
        u = float(torch.rand((), generator=g))
        if u < cfg.dropout.p_all:
            m = im.present.clone()
        elif u < cfg.dropout.p_all + cfg.dropout.p_swir:
            m = torch.tensor([b in SWIR for b in BANDS_20M]) & im.present
        else:
            m = torch.zeros(6, dtype=torch.bool)
            while not m.any():
                m = (torch.rand(6, generator=g) < 0.5) & im.present
        if not m.any():
            m = im.present.clone()
        x10s.append(a10)
        x20s.append(a20)
        hrs.append(hr)
        masks.append(m)
        sigs.append(im.sigmas if im.sigmas is not None else catalogue)
    x10, x20, hr, mask = torch.stack(x10s), torch.stack(x20s), torch.stack(hrs), torch.stack(masks)
    rc = cfg.radiometric
    if rc.gain != (1.0, 1.0) or rc.offset != (0.0, 0.0):
        def ab(c: int) -> tuple[torch.Tensor, torch.Tensor]:
            shape = (x10.shape[0], c, 1, 1)
            a = rc.gain[0] + (rc.gain[1] - rc.gain[0]) * torch.rand(shape, generator=g)
            b = rc.offset[0] + (rc.offset[1] - rc.offset[0]) * torch.rand(shape, generator=g)
            return a, b

        a, b = ab(6)
        x20, hr = a * x20 + b, a * hr + b
        a, b = ab(4)
        x10 = a * x10 + b
    nz = cfg.noise
    if nz.sigma_max > 0:
        n = x10.shape[0]
        sig = nz.sigma_min + (nz.sigma_max - nz.sigma_min) * torch.rand(n, generator=g)
        sig = torch.where(torch.rand(n, generator=g) < nz.p_clean, 0.0, sig)[:, None, None, None]
        x10 = x10 + sig * torch.randn(x10.shape, generator=g)
        x20 = x20 + sig * torch.randn(x20.shape, generator=g)
    return x10.contiguous(), x20.contiguous(), mask, hr.contiguous(), torch.tensor(sigs, dtype=torch.float64)


def bicubic_20m(x20: torch.Tensor) -> torch.Tensor:
    """Bicubic x2 of the 20 m bands (the reference baseline of the validation score)."""
    return F.interpolate(x20, scale_factor=2, mode="bicubic", align_corners=False)


@torch.no_grad()
def validate(model: Any, images: list[MRImage]) -> dict[str, Any]:
    """RMSE of the model and of bicubic on each image, for all six bands and for B11+B12 only (the sets an
    image holds); ``score`` = mean of RMSE(model) / RMSE(bicubic) over images and band sets (lower is
    better). A network that takes the operator (``psf_told``) is told each image's (when known)."""
    out: dict[str, Any] = {}
    ratios = []
    told = bool(getattr(model, "psf_told", False))
    before = getattr(model, "skip_sigmas", None)
    for im in images:
        if told:
            model.skip_sigmas = im.sigmas  # None (third-party kernel): its default, the catalogue operator
        rec = {}
        for key, bands in (("all", BANDS_20M), ("swir", SWIR)):
            if not all(bool(im.present[BANDS_20M.index(b)]) for b in bands):
                continue
            idx = [BANDS_20M.index(b) for b in bands]
            sr = model(im.x10[None], im.x20[None, idx], bands=list(bands))[0]
            hr = im.hr[idx]
            rm = float(torch.sqrt(torch.mean((sr - hr) ** 2)))
            rb = float(torch.sqrt(torch.mean((bicubic_20m(im.x20[None, idx])[0] - hr) ** 2)))
            rec[key] = {"rmse": round(rm, 6), "rmse_bicubic": round(rb, 6)}
            ratios.append(rm / rb)
        out[im.name] = rec
    if told:
        model.skip_sigmas = before
    out["score"] = float(np.mean(ratios)) if ratios else float("nan")
    return out


def build_model(cfg: MultiResConfig, train: list[MRImage]) -> Any:
    """The presence network (seeded init), normalised with the training guide and target statistics."""
    from eosr.models.s2_multires import S2MultiRes

    torch.manual_seed(cfg.seed)
    m = cfg.model
    model = S2MultiRes(1, BANDS_10M, BANDS_20M, features=m.features, blocks=m.blocks, res_scaling=m.res_scaling,
                       presence=True, guided_skip=m.guided_skip, psf_told=m.psf_told)
    g10 = torch.cat([im.x10.reshape(4, -1) for im in train], dim=1).double()
    missing = [b for c, b in enumerate(BANDS_20M) if not any(bool(im.present[c]) for im in train)]
    if missing:
        raise ConfigError(f"no training image holds {', '.join(missing)}: add a source with those bands")
    h20 = [torch.cat([im.hr[c].reshape(-1) for im in train if im.present[c]]).double() for c in range(6)]
    mean = torch.cat([g10.mean(dim=1), torch.stack([h.mean() for h in h20])])
    std = torch.cat([g10.std(dim=1), torch.stack([h.std() for h in h20])])
    model.set_normalisation(mean.float(), std.clamp(min=1e-6).float())
    return model


def _card(cfg: MultiResConfig, images: list[MRImage], history: list[dict[str, Any]], best_epoch: int,
          chash: str) -> dict[str, Any]:
    op10, op20 = wald_operators()
    return {
        "name": cfg.name,
        "sensor_operator": op20.describe() | {"sensor": "sentinel2", "wald": True,
                                              "guide_operator": op10.describe(),
                                              "mtf_factors_trained": [list(f) for f in cfg.psf.mtf_factors],
                                              "psf_told": cfg.model.psf_told},
        "task": "Sentinel-2 20 m -> 10 m sharpening of any subset of B05 B06 B07 B8A B11 B12 guided by "
                "B02 B03 B04 B08 (Lanaras et al. 2018, DSen2 T2x)",
        "training": {
            "config": cfg.model_dump(mode="json", exclude={"output", "progress"}),
            "config_hash": chash,
            "split_manifest": manifest(cfg, images),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "selection": "validation split only (mean RMSE ratio to bicubic, all six bands and B11+B12)",
        },
        "metrics": {"validation": history[best_epoch - 1]["val"] if best_epoch >= 1 else None},
    }


def manifest(cfg: MultiResConfig, images: list[MRImage]) -> dict[str, Any]:
    """Locations, windows (20 m grid) and images of each split."""
    doc: dict[str, Any] = {}
    for k in ("train", "val", "test"):
        doc[k] = {"locations": sorted({s.location for s in cfg.sources if s.split == k}),
                  "sources": [{"path": s.path, "window": list(s.window) if s.window else None, "location": s.location}
                              for s in cfg.sources if s.split == k],
                  "images": [im.name for im in images if im.split == k]}
    doc["never_used"] = ["bigearthnet_s2_examples", "s2_ssc_cnn_hvn2/reykjavik_cell_RR.mat"]
    return doc


def train_multires(cfg: MultiResConfig, *, overwrite: bool = False, resume: bool = True,
                   log: Any = None) -> Path:
    """Train (see the module docstring); writes ``<output>/<name>.{safetensors,json}`` = the best
    validation epoch, ``best.*``, ``history.json`` and ``split_manifest.json``. Resumes at an epoch
    boundary from ``<output>/state.pt`` when the config matches. Returns the checkpoint stem."""
    import hashlib

    from eosr.data.splits import write_manifest
    from eosr.train.loop import _optimizer, check_run_folder, finish_run, run_epochs

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(cfg.output)
    check_run_folder(out, overwrite=overwrite)
    torch.set_num_threads(cfg.threads)
    images = build_images(cfg)
    train = [im for im in images if im.split == "train"]
    val = [im for im in images if im.split == "val"]
    if not train:
        raise ConfigError("no training image")
    if any(min(im.hr.shape[-2:]) < cfg.patch for im in train):
        small = [im.name for im in train if min(im.hr.shape[-2:]) < cfg.patch]
        raise ConfigError(f"training images smaller than the patch {cfg.patch}: {', '.join(small)}")
    out.mkdir(parents=True, exist_ok=True)  # after the data loaded: a config that fails leaves no folder
    locs = {k: sorted({s.location for s in cfg.sources if s.split == k}) for k in ("train", "val", "test")}
    write_manifest(out / "split_manifest.json", locs, seed=cfg.seed,
                   extra={"images": manifest(cfg, images), "task": "s2_multires 20 m -> 10 m (Wald 40 -> 20 m)"})
    chash = hashlib.sha256(json.dumps(cfg.model_dump(mode="json", exclude={"output", "progress", "epochs",
                                                                            "threads", "patience"}),
                                      sort_keys=True).encode()).hexdigest()[:16]
    model = build_model(cfg, train)
    opt = _optimizer(cfg, model.parameters())  # type: ignore[arg-type]
    std20 = model.norm_std[4:].detach()[None, :, None, None]

    def loss_at(gstep: int, epoch: int) -> torch.Tensor:  # L1 in band-normalised units over the slots present
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + gstep)
        x10, x20, mask, hr, sig = sample_batch(train, cfg, g)
        if cfg.model.psf_told:  # each patch's skip with its own operator: one forward per distinct operator
            sr = torch.empty_like(hr)
            for row in torch.unique(sig, dim=0):
                k = (sig == row).all(dim=1)
                sr[k] = model.forward_slots(x10[k], x20[k], mask[k], sigmas=row.tolist())
        else:
            sr = model.forward_slots(x10, x20, mask)
        w = mask[:, :, None, None].to(sr.dtype)
        return (w * (sr - hr).abs() / std20).sum() / (w.sum() * sr.shape[-1] * sr.shape[-2])

    history, best_epoch = run_epochs(
        cfg, model, opt, out, chash, loss_at=loss_at, validate=lambda: validate(model, val),
        card=lambda h, e: _card(cfg, images, h, e, chash), say=say, resume=resume, higher_is_better=False)
    stem = out / cfg.name
    finish_run(out, stem, lambda: _card(cfg, images, history, best_epoch, chash), history)
    return stem


def main(argv: list[str] | None = None) -> int:
    """``python -m eosr.train.multires CONFIG [--overwrite]`` (the same as ``eosr train CONFIG``)."""
    from eosr.train.loop import trainer_main

    return trainer_main("python -m eosr.train.multires", load_multires_config, train_multires, argv)


if __name__ == "__main__":
    raise SystemExit(main())
