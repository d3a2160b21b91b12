"""Geometric self-ensemble (EDSR+): the dihedral mean, its invariances and its persistence."""

from __future__ import annotations

import torch

from eosr.models import get_model
from eosr.models.base import dihedral_ensemble
from eosr.models.checkpoint import load_checkpoint, save_checkpoint


def test_dihedral_ensemble_of_an_equivariant_map_is_the_map() -> None:
    x = torch.rand(2, 3, 7, 9)
    assert torch.allclose(dihedral_ensemble(lambda t: 2 * t + 1, x), 2 * x + 1, atol=1e-6)


def test_dihedral_ensemble_symmetrises_an_asymmetric_map() -> None:
    """A shift to the right is not flip-equivariant: the ensemble averages the 8 orientations."""
    x = torch.zeros(1, 1, 5, 5)
    x[..., 2, 2] = 1.0
    out = dihedral_ensemble(lambda t: torch.roll(t, 1, dims=-1), x)
    assert out[0, 0, 2, 3] == out[0, 0, 2, 1] == out[0, 0, 1, 2] == out[0, 0, 3, 2] == 0.25
    assert float(out.sum()) == 1.0


def test_carn_self_ensemble_eval_only_and_persisted(tmp_path) -> None:
    torch.manual_seed(0)
    m = get_model("carn_m", scale=2, n_bands=4, self_ensemble=True).eval()
    plain = get_model("carn_m", scale=2, n_bands=4)
    plain.load_state_dict(m.state_dict())
    plain.eval()
    lr = torch.rand(1, 4, 12, 10)
    with torch.no_grad():
        ref = dihedral_ensemble(plain, lr)
        out = m(lr)
        sr, s = get_model("carn_m", scale=2, n_bands=4, self_ensemble=True, variance_head="gaussian").eval()(
            lr, return_logvar=True)
    assert out.shape == (1, 4, 24, 20) and torch.allclose(out, ref, atol=1e-6)
    assert sr.shape == s.shape == (1, 4, 24, 20)
    m.train()
    assert torch.allclose(m(lr), plain.train()(lr), atol=1e-6)  # training: one plain pass
    save_checkpoint(m.eval(), tmp_path / "se", {"name": "se"})
    again = load_checkpoint(tmp_path / "se")
    assert getattr(again, "self_ensemble", False)
    with torch.no_grad():
        assert torch.allclose(again(lr), out, atol=1e-6)
