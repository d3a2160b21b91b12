"""Multi-image mode: N LR frames of one HR scene with known sub-pixel shifts, per-frame PSF and
radiometric jitter, noise and optional real cloud masks (semi-simulated sets as in Tarasiewicz,
Nalepa, Kawulok, "A graph neural network for multiple-image super-resolution", IGARSS 2022).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from eosr._arrays import like, to_tensor
from eosr.degrade.operator import Degradation
from eosr.errors import ShapeError


@dataclass
class FrameSet:
    """Simulated frames and everything that made them.

    ``frames`` (N, C, h, w); ``valid`` (N, h, w) bool (False under cloud); ``shifts`` (N, 2) as
    (dy, dx) in HR pixels, the scene displacement of each frame (frame = D(HR(. - shift)));
    ``sigmas`` (N, C) PSF sigma in HR px; ``gains``/``biases`` (N, C).
    """

    frames: Any
    valid: np.ndarray
    shifts: np.ndarray
    sigmas: np.ndarray
    gains: np.ndarray
    biases: np.ndarray
    scale: int = 1

    @property
    def shifts_lr(self) -> np.ndarray:
        """Shifts (dy, dx) in LR pixels."""
        return self.shifts / float(self.scale)


def simulate_frames(
    hr: Any,
    operator: Degradation,
    n_frames: int,
    *,
    max_shift_lr: float = 1.0,
    reference_frame: bool = True,
    sigma_jitter: float = 0.1,
    gain_jitter: float = 0.02,
    bias_jitter: float = 0.002,
    cloud_masks: Any = None,
    cloud_fraction_max: float = 0.5,
    cloud_value: float | None = None,
    seed: int = 0,
) -> FrameSet:
    """Simulate ``n_frames`` LR frames of ``hr`` (C, H, W) through ``operator``.

    Per frame k: shift s_k ~ U(-max_shift_lr, max_shift_lr) LR px (frame 0 unshifted when
    ``reference_frame``), sigma_k = sigma * (1 + U(-j, j)), gain ~ 1 + U(-g, g), bias ~ U(-b, b), then
    the operator's own noise and quantisation with a per-frame seed. ``cloud_masks`` is an array
    (M, h', w') of real cloud masks (True = cloud), resized by nearest neighbour to the LR grid; each
    frame draws one whose cloud cover is at most ``cloud_fraction_max``. Cloudy pixels are set to
    ``cloud_value`` (NaN by default) and marked invalid.
    """
    t = to_tensor(hr)
    if t.ndim != 3:
        raise ShapeError(f"simulate_frames needs one (C, H, W) image, got shape {tuple(t.shape)}")
    if n_frames < 1:
        raise ShapeError("n_frames must be >= 1")
    if operator.sigmas is None:
        raise ShapeError("simulate_frames jitters a Gaussian PSF: build the operator from sigmas")
    rng = np.random.default_rng(seed)
    r = operator.scale
    c = t.shape[0]
    h, w = operator.lr_shape(t.shape[-2], t.shape[-1])
    base = np.broadcast_to(np.asarray(operator.sigmas), (c,))
    shifts = rng.uniform(-max_shift_lr, max_shift_lr, size=(n_frames, 2)) * r
    if reference_frame:
        shifts[0] = 0.0
    sigmas = base[None, :] * (1 + rng.uniform(-sigma_jitter, sigma_jitter, size=(n_frames, c)))
    gains = 1 + rng.uniform(-gain_jitter, gain_jitter, size=(n_frames, c))
    biases = rng.uniform(-bias_jitter, bias_jitter, size=(n_frames, c))
    clouds = _cloud_bank(cloud_masks, h, w, cloud_fraction_max) if cloud_masks is not None else None
    frames, valid = [], np.ones((n_frames, h, w), dtype=bool)
    for k in range(n_frames):
        op = replace(operator, sigmas=tuple(sigmas[k]), shift=(float(shifts[k, 0]), float(shifts[k, 1])),
                     gain=1.0, offset=0.0)
        lr = to_tensor(op.downsample(t))
        lr = lr * torch.as_tensor(gains[k], dtype=lr.dtype)[:, None, None]
        lr = lr + torch.as_tensor(biases[k], dtype=lr.dtype)[:, None, None]
        lr = to_tensor(replace(op, sigmas=(0.0,), scale=1, bands=None, shift=(0.0, 0.0))(lr, seed=seed * 1000 + k)) if (
            operator.has_noise or operator.bits is not None) else lr
        if clouds is not None and len(clouds):
            cm = clouds[rng.integers(len(clouds))]
            valid[k] = ~cm
            fill = float("nan") if cloud_value is None else cloud_value
            lr = torch.where(torch.from_numpy(cm)[None], torch.full((), fill, dtype=lr.dtype), lr)
        frames.append(lr)
    return FrameSet(like(torch.stack(frames), hr), valid, shifts, sigmas, gains, biases, r)


def _cloud_bank(masks: Any, h: int, w: int, max_frac: float) -> list[np.ndarray]:
    m = np.asarray(masks)
    if m.ndim == 4:
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ShapeError(f"cloud masks must be (M, H, W), got shape {m.shape}")
    iy = (np.arange(h) * m.shape[1] // h).clip(0, m.shape[1] - 1)
    ix = (np.arange(w) * m.shape[2] // w).clip(0, m.shape[2] - 1)
    bank = [mk[np.ix_(iy, ix)].astype(bool) for mk in m]
    return [b for b in bank if b.mean() <= max_frac]
