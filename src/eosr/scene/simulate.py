"""File-level simulation: HR GeoTIFF -> LR GeoTIFF (or a multi-image set) through the operator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eosr import __version__
from eosr.degrade import Degradation, simulate_frames
from eosr.errors import ScaleError, SensorError
from eosr.io import read_raster, write_raster
from eosr.io.raster import atomic_path, lr_transform
from eosr.physics import check_scale


def _parse_floats(s: str | None) -> list[float] | None:
    if s is None:
        return None
    try:
        return [float(v) for v in str(s).split(",") if v.strip()]
    except ValueError:
        raise SensorError(f"cannot parse MTF values {s!r}") from None


def build_operator(
    sensor: str | None,
    bands: str | list[str] | None,
    scale: Any,
    n_bands: int,
    *,
    mtf: str | list[float] | None = None,
    wald: bool = False,
    **options: Any,
) -> Degradation:
    """Operator for a file: from explicit MTF values, or from the sensor and band list."""
    r = check_scale(scale)
    if mtf is not None:
        vals = _parse_floats(mtf) if isinstance(mtf, str) else list(mtf)
        assert vals is not None
        if len(vals) not in (1, n_bands):
            raise SensorError(f"{len(vals)} MTF values for {n_bands} bands")
        from eosr.physics import sigma_from_mtf, wald_sigma

        fn = wald_sigma if wald else sigma_from_mtf
        sig = tuple(fn(m, r) for m in (vals * n_bands if len(vals) == 1 else vals))
        names = tuple(bands.split(",")) if isinstance(bands, str) else (tuple(bands) if bands else None)
        return Degradation(scale=r, sigmas=sig, bands=names, description="explicit MTF", **options)
    if sensor is None:
        raise SensorError("give a sensor (and bands) or explicit MTF values")
    op = Degradation.from_sensor(sensor, bands, r, wald=wald, **options)
    if op.n_bands != n_bands:
        raise SensorError(f"{op.n_bands} sensor bands for an image of {n_bands} bands: pass --bands")
    return op


def simulate_file(
    hr_path: str | os.PathLike[str],
    lr_path: str | os.PathLike[str],
    *,
    sensor: str | None = "sentinel2",
    bands: str | None = None,
    scale: Any = 2,
    mtf: str | None = None,
    wald: bool = False,
    noise: float = 0.0,
    snr: float | None = None,
    snr_reference: float = 0.1,
    bits: int | None = None,
    quant_range: float = 1.0,
    gain: float = 1.0,
    offset: float = 0.0,
    frames: int = 0,
    max_shift: float = 1.0,
    crop: bool = False,
    seed: int = 0,
    dn_scale: float | None = None,
) -> Path:
    """Degrade ``hr_path`` and write the LR raster with the same CRS and origin, pixel size x r.

    Band selection: if the file's bands are described (e.g. ``B04``), ``bands`` selects them by name;
    otherwise ``bands`` names the sensor bands of the file's bands in order. With ``frames`` > 0,
    ``lr_path`` is a folder receiving ``frame_000.tif``... and ``frames.json`` (shifts, PSF, gains).
    """
    r = check_scale(scale)
    band_list = [b.strip() for b in bands.split(",")] if bands else None
    try:
        hr = read_raster(hr_path, band_list, dn_scale=dn_scale)
    except Exception as e:  # fall back to positional bands when the file has no such descriptions
        from eosr.errors import DataError

        if not isinstance(e, DataError) or band_list is None or "no band described" not in str(e):
            raise
        hr = read_raster(hr_path, None, dn_scale=dn_scale)
        if hr.shape[0] != len(band_list):
            raise SensorError(f"{len(band_list)} bands named for a file of {hr.shape[0]} bands") from None
    op = build_operator(sensor, band_list, r, hr.shape[0], mtf=mtf, wald=wald, noise_sigma=noise, snr=snr,
                        snr_reference=snr_reference, bits=bits, quant_range=quant_range, gain=gain, offset=offset)
    data = hr.data
    h, w = data.shape[-2:]
    if h % r or w % r:
        if not crop:
            raise ScaleError(f"HR size {h}x{w} is not divisible by the scale {r} (use --crop)")
        data = op.crop(data)
    names = list(op.bands) if op.bands else hr.band_names
    tags = {"eosr_version": __version__, "eosr_operator": json.dumps(op.describe()), "eosr_seed": seed}
    transform = lr_transform(hr.transform, r)
    out_kw: dict[str, Any] = dict(crs=hr.crs, transform=transform, band_names=names, dtype=hr.dtype,
                                  dn_scale=hr.dn_scale, dn_offset=hr.dn_offset, nodata=hr.nodata)
    if frames <= 0:
        lr = op(data.astype(np.float64), seed=seed).astype(np.float32)
        return write_raster(lr_path, lr, tags=tags, **out_kw)
    fs = simulate_frames(data.astype(np.float64), op, frames, max_shift_lr=max_shift, seed=seed)
    folder = Path(lr_path)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(frames):
        write_raster(folder / f"frame_{k:03d}.tif", np.asarray(fs.frames[k], dtype=np.float32),
                     tags={**tags, "eosr_frame": k}, **out_kw)
    meta = {"scale": r, "shifts_hr_px_dy_dx": fs.shifts.tolist(), "sigmas_hr_px": fs.sigmas.tolist(),
            "gains": fs.gains.tolist(), "biases": fs.biases.tolist(), "operator": op.describe(), "seed": seed}
    with atomic_path(folder / "frames.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return folder
