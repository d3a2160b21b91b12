"""Trust: uncertainty, calibration, saliency, support and layer-level analysis of SR models.

Submodules (import what you need; nothing heavy is imported eagerly):

- :mod:`eosr.trust.uncertainty`: MC dropout, deep ensembles, variance heads, ``UncertainSR`` wrapper.
- :mod:`eosr.trust.calibration`: sparsification/AUSE, Spearman, interval coverage, conformal recalibration.
- :mod:`eosr.trust.saliency`: input gradients, integrated gradients, effective receptive field.
- :mod:`eosr.trust.support`: the share of SR detail above the LR Nyquist frequency.
- :mod:`eosr.trust.layers`: controlled stimuli, activation statistics, filter responses, hallucination trace.
- :mod:`eosr.trust.attention_model`: a small RCAN-style channel-attention SR net that exports its attention.
- :mod:`eosr.trust.classical`: back-projection SR with a jittered PSF (a cheap, training-free ensemble).
- :mod:`eosr.trust.explain`: the API behind ``eosr explain`` (figures and JSON).
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("uncertainty", "calibration", "saliency", "support", "layers", "attention_model", "classical",
               "explain")


def __getattr__(name: str) -> Any:
    for sub in _SUBMODULES:
        mod = importlib.import_module(f"eosr.trust.{sub}")
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module 'eosr.trust' has no attribute {name!r}")
