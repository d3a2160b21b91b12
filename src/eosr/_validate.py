"""Checks of numeric options and config values: finite, within a range, one line naming the option.

Used by the CLI commands on every numeric option before any work (``--gain inf``, ``--noise nan``,
``--frames 100000`` are refused with exit code 2) and available to the API.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from eosr.errors import ConfigError, EosrError

N = TypeVar("N", bound="float | None")


def _range(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f" <= {hi:g}"
    return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"


def check_number(name: str, value: N, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 integer: bool = False, error: type[EosrError] = ConfigError) -> N:
    """Return ``value`` (None passes) if it is a finite number (an integer when ``integer``) within
    ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``); else raise ``error`` with one line naming ``name``."""
    if value is None:
        return value
    kind = "an integer" if integer else "a finite number"
    want = f"{name} must be {kind}{_range(lo, hi, lo_open)}"
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise error(f"{want}, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(f) or (integer and f != int(f)):
        raise error(f"{want}, got {value!r}")
    if (lo is not None and (f < lo or (lo_open and f == lo))) or (hi is not None and f > hi):
        raise error(f"{want}, got {value!r}")
    return value


def check_numbers(checks: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    """:func:`check_number` on each ``{name: (value, options)}``, in order."""
    for name, (value, kw) in checks.items():
        check_number(name, value, **kw)


def check_dn(dn_scale: float | None, dn_offset: float | None) -> None:
    """``--dn-scale`` finite and non-zero, ``--dn-offset`` finite."""
    check_number("--dn-scale", dn_scale)
    check_number("--dn-offset", dn_offset)
    if dn_scale is not None and float(dn_scale) == 0.0:
        raise ConfigError("--dn-scale must not be 0")


def check_scale_option(name: str, value: Any) -> int | None:
    """A scale option as an int in 1..``eosr.physics.psf.MAX_SCALE`` (None passes); ScaleError naming ``name``."""
    from eosr.errors import ScaleError
    from eosr.physics.psf import check_scale

    if value is None:
        return None
    try:
        return check_scale(value)
    except ScaleError as e:
        raise ScaleError(f"{name}: {e}") from None
