"""Trainer of the multi-image network ``highresnet`` (attention fusion) on semi-simulated revisits.

The single-image loop of :mod:`eosr.train.loop` cannot express a variable number of frames with masks, so
this module is its multi-image sibling (like :mod:`eosr.train.multires`); it reuses the loop's pieces
(source readers, config sections, learning-rate schedule, optimiser, run-folder checks, split manifest,
checkpoint writer). A config with ``kind = "misr"`` (``configs/highresnet_s2_x2.toml``) is dispatched here
by ``eosr train``.

Task: semi-simulated multi-image sets (Tarasiewicz, Nalepa, Kawulok, IGARSS 2022) built from real
Sentinel-2 10 m images with :func:`eosr.data.semi_simulated_set`: the real image is HR, N frames are its
Wald degradations (Wald, Ranchin, Mangolini 1997) through the Sentinel-2 operator with random sub-pixel
shifts, per-frame PSF width and gain/bias jitter, Gaussian noise and real cloud masks (eo-learn ``CLM``
dates of the training range; the other dates are kept for validation). Where a location has several real
dates (the eo-learn patch), some non-reference frames are drawn from another date of the same window
(real surface change between revisits). Then the MISR augmentation (:class:`eosr.data.MISRAugment`:
permutation of the non-reference frames, consistent flips/rotations, frame dropout). The number of frames
per step is drawn from ``frames.counts``; the reference frame (frame 0) is unshifted and defines the grid.

Loss: L1 of the error normalised by the band std, on HR pixels the frames cover. Epochs are selected on the
validation split only: the mean PSNR (data range 1) of fixed validation sets (8 frames, noise ``sigma``,
all clear and with 2 frames clouded by held-out real masks).

Determinism: every random choice is a pure function of (seed, global step); 1 torch thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from eosr.errors import ConfigError
from eosr.train.config import NoiseCfg, OptimCfg, RadiometricCfg, ScheduleCfg, SourceCfg


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MISRModelCfg(_Strict):
    channels: int = Field(48, ge=4, le=256)
    encoder_blocks: int = Field(1, ge=0, le=8)
    decoder_blocks: int = Field(4, ge=0, le=16)
    max_shift: float = Field(2.0, gt=0)
    min_corr: float = Field(0.5, ge=-1, le=1)
    base: str | None = None  # a shipped single-image model (e.g. carn_m_s2_x2) as the frozen global skip
    base_all: bool = False  # the skip is the base on every frame, registered and averaged at HR
    base_erode: int = Field(3, ge=0, le=16)


class FramesCfg(_Strict):
    """Frames per step (drawn from ``counts``) and the simulation options of :func:`eosr.degrade.simulate_frames`."""

    counts: list[int] = [2, 4, 6, 8, 8, 8, 12, 16]
    max_shift_lr: float = Field(1.0, ge=0)
    sigma_jitter: float = Field(0.15, ge=0, lt=1)
    gain_jitter: float = Field(0.03, ge=0, lt=1)
    bias_jitter: float = Field(0.003, ge=0)
    cloud_fraction_max: float = Field(0.6, ge=0, le=1)
    p_other_date: float = Field(0.25, ge=0, le=1)
    frame_dropout: float = Field(0.1, ge=0, lt=1)


class CloudCfg(_Strict):
    """Real cloud masks: the eo-learn ``CLM`` dates ``train_dates`` = [first, stop) train, ``val_dates`` validate."""

    path: str = "sample:eolearn_testeopatch_s2"
    train_dates: tuple[int, int] = (0, 48)
    val_dates: tuple[int, int] = (48, 68)


class ValCfg(_Strict):
    n_frames: int = Field(8, ge=1)
    noise_sigma: float = Field(0.002, ge=0)
    clouded: int = Field(2, ge=0)
    patch: int = Field(64, ge=8)
    stride: int = Field(32, ge=1)


class MISRConfig(_Strict):
    """``kind = "misr"`` training config (see the module docstring)."""

    kind: Literal["misr"]
    name: str
    seed: int = 0
    epochs: int = Field(20, ge=1)
    steps_per_epoch: int = Field(100, ge=1)
    batch_size: int = Field(16, ge=1)
    patch: int = Field(64, ge=8)
    threads: int = Field(1, ge=1)
    output: str
    progress: bool = True
    bands: list[str] = ["B02", "B03", "B04", "B08"]
    scale: int = 2
    model: MISRModelCfg = Field(default_factory=lambda: MISRModelCfg.model_validate({}))
    sources: list[SourceCfg]
    frames: FramesCfg = Field(default_factory=lambda: FramesCfg.model_validate({}))
    clouds: CloudCfg = Field(default_factory=lambda: CloudCfg.model_validate({}))
    noise: NoiseCfg = Field(default_factory=lambda: NoiseCfg.model_validate({}))
    radiometric: RadiometricCfg = Field(default_factory=lambda: RadiometricCfg.model_validate({}))
    optimizer: OptimCfg = Field(default_factory=lambda: OptimCfg.model_validate({}))
    schedule: ScheduleCfg = Field(default_factory=lambda: ScheduleCfg.model_validate({}))
    validation: ValCfg = Field(default_factory=lambda: ValCfg.model_validate({}))
    patience: int | None = Field(None, ge=1)


def is_misr_config(path: str | Path) -> bool:
    """Whether the TOML file at ``path`` declares ``kind = "misr"`` (False when unreadable)."""
    from eosr.train.config import config_kind

    return config_kind(path) == "misr"


def load_misr_config(path: str | Path, doc: dict[str, Any] | None = None) -> MISRConfig:
    """Parse a ``kind = "misr"`` TOML file (relative paths from its folder) into a config."""
    from eosr.train.config import load_kind_config

    return load_kind_config(path, MISRConfig, doc)


@dataclass
class MIImage:
    """One real HR image (C, H, W) with its location, split and name (several dates share a location)."""

    hr: np.ndarray
    location: str
    split: str
    name: str


def build_images(cfg: MISRConfig) -> list[MIImage]:
    """Every source as HR images (bands in config order)."""
    from eosr.train.sources import load_images

    out = []
    for src in cfg.sources:
        if src.split is None:
            raise ConfigError(f"source {src.location or src.path}: give its split (train / val / test)")
        for im in load_images(src, tuple(cfg.bands)):
            out.append(MIImage(im.hr, im.location, src.split, im.name))
    return out


def cloud_banks(cfg: MISRConfig) -> tuple[np.ndarray, np.ndarray]:
    """Real valid masks (True = clear) of the training and validation date ranges (partly cloudy dates only
    for validation, so that its clouded frames are clouded)."""
    from eosr.data.eopatch import read_eopatch_s2
    from eosr.data.samples import resolve

    cl = read_eopatch_s2(resolve(cfg.clouds.path)).clear
    if cl is None:
        raise ConfigError(f"{cfg.clouds.path}: no cloud masks (CLM.npy)")
    clear = cl.astype(bool)
    a, b = cfg.clouds.train_dates
    c, d = cfg.clouds.val_dates
    tr = clear[a:b]
    va = clear[c:d]
    frac = 1 - va.mean(axis=(1, 2))
    va = va[(frac > 0.05) & (frac < 0.9)]
    return tr, va


def operator(cfg: MISRConfig, noise: float = 0.0) -> Any:
    """The Sentinel-2 Wald operator of the config's bands and scale, with Gaussian noise ``noise``."""
    from eosr.degrade import Degradation

    return Degradation.from_sensor("sentinel2", list(cfg.bands), cfg.scale, wald=True).with_options(
        noise_sigma=float(noise))


