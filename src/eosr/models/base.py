"""The model interface every SR model of eosr follows.

A model maps LR ``(B, C, h, w)`` (or a multi-image stack ``(B, N, C, h, w)`` plus masks) to SR
``(B, C, r h, r w)`` in reflectance, on the pixel-is-area grid of :mod:`eosr.degrade` (LR pixel (i, j)
covers HR pixels [i r, (i+1) r) x [j r, (j+1) r)). It declares its scale, bands and receptive field
(in LR pixels, the half-width of the LR neighbourhood that influences one output pixel), and
carries its per-band normalisation with its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class ModelSpec:
    """What a model declares about itself (stored in its JSON card next to the weights)."""

    name: str
    scale: int
    bands: tuple[str, ...] | None = None  # None: any band count
    receptive_field: int = 0  # LR pixels each side; tiling overlap is derived from it
    multi_image: bool = False
    version: str = "1"
    mean: tuple[float, ...] | None = None  # per-band normalisation: x_n = (x - mean) / std
    std: tuple[float, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SRModel(Protocol):
    """Anything with a ``spec`` and a ``__call__(lr) -> sr`` on (B, C, h, w) float tensors."""

    spec: ModelSpec

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:  # pragma: no cover - protocol
        ...
