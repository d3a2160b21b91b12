"""Semi-simulated multi-image sets (Tarasiewicz, Nalepa, Kawulok, "A graph neural network for
multiple-image super-resolution", IGARSS 2022): a real image is the HR template; N LR frames are
simulated with :func:`eosr.degrade.simulate_frames` (random sub-pixel shifts, recorded; per-frame PSF
width and gain/bias jitter; the operator's noise) and real cloud masks.

Masks follow eosr's convention: boolean *valid* (True = clear). Real masks such as eo-learn's ``CLM``
(cloud = 1) are converted with :func:`valid_from_cloud_mask`; PROBA-V style masks (clear = nonzero)
are already valid masks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from eosr.data.sample import Sample, SampleDataset, make_sample
from eosr.data.wald import patch_origins
from eosr.degrade.multi import simulate_frames
from eosr.degrade.operator import Degradation
from eosr.errors import ShapeError


def valid_from_cloud_mask(cloud: Any) -> np.ndarray:
    """Cloud mask (nonzero = cloud; (T, H, W) or (T, H, W, 1)) -> boolean valid (T, H, W)."""
    a = np.asarray(cloud)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"cloud masks must be (T, H, W) or (T, H, W, 1), got shape {a.shape}")
    return a == 0


def _crop_bank(clear: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Random h x w windows of masks larger than the LR grid (keeps real cloud sizes in pixels)."""
    t, mh, mw = clear.shape
    if mh < h or mw < w:
        return clear
    ys = rng.integers(0, mh - h + 1, size=t)
    xs = rng.integers(0, mw - w + 1, size=t)
    return np.stack([c[y : y + h, x : x + w] for c, y, x in zip(clear, ys, xs, strict=True)])


def semi_simulated_set(
    hr: Any,
    operator: Degradation,
    n_frames: int,
    *,
    clear_masks: Any = None,
    sample_id: str = "scene",
    location_id: str | None = None,
    bands: tuple[str, ...] | None = None,
    seed: int = 0,
    **options: Any,
) -> Sample:
    """One multi-image sample: ``lr`` (N, C, h, w) frames of the real ``hr`` (C, H, W).

    ``clear_masks`` (M, H', W') bool valid masks (True = clear), e.g. ``valid_from_cloud_mask(CLM)``;
    windows of the LR size are cut at random when the masks are larger, else they are resized.
    ``options`` go to :func:`eosr.degrade.simulate_frames` (``max_shift_lr``, ``sigma_jitter``,
    ``gain_jitter``, ``bias_jitter``, ``cloud_fraction_max``, ``reference_frame``, ...). ``meta``
    records ``shifts_hr`` and ``shifts_lr`` (N, 2) as (dy, dx), ``sigmas``, ``gains``, ``biases``.
    """
    rng = np.random.default_rng([seed, 7])
    h = operator.crop(np.asarray(hr.detach().cpu().numpy() if hasattr(hr, "detach") else hr, dtype=np.float32))
    cloud = None
    if clear_masks is not None:
        clear = np.asarray(clear_masks, dtype=bool)
        if clear.ndim == 2:
            clear = clear[None]
        lh, lw = operator.lr_shape(h.shape[-2], h.shape[-1])
        cloud = ~_crop_bank(clear, lh, lw, rng)
    fs = simulate_frames(h, operator, n_frames, cloud_masks=cloud, seed=seed, **options)
    names = bands or operator.bands or tuple(f"B{i + 1}" for i in range(h.shape[0]))
    meta = {"shifts_hr": fs.shifts, "shifts_lr": fs.shifts_lr, "sigmas": fs.sigmas, "gains": fs.gains,
            "biases": fs.biases, "degradation": operator.describe()}
    return make_sample(np.asarray(fs.frames), h, bands=names, scale=operator.scale, sample_id=sample_id,
                       location_id=location_id or sample_id, lr_valid=fs.valid, meta=meta)


class SemiSimulatedDataset(SampleDataset):
    """Multi-image samples simulated on the fly from HR patches of real images (reproducible per index).

    ``images`` yields dicts with ``image`` (C, H, W) and ``location_id``; patches of ``patch`` HR px
    on a ``stride`` grid (NaN-free patches only); frames of item i use seed ``seed * 1_000_003 + i``
    (+ ``epoch`` via :meth:`set_epoch`, for fresh draws each epoch).
    """

    def __init__(self, images: Iterable[dict[str, Any]], operator: Degradation, n_frames: int, *, patch: int,
                 stride: int | None = None, clear_masks: Any = None, seed: int = 0, transform: Any = None,
                 **options: Any) -> None:
        super().__init__([], transform)
        self.operator, self.n_frames, self.patch = operator, n_frames, patch
        self.clear_masks, self.seed, self.options, self.epoch = clear_masks, seed, options, 0
        self.items: list[tuple[np.ndarray, str, int, int]] = []
        for it in images:
            img = np.asarray(it["image"], dtype=np.float32)
            for y, x in patch_origins(img.shape[-2], img.shape[-1], patch, stride or patch):
                if np.isfinite(img[:, y : y + patch, x : x + patch]).all():
                    self.items.append((img, str(it["location_id"]), y, x))

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws (shifts, jitter, noise, clouds) for a new epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        img, loc, y, x = self.items[i]
        p = self.patch
        s = semi_simulated_set(img[:, y : y + p, x : x + p], self.operator, self.n_frames,
                               clear_masks=self.clear_masks, sample_id=f"{loc}_r{y}_c{x}", location_id=loc,
                               seed=self.seed * 1_000_003 + i + 7919 * self.epoch, **self.options)
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return [it[1] for it in self.items]
