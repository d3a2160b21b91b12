"""Data of the report's interactive viewer (``templates/viewer.js``): every image of every dataset at
full resolution, LR / each method's SR / HR and the per-method error and hallucination maps.

Encoding (docs/benchmark.md, "The viewer"): reflectance quantised to little-endian uint16,
``q = round((x - offset) / step)``, band-major (C, H, W), base64; ``q = 65535`` is NaN (nodata).
``step`` is 1e-4 reflectance unless the value range needs more than 65535 steps, and ``offset`` is a
multiple of ``step``, so the decoded ``offset + q * step`` is within ``step / 2`` (5e-5) of the data:
the viewer's 4-decimal read-out is within 1e-4. 2 bytes per value (base64: 2.67 bytes), about a quarter
of a PNG-free float32 JSON; images are added until :data:`BUDGET_CHARS` is reached (the report says
how many of the images it carries).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

#: Quantisation step of reflectance (the read-out tolerance is half of it).
STEP = 1e-4
#: The code of NaN (nodata).
NODATA_Q = 65535
#: Largest base64 text the viewer embeds (about 12 MB: the demo's six images take 4 MB).
BUDGET_CHARS = 12_000_000


def encode(x: np.ndarray, step: float = STEP) -> dict[str, Any]:
    """(C, H, W) or (H, W) float array -> ``{"shape", "offset", "step", "data"}`` (see the module doc)."""
    a = np.asarray(x, np.float64)
    if a.ndim == 2:
        a = a[None]
    finite = np.isfinite(a)
    lo = float(a[finite].min()) if finite.any() else 0.0
    hi = float(a[finite].max()) if finite.any() else 0.0
    if (hi - lo) / step > NODATA_Q - 1:  # a range wider than 6.55 reflectance: coarser steps (stated in "step")
        step = (hi - lo) / (NODATA_Q - 1)
    offset = math.floor(lo / step) * step
    q = np.full(a.shape, NODATA_Q, dtype="<u2")
    q[finite] = np.clip(np.rint((a[finite] - offset) / step), 0, NODATA_Q - 1).astype("<u2")
    return {"shape": list(a.shape), "offset": offset, "step": step,
            "data": base64.b64encode(q.tobytes()).decode("ascii")}


def decode(enc: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode` (float64, NaN for nodata): what the viewer reads."""
    q = np.frombuffer(base64.b64decode(enc["data"]), dtype="<u2").reshape(enc["shape"])
    out = enc["offset"] + q.astype(np.float64) * enc["step"]
    out[q == NODATA_Q] = np.nan
    return out


def colormap_hex(name: str) -> str:
    """A Matplotlib colour map as 256 RGB triplets in one hex string (the viewer's look-up table)."""
    from matplotlib import colormaps

    rgb = (np.asarray(colormaps[name](np.linspace(0, 1, 256)))[:, :3] * 255).round().astype(np.uint8)
    return rgb.tobytes().hex()


def georef(ref: Any, scale: int = 1) -> dict[str, Any] | None:
    """The HR grid's georeference from an image's first file: pixel size (m), north-up flag, the
    top-left corner (``origin``, CRS units) and the CRS; None without a projected CRS in metres.

    The file of an LR-only image (key ``"lr"``) is on the LR grid: the HR pixel is ``scale`` times
    smaller, with the same top-left corner (pixel-is-area; a Wald crop only drops trailing rows)."""
    files = list(getattr(ref, "files", {}).items())
    if not files:
        return None
    key, path = files[0]
    try:
        from eosr.io.raster import open_quietly

        with open_quietly(path) as ds:
            t, crs = ds.transform, ds.crs
            if crs is None or not crs.is_projected or t.is_identity:
                return None
            units = (crs.linear_units or "").lower()
            if units not in ("metre", "meter", "m"):
                return None
            f = scale if key == "lr" else 1
            return {"pixel_m": float(math.hypot(t.a, t.d)) / f, "north_up": bool(t.b == 0 and t.d == 0 and t.e < 0),
                    "origin": [float(t.c), float(t.f)], "step": [float(t.a) / f, float(t.e) / f],
                    "crs": crs.to_string()}
    except Exception:  # noqa: BLE001 - a georeference is optional: no scale bar rather than no report
        return None


def stretch(hr: np.ndarray) -> list[list[float]]:
    """Per band [2 %, 98 %] percentiles of the reference (the display stretch of every panel)."""
    out = []
    for b in np.asarray(hr, np.float64):
        v = b[np.isfinite(b)]
        lo, hi = (float(np.percentile(v, 2)), float(np.percentile(v, 98))) if v.size else (0.0, 1.0)
        out.append([lo, hi if hi > lo else lo + 1e-6])
    return out


def image_entry(image_id: str, lr: np.ndarray, srs: dict[str, np.ndarray], hr: np.ndarray | None, scale: int,
                maps: dict[str, dict[str, np.ndarray]], geo: dict[str, Any] | None) -> dict[str, Any]:
    """One image of the viewer: encoded layers, per-method maps with one colour range per kind, stretch."""
    ref = hr if hr is not None else np.repeat(np.repeat(lr, scale, axis=-2), scale, axis=-1)
    layers = [{"name": "LR", "kind": "lr", **encode(lr)}]
    layers += [{"name": k, "kind": "sr", **encode(v)} for k, v in srs.items()]
    if hr is not None:
        layers.append({"name": "HR", "kind": "hr", **encode(hr)})
    kinds: dict[str, float] = {}
    enc_maps: dict[str, dict[str, Any]] = {}
    for kind in ("error", "hallucination"):
        vals = [np.abs(np.ravel(m[kind])) for m in maps.values() if kind in m]
        if not vals:
            continue
        allv = np.concatenate(vals)
        allv = allv[np.isfinite(allv)]
        vmax = float(np.percentile(allv, 99)) if allv.size else 1.0
        kinds[kind] = vmax if vmax > 0 else 1.0
        for meth, m in maps.items():
            step = max(float(np.nanmax(np.abs(m[kind]))) / (NODATA_Q - 1), 1e-9) if np.isfinite(m[kind]).any() else STEP
            enc_maps.setdefault(meth, {})[kind] = encode(m[kind], step=step)
    return {"id": image_id, "h": int(ref.shape[-2]), "w": int(ref.shape[-1]), "scale": scale,
            "layers": layers, "maps": enc_maps, "vmax": kinds, "stretch": stretch(ref), "geo": geo,
            "stretch_of": "HR" if hr is not None else "LR"}


def size_of(entry: dict[str, Any]) -> int:
    """Characters of the base64 data an image entry carries."""
    return sum(len(x["data"]) for x in entry["layers"]) + sum(
        len(e["data"]) for m in entry["maps"].values() for e in m.values())
