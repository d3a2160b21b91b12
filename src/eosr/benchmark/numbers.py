"""Number formats of the report and the terminal: one format per column, "≈ 0" below the noise floor.

A column (or a row of one metric) is formatted as a whole: every value gets the same number of
decimals, enough for 4 significant digits of the largest magnitude and 2 of the smallest (at most 6);
scientific notation for the whole column when its largest magnitude is below 1e-3 or above 1e5.
A value smaller than half the column's last shown digit (or than :data:`NOISE_FLOOR`, floating-point
noise of reflectance arithmetic) prints as "≈ 0" instead of "0.000000", "-0.00" or "-5.782e-19"; a PSNR
at the cap prints as "≥ cap".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: Magnitudes below this are floating-point noise (reflectance is O(1), float64 eps is 2.2e-16).
NOISE_FLOOR = 1e-9


def fmt(v: float | None, digits: int = 4) -> str:
    """One value alone: ``digits`` significant decimals, '–' for missing (no column context)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    f = float(v)
    if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}" if abs(f) >= 1 else f"{f:.{digits}f}"


@dataclass(frozen=True)
class ColumnFormat:
    """The format of one column: fixed ``decimals`` or scientific (``sci``), its "≈ 0" floor and PSNR cap."""

    decimals: int = 4
    sci: bool = False
    floor: float = NOISE_FLOOR
    cap: float | None = None

    def __call__(self, v: float | None, signed: bool = False) -> str:
        """The shown text of ``v`` ('–' for missing)."""
        if v is None or not math.isfinite(float(v)):
            return "–"
        f = float(v)
        if abs(f) < self.floor:
            return "≈ 0"
        if self.cap is not None and f >= self.cap:
            return f"≥ {self.cap:g} (cap)"
        sign = "+" if signed and f > 0 else ""
        return sign + (f"{f:.3e}" if self.sci else f"{f:.{self.decimals}f}")


def _magnitudes(values: Iterable[float | None], cap: float | None) -> list[float]:
    vals = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    return [v for v in vals if v >= NOISE_FLOOR and (cap is None or v < cap)]


def column_format(values: Iterable[float | None], cap: float | None = None,
                  bounds: Iterable[float | None] = ()) -> ColumnFormat:
    """The format shared by ``values`` and their CI ``bounds`` (bounds widen the range, they do not ask
    for more decimals; see the module doc)."""
    vals = _magnitudes(values, cap)
    allv = vals + _magnitudes(bounds, cap)
    if not allv:
        return ColumnFormat(cap=cap)
    m = max(allv)
    if m < 1e-3 or m >= 1e5:
        return ColumnFormat(sci=True, cap=cap)
    need = [3 - math.floor(math.log10(m))] + ([1 - math.floor(math.log10(min(vals)))] if vals else [])
    decimals = min(6, max(0, *need))
    return ColumnFormat(decimals, floor=max(NOISE_FLOOR, 0.5 * 10.0 ** -decimals), cap=cap)


def formatter(values: Iterable[float | None], metric: str = "", bounds: Iterable[float | None] = ()
              ) -> ColumnFormat:
    """:func:`column_format` with the PSNR cap for PSNR-type metrics (docs/metrics.md, "One PSNR cap")."""
    cap = None
    if metric.startswith("psnr"):
        from eosr.metrics.base import PSNR_CAP_DB

        cap = float(PSNR_CAP_DB)
    return column_format(values, cap, bounds)
