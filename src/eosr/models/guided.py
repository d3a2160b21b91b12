"""Classical guided 20 m -> 10 m sharpening of Sentinel-2: high-pass detail injection with per-band regression.

For each 20 m band b (pan-sharpening's component-substitution / MTF-GLP family: Aiazzi, Alparone, Baronti,
Garzelli, Selva, "MTF-tailored multiscale fusion of high-resolution MS and Pan imagery", PE&RS 72, 2006;
the regression "pan" of Aiazzi, Baronti, Selva, "Improving component substitution pansharpening through
multivariate regression of MS + Pan data", IEEE TGRS 45, 2007):

1. ``D_b`` = the Sentinel-2 x2 Wald operator of band b (Gaussian PSF from b's MTF, block-centred decimation);
2. regress the band on the guide at 20 m: x20_b ~ sum_k w_k D_b(x10_k) + c (least squares, tiny ridge);
3. synthesise a pan P_b = sum_k w_k x10_k on the 10 m grid and its low-pass L_b = up(D_b(P_b)),
   with ``up`` = the bicubic interpolation used for the band itself;
4. out_b = up(x20_b) + (P_b - L_b): the 10 m high-pass injected with the regression gains.

No weights: the regression is fitted on the image (on each tile in tiled whole-scene runs). Same interface
as :class:`eosr.models.s2_multires.S2MultiRes` (``forward(x10, x20, bands=...)``, any subset of the 20 m
bands, ``packed()`` for band folders), so it is a drop-in baseline for the 20 m sharpening benchmark.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from eosr.errors import ModelError, ShapeError
from eosr.models.base import ModelSpec, SRNet
from eosr.models.s2_multires import BANDS_10M, BANDS_20M, ToldPSF

#: Ridge of the regression, as a reflectance noise floor: N * NOISE_FLOOR^2 on the gains (not the offset),
#: so that a flat guide (water, tile of cloud) does not get huge gains fitted to noise.
NOISE_FLOOR = 0.005


def regression_gains(guide_lr: torch.Tensor, band: torch.Tensor, floor: float = NOISE_FLOOR) -> torch.Tensor:
    """Ridge least squares w, c of band ~ w . guide_lr + c over finite pixels: guide_lr (C, h, w), band (h, w).

    Returns (C + 1,) = (w_1..w_C, c), solved in float64: (A^T A + N floor^2 I_w) [w; c] = A^T y.
    """
    g = guide_lr.reshape(guide_lr.shape[0], -1).double()
    y = band.reshape(-1).double()
    ok = torch.isfinite(y) & torch.isfinite(g).all(dim=0)
    a = torch.cat([g[:, ok], torch.ones_like(y[ok])[None]]).T  # (N, C + 1)
    if a.shape[0] < a.shape[1]:
        raise ShapeError(f"guided_hpf needs at least {a.shape[1]} valid pixels to fit its regression")
    ata = a.T @ a
    reg = torch.zeros_like(ata)
    c = guide_lr.shape[0]
    reg[:c, :c] = torch.eye(c, dtype=ata.dtype) * a.shape[0] * floor**2
    return torch.linalg.solve(ata + reg, a.T @ y[ok])


def spd_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve a x = b for symmetric positive-definite a (..., k, k), b (..., k) by an unrolled Cholesky
    factorisation (elementwise ops only, so it exports to ONNX, unlike ``torch.linalg.solve``); small k."""
    k = a.shape[-1]
    low: dict[tuple[int, int], torch.Tensor] = {}
    for j in range(k):
        s = a[..., j, j] - sum((low[j, p] ** 2 for p in range(j)), torch.zeros_like(a[..., 0, 0]))
        low[j, j] = torch.sqrt(s.clamp(min=1e-300))
        for i in range(j + 1, k):
            t = a[..., i, j] - sum((low[i, p] * low[j, p] for p in range(j)), torch.zeros_like(a[..., 0, 0]))
            low[i, j] = t / low[j, j]
    y: list[torch.Tensor] = []
    for i in range(k):
        y.append((b[..., i] - sum((low[i, p] * y[p] for p in range(i)), torch.zeros_like(b[..., 0]))) / low[i, i])
    x: list[torch.Tensor] = [torch.zeros_like(b[..., 0])] * k
    for i in reversed(range(k)):
        x[i] = (y[i] - sum((low[p, i] * x[p] for p in range(i + 1, k)), torch.zeros_like(b[..., 0]))) / low[i, i]
    return torch.stack(x, dim=-1)


