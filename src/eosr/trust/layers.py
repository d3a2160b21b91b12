"""Layer-level analysis of any ``nn.Module`` SR model: stimuli, activations, filters, hallucination trace.

- Controlled stimuli are drawn on the HR grid and observed through a Gaussian sensor PSF
  (MTF ``mtf`` at the LR Nyquist, :class:`eosr.degrade.Degradation`): flat field, step edge, fine
  texture (cosines between 0.5 and 1 times the LR Nyquist), stripes ABOVE the LR Nyquist (1.5 f_N:
  they reach the LR only as a weak alias) and white noise.
- Activation statistics per layer via forward hooks: mean, std, max |a|, share of exact zeros,
  and the share of the activation's AC energy above the LR Nyquist, f_N = 0.5 / q cycles per pixel
  for a layer whose grid is q times finer than the LR (Hann-windowed FFT; 0 for q <= 1, where no
  such detail can exist).
- Hallucination trace: that share along the network, against the share in the bicubic upsampling
  of the input (detail the input does carry at HR, a reference): the first layer clearly above it is
  where detail absent from the LR first appears.
- Filter frequency response: RMS over input/output channels of |FFT| of each learned k x k conv
  kernel (zero-padded to ``n_fft``), its radial profile and the gain ratio above/below 0.25 cycles/px.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ConfigError
from eosr.physics.psf import check_scale
from eosr.trust.uncertainty import split_output

STIMULI = ("flat", "edge", "texture", "stripes", "noise")


def make_stimulus(kind: str, n_bands: int, size: int, scale: int, mtf: float = 0.25, level: float = 0.2,
                  amplitude: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One stimulus: ``(hr, lr)`` of shapes (C, size*r, size*r) and (C, size, size), reflectance."""
    from eosr.degrade.operator import Degradation

    r = check_scale(scale)
    n = size * r
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64),
                            indexing="ij")
    fn = 0.5 / r  # LR Nyquist in cycles per HR pixel
    g = torch.Generator().manual_seed(seed)
    if kind == "flat":
        hr = torch.zeros(n, n, dtype=torch.float64)
    elif kind == "edge":
        hr = torch.where(xx >= n // 2, 1.0, -1.0).to(torch.float64)
    elif kind == "texture":
        hr = torch.zeros(n, n, dtype=torch.float64)
        for _ in range(6):
            f = fn * (0.5 + 0.5 * torch.rand(1, generator=g, dtype=torch.float64))
            th = np.pi * torch.rand(1, generator=g, dtype=torch.float64)
            ph = 2 * np.pi * torch.rand(1, generator=g, dtype=torch.float64)
            hr += torch.cos(2 * np.pi * f * (xx * torch.cos(th) + yy * torch.sin(th)) + ph) / 3.0
    elif kind == "stripes":
        if 1.5 * fn >= 0.5:
            raise ConfigError("stripes above the LR Nyquist need scale >= 2")
        hr = torch.cos(2 * np.pi * 1.5 * fn * xx)
    elif kind == "noise":
        hr = torch.randn(n, n, generator=g, dtype=torch.float64)
    else:
        raise ConfigError(f"unknown stimulus {kind!r}; expected one of {STIMULI}")
    hr = (level + amplitude * hr).expand(n_bands, n, n).contiguous()
    lr = Degradation.from_mtf(mtf, r).downsample(hr) if r > 1 else hr.clone()
    return hr.float(), lr.float()


def high_frequency_share(a: torch.Tensor, q: float) -> float:
    """Share of the AC energy of a (B, C, h, w) activation above 0.5 / q cycles per pixel (Hann window)."""
    if q <= 1.0 + 1e-9:
        return 0.0
    x = a.detach().to(torch.float64)
    h, w = x.shape[-2:]
    if h < 4 or w < 4:
        return 0.0
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                      torch.hann_window(w, periodic=False, dtype=torch.float64))
    p = torch.fft.rfft2(x * win).abs() ** 2
    fy = torch.fft.fftfreq(h, dtype=torch.float64).abs()[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    wts = torch.ones_like(fy * fx)
    if w % 2 == 0:
        wts[:, 1:-1] = 2.0
    else:
        wts[:, 1:] = 2.0  # rfft: count the mirrored half
    fc = 0.5 / q
    above = ((fy > fc) | (fx > fc)).to(torch.float64)
    tot = float((p * wts).sum())
    return float((p * wts * above).sum() / tot) if tot > 0 else 0.0


@dataclass
class LayerRecord:
    """Statistics of one layer's output for one stimulus."""

    name: str
    kind: str
    shape: tuple[int, ...]
    mean: float
    std: float
    abs_max: float
    zero_fraction: float
    hf_share: float  # AC energy share above the LR Nyquist on this layer's grid

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"name": self.name, "type": self.kind, "shape": list(self.shape), "mean": round(self.mean, 8),
                "std": round(self.std, 8), "abs_max": round(self.abs_max, 8),
                "zero_fraction": round(self.zero_fraction, 6), "hf_share": round(self.hf_share, 6)}


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def activation_stats(model: nn.Module, lr: torch.Tensor, layers: Sequence[str] | None = None) -> list[LayerRecord]:
    """Run ``model`` on ``lr`` (C, h, w) or (B, C, h, w) with forward hooks on its leaf modules
    (or the named ``layers``); one record per call in execution order (shared modules appear once per call)."""
    x = lr[None] if lr.ndim == 3 else lr
    h_lr = x.shape[-2]
    mods = dict(model.named_modules())
    if layers is not None:
        missing = [n for n in layers if n not in mods]
        if missing:
            raise ConfigError(f"unknown layer names {missing}")
        chosen = [(n, mods[n]) for n in layers]
    else:
        chosen = _leaf_modules(model)
    records: list[LayerRecord] = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
                return
            a = t.detach().to(torch.float64)
            records.append(LayerRecord(name, type(mod).__name__, tuple(t.shape), float(a.mean()), float(a.std()),
                                       float(a.abs().max()), float((a == 0).to(torch.float64).mean()),
                                       high_frequency_share(a, t.shape[-2] / h_lr)))

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in chosen]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for hd in handles:
            hd.remove()
        model.train(was)
    return records


