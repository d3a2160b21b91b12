"""Model registry: names -> "module:factory" strings, imported on demand (nothing is imported eagerly).

Shipped weights are discovered by scanning ``eosr/models/weights/`` for ``<name>.json`` cards that have a
``<name>.safetensors`` beside them; such names load the trained checkpoint.
"""

from __future__ import annotations

import functools
import importlib
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
    "guided_hpf": "eosr.models.guided:guided_hpf",
    "mi_median": "eosr.models.multi_image:mi_median",
    "highresnet": "eosr.models.highresnet:highresnet",
    "rcan_ca": "eosr.models.rcan:rcan_ca",
    "variance_head": "eosr.models.varhead:variance_head",
}

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_weights() -> dict[str, Path]:
    """Shipped checkpoints: name -> path stem (``<stem>.json`` + ``<stem>.safetensors``)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    out = {}
    for card in sorted(WEIGHTS_DIR.glob("*.json")):
        stem = card.with_suffix("")
        # a sidecar such as <name>.calibration.json is not a card (with_suffix would point it at <name>)
        if "." not in stem.name and card.with_name(stem.name + ".safetensors").is_file():
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
    """A shipped checkpoint by name, a checkpoint path (with or without suffix, or its folder), or an
    architecture name (built untrained: this older entry point does not refuse it; see :func:`resolve_model`).

    ``expect`` may hold ``scale``, ``bands`` or ``n_bands``; a checkpoint that does not match raises
    :class:`ModelError`.
    """
    return resolve_model(path_or_name, allow_untrained=True, **expect)


#: What :func:`weights_status` / :func:`describe_model` say about a model's weights.
TRAINED, UNTRAINED, NO_WEIGHTS = "trained", "untrained", "none needed"


def is_architecture(ref: str | Path) -> bool:
    """Whether ``ref`` is a registry architecture name (case-insensitive), rather than weights or a path."""
    return isinstance(ref, str) and ref.strip().lower() in MODELS


@functools.cache
def needs_weights(name: str) -> bool:
    """Whether the architecture ``name`` is learned, i.e. has trainable parameters at its default options
    (interpolators, back-projection and ``mi_median`` have none). Decided from the model, not a list."""
    return get_model(name.strip().lower()).n_params() > 0


def weights_status(model: Any) -> str:
    """``"trained"`` (loaded from a checkpoint: it has a ``card``), ``"none needed"`` (no trainable
    parameters) or ``"untrained"`` (a learned module that was not loaded from a checkpoint; eosr cannot
    tell weights trained in memory from random ones)."""
    if getattr(model, "card", None) is not None:
        return TRAINED
    params = getattr(model, "parameters", None)
    if not callable(params) or not any(p.requires_grad for p in params()):
        return NO_WEIGHTS
    return UNTRAINED


def untrained_message(name: str) -> str:
    """The one-line refusal of an untrained learned architecture."""
    return (f"{name} is an untrained architecture: its output would be random-weight, not SR; use trained "
            "weights (eosr models lists them) or pass --allow-untrained")


def check_trained(name: str, allow_untrained: bool = False) -> None:
    """Raise :class:`ModelError` if ``name`` is a learned architecture (no weights) and not ``allow_untrained``.
    Shipped weights, checkpoint paths and weight-free models pass."""
    if not allow_untrained and is_architecture(name) and needs_weights(name):
        raise ModelError(untrained_message(name.strip()))


def _is_temporary(p: Path) -> bool:
    return p.name.startswith(".")  # eosr writers' temporaries are hidden (.<name>.eosr-<pid>-...)


def folder_checkpoint(folder: Path) -> Path:
    """The checkpoint stem in ``folder``: its only ``<stem>.safetensors`` + ``<stem>.json`` pair; in an
    ``eosr train`` output folder holding ``best`` and the final ``<name>`` (the same weights, full card), the
    final one. Anything else is a one-line :class:`ModelError` listing what was found."""
    stems = sorted(c.with_suffix("") for c in folder.glob("*.json")
                   if not _is_temporary(c) and c.with_suffix(".safetensors").is_file())
    if len(stems) == 2 and sum(s.name == "best" for s in stems) == 1:
        from eosr.models.checkpoint import is_run_folder

        if is_run_folder(folder):
            return next(s for s in stems if s.name != "best")
    if len(stems) == 1:
        return stems[0]
    if not stems:
        raise ModelError(f"no checkpoint in folder {folder} (looked for <name>.safetensors with its <name>.json)")
    raise ModelError(f"folder {folder} holds {len(stems)} checkpoints ({', '.join(s.name for s in stems)}): "
                     "give one of them as PATH/<name>")


def checkpoint_stem(ref: str | Path) -> Path | None:
    """Checkpoint stem of a shipped weights name or a path (``.safetensors``, ``.json``, stem, or a folder
    with one checkpoint); None for a registry architecture name. A missing path raises a one-line
    :class:`ModelError` naming what was looked for."""
    from eosr.models.checkpoint import SUFFIXES, checkpoint_paths

    s = str(ref)
    if is_architecture(s):
        return None
    if s in shipped_weights():
        return shipped_weights()[s]
    p = Path(s).expanduser()
    if p.is_dir():
        return folder_checkpoint(p)
    w, j = checkpoint_paths(p)
    if w.exists() or j.exists():
        return w.with_suffix("")
    folder = "" if p.suffix in SUFFIXES else f" and a folder {p}"
    raise ModelError(f"no model or checkpoint named {s!r} (not a registry name or shipped weights, see eosr models; "
                     f"looked for {w}, {j}{folder})")


def resolve_model(ref: str | Path | SRNet, *, scale: int | None = None, bands: Sequence[str] | None = None,
                  n_bands: int | None = None, allow_untrained: bool = False, **options: Any) -> SRNet:
    """The one model resolver of eosr (``sr``, ``benchmark``, ``explain``, ``export`` and the Python API).

    ``ref`` is a registry architecture name (``bicubic``, ``carn_m``, ...), a shipped weights name
    (``carn_m_s2_x2``) or a checkpoint path: the ``.safetensors``, its ``.json`` card, the stem without
    suffix, or a folder holding one checkpoint (an ``eosr train`` output folder: its final checkpoint).
    Registry names win over paths of the same name. A learned architecture built by name has random
    weights: it is refused (:class:`ModelError`) unless ``allow_untrained``. ``scale``/``bands``/``n_bands``
    build an architecture (scale default 2) or are checked against a checkpoint's card; ``options`` go to
    an architecture's factory (a checkpoint's architecture cannot be changed). A module is returned as is.
    """
    if isinstance(ref, SRNet):
        return ref
    if not isinstance(ref, (str, Path)):
        raise ModelError(f"a model reference must be a name or a path, got {type(ref).__name__}")
    stem = checkpoint_stem(ref)
    if stem is None:
        name = str(ref)
        check_trained(name, allow_untrained)
        return get_model(name, scale=scale or 2, bands=bands, n_bands=n_bands, **options)
    if options:
        raise ModelError(f"{ref} is a trained checkpoint: architecture options {sorted(options)} cannot be changed")
    from eosr.models.checkpoint import load_checkpoint

    return load_checkpoint(stem, scale=scale, bands=bands, n_bands=n_bands)


def uncertainty_kind(card: dict[str, Any]) -> str | None:
    """What uncertainty a checkpoint card offers (its ``uncertainty.kind``), or None."""
    u = card.get("uncertainty")
    return str(u.get("kind")) if isinstance(u, dict) and u.get("kind") else None


def uncertainty_companion(name: str) -> str | None:
    """The shipped weights giving shipped model ``name``'s SR plus a calibrated std: a card that offers
    uncertainty and names ``name`` as its ``base`` (e.g. ``carn_m_s2_x2`` -> ``carn_m_s2_x2_unc``); else None."""
    from eosr.models.checkpoint import read_card

    for other, stem in shipped_weights().items():
        card = read_card(stem)
        if other != name and uncertainty_kind(card) and (card.get("base") or {}).get("name") == name:
            return other
    return None


def describe_model(name: str | Path) -> dict[str, Any]:
    """Scale, bands, parameter count, receptive field, kind, ``weights`` (``"trained"``, ``"untrained"``
    or ``"none needed"``) and ``uncertainty`` (what ``eosr sr --uncertainty`` writes, or None) of a registry
    name, shipped weights name or checkpoint path (default options)."""
    stem = checkpoint_stem(name)
    if stem is not None:
        from eosr.models.checkpoint import read_card

        card = read_card(stem)
        arch = (card.get("architecture") or {}).get("model")
        return {
            "name": str(name), "scale": card.get("scale"), "bands": card.get("bands"), "n_bands": card.get("n_bands"),
            "params": card.get("n_params"), "receptive_field": card.get("receptive_field"),
            "kind": f"trained weights ({arch})", "multi_image": bool(card.get("multi_image")), "weights": TRAINED,
            "uncertainty": uncertainty_kind(card),
        }
    m = get_model(str(name))
    return {
        "name": str(name), "scale": m.spec.scale, "bands": list(m.spec.bands) if m.spec.bands else None,
        "n_bands": m.n_bands, "params": m.n_params(), "receptive_field": m.spec.receptive_field,
        "kind": m.spec.extra.get("kind", ""), "multi_image": m.spec.multi_image,
        "weights": UNTRAINED if m.n_params() > 0 else NO_WEIGHTS, "uncertainty": None,
    }
