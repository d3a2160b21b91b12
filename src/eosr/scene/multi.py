"""Multi-image SR of scenes: N revisits of one area -> one SR image on the FIRST frame's grid.

Conventions (docs/scenes.md, "Several revisits"):

- The first frame given is the reference: the output is on its grid (same CRS, same origin, pixel size / r)
  and carries its band names; the order of the other frames does not matter.
- Every frame must already be on the first frame's pixel grid (same size; e.g. the same Sentinel-2 tile):
  residual sub-pixel misregistration is estimated by the model (``highresnet_s2_x2``: classical
  registration, frames beyond its ``max_shift`` rejected), a different grid is refused.
- Validity: NaN / nodata pixels are invalid, and so are the pixels a mask marks (``mask_kind="cloud"``:
  nonzero = cloud, as Sentinel-2 cloud masks and eo-learn ``CLM``; ``"valid"``: nonzero = clear, as
  PROBA-V). Invalid pixels are never averaged in; an LR pixel valid in no frame is NaN (nodata) in the output.
- Inputs: several single-date files, a folder of them (sorted by name: the first is the reference), or one
  time-stacked GeoTIFF whose bands are the frames one after the other (frame-major: the model's C bands of
  frame 0, then of frame 1, ...; band descriptions as the frame's, e.g. ``B02``, optionally with a date
  suffix such as ``B02_t0``).

Large scenes are tiled: the frames' shifts are estimated once on the whole stack (on a central window of
at most 1024 px) and every tile uses them, with an overlap of the receptive field plus the largest shift.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from eosr.errors import DataError, ModelError, ShapeError
from eosr.models.base import is_multi_image
from eosr.scene.infer import model_scale, receptive_field
from eosr.scene.tiling import default_overlap

PathLike = str | os.PathLike[str]
MaskKind = Literal["cloud", "valid"]
#: the central window (LR px) the frames' shifts are estimated on
REGISTRATION_WINDOW = 1024


def stack_frames(frames: Any) -> np.ndarray:
    """A list of (C, h, w) frames or an (N, C, h, w) stack (NumPy or torch) -> float32 (N, C, h, w)."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ShapeError("no frame given: pass a list of (C, h, w) frames or an (N, C, h, w) stack")
        arrs = [_np(f) for f in frames]
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1 or arrs[0].ndim != 3:
            raise ShapeError(f"frames must all be (C, h, w) on the first frame's grid, got shapes "
                             f"{[a.shape for a in arrs]}: resample them onto the first frame's grid first")
        return np.stack(arrs).astype(np.float32)
    a = _np(frames)
    if a.ndim != 4:
        raise ShapeError(f"a multi-image input is (N, C, h, w) or a list of (C, h, w) frames, got shape {a.shape}")
    return a.astype(np.float32)


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def valid_masks(frames: np.ndarray, masks: Any = None, mask_kind: MaskKind = "valid") -> np.ndarray:
    """Validity (N, h, w) of an (N, C, h, w) stack: finite in every band and clear in ``masks`` ((N, h, w),
    ``mask_kind`` "valid": nonzero = clear; "cloud": nonzero = cloud)."""
    if mask_kind not in ("cloud", "valid"):
        raise DataError(f"mask_kind must be 'cloud' or 'valid', got {mask_kind!r}")
    ok = np.isfinite(frames).all(axis=1)
    if masks is None:
        return ok
    m = np.asarray(_np(masks) if not isinstance(masks, (list, tuple)) else np.stack([_np(x) for x in masks]))
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.shape != ok.shape:
        raise ShapeError(f"masks must be (N, h, w) = {ok.shape} (one per frame), got {m.shape}")
    clear = (m == 0) if mask_kind == "cloud" else (m != 0)
    return ok & clear


