"""Sensor physics: PSF <-> MTF, kernels, spectra, aliasing, registration and PSF calibration.

PSF calibration from an LR/HR pair uses the degradation operator, so it lives in
:mod:`eosr.degrade.calibrate` (dependencies flow sensors -> physics -> degrade).
"""

from eosr.physics.psf import (
    check_mtf,
    check_scale,
    gaussian_kernel,
    gaussian_taps,
    kernel_from_mtf_curve,
    kernel_length,
    kernel_mtf,
    mtf_from_sigma,
    sigma_from_mtf,
    wald_sigma,
)
from eosr.physics.registration import estimate_shift, fourier_shift
from eosr.physics.spectrum import aliasing_fraction, power_spectrum_2d, radial_power_spectrum

__all__ = [
    "aliasing_fraction",
    "check_mtf",
    "check_scale",
    "estimate_shift",
    "fourier_shift",
    "gaussian_kernel",
    "gaussian_taps",
    "kernel_from_mtf_curve",
    "kernel_length",
    "kernel_mtf",
    "mtf_from_sigma",
    "power_spectrum_2d",
    "radial_power_spectrum",
    "sigma_from_mtf",
    "wald_sigma",
]
