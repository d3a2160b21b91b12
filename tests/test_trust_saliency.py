"""Saliency (input gradients, integrated gradients, ERF) and the support map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eosr.errors import ShapeError
from eosr.trust.saliency import (
    attribution_mass_within,
    effective_receptive_field,
    input_gradient,
    integrated_gradients,
)
from eosr.trust.support import band_limited, support_maps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LRConvs(nn.Module):
    """Three 3x3 convs on the LR grid then PixelShuffle(2): receptive field exactly 3 LR px each side."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(8, 4 * c, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_attribution_is_confined_to_the_receptive_field() -> None:
    m = LRConvs()
    x = torch.rand(2, 21, 21)
    g = input_gradient(m, x, (20, 22, 20, 22))  # SR pixels 20..21 come from LR pixel 10
    assert g.shape == x.shape
    a = g.abs().sum(0)
    assert attribution_mass_within(g, (10, 10), 3) == 1.0  # nothing outside radius 3 ...
    assert float(a[7:14, 7:14].min()) > 0 or float(a[7:14, 7:14].sum()) > 0
    assert attribution_mass_within(g, (10, 10), 2) < 1.0  # ... and something at radius 3
    ig = integrated_gradients(m, x.numpy(), (20, 22, 20, 22), steps=64)
    assert isinstance(ig.attribution, np.ndarray)
    assert attribution_mass_within(ig.attribution, (10, 10), 3) == 1.0
    assert ig.completeness_error < 0.02 * max(abs(ig.output_delta), 1e-3)  # sum IG = F(x) - F(x')


def test_integrated_gradients_linear_known_answer() -> None:
    # for a linear model IG = (x - x') * w exactly, whatever the number of steps
    m = nn.Conv2d(1, 4, 1, bias=True)
    net = nn.Sequential(m, nn.PixelShuffle(2))
    x = torch.rand(1, 6, 6)
    base = torch.full_like(x, 0.3)
    ig = integrated_gradients(net, x, (0, 12, 0, 12), baseline=base, steps=2)
    want = (x - 0.3) * m.weight.sum().detach()
    assert torch.allclose(ig.attribution, want, atol=1e-6)
    assert ig.completeness_error < 1e-4


def test_effective_receptive_field() -> None:
    rf = effective_receptive_field(LRConvs(), n_bands=2, scale=2, size=15, n_samples=3)
    assert rf.erf.shape == (15, 15)
    assert rf.erf.sum() == pytest.approx(1.0)
    assert rf.support_radius == 3
    assert 1 <= rf.radius_95 <= 3
    assert rf.centre == (7, 7)


def test_region_errors() -> None:
    with pytest.raises(ShapeError):
        input_gradient(LRConvs(), torch.rand(2, 5, 5), (0, 0, 0, 1))
    with pytest.raises(ShapeError):
        input_gradient(LRConvs(), torch.rand(2, 5, 5), np.ones((3, 3), bool))


def test_support_known_answers() -> None:
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    lowf = 0.2 + 0.05 * np.cos(2 * np.pi * (8 / 64) * xx)[None]  # 0.125 < f_N = 0.25 cycles/px at x2
    highf = 0.05 * np.cos(2 * np.pi * (24 / 64) * yy)[None]  # 0.375 > f_N
    assert support_maps(lowf, 2).mean_share < 0.01
    s = support_maps(lowf + highf, 2)
    # equal amplitudes: share = 1 / (1 + (1 - M_G(f_low))^2) with the local mean taken at sigma = 2 r = 4 px
    m = np.exp(-2 * np.pi**2 * 4.0**2 * (8 / 64) ** 2)
    assert s.mean_share == pytest.approx(1 / (1 + (1 - m) ** 2), abs=0.02)
    assert support_maps(lowf + highf, 2, sigma_px=2.0).mean_share == pytest.approx(
        1 / (1 + (1 - np.exp(-2 * np.pi**2 * 4.0 * (8 / 64) ** 2)) ** 2), abs=0.03)
    assert support_maps(0.2 + highf, 2).mean_share > 0.98
    # unconstrained detail = local RMS of the above-Nyquist part: 0.05 / sqrt 2 for a cosine of amplitude 0.05
    assert np.nanmedian(s.unconstrained) == pytest.approx(0.05 / np.sqrt(2), rel=0.05)
    # P is a projection: P(P(x)) = P(x); interior matches the band-limited input
    p = band_limited(lowf + highf, 2)
    assert np.allclose(band_limited(p, 2), p, atol=1e-6)
    assert np.abs(p - lowf)[:, 8:-8, 8:-8].max() < 0.1 * 0.05  # ideal low-pass: Gibbs ringing from the borders


def test_support_nan_and_types() -> None:
    x = torch.rand(3, 32, 32)
    x[1, 5, 5] = float("nan")
    s = support_maps(x, 2)
    assert isinstance(s.share, torch.Tensor) and s.share.shape == (3, 32, 32)
    assert torch.isnan(s.share[1, 5, 5]) and torch.isfinite(s.share[0]).all()
    assert float(torch.nan_to_num(s.share).max()) <= 1.0
    with pytest.raises(ShapeError):
        support_maps(np.zeros(5), 2)


def test_support_on_real_imagery(s2_10m: np.ndarray) -> None:
    """The real 10 m image has much more detail above the x2 Nyquist than a bicubic upsampling of its LR."""
    from eosr.degrade.operator import Degradation

    hr = s2_10m.astype(np.float32)
    lr = Degradation.from_sensor("sentinel2", ("B02", "B03", "B04", "B08"), 2, wald=True).downsample(hr)
    bic = F.interpolate(torch.from_numpy(lr)[None], scale_factor=2, mode="bicubic", align_corners=False)[0]
    s_hr = support_maps(hr, 2)
    s_bic = support_maps(bic, 2)
    assert s_bic.mean_share < 0.5 * s_hr.mean_share
    assert 0.02 < s_hr.mean_share < 0.9
