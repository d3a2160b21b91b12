"""Metrics of published protocols: PROBA-V cPSNR / cMSE (ESA Kelvins) and WorldStrat / MuS2-style
shift- and bias-searched PSNR / SSIM.

**PROBA-V** (Maertens, Izzo, Krzic et al., "Super-resolution of PROBA-V images using convolutional
neural networks", Astrodynamics 3, 2019; Kelvins challenge scoring code). Values are divided by
65535; SR is cropped by 3 pixels, SR_c = SR[3:H-3, 3:W-3]; for every u, v in {0..6} (7 x 7 = 49 shifts)
HR_uv = HR[u:u+H-6, v:v+W-6] and its clear mask SM_uv; C = clear pixels, n = |C|:

    b = (1/n) sum_C (HR_uv - SR_c),  cMSE = (1/n) sum_C (HR_uv - SR_c - b)^2,  cPSNR = -10 log10(cMSE)

keeping the best (maximum cPSNR) shift; cPSNR is capped at 120 dB like every eosr PSNR
(:func:`eosr.metrics.base.psnr_db`). The scene score is N(HR) / cPSNR with N from ``norm.csv``
(lower is better, the baseline scores 1). A popular re-implementation loops over 6 x 6 shifts; this
one uses 7 x 7 as the challenge did.

**WorldStrat / MuS2 style** (Cornebise, Orsolic, Kalaitzis, NeurIPS Datasets 2022; Kowaleczko et al.,
Scientific Data 2023): crop a border of ``border`` pixels from SR, compare it with every HR window
displaced by an integer shift within the border and then by sub-pixel steps around the best one,
remove the brightness bias (mean difference on valid pixels) and keep the best PSNR; SSIM is reported
at that best shift, on the bias-corrected SR.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.errors import DataError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, psnr_capped, psnr_db
from eosr.physics.registration import fourier_shift

__all__ = [
    "CMSE",
    "CPSNR",
    "PROBAV_SCALE",
    "ProbaVScene",
    "cpsnr",
    "probav_score",
    "read_norm_csv",
    "read_probav_scene",
    "shift_bias_psnr_ssim",
]

#: PROBA-V values are divided by this before scoring (Kelvins code; not 16383).
PROBAV_SCALE = 65535.0
_KELVINS = "ESA Kelvins PROBA-V challenge; Maertens et al., Astrodynamics 3, 2019"
CPSNR = MetricInfo("cpsnr", True, (-math.inf, 120.0), differentiable=False, unit="dB", source=_KELVINS)
CMSE = MetricInfo("cmse", False, (0.0, math.inf), differentiable=False, source=_KELVINS)
_WS = "shift- and bias-searched, as WorldStrat (Cornebise et al. 2022) and MuS2 (Kowaleczko et al. 2023)"
PSNR_SEARCHED = MetricInfo("psnr_shift_bias", True, (-math.inf, 120.0), differentiable=False, unit="dB", source=_WS)
SSIM_SEARCHED = MetricInfo("ssim_shift_bias", True, (-1.0, 1.0), differentiable=False, source=_WS)


def _plane(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ShapeError(f"{name} must be one band, (H, W) or (1, H, W); got shape {a.shape}")
    return a.astype(np.float64)


def cpsnr(sr: Any, hr: Any, clear: Any = None, *, scale: float = PROBAV_SCALE, crop: int = 3) -> MetricResult:
    """PROBA-V cPSNR of one scene (Kelvins definition, see the module docstring).

    ``sr``, ``hr``: (H, W) or (1, H, W) in PROBA-V digital numbers (16-bit PNG values), divided by
    ``scale`` (65535) first; pass ``scale=1`` for data already normalised. ``clear``: HR clear mask SM
    (True / nonzero = clear; None = all clear). ``crop`` = 3 gives the 7 x 7 shift search. ``extra``
    holds ``cmse``, the best ``shift`` (u, v) (HR offset of the SR crop) and the number of clear pixels.
    """
    s, h = _plane(sr, "sr") / scale, _plane(hr, "hr") / scale
    if s.shape != h.shape:
        raise ShapeError(f"sr {s.shape} and hr {h.shape} differ in shape")
    cm = np.ones(h.shape, bool) if clear is None else _plane(clear, "clear mask") > 0
    if cm.shape != h.shape:
        raise ShapeError(f"clear mask {cm.shape} and hr {h.shape} differ in shape")
    cm &= np.isfinite(h)
    n_off = 2 * crop + 1
    hh, ww = h.shape[0] - 2 * crop, h.shape[1] - 2 * crop
    if hh < 1 or ww < 1:
        raise ShapeError(f"images of {h.shape} px are too small for a {crop}-pixel crop")
    sc = s[crop : crop + hh, crop : crop + ww]
    if not np.isfinite(sc).all():
        raise ShapeError("sr has NaN inside the scored crop")
    best = (-math.inf, math.inf, (0, 0), 0)
    for u in range(n_off):
        for v in range(n_off):
            m = cm[u : u + hh, v : v + ww]
            n = int(m.sum())
            if n == 0:
                continue
            d = (h[u : u + hh, v : v + ww] - sc)[m]
            b = d.mean()
            mse = float(((d - b) ** 2).mean())
            val = float(psnr_db(mse, 1.0))  # -10 log10(cMSE), capped at 120 dB
            if val > best[0]:
                best = (val, mse, (u, v), n)
    if best[3] == 0:
        raise ShapeError("cPSNR: the clear mask is empty for every shift")
    val, mse, uv, n = best
    extra = {"cmse": mse, "shift": list(uv), "n_clear": n, "n_shifts": n_off * n_off}
    if psnr_capped(val):
        extra["capped"] = True
    return MetricResult(CPSNR, val, np.array([val]), extra)


def probav_score(sr: Any, hr: Any, clear: Any, norm: float, *, scale: float = PROBAV_SCALE) -> float:
    """Kelvins scene score N(HR) / cPSNR(SR) (lower is better; the bicubic baseline scores about 1)."""
    c = float(cpsnr(sr, hr, clear, scale=scale).value)
    return float(norm) / c


def read_norm_csv(path: str | os.PathLike[str]) -> dict[str, float]:
    """Parse the challenge's ``norm.csv``: one ``imgsetXXXX baseline_cPSNR`` per line, space separated
    (no header; the last line has no trailing newline)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"norm.csv not found: {p}")
    out: dict[str, float] = {}
    for k, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{p}:{k}: expected 'imgsetXXXX value', got {line!r}")
        try:
            out[parts[0]] = float(parts[1])
        except ValueError:
            raise DataError(f"{p}:{k}: not a number: {parts[1]!r}") from None
    if not out:
        raise DataError(f"{p} holds no scene")
    return out


