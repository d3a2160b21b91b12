"""Held-out figures of the shipped models (``--model all``: every one); by default the bar table of
``carn_m_s2_x2``: model vs bicubic vs back-projection (best K).

Data: the six BigEarthNet-S2 example patches (Sentinel-2 L2A, B02 B03 B04 B08 at 10 m, 120x120; never
used for training), the built-in sample ``bigearthnet_s2_examples`` (:mod:`eosr.data.samples`).
Protocol: Wald x2 with the Sentinel-2 operator, ``Degradation.from_sensor("sentinel2", bands, 2,
wald=True)``; LR noise: Gaussian sigma in {0, 0.001} reflectance (seed 1000 k + i for noise level k,
patch i). Metrics (eosr.metrics, data_range 1, pooled over every pixel of every band of the 6 patches):
``psnr``, ``psnr_high_gradient`` (stratum g >= q90 of the pooled HR gradient magnitude), ``hr_fidelity``
and ``lr_fidelity`` (mean absolute, l1). Back-projection (Irani & Peleg 1991, true operator) is reported
at its best iteration count K in 0..``--max-iter`` chosen ON THESE PATCHES (an oracle in BP's favour).

``--split test`` scores the training config's held-out test split instead (``configs/carn_m_s2_x2.toml``:
CoastalA east strip and the southern Slovenian strip, 5 dates) with :func:`eosr.train.validate.evaluate_model`
(pooled PSNR; ``psnr_high_gradient`` = g >= q90 per image; hr/lr fidelity as RMSE, the training validation's
definitions), BP's best K again chosen on those images.

``--model carn_m_s2_x4`` (or any x4 checkpoint) runs the x4 evaluation of ``benchmarks/_eval_x4.py``
(Wald x4, 8-HR-px border crop, single pass and self-ensemble, paired bootstrap intervals; ``--speed`` adds
MPix/s).
A model that offers uncertainty (``--model carn_m_s2_x2_unc``) gets the calibration table of
``benchmarks/_eval_uncertainty.py`` instead (its SR is its base model's).

Run (from the repository root): ``.venv/bin/python benchmarks/eval_shipped_model.py [--model NAME_OR_PATH]
[--split ben|test]``; ``--model carn_m_s2_x2_psf`` prints the PSF-aware tables of ``benchmarks/_eval_psf.py``.

20 m -> 10 m sharpening models (``--model s2_multires_20m``, its checkpoints, ``guided_hpf``) are evaluated by
``benchmarks/_eval_multires.py`` instead (BigEarthNet Wald and Reykjavik, against bicubic and guided_hpf).
``--speed`` (x4) adds MPix/s.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

BANDS = ["B02", "B03", "B04", "B08"]


def load_patches(folder: Path | None = None) -> list[np.ndarray]:
    """The six BigEarthNet 10 m stacks (4, 120, 120) float32 reflectance, sorted by name."""
    from eosr.data.s2bands import read_s2_band_folder, scene_folders
    from eosr.data.samples import bigearthnet_dir

    root = folder if folder is not None else bigearthnet_dir()
    out = []
    for f in scene_folders(root):
        r = read_s2_band_folder(f, BANDS)[10]
        out.append(np.asarray(r.data, dtype=np.float32))
    return out


def metrics(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, op: Any) -> dict[str, float]:
    """PSNR, high-gradient PSNR, HR and LR fidelity of a batch (B, C, H, W), pooled (eosr.metrics)."""
    from eosr.metrics.fidelity import hr_fidelity, lr_fidelity
    from eosr.metrics.standard import psnr
    from eosr.metrics.stratified import stratified_metrics

    sr, hr, lr = sr.double(), hr.double(), lr.double()
    st = stratified_metrics(sr, hr, metrics=("psnr",))
    return {
        "psnr": float(psnr(sr, hr).value),
        "psnr_high_gradient": float(st["psnr_high_gradient"].value),
        "hr_fidelity": float(hr_fidelity(sr, hr, op).value),
        "lr_fidelity": float(lr_fidelity(sr, lr, op).value),
    }


def run(model_name: str = "carn_m_s2_x2", sigmas: tuple[float, ...] = (0.0, 0.001), max_iter: int = 30,
        threads: int = 2) -> dict[str, Any]:
    """The table as a dict: {sigma: {method: metrics}} plus the best BP iteration counts."""
    from eosr.degrade import Degradation
    from eosr.metrics.standard import psnr
    from eosr.models import load_model
    from eosr.models.backprojection import BackProjection
    from eosr.models.interp import upsample

    torch.set_num_threads(threads)
    op = Degradation.from_sensor("sentinel2", BANDS, 2, wald=True)
    hr = torch.from_numpy(np.stack(load_patches())).double()
    lr_clean = op.downsample(hr)
    model = load_model(model_name, scale=2, bands=BANDS)
    bp = BackProjection(2, BANDS, operator=op, iterations=max_iter)
    table: dict[str, Any] = {}
    for k, s in enumerate(sigmas):
        noise = torch.stack([torch.randn(lr_clean.shape[1:], generator=torch.Generator().manual_seed(1000 * k + i),
                                         dtype=torch.float64) for i in range(lr_clean.shape[0])])
        lr = lr_clean + s * noise
        rows: dict[str, Any] = {"bicubic": metrics(upsample(lr, 2, "bicubic"), hr, lr, op)}
        with torch.no_grad():
            its = bp.iterates(lr)
            scores = [float(psnr(x, hr).value) for x in its]
            best = int(np.argmax(scores))
            rows[f"backprojection (K={best})"] = metrics(its[best], hr, lr, op) | {"K": best}
            sr = model(lr.float()).double()
        rows[model_name] = metrics(sr, hr, lr, op)
        table[f"sigma={s:g}"] = rows
    return table


def run_test_split(model_name: str = "carn_m_s2_x2", config: str = "configs/carn_m_s2_x2.toml",
                   sigmas: tuple[float, ...] = (0.0, 0.001), max_iter: int = 30, threads: int = 2) -> dict[str, Any]:
    """The same table on the config's test split (whole windows, eosr.train.validate definitions)."""
    from eosr.models import load_model
    from eosr.models.backprojection import BackProjection
    from eosr.models.interp import upsample
    from eosr.train.config import load_config
    from eosr.train.sources import build_datasets
    from eosr.train.validate import evaluate_model

    torch.set_num_threads(threads)
    sp = build_datasets(load_config(config))
    op = sp.operator
    model = load_model(model_name, scale=2, bands=BANDS)

    def bp(k: int) -> Any:
        m = BackProjection(2, BANDS, operator=op, iterations=k)
        return lambda x: m(x.double()).float()

    table: dict[str, Any] = {}
    for s in sigmas:
        key = f"sigma={s:g}"

        def one(f: Any, s: float = s, key: str = key) -> dict[str, float]:
            m = evaluate_model(f, sp.test, op, [s])[key]
            return {"psnr": m["psnr"], "psnr_high_gradient": m["psnr_high"], "hr_fidelity": m["hr_fidelity"],
                    "lr_fidelity": m["lr_fidelity"]}

        rows: dict[str, Any] = {"bicubic": one(lambda x: upsample(x, 2, "bicubic"))}
        cand = {k: one(bp(k)) for k in (1, 2, 3, 5, 8, 10, 16, 20, max_iter)}
        best = max(cand, key=lambda k: cand[k]["psnr"])
        rows[f"backprojection (K={best})"] = cand[best] | {"K": best}
        rows[model_name] = one(model)
        table[key] = rows
    return table


