"""Predictive uncertainty of SR models: MC dropout, deep ensembles and variance heads.

Epistemic variance over T stochastic predictions y_t (dropout masks or ensemble members):
    var_epi = (1/T) sum_t y_t^2 - ((1/T) sum_t y_t)^2        (computed with Welford's update)
Aleatoric variance from a heteroscedastic head s (Kendall & Gal, NeurIPS 2017; trained with the NLLs of
:mod:`eosr.losses.nll`):
    Gaussian s = log sigma^2  -> var = exp(s);   Laplace s = log b -> var = 2 b^2 = 2 exp(2 s)
Total predictive variance = var_epi + (1/T) sum_t var_alea,t.  Maps are per pixel and per band,
in the units of the SR output (reflectance). MC dropout: Gal & Ghahramani, ICML 2016; deep
ensembles: Lakshminarayanan et al., NeurIPS 2017.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eosr._arrays import as_batch, like, to_tensor, unbatch
from eosr.errors import ModelError, ShapeError

HEADS = ("gaussian", "laplace")
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


@dataclass
class Uncertainty:
    """Mean prediction and variance maps (same shape and array type as the SR output)."""

    mean: Any
    epistemic_var: Any
    aleatoric_var: Any
    n_samples: int
    method: str

    @property
    def total_var(self) -> Any:
        """epistemic + mean aleatoric variance."""
        return self.epistemic_var + self.aleatoric_var

    @property
    def std(self) -> Any:
        """Total predictive standard deviation (reflectance units)."""
        v = self.total_var
        return np.sqrt(v) if isinstance(v, np.ndarray) else torch.sqrt(v)

    @property
    def epistemic_std(self) -> Any:
        """Standard deviation of the epistemic part alone."""
        v = self.epistemic_var
        return np.sqrt(v) if isinstance(v, np.ndarray) else torch.sqrt(v)

    @property
    def aleatoric_std(self) -> Any:
        """Standard deviation of the aleatoric part alone."""
        v = self.aleatoric_var
        return np.sqrt(v) if isinstance(v, np.ndarray) else torch.sqrt(v)


def head_variance(s: torch.Tensor, head: str = "gaussian") -> torch.Tensor:
    """Variance from a variance-head output: Gaussian s = log sigma^2 -> e^s; Laplace s = log b -> 2 e^(2s)."""
    if head == "gaussian":
        return torch.exp(s)
    if head == "laplace":
        return 2.0 * torch.exp(2.0 * s)
    raise ModelError(f"unknown variance head {head!r}; expected one of {HEADS}")


def split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split a model output into (sr, s): a tensor, a (sr, s) pair, or a dict with ``sr`` and
    ``log_var`` / ``log_scale`` / ``s``. ``s`` is None for a model without a variance head."""
    if isinstance(out, torch.Tensor):
        return out, None
    if isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(o, torch.Tensor) for o in out):
        return out[0], out[1]
    if isinstance(out, Mapping) and "sr" in out:
        for k in ("log_var", "log_scale", "s", "logvar"):
            if k in out:
                return out["sr"], out[k]
        return out["sr"], None
    raise ModelError(f"cannot read the model output of type {type(out).__name__}: expected a tensor, "
                     "an (sr, log_variance) pair or a dict with 'sr'")


def infer_head(model: Any, default: str = "gaussian") -> str:
    """The variance-head kind a model declares (``spec.extra['variance_head']`` or ``model.variance_head``)."""
    spec = getattr(model, "spec", None)
    extra = getattr(spec, "extra", None) or {}
    kind = extra.get("variance_head") or getattr(model, "variance_head", None)
    if isinstance(kind, str) and kind in HEADS:
        return kind
    return default


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model`` with a drop probability > 0."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and float(getattr(m, "p", 0.0)) > 0.0]


@contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode everywhere (batch norm frozen) except the dropout layers; restores the modes afterwards."""
    drops = dropout_modules(model)
    if not drops:
        raise ModelError(f"MC dropout needs dropout layers with p > 0, but {type(model).__name__} has none "
                         "(build it with dropout, or use an ensemble / a variance head instead)")
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for m in drops:
            m.train()
        yield model
    finally:
        for m, t in modes.items():
            m.train(t)


class _Welford:
    """Running mean and variance in float64 (exactly zero spread for identical samples)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.alea: torch.Tensor | None = None

    def add(self, y: torch.Tensor, var: torch.Tensor | None) -> None:
        y = y.detach().to(torch.float64)
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = y.clone(), torch.zeros_like(y)
            self.alea = torch.zeros_like(y)
        elif self.mean.shape != y.shape:
            raise ShapeError(f"stochastic predictions differ in shape: {tuple(self.mean.shape)} vs {tuple(y.shape)}")
        assert self.m2 is not None and self.alea is not None
        d = y - self.mean
        self.mean += d / self.n
        self.m2 += d * (y - self.mean)
        if var is not None:
            self.alea += (var.detach().to(torch.float64) - self.alea) / self.n

    def result(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.mean is not None and self.m2 is not None and self.alea is not None
        epi = torch.clamp(self.m2 / self.n, min=0.0)
        return self.mean.to(dtype), epi.to(dtype), self.alea.to(dtype)


def _prep_input(lr: Any) -> tuple[torch.Tensor, bool]:
    t = to_tensor(lr)
    if not t.is_floating_point():
        t = t.float()
    b, was3d = as_batch(t, "LR input")
    return torch.nan_to_num(b, nan=0.0) if torch.isnan(b).any() else b, was3d


def _finish(acc: _Welford, lr: Any, was3d: bool, dtype: torch.dtype, method: str) -> Uncertainty:
    mean, epi, alea = acc.result(dtype)
    return Uncertainty(like(unbatch(mean, was3d), lr), like(unbatch(epi, was3d), lr),
                       like(unbatch(alea, was3d), lr), acc.n, method)


def has_variance_head(model: Any) -> bool:
    """Whether ``model`` declares a variance head (eosr models: ``variance_head`` = "gaussian"/"laplace")."""
    return getattr(model, "variance_head", None) in HEADS


def call_model(model: Callable[..., Any], x: torch.Tensor) -> Any:
    """Run a model, asking eosr models with a variance head for it (``return_logvar=True``)."""
    return model(x, return_logvar=True) if has_variance_head(model) else model(x)


def _run(model: Callable[..., Any], x: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    sr, s = split_output(call_model(model, x))
    return sr, (head_variance(s, head) if s is not None else None)


def predict_with_head(model: nn.Module, lr: Any, head: str | None = None) -> Uncertainty:
    """One deterministic pass of a model with a variance head: aleatoric variance only."""
    x, was3d = _prep_input(lr)
    kind = head or infer_head(model)
    acc = _Welford()
    with torch.no_grad():
        sr, var = _run(model, x, kind)
    if var is None:
        raise ModelError(f"{type(model).__name__} has no variance head (its output is a single tensor)")
    acc.add(sr, var)
    return _finish(acc, lr, was3d, x.dtype, f"variance head ({kind})")


def mc_dropout(model: nn.Module, lr: Any, n_samples: int = 16, seed: int = 0, head: str | None = None) -> Uncertainty:
    """MC dropout (Gal & Ghahramani 2016): ``n_samples`` passes with only dropout active.

    Epistemic variance = spread of the passes; if the model also has a variance head, its mean
    variance is the aleatoric part. Seeded (the global RNG state is restored afterwards).
    A model without dropout raises :class:`eosr.errors.ModelError`.
    """
    if n_samples < 2:
        raise ModelError(f"MC dropout needs at least 2 samples, got {n_samples}")
    x, was3d = _prep_input(lr)
    kind = head or infer_head(model)
    acc = _Welford()
    with mc_dropout_mode(model), torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(n_samples):
            acc.add(*_run(model, x, kind))
    return _finish(acc, lr, was3d, x.dtype, f"MC dropout (T={n_samples})")


def check_same_architecture(models: Sequence[nn.Module]) -> None:
    """Raise :class:`ModelError` unless all models share class and parameter shapes (one architecture)."""
    if len(models) < 2:
        raise ModelError(f"a deep ensemble needs at least 2 members, got {len(models)}")
    ref = models[0]
    ref_shapes = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    for i, m in enumerate(models[1:], start=1):
        if type(m) is not type(ref):
            raise ModelError(f"ensemble member {i} is a {type(m).__name__}, member 0 a {type(ref).__name__}")
        if [(k, tuple(v.shape)) for k, v in m.state_dict().items()] != ref_shapes:
            raise ModelError(f"ensemble member {i} has other parameter shapes than member 0 (another architecture)")


def ensemble(models: Sequence[nn.Module], lr: Any, head: str | None = None) -> Uncertainty:
    """Deep ensemble (Lakshminarayanan et al. 2017): one eval-mode pass per member of one architecture."""
    check_same_architecture(models)
    x, was3d = _prep_input(lr)
    kind = head or infer_head(models[0])
    acc = _Welford()
    modes = [m.training for m in models]
    try:
        with torch.no_grad():
            for m in models:
                m.eval()
                acc.add(*_run(m, x, kind))
    finally:
        for m, t in zip(models, modes, strict=True):
            m.train(t)
    return _finish(acc, lr, was3d, x.dtype, f"ensemble (M={len(models)})")


def ensemble_from_state_dicts(template: nn.Module,
                              state_dicts: Sequence[Mapping[str, torch.Tensor]]) -> list[nn.Module]:
    """Members of one architecture: copies of ``template`` loaded with each checkpoint's weights (strict)."""
    out = []
    for i, sd in enumerate(state_dicts):
        m = copy.deepcopy(template)
        try:
            m.load_state_dict(dict(sd), strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise ModelError(f"checkpoint {i} does not fit {type(template).__name__}: {first}") from None
        out.append(m)
    return out


class UncertainSR(nn.Module):
    """Give any SR model a ``forward_with_uncertainty(lr) -> (sr, std)`` method.

    ``method``: ``"mc_dropout"`` (needs dropout), ``"ensemble"`` (``members`` of one architecture),
    ``"head"`` (variance head only) or ``"auto"`` (ensemble if members, else MC dropout if the model
    has dropout, else its variance head). ``std`` is the total predictive standard deviation,
    multiplied by ``calibration.factor`` when a conformal calibration is attached.
    ``forward(lr)`` returns the mean prediction, so the wrapper is itself an SR model.
    """

    def __init__(self, model: nn.Module, method: str = "auto", n_samples: int = 16,
                 members: Sequence[nn.Module] | None = None, head: str | None = None, seed: int = 0,
                 calibration: Any = None) -> None:
        super().__init__()
        self.model = model
        self.members = nn.ModuleList(list(members or []))
        if method == "auto":
            if len(self.members) > 1:
                method = "ensemble"
            elif dropout_modules(model):
                method = "mc_dropout"
            else:
                method = "head"
        if method not in ("mc_dropout", "ensemble", "head"):
            raise ModelError(f"unknown uncertainty method {method!r}")
        if method == "mc_dropout" and not dropout_modules(model):
            raise ModelError(f"MC dropout needs dropout layers, but {type(model).__name__} has none")
        if method == "ensemble":
            check_same_architecture(list(self.members))
        self.method = method
        self.n_samples = int(n_samples)
        self.head = head
        self.seed = seed
        self.calibration = calibration
        self.spec = getattr(model, "spec", None)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], method: str = "auto", n_samples: int = 16,
                        members: Sequence[str | os.PathLike[str]] = (), **kw: Any) -> UncertainSR:
        """Load an eosr checkpoint or shipped weights name (and ensemble members) with
        :func:`eosr.models.resolve_model`; the conformal calibration ``<stem>.calibration.json`` beside a
        checkpoint is attached when present, else the one stored in its card (e.g. ``carn_m_s2_x2_unc``)."""
        from eosr.models.registry import is_architecture, resolve_model
        from eosr.trust.calibration import ConformalCalibration, calibration_path, card_calibration

        if is_architecture(str(path)):
            raise ModelError(f"{path} is an architecture name, not trained weights: give a checkpoint or a "
                             "shipped weights name")
        model = resolve_model(path if isinstance(path, str) else Path(path))
        mems = [resolve_model(p if isinstance(p, str) else Path(p)) for p in members]
        if mems:
            mems = [model, *mems]
        cal_file = calibration_path(path)
        cal = ConformalCalibration.load(cal_file) if cal_file.is_file() else card_calibration(model.card)
        return cls(model, method, n_samples, mems, calibration=cal, **kw)

    def uncertainty(self, lr: Any) -> Uncertainty:
        """Full decomposition (mean, epistemic and aleatoric variance) for ``lr``."""
        if self.method == "ensemble":
            return ensemble(list(self.members), lr, self.head)
        if self.method == "mc_dropout":
            return mc_dropout(self.model, lr, self.n_samples, self.seed, self.head)
        return predict_with_head(self.model, lr, self.head)

    def forward_with_uncertainty(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean SR, total std) on the SR grid, in the input's array type; calibrated if a calibration is set."""
        u = self.uncertainty(lr)
        std = u.std
        if self.calibration is not None:
            std = std * float(self.calibration.factor)
        return u.mean, std

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """The mean prediction."""
        return self.uncertainty(lr).mean

