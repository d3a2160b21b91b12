"""The ``eosr`` command: a thin layer over the Python API.

Each sub-command lives in its own module ``eosr.cli.cmd_<name>`` with a ``register(app)`` function;
modules are found by name, so adding a command never edits another's file. Errors of the API
(:class:`eosr.errors.EosrError`) end with a one-line message and exit code 2, never a traceback. A renamed
option or config key used under its old name prints one line ``warning: ... is deprecated; use ...``
on stderr (:mod:`eosr._deprecation`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click
import typer

from eosr._deprecation import deprecations_to_stderr
from eosr.errors import EosrError

COMMANDS = ("sensors", "simulate", "evaluate", "models", "sr", "train", "benchmark", "export", "explain",
            "demo", "calibrate")


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    app = build_app()
    try:
        with deprecations_to_stderr():
            rv = app(args=argv, standalone_mode=False)
    except EosrError as e:
        fail(str(e))
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        fail(e.format_message())
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        fail(f"{e.strerror}: {e.filename}")
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
