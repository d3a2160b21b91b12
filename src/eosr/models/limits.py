"""Sanity limits on model options, checked before any model is built (from a card, the CLI or the API).

A hostile or mistyped checkpoint card (``channels = 100000``) must fail with one line instead of trying to
allocate hundreds of GB. :func:`check_model_options` refuses integer options outside :data:`LIMITS`, then
builds the model on PyTorch's ``meta`` device (shapes only, no memory) to count its parameters and refuses a
model whose parameters (float32, twice: the model and the state dict being loaded into it) would not fit in
the memory available.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from eosr.errors import EosrError, ModelError
from eosr.io.raster import available_memory

#: inclusive (low, high) bounds of integer model options, whatever the architecture
LIMITS: dict[str, tuple[int, int]] = {
    "scale": (1, 16),
    "n_bands": (1, 64),
    "channels": (1, 1024),
    "features": (1, 1024),
    "n_feats": (1, 1024),
    "group": (1, 1024),
    "reduction": (1, 1024),
    "blocks": (1, 64),
    "n_blocks": (1, 64),
    "fuse_blocks": (1, 64),
    "bp_skip": (0, 100),
    "bp_refine": (0, 100),
    "iterations": (0, 1000),
}
MAX_BANDS = LIMITS["n_bands"][1]
GIB = 2.0**30


def _check_int(key: str, value: Any, where: str) -> None:
    lo, hi = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ModelError(f"{where}: {key} must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ModelError(f"{where}: {key} = {value} is outside the limit {lo}..{hi}")


def check_option_bounds(options: dict[str, Any], where: str = "model") -> None:
    """Raise a one-line :class:`ModelError` naming the option and its limit if one is out of bounds."""
    for key, value in options.items():
        if key in LIMITS and value is not None:
            _check_int(key, value, where)
        elif key in ("bands", "bands_10m", "bands_20m") and value is not None:
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, Sequence) or len(value) > MAX_BANDS:
                size = len(value) if isinstance(value, Sequence) else type(value).__name__
                raise ModelError(f"{where}: {key} must be a list of at most {MAX_BANDS} band names, got {size}")


def check_model_options(factory: Callable[..., Any], options: dict[str, Any], where: str = "model") -> None:
    """Check ``options`` (scale, bands, n_bands and the factory's keywords) before ``factory(**options)`` runs.

    Bounds first (:data:`LIMITS`), then the parameter memory of the model built on the meta device
    (no allocation) against :func:`available_memory`.
    """
    import torch

    check_option_bounds(options, where)
    try:
        with torch.device("meta"):
            model = factory(**options)
    except (EosrError, TypeError):  # the real build would raise the same
        raise
    except Exception:  # noqa: BLE001 - a factory that cannot run on meta tensors: the bounds above still hold
        return
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    need = 2 * 4 * n  # float32 weights + the state dict being loaded into them
    have = available_memory()
    if need > have:
        raise ModelError(f"{where}: its {n:,} parameters need about {need / GIB:.1f} GiB, more than the "
                         f"{have / GIB:.1f} GiB of memory available")
