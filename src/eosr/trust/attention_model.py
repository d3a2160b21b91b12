"""A small residual SR net with RCAN channel attention that exports its attention maps.

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
import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ModelError
from eosr.models.base import ModelSpec
from eosr.physics.psf import check_scale


class ChannelAttention(nn.Module):
    """RCAN channel attention; keeps the last weights in ``last_weights`` (B, F)."""

    def __init__(self, n_feats: int, reduction: int = 8) -> None:
        super().__init__()
        mid = max(1, n_feats // reduction)
        self.down = nn.Conv2d(n_feats, mid, 1)
        self.up = nn.Conv2d(mid, n_feats, 1)
        self.last_weights: torch.Tensor | None = None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """f * sigmoid(W_2 ReLU(W_1 mean_xy(f)))."""
        w = torch.sigmoid(self.up(F.relu(self.down(f.mean(dim=(-2, -1), keepdim=True)))))
        self.last_weights = w.detach()[:, :, 0, 0]
        return f * w


class RCAB(nn.Module):
    """Residual channel-attention block: f + CA(conv(ReLU(conv(f))))."""

    def __init__(self, n_feats: int, reduction: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.act = nn.ReLU(inplace=False)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.ca = ChannelAttention(n_feats, reduction)
        self.last_spatial: torch.Tensor | None = None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Residual block with channel attention."""
        body = self.conv2(self.drop(self.act(self.conv1(f))))
        att = self.ca(body)
        self.last_spatial = att.detach().abs().mean(dim=1)
        return f + att


class ChannelAttentionSR(nn.Module):
    """Small RCAN-like SR net (see the module docstring)."""

    def __init__(self, n_bands: int, scale: int, n_feats: int = 32, n_blocks: int = 4, reduction: int = 8,
                 dropout: float = 0.0, bands: tuple[str, ...] | None = None) -> None:
        super().__init__()
        r = check_scale(scale)
        if n_bands < 1:
            raise ModelError(f"n_bands must be >= 1, got {n_bands}")
        if bands is not None and len(bands) != n_bands:
            raise ModelError(f"{len(bands)} band names for {n_bands} bands")
        self.scale = r
        self.n_bands = n_bands
        self.head = nn.Conv2d(n_bands, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList([RCAB(n_feats, reduction, dropout) for _ in range(n_blocks)])
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1), nn.PixelShuffle(r))
        self.tail = nn.Conv2d(n_feats, n_bands, 3, padding=1)
        # receptive field (LR px each side): head 1 + 2 per block + body_tail 1 + upsampler 1 + tail (1 HR px,
        # at most 1 LR px); the parallel bicubic branch reaches 2 LR px
        rf = max(2 * n_blocks + 4, 2)
        self.spec = ModelSpec(name="rcan-ca", scale=r, bands=bands, receptive_field=rf,
                              extra={"n_feats": n_feats, "n_blocks": n_blocks, "reduction": reduction,
                                     "dropout": dropout, "attention": "channel (RCAN)"})

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """SR = bicubic(lr) + tail(upsample(body(head(lr))))."""
        if lr.ndim != 4 or lr.shape[1] != self.n_bands:
            raise ModelError(f"expected LR (B, {self.n_bands}, h, w), got {tuple(lr.shape)}")
        f0 = self.head(lr)
        f = f0
        for b in self.blocks:
            f = b(f)
        f = self.body_tail(f) + f0
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.tail(self.upsample(f))

    def forward_with_attention(self, lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(sr, {"channel": (B, n_blocks, F), "spatial": (B, n_blocks, h, w)})."""
        sr = self.forward(lr)
        blocks = [b for b in self.blocks if isinstance(b, RCAB)]
        ch = torch.stack([b.ca.last_weights for b in blocks if b.ca.last_weights is not None], dim=1)
        sp = torch.stack([b.last_spatial for b in blocks if b.last_spatial is not None], dim=1)
        return sr, {"channel": ch, "spatial": sp}


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
