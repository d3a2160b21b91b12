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
mean_c(w_c |f_c|) of each block on the LR grid. :func:`eosr.trust.attention_model.write_attention`
stores them next to an SR output as a GeoTIFF on the LR grid plus a JSON. Registry name ``rcan_ca``
(``eosr models``, ``eosr sr``); per-band normalisation buffers as every learned eosr model (identity until
trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ModelError
from eosr.models.base import ModelSpec, SRNet, check_bands
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


class ChannelAttentionSR(SRNet):
    """Small RCAN-like SR net (see the module docstring); registry name ``rcan_ca``."""

    def __init__(self, n_bands: int, scale: int, n_feats: int = 32, n_blocks: int = 4, reduction: int = 8,
                 dropout: float = 0.0, bands: Sequence[str] | None = None) -> None:
        r = check_scale(scale)
        if n_bands < 1:
            raise ModelError(f"n_bands must be >= 1, got {n_bands}")
        if bands is not None and len(bands) != n_bands:
            raise ModelError(f"{len(bands)} band names for {n_bands} bands")
        names = tuple(bands) if bands is not None else None
        # receptive field (LR px each side): head 1 + 2 per block + body_tail 1 + upsampler 1 + tail (1 HR px,
        # at most 1 LR px); the parallel bicubic branch reaches 2 LR px
        rf = max(2 * n_blocks + 4, 2)
        spec = ModelSpec(name="rcan-ca", scale=r, bands=names, receptive_field=rf,
                         extra={"kind": "single-image CNN (channel attention)", "n_feats": n_feats,
                                "n_blocks": n_blocks, "reduction": reduction,
                                "dropout": dropout, "attention": "channel (RCAN)"})
        kwargs = {"scale": r, "bands": list(names) if names else None, "n_bands": n_bands, "n_feats": n_feats,
                  "n_blocks": n_blocks, "reduction": reduction, "dropout": dropout}
        super().__init__(spec, {"model": "rcan_ca", "kwargs": kwargs}, n_bands)
        self.scale = r
        self.head = nn.Conv2d(n_bands, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList([RCAB(n_feats, reduction, dropout) for _ in range(n_blocks)])
        self.body_tail = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1), nn.PixelShuffle(r))
        self.tail = nn.Conv2d(n_feats, n_bands, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """SR = bicubic(lr) + tail(upsample(body(head(lr))))."""
        if lr.ndim != 4 or lr.shape[1] != self.n_bands:
            raise ModelError(f"expected LR (B, {self.n_bands}, h, w), got {tuple(lr.shape)}")
        x = self.normalise(lr)
        f0 = self.head(x)
        f = f0
        for b in self.blocks:
            f = b(f)
        f = self.body_tail(f) + f0
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.denormalise(base + self.tail(self.upsample(f)))

    def forward_with_attention(self, lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(sr, {"channel": (B, n_blocks, F), "spatial": (B, n_blocks, h, w)})."""
        sr = self.forward(lr)
        blocks = [b for b in self.blocks if isinstance(b, RCAB)]
        ch = torch.stack([b.ca.last_weights for b in blocks if b.ca.last_weights is not None], dim=1)
        sp = torch.stack([b.last_spatial for b in blocks if b.last_spatial is not None], dim=1)
        return sr, {"channel": ch, "spatial": sp}


def rcan_ca(scale: int = 2, bands: Sequence[str] | None = None, n_bands: int | None = None,
            **kw: object) -> ChannelAttentionSR:
    """RCAN channel-attention SR net (Zhang et al., ECCV 2018), small: 4 RCABs of 32 features by default."""
    names, n = check_bands(bands, n_bands, 3)
    assert n is not None
    return ChannelAttentionSR(n, scale, bands=names, **kw)  # type: ignore[arg-type]
