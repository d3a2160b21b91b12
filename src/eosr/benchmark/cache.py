"""On-disk cache of SR outputs and per-image scores, written atomically so a run can resume.

Layout under the cache root::

    sr/<dataset_key>/<method_key>/<image_id>.npy          SR output (float32, C x H x W)
    scores/<dataset_key>/<method_key>/<score_key>/<image_id>.json   {"schema_version", "scores": {...}}

``dataset_key`` hashes the dataset's config and files, ``method_key`` the method's config (and model
info), ``score_key`` the metric selection, data range, evaluator and eosr version: changing one of them
recomputes only what depends on it.

Entries are validated when read: an unreadable file, a scores document of the wrong structure (e.g.
hand-edited) or an SR array of the wrong shape or type is a miss. It is recomputed and overwritten,
with one ``warning: ...`` line on stderr, and counted in :attr:`Cache.invalid`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Sequence
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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _valid_scores(scores: Any) -> bool:
    """``{name: {"value": finite number, "per_band": list | None (optional), ...}}``."""
    if not isinstance(scores, dict):
        return False
    for name, sc in scores.items():
        if not isinstance(name, str) or not isinstance(sc, dict) or not _is_number(sc.get("value")):
            return False
        if sc.get("per_band") is not None and not isinstance(sc["per_band"], list):
            return False
    return True


class Cache:
    """SR and score cache rooted at ``root``; :attr:`invalid` counts the entries found broken (recomputed)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.invalid = 0

    def _miss(self, p: Path, why: str) -> None:
        self.invalid += 1
        print(f"warning: invalid cache entry {p} ({why}): recomputed", file=sys.stderr, flush=True)

    def sr_path(self, dkey: str, mkey: str, image_id: str) -> Path:
        """Where the SR output of one image is stored."""
        return self.root / "sr" / dkey / mkey / f"{safe_name(image_id)}.npy"

    def score_path(self, dkey: str, mkey: str, skey: str, image_id: str) -> Path:
        """Where the scores of one image are stored."""
        return self.root / "scores" / dkey / mkey / skey / f"{safe_name(image_id)}.json"

    def load_sr(self, dkey: str, mkey: str, image_id: str, shape: Sequence[int] | None = None
                ) -> np.ndarray | None:
        """The cached SR output (float32, C x H x W, of ``shape`` when given), or None: missing, or invalid
        (unreadable e.g. truncated, not a 3-D real array, wrong shape; then a warning line)."""
        p = self.sr_path(dkey, mkey, image_id)
        if not p.exists():
            return None
        try:
            a = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            self._miss(p, "unreadable")
            return None
        if not isinstance(a, np.ndarray) or a.ndim != 3 or a.dtype.kind not in "fiu":
            self._miss(p, f"not a (C, H, W) real array: {getattr(a, 'dtype', type(a).__name__)} "
                          f"{getattr(a, 'shape', '')}")
            return None
        if shape is not None and tuple(a.shape) != tuple(shape):
            self._miss(p, f"shape {tuple(a.shape)}, expected {tuple(shape)}")
            return None
        return a.astype(np.float32, copy=False)

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
            doc = json.loads(p.read_text(encoding="utf-8"))
            check_schema(doc, str(p))
        except EosrError as e:  # e.g. written by a newer eosr: recompute
            self._miss(p, str(e).removeprefix(f"{p}: ").removeprefix(f"{p} "))
            return None
        except (OSError, ValueError):
            self._miss(p, "unreadable JSON")
            return None
        out = doc.get("scores") if isinstance(doc, dict) and SCHEMA_KEY in doc else doc  # older files: bare
        if not _valid_scores(out):
            self._miss(p, "not a {metric: {value, per_band}} mapping")
            return None
        return out  # type: ignore[no-any-return]

    def save_scores(self, dkey: str, mkey: str, skey: str, image_id: str, scores: dict[str, Any]) -> None:
        """Store the scores of one image atomically (strict JSON)."""
        p = self.score_path(dkey, mkey, skey, image_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p) as tmp:
            tmp.write_text(json.dumps(stamped({"scores": scores}), allow_nan=False, sort_keys=True))
