"""eosr.train: config validation, Wald splits by location, determinism, resume equivalence, loss decrease
on real Sentinel-2 patches, and the CLI's one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import EOPATCH, HVN2
from eosr import SCHEMA_VERSION
from eosr.degrade.operator import Degradation
from eosr.errors import ConfigError
from eosr.train.config import load_config, parse_config
from eosr.train.loop import add_noise, augment, lr_at, radiometric, single_pass, train
from eosr.train.sources import build_datasets

EOP = EOPATCH
MAT = HVN2 / "CoastalA_cell.mat"


@pytest.fixture(scope="module")
def real_data() -> None:
    """The real samples are resolved at import (conftest): nothing left to check."""


def small_doc(out: Path, **over: object) -> dict:
    """A config that trains a 16-channel CARN-M on real S2 (Slovenia, 2 dates) in a second or two."""
    doc: dict = {
        "name": "tiny",
        "seed": 0,
        "epochs": 2,
        "steps_per_epoch": 3,
        "batch_size": 4,
        "patch": 32,
        "stride": 16,
        "progress": False,
        "threads": 2,
        "output": str(out),
        "model": {"name": "carn_m", "options": {"channels": 16, "global_skip": True}},
        "data": {
            "bands": ["B02", "B03", "B04", "B08"],
            "sources": [
                {"kind": "eopatch", "path": str(EOP), "dates": [0, 1], "window": [0, 64, 0, 100],
                 "location": "north", "split": "train"},
                {"kind": "eopatch", "path": str(EOP), "dates": [0], "window": [64, 100, 0, 100],
                 "location": "south", "split": "val"},
            ],
        },
        "noise": {"sigma_max": 0.002, "p_clean": 0.3},
        "losses": [{"name": "smooth_l1", "beta": 0.01}, {"name": "lr_fidelity", "weight": 0.5}],
        "validation": {"noise_sigmas": [0.0, 0.001]},
    }
    doc.update(over)
    return doc


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model": None}, "model"),
        ({"patch": 33}, "multiple of the scale"),
        ({"epochs": 0}, "epochs"),
        ({"losses": [{"name": "ssim"}]}, "unknown name"),
        ({"losses": [{"name": "smooth_l1"}]}, "explicit beta"),
        ({"noise": {"sigma_min": 0.01, "sigma_max": 0.001}}, "sigma_max"),
        ({"radiometric": {"gain": [1.2, 0.8]}}, "radiometric gain"),
        ({"optimizer": {"name": "lbfgs"}}, "optimizer.name"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, change: dict, match: str) -> None:
    doc = small_doc(tmp_path / "o")
    for k, v in change.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    with pytest.raises(ConfigError, match=match) as e:
        parse_config(doc, tmp_path)
    assert "\n" not in str(e.value)


def test_window_and_split_errors(tmp_path: Path, real_data: None) -> None:
    doc = small_doc(tmp_path / "o")
    doc["data"]["sources"][1]["window"] = [64, 300, 0, 100]
    with pytest.raises(ConfigError, match="exceeds the image size"):
        build_datasets(parse_config(doc, tmp_path))
    doc = small_doc(tmp_path / "o")
    doc["data"]["sources"][1]["location"] = "north"  # same place in train and val
    with pytest.raises(ConfigError, match="two splits"):
        build_datasets(parse_config(doc, tmp_path))


def test_toml_paths_resolve_against_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        'output = "runs/x"\n[model]\nname = "carn_m"\n[data]\nbands = ["B02"]\n'
        '[[data.sources]]\nkind = "hvn2_mat"\npath = "data/a.mat"\n[[losses]]\nname = "l1"\n'
    )
    cfg = load_config(f)
    assert cfg.output == str(tmp_path / "runs" / "x")
    assert cfg.data.sources[0].path == str(tmp_path / "data" / "a.mat")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("epochs = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path / "bad.toml")


def test_cli_error_is_one_line_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[model]\nname = "carn_m"\n[[losses]]\nname = "l1"\n')
    p = subprocess.run([sys.executable, "-m", "eosr.cli.main", "train", str(f)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "data" in p.stderr


def test_cli_run_folder_and_streams(tmp_path: Path, real_data: None) -> None:
    """A config whose data fail to load leaves no run folder; a successful run prints its epoch lines on
    stdout and nothing on stderr (docs/conventions.md, "CLI errors and exit codes")."""
    from eosr.sensors import _toml_value

    def dumps(doc: dict) -> str:  # every key inline: a valid TOML document
        return "".join(f"{k} = {_toml_value(v)}\n" for k, v in doc.items())

    bad = small_doc(tmp_path / "runs" / "bad")
    bad["data"]["sources"][0]["path"] = str(tmp_path / "nope")
    (tmp_path / "bad.toml").write_text(dumps(bad))
    p = subprocess.run([sys.executable, "-m", "eosr.cli.main", "train", str(tmp_path / "bad.toml")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error:") and p.stderr.strip().count("\n") == 0, p.stderr
    assert not (tmp_path / "runs").exists()
    (tmp_path / "ok.toml").write_text(dumps(small_doc(tmp_path / "runs" / "ok", epochs=1)))
    p = subprocess.run([sys.executable, "-m", "eosr.cli.main", "train", str(tmp_path / "ok.toml"), "--no-progress"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "epoch 1:" in p.stdout and "wrote" in p.stdout


# ----------------------------------------------------------------------------- pieces
def test_lr_schedule_known_values(tmp_path: Path) -> None:
    cfg = parse_config(small_doc(tmp_path, optimizer={"lr": 1e-3},
                                 schedule={"name": "cosine", "warmup_steps": 10, "min_lr": 0.0}), tmp_path)
    assert lr_at(cfg, 0, 110) == pytest.approx(1e-4)
    assert lr_at(cfg, 9, 110) == pytest.approx(1e-3)
    assert lr_at(cfg, 60, 110) == pytest.approx(0.5e-3)  # half-way through the cosine
    assert lr_at(cfg, 110, 110) == pytest.approx(0.0, abs=1e-12)
    cfg.schedule.name, cfg.schedule.step_size, cfg.schedule.gamma = "step", 5, 0.5
    assert lr_at(cfg, 10 + 12, 110) == pytest.approx(0.25e-3)


def test_augmentation_commutes_with_the_operator(s2_10m) -> None:
    """Flips and 90-degree rotations keep LR = D(HR): D(T hr) == T D(hr) on the pixel-is-area grid."""
    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2, wald=True)
    hr = torch.tensor(s2_10m[:, :32, :32], dtype=torch.float64)[None].repeat(8, 1, 1, 1)
    lr = op.downsample(hr)
    la, ha = augment(lr, hr, torch.Generator().manual_seed(0))
    assert torch.allclose(op.downsample(ha), la, atol=1e-12)
    assert not torch.equal(ha, hr)  # something was transformed


def test_radiometric_augmentation_commutes_with_the_operator(tmp_path: Path, s2_10m) -> None:
    """a HR + b degrades to a LR + b (linear, constant-preserving operator); per-sample, per-band draws
    within the configured ranges; identity by default."""
    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2, wald=True)
    hr = torch.tensor(s2_10m[:, :32, :32], dtype=torch.float64)[None].repeat(6, 1, 1, 1)
    lr = op.downsample(hr)
    cfg = parse_config(small_doc(tmp_path, radiometric={"gain": [0.8, 1.2], "offset": [-0.02, 0.02]}), tmp_path)
    la, ha = radiometric(lr, hr, cfg, torch.Generator().manual_seed(3))
    assert torch.allclose(op.downsample(ha), la, atol=1e-12)
    a = (ha[..., 1, 1] - ha[..., 0, 0]) / (hr[..., 1, 1] - hr[..., 0, 0])
    assert a.min() >= 0.8 - 1e-9 and a.max() <= 1.2 + 1e-9 and a.std() > 0.01
    plain = parse_config(small_doc(tmp_path), tmp_path)
    assert radiometric(lr, hr, plain, torch.Generator().manual_seed(3))[1] is hr


def test_validation_is_one_pass_for_self_ensembling_models() -> None:
    """A config may ship a self-ensembling model: validation (eval mode) still runs one plain pass, so
    training and epoch selection do not depend on the flag; the flag is restored afterwards."""
    from eosr.models import get_model

    torch.manual_seed(0)
    se = get_model("carn_m", scale=2, n_bands=2, self_ensemble=True).eval()
    plain = get_model("carn_m", scale=2, n_bands=2).eval()
    plain.load_state_dict(se.state_dict())
    lr = torch.rand(1, 2, 9, 11)
    with torch.no_grad():
        assert not torch.allclose(se(lr), plain(lr))
        with single_pass(se):
            assert torch.equal(se(lr), plain(lr))
    assert se.self_ensemble


def test_noise_augmentation_levels(tmp_path: Path) -> None:
    cfg = parse_config(small_doc(tmp_path, noise={"sigma_min": 0.001, "sigma_max": 0.002, "p_clean": 0.5}),
                       tmp_path)
    lr = torch.zeros(400, 1, 16, 16, dtype=torch.float64)
    n = add_noise(lr, cfg, torch.Generator().manual_seed(1))
    sd = n.std(dim=(1, 2, 3))
    clean = sd == 0
    assert 0.35 < clean.double().mean() < 0.65
    assert sd[~clean].min() > 0.0008 and sd[~clean].max() < 0.0023


# ----------------------------------------------------------------------------- training
def test_splits_hold_out_locations(tmp_path: Path, real_data: None) -> None:
    sp = build_datasets(parse_config(small_doc(tmp_path / "o"), tmp_path))
    assert sp.locations == {"train": ["north"], "val": ["south"], "test": []}
    assert sp.train_lr.shape[1:] == (4, 16, 16) and sp.train_hr.shape[1:] == (4, 32, 32)
    assert {i.location for i in sp.val} == {"south"} and sp.val[0].hr.shape == (4, 36, 100)
    assert len(sp.train_ids) == len(set(sp.train_ids)) == sp.train_lr.shape[0]
    # the training LR is the noise-free Wald degradation of the training HR: patches are cut from the LR of
    # the whole image, so away from the patch border (where D(patch) sees a padded edge) they agree exactly
    d = sp.operator.downsample(sp.train_hr[:3].double()) - sp.train_lr[:3].double()
    assert float(d[..., 2:-2, 2:-2].abs().max()) < 1e-5


def test_training_reduces_the_loss_on_real_patches(tmp_path: Path, real_data: None) -> None:
    cfg = parse_config(small_doc(tmp_path / "o", epochs=1, steps_per_epoch=25, batch_size=8,
                                 noise={"sigma_max": 0.0}, optimizer={"lr": 2e-3},
                                 schedule={"name": "constant"}), tmp_path)
    sp = build_datasets(cfg)
    from eosr.losses import build_loss
    from eosr.train.loop import build_model

    loss = build_loss(cfg.loss_specs(), sp.operator)
    before = build_model(cfg, sp).eval()
    lr, hr = sp.train_lr[:32], sp.train_hr[:32]
    with torch.no_grad():
        l0 = float(loss(before(lr), hr, lr)[0])
    res = train(cfg, splits=sp)
    with torch.no_grad():
        l1 = float(loss(res.model(lr), hr, lr)[0])
    assert l1 < 0.7 * l0
    assert res.history[0]["val"]["sigma=0"]["psnr"] > 30
    assert (tmp_path / "o" / "tiny.safetensors").is_file() and (tmp_path / "o" / "split_manifest.json").is_file()
    for name in ("history.json", "split_manifest.json", "tiny.json", "best.json"):  # versioned JSON
        assert json.loads((tmp_path / "o" / name).read_text())["schema_version"] == SCHEMA_VERSION, name
    assert json.loads((tmp_path / "o" / "history.json").read_text())["history"] == res.history


def _weights(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_deterministic_given_a_seed(tmp_path: Path, real_data: None) -> None:
    sp = build_datasets(parse_config(small_doc(tmp_path / "a"), tmp_path))
    a = train(parse_config(small_doc(tmp_path / "a", epochs=1), tmp_path), splits=sp)
    b = train(parse_config(small_doc(tmp_path / "b", epochs=1), tmp_path), splits=sp)
    c = train(parse_config(small_doc(tmp_path / "c", epochs=1, seed=1), tmp_path), splits=sp)
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


class _Kill(Exception):
    pass


_KILL9 = """
import json, os, signal
from pathlib import Path
from eosr.train.config import parse_config
from eosr.train.loop import train

