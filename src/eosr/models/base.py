"""The model interface every SR model of eosr follows.

A model maps LR ``(B, C, h, w)`` (or a multi-image stack ``(B, N, C, h, w)`` plus masks) to SR
``(B, C, r h, r w)`` in reflectance, on the pixel-is-area grid of :mod:`eosr.degrade` (LR pixel (i, j)
covers HR pixels [i r, (i+1) r) x [j r, (j+1) r)). It declares its scale, bands and receptive field
(in LR pixels, the half-width of the LR neighbourhood that influences one output pixel), and
carries its per-band normalisation with its weights.

Every eosr model is an :class:`SRNet` (a ``torch.nn.Module``) with a ``spec``. Learned models keep the
per-band normalisation as buffers ``norm_mean`` / ``norm_std`` (shape (C,)), saved with the weights:
the network sees ``(x - mean) / std`` and its output is mapped back with ``y * std + mean``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from eosr.errors import ModelError, ShapeError


@dataclass
class ModelSpec:
    """What a model declares about itself (stored in its JSON card next to the weights)."""

    name: str
    scale: int
    bands: tuple[str, ...] | None = None  # None: any band count
    receptive_field: int = 0  # LR pixels each side; tiling overlap is derived from it
    multi_image: bool = False
    version: str = "1"
    mean: tuple[float, ...] | None = None  # per-band normalisation: x_n = (x - mean) / std
    std: tuple[float, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    n_bands: int | None = None  # None: any band count (interpolators); else the fixed input band count


def is_multi_image(model: Any) -> bool:
    """Whether ``model`` fuses several frames (its spec says ``multi_image``)."""
    return bool(getattr(getattr(model, "spec", None), "multi_image", False))


@runtime_checkable
class SRModel(Protocol):
    """Anything with a ``spec`` and a ``__call__(lr) -> sr`` on (B, C, h, w) float tensors."""

    spec: ModelSpec

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:  # pragma: no cover - protocol
        ...


class SRNet(nn.Module):
    """Base class of eosr models: a ``spec``, the arguments that rebuild it, optional normalisation.

    ``arch`` is ``{"model": registry name, "kwargs": {...}}``, JSON-serialisable: a checkpoint stores it
    so that :func:`eosr.models.load_checkpoint` can rebuild the module before loading the weights.
    ``n_bands=None`` means the model works on any number of bands (and has no normalisation buffers).
    """

    spec: ModelSpec
    norm_mean: torch.Tensor
    norm_std: torch.Tensor

    def __init__(self, spec: ModelSpec, arch: dict[str, Any], n_bands: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.arch = arch
        self.n_bands = n_bands
        spec.n_bands = n_bands
        if n_bands is not None:
            if spec.bands is not None and len(spec.bands) != n_bands:
                raise ModelError(f"{len(spec.bands)} band names given for a {n_bands}-band model")
            self.register_buffer("norm_mean", torch.zeros(n_bands))
            self.register_buffer("norm_std", torch.ones(n_bands))
            self._sync_spec()

    # ------------------------------------------------------------ normalisation
    def set_normalisation(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        """Set the per-band statistics (reflectance) the network normalises its input with."""
        if self.n_bands is None:
            raise ModelError(f"model {self.spec.name!r} has no normalisation (it works on any band count)")
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.numel() != self.n_bands or s.numel() != self.n_bands:
            raise ModelError(f"normalisation needs {self.n_bands} values per statistic, got {m.numel()}/{s.numel()}")
        if not bool(torch.isfinite(m).all()) or not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
            raise ModelError("normalisation: mean must be finite and std finite and > 0")
        self.norm_mean.copy_(m)
        self.norm_std.copy_(s)
        self._sync_spec()

    def _sync_spec(self) -> None:
        if self.norm_mean.is_meta:  # built on the meta device to estimate its size: no values to copy
            return
        self.spec.mean = tuple(float(v) for v in self.norm_mean)
        self.spec.std = tuple(float(v) for v in self.norm_std)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:  # keep spec in sync after loading
        super()._load_from_state_dict(*args, **kwargs)
        if self.n_bands is not None:
            self._sync_spec()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per band (identity for band-agnostic models); x is (..., C, H, W)."""
        if self.n_bands is None:
            return x
        return (x - self.norm_mean[:, None, None]) / self.norm_std[:, None, None]

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        """y * std + mean per band: back to reflectance."""
        if self.n_bands is None:
            return y
        return y * self.norm_std[:, None, None] + self.norm_mean[:, None, None]

    # ------------------------------------------------------------ checks
    def check_input(self, x: torch.Tensor, ndim: int = 4) -> None:
        """Raise a one-line :class:`ShapeError` unless ``x`` is a float tensor of the right rank and bands."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{self.spec.name}: input must be a torch tensor (use eosr.models.predict for NumPy)")
        if x.ndim != ndim:
            want = "(B, C, h, w)" if ndim == 4 else "(B, N, C, h, w)"
            raise ShapeError(f"{self.spec.name}: input must be {want}, got shape {tuple(x.shape)}")
        c = x.shape[-3]
        if self.n_bands is not None and c != self.n_bands:
            names = f" ({', '.join(self.spec.bands)})" if self.spec.bands else ""
            raise ShapeError(f"{self.spec.name}: model expects {self.n_bands} bands{names}, input has {c}")
        if x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ShapeError(f"{self.spec.name}: empty input of shape {tuple(x.shape)}")

    def n_params(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters; normalisation buffers are not parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Put the model in eval mode except its dropout layers (Monte-Carlo dropout, Gal & Ghahramani 2016)."""
    model.eval()
    for m in model.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.train()
    return model


def _rot90(x: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.rot90(x, k, dims=(-2, -1))`` written as transposes and flips (ONNX has no rot90; same values)."""
    k %= 4
    if k == 1:
        return x.transpose(-1, -2).flip(-2)
    if k == 2:
        return x.flip(-2).flip(-1)
    if k == 3:
        return x.transpose(-1, -2).flip(-1)
    return x


def dihedral_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Geometric self-ensemble: mean over the 8 flips/rotations g of g^-1(fn(g(x))) (Lim et al., EDSR+,
    CVPRW 2017; Timofte et al., CVPR 2016). Exact for an isotropic sensor PSF (the operator commutes
    with g); costs 8 forward passes. Rotations are transposes and flips, so the ensemble exports to ONNX."""
    acc: torch.Tensor | None = None
    for t in (False, True):
        xt = x.transpose(-1, -2) if t else x
        for k in range(4):
            y = _rot90(fn(_rot90(xt, k)), -k)
            y = y.transpose(-1, -2) if t else y
            acc = y if acc is None else acc + y
    assert acc is not None
    return acc / 8


def check_bands(
    bands: Sequence[str] | None, n_bands: int | None, default: int | None
) -> tuple[tuple[str, ...] | None, int | None]:
    """Resolve the ``bands`` / ``n_bands`` pair of a factory to canonical names and a count."""
    from eosr.sensors import normalise_band_name

    names = None
    if bands is not None:
        if isinstance(bands, str):
            bands = [b for b in bands.split(",") if b.strip()]
        names = tuple(normalise_band_name(str(b)) for b in bands)
        if not names:
            raise ModelError("empty band list")
        if len(set(names)) != len(names):
            raise ModelError(f"duplicate band names in {list(names)}")
        if n_bands is not None and n_bands != len(names):
            raise ModelError(f"n_bands={n_bands} but {len(names)} band names given")
        return names, len(names)
    n = default if n_bands is None else int(n_bands)
    if n is not None and n < 1:
        raise ModelError(f"n_bands must be >= 1, got {n}")
    return None, n
