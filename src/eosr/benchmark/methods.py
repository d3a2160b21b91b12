"""SR methods of a benchmark: eosr models (``eosr.models.resolve_model``: baselines, back-projection with
the dataset's sensor operator, shipped weights, checkpoint paths; learned architectures without weights
only with ``allow_untrained``) or a folder of SR outputs produced elsewhere.

:func:`bicubic` is the interpolated LR I of the frequency and hallucination metrics: Keys' cubic
convolution (a = -0.75, torch's kernel), pixel-is-area aligned (``align_corners=False``: LR pixel centres
sit at HR block centres), replicated borders, NaN filled with the mean first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.benchmark.config import MethodConfig
from eosr.errors import DataError, ModelError

_ALIASES = {"back_projection": "backprojection", "back-projection": "backprojection", "ibp": "backprojection"}


def known_models() -> list[str]:
    """Model names of the registry (architectures and shipped weights)."""
    from eosr.models import list_models

    return sorted(list_models())


def _canonical(name: str) -> str:
    return _ALIASES.get(name.lower(), name)


def check_method(m: MethodConfig, scales: set[int], allow_code: bool = False, allow_untrained: bool = False) -> None:
    """Fail early (one line) for an unknown model, a dotted path without ``allow_code``, a missing checkpoint,
    an untrained learned architecture without ``allow_untrained`` or a missing SR folder. Imports no method
    code (:mod:`eosr.benchmark.plugins`)."""
    from eosr.benchmark.plugins import METHOD_GROUP, check_method_model, entry_point_map

    if m.folder is not None:
        if not m.folder.is_dir():
            raise DataError(f"SR folder not found: {m.folder}")
        return
    kind = check_method_model(str(m.model), allow_code)
    if kind == "eosr":
        from eosr.models.registry import check_trained, checkpoint_stem

        checkpoint_stem(_canonical(str(m.model)))  # a missing or ambiguous checkpoint path: one line
        check_trained(_canonical(str(m.model)), allow_untrained)
    if kind == "unknown":
        import difflib

        known = known_models() + sorted(entry_point_map(METHOD_GROUP))
        near = difflib.get_close_matches(_canonical(str(m.model)), known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ModelError(f"unknown model {m.model!r}{hint}; known: {', '.join(known)} "
                         f"(entry points of group {METHOD_GROUP!r} add more)")


@dataclass
class Method:
    """A loaded method: ``run(lr, sample) -> sr`` (NumPy (C, H, W) float32), its cache key and info."""

    name: str
    key: str
    run: Callable[[np.ndarray, Any], np.ndarray]
    info: dict[str, Any]
    uncertainty: Callable[[np.ndarray, Any], np.ndarray | None] | None = None


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling on the pixel-is-area grid (torch ``interpolate``, ``align_corners=False``)."""
    t = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None]
    nan = torch.isnan(t)
    if bool(nan.any()):
        t = torch.nan_to_num(t, nan=float(torch.nanmean(t)))
    from eosr.models.interp import upsample

    return upsample(t, scale, "bicubic")[0].numpy()


