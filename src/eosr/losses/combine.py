"""Any weighted sum of eosr losses, built from a config:

    L = sum_k w_k L_k(sr, batch)

Each term is ``{name, weight, **params}`` with name in :data:`LOSS_NAMES`. Terms that need the sensor
operator (``lr_fidelity``, ``hr_fidelity``) get it from :func:`build_loss`; NLL terms need the model's
log-scale output; ``shift_bias_l1`` is the multi-image loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError

LOSS_NAMES = (
    "l1", "l2", "smooth_l1", "lr_fidelity", "hr_fidelity", "perceptual", "gaussian_nll", "laplace_nll",
    "shift_bias_l1",
)
_PARAMS: dict[str, set[str]] = {
    "l1": set(),
    "l2": set(),
    "smooth_l1": {"beta"},
    "lr_fidelity": {"kind"},
    "hr_fidelity": {"kind"},
    "perceptual": {"layers", "weights", "gain", "rgb"},
    "gaussian_nll": set(),
    "laplace_nll": set(),
    "shift_bias_l1": {"border", "detach_bias"},
}


@dataclass
class LossTerm:
    """One weighted term: ``weight * fn(sr, hr, lr, mask, log_scale)``."""

    name: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)
    fn: Callable[..., torch.Tensor] | None = None


class CompositeLoss:
    """Weighted sum of loss terms; ``__call__`` returns (total, {name: unweighted value})."""

    def __init__(self, terms: Sequence[LossTerm], operator: Degradation | None = None) -> None:
        if not terms:
            raise ConfigError("the loss needs at least one term")
        self.terms = list(terms)
        self.operator = operator
        for t in self.terms:
            t.fn = self._make(t)

    @property
    def needs_log_scale(self) -> bool:
        """Whether a term needs the model's log-scale (variance head) output."""
        return any(t.name.endswith("_nll") for t in self.terms)

    def _make(self, t: LossTerm) -> Callable[..., torch.Tensor]:
        from eosr.losses import fidelity, multi, nll, pixel

        p = t.params
        if t.name in ("lr_fidelity", "hr_fidelity") and self.operator is None:
            raise ConfigError(f"loss {t.name!r} needs the sensor operator (set the data's sensor)")
        op = self.operator
        if t.name == "l1":
            return lambda sr, hr, lr, m, s: pixel.l1_loss(sr, hr, m)
        if t.name == "l2":
            return lambda sr, hr, lr, m, s: pixel.l2_loss(sr, hr, m)
        if t.name == "smooth_l1":
            if "beta" not in p:
                raise ConfigError("smooth_l1 needs an explicit beta in data units (e.g. beta = 0.01)")
            beta = float(p["beta"])
            return lambda sr, hr, lr, m, s: pixel.smooth_l1_loss(sr, hr, beta, m)
        if t.name == "lr_fidelity":
            kind = str(p.get("kind", "l1"))
            return lambda sr, hr, lr, m, s: fidelity.lr_fidelity_loss(sr, lr, op, None, kind)  # type: ignore[arg-type]
        if t.name == "hr_fidelity":
            kind = str(p.get("kind", "l1"))
            return lambda sr, hr, lr, m, s: fidelity.hr_fidelity_loss(sr, hr, op, m, kind)  # type: ignore[arg-type]
        if t.name == "perceptual":
            from eosr.losses.perceptual import PerceptualLoss

            net = PerceptualLoss(**p)
            return lambda sr, hr, lr, m, s: net(sr, hr, m)
        if t.name == "gaussian_nll":
            return lambda sr, hr, lr, m, s: nll.gaussian_nll(sr, _need_s(s, t.name), hr, m)
        if t.name == "laplace_nll":
            return lambda sr, hr, lr, m, s: nll.laplace_nll(sr, _need_s(s, t.name), hr, m)
        border = int(p.get("border", 3))
        detach = bool(p.get("detach_bias", False))
        return lambda sr, hr, lr, m, s: multi.shift_bias_invariant_l1(sr, hr, m, border, detach)

    def __call__(
        self,
        sr: torch.Tensor,
        hr: torch.Tensor,
        lr: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        log_scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), dtype=sr.dtype)
        parts: dict[str, float] = {}
        for t in self.terms:
            assert t.fn is not None
            v = t.fn(sr, hr, lr, mask, log_scale)
            total = total + t.weight * v
            parts[t.name] = float(v.detach())
        return total, parts


def _need_s(s: torch.Tensor | None, name: str) -> torch.Tensor:
    if s is None:
        raise ConfigError(f"loss {name!r} needs a model with a variance head (log-scale output)")
    return s


def build_loss(spec: Sequence[Mapping[str, Any]], operator: Degradation | None = None) -> CompositeLoss:
    """A :class:`CompositeLoss` from ``[{"name": ..., "weight": ..., **params}, ...]``."""
    return CompositeLoss(parse_terms(spec), operator)


def parse_terms(spec: Sequence[Mapping[str, Any]]) -> list[LossTerm]:
    """Check names, weights and options of a loss spec (nothing is built); one-line ConfigError."""
    if not spec:
        raise ConfigError("the loss needs at least one term")
    terms = []
    for i, item in enumerate(spec):
        d = dict(item)
        name = str(d.pop("name", ""))
        if name not in LOSS_NAMES:
            raise ConfigError(f"loss {i}: unknown name {name!r}; choose from {', '.join(LOSS_NAMES)}")
        w = d.pop("weight", 1.0)
        if not isinstance(w, (int, float)) or not w >= 0:
            raise ConfigError(f"loss {name!r}: weight must be a number >= 0, got {w!r}")
        extra = set(d) - _PARAMS[name]
        if extra:
            raise ConfigError(f"loss {name!r}: unknown option(s) {', '.join(sorted(extra))}")
        if name == "smooth_l1" and "beta" not in d:
            raise ConfigError("smooth_l1 needs an explicit beta in data units (e.g. beta = 0.01)")
        terms.append(LossTerm(name, float(w), d))
    return terms
