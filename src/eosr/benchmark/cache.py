"""On-disk cache of SR outputs and per-image scores, written atomically so a run can resume.

Layout under the cache root::

    sr/<dataset_key>/<method_key>/<image_id>.npy          SR output (float32, C x H x W)
    scores/<dataset_key>/<method_key>/<score_key>/<image_id>.json   {"schema_version", "scores": {...}}

``dataset_key`` hashes the dataset's config and files, ``method_key`` the method's config (and model
info), ``score_key`` the metric selection, data range, evaluator and eosr version: changing one of them
recomputes only what depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from eosr._schema import SCHEMA_KEY, check_schema, stamped
from eosr.errors import EosrError
from eosr.io.raster import atomic_path

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(s: str) -> str:
    """A file-name-safe version of an image id (a short hash keeps distinct ids distinct)."""
    clean = _SAFE.sub("_", s).strip("._") or "img"
    if clean != s:
        clean += "-" + hashlib.sha1(s.encode()).hexdigest()[:6]
    return clean[:120]


def hash_of(obj: Any) -> str:
    """Short stable hash of JSON-serialisable data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Cache:
    """SR and score cache rooted at ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def sr_path(self, dkey: str, mkey: str, image_id: str) -> Path:
        """Where the SR output of one image is stored."""
        return self.root / "sr" / dkey / mkey / f"{safe_name(image_id)}.npy"

    def score_path(self, dkey: str, mkey: str, skey: str, image_id: str) -> Path:
        """Where the scores of one image are stored."""
        return self.root / "scores" / dkey / mkey / skey / f"{safe_name(image_id)}.json"

    def load_sr(self, dkey: str, mkey: str, image_id: str) -> np.ndarray | None:
        """The cached SR output, or None (also for an unreadable, e.g. truncated, file)."""
        p = self.sr_path(dkey, mkey, image_id)
        if not p.exists():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def save_sr(self, dkey: str, mkey: str, image_id: str, sr: np.ndarray) -> None:
        """Store an SR output atomically."""
        p = self.sr_path(dkey, mkey, image_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(sr, dtype=np.float32), allow_pickle=False)

    def load_scores(self, dkey: str, mkey: str, skey: str, image_id: str) -> dict[str, Any] | None:
        """Cached scores of one image, or None."""
        p = self.score_path(dkey, mkey, skey, image_id)
        if not p.exists():
            return None
        try:
            doc = json.loads(p.read_text())
            check_schema(doc, str(p))
        except EosrError:
            return None  # written by a newer eosr: recompute
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        out: dict[str, Any] = doc.get("scores", {}) if SCHEMA_KEY in doc else doc  # older files: bare scores
        return out

    def save_scores(self, dkey: str, mkey: str, skey: str, image_id: str, scores: dict[str, Any]) -> None:
        """Store the scores of one image atomically (strict JSON)."""
        p = self.score_path(dkey, mkey, skey, image_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p) as tmp:
            tmp.write_text(json.dumps(stamped({"scores": scores}), allow_nan=False, sort_keys=True))
