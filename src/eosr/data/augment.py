"""Augmentation for multi-image SR (Ziaja, Nalepa, Kawulok, "Augmenting data for multi-image
super-resolution", IGARSS 2022 -- as we read it: frame permutation and subset selection, geometric
transforms applied consistently to every frame, the HR and all masks, radiometric jitter, frame dropout).

Seeded and reproducible: the draws of a sample depend only on (``seed``, ``epoch``, ``sample_id``),
so DataLoader workers and reruns agree. Geometric transforms (flips, 90-degree rotations) invalidate
the georeference (transforms are set to None) and update recorded frame shifts (``meta['shifts_lr']``,
``meta['shifts_hr']``) so that they stay true: a horizontal flip negates dx, a vertical flip dy, and a
counter-clockwise rotation (``torch.rot90``) maps (dy, dx) to (-dx, dy).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from eosr.data.sample import Sample
from eosr.errors import ShapeError

_SHIFT_KEYS = ("shifts_lr", "shifts_hr")


@dataclass
class MISRAugment:
    """Callable transform of multi-image :class:`Sample` records (use as a dataset ``transform``).

    ``n_frames``: keep a random subset of this many frames (None: all); ``permute``: shuffle frame order
    (the first frame stays first when ``keep_reference``); ``hflip``/``vflip``/``rot90``: random
    geometry, each with probability 1/2 (rotation k uniform in 0..3); ``gain_jitter``/``bias_jitter``:
    per-frame, per-band LR radiometry g ~ U(1 - j, 1 + j), b ~ U(-j, j); ``frame_dropout``: each frame
    (except the reference) is dropped with this probability -- its pixels become ``fill`` (NaN) and
    invalid, so shapes stay batchable.
    """

    n_frames: int | None = None
    permute: bool = True
    keep_reference: bool = True
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    gain_jitter: float = 0.0
    bias_jitter: float = 0.0
    frame_dropout: float = 0.0
    fill: float = float("nan")
    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """New random draws for a new epoch."""
        self.epoch = int(epoch)

    def rng(self, s: Sample) -> np.random.Generator:
        """The generator of one sample (depends on seed, epoch and sample id only)."""
        return np.random.default_rng([self.seed, self.epoch, zlib.crc32(s.sample_id.encode())])

    def __call__(self, s: Sample) -> Sample:
        if not s.multi_image:
            raise ShapeError(f"MISRAugment needs multi-image samples (N, C, h, w); got lr {tuple(s.lr.shape)}")
        rng = self.rng(s)
        meta = dict(s.meta)
        lr, lv = s.lr, s.lr_valid
        n = lr.shape[0]
        # frame subset and order
        first = [0] if self.keep_reference else []
        rest = np.arange(len(first), n)
        if self.permute:
            rest = rng.permutation(rest)
        order = np.concatenate([first, rest]).astype(int)
        if self.n_frames is not None:
            if not 1 <= self.n_frames <= n:
                raise ShapeError(f"cannot keep {self.n_frames} of {n} frames")
            keep = order[: self.n_frames] if self.permute else np.sort(
                np.concatenate([first, rng.choice(rest, self.n_frames - len(first), replace=False)])).astype(int)
            order = keep
        idx = torch.as_tensor(order)
        lr, lv = lr[idx], lv[idx]
        for key in _SHIFT_KEYS + ("sigmas", "gains", "biases"):
            if key in meta:
                meta[key] = np.asarray(meta[key])[order]
        # geometry, consistent for frames, HR and masks
        hr, hv = s.hr, s.hr_valid
        ops: list[str] = []
        if self.hflip and rng.random() < 0.5:
            lr, lv = lr.flip(-1), lv.flip(-1)
            hr, hv = (None if hr is None else hr.flip(-1)), (None if hv is None else hv.flip(-1))
            self._map_shifts(meta, lambda d: np.stack([d[:, 0], -d[:, 1]], 1))
            ops.append("hflip")
        if self.vflip and rng.random() < 0.5:
            lr, lv = lr.flip(-2), lv.flip(-2)
            hr, hv = (None if hr is None else hr.flip(-2)), (None if hv is None else hv.flip(-2))
            self._map_shifts(meta, lambda d: np.stack([-d[:, 0], d[:, 1]], 1))
            ops.append("vflip")
        k = int(rng.integers(4)) if self.rot90 else 0
        for _ in range(k):
            lr, lv = lr.rot90(1, (-2, -1)), lv.rot90(1, (-2, -1))
            hr = None if hr is None else hr.rot90(1, (-2, -1))
            hv = None if hv is None else hv.rot90(1, (-2, -1))
            self._map_shifts(meta, lambda d: np.stack([-d[:, 1], d[:, 0]], 1))
        if k:
            ops.append(f"rot90x{k}")
        # radiometry and dropout (LR only)
        m, c = lr.shape[0], lr.shape[1]
        if self.gain_jitter or self.bias_jitter:
            g = torch.as_tensor(1 + rng.uniform(-self.gain_jitter, self.gain_jitter, (m, c)), dtype=lr.dtype)
            b = torch.as_tensor(rng.uniform(-self.bias_jitter, self.bias_jitter, (m, c)), dtype=lr.dtype)
            lr = lr * g[:, :, None, None] + b[:, :, None, None]
            ops.append("radiometry")
        if self.frame_dropout > 0:
            drop = rng.random(m) < self.frame_dropout
            if self.keep_reference:
                drop[0] = False
            elif drop.all():
                drop[int(rng.integers(m))] = False
            if drop.any():
                d = torch.as_tensor(drop)
                lr = lr.clone()
                lr[d] = self.fill
                lv = lv.clone()
                lv[d] = False
                ops.append(f"dropout{int(drop.sum())}")
            meta["dropped"] = drop
        meta["frame_order"] = order
        meta["augment"] = ops
        geo = any(o in ops for o in ("hflip", "vflip")) or k > 0
        return replace(s, lr=lr.contiguous(), lr_valid=lv.contiguous(),
                       hr=None if hr is None else hr.contiguous(), hr_valid=None if hv is None else hv.contiguous(),
                       lr_transform=None if geo else s.lr_transform, hr_transform=None if geo else s.hr_transform,
                       meta=meta)

    @staticmethod
    def _map_shifts(meta: dict[str, Any], f: Any) -> None:
        for key in _SHIFT_KEYS:
            if key in meta:
                meta[key] = f(np.asarray(meta[key], dtype=np.float64))