def band_sigmas(bands_20m: Sequence[str]) -> tuple[float, ...]:
    """Wald PSF sigmas (10 m pixels) of the 20 m bands at x2 (the operator of step 1)."""
    from eosr.degrade import Degradation

    sig = Degradation.from_sensor("sentinel2", list(bands_20m), 2, wald=True).sigmas
    assert sig is not None
    return sig


@functools.lru_cache(maxsize=64)
def _guide_operator(bands_20m: tuple[str, ...], c10: int, sigmas: tuple[float, ...] | None = None) -> Any:
    """D_b of every 20 m band applied to each of ``c10`` guide bands, as the traceable spatial operator of
    :class:`eosr.models.backprojection.SpatialBackProjection` (same taps as ``Degradation.downsample``);
    ``sigmas``: the bands' PSF sigmas in 10 m pixels (default: their Sentinel-2 Wald PSF, :func:`band_sigmas`)."""
    from eosr.degrade import Degradation
    from eosr.models.backprojection import SpatialBackProjection

    if sigmas is not None and len(sigmas) != len(bands_20m):
        raise ModelError(f"{len(sigmas)} PSF sigmas for {len(bands_20m)} 20 m bands")
    sig = tuple(s for s in (sigmas if sigmas is not None else band_sigmas(bands_20m)) for _ in range(c10))
    return SpatialBackProjection(Degradation(scale=2, sigmas=sig), len(sig), iterations=0)


def guided_slots(x10: torch.Tensor, x20: torch.Tensor, mask: torch.Tensor, bands_20m: Sequence[str],
                 floor: float = NOISE_FLOOR, sigmas: Sequence[float] | None = None) -> torch.Tensor:
    """Sharpen the given slots: x10 (B, C10, H, W), x20 (B, C20, H/2, W/2), mask (B, C20) bool -> (B, C20, H, W),
    0 where absent. All bands and images at once: the ridge regression of :func:`regression_gains` solved
    as a batch of (C10 + 1)^2 normal equations (non-finite pixels left out of the fit)."""
    c10, c20 = x10.shape[1], x20.shape[1]
    down = _guide_operator(tuple(bands_20m), c10, None if sigmas is None else tuple(float(v) for v in sigmas))
    g = down.downsample(x10.repeat(1, c20, 1, 1))
    g_lr = g.reshape(g.shape[0], c20, c10, g.shape[-2], g.shape[-1])
    gd, yd = g_lr.double().flatten(3), x20.double().flatten(2)  # (B, C20, C10, N), (B, C20, N)
    ok_g, ok_y = torch.isfinite(gd), torch.isfinite(yd)
    ok = (ok_y & ok_g.all(dim=2)).double()
    zero = torch.zeros((), dtype=torch.float64)
    a = torch.cat([torch.where(ok_g, gd, zero), torch.ones_like(yd)[:, :, None]], dim=2) * ok[:, :, None]
    ata = torch.einsum("bkin,bkjn->bkij", a, a)
    aty = torch.einsum("bkin,bkn->bki", a, torch.where(ok_y, yd, zero) * ok)
    n = ok.sum(dim=2).clamp(min=1.0)
    reg = torch.diag(torch.tensor([1.0] * c10 + [0.0], dtype=torch.float64))
    lhs = ata + n[:, :, None, None] * floor**2 * reg + 1e-12 * torch.eye(c10 + 1, dtype=torch.float64)
    coef = spd_solve(lhs, aty).to(x10.dtype)[:, :, :c10]  # (B, C20, C10) gains
    pan = torch.einsum("bkc,bchw->bkhw", coef, x10)
    low = torch.einsum("bkc,bkchw->bkhw", coef, g_lr)
    up = F.interpolate(torch.cat([x20, low], dim=1), scale_factor=2, mode="bicubic", align_corners=False)
    out = up[:, :c20] + pan - up[:, c20:]
    return torch.where(mask.to(torch.bool)[:, :, None, None], out, torch.zeros((), dtype=out.dtype))


#: Guide shift (10 m pixels) above which :func:`eosr.scene.sharpen_20m` warns: Sentinel-2's inter-band
#: registration is specified to 0.3 px of the coarser band (0.6 px of 10 m) and is usually below 0.1 px.
GUIDE_SHIFT_WARN = 0.25
#: Guide shift (10 m pixels) below which co-registration leaves the guide as it is.
COREGISTER_MIN = 0.1


