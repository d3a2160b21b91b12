"""Frequency-domain metrics: radial power spectra, frequency restoration rate, over/undershoot, and an
effective-resolution estimate from the Fourier ring correlation of SR and HR.

Spectra: :func:`eosr.physics.spectrum.radial_power_spectrum` per band (mean removed, Hann window,
annuli of |f| in (0, 0.5] cycles per HR pixel, DC excluded). A batch averages the power over its
items. NaN / masked pixels: the union of the invalid pixels of all inputs is set to NaN in every
input (so all spectra see the same gaps), then the spectrum fills them with the band mean.

Frequency restoration (Michel et al. 2024, "Revisiting remote sensing cross-sensor single image
super-resolution: the overlooked impact of geometric and radiometric distortion", IEEE JSTARS), on
dB profiles T (HR target), I (interpolated LR), P (SR prediction) over the bins of ``f_range``:

    PFR = sum (T - min(T, I))                             missing energy (dB)
    AFR = sum (max(min(P, T), min(I, T)) - min(T, I))     restored part, capped at T
    FRR = 100 AFR / PFR                                   percent, 0 for P = I, 100 for P = T

Over- and undershoot use dB differences (docs/conventions.md#frequency-restoration-in-db; the ratio
forms of the paper change sign with the data's units): overshoot = mean over bins of max(P - T, 0),
undershoot = mean of max(I - P, 0) (energy the SR removed from its own input), both in dB.

No-reference variant (no HR): against the interpolated LR only, ``hf_gain_db`` = mean of P - I over
bins above the LR Nyquist 1/(2r) (detail SR adds, true or not) and ``lf_deviation_db`` = mean
|P - I| below half the LR Nyquist (SR should keep what the LR measures).

Effective resolution: from the Fourier ring correlation (Saxton & Baumeister, J. Microsc. 127,
1982) FRC(f) = Re sum_ring S H* / sqrt(sum_ring |S|^2 sum_ring |H|^2), which only sees
decorrelation, eosr uses the coherent transfer CT(f) = Re sum_ring S H* / max(sum_ring |S|^2,
sum_ring |H|^2) = FRC min(A, 1/A) (A the ring amplitude ratio), which also drops for blur and
noise; rings as the spectra, pooled over bands and batch. The cut-off f_c is the first frequency
where CT falls below 0.5 (linear interpolation between bins, starting from CT(0) = 1); f_c = 0.5
when it never does. The effective resolution is 0.5 / f_c HR pixels (1.0 = full HR resolution;
2.0 = coherent detail only down to twice the HR pixel), bounded by the image size: f_c is not taken
below the centre f_1 of the lowest ring (the lowest frequency measured), so the value is at most
0.5 / f_1 = min(H, W) HR px with the default rings (``extra["bounded"]`` says when the bound
applies: no coherent detail at any measured frequency). ``eosr.evaluate`` computes FRR, over- and
undershoot and the effective resolution on the shift-, gain- and bias-compensated SR (as the
hallucination scores), so registration and radiometry are reported once, as such, and do not
read as overshoot or lost resolution. The interpolated LR is computed by the
caller (bicubic on the pixel-is-area grid, e.g.
``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` for integer scales).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eosr.errors import EosrError, ScaleError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, prepare
from eosr.physics.spectrum import half_spectrum, radial_power_spectrum, ring_bins, ring_sum

__all__ = [
    "EFFECTIVE_RESOLUTION",
    "FRR",
    "FRR_OVERSHOOT",
    "FRR_UNDERSHOOT",
    "HF_GAIN",
    "INFOS",
    "LF_DEVIATION",
    "Spectra",
    "effective_resolution",
    "fourier_ring_correlation",
    "frequency_restoration",
    "frequency_restoration_lr",
    "frr_from_profiles",
    "radial_spectra",
]

_MICHEL = "Michel et al., IEEE JSTARS 2024 (frequency restoration rate), dB form"
FRR = MetricInfo("frr", True, (0.0, 100.0), True, False, False, "%", _MICHEL)
FRR_OVERSHOOT = MetricInfo("frr_overshoot_db", False, (0.0, math.inf), True, False, False, "dB", _MICHEL)
FRR_UNDERSHOOT = MetricInfo("frr_undershoot_db", False, (0.0, math.inf), True, False, False, "dB", _MICHEL)
HF_GAIN = MetricInfo("hf_gain_db", None, (-math.inf, math.inf), False, True, False, "dB", _MICHEL + "; no-reference")
LF_DEVIATION = MetricInfo("lf_deviation_db", False, (0.0, math.inf), False, True, False, "dB", "no-reference")
EFFECTIVE_RESOLUTION = MetricInfo(
    "effective_resolution_px",
    False,
    (1.0, math.inf),
    True,
    False,
    False,
    "HR px",
    "coherent transfer (FRC x amplitude) = 0.5",
)

#: The metrics of this module with their metadata.
INFOS: tuple[MetricInfo, ...] = (FRR, FRR_OVERSHOOT, FRR_UNDERSHOOT, HF_GAIN, LF_DEVIATION, EFFECTIVE_RESOLUTION)

#: Power below this fraction of the largest power of a profile is floored (avoids -inf dB).
_FLOOR = 1e-15


@dataclass(frozen=True)
class Spectra:
    """Radial power profiles per band: ``freqs`` (n,) in cycles per HR pixel, ``power[name]`` (C, n)."""

    freqs: np.ndarray
    power: dict[str, np.ndarray]

    def db(self, name: str) -> np.ndarray:
        """Profile in dB, 10 log10(power), floored at 1e-15 of the largest power over all profiles."""
        top = max(float(p.max()) for p in self.power.values())
        return 10.0 * np.log10(np.maximum(self.power[name], _FLOOR * max(top, 1e-300)))


def _planes(p: Any, k: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(item, band, float64 copy of that plane of prepared tensor ``k`` with invalid pixels NaN), one
    plane at a time (peak memory of one band, not of three float64 copies of the whole stack)."""
    t = p.tensors[k]
    for b in range(t.shape[0]):
        for c in range(t.shape[1]):
            a = t[b, c].detach().cpu().numpy().astype(np.float64, copy=True)
            a[~p.valid[b, c].cpu().numpy()] = np.nan
            yield b, c, a


