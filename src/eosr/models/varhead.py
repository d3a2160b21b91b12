"""A variance head on a frozen trained SR model: per-pixel predictive std from shipped weights.

The base model (e.g. the shipped ``carn_m_s2_x2``) gives the SR mean y_hat; a small CNN h on the HR grid
reads the normalised SR and the detail the base added over bicubic,

    f = [ (y_hat - mu) / s,  (y_hat - bicubic(x)) / s ]           (mu, s: the base's per-band normalisation)
    log sigma^2 = h(f) + 2 log s                                   (sigma in reflectance units)

and is trained alone (the base frozen) with the Gaussian negative log-likelihood of the base's residuals,
0.5 (log sigma^2 + (y - y_hat)^2 / sigma^2) (Nix & Weigend 1994; Kendall & Gal, NeurIPS 2017). Its output
is then rescaled by a split-conformal factor q fitted on a validation split (Angelopoulos & Bates 2021),
stored in the checkpoint's card (``calibration``): ``forward_with_uncertainty`` returns (y_hat, q sigma).

The head's weights file holds the head only; the card names the base and its ``weights_sha256``, and a
base whose weights differ is refused (the head was fitted to that model's residuals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ModelError
from eosr.models.base import ModelSpec, SRNet, check_bands

#: clamp of log sigma^2 (reflectance^2): sigma from 3e-7 to 12 reflectance
LOGVAR_RANGE = (-30.0, 5.0)


def highpass_energy(sr: torch.Tensor, window: int = 5, floor: float = 5e-4) -> torch.Tensor:
    """Local high-pass energy of an SR image (B, C, H, W): mean over ``window`` x ``window`` of
    (y - G_1 * y)^2 + floor^2 (G_1: Gaussian of sigma 1 HR px, 7 taps; reflect padding). Its square root
    is a classical, scale-equivariant uncertainty proxy (detail the model added is where it errs)."""
    k = torch.arange(-3, 4, dtype=sr.dtype, device=sr.device)
    g = torch.exp(-0.5 * k * k)
    g = g / g.sum()
    c = sr.shape[1]
    x = F.pad(sr, (3, 3, 3, 3), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, 7).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, g.view(1, 1, 7, 1).repeat(c, 1, 1, 1), groups=c)
    hp = sr - x
    p = window // 2
    e = F.avg_pool2d(F.pad(hp * hp, (p, p, p, p), mode="reflect"), window, stride=1)
    return e + floor**2


def weights_sha256_of(model: Any) -> str | None:
    """The ``weights_sha256`` of a model loaded from a checkpoint (None for a model built in memory)."""
    card = getattr(model, "card", None)
    return card.get("weights_sha256") if isinstance(card, dict) else None


class VarianceHeadSR(SRNet):
    """SR of a frozen base model plus a trained Gaussian variance head (see the module docstring).

    ``model(lr)`` is the base's SR; ``model(lr, return_logvar=True)`` -> (sr, log sigma^2) uncalibrated;
    ``forward_with_uncertainty(lr)`` -> (sr, sigma) with the card's conformal factor applied.
    """

    variance_head = "gaussian"
    base: SRNet  # the frozen base model (a plain attribute, not a submodule)

    def __init__(self, scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None, *,
                 base: str = "carn_m_s2_x2", base_sha256: str | None = None, channels: int = 32,
                 depth: int = 4, prior: str | None = None, base_model: SRNet | None = None) -> None:
        from eosr.models.registry import resolve_model

        names, n = check_bands(bands, n_bands, 4)
        assert n is not None
        if prior not in (None, "highpass"):
            raise ModelError(f"variance head prior must be None or 'highpass', got {prior!r}")
        if depth < 3 or channels < 1:
            raise ModelError(f"variance head needs depth >= 3 and channels >= 1, got {depth}, {channels}")
        if base_model is None:
            with torch.device("cpu"):  # also when the limits check builds the head on the meta device
                base_model = resolve_model(base, scale=scale, bands=names, n_bands=n)
        core = base_model
        got = weights_sha256_of(core)
        if base_sha256 is not None and got != base_sha256:
            raise ModelError(f"variance head was fitted to {base} with weights sha256 {base_sha256[:12]}..., but "
                             f"{base} now has {str(got)[:12]}...: refit the head (benchmarks/train_variance_head.py)")
        if core.spec.scale != scale:
            raise ModelError(f"base {base} is x{core.spec.scale}, the head was asked for x{scale}")
        if core.n_bands != n or (names and core.spec.bands and tuple(core.spec.bands) != tuple(names)):
            raise ModelError(f"base {base} takes bands {core.spec.bands}, the head was asked for {names or n}")
        if core.spec.mean is None or core.spec.std is None:
            raise ModelError(f"base {base} has no per-band normalisation to scale the head with")
        # head: depth 3x3 convs, the second dilated by 2 -> depth + 1 HR px; bicubic of the LR: 2 LR px
        rf = int(core.spec.receptive_field) + 2 + math.ceil((depth + 1) / scale) + (3 if prior else 0)
        spec = ModelSpec(name="variance_head", scale=scale, bands=tuple(names) if names else core.spec.bands,
                         receptive_field=rf,
                         extra={"kind": "variance head", "variance_head": "gaussian", "base": base,
                                "uncertainty": "variance head (Gaussian NLL) + split-conformal scaling"})
        kwargs = dict(scale=scale, bands=list(spec.bands) if spec.bands else None, n_bands=n, base=base,
                      base_sha256=base_sha256 if base_sha256 is not None else got, channels=channels, depth=depth)
        if prior is not None:
            kwargs["prior"] = prior
        super().__init__(spec, {"model": "variance_head", "kwargs": kwargs}, n)
        self.set_normalisation(core.spec.mean, core.spec.std)
        object.__setattr__(self, "base", core)  # not a submodule: its weights stay in their own file
        for p in core.parameters():
            p.requires_grad_(False)
        core.eval()
        layers: list[nn.Module] = [nn.Conv2d(2 * n, channels, 3, 1, 1), nn.ReLU(inplace=True),
                                   nn.Conv2d(channels, channels, 3, 1, 2, dilation=2), nn.ReLU(inplace=True)]
        for _ in range(depth - 3):
            layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, n, 3, 1, 1))
        self.head = nn.Sequential(*layers)
        self.scale = scale
        self.prior = prior
        self.calibration: Any = None  # a ConformalCalibration; None: the card's, if any

    @property
    def self_ensemble(self) -> bool:
        """The base's geometric self-ensemble switch (the head runs once on its output)."""
        return bool(getattr(self.base, "self_ensemble", False))

    @self_ensemble.setter
    def self_ensemble(self, on: bool) -> None:
        if hasattr(self.base, "self_ensemble"):
            setattr(self.base, "self_ensemble", bool(on))  # noqa: B010 - SRNet does not declare it

    def reference_log_variance(self, sr: torch.Tensor) -> torch.Tensor:
        """What the head corrects: 2 log s (the base's per-band std) or, with ``prior="highpass"``, the log of
        the SR's local high-pass energy (:func:`highpass_energy`)."""
        if self.prior == "highpass":
            return torch.log(highpass_energy(sr))
        return (2.0 * torch.log(self.norm_std))[:, None, None].expand_as(sr)

    def log_variance(self, lr: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        """log sigma^2 (B, C, r h, r w) in reflectance^2 of the base's SR ``sr`` for input ``lr`` (uncalibrated)."""
        up = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        std = self.norm_std[:, None, None]
        f = torch.cat([self.normalise(sr), (sr - up) / std], dim=1)
        s = self.head(f) + self.reference_log_variance(sr)
        return s.clamp(*LOGVAR_RANGE)

    def forward(self, lr: torch.Tensor, return_logvar: bool = False) -> Any:
        """The base's SR (B, C, r h, r w); with ``return_logvar`` also log sigma^2 (uncalibrated)."""
        self.check_input(lr)
        with torch.no_grad():
            sr = self.base(lr)
        if not return_logvar:
            return sr
        return sr, self.log_variance(lr, sr)

    def conformal(self) -> Any:
        """The split-conformal calibration in use (set on the model, else the card's ``calibration``), or None."""
        if self.calibration is None:
            from eosr.trust.calibration import card_calibration

            self.calibration = card_calibration(getattr(self, "card", None))
        return self.calibration

    def forward_with_uncertainty(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(SR, sigma): sigma = q exp(s / 2), the predictive std per band on the SR grid (reflectance),
        q the conformal factor (1 without a calibration)."""
        with torch.no_grad():
            sr, s = self.forward(lr, return_logvar=True)
            cal = self.conformal()
            q = float(cal.factor) if cal is not None else 1.0
            return sr, torch.exp(0.5 * s) * q


def variance_head(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None,
                  **kw: Any) -> VarianceHeadSR:
    """A variance head on a frozen base (default: the shipped ``carn_m_s2_x2``); untrained until loaded."""
    return VarianceHeadSR(scale, bands, n_bands, **kw)
