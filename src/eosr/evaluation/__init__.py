"""One-call evaluation: :func:`evaluate` computes every metric the given inputs allow.

``eosr.evaluate`` is this package's :func:`evaluate` (exposed lazily by ``eosr/__init__``).
"""

from __future__ import annotations

from eosr.evaluation.core import evaluate
from eosr.evaluation.result import EvaluationResult

__all__ = ["EvaluationResult", "evaluate"]
