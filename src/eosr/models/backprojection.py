"""Iterative back-projection with the eosr sensor operator (Irani & Peleg, "Improving resolution by image
registration", CVGIP: Graphical Models and Image Processing 53(3), 1991).

    x_0 = up(y),   x_{k+1} = x_k + step * up(y - D(x_k))

with D = :meth:`eosr.degrade.Degradation.downsample` (PSF blur sampled at LR block centres, noise-free) and
``up`` the bicubic interpolation on the same pixel-is-area grid. Each iteration moves x towards the set
{x : D(x) = y}, so the LR fidelity ||y - D(x_k)|| decreases with k (LR-consistent). With noisy LR the
high frequencies it restores are amplified noise: the best iteration count depends on the noise level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from eosr.degrade.operator import Degradation
from eosr.errors import ModelError
from eosr.models.base import ModelSpec, SRNet, check_bands
from eosr.models.interp import RECEPTIVE, upsample
from eosr.physics.psf import check_scale, kernel_length


def make_operator(scale: int, bands: Sequence[str] | None, *, sensor: str | None = None,
                  mtf: float | Sequence[float] | None = None, sigmas: Sequence[float] | None = None,
                  wald: bool = False) -> Degradation:
    """The operator D of a model: from a catalog sensor and its bands, from MTF values, or from PSF sigmas."""
    given = sum(v is not None for v in (sensor, mtf, sigmas))
    if given > 1:
        raise ModelError("give at most one of sensor, mtf and sigmas for the operator")
    if sensor is not None:
        if bands is None:
            raise ModelError(f"the {sensor} operator needs band names (bands=[...])")
        return Degradation.from_sensor(sensor, list(bands), scale, wald=wald)
    if sigmas is not None:
        return Degradation(scale=scale, sigmas=tuple(float(s) for s in sigmas))
    return Degradation.from_mtf(0.3 if mtf is None else mtf, scale)


def check_model_operator(operator: Degradation, scale: int, bands: Sequence[str] | None, n_bands: int) -> None:
    """Refuse (:class:`ModelError`, one line) an operator that does not fit a model of ``scale`` and
    ``bands``: another scale, a PSF count other than 1 or ``n_bands``, other band names, or a non-Gaussian PSF."""
    if not isinstance(operator, Degradation):
        raise ModelError(f"the operator must be an eosr Degradation, got {type(operator).__name__}")
    if operator.scale != scale:
        raise ModelError(f"the operator is for scale x{operator.scale}, the model is x{scale}")
    if operator.n_bands not in (1, n_bands):
        raise ModelError(f"the operator has {operator.n_bands} band PSFs, the model has {n_bands} bands")
    if operator.bands is not None and bands is not None and operator.n_bands == n_bands:
        from eosr.sensors import normalise_band_name

        have = [normalise_band_name(b) for b in operator.bands]
        want = [normalise_band_name(b) for b in bands]
        if have != want:
            raise ModelError(f"the operator is for bands {','.join(have)}, the model for {','.join(want)}")
    if operator.sigmas is None:
        raise ModelError("the model's back-projection needs a Gaussian PSF operator (sigmas), not explicit kernels")


class BackProjection(SRNet):
    """Iterative back-projection (IBP) through the eosr operator: no parameters; ``iterations`` and ``step``."""

    def __init__(
        self,
        scale: int = 2,
        bands: Sequence[str] | None = None,
        n_bands: int | None = None,
        *,
        iterations: int = 10,
        step: float = 1.0,
        sensor: str | None = None,
        mtf: float | Sequence[float] | None = None,
        sigmas: Sequence[float] | None = None,
        wald: bool = False,
        operator: Degradation | None = None,
    ) -> None:
        r = check_scale(scale)
        names, _ = check_bands(bands, n_bands, None)
        if iterations < 0 or not (0 < step <= 2) or not math.isfinite(step):
            raise ModelError(f"back-projection needs iterations >= 0 and 0 < step <= 2, got {iterations}, {step}")
        if operator is not None:
            if operator.sigmas is None:
                raise ModelError("back-projection from an operator object needs a Gaussian PSF (sigmas)")
            if operator.scale != r:
                raise ModelError(f"operator scale x{operator.scale} differs from the model scale x{r}")
            sigmas, sensor, mtf = operator.sigmas, None, None
        op = make_operator(r, names, sensor=sensor, mtf=mtf, sigmas=sigmas, wald=wald)
        kwargs = dict(scale=r, bands=list(names) if names else None, iterations=int(iterations), step=float(step),
                      sensor=sensor, mtf=mtf, sigmas=list(sigmas) if sigmas is not None else None, wald=wald)
        half_psf = max(kernel_length(s, r) for s in (op.sigmas or (1.0,))) / (2 * r)
        rf = int(math.ceil(RECEPTIVE["bicubic"] + iterations * (half_psf + RECEPTIVE["bicubic"])))
        spec = ModelSpec(name="backprojection", scale=r, bands=names, receptive_field=rf,
                         extra={"kind": "iterative back-projection", "paper": "Irani & Peleg 1991",
                                "operator": op.describe()})
        super().__init__(spec, {"model": "backprojection", "kwargs": kwargs}, None)
        self.operator = op
        self.scale = r
        self.iterations = int(iterations)
        self.step = float(step)

    def forward(self, lr: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        """x_K after K = ``iterations`` (default: the model's) back-projection steps."""
        self.check_input(lr)
        if self.operator.n_bands not in (1, lr.shape[1]):
            raise ModelError(f"back-projection operator has {self.operator.n_bands} band PSFs, input {lr.shape[1]}")
        x = upsample(lr, self.scale, "bicubic")
        for _ in range(self.iterations if iterations is None else int(iterations)):
            x = x + self.step * upsample(lr - self.operator.downsample(x), self.scale, "bicubic")
        return x

    def iterates(self, lr: torch.Tensor, iterations: int | None = None) -> list[torch.Tensor]:
        """[x_0, x_1, ..., x_K]: every iterate (to pick the best iteration count on validation data)."""
        self.check_input(lr)
        x = upsample(lr, self.scale, "bicubic")
        out = [x]
        for _ in range(self.iterations if iterations is None else int(iterations)):
            x = x + self.step * upsample(lr - self.operator.downsample(x), self.scale, "bicubic")
            out.append(x)
        return out


def backprojection(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None,
                   **kw: Any) -> BackProjection:
    """Iterative back-projection with the eosr operator (Irani & Peleg 1991); default operator MTF 0.3."""
    return BackProjection(scale, bands, n_bands, **kw)


def _sym_pad(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    """Half-sample symmetric extension (b a | a b c | c b) by ``p`` along ``dim`` (traceable, ONNX-friendly)."""
    if p == 0:
        return x
    n = x.shape[dim]
    if p > n:  # tiny input: gather with periodic-symmetric indices (eager only)
        from eosr.degrade.conv import symmetric_pad_index

        return x.index_select(dim, symmetric_pad_index(int(n), p, p, x.device))
    return torch.cat([x.narrow(dim, 0, p).flip(dim), x, x.narrow(dim, n - p, p).flip(dim)], dim)


class SpatialBackProjection(torch.nn.Module):
    """K back-projection steps x_{k+1} = x_k + step * up(y - D(x_k)), x_0 = up(y), in the spatial domain.

    D is the operator's separable Gaussian PSF (the same taps as :meth:`Degradation.downsample`, bounded
    support of ``kernel_length(sigma, r)`` HR taps, half-sample symmetric borders) as two depthwise strided
    ``conv2d``; ``up`` is bicubic (pixel-is-area grid). So it equals :class:`BackProjection` up to float
    rounding, is differentiable and exports to ONNX (no FFT). Its receptive field is bounded:
    :meth:`receptive_field` LR pixels (Irani & Peleg 1991).
    """

    taps_y: torch.Tensor
    taps_x: torch.Tensor

    def __init__(self, operator: Degradation, n_bands: int, iterations: int, step: float = 1.0) -> None:
        super().__init__()
        from eosr.physics.psf import gaussian_taps

        if operator.sigmas is None:
            raise ModelError("spatial back-projection needs a Gaussian PSF operator (sigmas)")
        if operator.shift != (0.0, 0.0):
            raise ModelError("spatial back-projection needs an operator without sub-pixel shift")
        if iterations < 0 or not (0 < step <= 2):
            raise ModelError(f"back-projection needs iterations >= 0 and 0 < step <= 2, got {iterations}, {step}")
        r = int(operator.scale)
        sig = list(operator.sigmas) * n_bands if len(operator.sigmas) == 1 else list(operator.sigmas)
        if len(sig) != n_bands:
            raise ModelError(f"the operator has {len(sig)} band PSFs but the model has {n_bands} bands")
        k = max(kernel_length(s, r) for s in sig)
        taps = torch.tensor(np.stack([gaussian_taps(s, k) for s in sig]), dtype=torch.float32)
        self.register_buffer("taps_y", taps[:, None, :, None].clone(), persistent=False)
        self.register_buffer("taps_x", taps[:, None, None, :].clone(), persistent=False)
        self.operator = operator
        self.scale, self.iterations, self.step = r, int(iterations), float(step)
        self.pad, self.n_bands, self.half_psf = (k - r) // 2, n_bands, k / (2 * r)

    def receptive_field(self) -> int:
        """Half-width (LR px) of the LR support of one output pixel: 2 + K (half PSF + 2) (bicubic: 2 px)."""
        return int(math.ceil(RECEPTIVE["bicubic"] + self.iterations * (self.half_psf + RECEPTIVE["bicubic"])))

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """D(x): separable PSF correlation sampled at the LR block centres (stride r)."""
        c = self.n_bands
        x = _sym_pad(_sym_pad(x, self.pad, -2), self.pad, -1)
        x = torch.nn.functional.conv2d(x, self.taps_y.to(x.dtype), stride=(self.scale, 1), groups=c)
        return torch.nn.functional.conv2d(x, self.taps_x.to(x.dtype), stride=(1, self.scale), groups=c)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """x_K for LR (B, C, h, w)."""
        return self.refine(upsample(lr, self.scale, "bicubic"), lr, self.iterations)

    def refine(self, x: torch.Tensor, lr: torch.Tensor, iterations: int) -> torch.Tensor:
        """``iterations`` steps x <- x + step up(y - D(x)) from the estimate ``x`` (B, C, r h, r w) of LR ``y``.

        From a network's output this is the data-consistency step of physics-guided SR (Irani & Peleg
        1991; as a refinement of a learned estimate, e.g. Haris et al., CVPR 2018): it removes the part of the
        error that D sees and keeps the estimate's null-space detail.
        """
        for _ in range(int(iterations)):
            x = x + self.step * upsample(lr - self.downsample(x), self.scale, "bicubic")
        return x

    def refine_field(self, iterations: int) -> int:
        """LR pixels that ``iterations`` refinement steps add to a receptive field (half PSF + bicubic each)."""
        return int(math.ceil(iterations * (self.half_psf + RECEPTIVE["bicubic"])))


def gaussian_equivalent(operator: Degradation) -> Degradation:
    """``operator`` itself if Gaussian, else the Gaussian PSF with the same MTF m_b at the LR Nyquist per band,
    sigma_b = r sqrt(-2 ln m_b) / pi (e.g. for a kernel fitted by ``eosr calibrate``; its shift is dropped)."""
    from eosr.physics.psf import sigma_from_mtf

    if operator.sigmas is not None:
        return operator
    mtf = operator.describe().get("mtf_at_lr_nyquist")
    if not isinstance(mtf, list) or not mtf or not all(isinstance(m, (int, float)) and 0 < m < 1 for m in mtf):
        raise ModelError("the operator's explicit kernels have no MTF at Nyquist in (0, 1): no Gaussian equivalent")
    return Degradation(scale=operator.scale, sigmas=tuple(sigma_from_mtf(float(m), operator.scale) for m in mtf),
                       bands=operator.bands,
                       description=f"Gaussian of the same MTF at Nyquist as {operator.description or 'the kernels'}")


def set_model_operator(model: Any, operator: str | Degradation | None = None, *, sensor: str | None = None,
                       tag: str | None = None) -> Any:
    """Tell a model whose physics uses the sensor operator (CARN with ``bp_skip``) the operator of its LR.

    ``operator``: ``"full"`` / ``"wald"`` (the catalog sensor PSF or Wald extra blur; ``sensor`` defaults to the
    model's ``bp_sensor``), a sensor file (``eosr calibrate --write-sensor``; an explicit kernel becomes the
    Gaussian of the same MTF at Nyquist, :func:`gaussian_equivalent`) or a :class:`Degradation`. Precedence:
    ``operator`` > the LR file's ``eosr_operator`` ``tag`` > the operator of the model's card (unchanged).
    The back-projection skip x_{k+1} = x_k + up(y - D(x_k)) (Irani & Peleg 1991) is rebuilt with D; the
    weights are unchanged. Wrong scale, band count or band names: :class:`ModelError` (one line).
    Returns the :class:`eosr.degrade.resolve.OperatorChoice` (mode, source, operator) that was applied.
    """
    from eosr.degrade.resolve import OperatorChoice, resolve_operator
    from eosr.errors import SensorError

    current = getattr(model, "operator", None)
    if not callable(getattr(model, "set_operator", None)) or current is None:
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise ModelError(f"{name} has no physics that takes the operator (a CARN with bp_skip, or backprojection)")
    spec = model.spec
    # what the operator describes: the model's bands at its scale, unless the model says otherwise (the x2 PSF
    # of the 20 m bands for s2_multires)
    bands = getattr(model, "operator_bands", spec.bands)
    n = len(bands) if bands else int(model.n_bands)
    if isinstance(operator, Degradation):
        choice = OperatorChoice(operator, "object", "option")
    else:
        default_sensor = (sensor or getattr(model, "operator_sensor", None)
                          or model.arch.get("kwargs", {}).get("bp_sensor"))
        try:
            choice = resolve_operator(operator, sensor=default_sensor, bands=list(bands) if bands else None,
                                      scale=getattr(model, "operator_scale", spec.scale), n_bands=n, tag=tag,
                                      default=None)
        except SensorError as e:
            raise ModelError(f"operator for {spec.name}: {e}") from None
    if choice.operator is None:
        return OperatorChoice(current, "card", "default")
    op = gaussian_equivalent(choice.operator)
    model.set_operator(op)
    return OperatorChoice(op, choice.mode, choice.source)
