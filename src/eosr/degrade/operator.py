"""The ONE sensor-aware degradation operator of eosr: per-band PSF, area-aligned decimation,
optional gain/offset, noise and quantisation.

    LR[i, j] = Q( g * sum_{k,l} h(k - c_i, l - c_j) HR[k, l] + o + n )     c_i = i r + (r - 1)/2

The PSF h is sampled so that LR pixel (i, j) is centred on the centre of the HR block
[i r, (i+1) r) x [j r, (j+1) r) (GDAL pixel-is-area: LR and HR share their origin, for even and odd
r alike). The MTF value m describes the whole system (optics and detector), so no r x r box is added
on top (it would multiply the MTF at Nyquist by about 0.64). r = 1 is super-restoration: blur only.

Borders use half-sample symmetric extension. NaN is nodata: an LR pixel whose PSF support (taps
carrying at least ``support_threshold`` of the peak weight) touches a NaN becomes NaN; the others
are renormalised by the PSF weight on valid pixels (normalised convolution), so the negligible
tails beyond the support never bias a value.

Source of the PSF model: Gaussian PSF from the MTF at Nyquist as in CESBIO's Sentinel-2 tools
(Michel et al. 2022) and S2Sharp (Ulfarsson et al. 2019).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from eosr._arrays import as_batch, like, to_tensor, unbatch
from eosr.degrade.conv import full_conv, sep_conv
from eosr.errors import ScaleError, SensorError, ShapeError
from eosr.io.xr import is_dataarray, on_grid
from eosr.physics.filters import any_true
from eosr.physics.psf import (
    check_scale,
    gaussian_taps,
    kernel_length,
    sigma_from_mtf,
    wald_sigma,
)
from eosr.sensors import Sensor, get_sensor


@dataclass(frozen=True, eq=False)
class Degradation:
    """Sensor-aware degradation: blur with per-band PSFs, decimate by ``scale``, then radiometry.

    Exactly one of ``sigmas`` (isotropic Gaussian per band, HR pixels) and ``kernels`` (explicit
    2-D PSF per band on the HR grid, odd-sized and centred) is given. ``shift`` (dy, dx) displaces the
    scene by that many HR pixels before sampling: LR = D(HR(. - shift)).
    """

    scale: int
    sigmas: tuple[float, ...] | None = None
    kernels: tuple[np.ndarray, ...] | None = None
    bands: tuple[str, ...] | None = None
    shift: tuple[float, float] = (0.0, 0.0)
    gain: float = 1.0
    offset: float = 0.0
    noise_sigma: float = 0.0
    snr: float | None = None
    snr_reference: float = 0.1
    bits: int | None = None
    quant_range: float = 1.0
    support_threshold: float = 1e-3
    description: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_scale(self.scale))
        if (self.sigmas is None) == (self.kernels is None):
            raise SensorError("give exactly one of sigmas (Gaussian PSF) or kernels (explicit PSF)")
        if self.sigmas is not None:
            sig = tuple(float(s) for s in self.sigmas)
            if not sig or any(not math.isfinite(s) or s < 0 for s in sig):
                raise SensorError(f"PSF sigmas must be finite and >= 0, got {self.sigmas}")
            object.__setattr__(self, "sigmas", sig)
        if self.kernels is not None:
            ks = tuple(_check_kernel(k) for k in self.kernels)
            object.__setattr__(self, "kernels", ks)
        if self.bands is not None and len(self.bands) != self.n_bands:
            raise SensorError(f"{len(self.bands)} band names for {self.n_bands} PSFs")
        if self.noise_sigma < 0 or (self.snr is not None and self.snr <= 0):
            raise SensorError("noise sigma must be >= 0 and SNR > 0")
        if self.bits is not None and not 1 <= int(self.bits) <= 32:
            raise SensorError(f"bit depth must lie in 1..32, got {self.bits}")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_sensor(
        cls,
        sensor: str | Sensor,
        bands: Sequence[str] | str | None,
        scale: int,
        *,
        wald: bool = False,
        **options: Any,
    ) -> Degradation:
        """Operator of a catalog sensor: sigma_b = r sqrt(-2 ln m_b) / pi for each band's MTF m_b.

        ``wald=True`` uses the Wald-protocol extra blur sqrt(r^2 - 1) sqrt(-2 ln m_b) / pi, for
        HR images that already carry the sensor's MTF at their own Nyquist.
        """
        s = get_sensor(sensor)
        r = check_scale(scale)
        sel = s.select(list(bands) if bands is not None and not isinstance(bands, str) else bands)
        fn = wald_sigma if wald else sigma_from_mtf
        sig = tuple(fn(b.mtf_nyquist, r) for b in sel)
        desc = f"{s.name} {'Wald ' if wald else ''}PSF x{r}"
        return cls(scale=r, sigmas=sig, bands=tuple(b.name for b in sel), description=desc, **options)

    @classmethod
    def from_mtf(cls, mtf: Sequence[float] | float, scale: int, **options: Any) -> Degradation:
        """Operator from MTF values at the LR Nyquist, one per band (or one for all bands)."""
        vals = [mtf] if isinstance(mtf, (int, float)) else list(mtf)
        return cls(scale=scale, sigmas=tuple(sigma_from_mtf(m, scale) for m in vals), **options)

    def with_options(self, **changes: Any) -> Degradation:
        """A copy with some fields changed (e.g. ``noise_sigma=0.001``)."""
        return replace(self, **changes)

    # ----------------------------------------------------------------- properties
    @property
    def n_bands(self) -> int:
        """Number of per-band PSFs."""
        return len(self.sigmas) if self.sigmas is not None else len(self.kernels or ())

    @property
    def has_noise(self) -> bool:
        """Whether the operator adds random noise."""
        return self.noise_sigma > 0 or self.snr is not None

    def lr_shape(self, h: int, w: int) -> tuple[int, int]:
        """LR size for an HR of h x w (raises if not divisible by the scale)."""
        r = self.scale
        if h % r or w % r:
            raise ScaleError(f"HR size {h}x{w} is not divisible by the scale {r} (crop it first)")
        return h // r, w // r

    def crop(self, x: Any) -> Any:
        """Crop the trailing rows/columns of an HR array so that its size is divisible by the scale."""
        h, w = x.shape[-2], x.shape[-1]
        return x[..., : h - h % self.scale, : w - w % self.scale]

    # ----------------------------------------------------------------- linear part
    def _taps(self, c: int, stride: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        sig = self._band_values(self.sigmas or (), c)
        # the kernel centre moves to -shift: sampling HR at (centre - shift) displaces the scene by +shift
        dy, dx = -self.shift[0], -self.shift[1]
        ly = max(kernel_length(s, stride, dy) for s in sig)
        lx = max(kernel_length(s, stride, dx) for s in sig)
        ky = torch.tensor(np.stack([gaussian_taps(s, ly, dy) for s in sig]), dtype=dtype)
        kx = torch.tensor(np.stack([gaussian_taps(s, lx, dx) for s in sig]), dtype=dtype)
        return ky, kx

    def separable_taps(self, c: int, *, blur: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(ky, kx), each (C, K) float64: the separable taps :meth:`downsample` correlates a C-band image
        with (stride ``scale``, the shift included) or, ``blur=True``, those of :meth:`blur` (stride 1, no
        shift); borders half-sample symmetric, pad (K - stride) / 2. None for explicit 2-D kernels."""
        if self.sigmas is None:
            return None
        if isinstance(c, bool) or int(c) != c or c < 1:
            raise ShapeError(f"separable_taps needs a band count >= 1, got {c}")
        op = replace(self, shift=(0.0, 0.0)) if blur else self
        ky, kx = op._taps(c, 1 if blur else self.scale, torch.float64)
        return ky.numpy(), kx.numpy()

    def _kernel_stack(self, c: int, stride: int, dtype: torch.dtype) -> torch.Tensor:
        neg = (-self.shift[0], -self.shift[1])
        ks = [_recentre(k, stride, neg) for k in self._band_values(self.kernels or (), c)]
        return pad_stack(ks, stride, dtype)

    def _band_values(self, vals: Sequence[Any], c: int) -> list[Any]:
        if len(vals) == c:
            return list(vals)
        if len(vals) == 1:
            return list(vals) * c
        raise ShapeError(f"the operator has {len(vals)} band PSFs but the image has {c} bands")

    def _apply(self, x: Any, stride: int) -> Any:
        t = to_tensor(x)
        b, was3d = as_batch(t)
        if b.shape[-2] < 1 or b.shape[-1] < 1:
            raise ShapeError(f"empty image of shape {tuple(t.shape)}")
        if stride > 1:
            self.lr_shape(b.shape[-2], b.shape[-1])
        c = b.shape[1]
        nan = torch.isnan(b)
        has_nan = any_true(nan)
        src = torch.where(nan, torch.zeros((), dtype=b.dtype), b) if has_nan else b
        if self.kernels is None:
            ky, kx = self._taps(c, stride, b.dtype)
            out = sep_conv(src, ky, kx, stride)
            if has_nan:
                thr = self.support_threshold
                sy = (ky >= thr * ky.max(dim=1, keepdim=True).values).to(b.dtype)
                sx = (kx >= thr * kx.max(dim=1, keepdim=True).values).to(b.dtype)
                bad = sep_conv(nan.to(b.dtype), sy, sx, stride) > 0.5
                out = out / sep_conv((~nan).to(b.dtype), ky, kx, stride).clamp(min=1e-12)
        else:
            k = self._kernel_stack(c, stride, b.dtype)
            out = full_conv(src, k, stride)
            if has_nan:
                sup = (k >= self.support_threshold * k.amax(dim=(1, 2), keepdim=True)).to(b.dtype)
                bad = full_conv(nan.to(b.dtype), sup, stride) > 0.5
                out = out / full_conv((~nan).to(b.dtype), k, stride).clamp(min=1e-12)
        if has_nan:
            out = torch.where(bad, torch.full((), float("nan"), dtype=out.dtype), out)
        return like(unbatch(out, was3d), x)

    def blur(self, x: Any) -> Any:
        """The PSF applied on the HR grid (no decimation): the low-pass filter LPF of HR fidelity."""
        if is_dataarray(x):
            return on_grid(self.blur, x, 1)
        return replace(self, shift=(0.0, 0.0))._apply(x, 1)

    def downsample(self, x: Any) -> Any:
        """Noise-free, differentiable D(x): PSF blur sampled at LR block centres. A DataArray comes back
        on the LR grid (pixel size x r, same origin) with its CRS and band names."""
        if is_dataarray(x):
            return on_grid(self.downsample, x, self.scale, eosr_operator=json.dumps(self.describe()))
        return self._apply(x, self.scale)

    # ----------------------------------------------------------------- full simulation
    def __call__(self, x: Any, seed: int | None = None) -> Any:
        """Full simulation: D(x), then gain/offset, noise and quantisation (seeded). NumPy, torch or
        xarray in, the same out (a DataArray on the LR grid)."""
        if is_dataarray(x):
            return on_grid(lambda a: self(a, seed), x, self.scale, eosr_operator=json.dumps(self.describe()))
        t = to_tensor(self.downsample(x))
        if self.gain != 1.0 or self.offset != 0.0:
            t = self.gain * t + self.offset
        if self.has_noise:
            g = torch.Generator().manual_seed(0 if seed is None else int(seed))
            z = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
            t = t + self.noise_std(t) * z
        if self.bits is not None:
            levels = 2 ** int(self.bits) - 1
            q = self.quant_range / levels
            t = torch.clamp(torch.round(t / q), 0, levels) * q
        return like(t, x)

    simulate = __call__

    def noise_std(self, signal: torch.Tensor) -> torch.Tensor:
        """Per-pixel noise sigma: sqrt(sigma_0^2 + (L_ref / SNR)^2 * max(x, 0) / L_ref).

        The first term is signal-independent (read) noise, the second photon noise whose sigma equals
        L_ref / SNR at the reference reflectance L_ref (the usual way sensor SNR is specified).
        """
        var = torch.full_like(signal, self.noise_sigma**2)
        if self.snr is not None:
            s_ref = self.snr_reference / self.snr
            var = var + s_ref**2 * torch.clamp(signal, min=0) / self.snr_reference
        return torch.sqrt(var)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (recorded next to results and checkpoints)."""
        from eosr.physics.psf import mtf_from_sigma

        d: dict[str, Any] = {"scale": self.scale, "description": self.description, "shift": list(self.shift)}
        if self.bands:
            d["bands"] = list(self.bands)
        if self.sigmas is not None:
            d["psf"] = "gaussian"
            d["sigma_hr_px"] = [round(s, 6) for s in self.sigmas]
            if self.scale > 1:
                d["mtf_at_lr_nyquist"] = [round(mtf_from_sigma(s, self.scale), 6) for s in self.sigmas]
        else:
            d["psf"] = "explicit"
            d["kernels"] = [np.round(k, 9).tolist() for k in self.kernels or ()]
        d.update(gain=self.gain, offset=self.offset, noise_sigma=self.noise_sigma, snr=self.snr, bits=self.bits)
        if self.snr is not None:
            d["snr_reference"] = self.snr_reference
        if self.bits is not None:
            d["quant_range"] = self.quant_range
        return d

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Degradation:
        """The operator that :meth:`describe` described (sigmas to 6 decimals; explicit kernels to 1e-9),
        e.g. from the ``eosr_operator`` tag that ``eosr simulate`` writes. One-line SensorError if malformed."""
        try:
            psf = d.get("psf", "gaussian")
            common: dict[str, Any] = {
                "scale": int(d["scale"]), "bands": tuple(d["bands"]) if d.get("bands") else None,
                "shift": tuple(float(v) for v in d.get("shift", (0.0, 0.0))), "gain": float(d.get("gain", 1.0)),
                "offset": float(d.get("offset", 0.0)), "noise_sigma": float(d.get("noise_sigma") or 0.0),
                "snr": None if d.get("snr") is None else float(d["snr"]),
                "snr_reference": float(d.get("snr_reference", 0.1)),
                "bits": None if d.get("bits") is None else int(d["bits"]),
                "quant_range": float(d.get("quant_range", 1.0)), "description": str(d.get("description", ""))}
            if psf == "gaussian":
                return cls(sigmas=tuple(float(s) for s in d["sigma_hr_px"]), **common)
            if psf == "explicit" and "kernels" in d:
                return cls(kernels=tuple(np.asarray(k, dtype=np.float64) for k in d["kernels"]), **common)
        except (KeyError, TypeError, ValueError) as e:
            raise SensorError(f"not an operator description ({type(e).__name__}: {e})") from None
        raise SensorError(f"an operator description with psf {d.get('psf')!r} and no kernels cannot be rebuilt")


def pad_stack(ks: Sequence[np.ndarray], stride: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-band kernels zero-padded, centred, into one (C, S, S) stack with S - stride even."""
    size = max(max(k.shape) for k in ks)
    if (size - stride) % 2:
        size += 1
    out = np.zeros((len(ks), size, size))
    for i, k in enumerate(ks):
        oy, ox = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        out[i, oy : oy + k.shape[0], ox : ox + k.shape[1]] = k
    return torch.tensor(out, dtype=dtype)


