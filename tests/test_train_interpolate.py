"""eosr.train.interpolate: WiSE-FT weight interpolation (Wortsman et al., CVPR 2022), alpha chosen on validation."""

from __future__ import annotations

import pytest
import torch

from eosr.errors import ModelError
from eosr.train import interpolate as I


def test_interpolate_state_known_answer() -> None:
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([1.0, -2.0]), "n": torch.tensor(3)}
    assert torch.equal(I.interpolate_state(a, b, 0.0)["w"], a["w"])
    assert torch.equal(I.interpolate_state(a, b, 1.0)["w"], b["w"])
    assert torch.allclose(I.interpolate_state(a, b, 0.25)["w"], torch.tensor([0.25, 1.0]))
    assert int(I.interpolate_state(a, b, 0.5)["n"]) == 3


@pytest.mark.parametrize("b", [{"w": torch.zeros(3), "n": torch.tensor(3)}, {"w": torch.zeros(2)},
                               {"w": torch.zeros(2), "n": torch.tensor(4)}])
def test_interpolate_state_refuses_other_architectures(b) -> None:
    with pytest.raises(ModelError):
        I.interpolate_state({"w": torch.zeros(2), "n": torch.tensor(3)}, b, 0.5)


def test_select_alpha_takes_the_best_mean_validation_psnr(monkeypatch) -> None:
    """A validator whose PSNR peaks at the weights of alpha = 0.4: the grid's 0.4 is chosen and loaded."""
    import eosr.train.loop as loop
    import eosr.train.sources as sources

    start, tuned = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        start.weight.fill_(0.0)
        tuned.weight.fill_(10.0)

    def fake_validate(model, sp, sigmas):
        w = float(model.weight.detach())
        return {"wald/sigma=0": {"psnr": 40.0 - (w - 4.0) ** 2}, "full/sigma=0": {"psnr": 39.0 - (w - 4.0) ** 2}}

    monkeypatch.setattr(sources, "build_datasets", lambda cfg: None)
    monkeypatch.setattr(loop, "_validate", fake_validate)
    cfg = type("C", (), {"validation": type("V", (), {"noise_sigmas": [0.0]})()})()
    best, scores = I.select_alpha(cfg, start, tuned, grid=(0.0, 0.25, 0.4, 0.5, 1.0))
    assert best == 0.4 and set(scores) == {0.0, 0.25, 0.4, 0.5, 1.0}
    assert float(tuned.weight.detach()) == pytest.approx(4.0)
    assert scores[1.0]["wald/sigma=0"]["psnr"] == pytest.approx(4.0)
