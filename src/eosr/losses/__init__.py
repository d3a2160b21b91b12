"""Training losses of eosr: pixel, physics (LR/HR fidelity through the sensor operator), perceptual,
heteroscedastic NLL, and the shift- and bias-invariant loss of multi-image SR.

Every loss takes ``(B, C, H, W)`` or ``(C, H, W)`` tensors (NumPy is accepted too and gives a float),
an optional validity mask, and treats NaN as nodata. Submodules are imported lazily.
"""

from __future__ import annotations

from eosr._lazy import lazy_exports

_EXPORTS = {
    "l1_loss": "pixel",
    "l2_loss": "pixel",
    "smooth_l1_loss": "pixel",
    "lr_fidelity_loss": "fidelity",
    "hr_fidelity_loss": "fidelity",
    "gaussian_nll": "nll",
    "laplace_nll": "nll",
    "shift_bias_invariant_l1": "multi",
    "PerceptualLoss": "perceptual",
    "perceptual_loss": "perceptual",
    "vgg16_weights": "perceptual",
    "LossTerm": "combine",
    "CompositeLoss": "combine",
    "build_loss": "combine",
    "parse_terms": "combine",
    "LOSS_NAMES": "combine",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports("eosr.losses", _EXPORTS)
