"""Weight-space interpolation of a fine-tuned model with its starting weights, chosen on validation data.

WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022): for a model fine-tuned
from weights ``a`` to weights ``b`` (same architecture; ``b`` started from ``a``), the weights
``w(alpha) = a + alpha (b - a)`` often score above both ends, keeping most of what the fine-tune gained
(here: PSF robustness) and most of what it lost (here: the Wald operator the start was trained on).
``alpha`` is chosen on the **validation split of the fine-tune's config only** (the same score as its
epoch selection: the mean validation PSNR, single pass), never on evaluation data.

Run (repository root)::

    .venv/bin/python -m eosr.train.interpolate configs/carn_m_s2_x2_psf.toml \\
        --start carn_m_s2_x2 --tuned out/train/carn_m_s2_x2_psf --out out/train/carn_m_s2_x2_psf_wise/carn_m_s2_x2_psf

The card of the written checkpoint is the fine-tune's, with ``weight_interpolation`` (start, fine-tune,
their SHA-256, the grid, every alpha's validation scores, the chosen alpha) and the chosen alpha's
validation scores as ``metrics.validation``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from eosr.errors import ModelError
from eosr.train.validate import monitored

__all__ = ["ALPHA_GRID", "interpolate_state", "main", "select_alpha"]

#: The alphas tried by default (both ends included: the choice may be either model).
ALPHA_GRID = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)
WISE_FT = "WiSE-FT weight interpolation, Wortsman et al., CVPR 2022"


def interpolate_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float
                      ) -> dict[str, torch.Tensor]:
    """``a + alpha (b - a)`` for every floating tensor; other tensors (counters) must be equal and are kept."""
    if a.keys() != b.keys():
        raise ModelError("weight interpolation needs two checkpoints of the same architecture (their tensors differ)")
    out: dict[str, torch.Tensor] = {}
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise ModelError(f"weight interpolation: tensor {k} has shapes {tuple(ta.shape)} and {tuple(tb.shape)}")
        if ta.is_floating_point():
            out[k] = ta + alpha * (tb - ta)
        elif torch.equal(ta, tb):
            out[k] = tb.clone()
        else:
            raise ModelError(f"weight interpolation: non-float tensor {k} differs between the checkpoints")
    return out


def select_alpha(cfg: Any, start: Any, tuned: Any, grid: Sequence[float] = ALPHA_GRID
                 ) -> tuple[float, dict[float, dict[str, dict[str, float]]]]:
    """Validation scores (single pass, the config's validation of :func:`eosr.train.loop._validate`) of every
    alpha in ``grid`` and the alpha with the highest mean PSNR over them (ties: the smaller alpha, nearer the
    start). ``start`` and ``tuned`` are models; ``tuned`` receives the interpolated weights in turn and ends
    with the chosen ones."""
    from eosr.train.loop import _validate, single_pass
    from eosr.train.sources import build_datasets

    sp = build_datasets(cfg)
    sa = {k: v.detach().clone() for k, v in start.state_dict().items()}
    sb = {k: v.detach().clone() for k, v in tuned.state_dict().items()}
    scores: dict[float, dict[str, dict[str, float]]] = {}
    tuned.eval()
    for alpha in grid:
        tuned.load_state_dict(interpolate_state(sa, sb, float(alpha)))
        with torch.no_grad(), single_pass(tuned):
            scores[float(alpha)] = _validate(tuned, sp, cfg.validation.noise_sigmas)
    best = max(scores, key=lambda al: (monitored(scores[al], "psnr"), -al))
    tuned.load_state_dict(interpolate_state(sa, sb, best))
    return best, scores


def main(argv: Sequence[str] | None = None) -> int:
    """Choose alpha on the validation split of CONFIG and write the interpolated checkpoint (module doc)."""
    from eosr.models.checkpoint import save_checkpoint
    from eosr.models.registry import load_model
    from eosr.train.config import load_config

    ap = argparse.ArgumentParser(prog="python -m eosr.train.interpolate", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="the fine-tune's training config (its validation split chooses alpha)")
    ap.add_argument("--start", required=True, help="the weights the fine-tune started from (name or path)")
    ap.add_argument("--tuned", required=True, help="the fine-tuned checkpoint (name, path or run folder)")
    ap.add_argument("--out", required=True, help="output checkpoint path (without suffix)")
    ap.add_argument("--grid", default=",".join(str(a) for a in ALPHA_GRID), help="alphas, comma-separated")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    torch.set_num_threads(cfg.threads)
    start, tuned = load_model(args.start), load_model(args.tuned)
    start_card, tuned_card = getattr(start, "card", None), getattr(tuned, "card", None)  # (checkpoints only)
    if not start_card or not tuned_card:
        raise ModelError("--start and --tuned must be trained checkpoints (names of shipped weights or paths)")
    if start.arch != tuned.arch:
        raise ModelError("weight interpolation needs two checkpoints of the same architecture")
    grid = [float(a) for a in args.grid.split(",")]
    best, scores = select_alpha(cfg, start, tuned, grid)
    for alpha, val in scores.items():
        print(f"alpha {alpha:.2f}: mean validation PSNR {monitored(val, 'psnr'):.4f} dB", file=sys.stderr)
    card = dict(tuned_card)  # the fine-tune's; save_checkpoint rewrites what the weights determine (SHA-256 too)
    card["name"] = Path(args.out).name
    card["weight_interpolation"] = {
        "method": WISE_FT, "start": args.start, "start_sha256": start_card.get("weights_sha256"),
        "tuned_sha256": tuned_card.get("weights_sha256"), "alpha": best, "grid": grid,
        "selection": "mean validation PSNR (single pass) of the config's validation split",
        "validation": {str(a): v for a, v in scores.items()},
    }
    card["metrics"] = {"validation": scores[best]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    w, _ = save_checkpoint(tuned, args.out, card)
    print(f"alpha {best:.2f} (mean validation PSNR {monitored(scores[best], 'psnr'):.4f} dB) -> {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
