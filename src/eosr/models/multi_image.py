"""Multi-image baseline: sub-pixel registration, then robust (median) fusion with masks honoured.

Input ``frames`` (B, N, C, h, w) and ``masks`` (B, N, h, w) or (B, N, C, h, w), True = valid (clear);
NaN pixels are invalid too. Per scene the reference is the frame with the most valid pixels (frame 0 when
``first_reference``, as in the scene-level multi-image SR of :mod:`eosr.scene.multi`); every
frame's shift against it is estimated by :func:`eosr.physics.registration.estimate_shift`
(Guizar-Sicairos et al. 2008), in LR pixels.

- ``fusion="median"``: each frame is resampled onto the reference grid (Fourier shift; its mask is shifted
  the same way and kept where > 0.5), the per-pixel median over the valid frames is taken, then upsampled
  (bicubic, pixel-is-area). This is the PROBA-V challenge baseline made robust (median instead of mean).
- ``fusion="shift_and_add"``: every valid LR sample is placed at the nearest HR pixel of its registered
  position (Irani & Peleg 1991; Farsiu, Robinson, Elad, Milanfar, "Fast and robust multiframe super
  resolution", IEEE TIP 13(10), 2004: the median of the samples on each HR pixel is the robust L1
  shift-and-add); HR pixels that no sample reaches take the value of the ``median`` fusion.
LR pixels valid in no frame give NaN (nodata) in the output. Not differentiable; no parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from eosr.errors import ModelError, ShapeError
from eosr.models.base import ModelSpec, SRNet, check_bands
from eosr.models.interp import upsample
from eosr.physics.psf import check_scale
from eosr.physics.registration import estimate_shift, fourier_shift

FUSIONS = ("median", "shift_and_add")


def frame_masks(frames: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Validity (B, N, C, h, w) from optional masks (B, N, h, w) / (B, N, C, h, w) and NaN pixels."""
    valid = torch.isfinite(frames)
    if masks is None:
        return valid
    m = masks.to(torch.bool)
    if m.ndim == 4:
        m = m[:, :, None]
    if m.ndim != 5 or m.shape[:2] != frames.shape[:2] or m.shape[-2:] != frames.shape[-2:]:
        raise ShapeError(f"masks must be (B, N, h, w) or (B, N, C, h, w) matching frames {tuple(frames.shape)}, "
                         f"got {tuple(masks.shape)}")
    return valid & m


def register_frames(frames: np.ndarray, valid: np.ndarray, ref: int) -> np.ndarray:
    """Shifts (N, 2) = (dy, dx) in LR px of each frame relative to frame ``ref`` (invalid pixels ignored)."""
    out = np.zeros((frames.shape[0], 2))
    rimg = np.where(valid[ref], frames[ref], np.nan)
    for k in range(frames.shape[0]):
        if k == ref or not valid[k].any():
            continue
        out[k] = estimate_shift(rimg, np.where(valid[k], frames[k], np.nan))
    return out


def _fill(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Invalid pixels -> per-band mean of the valid ones (0 if none)."""
    out = a.copy()
    for c in range(a.shape[0]):
        v = ok[c]
        out[c][~v] = a[c][v].mean() if v.any() else 0.0
    return out


class MedianFusion(SRNet):
    """Registration + median (or shift-and-add) fusion of N LR frames; see the module docstring."""

    def __init__(self, scale: int = 2, bands: Sequence[str] | None = None, *, fusion: str = "median",
                 register: bool = True) -> None:
        r = check_scale(scale)
        names, _ = check_bands(bands, None, None)
        if fusion not in FUSIONS:
            raise ModelError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        spec = ModelSpec(name="mi_median", scale=r, bands=names, receptive_field=3, multi_image=True,
                         extra={"kind": "multi-image fusion baseline", "fusion": fusion, "register": register})
        super().__init__(spec, {"model": "mi_median", "kwargs": dict(scale=r, bands=list(names) if names else None,
                                                                      fusion=fusion, register=register)}, None)
        self.scale = r
        self.fusion = fusion
        self.register = register
        self.last_shifts: np.ndarray | None = None  # (B, N, 2) shifts in LR px of the last call
        self.first_reference = False  # True: frame 0 is the reference grid (eosr.scene.multi sets it)

    def forward(self, frames: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """Fused SR (B, C, r h, r w) from frames (B, N, C, h, w) and optional validity masks."""
        self.check_input(frames, ndim=5)
        valid = frame_masks(frames, masks)
        outs, shifts = [], []
        for b in range(frames.shape[0]):
            o, s = self._one(frames[b].detach().double().cpu().numpy(), valid[b].cpu().numpy())
            outs.append(torch.from_numpy(o))
            shifts.append(s)
        self.last_shifts = np.stack(shifts)
        return torch.stack(outs).to(dtype=frames.dtype, device=frames.device)

    def _one(self, f: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, c, h, w = f.shape
        r = self.scale
        ref = 0 if self.first_reference else int(np.argmax(ok.reshape(n, -1).sum(1)))
        sh = register_frames(f, ok, ref) if self.register and n > 1 else np.zeros((n, 2))
        reg = np.full_like(f, np.nan)
        for k in range(n):
            if not ok[k].any():
                continue
            if np.allclose(sh[k], 0):
                reg[k] = np.where(ok[k], f[k], np.nan)
                continue
            # the frame shows the scene moved by sh[k]; move it back onto the reference grid
            img = fourier_shift(_fill(f[k], ok[k]), -sh[k][0], -sh[k][1])
            m = fourier_shift(ok[k].astype(np.float64), -sh[k][0], -sh[k][1]) > 0.5
            reg[k] = np.where(m, img, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(reg, axis=0)  # (C, h, w), NaN where no frame is valid
        hole = ~np.isfinite(med)
        up = upsample(torch.from_numpy(_fill(med, ~hole))[None], r, "bicubic")[0].numpy()
        if self.fusion == "shift_and_add":
            up = self._shift_and_add(f, ok, sh, up)
        if hole.any():
            up[np.repeat(np.repeat(hole, r, -2), r, -1)] = np.nan
        return up, sh

    def _shift_and_add(self, f: np.ndarray, ok: np.ndarray, sh: np.ndarray, fill: np.ndarray) -> np.ndarray:
        n, c, h, w = f.shape
        r = self.scale
        H, W = h * r, w * r
        samples = np.full((n, c, H, W), np.nan)
        ii, jj = np.mgrid[0:h, 0:w]
        for k in range(n):
            # LR pixel (i, j) of frame k sees the reference scene at (i - dy, j - dx) LR px; its centre on the
            # HR grid is ((i - dy) r + (r - 1) / 2, ...)
            y = np.rint((ii - sh[k, 0]) * r + (r - 1) / 2).astype(int)
            x = np.rint((jj - sh[k, 1]) * r + (r - 1) / 2).astype(int)
            inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
            for ch in range(c):
                sel = inside & ok[k, ch]
                samples[k, ch, y[sel], x[sel]] = f[k, ch][sel]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(samples, axis=0)
        return np.where(np.isfinite(med), med, fill)


def mi_median(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None,
              **kw: Any) -> MedianFusion:
    """Registration + median / shift-and-add fusion of N LR frames (any band count)."""
    return MedianFusion(scale, bands, **kw)
