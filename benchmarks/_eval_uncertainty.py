"""Calibration of shipped uncertainty on held-out BigEarthNet: variance head vs classical proxies.

Data and protocol as ``eval_shipped_model.py``: the six BigEarthNet-S2 example patches (never used in
training or calibration), Wald x2 with the Sentinel-2 operator, LR noise sigma in {0, 0.001} (seed
1000 k + i), scores after an 8 HR px border crop, pooled over pixels, bands and images.

Methods (each gives a per-pixel, per-band std of the ``carn_m_s2_x2`` SR, one pass):

- ``variance head``: the shipped ``carn_m_s2_x2_unc`` (``forward_with_uncertainty``), recalibrated by its
  card's split-conformal factor (fitted on the VALIDATION split by benchmarks/train_variance_head.py).
- ``high-pass energy``: sigma = sqrt(mean_5x5((y - G_1 * y)^2) + 0.0005^2), the local energy of the SR's own
  detail (G_1: Gaussian, sigma 1 HR px), conformal factor fitted here exactly as the head's (the same
  location-balanced calibration set from the validation split, noise 0..0.002, radiometric draws).
- ``BP PSF-jitter spread``: std of 5 back-projections under MTF 0.15..0.35 (:mod:`eosr.trust.classical`),
  + the same floor, conformal factor fitted the same way.

Deep ensembles and MC dropout are not candidates here: each needs several x2 models retrained (about 45
min of one core each for the carn_m_s2_x2 recipe), and the shipped base has no dropout.

Scores (:mod:`eosr.trust.calibration`): coverage of the central 90 % Gaussian interval (target 0.85-0.95),
Spearman rho(|error|, sigma) (target > 0.3), AUSE of the MAE sparsification curve (0 = oracle ranking),
mean sigma; per-image values with a bootstrap 95 % interval over the 12 (image, noise) pairs and paired
differences of the head against each proxy (:mod:`eosr.benchmark.stats`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

BANDS = ["B02", "B03", "B04", "B08"]
CROP = 8
FLOOR = 5e-4
SIGMAS = (0.0, 0.001)
HEAD, HIGHPASS, BPJITTER = "variance head", "high-pass energy", "BP PSF-jitter spread"


def highpass_proxy(sr: torch.Tensor) -> torch.Tensor:
    """sigma = sqrt(local mean over 5 x 5 of (y - G_1 * y)^2 + 0.0005^2) per band
    (:func:`eosr.models.varhead.highpass_energy`)."""
    from eosr.models.varhead import highpass_energy

    return torch.sqrt(highpass_energy(sr, 5, FLOOR))


def bp_jitter_proxy(lr: torch.Tensor, floor: float = FLOOR) -> torch.Tensor:
    """Std of the PSF-jitter back-projection ensemble (:func:`eosr.trust.classical.psf_jitter_ensemble`) + floor."""
    from eosr.trust.classical import psf_jitter_ensemble
    from eosr.trust.uncertainty import ensemble

    u = ensemble(psf_jitter_ensemble(2), lr.double())
    return torch.sqrt(u.total_var.float() + floor**2)


def proxy_std(method: str, lr: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
    """The uncalibrated std of a classical ``method`` for LR ``lr`` and SR ``sr`` (1, C, ...)."""
    if method == HIGHPASS:
        return highpass_proxy(sr)
    if method == BPJITTER:
        return bp_jitter_proxy(lr)
    raise ValueError(f"unknown proxy {method!r}")


def crop(t: Any, c: int) -> Any:
    """Drop ``c`` pixels at each border of the last two axes."""
    return t[..., c : t.shape[-2] - c, c : t.shape[-1] - c] if c else t


def validation_calibration_set(base: Any) -> list[Any]:
    """The head's calibration set (:func:`train_variance_head.calibration_triples`: the validation split
    of the config, as it is and with radiometric draws, LR noise 0..0.002), for the base's SR."""
    from eosr.train.config import load_config
    from eosr.train.sources import build_datasets
    from train_variance_head import CONFIG, calibration_triples

    cfg = load_config(CONFIG)
    return calibration_triples(base, build_datasets(cfg).val, cfg)


def fit_proxy_on_val(method: str, base: Any, p: float = 0.9, cal_set: list[Any] | None = None) -> Any:
    """Conformal factor of a proxy fitted exactly as the head's (location-balanced, on the validation
    calibration set of :func:`validation_calibration_set`, 4 px crop; see benchmarks/train_variance_head.py)."""
    from train_variance_head import fit_calibration

    cal_set = cal_set if cal_set is not None else validation_calibration_set(base)
    return fit_calibration(lambda lr, sr: proxy_std(method, lr, sr), cal_set, p=p)[0]


def scores(err: np.ndarray, std: np.ndarray, factor: float) -> dict[str, float]:
    """Coverage (calibrated and not), Spearman, AUSE and mean std of pooled residuals ``err`` and std ``std``."""
    from eosr.trust.calibration import coverage, sparsification, spearman

    return {"coverage_90": coverage(err, std, 0.9), "coverage_90_uncalibrated": coverage(err, std / factor, 0.9),
            "spearman_abs_error_std": spearman(np.abs(err), std), "ause_mae": sparsification(np.abs(err), std).ause,
            "mean_std": float(np.mean(std))}


