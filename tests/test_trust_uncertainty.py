"""Uncertainty: MC dropout, deep ensembles, variance heads and the forward_with_uncertainty wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eosr.errors import ModelError
from eosr.trust.uncertainty import (
    UncertainSR,
    ensemble,
    ensemble_from_state_dicts,
    head_variance,
    mc_dropout,
    predict_with_head,
    split_output,
)
from test_trust_helpers import DetailDropout, Head, Plain  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mc_dropout_rejects_model_without_dropout() -> None:
    with pytest.raises(ModelError, match="dropout"):
        mc_dropout(Plain(), torch.rand(1, 4, 8, 8))
    m = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Dropout(0.0))
    with pytest.raises(ModelError, match="dropout"):
        mc_dropout(m, torch.rand(1, 4, 8, 8))
    with pytest.raises(ModelError):
        UncertainSR(Plain(), method="mc_dropout")


def test_mc_dropout_known_answer_and_modes() -> None:
    m = DetailDropout()
    m.train()
    x = torch.rand(2, 4, 10, 10)
    u = mc_dropout(m, x, n_samples=6, seed=3)
    assert m.training and m.bn.training  # modes restored
    assert torch.equal(m.bn.running_mean, torch.zeros(4))  # BN was frozen (eval) during the passes
    # the same passes by hand, same seed: population variance over the samples
    torch.manual_seed(3)
    m.eval()
    m.drop.train()
    with torch.no_grad():
        ys = torch.stack([m(x) for _ in range(6)]).double()
    assert torch.allclose(u.mean.double(), ys.mean(0), atol=1e-6)
    assert torch.allclose(u.epistemic_var.double(), ys.var(0, unbiased=False), atol=1e-9)
    assert float(u.aleatoric_var.abs().max()) == 0.0
    u2 = mc_dropout(m, x, n_samples=6, seed=3)
    assert torch.equal(u.epistemic_var, u2.epistemic_var)  # seeded


def test_identical_ensemble_has_zero_spread() -> None:
    torch.manual_seed(0)
    template = Plain()
    sd = {k: v.clone() for k, v in template.state_dict().items()}
    members = ensemble_from_state_dicts(Plain(), [sd, sd, sd])
    x = np.random.default_rng(0).random((4, 12, 12)).astype(np.float32)
    u = ensemble(members, x)
    assert isinstance(u.mean, np.ndarray) and u.mean.shape == (4, 24, 24)
    assert np.all(u.epistemic_var == 0.0)
    # different weights give spread
    other = {k: v + 0.1 for k, v in sd.items()}
    u2 = ensemble(ensemble_from_state_dicts(Plain(), [sd, other]), x)
    assert u2.epistemic_var.max() > 0


def test_ensemble_rejects_mixed_architectures_and_bad_checkpoints() -> None:
    with pytest.raises(ModelError, match="member"):
        ensemble([Plain(), DetailDropout()], torch.rand(1, 4, 8, 8))
    with pytest.raises(ModelError, match="at least 2"):
        ensemble([Plain()], torch.rand(1, 4, 8, 8))
    with pytest.raises(ModelError, match="does not fit"):
        ensemble_from_state_dicts(Plain(), [{"conv.weight": torch.zeros(1)}])


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_variance_head_known_answer(kind: str) -> None:
    s = np.log(0.01**2) if kind == "gaussian" else np.log(0.01)
    u = predict_with_head(Head(float(s), kind), torch.rand(1, 3, 5, 5))
    want = 1e-4 if kind == "gaussian" else 2e-4  # Laplace var = 2 b^2
    assert torch.allclose(u.aleatoric_var, torch.full_like(u.aleatoric_var, want), rtol=1e-5)
    assert torch.allclose(u.total_var, u.aleatoric_var)  # deterministic: no epistemic part
    assert float(head_variance(torch.tensor(0.0), "laplace")) == pytest.approx(2.0)
    with pytest.raises(ModelError, match="no variance head"):
        predict_with_head(Plain(3), torch.rand(1, 3, 5, 5))


def test_total_is_epistemic_plus_mean_aleatoric() -> None:
    class DropHead(DetailDropout):
        variance_head = "gaussian"

        def forward(self, x: torch.Tensor, return_logvar: bool = False) -> object:  # type: ignore[override]
            sr = super().forward(x)
            return (sr, torch.full_like(sr, float(np.log(4e-4)))) if return_logvar else sr

    u = mc_dropout(DropHead(), torch.rand(1, 4, 8, 8), n_samples=4)
    assert torch.allclose(u.aleatoric_var, torch.full_like(u.aleatoric_var, 4e-4), rtol=1e-5)
    assert torch.allclose(u.total_var, u.epistemic_var + 4e-4)
    assert torch.allclose(u.std, torch.sqrt(u.epistemic_var + 4e-4))


def test_carn_variance_head_and_dropout_integrate() -> None:
    carn = pytest.importorskip("eosr.models.carn")
    m = carn.carn_m(scale=2, n_bands=2, dropout=0.2, variance_head="laplace")
    w = UncertainSR(m, n_samples=3)
    assert w.method == "mc_dropout"
    sr, std = w.forward_with_uncertainty(torch.rand(1, 2, 6, 6))
    assert sr.shape == std.shape == (1, 2, 12, 12)
    u = w.uncertainty(torch.rand(1, 2, 6, 6))
    assert float(u.aleatoric_var.min()) > 0 and float(u.epistemic_var.max()) > 0


def test_wrapper_applies_calibration_and_split_output() -> None:
    from eosr.trust.calibration import ConformalCalibration

    cal = ConformalCalibration(factor=3.0, p=0.9, dist="gaussian", n=10, coverage_before=0.5)
    w = UncertainSR(DetailDropout(), method="mc_dropout", n_samples=4, calibration=cal)
    x = torch.rand(1, 4, 8, 8)
    sr, std = w.forward_with_uncertainty(x)
    raw = mc_dropout(DetailDropout(), x, n_samples=4, seed=0).std
    assert torch.allclose(std, 3.0 * raw, atol=1e-7)
    assert w(x).shape == (1, 4, 16, 16)
    assert split_output({"sr": sr, "log_var": std})[1] is std
    with pytest.raises(ModelError, match="cannot read"):
        split_output(42)
