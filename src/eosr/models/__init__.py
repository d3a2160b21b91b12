"""SR models of eosr: baselines, CARN / CARN-M, Sentinel-2 multi-resolution, multi-image fusion.

>>> from eosr.models import get_model, list_models
>>> "bicubic" in list_models()
True

:func:`resolve_model` turns any model reference (registry name, shipped weights name, checkpoint path or
folder) into a model, refusing untrained learned architectures unless ``allow_untrained=True``.

The registry imports a model's module only when the model is requested.
"""

from __future__ import annotations

from typing import Any

from eosr.models.base import ModelSpec, SRModel, SRNet, enable_mc_dropout
from eosr.models.registry import (
    describe_model,
    get_model,
    list_models,
    load_model,
    resolve_model,
    shipped_weights,
    weights_status,
)

__all__ = [
    "ModelSpec", "SRModel", "SRNet", "enable_mc_dropout", "describe_model", "get_model", "list_models",
    "load_model", "resolve_model", "weights_status", "shipped_weights", "save_checkpoint", "load_checkpoint",
    "read_card", "predict", "export_onnx",
]


def __getattr__(name: str) -> Any:
    if name in ("save_checkpoint", "load_checkpoint", "read_card", "predict"):
        from eosr.models import checkpoint

        return getattr(checkpoint, name)
    if name == "export_onnx":
        from eosr.models.export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'eosr.models' has no attribute {name!r}")
