"""Evaluate rasters on disk: ``eosr evaluate``'s Python twin, whole image or window by window.

:func:`evaluate_files` (rules in docs/metrics.md, "Evaluating files"):

- **radiometry**: each file is read as reflectance by :func:`eosr.io.raster.resolve_radiometry`
  (``dn_scale``/``dn_offset`` for integer files, else their metadata or the Sentinel-2 convention;
  float files as they are; 8-bit renderings are never guessed); the rule used per file is recorded;
- **grids**: georeferenced SR and HR share CRS and pixel size, LR has an integer multiple of it, and
  all origins lie on the LR grid (GDAL pixel-is-area). Different extents are evaluated on their
  **common footprint** (recorded). Images without georeference (PNG, JPEG) need ``scale`` when an LR
  is given; their grids come from the shapes (SR = HR, SR = r x LR exactly); mixing them with
  georeferenced files is refused;
- **operator**: :func:`eosr.degrade.resolve.resolve_operator`: ``operator`` ("full", "wald" or a
  sensor file), else the ``eosr_operator`` tag of the LR file (written by ``eosr simulate``), else the
  full PSF of ``sensor``;
- **whole image** (default up to :data:`WHOLE_LIMIT` values per raster): every metric the inputs allow
  (:func:`eosr.evaluate`), maps included; **windowed** (larger scenes, or ``windowed=True``): blocks
  with pooled exact sums, so the pixel metrics (PSNR, RMSE, MAE, SAM, ERGAS;
  :class:`eosr.scene.aggregate.PixelStats`) and the LR fidelity (L1, L2: mean |LR - D(SR)| with D applied
  to each SR block plus a halo that covers the PSF) equal the whole-image values to float error, with
  memory bounded by the block size. SSIM and UIQI come from the fused engine on blocks read with a
  5 px halo, equal to the whole image's (fully valid, unmasked images; otherwise skipped with the
  reason). Spectral and registration metrics need the whole image and are listed as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosr.errors import DataError, GeoError, RadiometryError, ScaleError, ShapeError

#: Above this many values (bands x rows x columns) per raster, :func:`evaluate_files` goes windowed.
WHOLE_LIMIT = 4 * 2048 * 2048

PathLike = str | os.PathLike[str]


def _grid(path: PathLike, dn_scale: float | None, dn_offset: float | None,
          bands: Sequence[str] | None = None) -> Any:
    """A windowed source; the explicit DN scale applies to integer files, and to float files only when their
    values are not reflectance (:func:`eosr.io.raster.check_float_reflectance`: float DN).
    A band folder or Sentinel-2 product gives the ``bands`` named, with the product's invalid classes
    (L2A SCL: clouds, shadows) read as nodata."""

    from eosr.io.raster import open_quietly
    from eosr.scene.source import is_multifile, open_source

    p = Path(path)
    if p.exists() and is_multifile(p):
        return open_source(p, bands, dn_scale=dn_scale, dn_offset=dn_offset, mask=True)
    if (dn_scale is None and dn_offset is None) or not p.exists():
        return open_source(p)
    with open_quietly(p) as ds:
        integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
    if not integer:
        try:
            return open_source(p)
        except RadiometryError:  # float DN: the scale given is theirs
            pass
    return open_source(p, dn_scale=dn_scale, dn_offset=dn_offset)


@dataclass
class _Crop:
    """A source seen through a window of rows ``y0..`` and columns ``x0..`` (the common footprint)."""

    src: Any
    y0: int
    x0: int
    height: int
    width: int

    def __getattr__(self, name: str) -> Any:
        return getattr(self.src, name)

    @property
    def transform(self) -> Any:
        from affine import Affine

        return self.src.transform * Affine.translation(self.x0, self.y0)

    def read(self, win: tuple[int, int, int, int]) -> np.ndarray:
        y0, y1, x0, x1 = win
        return self.src.read((y0 + self.y0, y1 + self.y0, x0 + self.x0, x1 + self.x0))


def _offset_px(fine: Any, other: Any, step: float, names: tuple[str, str]) -> tuple[int, int]:
    """Origin of ``other`` in ``fine`` pixels (row, column); must be whole pixels."""
    a, e = float(fine.transform.a), float(fine.transform.e)
    dx = (float(other.transform.c) - float(fine.transform.c)) / a
    dy = (float(other.transform.f) - float(fine.transform.f)) / e
    ox, oy = round(dx), round(dy)
    if abs(dx - ox) > 1e-3 or abs(dy - oy) > 1e-3:
        raise GeoError(f"{names[1]}'s origin lies {dy:.3f}, {dx:.3f} {names[0]} pixels from {names[0]}'s: the grids "
                       "are not aligned (pixel-is-area grids share whole pixels)")
    return oy, ox


def _footprint(g_sr: Any, g_hr: Any, g_lr: Any, scale: int | None) -> tuple[Any, Any, Any, int | None, dict[str, Any]]:
    """Check the grids and restrict every source to the common footprint (module docstring)."""
    from eosr.io.raster import check_grids

    geo = [g.georeferenced for g in (g_sr, g_hr, g_lr) if g is not None]
    if any(geo) and not all(geo):
        raise GeoError("some inputs are georeferenced and others are not: give all with georeference or none")
    if g_lr is not None and g_lr.count != g_sr.count:
        raise ShapeError(f"LR has {g_lr.count} bands, SR {g_sr.count}")
    if g_hr is not None and g_hr.count != g_sr.count:
        raise ShapeError(f"SR has {g_sr.count} bands, HR {g_hr.count}")
    if not all(geo):  # grids from the shapes
        if g_hr is not None and (g_hr.height, g_hr.width) != (g_sr.height, g_sr.width):
            raise ShapeError(f"SR {g_sr.height}x{g_sr.width} and HR {g_hr.height}x{g_hr.width} differ in size (images "
                             "without georeference must cover the same footprint)")
        if g_lr is not None:
            if scale is None:
                raise ScaleError("images without georeference need --scale (Python: scale=) to pair SR and LR")
            if (g_lr.height * scale, g_lr.width * scale) != (g_sr.height, g_sr.width):
                raise ShapeError(f"SR {g_sr.height}x{g_sr.width} is not LR {g_lr.height}x{g_lr.width} x{scale}")
        return g_sr, g_hr, g_lr, scale, {"georeferenced": False}
    for g, n in ((g_hr, "HR"), (g_lr, "LR")):
        if g is not None and g.crs != g_sr.crs:
            raise GeoError(f"SR and {n}: CRS mismatch ({g_sr.crs} vs {g.crs})")
    r = 1
    if g_lr is not None:
        px_s, px_l = abs(float(g_sr.transform.a)), abs(float(g_lr.transform.a))
        r = int(round(px_l / px_s))
        if r < 1 or abs(px_l / px_s - r) > 1e-6 * max(1.0, r):
            raise ScaleError(f"pixel sizes {px_l} (LR) and {px_s} (SR) are not an integer ratio (the LR pixel must be "
                             "an integer multiple of the SR pixel)")
        if scale is not None and int(scale) != r:
            raise ScaleError(f"the rasters are at scale {r}, not the requested {scale}")
    if g_hr is not None and not np.allclose(tuple(g_hr.transform)[:6:4] + tuple(g_hr.transform)[1:5:3],
                                            tuple(g_sr.transform)[:6:4] + tuple(g_sr.transform)[1:5:3], rtol=1e-9):
        raise GeoError(f"SR and HR lie on different grids (pixel sizes or rotation differ): "
                       f"{tuple(g_sr.transform)[:6]} vs {tuple(g_hr.transform)[:6]}")
    # rows/columns of each footprint in SR pixels
    boxes = {"sr": (0, g_sr.height, 0, g_sr.width)}
    if g_hr is not None:
        oy, ox = _offset_px(g_sr, g_hr, 1, ("SR", "HR"))
        boxes["hr"] = (oy, oy + g_hr.height, ox, ox + g_hr.width)
    lro = (0, 0)
    if g_lr is not None:
        lro = _offset_px(g_sr, g_lr, r, ("SR", "LR"))
        boxes["lr"] = (lro[0], lro[0] + g_lr.height * r, lro[1], lro[1] + g_lr.width * r)
    y0 = max(b[0] for b in boxes.values())
    y1 = min(b[1] for b in boxes.values())
    x0 = max(b[2] for b in boxes.values())
    x1 = min(b[3] for b in boxes.values())
    y0 += (lro[0] - y0) % r  # snap to the LR grid
    x0 += (lro[1] - x0) % r
    y1 -= (y1 - y0) % r
    x1 -= (x1 - x0) % r
    if y1 <= y0 or x1 <= x0:
        raise GeoError("the footprints of " + ", ".join(k.upper() for k in boxes) + " do not overlap")
    whole = all(b == (y0, y1, x0, x1) for k, b in boxes.items())
    if g_lr is not None:
        check_grids(g_sr if whole else _Crop(g_sr, y0, x0, y1 - y0, x1 - x0),
                    g_lr if whole else _Crop(g_lr, (y0 - lro[0]) // r, (x0 - lro[1]) // r, (y1 - y0) // r,
                                             (x1 - x0) // r), r, names=("SR", "LR"))
    info: dict[str, Any] = {"georeferenced": True}
    if whole:
        return g_sr, g_hr, g_lr, (r if g_lr is not None else scale), info
    h, w = y1 - y0, x1 - x0
    out_sr = _Crop(g_sr, y0, x0, h, w)
    out_hr = _Crop(g_hr, y0 - boxes["hr"][0], x0 - boxes["hr"][2], h, w) if g_hr is not None else None
    out_lr = (_Crop(g_lr, (y0 - lro[0]) // r, (x0 - lro[1]) // r, h // r, w // r) if g_lr is not None else None)
    t = out_sr.transform
    info["footprint"] = {"bounds": [t.c, t.f + h * t.e, t.c + w * t.a, t.f], "sr_window": [y0, y1, x0, x1],
                         "note": "common footprint of inputs with different extents"}
    for k, g in (("hr", out_hr), ("lr", out_lr)):
        if g is not None:
            info["footprint"][f"{k}_window"] = [g.y0, g.y0 + g.height, g.x0, g.x0 + g.width]
    return out_sr, out_hr, out_lr, (r if g_lr is not None else scale), info


def evaluate_files(
    sr: PathLike,
    hr: PathLike | None = None,
    lr: PathLike | None = None,
    *,
    sensor: Any = None,
    bands: Sequence[str] | str | None = None,
    scale: int | None = None,
    operator: str | None = None,
    mask: PathLike | None = None,
    uncertainty: PathLike | None = None,
    data_range: float = 1.0,
    noise_sigma: float | None = None,
    lpips_weights: str | None = None,
    maps_dir: PathLike | None = None,
    windowed: bool | None = None,
    block: int = 1024,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
    metrics: str | Sequence[str] | None = None,
) -> Any:
    """Evaluate an SR raster against an optional HR (same grid) and LR (coarser by an integer r).

    Rules for radiometry, grids, footprints and the operator: module docstring. ``bands`` names the
    files' bands in order (for the sensor operator); ``mask`` is a raster on the SR grid, non-zero =
    valid. ``maps_dir`` receives the per-pixel maps as GeoTIFF on the SR grid (the LR residual on the LR
    grid), staged beside it and moved into place as a whole (a re-run replaces the set; a folder holding
    other files is refused: docs/conventions.md, "Outputs"). Returns an
    :class:`eosr.evaluation.EvaluationResult` whose ``info`` records the radiometry, georeference, footprint
    and operator used; bad input raises a one-line :class:`eosr.errors.EosrError`. Without ``uncertainty``,
    the std ``eosr sr --uncertainty`` wrote with the SR is read when HR is given and the uncertainty
    metrics are wanted (:func:`uncertainty_sidecar`; ``info["uncertainty"]`` says which file and why).
    """
    from eosr.degrade.resolve import TAG, resolve_operator
    from eosr.evaluation import evaluate
    from eosr.evaluation.core import METRIC_GROUPS, resolve_metrics
    from eosr.io.source import file_tag

    if hr is None and lr is None:
        raise DataError("give HR, LR or both to evaluate SR against")
    if isinstance(sensor, str):  # a misspelt --sensor is refused even where the LR's tag makes it unused
        from eosr.sensors import get_sensor

        get_sensor(sensor)
    selected = resolve_metrics(metrics)
    u_source, u_note = ("option" if uncertainty is not None else None), None
    if uncertainty is None and hr is not None and (selected is None or selected & set(METRIC_GROUPS["uncertainty"])):
        uncertainty, u_note = uncertainty_sidecar(sr)
        u_source = "sidecar" if uncertainty is not None else None
    if maps_dir is not None:
        from eosr.evaluation.result import MAP_SET, is_map_file
        from eosr.io.raster import check_output_folder

        check_output_folder(maps_dir, is_map_file, MAP_SET)  # before the work
    from eosr.io.raster import radiometry_record

    opened: list[Any] = []
    try:
        sel = ([b.strip() for b in bands.split(",") if b.strip()] if isinstance(bands, str) else list(bands)
               if bands is not None else None)
        for p in (sr, hr, lr):
            opened.append(_grid(p, dn_scale, dn_offset, sel) if p is not None else None)
        radiometry = {k: radiometry_record(g)
                      for k, g in zip(("sr", "hr", "lr"), opened, strict=True) if g is not None}
        g_sr, g_hr, g_lr, r, geo = _footprint(opened[0], opened[1], opened[2], scale)
        names = None
        if bands is not None:
            names = [b.strip() for b in bands.split(",") if b.strip()] if isinstance(bands, str) else list(bands)
            if len(names) != g_sr.count:
                raise ShapeError(f"{len(names)} band names for rasters of {g_sr.count} bands")
        sensor_bands = names if names is not None else (list(g_sr.band_names) if sensor is not None and
                                                        _described(g_sr.band_names) else None)
        choice = resolve_operator(operator, sensor=sensor, bands=sensor_bands, scale=r, n_bands=g_sr.count,
                                  tag=file_tag(lr, TAG), default="full")
        if names is None and _described(g_sr.band_names):  # the SR's own band descriptions label the result
            names = list(g_sr.band_names)
        n_values = g_sr.count * g_sr.height * g_sr.width
        if windowed is None:
            windowed = n_values > WHOLE_LIMIT
        if windowed and u_source == "sidecar":  # (not an error: the user did not ask for it)
            u_note = f"{Path(str(uncertainty)).name} beside the SR is not read in windowed evaluation (pass --whole)"
            uncertainty, u_source = None, None
        if windowed:
            if maps_dir is not None or uncertainty is not None or lpips_weights is not None:
                raise DataError("maps, uncertainty and LPIPS need the whole image: pass windowed=False "
                                f"(this scene has {n_values} values)")
            import rasterio

            from eosr.scene.sr import GDAL_CACHE_BYTES

            mask_src = _open_mask(mask, g_sr, geo) if mask is not None else None
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):  # GDAL's default block cache is 5 % of RAM
                res = _windowed(g_sr, g_hr, g_lr, op=choice.operator, bands=names, scale=r, mask=mask_src,
                                data_range=data_range, block=block)
            if selected is not None:  # pooled block sums are cheap: the selection only filters
                res.metrics = {k: v for k, v in res.metrics.items() if k in selected}
        else:
            full = (0, g_sr.height, 0, g_sr.width)
            s = g_sr.read(full)
            h = g_hr.read(full) if g_hr is not None else None
            lo = g_lr.read((0, g_lr.height, 0, g_lr.width)) if g_lr is not None else None
            m = _read_mask(_open_mask(mask, g_sr, geo), full) if mask is not None else None
            u = (_crop_like(_grid(uncertainty, None, None), g_sr, geo).read(full) if uncertainty is not None
                 else None)
            res = evaluate(s, h, lo, operator=choice.operator, bands=names, scale=r, mask=m, data_range=data_range,
                           noise_sigma=noise_sigma, lpips_weights=lpips_weights, uncertainty=u,
                           maps=maps_dir is not None, metrics=metrics)
            res.info["aggregation"] = "whole image"
            if maps_dir is not None:
                res.write_maps(maps_dir, crs=g_sr.crs if geo["georeferenced"] else None,  # all maps or none
                               transform=g_sr.transform if geo["georeferenced"] else None)
    finally:
        for g in opened:
            if g is not None:
                g.close()
    res.info["files"] = {"sr": str(sr), "hr": None if hr is None else str(hr), "lr": None if lr is None else str(lr)}
    res.info["radiometry"] = radiometry
    res.info.update(geo)
    res.info["operator_choice"] = {"mode": choice.mode, "source": choice.source}
    if u_source is not None:
        res.info["uncertainty"] = {"path": str(uncertainty), "source": u_source}
    if u_note is not None:
        res.info.setdefault("skipped", {})["uncertainty"] = u_note
    return res


def uncertainty_sidecar(sr: PathLike) -> tuple[Path | None, str | None]:
    """The predictive std ``eosr sr --uncertainty`` wrote with the SR file ``sr``: ``(SR.uncertainty.tif, None)``
    when that file carries the tag ``eosr_layer = std`` and every other ``eosr_*`` tag of ``sr`` (the same
    run: model, source, tiling, operator); ``(None, reason)`` when a file of that name is there but is not
    the SR's std; ``(None, None)`` when there is none (docs/trust.md)."""
    from eosr.io.raster import open_quietly
    from eosr.scene.sr import uncertainty_path

    side = uncertainty_path(sr)
    if not Path(sr).is_file() or not side.is_file():
        return None, None
    with open_quietly(sr) as a, open_quietly(side) as b:
        ta, tb = a.tags(), b.tags()
        shape_a, shape_b = (a.count, a.height, a.width), (b.count, b.height, b.width)

    def run(t: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in t.items() if k.startswith("eosr_") and k != "eosr_layer"}

    if tb.get("eosr_layer") != "std" or not run(ta) or run(ta) != run(tb) or shape_a != shape_b:
        return None, (f"{side.name} beside the SR was not read: it is not the std written with this SR "
                      "(eosr tags or shape differ); pass it as --uncertainty to use it anyway")
    return side, None