def kill(step, loss):
    if step == 5:
        os.kill(os.getpid(), signal.SIGKILL)

train(parse_config(json.loads(Path({doc!r}).read_text()), Path({base!r})), on_step=kill)
"""


def test_resume_after_interruption_matches_uninterrupted(tmp_path: Path, real_data: None) -> None:
    """Interrupt mid-epoch 2 (after global step 5 of 3 x 3; states every 2 steps), resume, compare."""
    doc = small_doc(tmp_path / "full", epochs=3, checkpoint_every=2)
    sp = build_datasets(parse_config(doc, tmp_path))
    full = train(parse_config(doc, tmp_path), splits=sp)

    cut = small_doc(tmp_path / "cut", epochs=3, checkpoint_every=2)

    def kill(step: int, loss: float) -> None:
        if step == 5:
            raise _Kill

    with pytest.raises(_Kill):
        train(parse_config(cut, tmp_path), splits=sp, on_step=kill)
    # the last saved state is at global step 4 (epoch 2, step 1): resuming redoes step 5
    res = train(parse_config(cut, tmp_path), splits=sp)
    assert res.resumed_from_step == 4
    wf, wr = _weights(full.model), _weights(res.model)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert [h["val"] for h in full.history] == [h["val"] for h in res.history]
    # a real kill -9 (no exception handler, no finally) mid-epoch 2 of a separate process, then resume
    killed = small_doc(tmp_path / "killed", epochs=3, checkpoint_every=2)
    doc_json = tmp_path / "killed.json"
    doc_json.write_text(json.dumps(killed))
    proc = subprocess.run([sys.executable, "-c", _KILL9.format(doc=str(doc_json), base=str(tmp_path))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-500:]
    res9 = train(parse_config(killed, tmp_path), splits=sp)
    assert res9.resumed_from_step == 4
    w9 = _weights(res9.model)
    assert all(torch.equal(wf[k], w9[k]) for k in wf)
    # a state from another config is refused; --restart (resume=False) starts over
    other = small_doc(tmp_path / "cut", epochs=3, checkpoint_every=2, seed=7)
    with pytest.raises(ConfigError, match="another configuration"):
        train(parse_config(other, tmp_path), splits=sp)


def test_run_epochs_selects_stops_resumes_and_scores_epoch_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task trainers' epoch loop (eosr.train.loop.run_epochs): best epoch by the validation score
    (higher or lower is better), early stop after ``patience`` epochs without improvement, resume at the
    epoch boundary (a stopped run stays stopped), the untrained model as epoch 0."""
    from types import SimpleNamespace as NS

    from eosr.models import checkpoint
    from eosr.train.loop import run_epochs

    saved: list[tuple[str, int]] = []
    monkeypatch.setattr(checkpoint, "save_checkpoint", lambda m, stem, card: saved.append((stem.name, card["e"])))

    def cfg(epochs: int) -> NS:
        return NS(epochs=epochs, steps_per_epoch=2, seed=0, patience=2, optimizer=NS(lr=0.1, grad_clip=1.0),
                  schedule=NS(warmup_steps=0, name="constant"))

    model = torch.nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scores = iter([1.0, 3.0, 2.0, 2.5, 9.0])
    steps: list[int] = []

    def loss_at(g: int, e: int) -> torch.Tensor:
        steps.append(g)
        return (model.weight**2).sum()

    kw = {"loss_at": loss_at, "validate": lambda: {"score": next(scores)}, "card": lambda h, e: {"e": e},
          "say": lambda m: None}
    hist, best = run_epochs(cfg(2), model, opt, tmp_path, "h", keep_epochs=True, **kw)
    assert [h["epoch"] for h in hist] == [1, 2] and best == 2 and steps == [0, 1, 2, 3]
    assert ("epoch_001", 1) in saved and ("best", 2) in saved and (tmp_path / "state.pt").is_file()
    hist, best = run_epochs(cfg(6), model, opt, tmp_path, "h", **kw)  # resumed at epoch 3, global step 4
    assert steps[4] == 4 and [h["epoch"] for h in hist] == [1, 2, 3, 4] and best == 2
    assert hist[-1]["stopped_early"] and hist[-1]["score"] == 2.5
    again, _ = run_epochs(cfg(6), model, opt, tmp_path, "h", **kw)  # stopped: no more epochs
    assert len(again) == 4 and len(steps) == 8
    with pytest.raises(ConfigError, match="another configuration"):
        run_epochs(cfg(6), model, opt, tmp_path, "other", **kw)
    low = tmp_path / "low"
    low.mkdir()
    losses = iter([5.0, 4.0])
    hist, best = run_epochs(cfg(2), model, opt, low, "h", higher_is_better=False, initial=lambda: 4.5,
                            **{**kw, "validate": lambda: {"score": next(losses)}})
    assert best == 2 and [h["score"] for h in hist] == [5.0, 4.0]  # epoch 1 did not beat the untrained 4.5
