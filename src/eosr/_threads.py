"""Threads over independent planes (bands, images) for transforms that run one FFT thread each.

scipy's pocketfft spends ~1.7x the CPU of one thread when it splits one 2048² ``rfft2`` over two
(30 vs 18 ms measured on the development machine; docs/benchmarks.md): independent planes run in
parallel, one transform thread each, when scipy.fft's worker count (``scipy.fft.set_workers``;
``eosr.evaluate`` sets torch's thread count) allows more than one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import scipy.fft as sfft

_T = TypeVar("_T")

__all__ = ["map_planes", "plane_threads"]


def plane_threads(n: int) -> tuple[int, int]:
    """(threads over ``n`` planes, ``workers=`` for each transform): (min(n, scipy.fft workers), 1), or
    (1, -1) (one plane at a time, every core in each transform) when only one thread is allowed."""
    threads = min(n, max(1, sfft.get_workers()))
    return threads, 1 if threads > 1 else -1


def map_planes(fn: Callable[[int], _T], n: int, threads: int) -> list[_T]:
    """[fn(0), ..., fn(n - 1)], on ``threads`` threads when more than one; exceptions propagate."""
    if threads <= 1:
        return [fn(i) for i in range(n)]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, range(n)))
