"""Train the shipped ``carn_m_s2_x2_unc``: a Gaussian variance head on the frozen ``carn_m_s2_x2``.

Recipe (reproduces ``src/eosr/models/weights/carn_m_s2_x2_unc.*``; ~15 min on one core):

- Data: the training split of ``configs/carn_m_s2_x2.toml`` (the base model's own training patches, 56 px HR,
  Wald x2 with the Sentinel-2 operator), ``--rounds`` passes over them with the base model's augmentations
  (dihedral flips, radiometric gain/offset, LR noise sigma ~ U(0, 0.002) clean with p = 0.3; seeded). The
  frozen base (single pass) is run once per round; the head learns from (LR, SR, HR) triples.
- Loss: Gaussian NLL 0.5 (s + (y - y_hat)^2 e^-s) of the base's residuals (Nix & Weigend 1994; Kendall &
  Gal 2017), 4 HR px border of each patch left out. Adam, cosine schedule, ``--steps`` of ``--batch``.
- Selection: the step with the lowest NLL on the config's VALIDATION split (CoastalA centre strip, central
  Slovenian strip x 5 dates; noise sigma 0 and 0.001, seeds as eosr.train.validate), never BigEarthNet.
- Recalibration: location-balanced split-conformal scaling (:func:`eosr.trust.calibration.fit_conformal`
  with :func:`~eosr.trust.calibration.group_weights`, p = 0.9) on validation residuals that cover the
  conditions the model was trained for: every validation image as it is and with 3 radiometric gain/offset
  draws (the training ranges), each at LR noise sigma 0, 0.0005, 0.001, 0.0015, 0.002 (the training range
  U(0, 0.002)); every validation location carries the same total weight (the CoastalA strip has 15x the
  pixels of the Slovenian strip). Factor, level and data are stored in the card (``calibration``).
  ``--recalibrate`` refits only this step for the head already at ``--out`` (its weights unchanged).

Run: ``PYTHONPATH=src python benchmarks/train_variance_head.py [--out PATH] [--steps N] [--rounds R]
[--recalibrate]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

BASE = "carn_m_s2_x2"
NAME = "carn_m_s2_x2_unc"
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "carn_m_s2_x2.toml")
VAL_SIGMAS = (0.0, 0.001)
#: calibration noise levels: a grid over the training augmentation sigma ~ U(0, 0.002)
CAL_SIGMAS = (0.0, 0.0005, 0.001, 0.0015, 0.002)
CAL_RADIOMETRIC_DRAWS = 3  # per image and noise level, besides the image as it is
CAL_SEED = 20_000
VAL_CROP = 4  # the Slovenian val strips are 12 HR px high: an 8 px crop would leave nothing
TRAIN_CROP = 4


def nll(s: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian NLL without the constant: 0.5 (s + err^2 e^-s), s = log sigma^2."""
    return 0.5 * (s + err * err * torch.exp(-s)).mean()


