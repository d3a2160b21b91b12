"""Sensor and band records, and the band-name rules shared by every reader and writer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from eosr.errors import SensorError


@dataclass(frozen=True)
class Band:
    """One spectral band of a sensor.

    ``mtf_nyquist`` is the system MTF (optics + detector + motion) at the Nyquist frequency
    ``1 / (2 * gsd_m)`` of the band's own sampling grid.
    """

    name: str
    gsd_m: float
    center_nm: float
    bandwidth_nm: float
    mtf_nyquist: float
    source: str = ""
    assumed_mtf: bool = False

    def __post_init__(self) -> None:
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


_B_NUM = re.compile(r"^B0*(\d+)(A?)$")


def normalise_band_name(name: str) -> str:
    """Canonical spelling of a band name: upper case, ``B2``/``b02`` -> ``B02``, ``b8a`` -> ``B8A``."""
    n = name.strip().upper()
    m = _B_NUM.match(n)
    if not m:
        return n
    num, a = m.groups()
    return f"B{int(num)}A" if a else f"B{int(num):02d}"
