"""Registration of multi-image sets: sub-pixel shifts of every frame against a reference frame.

Reuses :func:`eosr.physics.registration.estimate_shift` (phase correlation with upsampled-DFT
refinement, Guizar-Sicairos, Thurman, Fienup, Optics Letters 33(2), 2008) with the eosr convention:
``frame_k(row, col) ~ reference(row - dy_k, col - dx_k)``; shifts are in the frames' (LR) pixels.
``refine`` extra passes re-estimate the residual after shifting each frame back (Fourier shift), which
removes most of the window bias of a single pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eosr.errors import ShapeError
from eosr.physics.registration import estimate_shift, fourier_shift


def _frames(frames: Any) -> np.ndarray:
    a = np.asarray(frames.detach().cpu().numpy() if hasattr(frames, "detach") else frames, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ShapeError(f"frames must be (N, C, H, W) or (N, H, W), got shape {a.shape}")
    return a


def _masked(f: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    if valid is None:
        return f
    out = f.copy()
    out[:, ~valid] = np.nan
    return out


def _filled(f: np.ndarray) -> np.ndarray:
    out = f.copy()
    for b in out:
        ok = np.isfinite(b)
        b[~ok] = b[ok].mean() if ok.any() else 0.0
    return out


def register_frames(frames: Any, valid: Any = None, *, reference: int = 0, refine: int = 1,
                    upsample: int = 100) -> np.ndarray:
    """Shifts (N, 2) as (dy, dx) of every frame relative to frame ``reference`` (which gets (0, 0)).

    ``valid`` (N, H, W) bool excludes clouds/nodata (set to the band mean for the estimate).
    """
    f = _frames(frames)
    n = f.shape[0]
    if not 0 <= reference < n:
        raise ShapeError(f"reference frame {reference} outside 0..{n - 1}")
    v = None if valid is None else np.asarray(valid, dtype=bool)
    if v is not None and v.shape != (n, *f.shape[-2:]):
        raise ShapeError(f"valid masks {v.shape} do not match frames {f.shape}")
    ref = _masked(f[reference], None if v is None else v[reference])
    out = np.zeros((n, 2))
    for k in range(n):
        if k == reference:
            continue
        mov = _masked(f[k], None if v is None else v[k])
        s = np.asarray(estimate_shift(ref, mov, upsample=upsample))
        for _ in range(refine):
            back = fourier_shift(_filled(mov), -s[0], -s[1])
            s = s + np.asarray(estimate_shift(ref, back, upsample=upsample))
        out[k] = s
    return out


def align_frames(frames: Any, shifts: Any, valid: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Shift every frame back by its (dy, dx) (Fourier shift; periodic borders) onto the reference grid.

    Returns (aligned frames (N, C, H, W) float32, aligned valid (N, H, W)); invalid pixels are moved
    with the nearest-integer shift and the wrapped border rows/columns are marked invalid.
    """
    f = _frames(frames)
    sh = np.asarray(shifts, dtype=np.float64)
    if sh.shape != (f.shape[0], 2):
        raise ShapeError(f"shifts must be ({f.shape[0]}, 2), got {sh.shape}")
    n, _, h, w = f.shape
    v = np.ones((n, h, w), bool) if valid is None else np.asarray(valid, dtype=bool)
    out = np.empty(f.shape, np.float32)
    vout = np.empty((n, h, w), bool)
    for k in range(n):
        dy, dx = sh[k]
        out[k] = fourier_shift(_filled(_masked(f[k], v[k])), -dy, -dx)
        iy, ix = int(np.rint(dy)), int(np.rint(dx))
        m = np.roll(v[k], (-iy, -ix), axis=(0, 1))
        by, bx = int(np.ceil(abs(dy))), int(np.ceil(abs(dx)))
        if by:
            m[(slice(h - by, h) if dy > 0 else slice(0, by)), :] = False
        if bx:
            m[:, (slice(w - bx, w) if dx > 0 else slice(0, bx))] = False
        vout[k] = m
        out[k][:, ~m] = np.nan
    return out, vout


def check_registration(frames: Any, expected: Any, valid: Any = None, *, reference: int = 0,
                       tol: float = 0.05) -> dict[str, Any]:
    """Compare the estimated shifts with ``expected`` (N, 2) relative to the reference frame.

    Returns ``{"estimated", "error" (N, 2), "max_error", "ok": max_error <= tol}``.
    """
    exp = np.asarray(expected, dtype=np.float64)
    exp = exp - exp[reference]
    est = register_frames(frames, valid, reference=reference)
    err = est - exp
    mx = float(np.abs(err).max())
    return {"estimated": est, "error": err, "max_error": mx, "ok": mx <= tol}
