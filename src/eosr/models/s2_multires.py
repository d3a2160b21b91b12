"""Sentinel-2 multi-resolution sharpening, DSen2-style (Lanaras, Bioucas-Dias, Galliani, Baltsavias,
Schindler, "Super-resolution of Sentinel-2 images: learning a globally applicable deep neural network",
ISPRS J. Photogramm. Remote Sens. 146, 2018).

Inputs: the 10 m bands ``x10`` (B, C10, H, W) and the 20 m bands ``x20`` (B, C20, H/2, W/2), on the shared
pixel-is-area grid (same origin). Both are interpolated (bicubic) to the output grid, concatenated and
normalised per band; a conv3x3 -> ReLU, K residual blocks (conv -> ReLU -> conv, scaled by 0.1 as in
DSen2) and a conv3x3 predict the residual added to the interpolated bands.
- ``scale=1``: output the 20 m bands at 10 m, (B, C20, H, W) (DSen2's T2x task).
- ``scale=r > 1``: output every band (10 m then 20 m) at 10/r m, (B, C10 + C20, r H, r W).
``spec.scale`` is r relative to the 10 m grid; ``spec.bands`` lists the output bands and
``spec.extra["bands_10m"/"bands_20m"]`` the inputs. DSen2 uses 128 features and 6 blocks (the default).

``presence=True`` (scale 1 only; the trained ``s2_multires_20m``) makes the network work on ANY subset of
its 20 m bands: every 20 m slot gets a flag channel (1 = given, 0 = absent) and an absent slot is zero
(its normalised mean) whatever it holds, so a missing band is declared, never faked. ``forward(x10, x20,
bands=...)`` takes only the given 20 m bands and returns exactly those bands, sharpened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ModelError, ShapeError
from eosr.models.base import ModelSpec, SRNet
from eosr.physics.psf import check_scale

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")


class _Res(nn.Module):
    def __init__(self, ch: int, scaling: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1))
        self.scaling = scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scaling * self.body(x)


class ToldPSF:
    """The operator of a guided 20 m estimate: the x2 PSF of the 20 m bands on the 10 m grid (one Gaussian
    per band, Sentinel-2 Wald catalogue unless told), for :func:`eosr.models.backprojection.set_model_operator`
    and ``eosr sr --operator``. Used by :class:`S2MultiRes` trained with ``psf_told`` and by ``guided_hpf``."""

    operator_scale = 2
    operator_sensor = "sentinel2"
    bands_20m: tuple[str, ...]
    skip_sigmas: tuple[float, ...] | None = None
    spec: ModelSpec

    def takes_operator(self) -> bool:
        """Whether the estimate's PSF may be told (a network trained with one fixed PSF: no)."""
        return True

    @property
    def operator_bands(self) -> tuple[str, ...]:
        return self.bands_20m

    @property
    def operator(self) -> Any:
        """The x2 operator of the 20 m bands in use (a :class:`eosr.degrade.Degradation`), or None when the
        model takes none."""
        if not self.takes_operator():
            return None
        from eosr.degrade import Degradation
        from eosr.models.guided import band_sigmas

        if self.skip_sigmas is not None:
            return Degradation(scale=2, sigmas=self.skip_sigmas, bands=self.bands_20m,
                               description=str(self.spec.extra.get("operator", {}).get("description", "told")))
        return Degradation(scale=2, sigmas=band_sigmas(self.bands_20m), bands=self.bands_20m,
                           description="sentinel2 Wald PSF x2 (catalogue)")

    def set_operator(self, operator: Any) -> None:
        """Use ``operator`` (x2, one Gaussian PSF per 20 m band, or one for all, in 10 m pixels) in the guided
        estimate from now on (PSF-aware inference; weights, if any, unchanged)."""
        from eosr.models.backprojection import check_model_operator

        if not self.takes_operator():
            raise ModelError(f"{self.spec.name} was trained with one fixed PSF: its guided skip takes no operator")
        check_model_operator(operator, 2, self.bands_20m, len(self.bands_20m))
        sig = tuple(float(v) for v in operator.sigmas)
        self.skip_sigmas = sig * len(self.bands_20m) if len(sig) == 1 else sig
        self.spec.extra["operator"] = operator.describe()