def _described(names: Sequence[str]) -> bool:
    return all(n and not n.lower().startswith("band") for n in names)


def _crop_like(src: Any, g_sr: Any, geo: dict[str, Any]) -> Any:
    """A raster on the SR file's grid, restricted like the SR to the common footprint."""
    fp = geo.get("footprint")
    if fp is None:
        if (src.height, src.width) != (g_sr.height, g_sr.width):
            raise ShapeError(f"{src.paths[0]} is not on the SR grid ({src.height}x{src.width} vs "
                             f"{g_sr.height}x{g_sr.width})")
        return src
    y0, y1, x0, x1 = fp["sr_window"]
    return _Crop(src, y0, x0, y1 - y0, x1 - x0)


def _open_mask(path: PathLike, g_sr: Any, geo: dict[str, Any]) -> Any:
    """The validity raster (non-zero = valid, values as stored) on the SR grid, cut to the footprint."""
    from eosr.scene.source import open_source

    return _crop_like(open_source(path, dn_scale=1.0, dn_offset=0.0), g_sr, geo)


def _read_mask(mask: Any, win: tuple[int, int, int, int]) -> np.ndarray:
    a = mask.read(win)
    ok = np.isfinite(a) & (a != 0)
    return ok[0] if ok.shape[0] == 1 else ok