def _spectra(p: Any, names: tuple[str, ...], n_bins: int | None) -> Spectra:
    """Radial power spectra of the prepared tensors, per band, averaged over batch items."""
    b, c, h, w = p.tensors[0].shape
    n = n_bins or max(4, min(h, w) // 2)
    power: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        acc = np.zeros((c, n))
        for _, ch, a in _planes(p, k):
            acc[ch] += radial_power_spectrum(a[None], n_bins=n)[1][0]
        power[name] = acc / b
    return Spectra(ring_bins(h, w, n)[4], power)


def radial_spectra(
    sr: Any, hr: Any = None, lr_interp: Any = None, *, mask: Any = None, n_bins: int | None = None
) -> Spectra:
    """Radial power spectra of SR and, when given, HR and the interpolated LR (same grid), per band.

    Invalid pixels (NaN or ``mask`` False) of any input are treated as invalid in all of them.
    """
    names = ("sr",) + (("hr",) if hr is not None else ()) + (("lr_interp",) if lr_interp is not None else ())
    arrays = [a for a in (sr, hr, lr_interp) if a is not None]
    p = prepare(*arrays, mask=mask, names=names, min_size=4)
    return _spectra(p, names, n_bins)


def frr_from_profiles(
    t_db: np.ndarray, i_db: np.ndarray, p_db: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PFR, AFR, overshoot and undershoot sums (dB) over the last axis of dB profiles T, I, P.

    PFR = sum(T - min(T, I)); AFR = sum(max(min(P, T), min(I, T)) - min(T, I));
    overshoot = sum max(P - T, 0); undershoot = sum max(I - P, 0). FRR = 100 AFR / PFR.
    """
    ti = np.minimum(t_db, i_db)
    pfr = np.sum(t_db - ti, axis=-1)
    afr = np.sum(np.maximum(np.minimum(p_db, t_db), ti) - ti, axis=-1)
    over = np.sum(np.maximum(p_db - t_db, 0.0), axis=-1)
    under = np.sum(np.maximum(i_db - p_db, 0.0), axis=-1)
    return pfr, afr, over, under


def _band_sel(freqs: np.ndarray, f_range: tuple[float, float]) -> np.ndarray:
    lo, hi = f_range
    if not 0.0 <= lo < hi:
        raise EosrError(f"f_range must satisfy 0 <= low < high, got {f_range}")
    sel = (freqs > lo) & (freqs <= hi)
    if not sel.any():
        raise EosrError(f"no spectrum bin in f_range {f_range} (bins span {freqs[0]:.4g}..{freqs[-1]:.4g})")
    return sel


def _out(v: Any, like_torch: bool) -> Any:
    a = np.asarray(v, dtype=np.float64)
    if like_torch:
        return torch.as_tensor(a)
    return float(a) if a.ndim == 0 else a


def frequency_restoration(
    sr: Any,
    hr: Any,
    lr_interp: Any,
    *,
    f_range: tuple[float, float] = (0.0, 0.5),
    mask: Any = None,
    n_bins: int | None = None,
    data_range: float = 1.0,
) -> dict[str, MetricResult]:
    """FRR (%) with over- and undershoot (dB) of SR against HR and the interpolated LR (module doc).

    Returns ``{"frr", "frr_overshoot_db", "frr_undershoot_db"}``; ``value`` pools the dB sums over
    bands (FRR = 100 sum_b AFR_b / sum_b PFR_b), ``per_band`` has one value per band.
    ``f_range`` (cycles per HR pixel) selects the bins; ``data_range`` is recorded only (dB profiles
    do not depend on the units). Raises :class:`EosrError` when I lacks no energy (PFR = 0).
    """
    p = prepare(sr, hr, lr_interp, mask=mask, names=("sr", "hr", "lr_interp"), min_size=4)
    sp = _spectra(p, ("sr", "hr", "lr_interp"), n_bins)
    return _frr_results(sp, f_range, data_range, not p.numpy)


def _frr_results(sp: Spectra, f_range: tuple[float, float], data_range: float, tt: bool) -> dict[str, MetricResult]:
    """FRR, over- and undershoot from the spectra of SR, HR and the interpolated LR (:func:`frequency_restoration`)."""
    sel = _band_sel(sp.freqs, f_range)
    t, i, pr = (sp.db(n)[:, sel] for n in ("hr", "lr_interp", "sr"))
    pfr, afr, over, under = frr_from_profiles(t, i, pr)
    if pfr.sum() <= 0:
        raise EosrError("FRR is undefined: the interpolated LR lacks no energy of HR in f_range")
    n = int(sel.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        frr_b = np.where(pfr > 0, 100.0 * afr / np.where(pfr > 0, pfr, 1.0), np.nan)
    extra = {"n_bins": n, "f_range": list(f_range), "data_range": float(data_range)}
    return {
        "frr": MetricResult(FRR, _out(100.0 * afr.sum() / pfr.sum(), tt), _out(frr_b, tt), dict(extra)),
        "frr_overshoot_db": MetricResult(
            FRR_OVERSHOOT, _out(over.sum() / (n * len(over)), tt), _out(over / n, tt), dict(extra)
        ),
        "frr_undershoot_db": MetricResult(
            FRR_UNDERSHOOT, _out(under.sum() / (n * len(under)), tt), _out(under / n, tt), dict(extra)
        ),
    }


def frequency_restoration_lr(
    sr: Any, lr_interp: Any, *, scale: int, mask: Any = None, n_bins: int | None = None
) -> dict[str, MetricResult]:
    """No-reference frequency restoration against the interpolated LR alone (no HR).

    ``hf_gain_db`` = mean over bins f > 1/(2 ``scale``) of P - I (dB): high-frequency power the SR
    adds above its input (0 for P = I; says nothing about whether the detail is true).
    ``lf_deviation_db`` = mean over bins f <= 1/(4 ``scale``) of |P - I| (dB): the SR should keep
    the frequencies the LR measures.
    """
    if not isinstance(scale, (int, np.integer)) or scale < 2:
        raise ScaleError(f"the no-reference FRR needs an integer scale >= 2, got {scale!r}")
    p = prepare(sr, lr_interp, mask=mask, names=("sr", "lr_interp"), min_size=4)
    sp = _spectra(p, ("sr", "lr_interp"), n_bins)
    fn = 0.5 / scale
    hi = _band_sel(sp.freqs, (fn, 0.5))
    lo = _band_sel(sp.freqs, (0.0, fn / 2))
    pr, i = sp.db("sr"), sp.db("lr_interp")
    gain_b = (pr - i)[:, hi].mean(axis=1)
    dev_b = np.abs(pr - i)[:, lo].mean(axis=1)
    tt = not p.numpy
    ex = {"lr_nyquist": fn, "n_bins_high": int(hi.sum()), "n_bins_low": int(lo.sum())}
    return {
        "hf_gain_db": MetricResult(HF_GAIN, _out(gain_b.mean(), tt), _out(gain_b, tt), dict(ex)),
        "lf_deviation_db": MetricResult(LF_DEVIATION, _out(dev_b.mean(), tt), _out(dev_b, tt), dict(ex)),
    }


#: The smallest image side of :func:`fourier_ring_correlation` (4 rings of at least one frequency each).
FRC_MIN_SIZE = 8


def fourier_ring_correlation(
    sr: Any, hr: Any, *, mask: Any = None, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fourier ring correlation and coherent transfer of SR against HR, per ring.

    FRC(f) = Re sum_ring S H* / sqrt(sum_ring |S|^2 sum_ring |H|^2)          (correlation only)
    CT(f)  = Re sum_ring S H* / max(sum_ring |S|^2, sum_ring |H|^2)
           = FRC(f) min(A, 1 / A),  A = sqrt(sum |S|^2 / sum |H|^2)           (correlation x amplitude)

    Returns ``(freqs, frc (n,), ct (n,), frc_per_band (C, n), ct_per_band (C, n))``; the pooled
    profiles sum numerators and denominators over bands and batch items. Mean removed and Hann window
    as the spectra; invalid pixels of either image are filled with the band mean in both. Images under
    :data:`FRC_MIN_SIZE` px, or more ``n_bins`` than the image has frequency rings, raise
    :class:`ShapeError` (such rings are empty: no NaN is returned for them). A ring where SR or HR has no
    power at all (a constant image) is NaN.
    """
    p = prepare(sr, hr, mask=mask, min_size=FRC_MIN_SIZE)
    _, c, h, w = p.tensors[0].shape
    n = n_bins or max(4, min(h, w) // 2)
    if n < 1 or (ring_bins(h, w, n)[3] == 0).any():
        raise ShapeError(f"{n} rings for a {h}x{w} image leave rings without any frequency: use n_bins <= "
                         f"{min(h, w) // 2}")
    win = np.outer(np.hanning(h), np.hanning(w))
    freqs = ring_bins(h, w, n)[4]
    num, ds, dt = (np.zeros((c, n)) for _ in range(3))
    for (_, ch, s_pl), (_, _, t_pl) in zip(_planes(p, 0), _planes(p, 1), strict=True):  # one band at a time
        a, r = half_spectrum(s_pl, win), half_spectrum(t_pl, win)  # real images: half spectra, weighted rings
        num[ch] += ring_sum(np.real(a * np.conj(r)), h, w, n)
        ds[ch] += ring_sum(np.abs(a) ** 2, h, w, n)
        dt[ch] += ring_sum(np.abs(r) ** 2, h, w, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc_b = num / np.sqrt(ds * dt)
        ct_b = num / np.maximum(ds, dt)
        frc = num.sum(0) / np.sqrt(ds.sum(0) * dt.sum(0))
        ct = num.sum(0) / np.maximum(ds.sum(0), dt.sum(0))
    return freqs, frc, ct, frc_b, ct_b


def _cutoff(freqs: np.ndarray, prof: np.ndarray, threshold: float) -> float:
    """First frequency where ``prof`` falls below ``threshold`` (linear interpolation from prof(0) = 1)."""
    f_prev, c_prev = 0.0, 1.0
    for f, c in zip(freqs, prof, strict=True):
        if not np.isfinite(c):
            continue
        if c < threshold:
            return float(f_prev + (c_prev - threshold) / (c_prev - c) * (f - f_prev))
        f_prev, c_prev = float(f), float(c)
    return 0.5


def effective_resolution(
    sr: Any, hr: Any, *, mask: Any = None, threshold: float = 0.5, n_bins: int | None = None
) -> MetricResult:
    """Effective resolution 0.5 / f_c in HR pixels, f_c the first frequency where the coherent
    transfer CT(f) of SR against HR (:func:`fourier_ring_correlation`) falls below ``threshold``.

    CT combines decorrelation (FRC; Saxton & Baumeister 1982) and amplitude mismatch (blur, noise,
    overshoot): CT >= 0.5 means SR carries at least half of HR's signal at f, in phase. 1.0 px when
    SR stays coherent up to the HR Nyquist; 3.0 / 5.9 px for the bicubic upsampling of a x2 / x4
    Sentinel-2 LR (measured on a BigEarthNet patch: PSF and bicubic both attenuate). Bounded by
    the image size: f_c >= f_1, the centre of the lowest ring, so the value (and each band's) is at
    most 0.5 / f_1 = min(H, W) px with the default rings.
    ``extra``: ``cutoff_frequency`` (cycles per HR pixel), ``bounded`` (the bound applied),
    ``max_px`` (0.5 / f_1), ``decorrelation_frequency`` (where FRC alone < ``threshold``), and the
    pooled CT / FRC profiles.
    """
    if not 0.0 < threshold < 1.0:
        raise EosrError(f"the threshold must lie in (0, 1), got {threshold}")
    freqs, frc, ct, _, ct_b = fourier_ring_correlation(sr, hr, mask=mask, n_bins=n_bins)
    return _er_result(freqs, frc, ct, ct_b, threshold, isinstance(sr, torch.Tensor))


def _er_result(freqs: np.ndarray, frc: np.ndarray, ct: np.ndarray, ct_b: np.ndarray, threshold: float,
               tt: bool) -> MetricResult:
    """:func:`effective_resolution` from the pooled FRC / CT profiles and the per-band CT."""
    f_min = float(freqs[0])  # centre of the lowest ring: the image measures nothing below it
    fc_raw = _cutoff(freqs, ct, threshold)
    if not fc_raw > 0:
        raise ShapeError("SR and HR are incoherent at every frequency")
    fc = max(fc_raw, f_min)
    fc_b = np.array([max(_cutoff(freqs, pb, threshold), f_min) for pb in ct_b])
    extra = {
        "cutoff_frequency": fc,
        "bounded": fc_raw < f_min,
        "max_px": 0.5 / f_min,
        "decorrelation_frequency": _cutoff(freqs, frc, threshold),
        "threshold": threshold,
        "freqs": freqs.tolist(),
        "coherent_transfer": np.nan_to_num(ct).tolist(),
        "frc": np.nan_to_num(frc).tolist(),
    }
    return MetricResult(EFFECTIVE_RESOLUTION, _out(0.5 / fc, tt), _out(0.5 / fc_b, tt), extra)


def restoration_and_resolution(
    sr: np.ndarray, hr: np.ndarray, lr_interp: np.ndarray | None, *, data_range: float = 1.0,
    threshold: float = 0.5, as_torch: bool = False, valid: np.ndarray | None = None,
    ring_sums: Callable[[np.ndarray | None, np.ndarray | None, np.ndarray | None, int, int, int], np.ndarray]
    | None = None,
) -> tuple[dict[str, MetricResult], MetricResult]:
    """:func:`frequency_restoration` (when ``lr_interp`` is given, else ``{}``) and
    :func:`effective_resolution` of (B, C, H, W) arrays from one spectrum per image and band.

    ``valid`` (B, C, H, W), when given, marks the pixels valid in every input (e.g. the border a shift
    compensation invalidates); the others are filled with the band mean of the valid ones, as the two
    functions do with a mask (so the values are theirs with ``mask=valid``); the inputs must be finite
    where valid (everywhere without ``valid``).

    The Hann-windowed, mean-removed half spectra of SR and HR serve both the FRR power profiles and the
    Fourier ring correlation; transforms run in the inputs' precision (float32 stays float32, rings
    summed in float64). Same definitions and defaults as the two functions (rings ``min(H, W) // 2``,
    ``f_range`` (0, 0.5)); values equal up to float32 rounding. ``ring_sums(fs, fh, None, h, w, n)``, when
    given, returns the ring sums (Re(FS conj FH), |FS|^2, |FH|^2, 0; (4, n)) of two half spectra in one
    pass (the fused engine's), instead of one ``ring_sum`` per product, and ``ring_sums(None, None, FI,
    h, w, n)[3]`` the power of one. Planes (item, band) run in parallel on scipy.fft's workers, one FFT
    thread each (:mod:`eosr._threads`); each is windowed and row-transformed block by block into a
    column-major spectrum, then column-transformed in place along contiguous columns (18.5 vs 24.8 ms per
    2048² spectrum with a row-major one, same values), so a plane needs its spectrum and a cache-sized
    block, not a full windowed copy. (The windowing stays in NumPy: a compiled kernel right
    before each FFT left its OpenMP threads spinning while the FFT threads ran: 23-27 vs 17-19 ms per
    2048² spectrum.)
    """
    import threading

    import scipy.fft as sfft

    from eosr._threads import map_planes, plane_threads
    from eosr.physics.spectrum import ring_bins, ring_sum

    b, c, h, w = sr.shape
    if min(h, w) < FRC_MIN_SIZE:
        raise ShapeError(f"images under {FRC_MIN_SIZE} px have too few frequency rings")
    n = max(4, min(h, w) // 2)
    dt = np.dtype(np.float32 if sr.dtype == np.float32 and hr.dtype == np.float32 else np.float64)
    counts, freqs = ring_bins(h, w, n)[3], ring_bins(h, w, n)[4]
    scale = (h * w) / (float(np.hanning(h).sum()) * float(np.hanning(w).sum())) ** 2
    num, ds, dh, di = (np.zeros((c, n)) for _ in range(4))

    threads, fw = plane_threads(b * c)  # (item, band) planes in parallel, one FFT thread each
    lock = threading.Lock()  # one compiled ring pass at a time (its own threads)

    hy, hx = np.hanning(h).astype(dt)[:, None], np.hanning(w).astype(dt)  # the separable Hann window
    cdt = np.complex64 if dt == np.float32 else np.complex128
    step = max(1, (1 << 19) // (w * dt.itemsize))  # rows per cache-sized block

    def spec(a: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
        """rfft2 of the mean-removed (invalid pixels: the valid mean), windowed plane: rows transformed
        block by block into the spectrum, then its columns in place (no full-size windowed copy)."""
        band = a.astype(dt, copy=False)
        with np.errstate(invalid="ignore", divide="ignore"):  # a band with no valid pixel: NaN, reported as such
            mean = np.asarray(band.mean(dtype=np.float64) if ok is None or not ok.any()
                              else band.mean(dtype=np.float64, where=ok), dtype=dt)
        out = np.empty((h, w // 2 + 1), dtype=cdt, order="F")  # (columns contiguous for their transform)
        for r0 in range(0, h, step):
            blk = band[r0 : r0 + step] - mean
            if ok is not None:
                blk[~ok[r0 : r0 + step]] = 0
            blk *= hy[r0 : r0 + step]
            blk *= hx
            out[r0 : r0 + step] = sfft.rfft(blk, axis=1, workers=fw)
        return np.asarray(sfft.fft(out, axis=0, workers=fw, overwrite_x=True))  # (in place)

    def rings(fs: np.ndarray, fh: np.ndarray) -> np.ndarray:
        """(Re(FS conj FH), |FS|^2, |FH|^2) ring sums (3, n)."""
        if ring_sums is not None:
            with lock:
                return ring_sums(fs, fh, None, h, w, n)[:3]
        return np.stack([ring_sum(np.real(fs * np.conj(fh)), h, w, n), power(fs), power(fh)])

    def power(f: np.ndarray) -> np.ndarray:
        """|F|^2 ring sums (n,)."""
        if ring_sums is not None:
            with lock:
                return ring_sums(None, None, f, h, w, n)[3]
        return ring_sum(f.real**2 + f.imag**2, h, w, n)

    def plane(k: int) -> np.ndarray:
        """The four ring sums (4, n) of plane k = (item, band): SR x HR, SR, HR and the interpolated LR's
        power (two spectra alive at a time)."""
        i, ch = divmod(k, c)
        ok = None if valid is None or valid[i, ch].all() else valid[i, ch]
        out = np.zeros((4, n))
        out[:3] = rings(spec(sr[i, ch], ok), spec(hr[i, ch], ok))
        if lr_interp is not None:
            out[3] = power(spec(lr_interp[i, ch], ok))
        return out

    for k, rs in enumerate(map_planes(plane, b * c, threads)):
        ch = k % c
        num[ch] += rs[0]
        ds[ch] += rs[1]
        dh[ch] += rs[2]
        di[ch] += rs[3]
    frr: dict[str, MetricResult] = {}
    if lr_interp is not None:
        cnt = np.maximum(counts, 1)
        sp = Spectra(freqs, {"sr": ds / cnt * scale / b, "hr": dh / cnt * scale / b,
                             "lr_interp": di / cnt * scale / b})
        frr = _frr_results(sp, (0.0, 0.5), data_range, as_torch)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = num.sum(0) / np.sqrt(ds.sum(0) * dh.sum(0))
        ct = num.sum(0) / np.maximum(ds.sum(0), dh.sum(0))
        ct_b = num / np.maximum(ds, dh)
    return frr, _er_result(freqs, frc, ct, ct_b, threshold, as_torch)
