"""SR methods of a benchmark: registry models (``eosr.models.get_model``), baselines, or a folder of
SR outputs produced elsewhere.

Until the model registry is available, two baselines have private fallbacks here:
- ``bicubic``: Keys' cubic convolution (a = -0.75, torch's kernel), pixel-is-area aligned
  (``align_corners=False``: LR pixel centres sit at HR block centres), replicated borders.
- ``backprojection``: iterative back-projection (Irani & Peleg, CVGIP 53(3), 1991) with the dataset's
  sensor operator D: SR_0 = bicubic(LR), SR_{k+1} = SR_k + bicubic(LR - D(SR_k)), 10 iterations.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.benchmark.config import MethodConfig
from eosr.errors import DataError, ModelError

FALLBACKS = ("bicubic", "backprojection")
_ALIASES = {"back_projection": "backprojection", "back-projection": "backprojection", "ibp": "backprojection"}


def _registry() -> Any:
    try:
        return importlib.import_module("eosr.models")
    except ModuleNotFoundError as e:  # pragma: no cover - the package exists, its registry may not yet
        if e.name != "eosr.models":
            raise
        return None


def registry_names() -> list[str]:
    """Model names the registry knows (empty while ``eosr.models`` has no registry)."""
    reg = _registry()
    for fn_name in ("list_models", "available_models", "model_names"):
        fn = getattr(reg, fn_name, None)
        if callable(fn):
            out = fn()
            return sorted(str(getattr(m, "name", m)) for m in out)
    return []


def known_models() -> list[str]:
    """Registry names plus the baseline fallbacks."""
    return sorted(set(registry_names()) | set(FALLBACKS))


def _canonical(name: str) -> str:
    return _ALIASES.get(name.lower(), name)


def check_method(m: MethodConfig, scales: set[int]) -> None:
    """Fail early (one line) for an unknown model or a missing SR folder."""
    if m.folder is not None:
        if not m.folder.is_dir():
            raise DataError(f"SR folder not found: {m.folder}")
        return
    name = _canonical(str(m.model))
    known = known_models()
    if name not in known:
        import difflib

        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ModelError(f"unknown model {m.model!r}{hint}; known: {', '.join(known)}")


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
    out = torch.nn.functional.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return out[0].numpy()


def backprojection(lr: np.ndarray, operator: Any, n_iter: int = 10) -> np.ndarray:
    """Iterative back-projection with the sensor operator (Irani & Peleg 1991)."""
    r = int(operator.scale)
    sr = bicubic(lr, r).astype(np.float64)
    lr64 = np.asarray(lr, dtype=np.float64)
    for _ in range(n_iter):
        sr = sr + bicubic((lr64 - np.asarray(operator.downsample(sr))).astype(np.float32), r)
    return sr.astype(np.float32)


def _get_registry_model(name: str, scale: int, sample: Any, options: dict[str, Any]) -> Any:
    """``eosr.models.get_model(name, scale=, bands=, **options)``; the sensor operator is passed as
    ``operator=`` to models that accept it (back-projection)."""
    reg = _registry()
    get_model = getattr(reg, "get_model", None)
    if get_model is None:
        raise ModelError(f"model {name!r} needs the model registry (eosr.models.get_model)")
    kw = {"bands": list(sample.bands), **options}  # the config's options win over the dataset's bands
    try:
        return get_model(name, scale=scale, operator=sample.operator, **kw)
    except ModelError as e:
        if "bad option" not in str(e) and "cannot be changed" not in str(e):
            raise
    return get_model(name, scale=scale, **kw)


def _registry_usable(name: str) -> bool:
    """Whether the registry lists ``name`` and its module imports (a listed model may not have landed yet)."""
    if name not in registry_names():
        return False
    reg = _registry()
    target = getattr(getattr(reg, "registry", None), "MODELS", {}).get(name)
    if target is None:
        return True
    try:
        importlib.import_module(target.split(":")[0])
    except ModuleNotFoundError:
        return name not in FALLBACKS
    return True


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


def load_method(m: MethodConfig) -> Method:
    """Build a method from its config (models are built lazily per operator and cached)."""
    if m.folder is not None:
        folder = m.folder

        def run_folder(lr: np.ndarray, sample: Any) -> np.ndarray:
            from eosr.io.raster import read_raster

            f = folder_file(folder, sample.dataset, sample.id)
            return read_raster(f).data

        files = sorted(str(p.relative_to(folder)) + f":{p.stat().st_mtime_ns}" for p in folder.rglob("*.tif"))
        return Method(m.name, method_key(m, {"files": files}), run_folder, {"kind": "folder", "folder": str(folder)})

    name = _canonical(str(m.model))
    opts = dict(m.options)
    use_registry = _registry_usable(name)
    cache: dict[Any, Any] = {}

    def model_for(sample: Any) -> Any:
        k = (sample.scale, tuple(sample.bands), sample.sensor)
        if k not in cache:
            cache[k] = _get_registry_model(name, sample.scale, sample, opts)
        return cache[k]

    def run_model(lr: np.ndarray, sample: Any) -> np.ndarray:
        if not use_registry:
            if name == "bicubic":
                return bicubic(lr, sample.scale)
            return backprojection(lr, sample.operator, int(opts.get("iterations", 10)))
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
        if not use_registry or m.uncertainty == "none":
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

    info: dict[str, Any] = {"kind": "registry" if use_registry else "fallback", "model": name}
    extra: dict[str, Any] = {"impl": info["kind"]}
    if use_registry:
        spec = getattr(_registry(), "describe_model", None)
        if callable(spec):
            with contextlib.suppress(Exception):  # optional metadata
                extra["spec"] = json.loads(json.dumps(spec(name), default=str))
    return Method(m.name, method_key(m, extra), run_model, info, run_uncertainty)
