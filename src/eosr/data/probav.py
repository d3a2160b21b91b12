"""PROBA-V Kelvins challenge reader (Maerten et al., ESA Advanced Concepts Team, 2019).

Layout: ``{train,test}/{RED,NIR}/imgsetXXXX/`` with ``LR000.png ...`` (128x128, 300 m), ``QM000.png ...``
(per-frame quality maps: nonzero = clear), and for train ``HR.png`` (384x384, 100 m, x3) and ``SM.png``
(status map: nonzero = clear); ``norm.csv`` (space separated ``imgsetXXXX baseline_cPSNR``).
Images are 16-bit PNGs holding 14-bit values.

DN -> value: DN / 65535 (offset 0) by default, the challenge's convention wherever ``norm.csv`` is
used (cPSNR baselines were computed on uint16 / 65535); pass ``dn=DNScale(1 / 16383)`` for [0, 1].
These are normalised DN, not reflectance. Masks are honoured: ``lr_valid`` = QM != 0 and
``hr_valid`` = SM != 0. The location id is the imgset name (every imgset is its own scene).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eosr.data._gdal import why
from eosr.data.sample import DNScale, Sample, SampleDataset, make_sample
from eosr.errors import DataError

PROBAV_DN = DNScale(1.0 / 65535.0, 0.0)
PROBAV_SCALE = 3


def read_png16(path: str | os.PathLike[str]) -> np.ndarray:
    """A single-channel PNG (8 or 16 bit) as an integer array; DataError naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            a = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read {p}: {why(e)}") from None
    if a.ndim != 2:
        raise DataError(f"{p}: expected a single-channel PNG, got shape {a.shape}")
    return a


def read_probav_norm(path: str | os.PathLike[str]) -> dict[str, float]:
    """``norm.csv``: imgset name -> baseline cPSNR N(HR) (space separated; no trailing newline needed)."""
    p = Path(path)
    try:
        lines = p.read_text().split("\n")
    except FileNotFoundError:
        raise DataError(f"file not found: {p}") from None
    out: dict[str, float] = {}
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            out[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise DataError(f"{p}:{k}: expected 'imgsetXXXX value', got {line.strip()!r}") from None
    return out


class ProbaVDataset(SampleDataset):
    """PROBA-V image sets as multi-image samples: ``lr`` (N, 1, 128, 128), ``hr`` (1, 384, 384) or None.

    ``root`` holds ``train``/``test``; ``split`` picks one, ``bands`` the channels (RED, NIR). The
    baseline cPSNR from ``root/norm.csv`` (if present) goes to ``meta['norm']``.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", bands: tuple[str, ...] = ("RED", "NIR"),
                 dn: DNScale = PROBAV_DN, transform: Any = None) -> None:
        super().__init__([], transform)
        r = Path(root)
        self.dn = dn
        self.sets: list[tuple[str, Path]] = []
        for b in bands:
            d = r / split / b
            if not d.is_dir():
                raise DataError(f"PROBA-V folder not found: {d} (expected {{train,test}}/{{RED,NIR}}/imgsetXXXX)")
            self.sets += [(b, s) for s in sorted(d.iterdir()) if s.is_dir() and s.name.startswith("imgset")]
        if not self.sets:
            raise DataError(f"{r / split}: no imgsetXXXX folders")
        self.norm = read_probav_norm(r / "norm.csv") if (r / "norm.csv").exists() else {}

    def __len__(self) -> int:
        return len(self.sets)

    def __getitem__(self, i: int) -> Sample:
        band, d = self.sets[i]
        lrs = sorted(d.glob("LR*.png"))
        if not lrs:
            raise DataError(f"{d}: no LR###.png frames")
        frames, masks = [], []
        for f in lrs:
            q = d / f.name.replace("LR", "QM", 1)
            frames.append(self.dn.apply(read_png16(f)))
            masks.append(read_png16(q) != 0)
            if masks[-1].shape != frames[-1].shape:
                raise DataError(f"{q}: size {masks[-1].shape} differs from {f.name} {frames[-1].shape}")
        if len({a.shape for a in frames}) != 1:
            raise DataError(f"{d}: LR frames have different sizes")
        lr = np.stack(frames)[:, None]
        hr = hv = None
        if (d / "HR.png").exists():
            hr = self.dn.apply(read_png16(d / "HR.png"))[None]
            hv = read_png16(d / "SM.png") != 0
            if hr.shape[-2:] != (lr.shape[-2] * PROBAV_SCALE, lr.shape[-1] * PROBAV_SCALE) or hv.shape != hr.shape[1:]:
                raise DataError(f"{d}: HR/SM {hr.shape[-2:]} is not x{PROBAV_SCALE} of LR {lr.shape[-2:]}")
        meta = {"norm": self.norm[d.name]} if d.name in self.norm else {}
        s = make_sample(lr, hr, bands=(band,), scale=PROBAV_SCALE, sample_id=d.name, location_id=d.name,
                        lr_valid=np.stack(masks), hr_valid=hv, meta=meta)
        return self.transform(s) if self.transform is not None else s

    @property
    def location_ids(self) -> list[str]:
        return [d.name for _, d in self.sets]