def _get_registry_model(name: str, scale: int, sample: Any, options: dict[str, Any],
                        allow_untrained: bool = False) -> Any:
    """``eosr.models.resolve_model(name, scale=, bands=, **options)``; the sensor operator is passed as
    ``operator=`` to models that accept it (back-projection)."""
    from eosr.models import resolve_model

    kw = {"bands": list(sample.bands), **options}  # the config's options win over the dataset's bands
    try:
        return resolve_model(name, scale=scale, operator=sample.operator, allow_untrained=allow_untrained, **kw)
    except ModelError as e:
        if "bad option" not in str(e) and "cannot be changed" not in str(e):
            raise
    return resolve_model(name, scale=scale, allow_untrained=allow_untrained, **kw)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def method_key(m: MethodConfig, extra: dict[str, Any] | None = None) -> str:
    """Hash of the method's config (and of its weights/version info when known)."""
    blob = json.dumps({"m": m.model_dump(mode="json"), "x": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def folder_file(folder: Path, dataset: str, image_id: str) -> Path:
    """SR file of an external method: ``<folder>/<dataset>/<id>.tif`` or ``<folder>/<id>.tif``."""
    for cand in (folder / dataset / f"{image_id}.tif", folder / f"{image_id}.tif",
                 folder / dataset / f"{image_id}.tiff", folder / f"{image_id}.tiff"):
        if cand.exists():
            return cand
    raise DataError(f"no SR file for image {image_id!r} in {folder} (expected {folder / dataset / image_id}.tif)")


def _external_model(factory: Callable[..., Any], sample: Any, options: dict[str, Any]) -> Any:
    """``factory(scale=, bands=, **options)`` of an entry-point or dotted-path method (``operator=`` too
    when the factory takes it)."""
    import inspect

    kw: dict[str, Any] = {"scale": sample.scale, "bands": list(sample.bands), **options}
    try:
        params = inspect.signature(factory).parameters
        if "operator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kw.setdefault("operator", sample.operator)
    except (TypeError, ValueError):
        pass
    return factory(**kw)


def load_method(m: MethodConfig, allow_code: bool = False, allow_untrained: bool = False) -> Method:
    """Build a method from its config (models are built lazily per operator and cached); entry-point and
    dotted-path methods (the latter only with ``allow_code``) are imported here, never when checking. A
    learned architecture without weights is refused unless ``allow_untrained``."""
    from eosr.benchmark.plugins import check_method_model, load_method_factory

    if m.folder is not None:
        folder = m.folder

        def run_folder(lr: np.ndarray, sample: Any) -> np.ndarray:
            from eosr.io.raster import read_raster

            f = folder_file(folder, sample.dataset, sample.id)
            return read_raster(f).data

        files = sorted(str(p.relative_to(folder)) + f":{p.stat().st_mtime_ns}" for p in folder.rglob("*.tif"))
        return Method(m.name, method_key(m, {"files": files}), run_folder, {"kind": "folder", "folder": str(folder)})

    kind = check_method_model(str(m.model), allow_code)
    if kind == "unknown":
        check_method(m, set(), allow_code)  # raises the one-line 'unknown model' error
    name = _canonical(str(m.model)) if kind == "eosr" else str(m.model)
    if kind == "eosr":
        from eosr.models.registry import check_trained, checkpoint_stem, shipped_weights

        check_trained(name, allow_untrained)
        if name not in shipped_weights() and checkpoint_stem(name) is not None:
            from eosr.models import load_model

            load_model(name)  # a user's checkpoint, corrupt or mismatched, fails here: before any output is touched
    factory, ident = load_method_factory(name, allow_code) if kind != "eosr" else (None, {})
    opts = dict(m.options)
    cache: dict[Any, Any] = {}

    def model_for(sample: Any) -> Any:
        k: tuple[Any, ...] = (sample.scale, tuple(sample.bands), sample.sensor)
        if m.tell_operator:  # one model per operator
            k += (json.dumps(sample.operator.describe(), sort_keys=True, default=str),)
        if k not in cache:
            built = (_get_registry_model(name, sample.scale, sample, opts, allow_untrained) if factory is None
                     else _external_model(factory, sample, opts))
            cache[k] = _told_operator(m, _one_pass_unless(m, built), sample)
        return cache[k]

    def run_model(lr: np.ndarray, sample: Any) -> np.ndarray:
        model = model_for(sample)
        if hasattr(model, "eval"):
            model.eval()
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None])
        if isinstance(out, (tuple, list)):
            out = out[0]
        return _as_numpy(out)[0].astype(np.float32)

    def run_uncertainty(lr: np.ndarray, sample: Any) -> np.ndarray | None:
        """Predicted per-pixel std (C, H, W): the model's variance head, MC dropout, or a model's own
        ``predict_uncertainty(lr)``; None when the model offers none or ``uncertainty = "none"``."""
        if m.uncertainty == "none":
            return None
        from eosr.trust.uncertainty import has_variance_head, mc_dropout, predict_with_head

        model = model_for(sample)
        x = np.ascontiguousarray(lr, dtype=np.float32)
        if m.uncertainty == "mc_dropout":
            return np.asarray(mc_dropout(model, x, n_samples=8).std, dtype=np.float32)
        if has_variance_head(model):
            return np.asarray(predict_with_head(model, x).std, dtype=np.float32)
        fn = getattr(model, "predict_uncertainty", None)
        if not callable(fn):
            return None
        with torch.inference_mode():
            out = fn(torch.from_numpy(x)[None])
        if isinstance(out, (tuple, list)):
            out = out[-1]
        return _as_numpy(out)[0].astype(np.float32)

    inference = "self-ensemble (mean of 8 flips/rotations)" if m.self_ensemble else "single pass"
    if m.tell_operator:
        inference += ", told the dataset's operator"
    if factory is not None:
        return Method(m.name, method_key(m, {"impl": kind, **ident}), run_model,
                      {"kind": kind, "model": name, "inference": inference}, run_uncertainty)
    from eosr.models import describe_model

    info: dict[str, Any] = {"kind": "registry", "model": name, "inference": inference}
    extra: dict[str, Any] = {"impl": "registry", "spec": json.loads(json.dumps(describe_model(name), default=str)),
                             "weights": _weights_identity(name)}
    return Method(m.name, method_key(m, extra), run_model, info, run_uncertainty)


def _one_pass_unless(m: MethodConfig, model: Any) -> Any:
    """Set a model's geometric self-ensemble to the method's ``self_ensemble`` (default off: one pass,
    whatever the checkpoint's card says, as ``eosr sr``); a model without the option cannot opt in."""
    if hasattr(model, "self_ensemble"):
        model.self_ensemble = bool(m.self_ensemble)
    elif m.self_ensemble:
        raise ModelError(f"method {m.name!r}: model {m.model!r} has no self-ensemble option")
    return model


def _told_operator(m: MethodConfig, model: Any, sample: Any) -> Any:
    """With the method's ``tell_operator``, give a CNN with a back-projection skip the dataset's operator
    (:func:`eosr.models.backprojection.set_model_operator`); a model without such physics is refused."""
    if not m.tell_operator:
        return model
    from eosr.models.backprojection import set_model_operator

    if getattr(model, "operator", None) is None:
        raise ModelError(f"method {m.name!r}: model {m.model!r} takes no operator (tell_operator needs bp_skip)")
    set_model_operator(model, sample.operator)
    return model


def _weights_identity(name: str) -> dict[str, Any] | None:
    """Weights hash and architecture record of a trained checkpoint (shipped name or path), so a cached
    result is never reused for other weights or inference options (e.g. a retrained shipped model)."""
    from eosr.models.checkpoint import checkpoint_paths
    from eosr.models.registry import checkpoint_stem

    stem = checkpoint_stem(name)
    if stem is None:
        return None
    card = checkpoint_paths(stem)[1]
    if not card.is_file():
        return None
    doc = json.loads(card.read_text())
    return {"sha256": doc.get("weights_sha256"), "architecture": doc.get("architecture")}