def evaluate(model_name: str = "carn_m_s2_x2_unc", sigmas: tuple[float, ...] = SIGMAS, threads: int = 1,
             proxies: tuple[str, ...] = (HIGHPASS, BPJITTER), split: str = "ben") -> dict[str, Any]:
    """{"methods": {method: {"sigma=..": scores, "pooled": scores + bootstrap}}, "differences": ..., "factors": ...}.
    ``split="test"``: the base config's test split (CoastalA east, Slovenia south x 5 dates; whole windows,
    the same 8 px crop) instead of BigEarthNet."""
    from eosr.benchmark.stats import bootstrap_mean, paired_difference
    from eosr.degrade import Degradation
    from eosr.models import resolve_model
    from eval_shipped_model import load_patches

    torch.set_num_threads(threads)
    model = resolve_model(model_name, scale=2, bands=BANDS)
    if not hasattr(model, "forward_with_uncertainty"):
        raise SystemExit(f"{model_name} offers no uncertainty")
    model.self_ensemble = False
    base = getattr(model, "base", model)
    cal = model.conformal()
    factors = {HEAD: float(cal.factor) if cal is not None else 1.0}
    cal_set = validation_calibration_set(base) if proxies else []
    factors |= {m: float(fit_proxy_on_val(m, base, cal_set=cal_set).factor) for m in proxies}
    if split == "test":
        from eosr.train.config import load_config
        from eosr.train.sources import build_datasets
        from train_variance_head import CONFIG

        pairs = [(it.hr[None].float(), it.lr[None].float()) for it in build_datasets(load_config(CONFIG)).test]
    else:
        op = Degradation.from_sensor("sentinel2", BANDS, 2, wald=True)
        hr_all = torch.from_numpy(np.stack(load_patches())).float()
        lr_all = op.downsample(hr_all.double()).float()
        pairs = [(hr_all[i : i + 1], lr_all[i : i + 1]) for i in range(hr_all.shape[0])]
    methods = (HEAD, *proxies)
    per: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {m: {} for m in methods}
    for k, s in enumerate(sigmas):
        key = f"sigma={s:g}"
        for i, (hr, lr_clean) in enumerate(pairs):
            g = torch.Generator().manual_seed(1000 * k + i)
            lr = (lr_clean.double() + s * torch.randn(lr_clean.shape[1:], generator=g,
                                                      dtype=torch.float64)).float()
            sr, std = model.forward_with_uncertainty(lr)
            err = crop(hr - sr, CROP).numpy().ravel()
            stds = {HEAD: std} | {m: proxy_std(m, lr, sr) * factors[m] for m in proxies}
            for m in methods:
                per[m].setdefault(key, []).append((err, crop(stds[m], CROP).numpy().ravel()))
    out: dict[str, Any] = {"methods": {}, "factors": factors, "crop": CROP, "model": model_name, "split": split}
    img_scores: dict[str, list[dict[str, float]]] = {}
    for m in methods:
        rows: dict[str, Any] = {}
        allp: list[tuple[np.ndarray, np.ndarray]] = []
        for key, pairs in per[m].items():
            rows[key] = scores(np.concatenate([e for e, _ in pairs]), np.concatenate([u for _, u in pairs]),
                               factors[m])
            allp += pairs
        rows["pooled"] = scores(np.concatenate([e for e, _ in allp]), np.concatenate([u for _, u in allp]),
                                factors[m])
        img_scores[m] = [scores(e, u, factors[m]) for e, u in allp]
        for metric in ("coverage_90", "spearman_abs_error_std", "ause_mae"):
            rows["pooled"][f"{metric}_per_image"] = bootstrap_mean([d[metric] for d in img_scores[m]]).to_dict()
        out["methods"][m] = rows
    out["differences"] = {
        f"{HEAD} - {m}": {metric: paired_difference([d[metric] for d in img_scores[HEAD]],
                                                    [d[metric] for d in img_scores[m]]).to_dict()
                          for metric in ("spearman_abs_error_std", "ause_mae")}
        for m in proxies}
    return out


def print_table(res: dict[str, Any]) -> None:
    """Markdown table of :func:`evaluate`'s result, targets in the header."""
    where = "the config's test split" if res.get("split") == "test" else "BigEarthNet"
    print(f"Uncertainty of {res['model']} on {where} (Wald x2, S2 operator, {res['crop']} px crop); "
          "targets: 90 % coverage 0.85-0.95, Spearman > 0.3")
    print("| noise sigma | method | coverage 90 % | coverage 90 % uncalibrated | Spearman(abs err, std) | AUSE (MAE) "
          "| mean std | conformal factor |")
    print("|---|---|---|---|---|---|---|---|")
    for m, rows in res["methods"].items():
        for key, r in rows.items():
            sig = key.split("=")[1] if "=" in key else key
            print(f"| {sig} | {m} | {r['coverage_90']:.3f} | {r['coverage_90_uncalibrated']:.3f} | "
                  f"{r['spearman_abs_error_std']:.3f} | {r['ause_mae']:.4f} | {r['mean_std']:.5f} | "
                  f"{res['factors'][m]:.3f} |")
    for name, d in res["differences"].items():
        for metric, e in d.items():
            print(f"{name}: {metric} per image {e['mean']:+.3f} [95 % CI {e['ci_low']:+.3f}, {e['ci_high']:+.3f}]")
