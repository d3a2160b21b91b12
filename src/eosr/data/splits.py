"""Splits by location: a place never appears in two splits; reproducible from a seed; manifest JSON.

The unique location ids are sorted (so the input order does not matter), permuted with
``numpy.random.default_rng(seed)`` and cut into consecutive blocks whose sizes follow the fractions
(largest-remainder rounding). SEN2VENuS and CESBIO's practice: split by site/location, never by
patch, because one place recurs on many dates.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosr._schema import SCHEMA_VERSION, check_schema
from eosr.errors import DataError

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
MANIFEST_VERSION = 1


def _counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    tot = sum(fractions.values())
    exact = {k: n * f / tot for k, f in fractions.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    left = n - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), list(fractions).index(k)))[:left]:
        counts[k] += 1
    return counts


def split_locations(
    location_ids: Iterable[str],
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Assign every unique location to exactly one split; returns split name -> sorted location ids."""
    fr = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fr or any(not math.isfinite(f) or f < 0 for f in fr.values()) or sum(fr.values()) <= 0:
        raise DataError(f"split fractions must be >= 0 with a positive sum, got {fr}")
    locs = sorted({str(x) for x in location_ids})
    order = np.random.default_rng(seed).permutation(len(locs))
    out: dict[str, list[str]] = {}
    start = 0
    for k, c in _counts(len(locs), fr).items():
        out[k] = sorted(locs[i] for i in order[start : start + c])
        start += c
    return out


def assign_splits(location_ids: Sequence[str], splits: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Indices of the samples (given by their location ids) that fall in each split."""
    where: dict[str, str] = {}
    for name, locs in splits.items():
        for loc in locs:
            if loc in where:
                raise DataError(f"location {loc!r} is in two splits: {where[loc]} and {name}")
            where[loc] = name
    out: dict[str, list[int]] = {k: [] for k in splits}
    for i, loc in enumerate(location_ids):
        if loc not in where:
            raise DataError(f"location {loc!r} is in no split")
        out[where[loc]].append(i)
    return out


def write_manifest(
    path: str | os.PathLike[str],
    splits: Mapping[str, Sequence[str]],
    *,
    seed: int,
    fractions: Mapping[str, float] | None = None,
    samples: Mapping[str, Sequence[str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the split manifest (strict JSON) atomically: locations per split, seed, fractions and
    optionally the sample ids per split and any extra provenance (e.g. the degradation)."""
    from eosr.io.raster import atomic_path

    assign_splits([], splits)  # raises if a location is in two splits
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "version": MANIFEST_VERSION,
        "seed": int(seed),
        "fractions": dict(fractions or {}),
        "splits": {k: list(v) for k, v in splits.items()},
    }
    if samples is not None:
        doc["samples"] = {k: list(v) for k, v in samples.items()}
    if extra:
        doc["extra"] = dict(extra)
    text = json.dumps(doc, indent=1, allow_nan=False, sort_keys=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a manifest written by :func:`write_manifest`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"manifest not found: {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict):
        raise DataError(f"{p}: not a split manifest (no 'splits' object)")
    check_schema(doc, str(p))  # manifests without schema_version (older files) are read as they are
    try:
        assign_splits([], doc["splits"])
    except DataError as e:
        raise DataError(f"{p}: {e}") from None
    return doc


def split_dataset(
    dataset: Any,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    manifest: str | os.PathLike[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Split a reader/dataset with ``location_ids`` by location into ``torch.utils.data.Subset`` objects.

    When ``manifest`` is given, the split (locations, seed, fractions and the sample ids per split when
    the dataset exposes ``samples`` or ``items`` with ``sample_id``) is written there as JSON.
    """
    from torch.utils.data import Subset

    locs = list(dataset.location_ids)
    fr = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    sp = split_locations(locs, fr, seed)
    idx = assign_splits(locs, sp)
    if manifest is not None:
        recs = getattr(dataset, "samples", None) or getattr(dataset, "items", None)
        ids = None
        if recs and len(recs) == len(locs) and hasattr(recs[0], "sample_id"):
            ids = {k: [recs[i].sample_id for i in v] for k, v in idx.items()}
        write_manifest(manifest, sp, seed=seed, fractions=fr, samples=ids, extra=extra)
    return {k: Subset(dataset, v) for k, v in idx.items()}
