"""Keep large buffers in the process while a loop reallocates them (glibc only; a no-op elsewhere).

glibc's ``malloc`` serves every request above ``M_MMAP_THRESHOLD`` (at most 32 MiB) with a fresh
``mmap`` and returns it to the kernel on ``free``. A CNN run tile by tile allocates feature maps of
tens of MB per layer and frees them again, so every layer of every tile faults its pages in anew
(the "page-fault storm": on a 1024² LR scene with tile 512, 8 M minor faults and 18 s of system CPU
against 26 s of user CPU; see ``docs/benchmarks.md``). Inside :func:`reuse_large_allocations` the
heap serves those requests too (``M_MMAP_MAX = 0``) and keeps freed memory (``M_TRIM_THRESHOLD`` =
1 GiB), so the next tile reuses pages already mapped; on exit the defaults come back and
``malloc_trim(0)`` returns the free heap to the kernel. Peak memory is unchanged in kind (the same
buffers, reused); resident memory between tiles stays at that peak instead of dropping. Threads started
inside the block allocate from the same heap (``M_ARENA_MAX = 1``): with an arena per thread, each kept its
own freed buffers and one evaluation of 4 x 2048² peaked 150 MB higher.

Inside the block NumPy also stops asking for transparent huge pages (``madvise(MADV_HUGEPAGE)`` on arrays
of 4 MiB and more, its default): with the kernel's usual ``defrag=madvise`` setting a huge-page fault
may compact memory synchronously, and the system time of one evaluation of 4 x 2048² varied from
0.02 to 0.72 s with it, 0.07-0.10 s without (``docs/benchmarks.md``). The previous setting comes back
on exit.

Set ``EOSR_MALLOC=default`` to leave the allocator alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

import numpy as np

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
KEEP_BYTES = 1 << 30

_lock = threading.Lock()
_depth = 0
_kept = False
_huge_before = True


def _set_numpy_huge_pages(on: bool) -> bool:
    """NumPy's ``_set_madvise_hugepage`` (returns the previous setting; True where NumPy lacks it)."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return bool(setter(on)) if setter is not None else True


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or os.environ.get("EOSR_MALLOC", "").lower() == "default":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018  (glibc: musl has no mallopt)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def _keep(libc: ctypes.CDLL) -> bool:
    """Set the options (module doc); returns NumPy's previous huge-page setting."""
    libc.mallopt(M_MMAP_MAX, 0)  # large blocks from the heap, not fresh mappings
    libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)  # freed heap memory stays mapped
    libc.mallopt(M_ARENA_MAX, 1)  # threads started inside share that heap (an arena each would keep its own)
    return _set_numpy_huge_pages(False)


@contextlib.contextmanager
def reuse_large_allocations() -> Iterator[None]:
    """Within the block, large ``malloc`` blocks come from the heap, freed memory stays mapped and NumPy
    asks for no huge pages (module doc).

    Re-entrant and thread-safe (a counter: only the outermost block sets and restores the options).
    """
    global _depth, _huge_before
    libc = _libc()
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _huge_before = _keep(libc)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.mallopt(M_ARENA_MAX, 0)  # glibc's default limit
                _set_numpy_huge_pages(_huge_before)
                libc.malloc_trim(0)


def release_free() -> None:
    """Return the heap's free pages to the kernel now (``malloc_trim(0)``), inside
    :func:`reuse_large_allocations`: between phases whose buffers differ in size, so that the next phase's
    larger buffers do not pile up on the kept ones (peak memory of one evaluation: see ``eosr.evaluate``)."""
    libc = _libc()
    if libc is not None and _depth > 0:
        libc.malloc_trim(0)


def keep_large_allocations(**_: object) -> bool:
    """The options of :func:`reuse_large_allocations` for the rest of the process, for worker processes
    that only run tiles (eosr's private Dask workers; ``client.run`` passes keyword arguments, ignored).
    Returns whether they were set (False where the allocator is not glibc or ``EOSR_MALLOC=default``)."""
    global _kept
    libc = _libc()
    if libc is None:
        return False
    _keep(libc)
    _kept = True
    return True
