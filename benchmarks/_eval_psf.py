"""PSF-aware x2 evaluation (issue 16, item 4): a model told the operator of its LR vs back-projection.

Data: the six BigEarthNet-S2 example patches (B02 B03 B04 B08, 120 x 120 at 10 m; never used in training),
as in ``eval_shipped_model.py``. For each scenario (operator FORM "full" = the whole Sentinel-2 PSF,
``Degradation.from_sensor(..., wald=False)``, or "wald" = the Wald extra blur; MTF FACTOR f: each band's
catalog MTF at Nyquist x f, :func:`eosr.train.sources.scaled_sensor_operator`) the LR is D(HR) + sigma n
(sigma in {0, 0.001} reflectance, noise seed 1000 k + i for level k and patch i, as the shipped table).

Methods: bicubic; back-projection (Irani & Peleg 1991) with the scenario's operator at its BEST iteration
count K in 0..max_iter chosen on these patches (an oracle in BP's favour); each CNN with a back-projection
skip "told" the scenario's operator (``set_operator``) and with its card's operator ("default"). All CNNs
run ONE pass (no self-ensemble).

Metric: PSNR (data range 1) pooled over every pixel and band of the six patches after an 8-HR-pixel
border crop (``psnr``); ``psnr_nocrop`` without the crop (the protocol of the carn_m_s2_x2 card table).
Differences: pooled PSNR of A minus pooled PSNR of B with a paired percentile bootstrap 95 % interval
over the patches (resample patches with replacement, recompute both pooled PSNRs; 2000 resamples, seed 0;
Efron & Tibshirani 1993, ch. 13). With six patches the interval is coarse.

Run (repository root): ``.venv/bin/python benchmarks/eval_shipped_model.py --model carn_m_s2_x2_psf [--json]``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

BANDS = ["B02", "B03", "B04", "B08"]
CROP = 8
#: (form, MTF factor): the catalog full PSF and Wald blur, then off-catalog PSFs between the training grid
#: points (0.75, 1.25) and outside the training range (0.6).
SCENARIOS: tuple[tuple[str, float], ...] = (("full", 1.0), ("wald", 1.0), ("full", 0.75), ("full", 1.25),
                                            ("wald", 0.75), ("wald", 1.25), ("full", 0.6))


def crop(x: torch.Tensor, c: int = CROP) -> torch.Tensor:
    """The (..., H, W) tensor without ``c`` pixels at each border."""
    return x[..., c:-c, c:-c] if c else x


def squared_errors(sr: torch.Tensor, hr: torch.Tensor, c: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    """Per-image sum of squared errors and pixel count (all bands) after the ``c``-px border crop."""
    d2 = (crop(sr.double(), c) - crop(hr.double(), c)) ** 2
    ok = torch.isfinite(d2)
    se = torch.where(ok, d2, 0.0).flatten(1).sum(1)
    return se.numpy(), ok.flatten(1).sum(1).numpy().astype(np.float64)


def pooled_psnr(se: np.ndarray, n: np.ndarray) -> float:
    """10 log10(1 / MSE) with MSE = sum(se) / sum(n) pooled over images (data range 1)."""
    return 10.0 * math.log10(float(n.sum()) / max(float(se.sum()), 1e-30))


def paired_bootstrap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], *, n_boot: int = 2000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Pooled PSNR(A) - PSNR(B) and its percentile-bootstrap interval, resampling images in pairs."""
    (sa, na), (sb, nb) = a, b
    diff = pooled_psnr(sa, na) - pooled_psnr(sb, nb)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, sa.size, size=(n_boot, sa.size))
    boots = 10.0 * (np.log10(na[idx].sum(1) / sa[idx].sum(1)) - np.log10(nb[idx].sum(1) / sb[idx].sum(1)))
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [q, 1.0 - q])
    return {"diff": diff, "ci_low": float(lo), "ci_high": float(hi)}


def noisy(lr: torch.Tensor, sigma: float, k: int) -> torch.Tensor:
    """``lr`` (B, C, h, w) float64 plus sigma x N(0, 1), seed 1000 k + i for image i (eval_shipped_model's)."""
    if sigma <= 0:
        return lr
    noise = torch.stack([torch.randn(lr.shape[1:], generator=torch.Generator().manual_seed(1000 * k + i),
                                     dtype=torch.float64) for i in range(lr.shape[0])])
    return lr + sigma * noise


def single_pass_model(ref: str) -> Any:
    """A shipped name or checkpoint path as an eval-mode model running one pass (no self-ensemble)."""
    from eosr.models import resolve_model

    m = resolve_model(ref, scale=2, bands=BANDS)
    if hasattr(m, "self_ensemble"):
        m.self_ensemble = False
    return m.eval()


