"""Lazy package exports (PEP 562): a package's public names are imported from their module on first use,
so ``import eosr.<package>`` stays cheap (torch, rasterio and friends load only when needed)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``exports[name]`` is the module that defines ``name``,
    absolute (``eosr.scene.sr``) or relative to the package (``sr``)."""

    def __getattr__(name: str) -> Any:
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(mod if mod.startswith("eosr.") else f"{package}.{mod}"), name)

    return __getattr__
