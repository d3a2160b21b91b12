"""Learned multi-image fusion in the spirit of HighRes-net (Deudon, Kalaitzis, Goytom, Arefin, Lin, Sankaran,
Michalski, Kahou, Cornebise, Bengio, "HighRes-net: recursive fusion for multi-frame super-resolution of
satellite imagery", arXiv:2002.06460, 2020).

- Reference: the per-pixel median of the valid frames (masked; the frame mean where none is valid).
- Shared encoder on each (frame, reference, mask): conv3x3 -> PReLU, two residual blocks, conv3x3.
- Recursive pairwise fusion: the N hidden states (padded with empty states of weight alpha = 0 to a power
  of two) are halved repeatedly: h = alice + alpha_bob * g(cat(alice, bob)), with g a shared residual conv
  block; a padded or fully masked partner (alpha = 0) leaves alice unchanged, so any N >= 1 works.
- Receptive field (declared for up to 16 frames): 6 + 4 (2 fuse_blocks + 1) LR px.
- Decoder: ConvTranspose2d(kernel r, stride r) -> PReLU -> conv1x1 to C bands: each LR pixel feeds exactly
  its r x r HR block (pixel-is-area), plus the bicubic-upsampled reference as a global skip.
No ShiftNet: frames are assumed coarsely co-registered (register them with eosr.physics first, or train
with the shift-invariant loss of eosr.losses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ModelError
from eosr.models.base import ModelSpec, SRNet, check_bands
from eosr.models.multi_image import frame_masks
from eosr.physics.psf import check_scale


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.PReLU(), nn.Conv2d(ch, ch, 3, 1, 1), nn.PReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def masked_median(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-pixel (lower) median over frames of the valid values: (B, N, C, h, w) -> (B, C, h, w).

    Same values as ``torch.nanmedian`` on NaN-masked frames, written with sort and gather so that it exports
    to ONNX. Pixels valid in no frame take the mean of the frame means (a neutral fill, not data).
    """
    big = torch.finfo(frames.dtype).max
    x = torch.where(valid, frames, torch.full_like(frames, big))
    srt = torch.sort(x, dim=1).values
    k = valid.sum(dim=1, keepdim=True)
    idx = torch.clamp(torch.div(k - 1, 2, rounding_mode="floor"), min=0)
    med = torch.gather(srt, 1, idx).squeeze(1)
    fallback = torch.nan_to_num(frames, nan=0.0).mean(dim=(1, 3, 4))[:, :, None, None].expand_as(med)
    return torch.where(k.squeeze(1) > 0, med, fallback)


class HighResNet(SRNet):
    """HighRes-net-style fusion of a variable number of frames with masks; see the module docstring."""

    def __init__(self, scale: int = 3, bands: Sequence[str] | None = None, n_bands: int | None = None, *,
                 channels: int = 64, fuse_blocks: int = 1) -> None:
        r = check_scale(scale)
        names, n = check_bands(bands, n_bands, 1)
        assert n is not None
        if channels < 1 or fuse_blocks < 1:
            raise ModelError("highresnet needs channels >= 1 and fuse_blocks >= 1")
        kwargs = dict(scale=r, bands=list(names) if names else None, n_bands=n, channels=channels,
                      fuse_blocks=fuse_blocks)
        # encoder 6 convs + per fusion level (2 fuse_blocks + 1) convs, declared for up to 16 frames (4 levels)
        rf = 6 + 4 * (2 * fuse_blocks + 1)
        spec = ModelSpec(name="highresnet", scale=r, bands=names, receptive_field=rf, multi_image=True,
                         extra={"kind": "multi-image CNN", "paper": "Deudon et al. 2020 (HighRes-net)",
                                "inputs": "forward(frames (B, N, C, h, w), masks (B, N, h, w) or None)"})
        super().__init__(spec, {"model": "highresnet", "kwargs": kwargs}, n)
        self.scale = r
        ch = channels
        self.encode = nn.Sequential(nn.Conv2d(2 * n + 1, ch, 3, 1, 1), nn.PReLU(), _ResBlock(ch), _ResBlock(ch),
                                    nn.Conv2d(ch, ch, 3, 1, 1))
        self.fuse = nn.Sequential(*[_ResBlock(2 * ch) for _ in range(fuse_blocks)], nn.Conv2d(2 * ch, ch, 3, 1, 1),
                                  nn.PReLU())
        self.decode = nn.Sequential(nn.ConvTranspose2d(ch, ch, r, r), nn.PReLU(), nn.Conv2d(ch, n, 1))

    def forward(self, frames: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """SR (B, C, r h, r w) from frames (B, N, C, h, w) with validity masks (B, N, h, w) (True = clear)."""
        self.check_input(frames, ndim=5)
        b, n, c, h, w = frames.shape
        valid = frame_masks(frames, masks)
        x = torch.nan_to_num(self.normalise(frames), nan=0.0)
        vf = valid.to(x.dtype)
        x = x * vf
        ref = self.normalise(masked_median(frames, valid))
        m = vf.amin(dim=2, keepdim=True)  # a pixel is valid if all its bands are
        inp = torch.cat([x, ref[:, None].expand(b, n, c, h, w), m], dim=2).reshape(b * n, 2 * c + 1, h, w)
        hid = self.encode(inp).reshape(b, n, -1, h, w)
        alpha = (m.flatten(2).amax(dim=2) > 0).to(x.dtype)[:, :, None, None, None]  # (B, N, 1, 1, 1)
        hid = hid * alpha
        size = 1 << max(0, math.ceil(math.log2(n)))
        if size > n:
            hid = torch.cat([hid, hid.new_zeros(b, size - n, *hid.shape[2:])], dim=1)
            alpha = torch.cat([alpha, alpha.new_zeros(b, size - n, 1, 1, 1)], dim=1)
        while hid.shape[1] > 1:
            half = hid.shape[1] // 2
            alice, bob = hid[:, :half], hid[:, half:].flip(1)
            a_al, a_bob = alpha[:, :half], alpha[:, half:].flip(1)
            pair = torch.cat([alice, bob], dim=2).reshape(b * half, -1, h, w)
            g = self.fuse(pair).reshape(b, half, -1, h, w)
            # an empty alice (alpha 0) takes bob's state, an empty bob leaves alice unchanged
            hid = a_al * (alice + a_bob * g) + (1 - a_al) * bob
            alpha = torch.maximum(a_al, a_bob)
        y = self.decode(hid[:, 0]) + F.interpolate(ref, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.denormalise(y)


def highresnet(scale: int = 3, bands: Sequence[str] | None = None, n_bands: int | None = None,
               **kw: Any) -> HighResNet:
    """HighRes-net-style multi-frame fusion (Deudon et al. 2020); default 1 band as PROBA-V."""
    return HighResNet(scale, bands, n_bands, **kw)
