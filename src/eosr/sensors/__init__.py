"""Sensor catalog: real sensors, their bands, GSD, wavelengths and MTF at Nyquist.

>>> from eosr.sensors import get_sensor
>>> get_sensor("sentinel2").band("B4").mtf_nyquist
0.233
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from eosr.errors import SensorError
from eosr.sensors.catalog import BUILTIN
from eosr.sensors.model import Band, Sensor, normalise_band_name

__all__ = ["Band", "Sensor", "get_sensor", "list_sensors", "load_sensor", "sensor_from_dict", "normalise_band_name"]


def list_sensors() -> list[Sensor]:
    """All built-in sensors."""
    return list(BUILTIN)


def get_sensor(name: str | Sensor | Path) -> Sensor:
    """A built-in sensor by name or alias (case-insensitive), a :class:`Sensor`, or a TOML file path."""
    if isinstance(name, Sensor):
        return name
    p = Path(str(name))
    if p.suffix.lower() == ".toml":
        return load_sensor(p)
    key = str(name).strip().lower()
    for s in BUILTIN:
        if key == s.name or key in s.aliases:
            return s
    known = ", ".join(s.name for s in BUILTIN)
    raise SensorError(f"unknown sensor {name!r}; known: {known} (or a .toml file)")


def sensor_from_dict(d: dict[str, Any]) -> Sensor:
    """Build a user-defined sensor from a mapping (the structure of a sensor TOML file).

    Keys: ``name``, optional ``description``, and ``bands``: a list of tables with ``name``,
    ``gsd_m``, ``mtf_nyquist`` and optional ``center_nm``, ``bandwidth_nm``, ``source``.
    """
    try:
        bands = tuple(
            Band(
                name=normalise_band_name(str(b["name"])),
                gsd_m=float(b["gsd_m"]),
                center_nm=float(b.get("center_nm", 0.0)),
                bandwidth_nm=float(b.get("bandwidth_nm", 0.0)),
                mtf_nyquist=float(b["mtf_nyquist"]),
                source=str(b.get("source", "user-defined")),
            )
            for b in d["bands"]
        )
        name = str(d["name"])
    except KeyError as e:
        raise SensorError(f"sensor definition is missing the key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise SensorError(f"invalid sensor definition: {e}") from None
    if not bands:
        raise SensorError("a sensor needs at least one band")
    return Sensor(name=name, description=str(d.get("description", "user-defined sensor")), bands=bands)


def load_sensor(path: str | Path) -> Sensor:
    """Load a user-defined sensor from a TOML file (see :func:`sensor_from_dict` for the keys)."""
    p = Path(path)
    try:
        d = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SensorError(f"sensor file not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise SensorError(f"{p}: invalid TOML: {e}") from None
    return sensor_from_dict(d)
