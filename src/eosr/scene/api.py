"""``eosr.super_resolve``: one call for a path, a NumPy array, a torch tensor or an xarray DataArray.

- **path** (a GeoTIFF/COG, band folder or Sentinel-2 product): super-resolved window by window into
  ``out`` (:func:`eosr.scene.sr.super_resolve`); returns the output path.
- **NumPy / torch** ``(C, h, w)`` reflectance: returns ``(C, r h, r w)`` of the same kind.
- **Several frames** for a multi-image model (``highresnet_s2_x2``, ``mi_median``): an ``(N, C, h, w)`` stack
  or a list of ``(C, h, w)`` frames (returns ``(C, r h, r w)`` of the first frame's kind), or a list of frame
  files / a folder / a time-stacked GeoTIFF with ``out=``. The FIRST frame is the reference grid; the order
  of the others does not matter; ``masks`` (N, h, w) mark valid pixels (``mask_kind``; :mod:`eosr.scene.multi`).
- **DataArray** ``(band, y, x)``: returns a DataArray on the HR grid (same origin, pixel size / r,
  pixel-is-area), with CRS, band names and attributes carried over (:mod:`eosr.io.xr`). A Dask-backed
  DataArray stays lazy: each chunk is super-resolved with a margin of the model's tiling overlap read
  from its neighbours, so the result equals the in-memory one (docs/from_your_data.md, "xarray").

Tiling is the scene tiling of :mod:`eosr.scene.tiling` (exact given the model's receptive field).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from eosr.errors import DataError, ModelError
from eosr.scene.infer import model_scale, receptive_field
from eosr.scene.sr import _resolve, hr_transform, super_resolve_array, uncertainty_path
from eosr.scene.sr import super_resolve as super_resolve_file
from eosr.scene.tiling import default_overlap

PathLike = str | os.PathLike[str]


def prepare_model(model: Any, band_names: Sequence[str], n_bands: int, *, scale: Any = None,
                  self_ensemble: bool = False, allow_untrained: bool = False) -> Any:
    """The model for in-memory SR: resolved (:func:`eosr.models.resolve_model`), checked against the input
    bands and scale, one pass unless ``self_ensemble``. Multi-resolution models need a band folder or
    product path (their 10 m and 20 m bands live on two grids)."""
    from eosr.models.registry import check_trained
    from eosr.models.s2_multires import PackedS2MultiRes, S2MultiRes

    if isinstance(model, str):
        check_trained(model, allow_untrained)
    if isinstance(model, (S2MultiRes, PackedS2MultiRes)) or (isinstance(model, str)
                                                              and model.strip().lower().startswith("s2_multires")):
        raise ModelError("multi-resolution models read 10 m and 20 m bands from two grids: pass a band folder "
                         "or Sentinel-2 product path (with out=)")
    model = _resolve(model, list(band_names), n_bands, scale, allow_untrained)
    if hasattr(model, "self_ensemble"):
        model.self_ensemble = bool(self_ensemble)
    elif self_ensemble:
        raise ModelError(f"model {model.spec.name} has no self-ensemble option")
    return model


def super_resolve(
    x: Any,
    model: Any,
    *,
    out: PathLike | None = None,
    scale: Any = None,
    bands: Sequence[str] | None = None,
    tile: int = 512,
    overlap: int | None = None,
    self_ensemble: bool = False,
    uncertainty: bool = False,
    allow_untrained: bool = False,
    progress: bool | None = None,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
    engine: str = "auto",
    masks: Any = None,
    mask_kind: str | None = None,
    **file_options: Any,
) -> Any:
    """Super-resolve ``x`` with ``model`` and return the same kind (module docstring).

    ``model``: a model object or a reference (registry name, shipped weights, checkpoint path); a learned
    architecture without weights is refused unless ``allow_untrained``. ``bands`` names the bands of an
    array (a DataArray's come from its ``band`` coordinate or ``long_name``); for a path it selects them.
    ``uncertainty``: also the predictive std, returned as a pair ``(sr, std)`` (a path: ``OUT.uncertainty.tif``).
    ``progress``: a progress bar (default: shown when interactive). ``dn_scale``/``dn_offset``: DN ->
    reflectance (``DN * dn_scale + dn_offset``) of integer input; an integer NumPy array or tensor without
    ``dn_scale`` is refused (never taken as reflectance). ``engine``: ``"auto"``, ``"torch"`` or ``"onnxruntime"``
    (:mod:`eosr.scene.engine`). ``file_options`` go to :func:`eosr.scene.sr.super_resolve` (paths only).
    ``masks``/``mask_kind``: per-frame masks of a multi-image input (arrays: ``mask_kind`` default "valid",
    nonzero = clear; files: default "cloud", nonzero = cloud).
    """
    from eosr.io.xr import is_dataarray, is_lazy, rebuild, split

    multi = _multi_input(x, model)
    if multi == "files":
        if out is None:
            raise DataError("super-resolving frame files needs out= (the output GeoTIFF path)")
        from eosr.scene.multi import super_resolve_frames

        paths = [x] if isinstance(x, (str, os.PathLike)) else list(x)
        return super_resolve_frames(paths, out, model, masks=masks, mask_kind=mask_kind or "cloud",  # type: ignore[arg-type]
                                    bands=bands, tile=tile, overlap=overlap, dn_scale=dn_scale, dn_offset=dn_offset,
                                    allow_untrained=allow_untrained, **file_options)
    if multi == "arrays":
        return _multi_arrays(x, model, masks=masks, mask_kind=mask_kind or "valid", scale=scale, bands=bands,
                             tile=tile, overlap=overlap, allow_untrained=allow_untrained, out=out,
                             options=file_options, uncertainty=uncertainty)
    if masks is not None:
        raise DataError("masks= apply to several frames (a multi-image model); mark nodata with NaN in one image")

    if isinstance(x, (str, os.PathLike)):
        if out is None:
            raise DataError("super-resolving a file needs out= (the output GeoTIFF path)")
        return super_resolve_file(x, out, model, bands=bands, scale=scale, tile=tile, overlap=overlap,
                                  uncertainty=uncertainty, progress=progress, self_ensemble=self_ensemble,
                                  dn_scale=dn_scale, dn_offset=dn_offset, allow_untrained=allow_untrained,
                                  engine=engine, **file_options)
    if out is not None or file_options:
        raise DataError(f"out= and file options ({', '.join(file_options) or 'out'}) apply to paths only")
    if uncertainty and isinstance(model, str):  # carn_m_s2_x2 -> carn_m_s2_x2_unc, as for files and the CLI
        from eosr.models.registry import uncertainty_companion

        model = uncertainty_companion(model) or model
    if is_dataarray(x):
        arr, grid = split(x, dn_scale=dn_scale, dn_offset=dn_offset)
        names = list(bands) if bands is not None else grid.band_names
        m = prepare_model(model, names, arr.shape[0], scale=scale, self_ensemble=self_ensemble,
                          allow_untrained=allow_untrained)
        r = int(model_scale(m))
        y = (_lazy(arr, m, tile, overlap, uncertainty) if is_lazy(x)
             else _in_memory(arr, m, tile, overlap, uncertainty, progress, engine))
        t = None if grid.transform is None else hr_transform(grid.transform, r)
        tags = _tags(m, r)
        c = arr.shape[0]
        sr = rebuild(y[:c], grid, transform=t, attrs=tags)
        if not uncertainty:
            return sr
        return sr, rebuild(y[c:], grid, transform=t, attrs={**tags, "eosr_quantity": "predictive std"})
    import torch

    from eosr._arrays import like, to_tensor
    from eosr.io.raster import check_dn_values

    integer = (not (x.is_floating_point() or x.is_complex())) if isinstance(x, torch.Tensor) else \
        not np.issubdtype(np.asarray(x).dtype, np.inexact)
    in_dtype = str(x.dtype).replace("torch.", "") if hasattr(x, "dtype") else "integer"
    t_in = to_tensor(x)
    if t_in.ndim != 3:
        raise DataError(f"eosr.super_resolve needs (C, H, W), got shape {tuple(t_in.shape)}")
    if dn_offset is not None and dn_scale is None:
        raise DataError("dn_offset needs dn_scale (reflectance = DN * dn_scale + dn_offset)")
    check_dn_values(dn_scale, dn_offset)
    if integer:
        if dn_scale is None:
            raise DataError(f"an integer array ({in_dtype}) is not taken as reflectance: give dn_scale= (and "
                            "dn_offset=), e.g. dn_scale=1e-4 for Sentinel-2 DN")
        t_in = t_in.double() * float(dn_scale) + float(dn_offset or 0.0)
    elif dn_scale is not None:
        raise DataError("dn_scale/dn_offset convert integer arrays; this array is float (reflectance as it is)")
    n = int(t_in.shape[0])
    names = list(bands) if bands is not None else [f"band{i + 1}" for i in range(n)]
    m = prepare_model(model, names, n, scale=scale, self_ensemble=self_ensemble, allow_untrained=allow_untrained)
    y = _in_memory(t_in.detach().cpu().numpy().astype(np.float32), m, tile, overlap, uncertainty, progress, engine)
    res = like(torch.from_numpy(y), x)
    return (res[:n], res[n:]) if uncertainty else res


def _is_multi_model(model: Any) -> bool:
    from eosr.models.registry import checkpoint_stem, is_architecture

    if not isinstance(model, str):
        from eosr.scene.multi import is_multi_image

        return is_multi_image(model)
    name = model.strip()
    if is_architecture(name):
        return name.lower() in ("mi_median", "highresnet")
    try:
        stem = checkpoint_stem(name)
    except ModelError:
        return False
    if stem is None:
        return False
    from eosr.models.checkpoint import read_card

    return bool(read_card(stem).get("multi_image", False))


def _multi_input(x: Any, model: Any) -> str | None:
    """"files", "arrays" or None (one image) for the input ``x`` given to ``model``."""
    if isinstance(x, (list, tuple)):
        if x and all(isinstance(p, (str, os.PathLike)) for p in x):
            return "files"
        return "arrays"
    if isinstance(x, (str, os.PathLike)):
        return "files" if _is_multi_model(model) else None
    nd = getattr(x, "ndim", None)
    if nd == 4 and not hasattr(x, "dims"):
        return "arrays"
    return None


def _multi_arrays(x: Any, model: Any, *, masks: Any, mask_kind: str, scale: Any, bands: Sequence[str] | None,
                  tile: int, overlap: int | None, allow_untrained: bool, out: Any, options: dict[str, Any],
                  uncertainty: bool) -> Any:
    """Multi-image SR of an (N, C, h, w) stack or a list of (C, h, w) frames (the first frame's kind out)."""
    import torch

    from eosr._arrays import like
    from eosr.errors import ScaleError
    from eosr.physics.psf import check_scale
    from eosr.scene.multi import is_multi_image, stack_frames, super_resolve_stack
    from eosr.scene.sr import check_model_bands, load_model

    if out is not None or options:
        raise DataError("out= and file options apply to paths only")
    if uncertainty:
        raise ModelError("multi-image models give no uncertainty")
    st = stack_frames(x)
    n_b = st.shape[1]
    names = list(bands) if bands is not None else [f"band{i + 1}" for i in range(n_b)]
    m = load_model(model, scale=None if scale is None else check_scale(scale), n_bands=n_b,
                   allow_untrained=allow_untrained) if isinstance(model, str) else model
    if not is_multi_image(m):
        raise ModelError(f"model {m.spec.name} takes one image: an (N, C, h, w) stack or a list of frames needs a "
                         "multi-image model (highresnet_s2_x2, mi_median)")
    if scale is not None and check_scale(scale) != int(m.spec.scale):
        raise ScaleError(f"model {m.spec.name} works at x{m.spec.scale}, not the requested x{scale}")
    if bands is not None:
        check_model_bands(m, names)
    elif m.n_bands is not None and m.n_bands != n_b:
        raise ModelError(f"model {m.spec.name} takes {m.n_bands} bands, the frames have {n_b}")
    y = super_resolve_stack(st, m, masks=masks, mask_kind=mask_kind, tile=tile, overlap=overlap)  # type: ignore[arg-type]
    return like(torch.from_numpy(y), x[0])


def _tags(model: Any, r: int) -> dict[str, Any]:
    from eosr import __version__

    spec = model.spec
    return {"eosr_version": __version__, "eosr_model": getattr(spec, "name", type(model).__name__),
            "eosr_model_version": str(getattr(spec, "version", "?")), "eosr_scale": r}


def _in_memory(x: np.ndarray, model: Any, tile: int, overlap: int | None, uncertainty: bool,
               progress: bool | None, engine: str = "auto") -> np.ndarray:
    return np.asarray(super_resolve_array(x, model, tile=tile, overlap=overlap, uncertainty=uncertainty,
                                          progress=progress, engine=engine))


def _block(piece: np.ndarray, model: Any, tile: int, overlap: int | None, uncertainty: bool,
           crop: tuple[int, int, int, int], r: int) -> np.ndarray:
    """SR of one chunk read with its margin, cut back to the chunk's own footprint."""
    oy, ox, h, w = crop
    y = _in_memory(np.asarray(piece, dtype=np.float32), model, tile, overlap, uncertainty, False)
    return y[:, oy * r:(oy + h) * r, ox * r:(ox + w) * r]


def _lazy(arr: Any, model: Any, tile: int, overlap: int | None, uncertainty: bool) -> Any:
    """Dask graph: one task per chunk of ``arr`` (C, H, W), each reading a margin of the tiling overlap."""
    import dask
    import dask.array as da


    r = int(model_scale(model))
    margin = default_overlap(receptive_field(model)) if overlap is None else int(overlap)
    arr = arr.rechunk({0: -1})
    c, h, w = arr.shape
    rows = np.cumsum((0, *arr.chunks[1]))
    cols = np.cumsum((0, *arr.chunks[2]))
    c_out = 2 * c if uncertainty else c
    run = dask.delayed(_block, pure=False)
    grid: list[list[Any]] = []
    for y0, y1 in zip(rows[:-1], rows[1:], strict=True):
        row = []
        for x0, x1 in zip(cols[:-1], cols[1:], strict=True):
            a0, a1 = max(0, int(y0) - margin), min(h, int(y1) + margin)
            b0, b1 = max(0, int(x0) - margin), min(w, int(x1) + margin)
            crop = (int(y0) - a0, int(x0) - b0, int(y1 - y0), int(x1 - x0))
            task = run(arr[:, a0:a1, b0:b1], model, tile, overlap, uncertainty, crop, r)
            row.append(da.from_delayed(task, shape=(c_out, int(y1 - y0) * r, int(x1 - x0) * r), dtype=np.float32))
        grid.append(row)
    return da.block(grid)



def write_stac_item(out_path: PathLike, in_path: PathLike, model: Any) -> Any:
    """The STAC item beside an ``eosr sr`` output (:func:`eosr.io.stac.write_item`) with its lineage: the
    model name and version from the output's tags, the weights' SHA-256 (shipped weights or checkpoint),
    the scale, tiling and the operator of a physics-based model."""
    from eosr.io.raster import open_quietly
    from eosr.io.stac import write_item
    from eosr.models.registry import checkpoint_stem

    with open_quietly(out_path) as ds:
        tags = ds.tags()
    lineage: dict[str, Any] = {k.removeprefix("eosr_"): v for k, v in tags.items() if k.startswith("eosr_")
                               and k != "eosr_version"}
    if isinstance(model, str):
        from eosr.errors import ModelError

        try:
            stem = checkpoint_stem(model)
        except ModelError:
            stem = None
        if stem is not None:
            from eosr.models.checkpoint import read_card

            lineage["weights_sha256"] = read_card(stem).get("weights_sha256")
    u = uncertainty_path(out_path)
    return write_item(out_path, lineage=lineage, source=in_path,
                      extra_assets={"uncertainty": u.name} if u.is_file() else None)