def base_outputs(base: Any, lr: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """The frozen base's SR of ``lr`` (N, C, h, w) in chunks."""
    with torch.no_grad():
        return torch.cat([base(lr[i : i + chunk]) for i in range(0, lr.shape[0], chunk)])


def training_triples(base: Any, sp: Any, cfg: Any, rounds: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(LR, SR, HR) of ``rounds`` augmented passes over the training patches (the base's augmentations)."""
    from eosr.train.loop import add_noise, augment, radiometric

    g = torch.Generator().manual_seed(seed)
    lrs, srs, hrs = [], [], []
    for r in range(rounds):
        lr, hr = augment(sp.train_lr, sp.train_hr, g)
        lr, hr = radiometric(lr, hr, cfg, g)
        lr = add_noise(lr, cfg, g)
        lrs.append(lr)
        srs.append(base_outputs(base, lr))
        hrs.append(hr)
        print(f"round {r + 1}/{rounds}: base run on {lr.shape[0]} patches", flush=True)
    return torch.cat(lrs), torch.cat(srs), torch.cat(hrs)


def val_triples(base: Any, items: list[Any], sigmas: tuple[float, ...] = VAL_SIGMAS,
                seed: int = 12345) -> list[tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(sigma, LR, SR, HR) per validation image and noise level (noise seeds as eosr.train.validate)."""
    from eosr.train.validate import noisy_lr

    out = []
    for k, s in enumerate(sigmas):
        for i, it in enumerate(items):
            lr = noisy_lr(it.lr, float(s), seed + 1000 * k + i)[None].float()
            out.append((float(s), lr, base_outputs(base, lr), it.hr[None].float()))
    return out


def calibration_triples(base: Any, items: list[Any], cfg: Any, sigmas: tuple[float, ...] = CAL_SIGMAS,
                        draws: int = CAL_RADIOMETRIC_DRAWS, seed: int = CAL_SEED
                        ) -> list[tuple[str, float, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(location, sigma, LR, SR, HR) of each image of ``items`` as it is and with ``draws`` radiometric
    gain/offset draws per band (``cfg.radiometric``, as in training: exact on LR and HR alike), each at
    every noise level of ``sigmas`` (seeded)."""
    from eosr.train.loop import radiometric
    from eosr.train.validate import noisy_lr

    g = torch.Generator().manual_seed(seed)
    out = []
    for i, it in enumerate(items):
        lr0, hr0 = it.lr[None].float(), it.hr[None].float()
        for d in range(draws + 1):
            lr, hr = (lr0, hr0) if d == 0 else radiometric(lr0, hr0, cfg, g)
            for k, s in enumerate(sigmas):
                lrn = noisy_lr(lr[0], float(s), seed + 100_000 * d + 1000 * k + i)[None].float()
                out.append((it.location, float(s), lrn, base_outputs(base, lrn), hr))
    return out


def fit_calibration(std_of: Any, cal: list[Any], crop_px: int = VAL_CROP, p: float = 0.9) -> tuple[Any, dict[str, Any]]:
    """Location-balanced split-conformal factor of the std ``std_of(lr, sr)`` on :func:`calibration_triples`
    (border-cropped); returns the calibration and its provenance (pixels per location)."""
    from eosr.trust.calibration import fit_conformal, group_weights

    errs, sds, locs = [], [], []
    with torch.no_grad():
        for loc, _, lr, sr, hr in cal:
            e = crop(hr - sr, crop_px).numpy().ravel()
            errs.append(e)
            sds.append(crop(std_of(lr, sr), crop_px).numpy().ravel())
            locs.append(np.full(e.size, loc, dtype=object))
    loc_all = np.concatenate(locs)
    fitted = fit_conformal(np.concatenate(errs), np.concatenate(sds), p=p, weights=group_weights(loc_all))
    names, counts = np.unique(loc_all, return_counts=True)
    return fitted, {"weighting": "equal total weight per location (weighted split conformal)",
                    "pixels_per_location": {str(k): int(c) for k, c in zip(names, counts, strict=True)}}


def crop(t: torch.Tensor, c: int) -> torch.Tensor:
    """Drop ``c`` pixels at each border of the last two axes."""
    return t[..., c : t.shape[-2] - c, c : t.shape[-1] - c] if c else t


def val_residuals(head: Any, val: list[Any], crop_px: int = VAL_CROP) -> tuple[np.ndarray, np.ndarray, float]:
    """Pooled residuals, uncalibrated sigma and NLL of the validation triples (border-cropped)."""
    errs, sds, tot, n = [], [], 0.0, 0
    with torch.no_grad():
        for _, lr, sr, hr in val:
            s = crop(head.log_variance(lr, sr), crop_px)
            e = crop(hr - sr, crop_px)
            tot += float(nll(s, e)) * e.numel()
            n += e.numel()
            errs.append(e.numpy().ravel())
            sds.append(torch.exp(0.5 * s).numpy().ravel())
    return np.concatenate(errs), np.concatenate(sds), tot / max(n, 1)


def train_head(model: Any, lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, val: list[Any], *, steps: int,
               batch: int, seed: int, lr0: float = 1e-3, every: int = 250) -> tuple[int, list[dict[str, float]]]:
    """Adam on the head only; returns the best step by validation NLL (weights restored) and the history."""
    from eosr.trust.calibration import spearman

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # start at the mean residual variance of each band (relative to the reference)
        n = lr.shape[0]
        ratio = (hr[:n] - sr[:n]) ** 2 * torch.exp(-model.reference_log_variance(sr[:n]))
        last = model.head[-1]
        last.weight.mul_(0.1)
        last.bias.copy_(torch.log(ratio.mean(dim=(0, 2, 3))))
    opt = torch.optim.Adam(model.head.parameters(), lr=lr0)
    best, best_state, hist = math.inf, None, []
    best_step = 0
    model.head.train()
    for step in range(1, steps + 1):
        for grp in opt.param_groups:
            grp["lr"] = 1e-5 + 0.5 * (lr0 - 1e-5) * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, lr.shape[0], (batch,), generator=g)
        s = model.log_variance(lr[idx], sr[idx])
        loss = nll(crop(s, TRAIN_CROP), crop(hr[idx] - sr[idx], TRAIN_CROP))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.head.parameters(), 1.0)
        opt.step()
        if step % every == 0 or step == steps:
            model.head.eval()
            e, sd, v = val_residuals(model, val)
            rho = spearman(np.abs(e), sd)
            hist.append({"step": step, "train_nll": float(loss.detach()), "val_nll": v, "val_spearman": rho})
            print(f"{time.strftime('%H:%M:%S')} step {step}: train NLL {float(loss.detach()):.4f}  "
                  f"val NLL {v:.4f}  val spearman {rho:.3f}", flush=True)
            if v < best:
                best, best_step = v, step
                best_state = {k: t.clone() for k, t in model.head.state_dict().items()}
            model.head.train()
    model.head.eval()
    assert best_state is not None
    model.head.load_state_dict(best_state)
    return best_step, hist


def head_std(model: Any) -> Any:
    """The head's uncalibrated std as a function of (LR, SR)."""
    return lambda lr, sr: torch.exp(0.5 * model.log_variance(lr, sr))


def calibrate(model: Any, sp: Any, cfg: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Fit the head's conformal factor (:func:`fit_calibration`) and score it per validation noise level:
    (calibration, card ``calibration`` entry, ``metrics.validation``)."""
    from eosr.trust.calibration import coverage, sparsification, spearman

    base = model.base
    cal, prov = fit_calibration(head_std(model), calibration_triples(base, sp.val, cfg))
    val = val_triples(base, sp.val)
    per_sigma = {}
    for s in VAL_SIGMAS:
        rows = [t for t in val if t[0] == s]
        es, ss, vs = val_residuals(model, rows)
        per_loc = {}
        for it, (_, lr, sr, hr) in zip(sp.val, rows, strict=True):
            with torch.no_grad():
                sd = crop(torch.exp(0.5 * model.log_variance(lr, sr)), VAL_CROP).numpy().ravel()
            per_loc.setdefault(it.location, []).append((crop(hr - sr, VAL_CROP).numpy().ravel(), sd))
        loc_cov = {k: coverage(np.concatenate([e for e, _ in v]), np.concatenate([u for _, u in v]) * cal.factor, 0.9)
                   for k, v in per_loc.items()}
        per_sigma[f"sigma={s:g}"] = {
            "nll": vs, "coverage_90_before": coverage(es, ss, 0.9), "coverage_90": coverage(es, ss * cal.factor, 0.9),
            "coverage_90_per_location": loc_cov,
            "spearman_abs_error_std": spearman(np.abs(es), ss), "ause_mae": sparsification(np.abs(es), ss).ause}
    entry = cal.to_json() | {"split": "val", "images": sp.manifest()["val_images"],
                             "noise_sigmas": list(CAL_SIGMAS), "radiometric_draws": CAL_RADIOMETRIC_DRAWS,
                             "radiometric": cfg.radiometric.model_dump(), "seed": CAL_SEED,
                             "border_crop_px": VAL_CROP} | prov
    return cal, entry, per_sigma


def recalibrate(out: str) -> Path:
    """Refit the calibration of the head checkpoint at ``out`` (weights unchanged) and rewrite its card."""
    from eosr.models.checkpoint import load_checkpoint, save_checkpoint
    from eosr.train.config import load_config
    from eosr.train.sources import build_datasets

    t0 = time.time()
    torch.set_num_threads(1)
    cfg = load_config(CONFIG)
    sp = build_datasets(cfg)
    model = load_checkpoint(out)
    model.self_ensemble = False
    cal, entry, per_sigma = calibrate(model, sp, cfg)
    card = {k: v for k, v in model.card.items() if k in ("name", "base", "sensor_operator", "uncertainty",
                                                          "training")}
    card["calibration"] = entry | {"seconds": round(time.time() - t0, 1)}
    card["metrics"] = {"validation": per_sigma}
    model.calibration = None
    _, jpath = save_checkpoint(model, out, card)
    print(json.dumps({"factor": cal.factor, "calibration": entry, "validation": per_sigma}, indent=1))
    return jpath


def run(out: str, steps: int = 4000, rounds: int = 4, batch: int = 16, seed: int = 0, channels: int = 32,
        depth: int = 4, prior: str | None = None) -> Path:
    """Train, select on validation, fit the conformal factor on validation, write the checkpoint."""
    from eosr.models import resolve_model
    from eosr.models.checkpoint import save_checkpoint
    from eosr.models.varhead import VarianceHeadSR
    from eosr.train.config import load_config
    from eosr.train.sources import build_datasets
    t0 = time.time()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = load_config(CONFIG)
    sp = build_datasets(cfg)
    base = resolve_model(BASE, scale=2, bands=list(sp.bands))
    base.self_ensemble = False
    model = VarianceHeadSR(2, list(sp.bands), base=BASE, channels=channels, depth=depth, prior=prior,
                           base_model=base)
    lr, sr, hr = training_triples(base, sp, cfg, rounds, seed)
    val = val_triples(base, sp.val)
    best_step, hist = train_head(model, lr, sr, hr, val, steps=steps, batch=batch, seed=seed)
    cal, entry, per_sigma = calibrate(model, sp, cfg)
    seconds = time.time() - t0
    card = {
        "name": NAME,
        "base": {"name": BASE, "weights_sha256": base.card["weights_sha256"]},
        "sensor_operator": base.card.get("sensor_operator"),
        "uncertainty": {"kind": "variance head (Gaussian NLL) + split-conformal scaling", "output": "std",
                        "units": "reflectance", "interval_level": 0.9},
        "calibration": entry,
        "training": {
            "script": "benchmarks/train_variance_head.py", "config": "configs/carn_m_s2_x2.toml", "base": BASE,
            "seed": seed, "prior": prior,
            "steps": steps, "batch_size": batch, "rounds": rounds, "patch": cfg.patch, "loss": "gaussian_nll",
            "optimizer": {"name": "adam", "lr": 1e-3, "schedule": "cosine", "min_lr": 1e-5, "grad_clip": 1.0},
            "augment": {"dihedral": True, "radiometric": cfg.radiometric.model_dump(),
                        "noise": cfg.noise.model_dump()},
            "threads": 1, "split_manifest": sp.manifest(), "best_step": best_step, "history": hist,
            "selection": "lowest validation NLL (val split of the config; never BigEarthNet)",
            "seconds": round(seconds, 1),
        },
        "metrics": {"validation": per_sigma},
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    wpath, jpath = save_checkpoint(model, out, card)
    print(json.dumps({"best_step": best_step, "factor": cal.factor, "validation": per_sigma,
                      "seconds": round(seconds, 1)}, indent=1))
    return jpath


def main() -> None:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=f"src/eosr/models/weights/{NAME}")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", choices=("none", "highpass"), default="none",
                    help="what the head corrects: the base's per-band std (none) or the SR's high-pass energy")
    ap.add_argument("--recalibrate", action="store_true",
                    help="only refit the conformal calibration of the head at --out (weights unchanged)")
    a = ap.parse_args()
    if a.recalibrate:
        print(recalibrate(a.out))
        return
    print(run(a.out, a.steps, a.rounds, a.batch, a.seed, prior=None if a.prior == "none" else a.prior))


if __name__ == "__main__":
    main()
