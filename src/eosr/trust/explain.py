"""The API behind ``eosr explain``: layer-level analysis of a model written as figures and JSON.

:func:`explain` runs, for one model: the controlled stimuli of :mod:`eosr.trust.layers` (activation
statistics and the layer-wise hallucination trace), the frequency responses of its conv filters,
its effective receptive field, and, with an LR image, the support map of its SR output, the
integrated-gradients attribution of the centre SR pixel block and (for attention models) the
attention maps. Everything lands in ``out_dir``: ``explain.json`` (strict JSON) and PNG figures
(Matplotlib, Agg backend). Large images are analysed on a centre crop of at most ``max_lr`` pixels;
:func:`read_centre_window` reads only that crop from a file (after checking its declared band count).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eosr._schema import SCHEMA_VERSION
from eosr._windows import centre_box
from eosr.errors import ConfigError, DataError, ModelError
from eosr.trust.layers import STIMULI, activation_stats, filter_responses, hallucination_trace, make_stimulus


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


def canonical_name(name: str) -> str:
    """``rcan_ca`` for its aliases ``rcan-ca`` and ``rcan``; other names unchanged."""
    return "rcan_ca" if name.strip().lower() in ("rcan-ca", "rcan") else name


def resolve_model(name: str, scale: int = 2, n_bands: int | None = None, *, allow_untrained: bool = False,
                  **kw: Any) -> nn.Module:
    """A model by any reference of :func:`eosr.models.resolve_model` (registry name, shipped weights,
    checkpoint path or folder), or ``rcan-ca`` (the channel-attention model of trust). ``scale`` and
    ``n_bands`` build an architecture; a learned one (untrained) needs ``allow_untrained``."""
    from eosr.models.registry import is_architecture
    from eosr.models.registry import resolve_model as resolve

    name = canonical_name(name)
    if not is_architecture(name):
        return resolve(name, allow_untrained=allow_untrained, **kw)
    return resolve(name, scale=scale, n_bands=n_bands or (4 if name == "rcan_ca" else None),
                   allow_untrained=allow_untrained, **kw)


#: inclusive bounds of the numeric options of :func:`explain` (``eosr explain``)
OPTION_LIMITS = {"size": (8, 512), "max_lr": (8, 1024), "ig_steps": (1, 256), "erf_samples": (1, 64)}
MAX_BLOCK_BYTES = 256 * 2**20  # largest storage block (all bands) decoded to read a window


def check_explain_options(**options: int) -> None:
    """Raise a one-line :class:`ConfigError` for an option of :data:`OPTION_LIMITS` out of its range."""
    for key, v in options.items():
        lo, hi = OPTION_LIMITS[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ConfigError(f"explain {key.replace('_', '-')} must be an integer in {lo}..{hi}, got {v}")


def read_centre_window(path: str | os.PathLike[str], max_lr: int, *, dn_scale: float | None = None,
                       dn_offset: float | None = None) -> tuple[Any, tuple[int, int]]:
    """The centre crop (at most ``max_lr`` x ``max_lr`` LR px) of a raster file and its (row, col) offset,
    in reflectance by :func:`eosr.io.raster.read_raster`'s rules (``dn_scale``/``dn_offset`` as there).

    Only that window is read (the header's declared size may be anything); a file declaring more than
    :data:`eosr.models.limits.MAX_BANDS` bands, or storage blocks over :data:`MAX_BLOCK_BYTES` (one strip
    holding a whole huge image), is refused before any pixel is read.
    """
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    from eosr.io.raster import open_quietly, read_raster
    from eosr.models.limits import MAX_BANDS

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    try:
        with open_quietly(p) as ds:
            count, h, w = ds.count, ds.height, ds.width
            bh, bw = ds.block_shapes[0] if count else (0, 0)
            item = np.dtype(ds.dtypes[0]).itemsize if count else 0
    except RasterioIOError as e:
        raise DataError(f"cannot read {p}: {str(e).splitlines()[0]}") from None
    if not 1 <= count <= MAX_BANDS:
        raise DataError(f"{p} declares {count} bands; explain analyses 1..{MAX_BANDS}")
    block = bh * bw * item * count  # GDAL decodes whole blocks (strips or tiles), even for a small window
    if block > MAX_BLOCK_BYTES:
        raise DataError(f"{p} stores its pixels in {bh} x {bw} blocks ({block / 2**20:.0f} MiB to decode for any "
                        f"window, limit {MAX_BLOCK_BYTES // 2**20} MiB); retile it (gdal_translate -co TILED=YES)")
    y0, y1, x0, x1 = centre_box(h, w, max_lr)
    window = Window(x0, y0, x1 - x0, y1 - y0)
    return read_raster(p, window=window, dn_scale=dn_scale, dn_offset=dn_offset), (y0, x0)


def _scale_of(model: Any) -> int:
    spec = getattr(model, "spec", None)
    r = getattr(spec, "scale", None) or getattr(model, "scale", None)
    if not isinstance(r, int) or r < 1:
        raise ModelError(f"{type(model).__name__} declares no integer scale (spec.scale)")
    return r


def _bands_of(model: Any, default: int) -> int:
    spec = getattr(model, "spec", None)
    n = getattr(spec, "n_bands", None) or getattr(model, "n_bands", None)
    if isinstance(n, int) and n > 0:
        return n
    bands = getattr(spec, "bands", None)
    return len(bands) if bands else default


def _centre_crop(lr: np.ndarray, max_lr: int) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = lr.shape[-2:]
    y0, y1, x0, x1 = centre_box(h, w, max_lr)
    return lr[:, y0:y1, x0:x1], (y0, x0)


def explain(model: nn.Module, out_dir: str | os.PathLike[str], *, stimuli: Sequence[str] = STIMULI,
            image: Any = None, size: int = 32, n_bands: int | None = None, max_lr: int = 96,
            erf_samples: int = 4, ig_steps: int = 16, figures: bool = True,
            georef: dict[str, Any] | None = None, image_offset: tuple[int, int] = (0, 0),
            image_radiometry: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analyse ``model`` and write ``explain.json`` (+ figures) into ``out_dir``; returns the JSON dict.

    ``image``: an LR image (C, h, w) in reflectance (NaN = nodata, filled with the band mean for the
    analysis). ``georef``: ``{"crs": ..., "transform": LR transform}`` to also write ``support.tif``.
    ``image_offset``: (row, col) of ``image`` in a larger file it was read from (reported crop offsets
    are then relative to that file; ``georef`` is the transform of ``image`` itself). ``image_radiometry``:
    how the file's values became reflectance (``dn_scale``, ``dn_offset``, ``rule``), recorded with the image.
    The model runs one pass (its self-ensemble, if any, off), as ``eosr sr`` does by default; a variance-head
    model is analysed through its SR network (``model.analysed`` in the JSON says so); models of other inputs
    (20 m sharpening, multi-image) are refused. A folder created here is removed again if the analysis fails.
    """
    check_explain_options(size=size, max_lr=max_lr, ig_steps=ig_steps, erf_samples=erf_samples)
    bad = [s for s in stimuli if s not in STIMULI]
    if bad:
        raise ConfigError(f"unknown stimuli {bad}; choose from {', '.join(STIMULI)}")
    model, analysed = _analysable(model)
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    ensemble = getattr(model, "self_ensemble", None)
    try:  # one pass, as eosr sr by default; a folder made here and left incomplete by an error is removed
        if ensemble:
            setattr(model, "self_ensemble", False)  # noqa: B010 (an attribute of some models, not of nn.Module)
        doc = _explain(model, out, analysed, stimuli=stimuli, image=image, size=size, n_bands=n_bands, max_lr=max_lr,
                       erf_samples=erf_samples, ig_steps=ig_steps, figures=figures, georef=georef,
                       image_offset=image_offset, image_radiometry=image_radiometry)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if ensemble:
            setattr(model, "self_ensemble", True)  # noqa: B010
    return doc


def _analysable(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The network to analyse and a note when it is not ``model`` itself. A variance-head model is analysed
    through its SR network (the head adds the std, not the SR; the frozen base runs without gradients inside
    it). Models that take other inputs than one LR image are refused in one line."""
    from eosr.models.base import is_multi_image
    from eosr.models.guided import GuidedHPF
    from eosr.models.s2_multires import PackedS2MultiRes, S2MultiRes
    from eosr.models.varhead import VarianceHeadSR

    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    if isinstance(model, (S2MultiRes, GuidedHPF, PackedS2MultiRes)):
        raise ModelError(f"explain analyses single-input SR models; {name} takes two inputs (the 10 m guide and "
                         "the 20 m bands)")
    if is_multi_image(model):
        raise ModelError(f"explain analyses single-input SR models; {name} fuses several frames")
    if isinstance(model, VarianceHeadSR):
        return model.base, (f"the SR network of {name} (its variance head predicts the std and leaves the SR "
                            "unchanged)")
    return model, None


def _explain(model: nn.Module, out: Path, analysed: str | None, *, stimuli: Sequence[str], image: Any, size: int,
             n_bands: int | None, max_lr: int, erf_samples: int, ig_steps: int, figures: bool,
             georef: dict[str, Any] | None, image_offset: tuple[int, int],
             image_radiometry: dict[str, Any] | None) -> dict[str, Any]:
    """The body of :func:`explain` (``out`` exists; ``model`` runs one pass)."""
    from eosr.models.registry import UNTRAINED, weights_status
    from eosr.trust.saliency import attribution_mass_within, effective_receptive_field, integrated_gradients
    from eosr.trust.support import support_maps
    from eosr.trust.uncertainty import dropout_modules, has_variance_head, split_output

    r = _scale_of(model)
    c = n_bands or _bands_of(model, 4 if image is None else int(np.asarray(image).shape[0]))
    model.eval()
    spec = getattr(model, "spec", None)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": getattr(spec, "name", type(model).__name__), "class": type(model).__name__, "scale": r,
                  "n_bands": c, "declared_receptive_field_lr_px": getattr(spec, "receptive_field", None),
                  "parameters": int(sum(p.numel() for p in model.parameters())),
                  "has_dropout": bool(dropout_modules(model)), "has_variance_head": has_variance_head(model),
                  "trained_checkpoint": hasattr(model, "card"), "weights": weights_status(model),
                  "inference": "single pass"},
        "conventions": {"hf_share": "share of AC activation energy above the LR Nyquist on the layer's grid",
                        "stimulus_psf": "Gaussian, MTF 0.25 at the LR Nyquist", "stimulus_size_lr_px": size,
                        "support_mean_share": "energy-weighted over the crop: SR detail energy above the LR Nyquist "
                                              "/ all SR detail energy (not the mean of the per-pixel map)"},
        "stimuli": {},
    }
    if analysed is not None:
        doc["model"]["analysed"] = analysed
    if weights_status(model) == UNTRAINED:
        doc["warning"] = ("untrained weights: the model was not loaded from a checkpoint, so this analyses a "
                          "random-weight network")
    traces: dict[str, Any] = {}
    for kind in stimuli:
        _, lr = make_stimulus(kind, c, size, r)
        recs = activation_stats(model, lr)
        tr = hallucination_trace(model, lr, r)
        traces[kind] = tr
        doc["stimuli"][kind] = {"layers": [rc.to_json() for rc in recs], "hallucination_trace": tr.to_json()}
    fr = filter_responses(model)
    doc["filters"] = [f.to_json() for f in fr]
    rf = effective_receptive_field(model, c, r, size=min(size, 33), n_samples=erf_samples)
    doc["effective_receptive_field"] = {"radius_95_lr_px": rf.radius_95, "support_radius_lr_px": rf.support_radius,
                                        "centre": list(rf.centre)}
    img_part: dict[str, Any] | None = None
    if image is not None:
        a = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image, dtype=np.float32)
        if a.ndim != 3 or a.shape[0] != c:
            raise DataError(f"the image must be (C={c}, h, w) for this model, got shape {a.shape}")
        a, (y0, x0) = _centre_crop(a, max_lr)
        fill = np.nanmean(a, axis=(1, 2), keepdims=True)
        if not np.isfinite(fill).all():
            raise DataError("an image band is entirely nodata")
        a = np.where(np.isfinite(a), a, fill).astype(np.float32)
        x = torch.from_numpy(a)[None]
        with torch.no_grad():
            sr = split_output(model(x))[0][0].numpy()
        sup = support_maps(sr, r)
        hc, wc = sr.shape[-2] // 2, sr.shape[-1] // 2
        ig = integrated_gradients(model, a, (hc - r, hc + r, wc - r, wc + r), steps=ig_steps)
        attr = np.abs(np.asarray(ig.attribution)).sum(0)
        centre = (hc // r, wc // r)
        img_part = {"crop_offset_lr_px": [y0 + int(image_offset[0]), x0 + int(image_offset[1])],
                    "crop_shape_lr_px": list(a.shape[-2:]),
                    "support_mean_share": sup.mean_share,
                    "support_share_per_band": [float(np.nanmean(s)) for s in sup.share],
                    "integrated_gradients": {"region_sr_px": [hc - r, hc + r, wc - r, wc + r],
                                             "completeness_error": ig.completeness_error,
                                             "output_delta": ig.output_delta,
                                             "mass_within_erf95": attribution_mass_within(attr, centre, rf.radius_95)}}
        if image_radiometry is not None:
            img_part["radiometry"] = image_radiometry
        if hasattr(model, "forward_with_attention"):
            from eosr.trust.attention_model import write_attention

            with torch.no_grad():
                _, maps = model.forward_with_attention(x)  # type: ignore[operator]
            write_attention(maps, out / "image", crs=(georef or {}).get("crs"),
                            transform=_crop_transform((georef or {}).get("transform"), y0, x0, 1))
            img_part["attention"] = ["image_attention.tif", "image_attention.json"]
        if georef and georef.get("transform") is not None:
            from eosr.io.raster import write_raster

            t = _crop_transform(georef["transform"], y0, x0, r)
            bands = list(getattr(spec, "bands", None) or [])
            named = len(bands) == c  # the model's band names, else the band index
            write_raster(out / "support.tif", np.asarray(sup.share, dtype=np.float32), crs=georef.get("crs"),
                         transform=t, band_names=[f"support_share_{b}" for b in (bands if named else
                                                                                  [f"b{i}" for i in range(c)])],
                         tags={"EOSR_CONTENT": "share of local SR detail energy above the LR Nyquist"})
            img_part["support_geotiff"] = "support.tif"
            write_raster(out / "sr.tif", np.asarray(sr, dtype=np.float32), crs=georef.get("crs"), transform=t,
                         band_names=bands if named else None,
                         tags={"EOSR_CONTENT": "SR of the analysed crop (beside its support and attention maps)"})
            img_part["sr_geotiff"] = "sr.tif"
        doc["image"] = img_part
    if figures:
        doc["figures"] = _figures(out, traces, fr, rf.erf, sr if image is not None else None,
                                  sup if image is not None else None, attr if image is not None else None)
    doc = _clean(doc)
    from eosr.io.raster import atomic_path

    with atomic_path(out / "explain.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def _crop_transform(transform: Any, y0: int, x0: int, scale: int) -> Any:
    """Transform of the crop starting at LR pixel (y0, x0), on a grid ``scale`` times finer."""
    if transform is None:
        return None
    from affine import Affine

    t = transform * Affine.translation(x0, y0)
    return Affine(t.a / scale, t.b / scale, t.c, t.d / scale, t.e / scale, t.f)


def _figures(out: Path, traces: dict[str, Any], fr: list[Any], erf: np.ndarray, sr: np.ndarray | None,
             sup: Any, attr: np.ndarray | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eosr.io.raster import atomic_path

    names = []

    def save(fig: Any, name: str) -> None:
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        names.append(name)

    if traces:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for kind, tr in traces.items():
            ax.plot(range(len(tr.hf_share)), tr.hf_share, marker=".", label=f"{kind} (ref {tr.input_reference:.3f})")
        ax.set_xlabel("layer (execution order)")
        ax.set_ylabel("energy share above LR Nyquist")
        ax.set_title("Layer-wise hallucination trace")
        ax.legend(fontsize=7)
        save(fig, "hallucination_trace.png")
    if fr:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for f in fr[:12]:
            ax.plot(f.freqs, f.radial, label=f.name)
        ax.axvline(0.25, color="k", lw=0.5, ls="--")
        ax.set_xlabel("frequency (cycles / pixel of the layer)")
        ax.set_ylabel("RMS gain")
        ax.set_title("Conv filter frequency responses")
        ax.legend(fontsize=6)
        save(fig, "filter_responses.png")
    fig, ax = plt.subplots(figsize=(4, 4))
    im = ax.imshow(erf, cmap="magma")
    fig.colorbar(im, ax=ax)
    ax.set_title("Effective receptive field (LR px)")
    save(fig, "erf.png")
    if sr is not None and sup is not None and attr is not None:
        fig, axs = plt.subplots(1, 4, figsize=(14, 3.6))
        v = sr[0]
        axs[0].imshow(v, cmap="gray", vmin=np.nanpercentile(v, 1), vmax=np.nanpercentile(v, 99))
        axs[0].set_title("SR (band 0)")
        for a, m, t in ((axs[1], np.asarray(sup.share)[0], "support share above LR Nyquist"),
                        (axs[2], np.asarray(sup.unconstrained)[0], "unconstrained detail (refl.)"),
                        (axs[3], attr, "IG attribution of centre (LR)")):
            im = a.imshow(m, cmap="viridis")
            fig.colorbar(im, ax=a, fraction=0.046)
            a.set_title(t, fontsize=9)
        save(fig, "image_maps.png")
    return names
