"""One vocabulary for choosing the operator, shared by evaluate, simulate, sr, calibrate and benchmark.

``operator`` is ``"full"`` (the LR sensor's whole PSF: HR is a scene sharper than the sensor),
``"wald"`` (the extra blur sqrt(r^2 - 1) sigma for an HR that already carries the sensor's MTF, Wald
et al. 1997), or the path of a sensor / calibration file (``eosr calibrate --write-sensor``). Precedence
(docs/physics.md, "Which operator"): the explicit option, then the ``eosr_operator`` tag that
``eosr simulate`` wrote into the LR file, then the caller's default (``full`` for evaluation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eosr.degrade.operator import Degradation
from eosr.errors import SensorError

MODES = ("full", "wald")
TAG = "eosr_operator"


@dataclass(frozen=True)
class OperatorChoice:
    """The operator picked and where the choice came from (recorded with every result)."""

    operator: Degradation | None
    mode: str  # "full", "wald", a file path, "tag", or "none"
    source: str  # "option", "tag", "default"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record: mode, source and the operator's description."""
        return {"mode": self.mode, "source": self.source,
                "operator": self.operator.describe() if self.operator is not None else None}


def check_mode(operator: str | None) -> str | None:
    """Validate an ``--operator`` value: ``full``, ``wald`` or an existing .toml file (one-line error)."""
    if operator is None or operator in MODES:
        return operator
    p = Path(operator)
    if p.suffix.lower() != ".toml":
        raise SensorError(f"--operator must be 'full', 'wald' or a sensor file (.toml), got {operator!r}")
    if not p.is_file():
        raise SensorError(f"operator file not found: {p}")
    return operator


def operator_from_tag(tag: str | None) -> Degradation | None:
    """The operator described by an ``eosr_operator`` tag (None when absent), noise removed: the
    deterministic part D is what fidelity and physics-based models use."""
    if not tag:
        return None
    try:
        d = json.loads(tag)
    except json.JSONDecodeError:
        raise SensorError(f"unreadable {TAG} tag: {tag[:60]!r}") from None
    cls: type[Degradation] = Degradation
    if isinstance(d, dict) and d.get("block_centred"):  # fitted taps applied as stored (eosr calibrate)
        from eosr.degrade.calibrate import CalibratedDegradation

        cls = CalibratedDegradation
    op = cls.from_description(d)
    return op.with_options(noise_sigma=0.0, snr=None)


def resolve_operator(
    operator: str | None,
    *,
    sensor: Any = None,
    bands: Sequence[str] | None = None,
    scale: int | None = None,
    n_bands: int | None = None,
    tag: str | None = None,
    default: str | None = "full",
) -> OperatorChoice:
    """Pick the operator: explicit ``operator`` > the LR file's ``tag`` > ``default`` (module doc).

    ``full``/``wald`` need a ``sensor`` (name, file or :class:`eosr.sensors.Sensor`) and ``scale``;
    a sensor file path is itself the sensor. Returns ``OperatorChoice(None, "none", ...)`` when nothing
    defines an operator (no option, no tag, no sensor).
    """
    mode = check_mode(operator)
    if mode is not None:
        return OperatorChoice(_build(mode, sensor, bands, scale, n_bands), mode, "option")
    op = operator_from_tag(tag)
    if op is not None:
        if scale is not None and op.scale != scale:
            raise SensorError(f"the LR file's {TAG} tag is for scale {op.scale}, not {scale}: pass --operator")
        if n_bands is not None and op.n_bands not in (1, n_bands):
            raise SensorError(f"the LR file's {TAG} tag has {op.n_bands} band PSFs for {n_bands} bands: "
                              "pass --operator")
        return OperatorChoice(op, "tag", "tag")
    if default is None or sensor is None:
        return OperatorChoice(None, "none", "default")
    return OperatorChoice(_build(default, sensor, bands, scale, n_bands), default, "default")


def _build(mode: str, sensor: Any, bands: Sequence[str] | None, scale: int | None, n_bands: int | None
           ) -> Degradation:
    from eosr.errors import ScaleError

    if scale is None:
        raise ScaleError("the operator needs the scale factor: pass --scale (or an LR image)")
    if mode in MODES:
        if sensor is None:
            raise SensorError(f"--operator {mode} needs a sensor (--sensor NAME or a sensor .toml)")
        op = Degradation.from_sensor(sensor, bands, scale, wald=mode == "wald")
    else:  # a sensor file: a fitted kernel (eosr calibrate --write-sensor) is applied exactly
        from eosr.degrade.calibrate import operator_from_file

        op = operator_from_file(mode, bands, scale)
    if n_bands is not None and op.n_bands != n_bands:
        raise SensorError(f"the operator has {op.n_bands} band PSFs for an image of {n_bands} bands: name the "
                          "image's bands (--bands)")
    return op