@dataclass
class HallucinationTrace:
    """High-frequency share along the network for one input."""

    layers: list[str]
    hf_share: list[float]
    input_reference: float  # share in the bicubic upsampling of the input
    output_share: float
    first_layer: str | None  # first layer whose share exceeds the reference by ``margin``

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"layers": self.layers, "hf_share": [round(v, 6) for v in self.hf_share],
                "input_reference": round(self.input_reference, 6), "output_share": round(self.output_share, 6),
                "first_layer_above_reference": self.first_layer}


def hallucination_trace(model: nn.Module, lr: torch.Tensor, scale: int, margin: float = 0.01) -> HallucinationTrace:
    """Where detail above the LR Nyquist first appears (see the module docstring)."""
    r = check_scale(scale)
    x = lr[None] if lr.ndim == 3 else lr
    recs = activation_stats(model, x)
    ref_up = F.interpolate(x.to(torch.float64), scale_factor=r, mode="bicubic", align_corners=False)
    ref = high_frequency_share(ref_up, float(r))
    with torch.no_grad():
        model.eval()
        out = split_output(model(x))[0]
    out_share = high_frequency_share(out, out.shape[-2] / x.shape[-2])
    first = next((rc.name for rc in recs if rc.hf_share > ref + margin), None)
    return HallucinationTrace([rc.name for rc in recs], [rc.hf_share for rc in recs], ref, out_share, first)


@dataclass
class FilterResponse:
    """Frequency response of one conv layer's kernels."""

    name: str
    kernel: tuple[int, int]
    response: np.ndarray  # (n_fft, n_fft), fftshifted, RMS |H| over channels
    radial: np.ndarray  # radial profile over ``freqs``
    freqs: np.ndarray
    hf_gain_ratio: float  # mean gain above 0.25 cycles/px over the mean gain below

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (without the 2-D response)."""
        return {"name": self.name, "kernel": list(self.kernel), "freqs": [round(float(f), 4) for f in self.freqs],
                "radial_gain": [round(float(v), 6) for v in self.radial], "hf_gain_ratio": round(self.hf_gain_ratio, 6)}


def filter_responses(model: nn.Module, n_fft: int = 32, n_bins: int = 8) -> list[FilterResponse]:
    """Frequency responses of every ``nn.Conv2d`` with a kernel larger than 1 x 1."""
    out = []
    fy = np.fft.fftshift(np.fft.fftfreq(n_fft))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(n_fft))[None, :]
    rad = np.sqrt(fy**2 + fx**2)
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or max(m.kernel_size) <= 1:
            continue
        w = m.weight.detach().to(torch.float64).cpu().numpy()
        hmag = np.abs(np.fft.fftshift(np.fft.fft2(w, s=(n_fft, n_fft)), axes=(-2, -1)))
        resp = np.sqrt((hmag**2).mean(axis=(0, 1)))
        radial = np.array([resp[(rad >= lo) & (rad < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
        low = resp[rad < 0.25].mean()
        high = resp[(rad >= 0.25) & (rad <= 0.5)].mean()
        out.append(FilterResponse(name, (int(m.kernel_size[0]), int(m.kernel_size[1])), resp, radial,
                                  0.5 * (edges[1:] + edges[:-1]), float(high / low) if low > 0 else float("inf")))
    return out
