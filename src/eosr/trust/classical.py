"""Training-free SR with a PSF assumption: iterative back-projection (Irani & Peleg 1991).

    x_0 = bicubic(y);   x_{k+1} = x_k + lambda * bicubic(y - D_m(x_k))

with D_m the eosr degradation operator for a Gaussian PSF of MTF ``m`` at the LR Nyquist. Each
member of :func:`psf_jitter_ensemble` assumes another m, so their spread shows where the output
depends on the (uncertain) PSF: edges and fine texture, not flat fields. It is a cheap, honest
stand-in for a learned model when testing uncertainty plumbing and calibration on real imagery;
its spread is a PSF-ambiguity uncertainty, not a learned posterior.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from eosr.models.base import ModelSpec
from eosr.physics.psf import check_mtf, check_scale


class BackProjectionSR(nn.Module):
    """Iterative back-projection under a Gaussian PSF with MTF ``mtf`` at the LR Nyquist (any band count)."""

    def __init__(self, scale: int, mtf: float = 0.25, iterations: int = 8, step: float = 1.0) -> None:
        super().__init__()
        from eosr.degrade.operator import Degradation

        self.scale = check_scale(scale)
        self.mtf = check_mtf(mtf)
        self.iterations = int(iterations)
        self.step = float(step)
        self.op = Degradation.from_mtf(self.mtf, self.scale)
        self.register_buffer("mtf_value", torch.tensor(float(mtf)))  # makes members distinguishable checkpoints
        self.spec = ModelSpec(name="backprojection", scale=self.scale, receptive_field=2 * self.iterations + 2,
                              extra={"mtf": self.mtf, "iterations": self.iterations})

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Back-projected SR (B, C, r h, r w)."""
        x = self._up(lr)
        for _ in range(self.iterations):
            x = x + self.step * self._up(lr - self.op.downsample(x))
        return x


def psf_jitter_ensemble(scale: int, mtfs: Sequence[float] = (0.15, 0.2, 0.25, 0.3, 0.35),
                        iterations: int = 8) -> list[BackProjectionSR]:
    """Back-projection members, one per assumed MTF at Nyquist (one architecture: usable with ``ensemble``)."""
    return [BackProjectionSR(scale, m, iterations) for m in mtfs]