def super_resolve_stack(frames: Any, model: Any, *, masks: Any = None, mask_kind: MaskKind = "valid",
                        tile: int = 512, overlap: int | None = None) -> np.ndarray:
    """SR (C, r h, r w) of N frames (list of (C, h, w) or (N, C, h, w)) with a multi-image ``model`` object.

    Frame 0 is the reference grid. Tiled for large frames (module docstring); NaN where no frame is valid.
    """
    if not is_multi_image(model):
        raise ModelError(f"model {getattr(getattr(model, 'spec', None), 'name', model)!r} takes one image: give "
                         "a multi-image model (e.g. highresnet_s2_x2, mi_median) for several frames")
    x = stack_frames(frames)
    n, c, h, w = x.shape
    ok = valid_masks(x, masks, mask_kind)
    if not ok[0].any():
        raise DataError("the first frame (the reference grid) has no valid pixel: put a clearer frame first")
    r = model_scale(model)
    ft = torch.from_numpy(x)[None]
    mt = torch.from_numpy(ok)[None]
    shifts = None
    prepare = getattr(model, "prepare", None)
    if prepare is not None and bool(getattr(model, "register", False)) and n > 1:
        y0, x0 = max(0, (h - REGISTRATION_WINDOW) // 2), max(0, (w - REGISTRATION_WINDOW) // 2)
        win = (slice(None), slice(None), slice(None), slice(y0, y0 + REGISTRATION_WINDOW),
               slice(x0, x0 + REGISTRATION_WINDOW))
        with torch.no_grad():
            _, _, shifts, rejected = prepare(ft[win], mt[win[:2] + win[3:]])
        mt = mt & ~rejected[:, :, None, None]
    max_shift = 0 if shifts is None else int(np.ceil(float(shifts.abs().max())))
    ov = (default_overlap(receptive_field(model)) if overlap is None else int(overlap)) + max_shift + 2
    out = np.full((c, h * r, w * r), np.nan, np.float32)
    step = max(1, tile)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    first_ref = getattr(model, "first_reference", None)
    if first_ref is not None:
        model.first_reference = True  # mi_median: frame 0 is the reference grid here too
    try:
        for ty in range(0, h, step):
            for tx in range(0, w, step):
                a0, a1 = max(0, ty - ov), min(h, ty + step + ov)
                b0, b1 = max(0, tx - ov), min(w, tx + step + ov)
                args: dict[str, Any] = {} if shifts is None else {"shifts": shifts}
                with torch.no_grad():
                    y = model(ft[..., a0:a1, b0:b1], mt[..., a0:a1, b0:b1], **args)[0].numpy()
                e0, e1 = min(h, ty + step), min(w, tx + step)
                oy, ox = (ty - a0) * r, (tx - b0) * r
                out[:, ty * r: e0 * r, tx * r: e1 * r] = y[:, oy: oy + (e0 - ty) * r, ox: ox + (e1 - tx) * r]
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
        if first_ref is not None:
            model.first_reference = first_ref
    # an LR pixel valid in no frame is nodata whatever the model fills in
    hole = ~mt[0].numpy().any(axis=0)
    if hole.any():
        out[:, np.repeat(np.repeat(hole, r, 0), r, 1)] = np.nan
    return out


def list_frame_files(inputs: Sequence[PathLike]) -> list[Path]:
    """Frame files: the paths given, or a folder's GeoTIFFs sorted by name (first = reference)."""
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].is_dir():
        files = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in (".tif", ".tiff")
                       and not p.name.startswith("."))
        if not files:
            raise DataError(f"{paths[0]}: no GeoTIFF frames (*.tif) in this folder")
        return files
    for p in paths:
        if not p.is_file():
            raise DataError(f"frame not found: {p}")
    return paths


