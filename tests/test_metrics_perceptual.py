"""LPIPS from local weights: a tiny synthetic weight file written by the test, known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from eosr.errors import DataError, ModelError, ShapeError
from eosr.metrics.perceptual import lpips, lpips_arch

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
