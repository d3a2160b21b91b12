"""When progress bars are shown: as asked, else only when stderr is a terminal (a log file gets none)."""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """The ``progress=`` rule of the Python API and the CLI's ``--progress/--no-progress``: as given, else shown
    when stderr is a terminal."""
    return bool(progress) if progress is not None else sys.stderr.isatty()