def guide_shift(x10: torch.Tensor, x20: torch.Tensor, bands_20m: Sequence[str], size: int | None = 256
                ) -> tuple[float, float]:
    """Shift (dy, dx), in guide (10 m) pixels, to apply to the guide so that it lines up with the 20 m bands,
    estimated from the inputs only: x10 (C10, H, W), x20 (C20, H/2, W/2), on their centre window of at most
    ``size`` x ``size`` 20 m pixels (None: all of it).

    For each 20 m band b, the regression pan of the guided estimate seen at 20 m, sum_k w_k D_b(x10_k) + c
    (:func:`regression_gains`, b's Wald PSF), is matched against b; the cross-power spectra are summed over
    the bands and the sub-pixel peak found (:func:`eosr.physics.registration.estimate_shift`,
    Guizar-Sicairos et al. 2008). Shifting the guide by the result (``fourier_shift(x10, dy, dx)``)
    co-registers it. Any subset of the 20 m bands works (only B11 + B12, e.g.).
    """
    from eosr._windows import centre_box
    from eosr.physics.registration import estimate_shift

    y = x20.detach().cpu().double()
    if size is not None and max(y.shape[-2:]) > size:
        r0, r1, c0, c1 = centre_box(y.shape[-2], y.shape[-1], size)
        y, x10 = y[:, r0:r1, c0:c1], x10[:, 2 * r0: 2 * r1, 2 * c0: 2 * c1]
    g10 = x10.detach().cpu().double()
    c10, c20 = g10.shape[0], y.shape[0]
    down = _guide_operator(tuple(bands_20m), c10)
    g = down.downsample(g10[None].repeat(1, c20, 1, 1))[0].reshape(c20, c10, *y.shape[-2:])
    pans = []
    for k in range(c20):
        gains = regression_gains(g[k], y[k])
        pans.append(torch.einsum("c,chw->hw", gains[:c10], g[k]) + gains[c10])
    dy, dx = estimate_shift(y.numpy(), torch.stack(pans).numpy())
    return -2.0 * float(dy), -2.0 * float(dx)


def needs_coregistration(shift: tuple[float, float], tol: float = COREGISTER_MIN) -> bool:
    """Whether a guide shift (dy, dx) in guide pixels exceeds ``tol`` in either axis (below it the guide is
    left as it is)."""
    return max(abs(shift[0]), abs(shift[1])) > tol


def coregister_guide(x10: torch.Tensor, x20: torch.Tensor, bands_20m: Sequence[str], tol: float = COREGISTER_MIN
                     ) -> tuple[torch.Tensor, tuple[float, float]]:
    """(guide, (dy, dx)): the whole guide Fourier-shifted by :func:`guide_shift` (centre window) when that
    exceeds ``tol`` guide pixels in either axis (periodic borders: crop a few pixels of the edges), else
    unchanged, and the shift."""
    from eosr.physics.registration import fourier_shift

    dy, dx = guide_shift(x10, x20, bands_20m)
    if not needs_coregistration((dy, dx), tol):
        return x10, (dy, dx)
    return torch.from_numpy(fourier_shift(x10, dy, dx)).to(x10.dtype), (dy, dx)


def guided_hpf_sharpen(x10: torch.Tensor, x20: torch.Tensor, bands_20m: Sequence[str],
                       sigmas: Sequence[float] | None = None) -> torch.Tensor:
    """High-pass detail injection (module docstring): x10 (B, C10, H, W), x20 (B, C20, H/2, W/2) -> (B, C20, H, W);
    ``sigmas``: the bands' PSF sigmas (10 m px; default the Sentinel-2 Wald ones)."""
    mask = torch.ones(x20.shape[:2], dtype=torch.bool)
    return guided_slots(x10, x20, mask, bands_20m, sigmas=sigmas)