def read_frames(inputs: Sequence[PathLike], n_bands: int | None, *, bands: Sequence[str | int] | None = None,
                masks: Sequence[PathLike] | None = None, mask_kind: MaskKind = "cloud",
                dn_scale: float | None = None, dn_offset: float | None = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """(frames (N, C, h, w), valid (N, h, w), the first frame's :class:`eosr.io.raster.Raster` without data).

    One file holding k x ``n_bands`` bands (and no ``bands`` selection) is a time-stacked GeoTIFF of k frames
    (frame-major). Masks: one single-band file per frame (or one k-band file for a stack)."""
    from eosr.io.raster import read_raster

    files = list_frame_files(inputs)
    rasters = [read_raster(f, bands, dn_scale=dn_scale, dn_offset=dn_offset) for f in files]
    first = rasters[0]
    if len(rasters) == 1:
        c = first.data.shape[0]
        if n_bands is None or c % n_bands or c == n_bands:
            raise DataError(f"{files[0]}: one file of {c} bands is not a time stack of {n_bands or '?'}-band frames: "
                            "give several frame files, a folder of them, or a GeoTIFF of k x C bands (frame-major)")
        k = c // n_bands
        frames = first.data.reshape(k, n_bands, *first.data.shape[1:])
        # frame-major bands named like the first frame's (B02 ... B02 ...) or with a date suffix (B02_t0, B02_1)
        names = [re.sub(r"[_\-.][tT]?\d+$", "", b) for b in first.band_names[:n_bands]]
    else:
        for f, ras in zip(files[1:], rasters[1:], strict=True):
            if ras.data.shape != first.data.shape:
                raise DataError(f"{f}: {ras.data.shape} is not on the first frame's grid {first.data.shape}: "
                                "resample the frames onto the first frame's grid first")
            if ras.crs != first.crs:
                raise DataError(f"{f}: CRS differs from the first frame's: reproject the frames onto its grid first")
        frames = np.stack([ras.data for ras in rasters])
        names = first.band_names
    m = None
    if masks:
        mr = [read_raster(p, dn_scale=1.0, dn_offset=0.0).data for p in list_frame_files(masks)]
        m = mr[0] if len(mr) == 1 and mr[0].shape[0] == frames.shape[0] else np.concatenate([a[:1] for a in mr])
        m = np.nan_to_num(m, nan=1.0 if mask_kind == "cloud" else 0.0)
    valid = valid_masks(frames, m, mask_kind)
    from dataclasses import replace

    ref = replace(first, data=np.empty((0, 0, 0), np.float32), band_names=list(names))
    return frames.astype(np.float32), valid, ref


def super_resolve_frames(inputs: Sequence[PathLike], out: PathLike, model: Any, *, masks: Sequence[PathLike] | None
                         = None, mask_kind: MaskKind = "cloud", bands: Sequence[str | int] | None = None,
                         tile: int = 512, overlap: int | None = None, cog: bool = False,
                         dn_scale: float | None = None, dn_offset: float | None = None, output_dtype: str | None = None,
                         allow_untrained: bool = False, scale: int | None = None) -> Path:
    """Multi-image SR of frame files (module docstring) written to ``out`` on the first frame's HR grid."""
    from eosr import __version__
    from eosr.io.raster import write_raster
    from eosr.scene.sr import check_model_bands, check_writable, drop_stale_uncertainty, hr_transform, load_model

    check_writable(out)
    m = load_model(model, allow_untrained=allow_untrained) if isinstance(model, str) else model
    if not is_multi_image(m):
        raise ModelError(f"several frames need a multi-image model (e.g. highresnet_s2_x2, mi_median), not "
                         f"{getattr(getattr(m, 'spec', None), 'name', model)!r}")
    files = list_frame_files(inputs)
    frames, valid, ref = read_frames(files, getattr(m, "n_bands", None), bands=bands, masks=masks,
                                     mask_kind=mask_kind, dn_scale=dn_scale, dn_offset=dn_offset)
    check_model_bands(m, ref.band_names)
    if scale is not None and int(scale) != model_scale(m):
        from eosr.errors import ScaleError

        raise ScaleError(f"model {m.spec.name} works at x{model_scale(m)}, not the requested x{scale}")
    r = model_scale(m)
    y = super_resolve_stack(frames, m, masks=valid, tile=tile, overlap=overlap)
    # no georeference: the frames' own (identity) transform, none made up (as single-image sr)
    t = hr_transform(ref.transform, r) if ref.transform is not None and ref.georeferenced else ref.transform
    dtype = output_dtype or ref.dtype
    dn = not np.issubdtype(np.dtype(dtype), np.floating)  # integer output: the reference frame's DN scale
    tags = {"eosr_version": __version__, "eosr_model": m.spec.name, "eosr_scale": r,
            "eosr_frames": frames.shape[0], "eosr_reference_frame": files[0].name}
    written = write_raster(out, y, crs=ref.crs, transform=t, band_names=ref.band_names, dtype=dtype,
                           dn_scale=ref.dn_scale if dn else 1.0, dn_offset=ref.dn_offset if dn else 0.0,
                           nodata=ref.nodata if dn else None, tags=tags, cog=cog)
    drop_stale_uncertainty(out)  # (an earlier single-image --uncertainty run into the same OUT)
    return written
