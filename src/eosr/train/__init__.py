"""Reproducible CPU training of eosr models (``eosr train CONFIG.toml``).

- :mod:`eosr.train.config`: the validated TOML configuration (pydantic).
- :mod:`eosr.train.sources`: data sources -> Wald-protocol (or paired) train/val/test samples, split by location.
- :mod:`eosr.train.validate`: per-epoch validation metrics (PSNR, LR/HR fidelity, high-gradient PSNR).
- :mod:`eosr.train.loop`: the deterministic, resumable training loop.
"""

from __future__ import annotations

from eosr._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "build_datasets": "sources",
    "Splits": "sources",
    "evaluate_model": "validate",
    "train": "loop",
    "TrainResult": "loop",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports("eosr.train", _EXPORTS)
