"""Run a model on one LR window with nodata handling; the unit of work of every tiling path.

Nodata: an LR pixel is invalid when any band is NaN. Invalid pixels are filled with 0 before the
model runs, and every HR pixel whose LR pixel lies within ``receptive_field`` LR pixels of an invalid
one (a square dilation, the model's support) becomes NaN. Pixels farther away never see the fill.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from eosr.errors import ModelError
from eosr.scene.engine import run
from eosr.scene.source import SceneSource
from eosr.scene.tiling import TilePlan


def model_scale(model: Any) -> int:
    """The model's scale factor from its ``spec``."""
    spec = getattr(model, "spec", None)
    if spec is None or not hasattr(spec, "scale"):
        raise ModelError(f"{type(model).__name__} has no .spec (ModelSpec) declaring its scale")
    return int(spec.scale)


def receptive_field(model: Any) -> int:
    """The model's receptive field in LR pixels (half-width), from its ``spec``."""
    return int(getattr(getattr(model, "spec", None), "receptive_field", 0) or 0)


def predict_array(model: Any, x: np.ndarray, *, uncertainty: bool = False, engine: str = "torch") -> np.ndarray:
    """SR of one ``(C, h, w)`` float32 window (NaN = nodata) -> ``(C, r h, r w)`` float32 (or ``2C`` with std).

    With ``uncertainty`` the model's ``forward_with_uncertainty(lr) -> (sr, std)`` is used and the
    std bands follow the SR bands. ``engine``: ``"torch"`` or ``"onnxruntime"`` (:mod:`eosr.scene.engine`).
    """
    r, rf = model_scale(model), receptive_field(model)
    c, h, w = x.shape
    bad = np.isnan(x).any(axis=0)
    c_out = int(getattr(model, "n_out_bands", 0) or c)  # multi-resolution models change the band count
    n_out = 2 * c_out if uncertainty else c_out
    if bad.all():
        return np.full((n_out, h * r, w * r), np.nan, dtype=np.float32)
    src = np.where(bad[None], np.float32(0), x) if bad.any() else x
    arr = np.ascontiguousarray(src, dtype=np.float32)[None]
    if uncertainty:
        fwu = getattr(model, "forward_with_uncertainty", None)
        if fwu is None:
            raise ModelError(f"model {getattr(model.spec, 'name', '?')} offers no uncertainty "
                             "(forward_with_uncertainty)")
        with torch.inference_mode():
            sr, std = fwu(torch.from_numpy(arr))
            out = torch.cat([sr, std], dim=1)[0].detach().to(torch.float32).cpu().numpy()
    else:
        out = run(model, arr, engine)[0]
    if out.shape != (n_out, h * r, w * r):
        raise ModelError(f"model returned shape {tuple(out.shape)} for input {(c, h, w)} at x{r}; "
                         f"expected {(n_out, h * r, w * r)}")
    if bad.any():
        if rf > 0:
            from scipy.ndimage import binary_dilation

            bad = binary_dilation(bad, structure=np.ones((2 * rf + 1, 2 * rf + 1), bool))
        out[:, np.repeat(np.repeat(bad, r, axis=0), r, axis=1)] = np.nan
    return out


def predict_tile(model: Any, source: SceneSource | np.ndarray, plan: TilePlan, i: int, j: int,
                 uncertainty: bool = False, threads: int | None = None, engine: str = "torch") -> np.ndarray:
    """Read tile (i, j)'s window, run the model (on ``engine``) and crop the prediction to the tile's support."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    y0, y1, x0, x1 = plan.window(i, j)
    x = source[:, y0:y1, x0:x1] if isinstance(source, np.ndarray) else source.read((y0, y1, x0, x1))
    out = predict_array(model, np.asarray(x, dtype=np.float32), uncertainty=uncertainty, engine=engine)
    r = plan.scale
    s0, s1, t0, t1 = plan.support(i, j)
    return out[:, (s0 - y0) * r : (s1 - y0) * r, (t0 - x0) * r : (t1 - x0) * r]
