"""Readers and methods a benchmark config may name: registries, not arbitrary code.

A config is data. The names it gives for a dataset ``reader`` or a method ``model`` are looked up in

1. eosr's own registries (:data:`READERS` here, :data:`eosr.models.registry.MODELS` and the shipped
   weights for methods), then
2. the entry points of installed packages, groups :data:`READER_GROUP` (``eosr.readers``) and
   :data:`METHOD_GROUP` (``eosr.methods``), e.g. in a plugin's ``pyproject.toml``::

       [project.entry-points."eosr.readers"]
       my_archive = "my_package.readers:read_archive"

A dotted path ``package.module:function`` runs code that nobody registered: it is refused with a
one-line :class:`~eosr.errors.ConfigError` unless the *user* opts in on the command line
(``eosr benchmark --allow-code``; ``run_benchmark(..., allow_code=True)``). The config itself cannot
opt in. Every ``check_*`` function here validates names only and imports nothing: registries are
``"module:attr"`` strings and entry points are read from package metadata, so ``--check`` runs no code.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from eosr.errors import ConfigError

#: Entry-point group of dataset readers: ``reader(**options)`` yields ``(id, hr)`` pairs, dicts with
#: ``id``, ``hr`` and optionally ``lr``, or :class:`eosr.data.sample.Sample` records.
READER_GROUP = "eosr.readers"
#: Entry-point group of SR methods: ``factory(scale=, bands=, **options)`` returns a model (a
#: ``torch.nn.Module`` or a callable mapping a (1, C, h, w) tensor to (1, C, H, W)).
METHOD_GROUP = "eosr.methods"

#: eosr's own readers (single-image LR/HR pairs), imported only when a run uses them.
READERS: dict[str, str] = {
    "paired_geotiff": "eosr.data.paired:PairedGeoTiffDataset",
    "sen2venus": "eosr.data.sen2venus:Sen2VenusDataset",
}

_CODE_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_NO_CODE = "runs code from a dotted path; pass --allow-code (Python: allow_code=True) to allow it"


def is_code_ref(name: str) -> bool:
    """Whether ``name`` is a dotted path ``package.module:attribute`` (rather than a registry name)."""
    return ":" in name


def entry_point_map(group: str) -> dict[str, EntryPoint]:
    """Entry points of installed packages in ``group``, by name (metadata only: nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def reader_names() -> list[str]:
    """Names a dataset ``reader`` may take without ``--allow-code``: eosr's readers and entry points."""
    return sorted(set(READERS) | set(entry_point_map(READER_GROUP)))


def _check_code_ref(what: str, name: str, allow_code: bool) -> None:
    if not allow_code:
        raise ConfigError(f"{what} {name!r} {_NO_CODE}")
    if not _CODE_REF.match(name):
        raise ConfigError(f"{what} {name!r} is not a dotted path 'package.module:function'")


def check_reader(name: str | None, allow_code: bool = False) -> None:
    """Validate a reader name without importing anything (unknown name or refused dotted path: ConfigError)."""
    if not name:
        raise ConfigError(f"kind 'reader' needs reader = one of {', '.join(reader_names())} "
                          "(or an entry point of group 'eosr.readers')")
    if is_code_ref(name):
        _check_code_ref("reader", name, allow_code)
    elif name not in READERS and name not in entry_point_map(READER_GROUP):
        import difflib

        known = reader_names()
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"unknown reader {name!r}{hint}; known: {', '.join(known) or 'none'} "
                          f"(entry points of group {READER_GROUP!r} add more)")


def _import(ref: str, what: str) -> Any:
    mod_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import {what} {ref!r}: {e}") from None
    return obj


def _load_entry_point(ep: EntryPoint, what: str) -> Any:
    try:
        return ep.load()
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {what} {ep.name!r} (entry point {ep.value!r}): {e}") from None


def load_reader(name: str | None, allow_code: bool = False) -> Callable[..., Any]:
    """The reader callable of a checked name (this imports its module)."""
    check_reader(name, allow_code)
    assert name is not None
    if name in READERS:
        fn: Any = _import(READERS[name], "reader")
    elif is_code_ref(name):
        fn = _import(name, "reader")
    else:
        fn = _load_entry_point(entry_point_map(READER_GROUP)[name], "reader")
    if not callable(fn):
        raise ConfigError(f"reader {name!r} is not callable")
    return fn  # type: ignore[no-any-return]


def is_path_ref(model: str) -> bool:
    """Whether a method ``model`` is a checkpoint path (absolute, as :func:`eosr.benchmark.config.parse_config`
    makes config-relative ones, with a folder part, or a ``.safetensors`` / ``.json`` file): data, not code."""
    p = Path(model)
    return p.is_absolute() or len(p.parts) > 1 or p.suffix in (".safetensors", ".json")


def method_kind(model: str) -> str:
    """``"eosr"`` (eosr's registry, shipped weights or a checkpoint path), ``"entry_point"`` or ``"code"``
    (dotted path); ``"unknown"`` otherwise. Imports nothing."""
    from eosr.benchmark.methods import _canonical, known_models

    if is_code_ref(model):
        return "code"
    if _canonical(model) in known_models() or is_path_ref(model):
        return "eosr"
    if model in entry_point_map(METHOD_GROUP):
        return "entry_point"
    return "unknown"


def check_method_model(model: str, allow_code: bool = False) -> str:
    """Validate a method's ``model`` without importing anything; return its :func:`method_kind`."""
    kind = method_kind(model)
    if kind == "code":
        _check_code_ref("model", model, allow_code)
    return kind


def load_method_factory(model: str, allow_code: bool = False) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The factory of an entry-point or dotted-path method, and an identity record for its cache key
    (entry point value and package version; dotted path: the module file's hash)."""
    kind = check_method_model(model, allow_code)
    if kind == "entry_point":
        ep = entry_point_map(METHOD_GROUP)[model]
        fn = _load_entry_point(ep, "method")
        dist = getattr(ep, "dist", None)
        ident: dict[str, Any] = {"entry_point": ep.value, "dist": getattr(dist, "name", None),
                                 "version": getattr(dist, "version", None)}
    elif kind == "code":
        fn = _import(model, "model")
        ident = {"code": model, "module_sha256": _module_hash(model.partition(":")[0])}
    else:
        raise ConfigError(f"model {model!r} is not an entry point or a dotted path")
    if not callable(fn):
        raise ConfigError(f"model {model!r} is not callable")
    return fn, ident


def _module_hash(mod_name: str) -> str | None:
    f = getattr(sys.modules.get(mod_name), "__file__", None)
    if not f or not Path(f).is_file():
        return None
    return hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16]