@dataclass
class ProbaVScene:
    """One PROBA-V image set: LR frames (N, 128, 128) and clear masks QM, HR (384, 384) and SM, in DN."""

    name: str
    lr: np.ndarray
    qm: np.ndarray
    hr: np.ndarray | None
    sm: np.ndarray | None


def _read_png(p: Path) -> np.ndarray:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as ds:
                return ds.read(1)
    except RasterioIOError as e:
        raise DataError(f"cannot read {p}: {str(e).splitlines()[0]}") from None


def read_probav_scene(folder: str | os.PathLike[str]) -> ProbaVScene:
    """Read an ``imgsetXXXX`` folder of the PROBA-V layout (``LR000.png``..., ``QM000.png``..., and for
    the training set ``HR.png`` and ``SM.png``); values stay in DN (divide by 65535 to score)."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"not a PROBA-V image set folder: {d}")
    lrs = sorted(d.glob("LR*.png"))
    if not lrs:
        raise DataError(f"{d}: no LR*.png frames")
    qms = [d / f.name.replace("LR", "QM", 1) for f in lrs]
    missing = [q.name for q in qms if not q.exists()]
    if missing:
        raise DataError(f"{d}: missing clear masks {', '.join(missing[:3])}")
    hr = _read_png(d / "HR.png") if (d / "HR.png").exists() else None
    sm = _read_png(d / "SM.png") if (d / "SM.png").exists() else None
    return ProbaVScene(d.name, np.stack([_read_png(f) for f in lrs]), np.stack([_read_png(q) for q in qms]) > 0,
                       hr, None if sm is None else sm > 0)


def shift_bias_psnr_ssim(
    sr: Any,
    hr: Any,
    *,
    border: int = 3,
    subpixel_step: float = 0.25,
    data_range: float = 1.0,
    mask: Any = None,
) -> dict[str, MetricResult]:
    """WorldStrat / MuS2-style PSNR and SSIM, searched over shifts and corrected for brightness bias.

    SR cropped by ``border`` is compared with HR windows displaced by every integer (u, v) in
    [-border, border]^2, then by steps of ``subpixel_step`` within half a pixel of the best integer
    shift (HR Fourier-shifted); for each candidate the bias b = mean(HR_w - SR_c) over valid pixels is
    removed and PSNR = 10 log10(data_range^2 / MSE) pooled over bands; the best PSNR wins; SSIM
    (Wang et al. 2004) is computed at that shift on SR_c + b. Inputs (C, H, W).
    """
    s = sr.detach().cpu().numpy() if isinstance(sr, torch.Tensor) else np.asarray(sr)
    h = hr.detach().cpu().numpy() if isinstance(hr, torch.Tensor) else np.asarray(hr)
    if s.ndim != 3 or h.ndim != 3:
        raise ShapeError(f"sr and hr must be (C, H, W); got {s.shape} and {h.shape}")
    if s.shape != h.shape:
        raise ShapeError(f"sr {s.shape} and hr {h.shape} differ in shape")
    s, h = s.astype(np.float64), h.astype(np.float64)
    ok = np.isfinite(s) & np.isfinite(h)
    if mask is not None:
        ok &= np.broadcast_to(np.asarray(mask, dtype=bool), s.shape)
    c, hh, ww = s.shape
    B = int(border)
    if min(hh, ww) - 2 * B < 11:
        raise ShapeError(f"images of {hh}x{ww} px are too small for a {B}-pixel border and the SSIM window")
    sc = s[:, B : hh - B, B : ww - B]

    def score(hw: np.ndarray, m: np.ndarray) -> tuple[float, np.ndarray]:
        mm = m & np.isfinite(hw)
        if not mm.any():
            return -math.inf, np.zeros(c)
        d = np.where(mm, hw - sc, 0.0)
        n_b = mm.sum(axis=(1, 2))
        b = d.sum(axis=(1, 2)) / np.maximum(n_b, 1)
        mse = float((np.where(mm, d - b[:, None, None], 0.0) ** 2).sum() / mm.sum())
        return float(psnr_db(mse, data_range)), b  # capped at 120 dB

    valid_c = ok[:, B : hh - B, B : ww - B]
    best: tuple[float, tuple[float, float], np.ndarray, np.ndarray, np.ndarray] = (
        -math.inf, (0.0, 0.0), np.zeros(c), sc, valid_c)
    for u in range(-B, B + 1):
        for v in range(-B, B + 1):
            hw = h[:, B + u : hh - B + u, B + v : ww - B + v]
            m = valid_c & ok[:, B + u : hh - B + u, B + v : ww - B + v]
            val, b = score(hw, m)
            if val > best[0]:
                best = (val, (float(u), float(v)), b, hw, m)
    if best[0] == -math.inf:
        raise ShapeError("no valid pixel: the inputs are all NaN or the mask is empty")
    if subpixel_step and 0 < subpixel_step < 1 and not psnr_capped(best[0]):
        iu, iv = int(best[1][0]), int(best[1][1])
        steps = np.arange(-0.5, 0.5 + 1e-9, subpixel_step)
        hf = np.where(np.isfinite(h), h, np.nanmean(h))
        m = valid_c & ok[:, B + iu : hh - B + iu, B + iv : ww - B + iv]
        for du in steps:
            for dv in steps:
                if abs(du) < 1e-9 and abs(dv) < 1e-9:
                    continue
                moved = fourier_shift(hf, -du, -dv)  # moved(r, c) = h(r + du, c + dv)
                hw = moved[:, B + iu : hh - B + iu, B + iv : ww - B + iv]
                val, b = score(hw, m)
                if val > best[0]:
                    best = (val, (iu + float(du), iv + float(dv)), b, hw, m)
    best_val, (bu, bv), b, hw, m = best
    corrected = np.where(m, sc + b[:, None, None], np.nan)
    from eosr.metrics.standard import ssim

    ss = ssim(corrected, np.where(m, hw, np.nan), data_range=data_range)
    extra: dict[str, Any] = {"shift": [bu, bv], "bias": b.tolist(), "border": B}
    pb = _per_band_psnr(corrected, hw, data_range)
    p_extra = {**extra, "capped": True} if psnr_capped(pb) or psnr_capped(best_val) else extra
    return {
        "psnr_shift_bias": MetricResult(PSNR_SEARCHED, best_val, pb, p_extra),
        "ssim_shift_bias": MetricResult(SSIM_SEARCHED, float(ss.value), np.asarray(ss.per_band), extra),
    }


def _per_band_psnr(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    mse = np.array([float(((x[i] - y[i])[ok[i]] ** 2).mean()) for i in range(x.shape[0])])
    out: np.ndarray = psnr_db(mse, data_range)
    return out
