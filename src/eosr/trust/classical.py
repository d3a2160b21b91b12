"""A training-free ensemble with a PSF assumption: back-projection under several assumed MTFs.

Each member is :class:`eosr.models.backprojection.BackProjection` (Irani & Peleg 1991),

    x_0 = bicubic(y);   x_{k+1} = x_k + bicubic(y - D_m(x_k))

with D_m the eosr operator for a Gaussian PSF of MTF ``m`` at the LR Nyquist. The members' spread shows
where the output depends on the (uncertain) PSF: edges and fine texture, not flat fields. It is a cheap,
honest stand-in for a learned model when testing uncertainty plumbing and calibration on real imagery;
its spread is a PSF-ambiguity uncertainty, not a learned posterior.
"""

from __future__ import annotations

from collections.abc import Sequence

from eosr.models.backprojection import BackProjection
from eosr.physics.psf import check_mtf


def psf_jitter_ensemble(scale: int, mtfs: Sequence[float] = (0.15, 0.2, 0.25, 0.3, 0.35),
                        iterations: int = 8) -> list[BackProjection]:
    """Back-projection members, one per assumed MTF at Nyquist (one architecture: usable with ``ensemble``)."""
    return [BackProjection(scale, mtf=check_mtf(m), iterations=iterations) for m in mtfs]
