"""Sensor and band records, and the band-name rules shared by every reader and writer."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from eosr.errors import SensorError


@dataclass(frozen=True)
class Band:
    """One spectral band of a sensor.

    ``mtf_nyquist`` is the system MTF (optics + detector + motion) at the Nyquist frequency
    ``1 / (2 * gsd_m)`` of the band's own sampling grid.

    A band calibrated by ``eosr calibrate --write-sensor`` also carries its fitted separable kernel:
    ``kernel_y``/``kernel_x`` (1-D taps on the HR grid, centred on the LR block centre, sum 1) valid at
    scale ``kernel_scale``, the ``kernel_family`` and the fit's ``calibration`` record (quality,
    uncertainties, "unreliable" flag); :func:`eosr.degrade.calibrate.operator_from_file` applies them.
    """

    name: str
    gsd_m: float
    center_nm: float
    bandwidth_nm: float
    mtf_nyquist: float
    source: str = ""
    assumed_mtf: bool = False
    kernel_y: tuple[float, ...] | None = None
    kernel_x: tuple[float, ...] | None = None
    kernel_scale: int | None = None
    kernel_family: str | None = None
    calibration: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if (self.kernel_y is None) != (self.kernel_x is None) or (self.kernel_y is not None
                                                                  and self.kernel_scale is None):
            raise SensorError(f"band {self.name}: a calibrated kernel needs kernel_y, kernel_x and kernel_scale")
        for k in (self.kernel_y, self.kernel_x):
            if k is not None and (len(k) < 1 or not all(math.isfinite(v) for v in k) or not sum(k) > 0):
                raise SensorError(f"band {self.name}: kernel taps must be finite with a positive sum")
        if self.kernel_scale is not None and (int(self.kernel_scale) != self.kernel_scale or self.kernel_scale < 1):
            raise SensorError(f"band {self.name}: kernel_scale must be an integer >= 1, got {self.kernel_scale}")
        if not 0.0 < self.mtf_nyquist < 1.0:
            raise SensorError(f"band {self.name}: MTF at Nyquist must lie in (0, 1), got {self.mtf_nyquist}")
        if self.gsd_m <= 0:
            raise SensorError(f"band {self.name}: GSD must be positive, got {self.gsd_m}")


@dataclass(frozen=True)
class Sensor:
    """A sensor: a name, a description and its bands in canonical order."""

    name: str
    description: str
    bands: tuple[Band, ...]
    aliases: tuple[str, ...] = field(default=())
    source: str = ""
    calibration: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def band_names(self) -> list[str]:
        """Canonical band names in catalog order."""
        return [b.name for b in self.bands]

    def band(self, name: str) -> Band:
        """Return the band called ``name`` (case-insensitive, ``B2`` == ``B02``)."""
        key = normalise_band_name(name)
        for b in self.bands:
            if normalise_band_name(b.name) == key:
                return b
        raise SensorError(f"unknown band {name!r} for sensor {self.name}; known: {', '.join(self.band_names)}")

    def select(self, names: list[str] | str | None) -> list[Band]:
        """Bands by name (comma-separated string or list); ``None`` means all bands."""
        if names is None:
            return list(self.bands)
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        if not names:
            raise SensorError("empty band list")
        return [self.band(n.strip()) for n in names]


#: ``B2``, ``b02``, ``B8A``, optionally after one sensor or product prefix (``VENUS_B1``, ``SR_B4``, ``S2_B8A``)
_B_NUM = re.compile(r"^(?:[A-Z][A-Z0-9]*[_\-\s])?B0*(\d+)(A?)$")


def normalise_band_name(name: str) -> str:
    """Canonical spelling of a band name: upper case, ``B2``/``b02`` -> ``B02``, ``b8a`` -> ``B8A``, and one
    sensor or product prefix dropped (``VENUS_B1`` -> ``B01``, Landsat Collection 2 ``SR_B4`` -> ``B04``), so
    that files whose band descriptions carry one are read by the sensor's band names."""
    n = name.strip().upper()
    m = _B_NUM.match(n)
    if not m:
        return n
    num, a = m.groups()
    return f"B{int(num)}A" if a else f"B{int(num):02d}"
