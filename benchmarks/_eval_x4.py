"""Held-out evaluation of ``carn_m_s2_x4`` (CARN-M x4, Sentinel-2 B02 B03 B04 B08, 10 m -> 2.5 m).

Called by ``benchmarks/eval_shipped_model.py --model carn_m_s2_x4 [--split ben|test]``.

Protocol (Wald, Ranchin, Mangolini 1997): HR = the real 10 m image, LR = D(HR) with the Sentinel-2 Wald
operator at r = 4, ``Degradation.from_sensor("sentinel2", bands, 4, wald=True)``, plus Gaussian LR noise
sigma in {0, 0.001} reflectance (seed 1000 k + i for noise level k and image i).

- ``ben``: the six BigEarthNet-S2 example patches (L2A, 120 x 120; never used in training or selection);
- ``test``: the test split of ``configs/carn_m_s2_x4.toml`` (CoastalA east strip, Slovenia south strip at
  5 dates; whole windows).

Metrics after an 8-HR-pixel border crop, pooled over every pixel, band and image:
PSNR = 10 log10(1 / MSE) (data range 1 reflectance) and RMSE = sqrt(MSE). Each difference of PSNR against a
baseline comes with a paired percentile-bootstrap 95 % interval: images are resampled with replacement
(the same draw for both methods, 2,000 draws) and the pooled PSNR difference is recomputed
(Efron & Tibshirani 1993, ch. 13; :class:`eosr.benchmark.stats.Estimate`). Back-projection (Irani & Peleg
1991, true operator) is scored at its best iteration count K in 0..``max_iter``, chosen on the evaluated
images themselves (an oracle in its favour). The model is scored as a single pass (the default of
``eosr sr``) and with the 8-fold self-ensemble (``--self-ensemble``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

NAME = "carn_m_s2_x4"
BANDS = ["B02", "B03", "B04", "B08"]
SCALE = 4
CROP = 8  # HR px removed at each border before scoring
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "carn_m_s2_x4.toml"


def ben_images(folder: Path | None = None) -> list[np.ndarray]:
    """The six BigEarthNet 10 m stacks (4, 120, 120) float64 reflectance, sorted by name."""
    from eosr.data.s2bands import read_s2_band_folder, scene_folders
    from eosr.data.samples import bigearthnet_dir

    root = folder if folder is not None else bigearthnet_dir()
    return [np.asarray(read_s2_band_folder(f, BANDS)[10].data, dtype=np.float64) for f in scene_folders(root)]


def split_images(config: Path = CONFIG) -> list[np.ndarray]:
    """HR images (C, H, W) of the config's test split (whole windows, cropped to multiples of r)."""
    from eosr.train.config import load_config
    from eosr.train.sources import build_datasets

    return [it.hr.double().numpy() for it in build_datasets(load_config(config)).test]


def sq_errors(sr: torch.Tensor, hr: torch.Tensor, crop: int = CROP) -> tuple[float, int]:
    """Sum of squared errors and pixel count (all bands) after removing ``crop`` HR px at each border."""
    d = (sr.double() - hr.double())[..., crop : hr.shape[-2] - crop, crop : hr.shape[-1] - crop]
    return float((d * d).sum()), int(d.numel())


def pooled_psnr(se: Sequence[float], n: Sequence[int]) -> float:
    """PSNR (dB, data range 1) of the MSE pooled over images: 10 log10(sum n / sum se)."""
    return 10.0 * math.log10(float(np.sum(n)) / max(float(np.sum(se)), 1e-30))


