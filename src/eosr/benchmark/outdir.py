"""The benchmark output folder: claimed before any work, replaced as a whole at the end.

- **No silent overwrite.** A folder is written only if it is new, empty, or eosr's own: it holds the
  marker :data:`MARKER` (``.eosr-benchmark``, written when eosr claims the folder) or a ``results.json``
  of eosr's schema (folders of earlier versions). Any other populated folder is refused with a one-line
  error naming ``--overwrite``; with it, eosr's result files are replaced and every other file is kept.
- **Atomic result set.** The result files are written into a staging sibling ``.<name>.eosr-new``
  (marker last). Then every entry of the folder that is not a result file (the ``cache/``, other files)
  is moved into the staging folder, the old folder is renamed to ``.<name>.eosr-old``, the staging folder
  takes its name, and the old one is deleted. An interruption at any step leaves the previous complete
  set (or the new one) in place, never a mix; the next run into the same folder finishes or undoes the
  interrupted step (:func:`recover`) and removes the leftovers.
- **One writer.** The folder is locked (``flock``, where available) while a run writes it: a second run
  into the same folder is refused instead of mixing the two.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from eosr._schema import SCHEMA_KEY, stamped
from eosr.errors import DataError
from eosr.io.raster import atomic_path

#: The file that marks a folder as eosr benchmark output (written when claimed, and last in every set).
MARKER = ".eosr-benchmark"

#: The result set: replaced as a whole by each run (everything else in the folder is kept).
RESULT_FILES = frozenset({
    "config.toml", "config.json", "versions.json", "results.json", "report.html",
    "per_image.csv", "per_image.json", "per_image.parquet", "summary.csv", "summary.json", "summary.parquet",
    "leaderboard.csv", "leaderboard.json", MARKER,
})


def _siblings(out: Path) -> tuple[Path, Path]:
    return out.parent / f".{out.name}.eosr-new", out.parent / f".{out.name}.eosr-old"


def _kept(name: str) -> bool:
    """Entries carried from one set to the next: not a result file, not a stale temporary file."""
    return name not in RESULT_FILES and not (name.startswith(".") and name.endswith(".tmp"))


def is_eosr_folder(out: Path) -> bool:
    """Whether ``out`` holds eosr benchmark output (the marker, or an eosr ``results.json``)."""
    if (out / MARKER).is_file():
        return True
    try:
        doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and SCHEMA_KEY in doc and "per_image" in doc and "leaderboard" in doc


def write_marker(folder: Path) -> None:
    """Write the marker file into ``folder`` (atomically)."""
    from eosr import __version__

    doc = stamped({"tool": "eosr benchmark", "eosr": __version__,
                   "written": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    with atomic_path(folder / MARKER) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _give_back(src: Path, out: Path) -> None:
    """Move the kept entries of an abandoned staging/old folder back into ``out``, then delete it."""
    if out.is_dir():
        for e in list(src.iterdir()):
            if _kept(e.name) and not (out / e.name).exists():
                os.replace(e, out / e.name)
    shutil.rmtree(src, ignore_errors=True)


def recover(out: Path) -> None:
    """Finish or undo a result-set replacement that was interrupted, and remove its leftovers."""
    stage, old = _siblings(out)
    if not out.exists():
        if stage.is_dir() and (stage / MARKER).is_file():  # killed between the two renames: stage is complete
            os.replace(stage, out)
        elif old.is_dir():
            os.replace(old, out)
    for leftover in (stage, old):
        if leftover.is_dir():
            _give_back(leftover, out)


def _lock(out: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DataError(f"output folder {out} is being written by another eosr benchmark run") from None
    return fd


def claim(out: Path, overwrite: bool = False) -> int | None:
    """Make ``out`` eosr's output folder (refusing a populated foreign folder unless ``overwrite``) and lock
    it; returns the lock to pass to :func:`release`."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output folder {out} is a file")
    if not out.exists():
        recover(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock(out)
    except OSError as e:
        raise DataError(f"cannot create the output folder {out}: {e.strerror}") from None
    try:
        recover(out)
        if any(out.iterdir()) and not is_eosr_folder(out) and not overwrite:
            raise DataError(f"output folder {out} is not empty and holds no eosr benchmark results; "
                            "pass --overwrite to replace its results (other files are kept)")
        if not (out / MARKER).is_file():
            write_marker(out)
    except BaseException:
        release(lock)
        raise
    return lock


def release(lock: int | None) -> None:
    """Release the lock of :func:`claim`."""
    if lock is not None:
        os.close(lock)


def staging(out: Path) -> Path:
    """A fresh, empty staging folder beside ``out`` for the next result set."""
    stage, _ = _siblings(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def commit(stage: Path, out: Path) -> None:
    """Replace the result set of ``out`` by the one in ``stage`` as a whole, keeping the other entries
    (the cache, the user's files); stale temporary files and results of the old set go."""
    write_marker(stage)  # last: a staging folder with the marker is complete
    _, old = _siblings(out)
    for e in list(out.iterdir()):
        if _kept(e.name) and not (stage / e.name).exists():
            os.replace(e, stage / e.name)
    if old.exists():
        shutil.rmtree(old)
    os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
