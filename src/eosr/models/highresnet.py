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

``fusion="attention"`` (the trained ``highresnet_s2_x2`` weights; docs/models.md "Multi-image SR") changes
three things so that the output is on the FIRST frame's grid and does not depend on the order of the others:

- Classical registration (``register=True``): every frame's shift (dy, dx) against frame 0 is estimated by
  :func:`eosr.physics.registration.estimate_shift` (Guizar-Sicairos et al. 2008, the metrics' estimator) on
  the valid pixels, and the frame and its mask are resampled onto frame 0's grid (bicubic
  ``grid_sample``; a pixel stays valid only where its whole bilinear neighbourhood was). A frame whose shift
  exceeds ``max_shift`` LR px, or whose normalised cross-correlation with the reference after
  registration is below ``min_corr``, is rejected (all its pixels invalid). Shifts may also be given.
- Each aligned frame is encoded with the masked median of the aligned frames, its mask and its sub-pixel
  phase (dy - round(dy), dx - round(dx)) as constant channels.
- Fusion is a per-pixel softmax attention over the valid frames (Ilse, Tomczak, Welling, "Attention-based
  deep multiple instance learning", ICML 2018): w_k = exp(a_k) m_k / sum_j exp(a_j) m_j, fused = sum_k
  w_k h_k, a symmetric function of the frames, so invariant to their order (up to float rounding).
  Invalid pixels (clouds, NaN, rejected frames) have weight 0: they are never averaged in. The decoder adds
  ``decoder_blocks`` residual blocks before the up-sampling; the global skip is the bicubic-upsampled
  masked median; HR pixels whose LR pixel is valid in no frame are NaN (nodata).
- ``base`` (an architecture dict ``{"model", "kwargs"}`` of a single-image eosr model, e.g. the shipped
  ``carn_m_s2_x2``'s): the global skip is instead that model (one pass, its weights stored with these)
  applied to the reference frame, whose invalid pixels are filled with the masked median of the aligned
  frames; the fusion network learns the residual the other frames add (its last layer starts at zero, so
  an untrained fusion returns the single-image result). ``base_all``: the skip is instead the mean of the
  base model's outputs on EVERY frame, each resampled onto frame 0's HR grid by its shift x r (bicubic),
  over the frames valid there (validity eroded by ``base_erode`` LR px next to invalid pixels): SR, then
  registration and fusion at HR (the mean is symmetric in the frames).
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

FUSIONS = ("recursive", "attention")


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
                 channels: int = 64, fuse_blocks: int = 1, fusion: str = "recursive", register: bool = False,
                 encoder_blocks: int = 2, decoder_blocks: int = 0, max_shift: float = 2.0,
                 min_corr: float = 0.5, base: dict[str, Any] | None = None, base_all: bool = False,
                 base_erode: int = 3) -> None:
        r = check_scale(scale)
        names, n = check_bands(bands, n_bands, 1)
        assert n is not None
        if channels < 1 or fuse_blocks < 1 or encoder_blocks < 0 or decoder_blocks < 0:
            raise ModelError("highresnet needs channels >= 1, fuse_blocks >= 1, encoder/decoder_blocks >= 0")
        if fusion not in FUSIONS:
            raise ModelError(f"highresnet fusion must be one of {FUSIONS}, got {fusion!r}")
        if base is not None and fusion != "attention":
            raise ModelError("highresnet base= needs fusion='attention'")
        if register and fusion != "attention":
            raise ModelError("highresnet register=True needs fusion='attention' (the output is on frame 0's grid)")
        kwargs: dict[str, Any] = dict(scale=r, bands=list(names) if names else None, n_bands=n, channels=channels,
                                      fuse_blocks=fuse_blocks)
        if fusion == "attention":
            kwargs.update(fusion=fusion, register=register, encoder_blocks=encoder_blocks,
                          decoder_blocks=decoder_blocks, max_shift=max_shift, min_corr=min_corr)
            rf = 2 + 2 * encoder_blocks + 2 * decoder_blocks + 2
            base_net: SRNet | None = None
            if base is not None:
                from eosr.models.registry import get_model

                if not isinstance(base, dict) or "model" not in base:
                    raise ModelError("highresnet base= must be an architecture dict {'model': ..., 'kwargs': {...}}")
                bkw = dict(base.get("kwargs") or {})
                bkw.pop("self_ensemble", None)
                base_net = get_model(str(base["model"]), **bkw)
                if base_net.spec.multi_image or int(base_net.spec.scale) != r or base_net.n_bands != n:
                    raise ModelError(f"highresnet base must be a single-image x{r} model of {n} bands")
                kwargs["base"] = {"model": str(base["model"]), "kwargs": bkw}
                if base_all:
                    kwargs.update(base_all=True, base_erode=int(base_erode))
                rf = max(rf, int(base_net.spec.receptive_field or 0))
        else:
            # encoder 6 convs + per fusion level (2 fuse_blocks + 1) convs, declared for up to 16 frames (4 levels)
            rf = 6 + 4 * (2 * fuse_blocks + 1)
        inputs = ("forward(frames (B, N, C, h, w), masks (B, N, h, w) or None" +
                  (", shifts (B, N, 2) LR px or None); frame 0 = reference grid" if fusion == "attention" else ")"))
        spec = ModelSpec(name="highresnet", scale=r, bands=names, receptive_field=rf, multi_image=True,
                         extra={"kind": "multi-image CNN", "paper": "Deudon et al. 2020 (HighRes-net)",
                                "fusion": fusion, "register": register, "inputs": inputs})
        super().__init__(spec, {"model": "highresnet", "kwargs": kwargs}, n)
        self.scale = r
        self.fusion, self.register, self.max_shift, self.min_corr = fusion, register, max_shift, min_corr
        self.last_shifts: torch.Tensor | None = None  # (B, N, 2) shifts used by the last attention call
        self.last_rejected: torch.Tensor | None = None  # (B, N) frames rejected by the last attention call
        ch = channels
        if fusion == "attention":
            self.encode = nn.Sequential(nn.Conv2d(2 * n + 3, ch, 3, 1, 1), nn.PReLU(),
                                        *[_ResBlock(ch) for _ in range(encoder_blocks)], nn.Conv2d(ch, ch, 3, 1, 1))
            self.attend = nn.Conv2d(ch, 1, 1)
            self.fuse = nn.Sequential(*[_ResBlock(ch) for _ in range(decoder_blocks)])
            self.decode = nn.Sequential(nn.ConvTranspose2d(ch, ch, r, r), nn.PReLU(), nn.Conv2d(ch, ch, 3, 1, 1),
                                        nn.PReLU(), nn.Conv2d(ch, n, 1))
            self.base = base_net
            self.base_all, self.base_erode = bool(base_all and base_net is not None), max(0, int(base_erode))
            if base_net is not None:
                last = self.decode[-1]
                assert isinstance(last, nn.Conv2d)
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)  # type: ignore[arg-type]
            return
        self.encode = nn.Sequential(nn.Conv2d(2 * n + 1, ch, 3, 1, 1), nn.PReLU(), _ResBlock(ch), _ResBlock(ch),
                                    nn.Conv2d(ch, ch, 3, 1, 1))
        self.fuse = nn.Sequential(*[_ResBlock(2 * ch) for _ in range(fuse_blocks)], nn.Conv2d(2 * ch, ch, 3, 1, 1),
                                  nn.PReLU())
        self.decode = nn.Sequential(nn.ConvTranspose2d(ch, ch, r, r), nn.PReLU(), nn.Conv2d(ch, n, 1))

    def forward(self, frames: torch.Tensor, masks: torch.Tensor | None = None,  # type: ignore[override]
                shifts: torch.Tensor | None = None) -> torch.Tensor:
        """SR (B, C, r h, r w) from frames (B, N, C, h, w) with validity masks (B, N, h, w) (True = clear).

        ``shifts`` (B, N, 2) (dy, dx) in LR px of each frame against frame 0 (attention fusion only; estimated
        when None and ``register``, zero when None otherwise)."""
        self.check_input(frames, ndim=5)
        if self.fusion == "attention":
            return self._forward_attention(frames, masks, shifts)
        if shifts is not None:
            raise ModelError("highresnet: shifts are used by fusion='attention' only")
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


    def _base_mean(self, frames: torch.Tensor, masks: torch.Tensor | None, shifts: torch.Tensor, vf: torch.Tensor,
                   skip0: torch.Tensor) -> torch.Tensor:
        """SR-then-fuse skip: the base model on every frame, each output resampled onto frame 0's HR grid by its
        shift x r, averaged over the frames valid there (a frame's validity eroded by ``base_erode`` LR px,
        so that no output near a cloud, where the base saw the fill, is used; frame 0's is not eroded);
        ``skip0`` (the base on frame 0) where no frame is left."""
        assert self.base is not None
        b, n, c, h, w = frames.shape
        r = self.scale
        x = _filled(frames, frame_masks(frames, masks).all(dim=2))
        sr = self.base(x.reshape(b * n, c, h, w)).reshape(b, n, c, h * r, w * r)
        sr = warp(sr, shifts * r)
        m = vf
        if self.base_erode > 0:
            k = 2 * self.base_erode + 1
            er = 1 - F.max_pool2d(1 - vf.reshape(b * n, 1, h, w), k, 1, self.base_erode).reshape(b, n, 1, h, w)
            m = torch.cat([vf[:, :1], er[:, 1:]], dim=1)
        mh = F.interpolate(m.reshape(b * n, 1, h, w), scale_factor=r, mode="nearest").reshape(b, n, 1, h * r, w * r)
        # the HR samples near a resampled frame's border saw the zero padding: keep the full-support ones only
        inside = warp(torch.ones_like(mh), shifts * r, mode="bilinear") > 0.999
        mh = mh * inside.to(mh.dtype)
        tot = mh.sum(dim=1)
        mean = (sr * mh).sum(dim=1) / tot.clamp(min=1e-12)
        return torch.where(tot > 0, mean, skip0)

    def prepare(self, frames: torch.Tensor, masks: torch.Tensor | None = None, shifts: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Registration step of the attention fusion: (aligned frames (NaN-free), aligned validity (B, N, 1, h, w)
        float, shifts (B, N, 2), rejected (B, N) bool); see the module docstring. Given ``shifts`` are used as
        they are: only the ``max_shift`` rejection applies (the caller registered the frames)."""
        b, n, c, h, w = frames.shape
        valid = frame_masks(frames, masks).all(dim=2)  # (B, N, h, w): a pixel is valid if all its bands are
        check_corr = shifts is None and n > 1 and self.min_corr > -1
        if shifts is None:
            with torch.no_grad():
                shifts = register_to_first(frames, valid) if self.register and n > 1 else frames.new_zeros(b, n, 2)
        elif tuple(shifts.shape) != (b, n, 2):
            raise ModelError(f"shifts must be (B, N, 2) = {(b, n, 2)}, got {tuple(shifts.shape)}")
        shifts = shifts.to(frames.dtype)
        vf = valid[:, :, None].to(frames.dtype)
        x = torch.nan_to_num(frames, nan=0.0)
        cnt = vf.sum(dim=(-2, -1)).clamp(min=1)
        fill = (x * vf).sum(dim=(-2, -1)) / cnt  # per-frame band means of the valid pixels
        x = torch.where(vf > 0, x, fill[..., None, None].expand_as(x))
        moved = shifts.abs().amax(dim=-1) > 0
        tracing = torch.jit.is_tracing()  # ONNX export: no data-dependent branches
        if tracing or bool(moved.any()):
            xw = warp(x, shifts)
            mw = warp(vf, shifts, mode="bilinear") > 0.999
            sel = moved[:, :, None, None, None]
            x = torch.where(sel, xw, x)
            vf = torch.where(sel, mw.to(vf.dtype), vf)
        rejected = shifts.abs().amax(dim=-1) > self.max_shift
        if check_corr:
            common = vf * vf[:, :1]
            ncc = _masked_ncc(x, x[:, :1].expand_as(x), common)
            enough = common.sum(dim=(2, 3, 4)) >= 16
            rejected = rejected | (enough & (ncc < self.min_corr))
        rejected[:, 0] = False
        vf = vf * (~rejected).to(vf.dtype)[:, :, None, None, None]
        return x, vf, shifts, rejected

    def _forward_attention(self, frames: torch.Tensor, masks: torch.Tensor | None,
                           shifts: torch.Tensor | None) -> torch.Tensor:
        b, n, c, h, w = frames.shape
        x, vf, shifts, rejected = self.prepare(frames, masks, shifts)
        self.last_shifts, self.last_rejected = shifts.detach(), rejected.detach()
        valid = (vf > 0).expand(b, n, c, h, w)
        med = masked_median(x, valid)  # (B, C, h, w), the mean fill where no frame is valid
        xn = self.normalise(x.reshape(b * n, c, h, w)).reshape(b, n, c, h, w) * vf
        refn = self.normalise(med)
        phase = (shifts - torch.round(shifts))[:, :, :, None, None].expand(b, n, 2, h, w)
        inp = torch.cat([xn, refn[:, None].expand(b, n, c, h, w), vf, phase], dim=2).reshape(b * n, 2 * c + 3, h, w)
        hid = self.encode(inp)
        logit = self.attend(hid).reshape(b, n, 1, h, w)
        hid = hid.reshape(b, n, -1, h, w)
        logit = torch.where(vf > 0, logit, torch.full_like(logit, -1e4))
        wgt = torch.softmax(logit, dim=1) * vf
        wgt = wgt / wgt.sum(dim=1, keepdim=True).clamp(min=1e-12)
        fused = (wgt * hid).sum(dim=1)
        if self.base is not None:
            ref0 = torch.where(vf[:, 0] > 0, x[:, 0], med)
            with torch.no_grad():
                skip = self.base(ref0)
                if self.base_all and n > 1:
                    skip = self._base_mean(frames, masks, shifts, vf, skip)
            y = self.denormalise(self.decode(self.fuse(fused))) + skip - self.norm_mean[:, None, None]
        else:
            y = self.decode(self.fuse(fused)) + F.interpolate(refn, scale_factor=self.scale, mode="bicubic",
                                                              align_corners=False)
            y = self.denormalise(y)
        hole = vf.amax(dim=1) <= 0  # (B, 1, h, w): valid in no frame
        if torch.jit.is_tracing() or bool(hole.any()):
            hole_hr = F.interpolate(hole.to(y.dtype), scale_factor=self.scale, mode="nearest") > 0
            y = torch.where(hole_hr.expand_as(y), torch.full_like(y, float("nan")), y)
        return y


def _filled(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Frames (B, N, C, h, w) with invalid pixels (valid (B, N, h, w) False) set to the frame's band means."""
    vf = valid[:, :, None].to(frames.dtype)
    x = torch.nan_to_num(frames, nan=0.0)
    fill = (x * vf).sum(dim=(-2, -1)) / vf.sum(dim=(-2, -1)).clamp(min=1)
    return torch.where(vf > 0, x, fill[..., None, None].expand_as(x))


def register_to_first(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Shifts (B, N, 2) = (dy, dx) in LR px of every frame against frame 0: frame_k(r, c) ~ frame_0(r - dy, c - dx).

    :func:`eosr.physics.registration.estimate_shift` (Guizar-Sicairos et al. 2008) on the valid pixels (the
    others are NaN, i.e. set to the band mean); frames with no valid pixel, and frame 0, get (0, 0).
    """
    import numpy as np

    from eosr.physics.registration import estimate_shift

    b, n = frames.shape[:2]
    f = frames.detach().double().cpu().numpy()
    ok = valid.cpu().numpy()
    out = np.zeros((b, n, 2))
    for i in range(b):
        if not ok[i, 0].any():
            continue
        ref = np.where(ok[i, 0], f[i, 0], np.nan)
        for k in range(1, n):
            if ok[i, k].any():
                out[i, k] = estimate_shift(ref, np.where(ok[i, k], f[i, k], np.nan))
    return torch.from_numpy(out).to(frames.dtype)


def warp(x: torch.Tensor, shifts: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """Resample (B, N, K, h, w) onto frame 0's grid: out_k(r, c) = x_k(r + dy_k, c + dx_k), zeros outside."""
    b, n, k, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    sy = ys[None, :, None] + shifts.reshape(b * n, 2)[:, 0, None, None]
    sx = xs[None, None, :] + shifts.reshape(b * n, 2)[:, 1, None, None]
    gy = (2 * sy + 1) / h - 1
    gx = (2 * sx + 1) / w - 1
    grid = torch.stack([gx.expand(b * n, h, w), gy.expand(b * n, h, w)], dim=-1)
    out = F.grid_sample(x.reshape(b * n, k, h, w), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.reshape(b, n, k, h, w)


def _masked_ncc(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation over the pixels of m, (B, N, C, h, w) -> (B, N) (mean over bands)."""
    cnt = m.sum(dim=(-2, -1)).clamp(min=1)
    ma = (a * m).sum(dim=(-2, -1)) / cnt
    mb = (b * m).sum(dim=(-2, -1)) / cnt
    da = (a - ma[..., None, None]) * m
    db = (b - mb[..., None, None]) * m
    num = (da * db).sum(dim=(-2, -1))
    den = torch.sqrt((da * da).sum(dim=(-2, -1)) * (db * db).sum(dim=(-2, -1))).clamp(min=1e-12)
    return (num / den).mean(dim=-1)


def highresnet(scale: int = 3, bands: Sequence[str] | None = None, n_bands: int | None = None,
               **kw: Any) -> HighResNet:
    """HighRes-net-style multi-frame fusion (Deudon et al. 2020); default 1 band as PROBA-V."""
    return HighResNet(scale, bands, n_bands, **kw)