def _is_multires(ref: str) -> bool:
    """Whether ``ref`` names a 20 m sharpening model (its card's architecture is s2_multires or guided_hpf)."""
    from eosr.models.registry import checkpoint_stem

    if ref.strip().lower() in ("s2_multires", "guided_hpf"):
        return True
    try:
        stem = checkpoint_stem(ref)
    except Exception:  # noqa: BLE001 - the usual path reports a bad reference
        return False
    if stem is None:
        return False
    card = json.loads(stem.with_suffix(".json").read_text())
    return (card.get("architecture") or {}).get("model") in ("s2_multires", "guided_hpf")


def main() -> None:
    """Print the bar table (markdown) and, with --json, the raw numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="carn_m_s2_x2", help="shipped name, checkpoint path, or 'all' (every "
                    "shipped weight file)")
    ap.add_argument("--max-iter", type=int, default=None, help="BP iterations tried (default 30; x4: 60)")
    ap.add_argument("--split", choices=("ben", "test"), default="ben",
                    help="ben: the 6 BigEarthNet patches; test: the training config's test split")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--speed", action="store_true", help="carn_m_s2_x4: also time it (MPix/s, 1 thread)")
    a = ap.parse_args()
    if a.model == "all":  # every shipped weight file, one after the other, each with its own tables
        import subprocess
        import sys

        from eosr.models.registry import shipped_weights

        flags = [*(["--json"] if a.json else []), *(["--speed"] if a.speed else []), "--split", a.split]
        for name in sorted(shipped_weights()):
            print(f"\n## {name}\n", flush=True)
            subprocess.run([sys.executable, __file__, "--model", name, *flags], check=True)
        return
    if _is_multires(a.model):
        import _eval_multires  # beside this script

        _eval_multires.main(a.model, a.json)
        return
    if a.model == "carn_m_s2_x2_psf":  # PSF-aware model: its own tables (benchmarks/_eval_psf.py)
        from _eval_psf import markdown, run_psf

        psf = run_psf(a.model, max_iter=a.max_iter or 30)
        print(json.dumps(psf, indent=1) if a.json else markdown(psf))
        return
    from eosr.models import describe_model

    if describe_model(a.model).get("uncertainty"):  # e.g. carn_m_s2_x2_unc: calibration, not PSNR (same SR)
        from _eval_uncertainty import evaluate, print_table

        res = evaluate(a.model, split=a.split)
        if a.json:
            print(json.dumps(res, indent=1))
        else:
            print_table(res)
        return
    if describe_model(a.model)["scale"] == 4:  # carn_m_s2_x4 (or an x4 checkpoint): benchmarks/_eval_x4.py
        import _eval_x4

        _eval_x4.main(a.model, a.split, a.max_iter or 60, a.json, a.speed)
        return
    a.max_iter = a.max_iter or 30
    table = run(a.model, max_iter=a.max_iter) if a.split == "ben" else run_test_split(a.model, max_iter=a.max_iter)
    if a.json:
        print(json.dumps(table, indent=1))
        return
    norm = "l1" if a.split == "ben" else "rmse"
    print(f"| noise sigma | method | PSNR dB | PSNR high-gradient dB | hr_fidelity ({norm}) | lr_fidelity ({norm}) |")
    print("|---|---|---|---|---|---|")
    for key, rows in table.items():
        for name, m in rows.items():
            print(f"| {key.split('=')[1]} | {name} | {m['psnr']:.3f} | {m['psnr_high_gradient']:.3f} | "
                  f"{m['hr_fidelity']:.6f} | {m['lr_fidelity']:.6f} |")
    for key, rows in table.items():
        bic = rows["bicubic"]
        bp = next(v for n, v in rows.items() if n.startswith("backprojection"))
        mod = rows[a.model]
        print(f"{key}: model - bicubic {mod['psnr'] - bic['psnr']:+.3f} dB, model - BP(best) "
              f"{mod['psnr'] - bp['psnr']:+.3f} dB, high-gradient vs bicubic "
              f"{mod['psnr_high_gradient'] - bic['psnr_high_gradient']:+.3f} dB")


if __name__ == "__main__":
    main()
