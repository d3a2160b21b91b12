"""Tiny torch models with known behaviour, shared by the trust tests (not a test module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Plain(nn.Module):
    """Deterministic x2 model without dropout."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return up + 0.01 * self.conv(x).repeat_interleave(2, -1).repeat_interleave(2, -2)


class DetailDropout(nn.Module):
    """bicubic(x) + mean_k dropout(high-pass(bicubic(x))): dropout noise scales with local detail.

    A cheap model whose MC-dropout variance is meaningful: var = p/(1-p)/K * hp^2 per pixel, so
    flat areas (hp ~ 0) must be more certain than edges.
    """

    def __init__(self, p: float = 0.5, k: int = 8) -> None:
        super().__init__()
        self.k = k
        self.drop = nn.Dropout(p)
        self.bn = nn.BatchNorm2d(4)  # must stay in eval mode during MC dropout
        g = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("blur", (torch.outer(g, g) / 16.0)[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        c = up.shape[1]
        low = F.conv2d(F.pad(up, (1, 1, 1, 1), mode="replicate"), self.blur.expand(c, 1, 3, 3), groups=c)
        hp = up - low
        feats = hp.unsqueeze(1).expand(-1, self.k, -1, -1, -1)
        return up + self.drop(feats).mean(1) + 0.0 * self.bn(up)


class Head(nn.Module):
    """Returns (sr, s) with a constant s: known aleatoric variance."""

    def __init__(self, s: float, kind: str = "gaussian") -> None:
        super().__init__()
        self.s = s
        self.variance_head = kind

    def forward(self, x: torch.Tensor, return_logvar: bool = False) -> object:
        sr = F.interpolate(x, scale_factor=2, mode="nearest")
        return (sr, torch.full_like(sr, self.s)) if return_logvar else sr