def run_scenario(hr: torch.Tensor, form: str, factor: float, models: dict[str, Any],
                 sigmas: Sequence[float] = (0.0, 0.001), max_iter: int = 30) -> dict[str, Any]:
    """One scenario: {sigma: {"methods": {name: {psnr, psnr_nocrop[, K]}}, "diffs": {...}}}."""
    from eosr.models.backprojection import BackProjection
    from eosr.models.interp import upsample
    from eosr.train.sources import scaled_sensor_operator

    op = scaled_sensor_operator("sentinel2", BANDS, 2, factor, wald=form == "wald")
    lr_clean = op.downsample(hr)
    bp = BackProjection(2, BANDS, operator=op, iterations=max_iter)
    out: dict[str, Any] = {"operator": op.describe()}
    for k, s in enumerate(sigmas):
        lr = noisy(lr_clean, s, k)
        errs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        full: dict[str, float] = {}
        extra: dict[str, dict[str, Any]] = {}

        def add(name: str, sr: torch.Tensor, errs: dict[str, Any] = errs, full: dict[str, float] = full) -> None:
            errs[name] = squared_errors(sr, hr)
            full[name] = pooled_psnr(*squared_errors(sr, hr, 0))

        add("bicubic", upsample(lr, 2, "bicubic"))
        with torch.no_grad():
            its = bp.iterates(lr)
            scores = [pooled_psnr(*squared_errors(x, hr)) for x in its]
            best = int(np.argmax(scores))
            add("backprojection", its[best])
            extra["backprojection"] = {"K": best}
            for name, m in models.items():
                default = m.operator
                add(f"{name} (card operator)", m(lr.float()))
                m.set_operator(op)
                add(f"{name} (told)", m(lr.float()))
                m.set_operator(default)
        methods = {n: {"psnr": pooled_psnr(*e), "psnr_nocrop": full[n]} | extra.get(n, {}) for n, e in errs.items()}
        diffs: dict[str, Any] = {}
        names = list(models)
        for name in names:
            diffs[f"{name} (told) - backprojection"] = paired_bootstrap(errs[f"{name} (told)"], errs["backprojection"])
            diffs[f"{name} (told) - {name} (card operator)"] = paired_bootstrap(errs[f"{name} (told)"],
                                                                               errs[f"{name} (card operator)"])
        if len(names) >= 2:
            a, b = names[0], names[1]
            for mode in ("told", "card operator"):
                diffs[f"{a} ({mode}) - {b} ({mode})"] = paired_bootstrap(errs[f"{a} ({mode})"], errs[f"{b} ({mode})"])
        out[f"sigma={s:g}"] = {"methods": methods, "diffs": diffs}
    return out


def run_psf(model: str = "carn_m_s2_x2_psf", baseline: str = "carn_m_s2_x2",
            scenarios: Sequence[tuple[str, float]] = SCENARIOS, sigmas: Sequence[float] = (0.0, 0.001),
            max_iter: int = 30, threads: int = 1,
            load: Callable[[], list[np.ndarray]] | None = None) -> dict[str, Any]:
    """Every scenario for ``model`` and ``baseline`` (shipped names or checkpoint paths)."""
    torch.set_num_threads(threads)
    if load is None:
        from eval_shipped_model import load_patches as load
    hr = torch.from_numpy(np.stack(load())).double()
    models = {model: single_pass_model(model), baseline: single_pass_model(baseline)}
    return {f"{form} x{f:g}": run_scenario(hr, form, f, models, sigmas, max_iter) for form, f in scenarios}


def markdown(table: dict[str, Any]) -> str:
    """The tables (one per scenario and noise level) and the differences with their 95 % intervals."""
    lines = []
    for scen, per in table.items():
        for key, res in per.items():
            if not key.startswith("sigma="):
                continue
            lines += [f"### LR: {scen} PSF, noise {key.split('=')[1]}", "",
                      "| method | PSNR dB (8-px crop) | PSNR dB (no crop) |", "|---|---|---|"]
            for name, m in res["methods"].items():
                label = f"{name} (K={m['K']})" if "K" in m else name
                lines.append(f"| {label} | {m['psnr']:.3f} | {m['psnr_nocrop']:.3f} |")
            lines += ["", "| difference (pooled PSNR, crop) | dB | 95 % CI |", "|---|---|---|"]
            for name, d in res["diffs"].items():
                lines.append(f"| {name} | {d['diff']:+.3f} | [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] |")
            lines.append("")
    return "\n".join(lines)