def paired_pooled_difference(se_a: Sequence[float], se_b: Sequence[float], n: Sequence[int], *,
                             n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Any:
    """PSNR(a) - PSNR(b), both pooled, with a paired percentile-bootstrap interval over images.

    Each draw resamples the image indices with replacement and recomputes both pooled PSNRs on the same
    draw (Efron & Tibshirani 1993, ch. 13). Returns an :class:`eosr.benchmark.stats.Estimate`.
    """
    from eosr.benchmark.stats import Estimate

    a, b, w = (np.asarray(v, dtype=np.float64) for v in (se_a, se_b, n))
    diff = pooled_psnr(a, w) - pooled_psnr(b, w)
    k = a.size
    if k < 2:
        return Estimate(diff, diff, diff, k, confidence)
    idx = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    sa, sb, sw = a[idx].sum(1), b[idx].sum(1), w[idx].sum(1)
    draws = 10.0 * np.log10(sw / np.maximum(sa, 1e-30)) - 10.0 * np.log10(sw / np.maximum(sb, 1e-30))
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(draws, [q, 1.0 - q])
    return Estimate(diff, float(lo), float(hi), k, confidence)


def evaluate(images: Sequence[np.ndarray], model: str | Path = NAME, sigmas: Sequence[float] = (0.0, 0.001),
             max_iter: int = 60, threads: int = 1) -> dict[str, Any]:
    """Per noise level: {method: {"psnr", "rmse", "se", "n"}}, the best BP K and the paired differences.

    Methods: ``bicubic``, ``backprojection`` (best K), ``<model> single pass``, ``<model> self-ensemble``.
    Differences (key ``diff``): each model variant against bicubic and against BP(best K), and the
    self-ensemble against the single pass.
    """
    from eosr.degrade import Degradation
    from eosr.models import resolve_model
    from eosr.models.backprojection import BackProjection
    from eosr.models.interp import upsample

    torch.set_num_threads(threads)
    op = Degradation.from_sensor("sentinel2", BANDS, SCALE, wald=True)
    net = resolve_model(model, scale=SCALE, bands=BANDS).eval()
    bp = BackProjection(SCALE, BANDS, operator=op, iterations=max_iter)
    hrs = [torch.from_numpy(np.asarray(op.crop(h), dtype=np.float64))[None] for h in images]
    clean = [op.downsample(h) for h in hrs]
    out: dict[str, Any] = {}
    for k, s in enumerate(sigmas):
        lrs = [c + s * torch.randn(c.shape, generator=torch.Generator().manual_seed(1000 * k + i),
                                   dtype=torch.float64) for i, c in enumerate(clean)]
        per: dict[str, list[tuple[float, int]]] = {}

        def add(name: str, f: Callable[[torch.Tensor], torch.Tensor], per: dict = per, lrs: list = lrs) -> None:
            with torch.no_grad():
                per[name] = [sq_errors(f(lr), hr) for lr, hr in zip(lrs, hrs, strict=True)]

        add("bicubic", lambda x: upsample(x, SCALE, "bicubic"))
        with torch.no_grad():
            its = [bp.iterates(lr) for lr in lrs]
        bp_se = [[sq_errors(it[j], hr) for it, hr in zip(its, hrs, strict=True)] for j in range(max_iter + 1)]
        best = int(np.argmax([pooled_psnr([e for e, _ in r], [m for _, m in r]) for r in bp_se]))
        per["backprojection"] = bp_se[best]
        del its
        for tag, ens in (("single pass", False), ("self-ensemble", True)):
            net.self_ensemble = ens  # type: ignore[assignment]
            add(f"{NAME} {tag}", lambda x: net(x.float()).double())
        rows = {}
        for name, v in per.items():
            se, n = [e for e, _ in v], [m for _, m in v]
            rows[name] = {"psnr": pooled_psnr(se, n), "rmse": math.sqrt(sum(se) / sum(n)), "se": se, "n": n}
        diffs = {}
        pairs = [(f"{NAME} {t}", b) for t in ("single pass", "self-ensemble") for b in ("bicubic", "backprojection")]
        pairs.append((f"{NAME} self-ensemble", f"{NAME} single pass"))
        pairs.append(("backprojection", "bicubic"))
        for a, b in pairs:
            est = paired_pooled_difference(rows[a]["se"], rows[b]["se"], rows[a]["n"])
            diffs[f"{a} - {b}"] = est.to_dict()
        out[f"sigma={s:g}"] = {"rows": rows, "bp_k": best, "diff": diffs}
    return out


def speed(model: str | Path = NAME, size: int = 128, repeats: int = 2, threads: int = 1) -> dict[str, float]:
    """Output MPix/s (4 bands, LR ``size`` x ``size`` -> (4 size)^2 output pixels), best of ``repeats``, for
    the single pass and the self-ensemble, with ``threads`` torch threads: by wall clock (``wall``) and by the
    process CPU time (``cpu``; with 1 thread, what a free core would give on a machine shared with others)."""
    from eosr.models import resolve_model

    torch.set_num_threads(threads)
    net = resolve_model(model, scale=SCALE, bands=BANDS).eval()
    x = torch.rand(1, len(BANDS), size, size, generator=torch.Generator().manual_seed(0)) * 0.3
    mpix = (SCALE * size) ** 2 / 1e6
    res = {}
    for tag, ens in (("single pass", False), ("self-ensemble", True)):
        net.self_ensemble = ens  # type: ignore[assignment]
        wall = cpu = math.inf
        for _ in range(repeats if not ens else 1):
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.no_grad():
                net(x)
            wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
        res[f"{tag} wall"], res[f"{tag} cpu"] = mpix / wall, mpix / cpu
    return res


def markdown(table: dict[str, Any]) -> str:
    """The table of :func:`evaluate` as markdown: scores, then every difference with its 95 % interval."""
    lines = ["| noise sigma | method | PSNR dB | RMSE |", "|---|---|---|---|"]
    for key, t in table.items():
        for name, r in t["rows"].items():
            label = f"backprojection (K={t['bp_k']})" if name == "backprojection" else name
            lines.append(f"| {key.split('=')[1]} | {label} | {r['psnr']:.3f} | {r['rmse']:.6f} |")
    lines += ["", "| noise sigma | difference | dB | 95 % CI (paired bootstrap) |", "|---|---|---|---|"]
    for key, t in table.items():
        for name, d in t["diff"].items():
            lines.append(f"| {key.split('=')[1]} | {name} | {d['mean']:+.3f} | "
                         f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] |")
    return "\n".join(lines)


def main(model: str | Path = NAME, split: str = "ben", max_iter: int = 60, as_json: bool = False,
         with_speed: bool = False) -> None:
    """Print the evaluation of ``split`` (``ben`` or ``test``) as markdown (or JSON)."""
    import json

    images = ben_images() if split == "ben" else split_images()
    table = evaluate(images, model, max_iter=max_iter)
    if as_json:
        slim = {k: {"bp_k": t["bp_k"], "diff": t["diff"],
                    "rows": {n: {"psnr": r["psnr"], "rmse": r["rmse"]} for n, r in t["rows"].items()}}
                for k, t in table.items()}
        print(json.dumps(slim, indent=1))
    else:
        print(markdown(table))
    if with_speed:
        sp = speed(model)
        print(f"\nspeed (1 torch thread, 4 x 128 x 128 LR -> 512 x 512), output MPix/s by wall clock / by CPU "
              f"time: single pass {sp['single pass wall']:.3f} / {sp['single pass cpu']:.3f}, self-ensemble "
              f"{sp['self-ensemble wall']:.4f} / {sp['self-ensemble cpu']:.4f}")
