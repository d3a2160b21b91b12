"""Seamless tiling: overlapping LR tiles, smooth blend weights, and streaming overlap-add.

The LR scene (H x W) is cut into n_y x n_x balanced cores (sizes differ by at most one pixel); tile
(i, j) is run on its core grown by ``overlap`` LR pixels on each side (clipped at the scene edge, so
edge tiles see the same border as whole-image inference). Its prediction counts on its *support*,
the core grown by ``halfwidth`` = overlap - receptive_field (or overlap / 2 when the overlap is
smaller than the receptive field), with separable weights w(y) w(x) that are 1 inside and ramp as
cos^2 / sin^2 across each internal core boundary b:

    w_left(x) = cos^2(pi/2 (x - b + hw) / (2 hw)),   w_right = sin^2(...) = 1 - w_left,   x in [b - hw, b + hw)

(x = LR coordinate of an HR pixel centre, (k + 0.5) / r). The weights of the tiles covering a pixel
sum to one, and when overlap >= receptive_field + halfwidth every prediction that carries weight saw
its whole receptive field, so the blend equals whole-image inference to float error.

The output is split into *cells* (between consecutive support edges). A cell is written as soon as
every tile covering it has contributed; with row-major tile order only about one row of blend cells
is pending, so memory does not grow with the scene height (and only by the thin blend strip with its
width). Sums run in tile order, so any scheduler gives bit-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from eosr.errors import ConfigError, ScaleError

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


def _cores(n: int, tile: int) -> tuple[int, ...]:
    k = max(1, math.ceil(n / tile))
    return tuple(round(i * n / k) for i in range(k + 1))


def default_overlap(receptive_field: int) -> int:
    """Overlap (LR px) used when none is given: receptive field + a blend half-width of max(4, rf/2)."""
    rf = max(0, int(receptive_field))
    return rf + max(4, math.ceil(rf / 2))


@dataclass(frozen=True)
class TilePlan:
    """Tiles of an LR scene of ``height`` x ``width`` at scale ``scale`` (all sizes in LR pixels)."""

    height: int
    width: int
    scale: int
    tile: int = 512
    overlap: int = 8
    receptive_field: int = 0
    ys: tuple[int, ...] = field(init=False)
    xs: tuple[int, ...] = field(init=False)
    halfwidth: int = field(init=False)

    def __post_init__(self) -> None:
        if self.tile < 1 or self.overlap < 0:
            raise ConfigError(f"tile must be >= 1 and overlap >= 0, got tile={self.tile}, overlap={self.overlap}")
        if self.scale < 1:
            raise ScaleError(f"scale must be >= 1, got {self.scale}")
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"empty scene of {self.height}x{self.width} pixels")
        ys, xs = _cores(self.height, self.tile), _cores(self.width, self.tile)
        o, rf = self.overlap, self.receptive_field
        hw = o - rf if o > rf else math.ceil(o / 2)
        smallest = min(np.diff(ys).min(), np.diff(xs).min())
        hw = min(hw, int(smallest) // 2)
        object.__setattr__(self, "ys", ys)
        object.__setattr__(self, "xs", xs)
        object.__setattr__(self, "halfwidth", int(hw))

    @property
    def exact(self) -> bool:
        """Whether every weighted prediction saw its whole receptive field (tiled == whole image)."""
        return self.overlap >= self.receptive_field + self.halfwidth

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles (rows, columns)."""
        return len(self.ys) - 1, len(self.xs) - 1

    def tiles(self) -> Iterator[tuple[int, int]]:
        """Tile indices in row-major order."""
        ny, nx = self.shape
        for i in range(ny):
            for j in range(nx):
                yield i, j

    def core(self, i: int, j: int) -> Window:
        """The core of tile (i, j) in LR pixels."""
        return self.ys[i], self.ys[i + 1], self.xs[j], self.xs[j + 1]

    def window(self, i: int, j: int) -> Window:
        """The LR window the model sees for tile (i, j): the core grown by the overlap, clipped."""
        y0, y1, x0, x1 = self.core(i, j)
        o = self.overlap
        return max(0, y0 - o), min(self.height, y1 + o), max(0, x0 - o), min(self.width, x1 + o)

    def _support1(self, edges: tuple[int, ...], i: int) -> tuple[int, int]:
        hw, n = self.halfwidth, len(edges) - 1
        return edges[i] - (hw if i > 0 else 0), edges[i + 1] + (hw if i < n - 1 else 0)

    def support(self, i: int, j: int) -> Window:
        """Where tile (i, j) carries weight, in LR pixels."""
        return (*self._support1(self.ys, i), *self._support1(self.xs, j))

    def weights1d(self, edges: tuple[int, ...], i: int) -> np.ndarray:
        """Blend weights of tile ``i`` along one axis, on the HR pixels of its support."""
        r, hw, n = self.scale, self.halfwidth, len(edges) - 1
        lo, hi = self._support1(edges, i)
        x = (np.arange(lo * r, hi * r) + 0.5) / r
        w = np.ones_like(x)
        if hw > 0:
            if i > 0:
                t = np.clip((x - (edges[i] - hw)) / (2 * hw), 0.0, 1.0)
                w *= np.sin(0.5 * np.pi * t) ** 2
            if i < n - 1:
                t = np.clip((x - (edges[i + 1] - hw)) / (2 * hw), 0.0, 1.0)
                w *= np.cos(0.5 * np.pi * t) ** 2
        return w

    def _cells1(self, edges: tuple[int, ...]) -> list[tuple[int, int, tuple[int, ...]]]:
        """Cells along one axis: (lo, hi) in HR px and the tiles whose support covers them."""
        r, n = self.scale, len(edges) - 1
        sup = [self._support1(edges, i) for i in range(n)]
        cuts = sorted({v * r for s in sup for v in s})
        out = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            out.append((a, b, tuple(i for i, (lo, hi) in enumerate(sup) if lo * r <= a and b <= hi * r)))
        return out


