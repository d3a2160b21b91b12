"""CARN and CARN-M: Ahn, Kang, Sohn, "Fast, accurate, and lightweight super-resolution with cascading
residual network", ECCV 2018.

Wiring (as the paper's code): entry conv3x3 (C -> 64); three cascading blocks; at block level and at
network level the cascade is c0 = o0 = x, b_i = B_i(o_{i-1}), c_i = cat(c_{i-1}, b_i),
o_i = ReLU(conv1x1(c_i)) back to 64 channels, for i = 1, 2, 3.
- CARN: B_i is a residual block out = ReLU(conv3x3(ReLU(conv3x3(x))) + x), three separate ones per block.
- CARN-M: one efficient residual block (grouped conv3x3 (g) -> ReLU -> grouped conv3x3 -> ReLU -> conv1x1,
  out = ReLU(body + x)) applied three times with shared weights inside each cascading block.
Upsampler: x2/x4: log2(r) x [conv3x3(64 -> 256, groups g) -> ReLU -> PixelShuffle(2)]; x3:
conv3x3(64 -> 576, g) -> ReLU -> PixelShuffle(3); exit conv3x3(64 -> C).

eosr conventions: the original frozen RGB mean-shift layers (24 parameters for C = 3) are replaced by
per-band normalisation buffers (not parameters), so trainable counts equal the paper's trainable counts
(3 bands: CARN x2/x3/x4 964,163 / 1,148,803 / 1,111,875; CARN-M multi-scale 414,787).
Options: ``global_skip`` adds the bicubic-interpolated (normalised) LR to the output; ``dropout`` inserts
Dropout2d after each network-level cascade output (MC dropout); ``variance_head`` ("gaussian" or
"laplace") adds an exit conv that predicts s per band and pixel (log sigma^2 or log b, in reflectance
units), returned by ``model(lr, return_logvar=True)`` -> (sr, s) (Kendall & Gal, NeurIPS 2017);
``self_ensemble`` averages, in eval mode, the outputs for the 8 flips/rotations of the input
(:func:`eosr.models.base.dihedral_ensemble`; EDSR+, Lim et al. 2017): 8x the cost, smoother errors.

Back-projection skip (eosr addition, off by default so the published parameter counts hold): with
``global_skip=True`` and ``bp_skip=K > 0`` the global skip is not bicubic but K iterations of back-projection
x_{k+1} = x_k + step up(y - D(x_k)), x_0 = up(y) (Irani & Peleg 1991) through the sensor operator D given by
``bp_sensor`` (+ ``bp_wald``; needs ``bands``) or ``bp_mtf`` (:func:`eosr.models.backprojection.make_operator`),
so the network learns a residual over a physics-consistent (LR-consistent) estimate; the exit conv starts at
zero, so the untrained model equals back-projection. The BP runs in the
spatial domain (:class:`eosr.models.backprojection.SpatialBackProjection`: depthwise strided convs with the
operator's bounded Gaussian taps, no FFT, no parameters), so it is exact, differentiable, ONNX-exportable,
and its bounded support enters the declared receptive field: max(CNN field, 2 + K (half PSF + 2)) LR px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eosr.degrade.operator import Degradation
from eosr.errors import ModelError
from eosr.models.backprojection import SpatialBackProjection, check_model_operator, make_operator
from eosr.models.base import ModelSpec, SRNet, check_bands, dihedral_ensemble
from eosr.physics.psf import check_scale

VARIANCE_HEADS = ("gaussian", "laplace")


class ResidualBlock(nn.Module):
    """out = ReLU(conv3x3(ReLU(conv3x3(x))) + x)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class EResidualBlock(nn.Module):
    """Efficient residual block: out = ReLU(conv1x1(ReLU(gconv3x3(ReLU(gconv3x3(x))))) + x)."""

    def __init__(self, ch: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class Fuse(nn.Sequential):
    """o = ReLU(conv1x1(c)) from k * ch back to ch channels."""

    def __init__(self, cin: int, ch: int) -> None:
        super().__init__(nn.Conv2d(cin, ch, 1, 1, 0), nn.ReLU(inplace=True))


class CascadingBlock(nn.Module):
    """Local cascade of three residual blocks (CARN) or one shared efficient block applied 3x (CARN-M)."""

    def __init__(self, ch: int, mobile: bool, group: int) -> None:
        super().__init__()
        self.mobile = mobile
        if mobile:
            self.b = nn.ModuleList([EResidualBlock(ch, group)])
        else:
            self.b = nn.ModuleList([ResidualBlock(ch) for _ in range(3)])
        self.c = nn.ModuleList([Fuse(ch * (i + 2), ch) for i in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = o = x
        for i in range(3):
            b = self.b[0 if self.mobile else i](o)
            c = torch.cat([c, b], dim=1)
            o = self.c[i](c)
        return o


def _upsampler(ch: int, scale: int, group: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if scale == 3:
        layers += [nn.Conv2d(ch, 9 * ch, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(3)]
    else:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(ch, 4 * ch, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


def _field_with_bp(scale: int, mobile: bool, bp: SpatialBackProjection, refine: int) -> int:
    """Receptive field (LR px) of a CARN whose skip is ``bp``, with ``refine`` steps after the network."""
    return max(carn_receptive_field(scale, mobile), bp.receptive_field()) + bp.refine_field(refine)


def carn_receptive_field(scale: int, mobile: bool) -> int:
    """Half-width (LR px) of the LR neighbourhood reaching one output pixel (3x3 convs add 1 px each)."""
    lr_convs = 1 + 3 * 3 * 2  # entry + 3 cascading blocks x 3 (shared) residual applications x 2 convs
    up = 1.0 if scale in (2, 3) else 1.0 + 0.5  # x4: the second upsampling conv works at 2x
    return int(math.ceil(lr_convs + up + 1.0 / scale))


class CARN(SRNet):
    """CARN (``mobile=False``) or CARN-M (``mobile=True``) for C bands; see the module docstring."""

    def __init__(
        self,
        scale: int = 2,
        bands: Sequence[str] | None = None,
        n_bands: int | None = None,
        *,
        mobile: bool = False,
        channels: int = 64,
        group: int | None = None,
        multi_scale: bool = False,
        global_skip: bool = False,
        dropout: float = 0.0,
        variance_head: str | None = None,
        bp_skip: int = 0,
        bp_sensor: str | None = None,
        bp_mtf: float | Sequence[float] | None = None,
        bp_wald: bool = False,
        bp_step: float = 1.0,
        bp_refine: int = 0,
        self_ensemble: bool = False,
    ) -> None:
        r = check_scale(scale)
        if r not in (2, 3, 4):
            raise ModelError(f"CARN supports scales 2, 3 and 4 (pixel shuffle), got {r}")
        names, n = check_bands(bands, n_bands, 3)
        assert n is not None
        g = (4 if mobile else 1) if group is None else int(group)
        if channels % g or channels < 1:
            raise ModelError(f"channels ({channels}) must be a positive multiple of group ({g})")
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"dropout must lie in [0, 1), got {dropout}")
        if variance_head is not None and variance_head not in VARIANCE_HEADS:
            raise ModelError(f"variance_head must be one of {VARIANCE_HEADS} or None, got {variance_head!r}")
        name = "carn_m" if mobile else "carn"
        kwargs: dict[str, Any] = dict(
            scale=r, bands=list(names) if names else None, n_bands=n, channels=channels, group=g,
            multi_scale=multi_scale, global_skip=global_skip, dropout=dropout, variance_head=variance_head)
        if self_ensemble:
            kwargs["self_ensemble"] = True
        rf = carn_receptive_field(r, mobile)
        bp: SpatialBackProjection | None = None
        extra: dict[str, Any] = {"kind": "single-image CNN", "paper": "Ahn, Kang, Sohn, ECCV 2018",
                 "variance_head": variance_head, "dropout": dropout, "global_skip": global_skip,
                 "self_ensemble": bool(self_ensemble)}
        if bp_refine and not bp_skip:
            raise ModelError("bp_refine needs bp_skip (the refinement uses the back-projection operator)")
        if bp_refine < 0:
            raise ModelError(f"bp_refine must be >= 0, got {bp_refine}")
        if bp_skip:
            if not global_skip:
                raise ModelError("bp_skip needs global_skip=True (it replaces the bicubic global skip)")
            if multi_scale:
                raise ModelError("bp_skip works with single-scale models only (the operator has one scale)")
            op = make_operator(r, names, sensor=bp_sensor, mtf=bp_mtf, wald=bp_wald)
            bp = SpatialBackProjection(op, n, int(bp_skip), bp_step)
            rf = _field_with_bp(r, mobile, bp, int(bp_refine))
            mtf = list(bp_mtf) if isinstance(bp_mtf, Sequence) else bp_mtf
            kwargs.update(bp_skip=int(bp_skip), bp_sensor=bp_sensor, bp_mtf=mtf, bp_wald=bool(bp_wald),
                          bp_step=float(bp_step))
            extra.update(bp_skip=int(bp_skip), bp_operator=op.describe())
            if bp_refine:
                kwargs["bp_refine"] = int(bp_refine)
                extra["bp_refine"] = int(bp_refine)
        spec = ModelSpec(name=name, scale=r, bands=names, receptive_field=rf, extra=extra)
        super().__init__(spec, {"model": name, "kwargs": kwargs}, n)
        self.scale = r
        self.mobile = mobile
        self.global_skip = global_skip
        self.variance_head = variance_head
        self.self_ensemble = bool(self_ensemble)
        ch = channels
        self.entry = nn.Conv2d(n, ch, 3, 1, 1)
        self.blocks = nn.ModuleList([CascadingBlock(ch, mobile, g) for _ in range(3)])
        self.fuse = nn.ModuleList([Fuse(ch * (i + 2), ch) for i in range(3)])
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        scales = (2, 3, 4) if multi_scale else (r,)
        self.up = nn.ModuleDict({f"x{s}": _upsampler(ch, s, g) for s in scales})
        self.exit = nn.Conv2d(ch, n, 3, 1, 1)
        self.logvar = nn.Conv2d(ch, n, 3, 1, 1) if variance_head else None
        self.bp = bp
        self.bp_refine = int(bp_refine)
        if bp is not None:  # start from the physics-consistent estimate: the untrained model equals BP
            nn.init.zeros_(self.exit.weight)
            if self.exit.bias is not None:
                nn.init.zeros_(self.exit.bias)

    @property
    def operator(self) -> Degradation | None:
        """The sensor operator D of the back-projection skip (None without ``bp_skip``)."""
        return self.bp.operator if self.bp is not None else None

    def set_operator(self, operator: Degradation) -> None:
        """Use ``operator`` as D of the back-projection skip from now on (PSF-aware inference).

        The skip x_{k+1} = x_k + step up(y - D(x_k)) (Irani & Peleg 1991) is rebuilt with the new PSF; the
        network weights are unchanged. ``operator`` must be a Gaussian PSF of the model's scale with one PSF
        or one per band (and the same band names when both name them); a :class:`ModelError` otherwise.
        """
        if self.bp is None:
            raise ModelError(f"{self.spec.name} has no back-projection skip (bp_skip): it takes no operator")
        check_model_operator(operator, self.scale, self.spec.bands, int(self.n_bands or 0))
        bp = SpatialBackProjection(operator, int(self.n_bands or 0), self.bp.iterations, self.bp.step)
        self.bp = bp.to(self.exit.weight.device)
        self.spec.extra["bp_operator"] = operator.describe()
        self.spec.receptive_field = _field_with_bp(self.scale, self.mobile, bp, self.bp_refine)

    def forward(
        self, lr: torch.Tensor, return_logvar: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """SR (B, C, r h, r w) in reflectance; with ``return_logvar`` also s (B, C, r h, r w).

        s = log sigma^2 ("gaussian") or log b ("laplace") of the per-pixel error, in reflectance units.
        """
        self.check_input(lr)
        if self.self_ensemble and not self.training:
            if not return_logvar:
                return dihedral_ensemble(self._sr, lr)
            both = dihedral_ensemble(self._sr_logvar, lr)
            return both[:, : self.n_bands], both[:, self.n_bands :]
        return self._forward(lr, return_logvar)

    def _sr_logvar(self, lr: torch.Tensor) -> torch.Tensor:
        out = self._forward(lr, True)
        assert isinstance(out, tuple)
        return torch.cat(out, dim=1)

    def _sr(self, lr: torch.Tensor) -> torch.Tensor:
        out = self._forward(lr)
        assert isinstance(out, torch.Tensor)
        return out

    def _forward(
        self, lr: torch.Tensor, return_logvar: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.normalise(lr)
        c = o = self.entry(x)
        for blk, fuse in zip(self.blocks, self.fuse, strict=True):
            c = torch.cat([c, blk(o)], dim=1)
            o = self.drop(fuse(c))
        feat = self.up[f"x{self.scale}"](o)
        y = self.exit(feat)
        if self.bp is not None:
            y = y + self.bp(x)  # BP is linear and preserves constants: BP(norm(lr)) = norm(BP(lr))
            if self.bp_refine:  # data consistency: K back-projection steps from the network's estimate
                y = self.bp.refine(y, x, self.bp_refine)
        elif self.global_skip:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        sr = self.denormalise(y)
        if not return_logvar:
            return sr
        if self.logvar is None:
            raise ModelError(f"{self.spec.name} was built without a variance head (variance_head='gaussian')")
        s = self.logvar(feat)
        # back to reflectance units: sigma scales with std, so log sigma^2 gains 2 log std, log b gains log std
        k = 2.0 if self.variance_head == "gaussian" else 1.0
        s = s + k * torch.log(self.norm_std)[:, None, None]
        return sr, s


def carn(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None, **kw: object) -> CARN:
    """CARN (Ahn et al. 2018): 3 cascading blocks of 3 residual blocks; ~1.1 M parameters for 3 bands."""
    return CARN(scale, bands, n_bands, mobile=False, **kw)  # type: ignore[arg-type]


def carn_m(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None, **kw: object) -> CARN:
    """CARN-M (Ahn et al. 2018): shared efficient residual block with group conv (g = 4); ~0.41 M multi-scale."""
    kw.setdefault("group", 4)
    return CARN(scale, bands, n_bands, mobile=True, **kw)  # type: ignore[arg-type]
