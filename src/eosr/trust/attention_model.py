"""Attention maps of the RCAN channel-attention SR net written next to its SR output.

The network and its ``forward_with_attention`` live in :mod:`eosr.models.rcan` (registry name
``rcan_ca``; re-exported here); :func:`write_attention` stores the maps as a GeoTIFF on the LR grid
plus a JSON of the channel weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eosr._schema import SCHEMA_VERSION
from eosr.models.rcan import RCAB, ChannelAttention, ChannelAttentionSR

__all__ = ["RCAB", "ChannelAttention", "ChannelAttentionSR", "write_attention"]


def write_attention(maps: dict[str, Any], out_stem: str | os.PathLike[str], *, crs: Any = None,
                    transform: Any = None) -> tuple[Path, Path]:
    """Write ``<stem>_attention.tif`` (one band per block: spatial attention energy on the LR grid,
    georeferenced with the LR ``transform``) and ``<stem>_attention.json`` (channel weights); first batch item."""
    from affine import Affine

    from eosr.io.raster import atomic_path, write_raster

    stem = Path(out_stem)
    sp = maps["spatial"]
    ch = maps["channel"]
    sp = (sp.detach().cpu().numpy() if hasattr(sp, "detach") else np.asarray(sp))[0].astype(np.float32)
    ch = (ch.detach().cpu().numpy() if hasattr(ch, "detach") else np.asarray(ch))[0]
    tif = stem.with_name(stem.name + "_attention.tif")
    js = stem.with_name(stem.name + "_attention.json")
    write_raster(tif, sp, crs=crs, transform=transform if transform is not None else Affine.identity(),
                 band_names=[f"block{i}" for i in range(sp.shape[0])],
                 tags={"EOSR_CONTENT": "RCAN channel-attention weighted feature energy per block (LR grid)"})
    doc = {"schema_version": SCHEMA_VERSION, "kind": "RCAN channel attention", "blocks": [
        {"block": i, "channel_weights": [round(float(v), 6) for v in ch[i]]} for i in range(ch.shape[0])]}
    with atomic_path(js) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return tif, js