class Blender:
    """Streaming overlap-add of tile predictions; ``sink(window_hr, data)`` receives finished cells."""

    def __init__(self, plan: TilePlan, sink: Callable[[Window, np.ndarray], None]) -> None:
        self.plan, self.sink = plan, sink
        self.cy, self.cx = plan._cells1(plan.ys), plan._cells1(plan.xs)
        self.wy = [plan.weights1d(plan.ys, i) for i in range(plan.shape[0])]
        self.wx = [plan.weights1d(plan.xs, j) for j in range(plan.shape[1])]
        self.pending: dict[tuple[int, int], list[np.ndarray]] = {}
        self.seen: dict[tuple[int, int], int] = {}

    def add(self, i: int, j: int, pred: np.ndarray) -> None:
        """Add tile (i, j)'s prediction ``(C, h, w)`` on the HR pixels of its support."""
        r = self.plan.scale
        sy0, sy1, sx0, sx1 = self.plan.support(i, j)
        if pred.shape[-2:] != ((sy1 - sy0) * r, (sx1 - sx0) * r):
            raise ValueError(f"tile {(i, j)}: prediction {pred.shape} does not match its support")
        for a, (ya, yb, ty) in enumerate(self.cy):
            if i not in ty:
                continue
            for b, (xa, xb, tx) in enumerate(self.cx):
                if j not in tx:
                    continue
                part = pred[:, ya - sy0 * r : yb - sy0 * r, xa - sx0 * r : xb - sx0 * r]
                win = (ya, yb, xa, xb)
                need = len(ty) * len(tx)
                if need == 1:
                    self.sink(win, part.astype(np.float32, copy=False))
                    continue
                w = np.outer(self.wy[i][ya - sy0 * r : yb - sy0 * r], self.wx[j][xa - sx0 * r : xb - sx0 * r])
                acc = self.pending.get((a, b))
                if acc is None:
                    acc = [np.zeros(part.shape, np.float64), np.zeros(w.shape, np.float64)]
                    self.pending[(a, b)] = acc
                acc[0] += part * w
                acc[1] += w
                self.seen[(a, b)] = self.seen.get((a, b), 0) + 1
                if self.seen[(a, b)] == need:
                    self.sink(win, (acc[0] / acc[1]).astype(np.float32))
                    del self.pending[(a, b)], self.seen[(a, b)]

    @property
    def pending_bytes(self) -> int:
        """Bytes held by unfinished cells (for memory checks)."""
        return sum(a.nbytes + b.nbytes for a, b in self.pending.values())