class GuidedHPF(ToldPSF, SRNet):
    """Weight-free guided baseline (high-pass injection with per-band regression) for any 20 m band subset."""

    def __init__(self, bands_10m: Sequence[str] = BANDS_10M, bands_20m: Sequence[str] = BANDS_20M) -> None:
        from eosr.sensors import normalise_band_name

        b10 = tuple(normalise_band_name(str(b)) for b in bands_10m)
        b20 = tuple(normalise_band_name(str(b)) for b in bands_20m)
        if not b20:
            raise ModelError(f"guided_hpf: name at least one 20 m band to sharpen (among {', '.join(BANDS_20M)}); "
                             f"got only the guide {', '.join(b10) or '(none)'}")
        if not b10 or set(b10) & set(b20) or not set(b20) <= set(BANDS_20M):
            raise ModelError(f"guided_hpf needs 10 m guide bands (among {', '.join(BANDS_10M)}) and Sentinel-2 20 m "
                             f"bands (among {', '.join(BANDS_20M)}), got {', '.join(b10) or '(none)'} / "
                             f"{', '.join(b20)}")
        spec = ModelSpec(name="guided_hpf", scale=1, bands=b10 + b20, receptive_field=4,
                         extra={"kind": "guided high-pass injection (weight-free)",
                                "paper": "Aiazzi et al. 2006 (MTF-GLP), 2007 (regression pan)",
                                "bands_10m": list(b10), "bands_20m": list(b20), "output_bands": list(b20),
                                "any_20m_subset": True, "weights": "none"})
        super().__init__(spec, {"model": "guided_hpf", "kwargs": {"bands_10m": list(b10), "bands_20m": list(b20)}})
        self.scale = 1
        self.n10, self.n20 = len(b10), len(b20)
        self.bands_10m, self.bands_20m = b10, b20
        self.presence = True

    def given(self, bands: Sequence[str] | None) -> tuple[str, ...]:
        """The given 20 m bands in model order (all for None); :class:`ModelError` for unknown names."""
        from eosr.sensors import normalise_band_name

        if bands is None:
            return self.bands_20m
        names = [normalise_band_name(str(b)) for b in bands]
        if not names or len(set(names)) != len(names) or any(b not in self.bands_20m for b in names):
            raise ModelError(f"20 m bands {names} must be distinct and among {', '.join(self.bands_20m)}")
        return tuple(b for b in self.bands_20m if b in names)

    def forward(self, x10: torch.Tensor, x20: torch.Tensor,  # type: ignore[override]
                bands: Sequence[str] | None = None) -> torch.Tensor:
        """(B, C10, H, W) and (B, len(bands), H/2, W/2) -> the given 20 m bands at 10 m (B, len(bands), H, W)."""
        sub = self.given(bands)
        if x10.ndim != 4 or x20.ndim != 4 or x10.shape[1] != self.n10 or x20.shape[1] != len(sub):
            raise ShapeError(f"guided_hpf expects x10 (B, {self.n10}, H, W) and x20 (B, {len(sub)}, H/2, W/2), "
                             f"got {tuple(x10.shape)} and {tuple(x20.shape)}")
        h, w = x10.shape[-2:]
        if x20.shape[-2] * 2 != h or x20.shape[-1] * 2 != w or x20.shape[0] != x10.shape[0]:
            raise ShapeError(f"20 m bands {tuple(x20.shape[-2:])} must be half the 10 m size {(h, w)} (same origin)")
        sig = None if self.skip_sigmas is None else [self.skip_sigmas[self.bands_20m.index(b)] for b in sub]
        return guided_hpf_sharpen(x10, x20, sub, sig)

    def packed(self, bands: Sequence[str] | None = None, with_10m: bool = False) -> Any:
        """Single-input form on the 20 m grid (see :class:`eosr.models.s2_multires.PackedS2MultiRes`)."""
        from eosr.models.s2_multires import PackedS2MultiRes

        return PackedS2MultiRes(self, bands, with_10m=with_10m)


def guided_hpf(scale: int = 1, bands: Sequence[str] | None = None, n_bands: int | None = None,
               **kw: Any) -> GuidedHPF:
    """Registry factory: ``bands`` = 10 m then 20 m band names (default B02-B08 and B05-B12). One task, 20 m ->
    10 m: ``scale`` 1 (relative to the 10 m grid, as ``s2_multires``) or 2 (relative to the 20 m bands)."""
    from eosr.sensors import normalise_band_name

    if scale not in (1, 2):
        raise ModelError(f"guided_hpf sharpens the 20 m bands to 10 m (scale 1 relative to 10 m, 2 relative to "
                         f"20 m), not x{scale}")
    if bands is not None and "bands_10m" not in kw and "bands_20m" not in kw:
        names = [normalise_band_name(str(b)) for b in (bands.split(",") if isinstance(bands, str) else bands)]
        kw["bands_10m"] = [b for b in names if b in BANDS_10M]
        kw["bands_20m"] = [b for b in names if b not in BANDS_10M]
    model = GuidedHPF(**kw)
    if n_bands is not None and n_bands != model.n10 + model.n20:
        raise ModelError(f"guided_hpf takes {model.n10 + model.n20} bands, not {n_bands}")
    return model
