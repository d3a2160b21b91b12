"""Back-projection, the Sentinel-2 multi-resolution model and the multi-image models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import eosr.models as M
from conftest import BEN
from eosr.degrade.multi import simulate_frames
from eosr.degrade.operator import Degradation
from eosr.errors import ModelError, ShapeError

S2_10M = ("B02", "B03", "B04", "B08")
SMALL = {"carn": dict(channels=8), "carn_m": dict(channels=8), "s2_multires": dict(features=8, blocks=1),
         "highresnet": dict(channels=8), "backprojection": dict(iterations=2)}


@pytest.mark.parametrize("name", [n for n in M.list_models(include_weights=False)])
@pytest.mark.parametrize("c", [1, 2, 5, 13])
def test_every_model_maps_odd_lr_sizes_to_r_times(name: str, c: int) -> None:
    torch.manual_seed(c)
    r = 2
    h, w = 9, 7
    kw = SMALL.get(name, {})
    if name == "s2_multires":
        if c == 1:
            pytest.skip("needs at least one 10 m and one 20 m band")
        b10, b20 = ["B02", "B03", "B04", "B08"][: max(1, c // 3)], ["B05", "B06", "B07", "B8A", "B11", "B12", "B01",
                                                                    "B09", "B10"][: c - max(1, c // 3)]
        m = M.get_model(name, scale=r, bands=b10 + b20, **kw)
        y = m(torch.rand(2, len(b10), 2 * h, 2 * w), torch.rand(2, len(b20), h, w))
        assert y.shape == (2, c, 2 * h * r, 2 * w * r)
        return
    if name == "guided_hpf":  # two inputs, 20 m -> 10 m only (scale 2 relative to the 20 m bands)
        if c == 1:
            pytest.skip("needs at least one 10 m and one 20 m band")
        b20 = ["B05", "B06", "B07", "B8A", "B11", "B12"][: min(6, c - 1)]
        m = M.get_model(name, scale=r)
        y = m(0.1 + 0.2 * torch.rand(2, 4, 2 * h, 2 * w), 0.1 + 0.2 * torch.rand(2, len(b20), h, w), bands=b20)
        assert y.shape == (2, len(b20), h * r, w * r) and torch.isfinite(y).all()
        return
    if name == "variance_head":  # a head on the frozen carn_m_s2_x2: that base's 4 bands, whatever c
        m = M.get_model(name, scale=r)
        y = m(0.1 + 0.2 * torch.rand(2, 4, h, w))
        assert y.shape == (2, 4, h * r, w * r) and torch.isfinite(y).all()
        return
    m = M.get_model(name, scale=r, n_bands=c, **kw)
    if m.spec.multi_image:
        frames = 0.1 + 0.2 * torch.rand(2, 3, c, h, w)
        masks = torch.rand(2, 3, h, w) > 0.2
        masks[:, 0] = True  # every LR pixel is seen by some frame (unseen pixels are NaN by design)
        y = m(frames, masks)
    else:
        y = m(0.1 + 0.2 * torch.rand(2, c, h, w))
    assert y.shape == (2, c, h * r, w * r)
    assert torch.isfinite(y).all()


# ------------------------------------------------------------------------------------- back-projection


def test_backprojection_is_lr_consistent_on_real_data(s2_10m: np.ndarray) -> None:
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    hr = torch.from_numpy(s2_10m).float()[None]
    lr = torch.from_numpy(op(s2_10m, seed=1)).float()[None]
    m = M.get_model("backprojection", scale=2, bands=S2_10M, sensor="sentinel2", iterations=12)
    xs = m.iterates(lr)
    fid = [float((lr - op.downsample(x)).pow(2).mean().sqrt()) for x in xs]
    assert all(b < a for a, b in zip(fid, fid[1:], strict=False)), fid  # decreases at every iteration
    assert fid[-1] < 0.05 * fid[0]
    psnr = [float(-10 * torch.log10((x - hr).pow(2).mean())) for x in xs]
    assert psnr[-1] > psnr[0] + 2.0  # the true operator recovers detail: > 2 dB over bicubic (x_0)
    torch.testing.assert_close(m(lr), xs[-1])
    torch.testing.assert_close(m(lr, iterations=0), M.get_model("bicubic")(lr))


def test_backprojection_options_and_errors() -> None:
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True)
    m = M.get_model("backprojection", scale=2, operator=op, iterations=3, step=0.5)
    assert m.operator.sigmas == op.sigmas and m.arch["kwargs"]["sigmas"] == list(op.sigmas)
    m2 = M.get_model("backprojection", scale=2, sigmas=list(op.sigmas), iterations=3, step=0.5)
    x = torch.rand(1, 4, 10, 12)
    torch.testing.assert_close(m(x), m2(x))
    with pytest.raises(ModelError, match="band PSFs"):
        m(torch.rand(1, 3, 10, 12))
    with pytest.raises(ModelError, match="needs band names"):
        M.get_model("backprojection", sensor="sentinel2")
    with pytest.raises(ModelError, match="step"):
        M.get_model("backprojection", step=3.0)
    with pytest.raises(ModelError, match="at most one"):
        M.get_model("backprojection", mtf=0.3, sigmas=[1.0])


# ------------------------------------------------------------------------------------- Sentinel-2 multi-res


def test_s2_multires_shapes_grid_and_identity() -> None:
    m = M.get_model("s2_multires", scale=1, features=8, blocks=1)
    assert m.spec.extra["output_bands"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    x10, x20 = torch.rand(1, 4, 18, 14), torch.rand(1, 6, 9, 7)
    assert m(x10, x20).shape == (1, 6, 18, 14)
    # with a zero residual the model is bicubic interpolation of the 20 m bands (pixel-is-area)
    torch.nn.init.zeros_(m.tail.weight)
    torch.nn.init.zeros_(m.tail.bias)
    m.set_normalisation(torch.rand(10) * 0.2, 0.05 + torch.rand(10) * 0.1)
    torch.testing.assert_close(m(x10, x20), M.get_model("bicubic", scale=2)(x20), atol=1e-6, rtol=0)
    m2 = M.get_model("s2_multires", scale=2, bands=["B2", "B5", "B11"], features=8, blocks=1)
    assert m2.spec.extra["bands_10m"] == ["B02"] and m2.spec.bands == ("B02", "B05", "B11")
    assert m2(torch.rand(1, 1, 8, 6), torch.rand(1, 2, 4, 3)).shape == (1, 3, 16, 12)
    with pytest.raises(ShapeError, match="half the 10 m size"):
        m(x10, torch.rand(1, 6, 8, 7))
    with pytest.raises(ShapeError, match="expects x10"):
        m(torch.rand(1, 3, 18, 14), x20)


def test_s2_multires_learns_to_sharpen_real_20m_bands() -> None:
    """A few steps on real Sentinel-2 (Wald x2: 20 m -> 40 m, 10 m -> 20 m) beat bicubic on the 20 m bands."""
    import rasterio

    patch = sorted(p for p in BEN.iterdir() if p.is_dir())[0]

    def read(b: str) -> np.ndarray:
        with rasterio.open(next(patch.glob(f"*_{b}.tif"))) as ds:
            return ds.read(1).astype(np.float32) / 1e4

    b20 = ("B05", "B06", "B07", "B8A", "B11", "B12")
    x10 = np.stack([read(b) for b in S2_10M])  # 120 x 120
    x20 = np.stack([read(b) for b in b20])  # 60 x 60
    d10 = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True)
    d20 = Degradation.from_sensor("sentinel2", b20, 2, wald=True)
    lr10, lr20 = torch.from_numpy(d10.downsample(x10))[None], torch.from_numpy(d20.downsample(x20))[None]
    target = torch.from_numpy(x20)[None]
    torch.manual_seed(0)
    m = M.get_model("s2_multires", scale=1, features=16, blocks=2)
    allb = torch.cat([lr10, torch.nn.functional.interpolate(lr20, scale_factor=2)], 1)
    m.set_normalisation(allb.mean((0, 2, 3)), allb.std((0, 2, 3)))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    # train on the left half, test on the right half
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(m(lr10[..., :32], lr20[..., :16]), target[..., :32])
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = m(lr10[..., 28:], lr20[..., 14:])[..., 4:]
    base = M.get_model("bicubic", scale=2)(lr20[..., 14:])[..., 4:]
    t = target[..., 32:]
    mse_net, mse_bic = float((pred - t).pow(2).mean()), float((base - t).pow(2).mean())
    assert mse_net < 0.8 * mse_bic, (mse_net, mse_bic)


# ------------------------------------------------------------------------------------- multi-image


@pytest.fixture(scope="module")
def frameset(s2_10m: np.ndarray):  # type: ignore[no-untyped-def]
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, noise_sigma=0.001)
    return simulate_frames(s2_10m, op, 7, max_shift_lr=0.8, gain_jitter=0.0, bias_jitter=0.0, seed=3)


def test_mi_median_registers_real_frames(frameset) -> None:  # type: ignore[no-untyped-def]
    fr = torch.as_tensor(frameset.frames).float()[None]
    m = M.get_model("mi_median", scale=2)
    y = m(fr)
    assert y.shape == (1, 4, 120, 120)
    assert m.last_shifts is not None
    np.testing.assert_allclose(m.last_shifts[0], frameset.shifts_lr, atol=0.06)


def test_mi_median_honours_masks_and_rejects_outliers(frameset, s2_10m: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    fr = torch.as_tensor(frameset.frames).float()[None]
    hr = torch.from_numpy(s2_10m).float()
    for fusion in ("median", "shift_and_add"):
        m = M.get_model("mi_median", scale=2, fusion=fusion)
        clean = m(fr)
        # a bright "cloud" in 3 of 7 frames, masked: the output must not change much
        cloudy = fr.clone()
        cloudy[0, 1:4, :, 10:30, 10:30] = 0.9
        mask = torch.ones(1, 7, 60, 60, dtype=torch.bool)
        mask[0, 1:4, 10:30, 10:30] = False
        masked = m(cloudy, mask)
        inner = (slice(None), slice(None), slice(24, 56), slice(24, 56))
        # (a median of 4 instead of 7 sub-pixel-shifted frames moves edges a little; a leaked cloud adds ~0.6)
        assert float((masked - clean)[inner].abs().max()) < 0.05
        assert float((masked - clean)[inner].abs().mean()) < 0.005
        # unmasked, the median still rejects a cloud present in fewer than half of the frames (shift-and-add
        # takes the median of the ~N/r^2 samples that land on each HR pixel: too few to reject it)
        if fusion == "median":
            unmasked = m(cloudy)
            assert float((unmasked - hr[None])[inner].abs().mean()) < 0.03
        # a region invalid in every frame is nodata (NaN) in the output, never invented (the hole is wider
        # than the frames' shifts, so its centre is seen by no frame after registration)
        mask[:, :, 37:47, 37:47] = False
        out = m(cloudy, mask)
        assert torch.isnan(out[0, :, 80:88, 80:88]).all() and torch.isfinite(out[0, :, :70, :70]).all()
    # more frames than one help: fused error below the single-frame bicubic error
    single = M.get_model("bicubic")(fr[:, 0])
    fused = M.get_model("mi_median", scale=2, fusion="shift_and_add")(fr)
    crop = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert float((fused - hr)[crop].pow(2).mean()) < float((single - hr)[crop].pow(2).mean())


def test_mi_median_of_identical_frames_is_bicubic() -> None:
    x = torch.rand(1, 2, 9, 11)
    fr = x[:, None].repeat(1, 4, 1, 1, 1)
    torch.testing.assert_close(M.get_model("mi_median", scale=3)(fr), M.get_model("bicubic", scale=3)(x),
                               atol=1e-6, rtol=0)


def test_highresnet_variable_frames_masks_and_padding() -> None:
    torch.manual_seed(0)
    m = M.get_model("highresnet", scale=3, n_bands=2, channels=8).eval()
    x = 0.1 + 0.2 * torch.rand(1, 3, 2, 8, 9)
    with torch.no_grad():
        y3 = m(x)
        # a fully masked extra frame (alpha = 0) changes nothing, whatever its content
        extra = torch.cat([x, torch.rand(1, 1, 2, 8, 9) * 5], dim=1)
        mask = torch.ones(1, 4, 8, 9, dtype=torch.bool)
        mask[:, 3] = False
        torch.testing.assert_close(m(extra, mask), y3, atol=1e-5, rtol=0)
        # NaN pixels are invalid, never propagated
        nan = x.clone()
        nan[0, 1, :, 2, 2] = float("nan")
        assert torch.isfinite(m(nan)).all()
        for n in (1, 2, 5, 8):
            assert m(0.1 + 0.2 * torch.rand(2, n, 2, 8, 9)).shape == (2, 2, 24, 27)
    with pytest.raises(ShapeError, match="masks must be"):
        m(x, torch.ones(1, 2, 8, 9, dtype=torch.bool))


def test_highresnet_trains_on_real_frames(frameset, s2_10m: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = M.get_model("highresnet", scale=2, n_bands=4, channels=8)
    fr = torch.as_tensor(frameset.frames).float()[None, :, :, :32, :32]
    hr = torch.from_numpy(s2_10m).float()[None, :, :64, :64]
    m.set_normalisation(fr.mean((0, 1, 3, 4)), fr.std((0, 1, 3, 4)))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(m(fr), hr)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0]
