"""The version of every JSON document eosr writes for users: a top-level ``"schema_version"`` key.

``SCHEMA_VERSION`` is a string ``"MAJOR.MINOR"``, one number for all of eosr's JSON outputs (the
evaluation JSON, benchmark outputs and score cache, training history, checkpoint cards, split
manifests, calibration files, ``eosr explain`` / attention outputs, ``frames.json`` of a simulated
multi-image set, ``eosr models --json``):

- MINOR grows when keys are added; readers ignore keys they do not know.
- MAJOR grows when a key is renamed or removed or changes its meaning or unit.

eosr reads documents of its own MAJOR and documents without the key (written before the key existed;
:func:`version_of` reports them as ``"0"``). A document of a higher MAJOR is refused with a one-line
error that names the file. Documents whose top level is a list (benchmark row tables, the training
history, the model list) are written as ``{"schema_version": ..., "<name>": [...]}``.

Internal hashes, TIFF tags holding JSON strings and safetensors metadata carry no version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eosr.errors import DataError, EosrError

__all__ = ["SCHEMA_KEY", "SCHEMA_VERSION", "check_schema", "stamped", "unstamped", "version_of"]

SCHEMA_VERSION = "1.0"
SCHEMA_KEY = "schema_version"


def stamped(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with ``"schema_version"`` as its first key (an existing one is replaced)."""
    out: dict[str, Any] = {SCHEMA_KEY: SCHEMA_VERSION}
    out.update((k, v) for k, v in doc.items() if k != SCHEMA_KEY)
    return out


def version_of(doc: Any) -> str:
    """The schema version of a parsed document: its ``"schema_version"``, or ``"0"`` without one."""
    if isinstance(doc, Mapping) and SCHEMA_KEY in doc:
        return str(doc[SCHEMA_KEY])
    return "0"


def _major(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        head = v.split(".", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def check_schema(doc: Any, where: str = "document", error: type[EosrError] = DataError) -> None:
    """Raise ``error`` (one line naming ``where``) if ``doc`` has a schema version this eosr cannot read."""
    if not isinstance(doc, Mapping) or SCHEMA_KEY not in doc:
        return
    v = doc[SCHEMA_KEY]
    major = _major(v)
    ours = _major(SCHEMA_VERSION)
    if major is None:
        raise error(f"{where}: schema_version must be a string 'MAJOR.MINOR', got {v!r}")
    if ours is not None and major > ours:
        raise error(f"{where} has schema_version {v}, newer than this eosr reads ({SCHEMA_VERSION}); upgrade eosr")


def unstamped(doc: Any, where: str = "document", error: type[EosrError] = DataError) -> Any:
    """``doc`` without its ``"schema_version"`` after :func:`check_schema` (other values pass through)."""
    check_schema(doc, where, error)
    if isinstance(doc, Mapping) and SCHEMA_KEY in doc:
        return {k: v for k, v in doc.items() if k != SCHEMA_KEY}
    return doc
