"""File-level simulation: HR GeoTIFF -> LR GeoTIFF (or a multi-image set) through the operator.

Large single-frame inputs (more than ``WINDOWED_PIXELS`` HR pixels per band, or whenever ``block`` is
given) are simulated window by window: each LR block is computed from its HR window grown by a halo
that covers the PSF support, written to an uncompressed stage file and finally copied to a compressed
GeoTIFF, so memory does not grow with the scene. Noise-free results equal whole-image simulation to
float error (borders use the same symmetric extension at the scene edge). With noise, each block
draws its own seeded noise (seed, block row, block column): same statistics and reproducible, but
not the same realisation as the whole-image path. Multi-frame sets (``frames`` > 0) are whole-image.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from eosr import SCHEMA_VERSION, __version__
from eosr.degrade import Degradation, simulate_frames
from eosr.errors import DataError, ScaleError, SensorError
from eosr.io import write_raster
from eosr.io.raster import atomic_folder, atomic_path, check_output_folder, lr_transform, to_dn
from eosr.physics import check_scale
from eosr.physics.psf import kernel_length

WINDOWED_PIXELS = 4096 * 4096
FRAME_SET = "an eosr frame set (frame_NNN.tif, frames.json)"
_FRAME_FILE = re.compile(r"frame_\d{3,}\.tif(\.aux\.xml)?|frames\.json")


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
    if str(sensor).lower().endswith(".toml"):  # a sensor file: its calibrated kernels when it has them, as
        from eosr.degrade.calibrate import operator_from_file  # every command resolves --operator FILE

        op = operator_from_file(sensor, bands.split(",") if isinstance(bands, str) else bands, r, wald=wald,
                                **options)
    else:
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
    block: int | None = None,
    operator: str | None = None,
    dn_offset: float | None = None,
) -> Path:
    """Degrade ``hr_path`` and write the LR raster with the same CRS and origin, pixel size x r.

    Band selection: if the file's bands are described (e.g. ``B04``), ``bands`` selects them by name;
    otherwise ``bands`` names the sensor bands of the file's bands in order. With ``frames`` > 0,
    ``lr_path`` is a folder receiving ``frame_000.tif``... and ``frames.json`` (shifts, PSF, gains), staged
    beside it and moved into place as a whole: a re-run replaces the whole set, an interruption leaves
    the previous set or none, and a folder holding other files is refused (docs/conventions.md, "Outputs").
    ``block`` (LR pixels) forces windowed simulation with that block size (see the module docstring).
    ``operator``: ``"full"`` (default), ``"wald"`` (same as ``wald=True``) or a sensor/calibration file
    (:mod:`eosr.degrade.resolve`); the LR records it in its ``eosr_operator`` tag, and with ``crop`` the
    HR window it covers in ``eosr_hr_window``. ``dn_scale``/``dn_offset``: DN -> reflectance of the HR
    (else :func:`eosr.io.raster.resolve_radiometry`).
    """
    from eosr.degrade.resolve import check_mode

    r = check_scale(scale)
    mode = check_mode(operator)
    if mode is not None and wald and mode != "wald":
        raise SensorError(f"give either --operator {mode} or --wald, not both")
    if mode not in (None, "full", "wald"):
        if mtf is not None:
            raise SensorError("give either an operator file or --mtf, not both")
        sensor = mode
    wald = wald or mode == "wald"
    band_list = [b.strip() for b in bands.split(",")] if bands else None
    if frames <= 0:
        from eosr.scene.source import open_source

        src = open_source(hr_path, band_list, dn_scale=dn_scale, dn_offset=dn_offset)
        if block is not None or src.height * src.width > WINDOWED_PIXELS:
            described = list(src.descriptions) if all(src.descriptions) else None
            op = build_operator(sensor, band_list or described, r, src.count, mtf=mtf, wald=wald, noise_sigma=noise,
                                snr=snr,
                                snr_reference=snr_reference, bits=bits, quant_range=quant_range, gain=gain,
                                offset=offset)
            return _simulate_windowed(src, lr_path, op, crop=crop, seed=seed, block=block or 1024,
                                      name=Path(hr_path).name)
        src.close()
    from eosr.scene.source import read_scene

    hr = read_scene(hr_path, band_list, dn_scale=dn_scale, dn_offset=dn_offset)
    op = build_operator(sensor, band_list or (hr.band_names if hr.described else None), r, hr.shape[0], mtf=mtf,
                        wald=wald, noise_sigma=noise, snr=snr,
                        snr_reference=snr_reference, bits=bits, quant_range=quant_range, gain=gain, offset=offset)
    data = hr.data
    if not np.isfinite(data).any():
        raise DataError(_NO_VALID.format(Path(hr_path).name))
    h, w = data.shape[-2:]
    if h % r or w % r:
        if not crop:
            raise ScaleError(f"HR size {h}x{w} is not divisible by the scale {r} (use --crop)")
        data = op.crop(data)
    names = list(op.bands) if op.bands else hr.band_names
    tags = {"eosr_version": __version__, "eosr_operator": json.dumps(op.describe()), "eosr_seed": seed,
            **_crop_tag(h, w, r)}
    transform = lr_transform(hr.transform, r) if hr.georeferenced else hr.transform  # no georeference: none made up
    out_kw: dict[str, Any] = dict(crs=hr.crs, transform=transform, band_names=names, dtype=hr.dtype,
                                  dn_scale=hr.dn_scale, dn_offset=hr.dn_offset, nodata=hr.nodata)
    if frames <= 0:
        lr = op(data.astype(np.float64), seed=seed).astype(np.float32)
        return write_raster(lr_path, lr, tags=tags, **out_kw)
    folder = Path(lr_path)
    check_output_folder(folder, is_frame_file, FRAME_SET)  # before the work
    fs = simulate_frames(data.astype(np.float64), op, frames, max_shift_lr=max_shift, seed=seed)
    meta = {"schema_version": SCHEMA_VERSION,
            "scale": r, "shifts_hr_px_dy_dx": fs.shifts.tolist(), "sigmas_hr_px": fs.sigmas.tolist(),
            "gains": fs.gains.tolist(), "biases": fs.biases.tolist(), "operator": op.describe(), "seed": seed}
    with atomic_folder(folder, is_frame_file, FRAME_SET) as stage:  # the set appears (or is replaced) whole
        for k in range(frames):
            write_raster(stage / f"frame_{k:03d}.tif", np.asarray(fs.frames[k], dtype=np.float32),
                         tags={**tags, "eosr_frame": k}, **out_kw)
        (stage / "frames.json").write_text(json.dumps(meta, indent=2))
    return folder


_NO_VALID = "{}: no valid pixel (all nodata or NaN): nothing to simulate"


def is_frame_file(path: Path) -> bool:
    """A member of a simulated frame set: ``frame_NNN.tif``, ``frames.json`` (or a GDAL ``.aux.xml`` of a frame)."""
    return _FRAME_FILE.fullmatch(path.name) is not None


def _crop_tag(h: int, w: int, r: int) -> dict[str, str]:
    """``eosr_hr_window`` when the HR was cropped to a multiple of the scale (the LR covers only that)."""
    if not (h % r or w % r):
        return {}
    return {"eosr_hr_window": f"rows 0:{h - h % r}, columns 0:{w - w % r} of the {h}x{w} HR"}


def psf_halo_lr(op: Degradation) -> int:
    """LR pixels of HR context each side that cover the operator's PSF support (for windowed runs)."""
    r = op.scale
    shift = max(abs(op.shift[0]), abs(op.shift[1]))
    if op.sigmas is not None:
        length = max(kernel_length(s, r, shift) for s in op.sigmas)
    else:
        length = max(max(k.shape) for k in op.kernels or ()) + 2 * int(np.ceil(shift)) + r
    return int(np.ceil(length / r)) + 1


