"""Renamed options and config keys: the old name keeps working for a while, with a one-line warning.

One mechanism for command-line options, Python keyword arguments and config keys:

- :func:`renamed_option` resolves a value given under its new or its old name (both given: a one-line
  :class:`~eosr.errors.ConfigError`, exit code 2 in the CLI);
- :func:`renamed_keys` maps old keys of a config mapping to the new ones (both present: the same error);
- both warn with :class:`EosrDeprecationWarning` (a :class:`DeprecationWarning`); the ``eosr`` command
  prints it as one line on stderr, e.g. ``warning: --psf is deprecated; use --operator``
  (:func:`deprecations_to_stderr`).

Old command-line names stay accepted but are hidden from ``--help``. Every rename is listed in
:data:`RENAMED` and in CHANGELOG.md under "Deprecated", with the release that will remove it.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from eosr.errors import ConfigError

__all__ = ["RENAMED", "EosrDeprecationWarning", "deprecations_to_stderr", "renamed_keys", "renamed_option",
           "warn_renamed"]

T = TypeVar("T")

#: Every rename still accepted: (where, old name, new name). Renamed after 0.1.0: ``psf`` -> ``operator``
#: (one vocabulary for the degradation operator: ``wald`` or ``full``).
RENAMED: list[tuple[str, str, str]] = [
    ("eosr demo", "--psf", "--operator"),
    ("benchmark config [[datasets]]", "psf", "operator"),
    ("eosr.benchmark.demo.run_demo / demo_config", "psf=", "operator="),
]


class EosrDeprecationWarning(DeprecationWarning):
    """A renamed option or config key was used under its old name."""


def warn_renamed(old: str, new: str, where: str = "", stacklevel: int = 3) -> None:
    """Warn (:class:`EosrDeprecationWarning`) that ``old`` is deprecated in favour of ``new``."""
    prefix = f"{where}: " if where else ""
    warnings.warn(f"{prefix}{old} is deprecated; use {new}", EosrDeprecationWarning, stacklevel=stacklevel)


def renamed_option(new: tuple[str, T | None], old: tuple[str, T | None], default: T, where: str = "") -> T:
    """The value of an option renamed from ``old[0]`` to ``new[0]``; each pair is ``(name, value or None)``.

    Only the new name given: its value. Only the old one: its value, with a deprecation warning. Neither:
    ``default``. Both: :class:`ConfigError`.
    """
    (new_name, new_value), (old_name, old_value) = new, old
    if old_value is None:
        return default if new_value is None else new_value
    if new_value is not None:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}give {new_name} or the deprecated {old_name}, not both")
    warn_renamed(old_name, new_name, where)
    return old_value


def renamed_keys(data: Any, renames: Mapping[str, str], where: str = "") -> Any:
    """A copy of the mapping ``data`` with each old key of ``renames`` (old -> new) under its new name,
    with a deprecation warning per old key found (old and new both present: :class:`ConfigError`).
    Anything but a mapping, or a mapping without old keys, is returned as it is."""
    if not isinstance(data, Mapping) or not any(k in data for k in renames):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}give {new!r} or the deprecated {old!r}, not both")
        warn_renamed(f"key {old!r}", repr(new), where)
        out[new] = out.pop(old)
    return out


@contextmanager
def deprecations_to_stderr() -> Iterator[None]:
    """Within the block, every :class:`EosrDeprecationWarning` and :class:`eosr.errors.EosrWarning` is
    printed as one line ``warning: <message>`` on stderr (each time); any other warning that reaches the
    terminal as one line ``warning: <Category>: <message>`` (no file name, no source line)."""
    from eosr.errors import EosrWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", EosrDeprecationWarning)
        warnings.simplefilter("always", EosrWarning)

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
            if issubclass(category, (EosrDeprecationWarning, EosrWarning)):
                print(f"warning: {message}", file=sys.stderr)
            else:
                text = " ".join(str(message).split())
                print(f"warning: {category.__name__}: {text}", file=sys.stderr)

        warnings.showwarning = show
        yield
