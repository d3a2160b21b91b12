"""A small residual SR net with RCAN channel attention that exports its attention maps.

The network lives in :mod:`eosr.models.rcan` (registry name ``rcan_ca``); this module writes its maps.

Channel attention (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018): w = sigmoid(W_2 ReLU(W_1 GAP(f))), f' = w * f, with 1 x 1 convs W_1 (F -> F/red)
and W_2 (F/red -> F). Residual channel-attention block (RCAB): f + CA(conv(ReLU(conv(f)))).

Network (any band count C, scale r): head conv3x3 (C -> F), ``n_blocks`` RCABs, conv3x3 with a long
skip, upsampler (conv3x3 F -> F r^2, PixelShuffle(r)), tail conv3x3 (F -> C), plus the bicubic
upsampling of the input (the net learns the residual detail). Optional dropout (``dropout`` > 0,
Dropout2d before each RCAB's second conv) makes it usable for MC dropout.

``forward_with_attention(lr)`` returns ``(sr, maps)`` with ``maps["channel"]`` (B, n_blocks, F) the
channel weights and ``maps["spatial"]`` (B, n_blocks, h, w) the attention-weighted feature energy
mean_c(w_c |f_c|) of each block on the LR grid. :func:`write_attention` stores them next to an SR
output as a GeoTIFF on the LR grid plus a JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

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
    doc = {"kind": "RCAN channel attention", "blocks": [
        {"block": i, "channel_weights": [round(float(v), 6) for v in ch[i]]} for i in range(ch.shape[0])]}
    with atomic_path(js) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return tif, js
