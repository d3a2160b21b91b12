"""The ``eosr`` command: a thin layer over the Python API.

Each sub-command lives in its own module ``eosr.cli.cmd_<name>`` with a ``register(app)`` function;
modules are found by name, so adding a command never edits another's file. A renamed option or config key
used under its old name prints one line ``warning: ... is deprecated; use ...`` on stderr
(:mod:`eosr._deprecation`).

One error discipline, never a traceback for these (``docs/conventions.md#cli-errors-and-exit-codes``):

- a usage error (unknown option, missing argument, bad choice or number) prints ``error: ...`` and a
  ``try 'eosr CMD --help'`` line, exit 2;
- an error of the API (:class:`eosr.errors.EosrError`) or of the system (``OSError``: disk full, permission,
  I/O; GDAL's errors that wrap them) prints one line ``error: ...``, exit 2;
- SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` (so every ``finally`` cleans up), print
  ``interrupted``, exit 130.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType, TracebackType

import click
import typer

from eosr._deprecation import deprecations_to_stderr
from eosr.errors import EosrError

COMMANDS = ("sensors", "simulate", "evaluate", "models", "sr", "train", "benchmark", "export", "explain",
            "demo", "calibrate")

_typer_click: ModuleType
try:  # Typer >= 0.22 vendors its own copy of Click, whose exceptions are not click's
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older Typer uses click itself
    _typer_click = click.exceptions
try:  # rasterio raises GDAL's errors as CPLE_* classes that are not OSError
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover
    CPLE_BaseError = OSError  # type: ignore[assignment,misc]

Errors = tuple[type[Exception], ...]
CLICK_ERRORS: Errors = (click.ClickException, _typer_click.ClickException)
USAGE_ERRORS: Errors = (click.UsageError, _typer_click.UsageError)
NO_ARGS: Errors = tuple(m.NoArgsIsHelpError for m in (click.exceptions, _typer_click)
                        if hasattr(m, "NoArgsIsHelpError"))
INTERRUPTS = ("SIGINT", "SIGTERM", "SIGHUP")
#: errno values that name a cause of the system's (disk full, permission, I/O), as GDAL's messages spell them
OS_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT,
             errno.EISDIR, errno.ENOTDIR, errno.EFBIG, errno.EMFILE)
# eosr.io.raster.atomic_path's names: .<name>.eosr-<pid>-<random>.tmp[.stage.tif] (older: .<name>.XXXXXXXX.tmp)
_TMP = re.compile(r"^\.(?P<name>.+?)\.(eosr-\d+-[A-Za-z0-9_]+|[A-Za-z0-9_]{8})\.tmp(\..*)?$")


def build_app() -> typer.Typer:
    """Create the Typer app with every available sub-command."""
    app = typer.Typer(
        name="eosr",
        help="Super-resolution of Earth-observation imagery: sensor physics and honest metrics first.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMANDS:
        mod = f"eosr.cli.cmd_{name}"
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).register(app)
    return app


def fail(message: str) -> None:
    """Print a one-line error and exit with code 2."""
    first = message.strip().splitlines()[0] if message.strip() else "error"
    click.echo(f"error: {first}", err=True)
    sys.exit(2)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """First SIGINT/SIGTERM/SIGHUP: raise KeyboardInterrupt; later ones are ignored so cleanup can finish."""
    for name in INTERRUPTS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise KeyboardInterrupt


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """Handle SIGTERM and SIGHUP like SIGINT (KeyboardInterrupt) inside the block; handlers restored after."""
    saved = {}
    try:
        for name in INTERRUPTS:
            if hasattr(signal, name):
                sig = getattr(signal, name)
                saved[sig] = signal.signal(sig, _interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _errno_in(text: str) -> int | None:
    """The errno whose message (``No space left on device``) appears in ``text``, if any."""
    low = text.lower()
    return next((n for n in OS_ERRNOS if os.strerror(n).lower() in low), None)


def _chain(e: BaseException) -> list[BaseException]:
    out = [e]
    while (nxt := out[-1].__cause__ or out[-1].__context__) is not None and nxt not in out:
        out.append(nxt)
    return out


def _first_line(e: BaseException) -> str:
    """The first line of the most telling message: rasterio's "See previous exception" defers to its cause."""
    for x in _chain(e):
        text = str(x).strip()
        if text and "see previous exception" not in text.lower():
            return text.splitlines()[0]
    return type(e).__name__