def make_sample(cfg: MISRConfig, images: list[MIImage], n: int, rng: np.random.Generator, bank: np.ndarray,
                uid: str, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One augmented training sample: frames (n, C, h, w) with NaN under clouds, valid (n, h, w), HR (C, p, p)."""
    from eosr.data.augment import MISRAugment
    from eosr.data.semisim import semi_simulated_set
    from eosr.degrade.multi import simulate_frames

    p, fc = cfg.patch, cfg.frames
    sizes = np.array([im.hr.shape[-2] * im.hr.shape[-1] for im in images], dtype=np.float64)
    k = int(rng.choice(len(images), p=sizes / sizes.sum()))
    im = images[k]
    y = 2 * int(rng.integers(0, (im.hr.shape[-2] - p) // 2 + 1))
    x = 2 * int(rng.integers(0, (im.hr.shape[-1] - p) // 2 + 1))
    rc = cfg.radiometric
    c = im.hr.shape[0]
    a = rng.uniform(rc.gain[0], rc.gain[1], (c, 1, 1)).astype(np.float32)
    b = rng.uniform(rc.offset[0], rc.offset[1], (c, 1, 1)).astype(np.float32)
    hr = a * im.hr[:, y: y + p, x: x + p] + b
    nz = cfg.noise
    sig = 0.0 if rng.random() < nz.p_clean else float(rng.uniform(nz.sigma_min, nz.sigma_max))
    op = operator(cfg, sig)
    seed = int(rng.integers(2**31))
    opts: dict[str, Any] = dict(max_shift_lr=fc.max_shift_lr, sigma_jitter=fc.sigma_jitter, gain_jitter=fc.gain_jitter,
                bias_jitter=fc.bias_jitter, cloud_fraction_max=fc.cloud_fraction_max)
    s = semi_simulated_set(hr, op, n, clear_masks=bank if len(bank) else None, sample_id=uid, seed=seed, **opts)
    lr = s.lr.clone()
    others = [o for o in images if o.location == im.location and o.name != im.name]
    if others and n > 1 and rng.random() < fc.p_other_date:
        for f in range(1, n):
            if rng.random() < 0.5:
                o = others[int(rng.integers(len(others)))]
                ohr = a * o.hr[:, y: y + p, x: x + p] + b
                fs = simulate_frames(ohr, op, 1, reference_frame=False, seed=seed + 17 * f, **{
                    k2: v for k2, v in opts.items() if k2 != "cloud_fraction_max"})
                lr[f] = torch.where(s.lr_valid[f][None], torch.as_tensor(np.asarray(fs.frames))[0].float(), lr[f])
    from dataclasses import replace

    s = replace(s, lr=lr)
    aug = MISRAugment(permute=True, keep_reference=True, frame_dropout=fc.frame_dropout, seed=cfg.seed, epoch=epoch)
    s = aug(s)
    assert s.hr is not None
    return s.lr.float(), s.lr_valid.bool(), s.hr.float()


def sample_batch(cfg: MISRConfig, images: list[MIImage], bank: np.ndarray, gstep: int, epoch: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch of ``batch_size`` samples with the same frame count (a pure function of seed and step)."""
    rng = np.random.default_rng([cfg.seed, gstep])
    n = int(cfg.frames.counts[int(rng.integers(len(cfg.frames.counts)))])
    fr, va, hr = [], [], []
    for i in range(cfg.batch_size):
        f, v, h = make_sample(cfg, images, n, rng, bank, f"s{gstep}_{i}", epoch)
        fr.append(f)
        va.append(v)
        hr.append(h)
    return torch.stack(fr), torch.stack(va), torch.stack(hr)


@dataclass
class ValSet:
    """A fixed validation set: frames (N, C, h, w), valid (N, h, w), HR (C, H, W) and its name."""

    frames: torch.Tensor
    valid: torch.Tensor
    hr: torch.Tensor
    name: str


def build_val(cfg: MISRConfig, images: list[MIImage], bank: np.ndarray) -> list[ValSet]:
    """Validation sets of the val images: patches on a grid, ``n_frames`` frames with noise ``sigma``, once all
    clear and once with ``clouded`` non-reference frames under held-out real cloud masks (fixed seeds)."""
    from eosr.data.semisim import semi_simulated_set
    from eosr.data.wald import patch_origins

    vc = cfg.validation
    op = operator(cfg, vc.noise_sigma)
    out: list[ValSet] = []
    r = cfg.scale
    for im in images:
        for j, (y, x) in enumerate(patch_origins(im.hr.shape[-2], im.hr.shape[-1], vc.patch, vc.stride)):
            hr = im.hr[:, y: y + vc.patch, x: x + vc.patch]
            seed = 1_000 + j + 97 * len(out)
            s = semi_simulated_set(hr, op, vc.n_frames, sample_id=f"{im.name}_{y}_{x}", seed=seed)
            out.append(ValSet(s.lr.float(), s.lr_valid.bool(), s.hr.float() if s.hr is not None else
                              torch.from_numpy(hr), f"{im.name}_{y}_{x}_clear"))
            if vc.clouded and len(bank):
                rng = np.random.default_rng([cfg.seed, seed])
                fr, va = s.lr.clone(), s.lr_valid.clone()
                h, w = fr.shape[-2:]
                for f in rng.choice(np.arange(1, vc.n_frames), min(vc.clouded, vc.n_frames - 1), replace=False):
                    m = bank[int(rng.integers(len(bank)))]
                    yy = int(rng.integers(0, m.shape[0] - h * r + 1))
                    xx = int(rng.integers(0, m.shape[1] - w * r + 1))
                    clear = torch.from_numpy(m[yy: yy + h * r: r, xx: xx + w * r: r].copy())
                    va[f] = va[f] & clear
                    fr[f] = torch.where(clear[None], fr[f], torch.full_like(fr[f], float("nan")))
                out.append(ValSet(fr.float(), va, out[-1].hr, f"{im.name}_{y}_{x}_clouded{vc.clouded}"))
    return out


def psnr(sr: torch.Tensor, hr: torch.Tensor) -> float:
    """PSNR (dB, data range 1) over the finite pixels of ``sr``."""
    ok = torch.isfinite(sr)
    mse = float(((sr - hr)[ok] ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


@torch.no_grad()
def validate(model: Any, val: list[ValSet]) -> dict[str, Any]:
    """PSNR of every validation set; ``score`` = their mean (higher is better)."""
    rec: dict[str, Any] = {}
    for v in val:
        rec[v.name] = round(psnr(model(v.frames[None], v.valid[None])[0], v.hr), 4)
    vals = list(rec.values())
    rec["score"] = float(np.mean(vals)) if vals else float("nan")
    for tag in ("clear", "clouded"):
        sel = [val for k, val in rec.items() if k != "score" and tag in k]
        if sel:
            rec[f"mean_{tag}"] = round(float(np.mean(sel)), 4)
    return rec


def build_model(cfg: MISRConfig, train: list[MIImage]) -> Any:
    """The attention ``highresnet`` with registration (seeded init), normalised with the training statistics."""
    from eosr.models.highresnet import HighResNet

    torch.manual_seed(cfg.seed)
    m = cfg.model
    base = None
    if m.base is not None:
        from eosr.models.registry import resolve_model

        base = resolve_model(m.base)
    model = HighResNet(cfg.scale, cfg.bands, channels=m.channels, fusion="attention", register=True,
                       encoder_blocks=m.encoder_blocks, decoder_blocks=m.decoder_blocks, max_shift=m.max_shift,
                       min_corr=m.min_corr, base=None if base is None else base.arch, base_all=m.base_all,
                       base_erode=m.base_erode)
    if base is not None:
        assert model.base is not None
        model.base.load_state_dict(base.state_dict())
        for prm in model.base.parameters():
            prm.requires_grad_(False)
    allb = np.concatenate([im.hr.reshape(im.hr.shape[0], -1) for im in train], axis=1).astype(np.float64)
    model.set_normalisation(torch.from_numpy(allb.mean(axis=1)).float(),
                            torch.from_numpy(allb.std(axis=1)).clamp(min=1e-6).float())
    return model


def manifest(cfg: MISRConfig, images: list[MIImage]) -> dict[str, Any]:
    """Locations, windows and images of each split, and the cloud-mask dates."""
    doc: dict[str, Any] = {}
    for k in ("train", "val", "test"):
        doc[k] = {"locations": sorted({im.location for im in images if im.split == k}),
                  "sources": [{"path": s.path, "files": s.files, "window": list(s.window) if s.window else None,
                               "location": s.location} for s in cfg.sources if s.split == k],
                  "images": [im.name for im in images if im.split == k]}
    doc["cloud_masks"] = {"path": cfg.clouds.path, "train_dates": list(cfg.clouds.train_dates),
                          "val_dates": list(cfg.clouds.val_dates)}
    doc["never_used"] = ["bigearthnet_s2_examples", "worldstrat_demo"]
    return doc


def _card(cfg: MISRConfig, images: list[MIImage], history: list[dict[str, Any]], best_epoch: int,
          chash: str) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "sensor_operator": operator(cfg).describe() | {"sensor": "sentinel2", "wald": True},
        "task": f"multi-image SR x{cfg.scale} of Sentinel-2 {' '.join(cfg.bands)} from 1-16 revisits with validity "
                "masks (frame 0 = reference grid; classical registration, attention fusion)",
        "training": {
            "config": cfg.model_dump(mode="json", exclude={"output", "progress"}),
            "config_hash": chash,
            "split_manifest": manifest(cfg, images),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "seconds": round(sum(h["seconds"] for h in history), 1),
            "selection": "validation split only (mean PSNR of 8-frame sets, all clear and 2 frames clouded)",
        },
        "metrics": {"validation": history[best_epoch - 1]["val"] if best_epoch >= 1 else None},
    }


def _final_card(cfg: MISRConfig, images: list[MIImage], history: list[dict[str, Any]], best_epoch: int,
                chash: str, epoch0: dict[str, Any] | None) -> dict[str, Any]:
    card = _card(cfg, images, history, best_epoch, chash)
    if best_epoch == 0 and epoch0 is not None:
        card["metrics"] = {"validation": epoch0}
    card["training"]["epoch0_validation"] = epoch0
    return card


def train_misr(cfg: MISRConfig, *, overwrite: bool = False, resume: bool = True, log: Any = None) -> Path:
    """Train (see the module docstring); writes ``<output>/<name>.{safetensors,json}`` = the best validation
    epoch, ``best.*``, ``epoch_NNN.*`` per epoch, ``history.json`` and ``split_manifest.json``. Resumes at an
    epoch boundary from ``<output>/state.pt`` when the config matches. Returns the checkpoint stem."""
    from eosr.data.splits import write_manifest
    from eosr.models.checkpoint import save_checkpoint
    from eosr.train.loop import _optimizer, check_run_folder, finish_run, run_epochs

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(cfg.output)
    check_run_folder(out, overwrite=overwrite)
    torch.set_num_threads(cfg.threads)
    images = build_images(cfg)
    train = [im for im in images if im.split == "train"]
    val_images = [im for im in images if im.split == "val"]
    if not train:
        raise ConfigError("no training image")
    small = [im.name for im in train if min(im.hr.shape[-2:]) < cfg.patch]
    if small:
        raise ConfigError(f"training images smaller than the patch {cfg.patch}: {', '.join(small)}")
    bank_tr, bank_va = cloud_banks(cfg)
    out.mkdir(parents=True, exist_ok=True)  # after the data loaded: a config that fails leaves no folder
    locs = {k: sorted({im.location for im in images if im.split == k}) for k in ("train", "val", "test")}
    write_manifest(out / "split_manifest.json", locs, seed=cfg.seed,
                   extra={"images": manifest(cfg, images), "task": "multi-image SR (semi-simulated revisits)"})
    chash = hashlib.sha256(json.dumps(cfg.model_dump(mode="json", exclude={"output", "progress", "epochs",
                                                                            "threads", "patience"}),
                                      sort_keys=True).encode()).hexdigest()[:16]
    model = build_model(cfg, train)
    val = build_val(cfg, val_images, bank_va)
    say(f"{len(train)} training images, {len(val)} validation sets, {len(bank_tr)} training cloud masks, "
        f"{model.n_params()} parameters")
    opt = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])  # type: ignore[arg-type]
    std = model.norm_std.detach()[None, :, None, None]
    epoch0: dict[str, Any] | None = None

    def untrained() -> float:  # the untrained fusion (its residual starts at zero) is a candidate too
        nonlocal epoch0
        model.eval()
        t0 = time.perf_counter()
        epoch0 = validate(model, val)
        for stem in ("epoch_000", "best"):
            save_checkpoint(model, out / stem, _card(cfg, images, [], 0, chash) | {"metrics": {"validation": epoch0}})
        say(f"epoch 0 (untrained fusion): val PSNR {epoch0['score']:.3f} [{time.perf_counter() - t0:.1f} s]")
        return float(epoch0["score"])

    def loss_at(gstep: int, epoch: int) -> torch.Tensor:  # L1 in band-normalised units over finite outputs
        frames, valid, hr = sample_batch(cfg, train, bank_tr, gstep, epoch)
        sr = model(frames, valid)
        ok = torch.isfinite(sr)
        err = torch.where(ok, (sr - hr) / std, torch.zeros_like(sr))
        return err.abs().sum() / ok.sum().clamp(min=1)

    history, best_epoch = run_epochs(
        cfg, model, opt, out, chash, loss_at=loss_at, validate=lambda: validate(model, val),
        card=lambda h, e: _card(cfg, images, h, e, chash), say=say, resume=resume, keep_epochs=True,
        describe=lambda v: (f"val PSNR {v['score']:.3f} (clear {v.get('mean_clear', float('nan')):.3f}, "
                            f"clouded {v.get('mean_clouded', float('nan')):.3f})"),
        initial=untrained)
    stem = out / cfg.name
    finish_run(out, stem, lambda: _final_card(cfg, images, history, best_epoch, chash, epoch0), history)
    return stem


def main(argv: list[str] | None = None) -> int:
    """``python -m eosr.train.misr CONFIG [--overwrite]`` (the same as ``eosr train CONFIG``)."""
    from eosr.train.loop import trainer_main

    return trainer_main("python -m eosr.train.misr", load_misr_config, train_misr, argv)


if __name__ == "__main__":
    raise SystemExit(main())