class S2MultiRes(ToldPSF, SRNet):
    """DSen2-style network sharpening 20 m bands with the 10 m bands (and everything by r > 1)."""

    def __init__(
        self,
        scale: int = 1,
        bands_10m: Sequence[str] = BANDS_10M,
        bands_20m: Sequence[str] = BANDS_20M,
        *,
        features: int = 128,
        blocks: int = 6,
        res_scaling: float = 0.1,
        presence: bool = False,
        guided_skip: bool = False,
        psf_told: bool = False,
    ) -> None:
        from eosr.sensors import normalise_band_name

        r = check_scale(scale)
        b10 = tuple(normalise_band_name(str(b)) for b in bands_10m)
        b20 = tuple(normalise_band_name(str(b)) for b in bands_20m)
        if not b10 or not b20 or set(b10) & set(b20):
            raise ModelError(f"s2_multires needs disjoint, non-empty 10 m and 20 m band lists, got {b10} / {b20}")
        if presence and r != 1:
            raise ModelError("s2_multires: presence flags (any subset of the 20 m bands) need scale 1")
        out_bands = b20 if r == 1 else b10 + b20
        c_in = len(b10) + len(b20)
        kwargs: dict[str, Any] = dict(scale=r, bands_10m=list(b10), bands_20m=list(b20), features=features,
                                      blocks=blocks, res_scaling=res_scaling)
        if guided_skip and not presence:
            raise ModelError("s2_multires: guided_skip needs presence=True")
        if presence:  # absent from older cards: they rebuild the network without flags
            kwargs["presence"] = True
        if guided_skip:
            kwargs["guided_skip"] = True
        if psf_told and not guided_skip:
            raise ModelError("s2_multires: psf_told (an operator told at inference) needs guided_skip")
        if psf_told:
            kwargs["psf_told"] = True
        rf = int(math.ceil(2 + (2 + 2 * blocks) / r))  # bicubic of the 20 m bands (2 px at 20 m) + convs at 10/r m
        spec = ModelSpec(name="s2_multires", scale=r, bands=b10 + b20, receptive_field=rf,
                         extra={"kind": "multi-resolution CNN", "paper": "Lanaras et al. 2018 (DSen2)",
                                "bands_10m": list(b10), "bands_20m": list(b20), "output_bands": list(out_bands),
                                "inputs": "forward(x10 (B, C10, H, W), x20 (B, C20, H/2, W/2))"
                                + (", bands=<given 20 m bands>" if presence else ""),
                                "any_20m_subset": bool(presence)})
        super().__init__(spec, {"model": "s2_multires", "kwargs": kwargs}, c_in)
        self.scale = r
        self.n10, self.n20 = len(b10), len(b20)
        self.bands_10m, self.bands_20m = b10, b20
        self.presence, self.guided_skip = bool(presence), bool(guided_skip)
        self.psf_told = bool(psf_told)
        self.skip_sigmas: tuple[float, ...] | None = None  # PSF of the guided skip (None: S2 Wald catalogue)
        c_head = c_in + (len(b20) if presence else 0) + (len(b20) if guided_skip else 0)
        self.head = nn.Sequential(nn.Conv2d(c_head, features, 3, 1, 1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[_Res(features, res_scaling) for _ in range(blocks)])
        self.tail = nn.Conv2d(features, len(out_bands), 3, 1, 1)
        if guided_skip:  # start exactly at the classical guided estimate
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def given(self, bands: Sequence[str] | None) -> tuple[str, ...]:
        """The given 20 m bands (canonical names, model order); all of them for None.

        A subset needs ``presence``; unknown or repeated names raise :class:`ModelError`.
        """
        from eosr.sensors import normalise_band_name

        if bands is None:
            return self.bands_20m
        names = [normalise_band_name(str(b)) for b in bands]
        bad = [b for b in names if b not in self.bands_20m]
        if bad or not names or len(set(names)) != len(names):
            raise ModelError(f"20 m bands {names} must be distinct and among {', '.join(self.bands_20m)}")
        sub = tuple(b for b in self.bands_20m if b in names)
        if sub != self.bands_20m and not self.presence:
            raise ModelError("this s2_multires network needs every one of its 20 m bands "
                             f"({', '.join(self.bands_20m)}); s2_multires_20m takes any subset")
        return sub

    def forward(self, x10: torch.Tensor, x20: torch.Tensor,  # type: ignore[override]
                bands: Sequence[str] | None = None) -> torch.Tensor:
        """Sharpened bands: (B, C20, H, W) for scale 1, (B, C10 + C20, r H, r W) otherwise.

        ``bands``: the 20 m bands that ``x20`` holds, in model order (default all; a subset needs
        ``presence``); the output then holds exactly those bands.
        """
        sub = self.given(bands)
        n20 = len(sub)
        if x10.ndim != 4 or x20.ndim != 4 or x10.shape[1] != self.n10 or x20.shape[1] != n20:
            raise ShapeError(f"s2_multires expects x10 (B, {self.n10}, H, W) and x20 (B, {n20}, H/2, W/2), "
                             f"got {tuple(x10.shape)} and {tuple(x20.shape)}")
        h, w = x10.shape[-2:]
        if x20.shape[-2] * 2 != h or x20.shape[-1] * 2 != w or x20.shape[0] != x10.shape[0]:
            raise ShapeError(f"20 m bands {tuple(x20.shape[-2:])} must be half the 10 m size {(h, w)} (same origin)")
        if self.presence:
            flags = torch.tensor([b in sub for b in self.bands_20m])
            mask = flags[None].expand(x20.shape[0], -1)
            if sub == self.bands_20m:  # every band given (also the traced/ONNX path)
                return self.forward_slots(x10, x20, mask)
            idx = [self.bands_20m.index(b) for b in sub]
            slots = x20.new_zeros((x20.shape[0], self.n20, *x20.shape[-2:]))
            slots[:, idx] = x20
            return self.forward_slots(x10, slots, mask)[:, idx]
        r = self.scale
        u10 = F.interpolate(x10, scale_factor=r, mode="bicubic", align_corners=False) if r > 1 else x10
        u20 = F.interpolate(x20, scale_factor=2 * r, mode="bicubic", align_corners=False)
        x = self.normalise(torch.cat([u10, u20], dim=1))
        y = self.tail(self.body(self.head(x)))
        base = x[:, self.n10:] if r == 1 else x
        return self.denormalise_out(base + y)

    def forward_slots(self, x10: torch.Tensor, x20: torch.Tensor, mask: torch.Tensor,
                      sigmas: Sequence[float] | None = None) -> torch.Tensor:
        """Presence network on all 20 m slots: ``x20`` (B, C20, H/2, W/2), ``mask`` (B, C20) bool = given.

        Absent slots are replaced by 0 after normalisation (whatever they hold, NaN included) and flagged
        0 in C20 extra input channels; returns (B, C20, H, W), meaningful for the given slots only.
        With ``guided_skip`` the classical guided estimate (:func:`eosr.models.guided.guided_slots`: per-band
        regression on the 10 m bands, high-pass injection) is both an input and the base the network
        corrects (the residual is added to it instead of to the bicubic 20 m bands).
        """
        if not self.presence:
            raise ModelError("forward_slots needs an s2_multires network built with presence=True")
        m = mask.to(torch.bool)[:, :, None, None]
        zero = torch.zeros((), dtype=x20.dtype)
        x20 = torch.where(m, x20, zero)
        u20 = F.interpolate(x20, scale_factor=2, mode="bicubic", align_corners=False)
        x = self.normalise(torch.cat([x10, u20], dim=1))
        z20 = torch.where(m, x[:, self.n10:], zero)
        flags = m.to(x.dtype).expand(-1, -1, *x.shape[-2:])
        parts = [x[:, : self.n10], z20, flags]
        base = z20
        if self.guided_skip:
            from eosr.models.guided import guided_slots

            with torch.no_grad():
                sig = sigmas if sigmas is not None else self.skip_sigmas
                gd = guided_slots(x10.detach(), x20.detach(), mask, self.bands_20m, sigmas=sig)
            mean, std = self.norm_mean[self.n10:, None, None], self.norm_std[self.n10:, None, None]
            base = torch.where(m, (gd - mean) / std, zero)
            parts.append(base)
        y = self.tail(self.body(self.head(torch.cat(parts, dim=1))))
        return self.denormalise_out(base + y)

    def takes_operator(self) -> bool:
        return self.psf_told

    def packed(self, bands: Sequence[str] | None = None, with_10m: bool = False) -> PackedS2MultiRes:
        """This model as a single-input model on the 20 m grid (for tiled whole-scene SR); ``bands`` = the
        given 20 m bands (a subset needs ``presence``), ``with_10m`` = also output the 10 m bands."""
        return PackedS2MultiRes(self, bands, with_10m=with_10m)

    def denormalise_out(self, y: torch.Tensor) -> torch.Tensor:
        """Back to reflectance with the statistics of the output bands."""
        if self.scale == 1:
            return y * self.norm_std[self.n10:, None, None] + self.norm_mean[self.n10:, None, None]
        return self.denormalise(y)


class PackedS2MultiRes(nn.Module):
    """A two-input 20 m sharpening model (:class:`S2MultiRes`, :class:`eosr.models.guided.GuidedHPF`) with ONE
    input on the 20 m grid, so any single-input tiler can run it.

    Input (B, 4 C10 + k, h, w): the 10 m bands space-to-depth packed by 2 (``pixel_unshuffle``: channel
    4 c + 2 i + j holds 10 m pixel (2 y + i, 2 x + j) of band c), then the k given 20 m bands (``bands``:
    a subset for models that take any, default all). Output: the model's output bands at 10/r m, i.e.
    scale 2 r relative to the 20 m grid (same origin, pixel-is-area); with ``with_10m`` (scale 1 only) the
    10 m bands come first, as given.
    """

    def __init__(self, inner: Any, bands: Sequence[str] | None = None, *, with_10m: bool = False) -> None:
        super().__init__()
        self.inner = inner
        r = inner.scale
        self.bands_10m: tuple[str, ...] = tuple(inner.bands_10m)
        self.bands_20m: tuple[str, ...] = tuple(inner.given(bands))
        if with_10m and r != 1:
            raise ModelError("with_10m applies to 20 m -> 10 m sharpening (scale 1): at r > 1 every band is output")
        out = list(self.bands_20m) if r == 1 else list(inner.spec.extra["output_bands"])
        if with_10m:
            out = list(self.bands_10m) + out
        self.with_10m = with_10m
        self.guide_shift: tuple[float, float] | None = None
        self.n_in = 4 * inner.n10 + len(self.bands_20m)
        self.n_out_bands = len(out)
        self.spec = ModelSpec(name=inner.spec.name, scale=2 * r, bands=tuple(out),
                              receptive_field=self._unshifted_field(),
                              version=inner.spec.version,
                              extra={**inner.spec.extra, "packed": "10 m bands pixel_unshuffle(2) on the 20 m grid",
                                     "bands_20m": list(self.bands_20m), "output_bands": out})

    def _unshifted_field(self) -> int:
        """The inner model's receptive field on the 20 m grid (+1 for the packing)."""
        return int(math.ceil(self.inner.spec.receptive_field / 2)) + 1

    def set_guide_shift(self, dy: float, dx: float) -> None:
        """Shift the 10 m bands by (dy, dx) 10 m pixels (:func:`eosr.models.interp.lanczos_shift`) before
        sharpening, to co-register them with the 20 m bands (the estimate of
        :func:`eosr.models.guided.guide_shift`); the receptive field grows by the shift's reach, so tiling
        stays exact. The 10 m bands written with ``with_10m`` are the shifted ones."""
        reach = 3 + math.ceil(max(abs(dy), abs(dx)))  # Lanczos-3 taps + the integer part, in 10 m px
        self.guide_shift = (float(dy), float(dx))
        self.spec.receptive_field = self._unshifted_field() + math.ceil(reach / 2)
        self.spec.extra["guide_shift_px"] = [round(float(dy), 3), round(float(dx), 3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unpack and run the inner model: (B, 4 C10 + k, h, w) -> (B, C_out, 2 r h, 2 r w)."""
        if x.ndim != 4 or x.shape[1] != self.n_in:
            raise ShapeError(f"packed {self.spec.name} expects (B, {self.n_in}, h, w), got {tuple(x.shape)}")
        k = 4 * self.inner.n10
        x10 = F.pixel_shuffle(x[:, :k], 2)
        if self.guide_shift is not None:
            from eosr.models.interp import lanczos_shift

            x10 = lanczos_shift(x10, *self.guide_shift)
        y = self.inner(x10, x[:, k:], bands=list(self.bands_20m))
        return torch.cat([x10, y], dim=1) if self.with_10m else y


def pack_10m(x10: Any) -> Any:
    """Space-to-depth by 2 of (…, C, H, W) 10 m bands onto the 20 m grid (NumPy or torch): (…, 4 C, H/2, W/2)."""
    import numpy as np

    if isinstance(x10, torch.Tensor):
        return F.pixel_unshuffle(x10, 2)
    a = np.asarray(x10)
    *lead, c, h, w = a.shape
    if h % 2 or w % 2:
        raise ShapeError(f"10 m bands of size {h}x{w} must have even sides (twice the 20 m grid)")
    t = a.reshape(*lead, c, h // 2, 2, w // 2, 2)
    n = len(lead)
    t = t.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return t.reshape(*lead, 4 * c, h // 2, w // 2)


def s2_multires(scale: int = 1, bands: Sequence[str] | None = None, n_bands: int | None = None,
                **kw: Any) -> S2MultiRes:
    """DSen2-style Sentinel-2 sharpening; ``bands`` = 10 m bands then 20 m bands (default B02-B08, B05-B12).

    Bands at 10 m are recognised by name (B02, B03, B04, B08); the rest are taken as 20 m bands.
    ``bands_10m`` / ``bands_20m`` keywords override this split.
    """
    from eosr.sensors import normalise_band_name

    if bands is not None and "bands_10m" not in kw and "bands_20m" not in kw:
        names = [normalise_band_name(str(b)) for b in (bands.split(",") if isinstance(bands, str) else bands)]
        kw["bands_10m"] = [b for b in names if b in BANDS_10M]
        kw["bands_20m"] = [b for b in names if b not in BANDS_10M]
    model = S2MultiRes(scale, **kw)
    if n_bands is not None and n_bands != model.n_bands:
        raise ModelError(f"s2_multires takes {model.n_bands} bands ({model.n10} at 10 m, {model.n20} at 20 m), "
                         f"not {n_bands}")
    return model
