"""The one cache folder of eosr: ``$EOSR_CACHE``, default ``~/.cache/eosr``.

Extracted samples (:mod:`eosr.data.samples`) and converted perceptual weights live there.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EOSR_CACHE`` if set, else ``~/.cache/eosr``."""
    env = os.environ.get("EOSR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "eosr"
