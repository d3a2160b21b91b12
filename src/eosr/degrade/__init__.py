"""The one sensor-aware degradation operator (simulation, LR fidelity and LR-consistency loss).

>>> from eosr.degrade import Degradation
>>> op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], scale=2)
>>> lr = op(hr)              # (C, H, W) or (B, C, H, W), NumPy or torch  # doctest: +SKIP
"""

from eosr.degrade.multi import FrameSet, simulate_frames
from eosr.degrade.operator import Degradation

__all__ = ["Degradation", "FrameSet", "simulate_frames", "calibrate_psf", "PSFFit"]


def __getattr__(name: str) -> object:
    if name in ("calibrate_psf", "PSFFit"):
        from eosr.degrade import calibrate

        return getattr(calibrate, name)
    raise AttributeError(name)