def _check_kernel(k: Any) -> np.ndarray:
    a = np.asarray(k, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] % 2 == 0 or a.shape[1] % 2 == 0:
        raise SensorError(f"an explicit PSF kernel must be 2-D with odd sizes, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.sum() <= 0:
        raise SensorError("an explicit PSF kernel must be finite with a positive sum")
    return a / a.sum()


def _recentre(k: np.ndarray, stride: int, shift: tuple[float, float]) -> np.ndarray:
    """Move a centred odd kernel to the block centre (half a pixel for even stride) plus ``shift``."""
    dy = shift[0] + (0.5 if stride % 2 == 0 else 0.0)
    dx = shift[1] + (0.5 if stride % 2 == 0 else 0.0)
    if dy == 0 and dx == 0:
        return k
    pad = 2 + int(math.ceil(max(abs(dy), abs(dx))))
    big = np.pad(k, pad)
    fy = np.fft.fftfreq(big.shape[0])[:, None]
    fx = np.fft.fftfreq(big.shape[1])[None, :]
    sh = np.real(np.fft.ifft2(np.fft.fft2(big) * np.exp(-2j * np.pi * (fy * dy + fx * dx))))
    sh = np.clip(sh, 0.0, None)
    if stride % 2 == 0:  # even length: the centre (S - 1)/2 + 1/2 of the odd array becomes S/2
        sh = np.pad(sh, ((0, 1), (0, 1)))
    return sh / sh.sum()
