"""eosr._alloc: inside the block a freed large buffer stays mapped for the next one (Linux/glibc)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from eosr import _alloc

pytestmark = pytest.mark.skipif(_alloc._libc() is None, reason="needs glibc (Linux)")
MB = 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _kept_after_free(n_bytes: int = 64 * MB) -> int:
    """Resident bytes still held after a touched ``n_bytes`` array (above glibc's 32 MiB mmap cap) is freed."""
    before = _rss()
    a = np.ones(n_bytes // 8)
    del a
    return _rss() - before


def test_freed_large_buffers_stay_mapped_inside_and_are_returned_on_exit() -> None:
    assert _kept_after_free() < 8 * MB  # default glibc: munmap on free
    with _alloc.reuse_large_allocations():
        kept = _kept_after_free()
        assert kept > 48 * MB  # heap block kept for the next tile
        assert _kept_after_free() < 8 * MB  # ... and reused: no growth on the second round
    assert _kept_after_free() < 8 * MB  # defaults are back


def test_nesting_restores_once_and_env_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with _alloc.reuse_large_allocations(), _alloc.reuse_large_allocations():
        assert _alloc._depth == 2
    assert _alloc._depth == 0
    monkeypatch.setenv("EOSR_MALLOC", "default")
    with _alloc.reuse_large_allocations():
        assert _alloc._depth == 0 and _kept_after_free() < 8 * MB


def test_only_linux_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _alloc._libc() is None