def _simulate_windowed(src: Any, lr_path: str | os.PathLike[str], op: Degradation, *, crop: bool, seed: int,
                       block: int, name: str = "the input") -> Path:
    import rasterio

    from eosr.scene.aggregate import blocks
    from eosr.scene.sr import GDAL_CACHE_BYTES, check_writable, finish_stage

    r = op.scale
    if (src.height % r or src.width % r) and not crop:
        raise ScaleError(f"HR size {src.height}x{src.width} is not divisible by the scale {r} (use --crop)")
    h, w = src.height // r, src.width // r
    if block < 1:
        raise ScaleError(f"block must be >= 1 LR pixel, got {block}")
    names = list(op.bands) if op.bands else list(src.band_names)
    is_int = np.issubdtype(np.dtype(src.dtype), np.integer)
    dtype = src.dtype if is_int or src.dtype == "float32" else "float32"
    nodata = src.out_nodata if src.out_nodata is not None or is_int else float("nan")
    tags = {"eosr_version": __version__, "eosr_operator": json.dumps(op.describe()), "eosr_seed": seed,
            "eosr_windowed": f"block {block} LR px, noise seeded per block", **_crop_tag(src.height, src.width, r)}
    halo = psf_halo_lr(op)
    out = Path(lr_path)
    check_writable(out)
    profile = dict(driver="GTiff", width=w, height=h, count=src.count, dtype=dtype, nodata=nodata, crs=src.crs,
                   transform=lr_transform(src.transform, r) if src.georeferenced else src.transform,
                   tiled=True, blockxsize=256, blockysize=256,
                   BIGTIFF="IF_SAFER")
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), atomic_path(out) as tmp:
        stage = Path(str(tmp) + ".stage.tif")
        try:
            valid = False
            with rasterio.open(stage, "w", **profile) as ds:
                for k, (y0, y1, x0, x1) in enumerate(blocks(h, w, block)):
                    wy0, wy1 = max(0, y0 - halo), min(h, y1 + halo)
                    wx0, wx1 = max(0, x0 - halo), min(w, x1 + halo)
                    hr = src.read((wy0 * r, wy1 * r, wx0 * r, wx1 * r)).astype(np.float64)
                    lr = np.asarray(op(hr, seed=int(np.random.SeedSequence([seed, k]).generate_state(1)[0])))
                    part = lr[:, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0].astype(np.float32)
                    valid = valid or bool(np.isfinite(part).any())
                    win = rasterio.windows.Window(x0, y0, x1 - x0, y1 - y0)
                    ds.write(to_dn(part, dtype, src.dn_scale, src.dn_offset, nodata), window=win)
                for i, n in enumerate(names):
                    ds.set_band_description(i + 1, str(n))
                if is_int or (src.dn_scale, src.dn_offset) != (1.0, 0.0):
                    ds.scales = [src.dn_scale] * src.count
                    ds.offsets = [src.dn_offset] * src.count
                ds.update_tags(**{k: str(v) for k, v in tags.items()})
            if not valid:
                raise DataError(_NO_VALID.format(name))
            finish_stage(stage, tmp, cog=False)
        finally:
            src.close()
            if stage.exists():
                stage.unlink()
    return out
