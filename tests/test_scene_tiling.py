"""Seamless tiling: tiled == whole-image inference on real imagery (odd, non-square, edges, nodata)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from torch import nn
from torch.nn import functional as F

from conftest import SAT
from eosr.models.base import ModelSpec
from eosr.scene.infer import predict_array
from eosr.scene.sr import super_resolve_array
from eosr.scene.tiling import Blender, TilePlan, default_overlap

S2_20M = SAT / "sentinel2_T18SVG_20160112"


class Bicubic(nn.Module):
    """Local bicubic baseline following the ModelSpec protocol (receptive field 2 LR px)."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.spec = ModelSpec(name="test-bicubic", scale=scale, receptive_field=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.spec.scale, mode="bicubic", align_corners=False)


class TinyCNN(nn.Module):
    """Three 3x3 convs on LR (rf 3) + pixel shuffle (rf 0) + bicubic skip (rf 2): receptive field 3 LR px."""

    def __init__(self, c: int, scale: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.spec = ModelSpec(name="test-cnn", scale=scale, receptive_field=3, version="0")
        self.body = nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(16, c * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.spec.scale, mode="bicubic", align_corners=False)
        return up + 0.1 * self.body(x)


def read_20m(bands: tuple[str, ...] = ("B05", "B8A", "B11")) -> np.ndarray:
    out = []
    for b in bands:
        with rasterio.open(S2_20M / f"s2_{b}.tif") as ds:
            out.append(ds.read(1).astype(np.float32) * 1e-4)
    return np.stack(out)


@pytest.fixture(scope="module")
def s2_20m() -> np.ndarray:
    """Real Sentinel-2 L1C 20 m bands, 487 rows x 485 columns (odd, non-square)."""
    return read_20m()


def test_plan_balanced_cores_and_partition_of_unity() -> None:
    plan = TilePlan(967, 973, 2, tile=200, overlap=9, receptive_field=3)
    assert plan.shape == (5, 5) and plan.halfwidth == 6 and plan.exact
    assert plan.ys[0] == 0 and plan.ys[-1] == 967 and max(np.diff(plan.ys)) - min(np.diff(plan.ys)) <= 1
    total = np.zeros(967 * 2)
    for i in range(plan.shape[0]):
        lo, hi = plan.support(i, 0)[:2]
        total[lo * 2 : hi * 2] += plan.weights1d(plan.ys, i)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    w = plan.weights1d(plan.ys, 1)
    assert w.min() > 0 and np.all(np.diff(w[: len(w) // 2]) >= 0)  # smooth ramp up, no zero weights
    assert default_overlap(3) == 7 and default_overlap(0) == 4 and default_overlap(20) == 30


def test_overlap_below_receptive_field_is_flagged() -> None:
    assert not TilePlan(100, 100, 2, tile=40, overlap=2, receptive_field=3).exact


def test_blender_covers_every_pixel_once_and_frees_memory() -> None:
    plan = TilePlan(61, 47, 3, tile=16, overlap=5, receptive_field=1)
    hits = np.zeros((61 * 3, 47 * 3), int)
    peak = []

    def sink(win: tuple[int, int, int, int], data: np.ndarray) -> None:
        hits[win[0] : win[1], win[2] : win[3]] += 1
        np.testing.assert_allclose(data, 1.0, atol=1e-6)

    bl = Blender(plan, sink)
    for i, j in plan.tiles():
        s = plan.support(i, j)
        bl.add(i, j, np.ones((1, (s[1] - s[0]) * 3, (s[3] - s[2]) * 3), np.float32))
        peak.append(bl.pending_bytes)
    assert (hits == 1).all() and not bl.pending
    assert max(peak) < 2 * 47 * 3 * 2 * plan.halfwidth * 3 * 8 * 2  # about one blend strip, not the scene


@pytest.mark.parametrize("model_kind", ["bicubic", "cnn"])
def test_tiled_equals_whole_image_on_real_s2(s2_20m: np.ndarray, model_kind: str) -> None:
    x = s2_20m[:, :301, :257]  # odd, non-square; tiles of 64 give edge tiles of another size
    model = Bicubic() if model_kind == "bicubic" else TinyCNN(x.shape[0])
    whole = predict_array(model, x)
    tiled = super_resolve_array(x, model, tile=64)
    assert tiled.shape == (3, 602, 514)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
    # a visibly different result when the overlap is too small (the test can fail)
    with pytest.warns(UserWarning, match="receptive field"):
        bad = super_resolve_array(x, TinyCNN(x.shape[0]), tile=64, overlap=1)
    assert np.abs(bad - predict_array(TinyCNN(x.shape[0]), x)).max() > 1e-4


def test_tiled_equals_whole_on_full_scene_and_torch_roundtrip(s2_20m: np.ndarray) -> None:
    model = TinyCNN(3)
    whole = predict_array(model, s2_20m)
    tiled = super_resolve_array(torch.from_numpy(s2_20m), model, tile=256)
    assert isinstance(tiled, torch.Tensor) and tiled.shape == (3, 487 * 2, 485 * 2)
    np.testing.assert_allclose(tiled.numpy(), whole, atol=1e-5, rtol=0)


def test_mostly_nodata_tiles_and_support_propagation(s2_20m: np.ndarray) -> None:
    x = s2_20m[:, :190, :170].copy()
    x[:, :120, :] = np.nan  # the top tiles are entirely or mostly nodata
    x[1, 150, 40] = np.nan  # one nodata pixel in one band
    model = TinyCNN(3)
    tiled = super_resolve_array(x, model, tile=48)
    whole = predict_array(model, x)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
    nan = np.isnan(tiled[0])
    rf, r = 3, 2
    assert nan[: (120 + rf) * r].all() and not nan[(120 + rf) * r : (150 - rf) * r].any()
    assert nan[150 * r, 40 * r] and nan[(150 + rf) * r, (40 - rf) * r] and not nan[(150 + rf + 1) * r, 40 * r]
    assert np.isfinite(tiled[:, -10:]).all()


def test_scale_three_cnn(s2_20m: np.ndarray) -> None:
    x = s2_20m[:, 100:211, 300:389]
    model = TinyCNN(3, scale=3)
    np.testing.assert_allclose(super_resolve_array(x, model, tile=40), predict_array(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["nearest", "bilinear", "bicubic", "lanczos",
                                  pytest.param("carn_m", marks=pytest.mark.slow)])
def test_registry_models_tiled_equal_whole(s2_20m: np.ndarray, name: str) -> None:
    from eosr.models import get_model

    x = s2_20m[:, 300:431, 380:477] if name != "carn_m" else s2_20m[:, 300:409, 380:463]
    model = get_model(name, scale=2, n_bands=3).eval()
    tile = 40 if name != "carn_m" else 48
    np.testing.assert_allclose(super_resolve_array(x, model, tile=tile), predict_array(model, x), atol=1e-5, rtol=0)


def test_multi_image_models_are_refused(tmp_path) -> None:
    from eosr.errors import ModelError
    from eosr.models import get_model
    from eosr.scene.sr import super_resolve

    p = tmp_path / "x.tif"
    with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=3, dtype="float32") as ds:
        ds.write(np.ones((3, 8, 8), np.float32))
    with pytest.raises(ModelError, match="several LR frames"):
        super_resolve(p, tmp_path / "y.tif", get_model("mi_median", scale=2, n_bands=3), progress=False)
