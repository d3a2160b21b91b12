"""Window arithmetic shared by the readers, the metrics and the explainer (plain integers: importing it
pulls in neither NumPy nor torch)."""

from __future__ import annotations

__all__ = ["centre_box"]


def centre_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the central window of at most ``size`` x ``size`` pixels of an h x w image."""
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return y0, y0 + min(h, size), x0, x0 + min(w, size)
