"""Model registry: names -> "module:factory" strings, imported on demand (nothing is imported eagerly).

Shipped weights are discovered by scanning ``eosr/models/weights/`` for ``<name>.json`` cards that have a
``<name>.safetensors`` beside them; such names load the trained checkpoint.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eosr.errors import ModelError
from eosr.models.base import SRNet

MODELS: dict[str, str] = {
    "nearest": "eosr.models.interp:nearest",
    "bilinear": "eosr.models.interp:bilinear",
    "bicubic": "eosr.models.interp:bicubic",
    "lanczos": "eosr.models.interp:lanczos",
    "backprojection": "eosr.models.backprojection:backprojection",
    "carn": "eosr.models.carn:carn",
    "carn_m": "eosr.models.carn:carn_m",
    "s2_multires": "eosr.models.s2_multires:s2_multires",
    "mi_median": "eosr.models.multi_image:mi_median",
    "highresnet": "eosr.models.highresnet:highresnet",
    "rcan_ca": "eosr.models.rcan:rcan_ca",
}

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_weights() -> dict[str, Path]:
    """Shipped checkpoints: name -> path stem (``<stem>.json`` + ``<stem>.safetensors``)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    out = {}
    for card in sorted(WEIGHTS_DIR.glob("*.json")):
        stem = card.with_suffix("")
        if stem.with_suffix(".safetensors").is_file():
            out[card.stem] = stem
    return out


def list_models(include_weights: bool = True) -> list[str]:
    """Names of every architecture (and, by default, of every shipped checkpoint)."""
    names = list(MODELS)
    if include_weights:
        names += [n for n in shipped_weights() if n not in MODELS]
    return names


def _factory(name: str) -> Any:
    key = name.strip().lower()
    if key not in MODELS:
        known = ", ".join(list_models())
        raise ModelError(f"unknown model {name!r}; known: {known}")
    mod, fn = MODELS[key].split(":")
    return getattr(importlib.import_module(mod), fn)


def get_model(
    name: str, *, scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None, **kw: Any
) -> SRNet:
    """A model by name: a new (untrained) architecture, or a shipped checkpoint (then scale/bands are checked).

    ``bands`` (names) or ``n_bands`` fixes the input band count of learned models (default 3); the
    interpolators accept any band count. Extra keyword arguments go to the architecture's factory. Options
    are checked against :data:`eosr.models.limits.LIMITS` and the memory available before anything is built.
    """
    if name.strip().lower() not in MODELS and name in shipped_weights():
        if kw:
            raise ModelError(f"{name} is a trained checkpoint: architecture options {sorted(kw)} cannot be changed")
        from eosr.models.checkpoint import load_checkpoint

        return load_checkpoint(shipped_weights()[name], scale=scale, bands=bands, n_bands=n_bands)
    from eosr.models.limits import check_model_options

    factory = _factory(name)
    try:
        check_model_options(factory, dict(scale=scale, bands=bands, n_bands=n_bands, **kw), where=name)
        model = factory(scale=scale, bands=bands, n_bands=n_bands, **kw)
    except TypeError as e:
        raise ModelError(f"{name}: bad option ({e})") from None
    return model  # type: ignore[no-any-return]


def build_from_arch(arch: dict[str, Any]) -> SRNet:
    """Rebuild a module from its ``arch`` record ({"model": name, "kwargs": {...}})."""
    try:
        name, kwargs = arch["model"], dict(arch.get("kwargs", {}))
    except (KeyError, TypeError):
        raise ModelError(f"invalid architecture record {arch!r}") from None
    scale = kwargs.pop("scale", 2)
    bands = kwargs.pop("bands", None)
    n_bands = kwargs.pop("n_bands", None)
    return get_model(name, scale=scale, bands=bands, n_bands=n_bands, **kwargs)


def load_model(path_or_name: str | Path, **expect: Any) -> SRNet:
    """A shipped checkpoint by name, a checkpoint path (with or without suffix), or an architecture name.

    ``expect`` may hold ``scale``, ``bands`` or ``n_bands``; a checkpoint that does not match raises
    :class:`ModelError`.
    """
    from eosr.models.checkpoint import checkpoint_paths, load_checkpoint

    s = str(path_or_name)
    if s in shipped_weights():
        return load_checkpoint(shipped_weights()[s], **expect)
    w, j = checkpoint_paths(s)
    if w.exists() or j.exists():
        return load_checkpoint(s, **expect)
    if s.strip().lower() in MODELS:
        return get_model(s, **expect)
    raise ModelError(f"no model or checkpoint named {s!r} (looked for {j} and the registry)")


def describe_model(name: str) -> dict[str, Any]:
    """Scale, bands, parameter count, receptive field and kind of a registered name (default options)."""
    if name.strip().lower() not in MODELS and name in shipped_weights():
        card = json.loads(shipped_weights()[name].with_suffix(".json").read_text())
        arch = (card.get("architecture") or {}).get("model")
        return {
            "name": name, "scale": card.get("scale"), "bands": card.get("bands"), "n_bands": card.get("n_bands"),
            "params": card.get("n_params"), "receptive_field": card.get("receptive_field"),
            "kind": f"trained weights ({arch})", "multi_image": bool(card.get("multi_image")),
        }
    m = get_model(name)
    return {
        "name": name, "scale": m.spec.scale, "bands": list(m.spec.bands) if m.spec.bands else None,
        "n_bands": m.n_bands, "params": m.n_params(), "receptive_field": m.spec.receptive_field,
        "kind": m.spec.extra.get("kind", ""), "multi_image": m.spec.multi_image,
    }
