"""The shipped CARN-M x2 Sentinel-2 model (``carn_m_s2_x2``): found by name, guarded, and better than bicubic
on a real held-out BigEarthNet patch under the Wald protocol (Sentinel-2 operator, wald=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import eosr.models as M
from eosr.degrade import Degradation
from eosr.errors import ModelError
from eosr.metrics.standard import psnr
from eosr.models.interp import upsample

NAME = "carn_m_s2_x2"
BANDS = ["B02", "B03", "B04", "B08"]


def test_shipped_model_is_listed_and_small() -> None:
    ship = M.shipped_weights()
    assert NAME in ship
    w = ship[NAME].with_suffix(".safetensors")
    assert w.stat().st_size < 5 * 1024 * 1024
    d = M.describe_model(NAME)
    assert d["scale"] == 2 and d["bands"] == BANDS and d["params"] > 0


def test_shipped_model_loads_by_name_and_refuses_wrong_bands_or_scale() -> None:
    m = M.get_model(NAME, scale=2, bands=["b2", "B03", "b04", "B8"])
    assert m.spec.scale == 2 and list(m.spec.bands or ()) == BANDS and not m.training
    assert m.card["sensor_operator"]["sensor"] == "sentinel2"  # type: ignore[index]
    with pytest.raises(ModelError, match="x2 model, but x4 was requested"):
        M.get_model(NAME, scale=4, bands=BANDS)
    with pytest.raises(ModelError, match="trained on bands B02,B03,B04,B08"):
        M.get_model(NAME, scale=2, bands=["B02", "B03", "B04", "B8A"])
    with pytest.raises(ModelError, match="cannot be changed"):
        M.get_model(NAME, scale=2, bands=BANDS, channels=32)


def test_shipped_model_beats_bicubic_on_a_real_held_out_patch(s2_10m: np.ndarray) -> None:
    op = Degradation.from_sensor("sentinel2", BANDS, 2, wald=True)
    hr = torch.from_numpy(s2_10m)[None]
    lr = op.downsample(hr)
    g = torch.Generator().manual_seed(0)
    lr_noisy = lr + 0.001 * torch.randn(lr.shape, generator=g, dtype=lr.dtype)
    m = M.get_model(NAME, scale=2, bands=BANDS)
    for x in (lr, lr_noisy):
        with torch.no_grad():
            sr = m(x.float()).double()
        gain = float(psnr(sr, hr).value) - float(psnr(upsample(x, 2, "bicubic"), hr).value)
        assert gain >= 2.0, gain
