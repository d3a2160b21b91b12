"""Sensor catalog: real sensors, their bands, GSD, wavelengths and MTF at Nyquist.

>>> from eosr.sensors import get_sensor
>>> get_sensor("sentinel2").band("B4").mtf_nyquist
0.233
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from eosr.errors import SensorError
from eosr.sensors.catalog import BUILTIN
from eosr.sensors.model import Band, Sensor, normalise_band_name

__all__ = ["Band", "Sensor", "get_sensor", "list_sensors", "load_sensor", "sensor_from_dict", "normalise_band_name",
           "write_sensor", "sensor_to_toml"]


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
    ``gsd_m``, ``mtf_nyquist`` and optional ``center_nm``, ``bandwidth_nm``, ``source``; a calibrated
    band (``eosr calibrate --write-sensor``) adds ``kernel_y``, ``kernel_x`` (taps), ``kernel_scale``,
    ``kernel_family`` and a ``calibration`` table; the sensor may carry a top-level ``calibration`` table.
    """

    def taps(v: Any) -> tuple[float, ...] | None:
        return None if v is None else tuple(float(t) for t in v)

    try:
        bands = tuple(
            Band(
                name=normalise_band_name(str(b["name"])),
                gsd_m=float(b["gsd_m"]),
                center_nm=float(b.get("center_nm", 0.0)),
                bandwidth_nm=float(b.get("bandwidth_nm", 0.0)),
                mtf_nyquist=float(b["mtf_nyquist"]),
                source=str(b.get("source", "user-defined")),
                kernel_y=taps(b.get("kernel_y")),
                kernel_x=taps(b.get("kernel_x")),
                kernel_scale=None if b.get("kernel_scale") is None else int(b["kernel_scale"]),
                kernel_family=None if b.get("kernel_family") is None else str(b["kernel_family"]),
                calibration=dict(b["calibration"]) if "calibration" in b else None,
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
    names = [b.name for b in bands]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SensorError(f"sensor {name!r} names band {', '.join(dup)} twice (names are case-insensitive, "
                          "B2 = B02)")
    cal = d.get("calibration")
    return Sensor(name=name, description=str(d.get("description", "user-defined sensor")), bands=bands,
                  calibration=dict(cal) if isinstance(cal, dict) else None)


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


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SensorError(f"cannot write the non-finite value {v} to a sensor file")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + " }"
    raise SensorError(f"cannot write a {type(v).__name__} to a sensor file")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(str(k))


def sensor_to_toml(d: dict[str, Any]) -> str:
    """TOML text of a sensor mapping (the structure :func:`sensor_from_dict` reads; ``None`` values dropped).

    Scalars and lists at the top, then ``[calibration]``-style tables, then one ``[[bands]]`` table per
    band (nested mappings inline).
    """
    out: list[str] = []
    tables = []
    for k, v in d.items():
        if v is None or k == "bands":
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            out.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        out += ["", f"[{_toml_key(k)}]"] + [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items() if b is not None]
    for b in d.get("bands", []):
        out += ["", "[[bands]]"] + [f"{_toml_key(a)} = {_toml_value(x)}" for a, x in b.items() if x is not None]
    return "\n".join(out) + "\n"


def write_sensor(path: str | Path, d: dict[str, Any]) -> Path:
    """Write a sensor mapping as a TOML file (atomically) after checking that it loads; returns the path."""
    from eosr.io.raster import atomic_path

    text = sensor_to_toml(d)
    sensor_from_dict(tomllib.loads(text))  # what is written must load
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(text)
    return p