def _windowed_hr(g_sr: Any, g_hr: Any, *, mask: Any, data_range: float, scale: int | None,
                 block: int) -> tuple[dict[str, Any], str | None]:
    """The HR-side metrics block by block, each block read once: the pooled pixel sums
    (:class:`eosr.scene.aggregate.PixelStats`) and SSIM and UIQI through the fused engine, equal to the
    whole image's.

    Each block is read with a halo of 5 px (half the 11 px Gaussian window), clipped at the image edge;
    the pixel sums take the block itself, and the block's window centres are exactly the whole image's
    centres inside it, so the sums of the SSIM and UIQI maps (:func:`eosr.evaluation.engine.ssim_uiqi_planes`)
    over the blocks and their count are the whole image's, and the pooled mean over bands and centres
    (Wang et al. 2004; Wang & Bovik 2002) is the value of :func:`eosr.evaluate`. Nodata (NaN, or the
    mask's invalid pixels, set to NaN in the block's SR) leaves out the windows touching it, as the whole
    image does: a window centred in a block lies inside its halo, so the block sees all its pixels.
    Returns the results and, where SSIM/UIQI cannot be given, the reason: no compiled engine, an image
    smaller than the window, or no window on valid pixels.
    """
    from eosr._arrays import all_finite
    from eosr.evaluation import engine as E
    from eosr.metrics import standard as S
    from eosr.metrics.base import window_mean
    from eosr.scene.aggregate import PixelStats, blocks

    half, size = 5, 11
    h, w, c = g_sr.height, g_sr.width, g_sr.count
    why: str | None = None
    if not E.AVAILABLE:
        why = "needs the compiled engine (numba) in windowed evaluation"
    elif h < size or w < size:
        why = f"the image is smaller than the {size} px window"
    st = PixelStats(c)
    sums = np.zeros((c, 3))  # per band: sum SSIM, sum UIQI, windows
    for y0, y1, x0, x1 in blocks(h, w, block):
        pad = half if why is None else 0
        wy0, wy1, wx0, wx1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        sr, hr = (np.asarray(g.read((wy0, wy1, wx0, wx1))) for g in (g_sr, g_hr))
        core = (slice(None), slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
        ok = _read_mask(mask, (wy0, wy1, wx0, wx1)) if mask is not None else None
        st.update(sr[core], hr[core], None if ok is None else ok[..., core[1], core[2]])
        if why is not None or wy1 - wy0 < size or wx1 - wx0 < size:
            continue  # (a block too thin for the window holds no window centre of the image)
        sr, hr = (np.ascontiguousarray(a, dtype=np.float32) for a in (sr, hr))
        if ok is not None:
            sr = np.where(ok, sr, np.float32(np.nan))  # the mask's pixels as nodata
        nodata = not (all_finite(sr) and all_finite(hr))
        smap = np.empty(sr.shape[1:], np.float32)
        for k in range(c):
            res = E.ssim_uiqi_planes(sr[k], hr[k], None, data_range, smap, masked=nodata)
            sums[k] += (res[0], res[1], res[3])
    metrics = st.results(data_range=data_range, scale=scale)
    if why is None and sums[:, 2].sum() == 0:
        why = f"no {size}x{size} window lies entirely on valid pixels"
    if why is None:
        for k, info in ((0, S.SSIM), (1, S.UIQI)):
            metrics[info.name] = window_mean(info, sums[:, k], sums[:, 2],
                                             aggregation="pooled over blocks (5 px halo)")
    return metrics, why


def _windowed(g_sr: Any, g_hr: Any, g_lr: Any, *, op: Any, bands: list[str] | None, scale: int | None,
              mask: Any, data_range: float, block: int) -> Any:
    """Pooled pixel metrics and LR fidelity block by block (see the module docstring)."""
    from eosr.evaluation.result import EvaluationResult
    from eosr.metrics.fidelity import LR_FIDELITY, LR_FIDELITY_L2, l1_l2_from_sums
    from eosr.scene.aggregate import blocks
    from eosr.scene.simulate import psf_halo_lr

    if block < 1:
        raise ScaleError(f"block must be >= 1 pixel, got {block}")
    metrics: dict[str, Any] = {}
    skipped = {k: "needs the whole image (windowed evaluation)" for k in
               ("hr_fidelity", "frr", "shift_x_px", "hallucination")}
    if g_hr is not None:
        hr_side, why = _windowed_hr(g_sr, g_hr, mask=mask, data_range=data_range, scale=scale, block=block)
        metrics.update(hr_side)
        skipped.update(dict.fromkeys(("ssim", "uiqi"), why) if why else {})
    if g_lr is not None and op is not None:
        from eosr.evaluation import engine

        r = op.scale
        halo = psf_halo_lr(op)
        taps = op.separable_taps(g_sr.count) if engine.AVAILABLE else None
        n = np.zeros(g_sr.count, np.int64)
        s1 = np.zeros(g_sr.count)
        s2 = np.zeros(g_sr.count)
        for y0, y1, x0, x1 in blocks(g_lr.height, g_lr.width, max(1, block // r)):
            wy0, wy1 = max(0, y0 - halo), min(g_lr.height, y1 + halo)
            wx0, wx1 = max(0, x0 - halo), min(g_lr.width, x1 + halo)
            srb = g_sr.read((wy0 * r, wy1 * r, wx0 * r, wx1 * r)).astype(np.float64)
            if taps is not None and bool(np.isfinite(srb).all()):  # the fused engine's compiled D(SR)
                d = engine.separable_correlate(srb[None], taps[0], taps[1], r)[0]
            else:  # nodata: the operator's normalised convolution
                d = np.asarray(op.downsample(srb))
            d = d[:, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
            diff = g_lr.read((y0, y1, x0, x1)).astype(np.float64) - d
            ok = np.isfinite(diff)
            diff = np.where(ok, diff, 0.0)
            n += ok.sum(axis=(1, 2))
            s1 += np.abs(diff).sum(axis=(1, 2))
            s2 += (diff * diff).sum(axis=(1, 2))
        if n.sum() == 0:
            raise DataError("no LR pixel is valid where D(SR) is valid")
        metrics.update(l1_l2_from_sums(LR_FIDELITY, LR_FIDELITY_L2, s1, s2, n,
                                       {"n_valid": int(n.sum()), "aggregation": "pooled over tiles"}))
    elif g_lr is not None:
        skipped["lr_fidelity"] = "needs an operator (--operator, a sensor, or an LR written by eosr simulate)"
    info = {"scale": scale, "inputs": {"sr": True, "hr": g_hr is not None, "lr": g_lr is not None,
                                       "lr_simulated": False},
            "shape": [g_sr.count, g_sr.height, g_sr.width], "aggregation": f"windowed, blocks of {block} px",
            "skipped": skipped,
            "files": {"sr": g_sr.paths[0], "hr": g_hr.paths[0] if g_hr is not None else None,
                      "lr": g_lr.paths[0] if g_lr is not None else None}}
    names = bands if bands is not None else list(g_sr.band_names)
    return EvaluationResult(metrics, {}, list(names), float(data_range), op.describe() if op is not None else None,
                            info)


__all__ = ["WHOLE_LIMIT", "evaluate_files"]