def _in_module(tb: TracebackType | None, module: str) -> bool:
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def is_io_failure(e: BaseException) -> bool:
    """An OS-level failure rather than a bug: OSError, GDAL's errors, a message naming an OS error (safetensors:
    ``I/O error: No space left on device (os error 28)``), or torch's RuntimeError from writing a file."""
    if isinstance(e, OSError | CPLE_BaseError):
        return True
    if _errno_in(" ".join(str(x) for x in _chain(e))) is not None:
        return True
    return isinstance(e, RuntimeError) and _in_module(e.__traceback__, "torch.serialization")


def _written_file(tb: TracebackType | None) -> str | None:
    """The output whose temporary file (:func:`eosr.io.raster.atomic_path`) was open when the error happened."""
    found = None
    while tb is not None:
        for v in tb.tb_frame.f_locals.values():
            if isinstance(v, str | os.PathLike) and (m := _TMP.match(Path(v).name)):
                found = m["name"]
        tb = tb.tb_next
    return found


def describe_io_failure(e: BaseException) -> str:
    """One line for an OS-level failure, e.g. ``no space left on device writing out.tif``."""
    code = e.errno if isinstance(e, OSError) and e.errno else _errno_in(" ".join(str(x) for x in _chain(e)))
    filename = getattr(e, "filename", None)
    if filename is None:  # GDAL names the file first: "/path/.out.tif.abcd1234.tmp.stage.tif: TIFFRead..."
        head = str(e).split(": ", 1)[0]
        filename = head if _TMP.match(Path(head).name) else None
    written = _TMP.match(Path(str(filename)).name) if filename else None
    if filename and not written:
        return f"{os.strerror(code).lower()}: {filename}" if code else _first_line(e)
    target = written["name"] if written else _written_file(e.__traceback__)
    if code:
        return f"{os.strerror(code).lower()} writing {target}" if target else os.strerror(code).lower()
    detail = _first_line(e).removeprefix(f"{filename}: ") if filename else _first_line(e)
    if isinstance(e, RuntimeError) and _in_module(e.__traceback__, "torch.serialization"):
        detail = f"torch could not write the file ({detail})"
    return f"cannot write {target}: {detail}" if target else detail


def _usage_error(e: Exception) -> None:
    ctx = getattr(e, "ctx", None)
    click.echo(f"error: {e.format_message()}", err=True)  # type: ignore[attr-defined]
    if ctx is not None:
        click.echo(f"try '{ctx.command_path} --help'", err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        with interrupts_as_keyboard_interrupt():
            app = build_app()
            with deprecations_to_stderr():
                rv = app(args=argv, prog_name="eosr", standalone_mode=False)
    except EosrError as e:
        fail(str(e))
    except (KeyboardInterrupt, typer.Abort, click.exceptions.Abort):
        rv = 130
    except NO_ARGS as e:  # `eosr` alone: the help, as a usage error
        e.show()  # type: ignore[attr-defined]
        sys.exit(2)
    except USAGE_ERRORS as e:
        _usage_error(e)
    except CLICK_ERRORS as e:
        fail(e.format_message())  # type: ignore[attr-defined]
    except Exception as e:  # disk full, permission, I/O: one line; anything else is a bug and keeps its traceback
        if not is_io_failure(e):
            raise
        fail(describe_io_failure(e))
    if rv == 130:  # Typer turns KeyboardInterrupt into exit code 130 without a word
        click.echo("interrupted", err=True)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
