"""Issue 15, outputs: files follow the umask, nothing left behind after a kill, sets of files (frames, maps)
all-or-nothing and replaced whole, no silent overwrite of a foreign training folder, one-line errors for a
state.pt that cannot be resumed."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from conftest import EOPATCH, call_cli
from eosr.errors import DataError
from eosr.io.raster import atomic_path, remove_stale_temporaries, write_raster

BANDS = ["B02", "B03", "B04", "B08"]
S2_20M = ("B05", "B8A", "B11")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


# ----------------------------------------------------------------------------- file modes
@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_follow_the_umask(tmp_path: Path, hr_tif: Path, umask: None, mask: int, file_mode: int,
                                  dir_mode: int) -> None:
    os.umask(mask)
    a = np.zeros((1, 8, 8), np.float32)
    t = from_origin(0, 80, 10, 10)
    assert mode(write_raster(tmp_path / "a.tif", a, crs="EPSG:32633", transform=t)) == file_mode
    assert mode(write_raster(tmp_path / "a_cog.tif", a, crs="EPSG:32633", transform=t, cog=True)) == file_mode
    with atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    assert mode(tmp_path / "a.json") == file_mode
    # a whole scene (stage file + compressed copy) and a frame set (a staged folder)
    assert call_cli(["sr", str(hr_tif), str(tmp_path / "sr.tif"), "--model", "bicubic", "--no-progress"]) == 0
    assert mode(tmp_path / "sr.tif") == file_mode
    assert call_cli(["simulate", str(hr_tif), str(tmp_path / "set"), "--bands", ",".join(BANDS), "--frames", "2"]) == 0
    assert mode(tmp_path / "set") == dir_mode
    assert {mode(p) for p in (tmp_path / "set").iterdir()} == {file_mode}
    assert not [n for n in listing(tmp_path) if n.startswith(".")]


# ----------------------------------------------------------------------------- stale temporaries
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_dead_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        names = {
            "dead": [f".out.tif.eosr-{dead}-abc123_x.tmp", f".out.tif.eosr-{dead}-abc123_x.tmp.stage.tif"],
            "live": [f".out.tif.eosr-{live.pid}-zz9.tmp"],
            "other target": [f".other.tif.eosr-{dead}-q1.tmp"],
            "legacy": [".out.tif.k2j3x9_a.tmp"],
            "user": ["out.tif.eosr-notes.txt"],
        }
        for group in names.values():
            for n in group:
                (tmp_path / n).write_bytes(b"x")
        (tmp_path / f".out.tif.eosr-{dead}-dir0.tmp").mkdir()  # a staging folder
        (tmp_path / f".out.tif.eosr-{dead}-dir0.tmp" / "frame_000.tif").write_bytes(b"x")
        with atomic_path(tmp_path / "out.tif") as tmp:
            tmp.write_text("done")
        err = capsys.readouterr().err
        assert "removed 3 stale temporary files" in err and "from a killed run" in err
        assert "from an older eosr (.out.tif.k2j3x9_a.tmp)" in err
        kept = names["live"] + names["other target"] + names["legacy"] + names["user"] + ["out.tif"]
        assert listing(tmp_path) == sorted(kept)
        assert remove_stale_temporaries(tmp_path / "out.tif") == 0
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temporaries(tmp_path / "out.tif") == 1  # now its process is gone


@pytest.fixture(scope="module")
def big_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Sentinel-2 20 m bands (487 x 485) tiled 3 x 3 with mirroring: float32, 1461 x 1455, 3 bands
    (about 10 s of `eosr sr --tile 128` on a busy 2-core machine: time to kill it mid-run)."""
    from test_scene_tiling import read_20m

    x = read_20m(S2_20M)
    row = np.concatenate([x, x[:, :, ::-1], x], axis=2)
    big = np.concatenate([row, row[:, ::-1], row], axis=1).astype(np.float32)
    p = tmp_path_factory.mktemp("big") / "in.tif"
    with rasterio.open(p, "w", driver="GTiff", width=big.shape[2], height=big.shape[1], count=3, dtype="float32",
                       crs="EPSG:32618", transform=from_origin(435720.0, 4179460.0, 20, 20), tiled=True,
                       blockxsize=256, blockysize=256) as ds:
        ds.write(big)
        for i, n in enumerate(S2_20M):
            ds.set_band_description(i + 1, n)
    return p


def test_sigkill_mid_sr_then_rerun_leaves_no_temporaries(tmp_path: Path, big_tif: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sr.tif"
    args = ["sr", str(big_tif), str(out), "--model", "bicubic", "--tile", "128", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "eosr.cli.main", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    stage_of = f".sr.tif.eosr-{proc.pid}-"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # kill once tiles are being written
            stages = [p for p in tmp_path.iterdir() if p.name.startswith(stage_of) and p.name.endswith(".stage.tif")]
            if stages and stages[0].stat().st_size > 1_000_000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"eosr sr ended before it could be killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = [n for n in listing(tmp_path) if n.startswith(stage_of)]
    assert len(left) == 2 and any(n.endswith(".stage.tif") for n in left), left  # the temporary and its stage
    assert not out.exists()
    capsys.readouterr()
    assert call_cli(args) == 0
    assert "removed 2 stale temporary files" in capsys.readouterr().err
    assert listing(tmp_path) == ["sr.tif"]
    from eosr.models import get_model
    from eosr.scene.infer import predict_array

    with rasterio.open(big_tif) as src:
        x = src.read()
    ref = predict_array(get_model("bicubic", scale=2, n_bands=3).eval(), x)
    with rasterio.open(out) as ds:
        assert (ds.count, ds.height, ds.width) == (3, 2 * 1461, 2 * 1455)
        got = ds.read()
    assert np.abs(got - ref).max() < 1e-5


# ----------------------------------------------------------------------------- frame sets
class _Interrupt:
    """Wraps a writer: raises KeyboardInterrupt (a Ctrl-C) on call number ``after + 1``."""

    def __init__(self, writer: object, after: int) -> None:
        self.writer, self.after, self.calls = writer, after, 0

    def __call__(self, *a: object, **k: object) -> object:
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.writer(*a, **k)  # type: ignore[operator]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_frame_set_is_all_or_nothing_and_replaced_whole(tmp_path: Path, hr_tif: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import eosr.scene.simulate as sim

    out = tmp_path / "set"
    args = ["simulate", str(hr_tif), str(out), "--bands", ",".join(BANDS), "--seed", "1"]
    monkeypatch.setattr(sim, "write_raster", _Interrupt(sim.write_raster, 2))
    assert call_cli([*args, "--frames", "6"]) == 130  # interrupted: "interrupted", exit 130
    assert listing(tmp_path) == []  # no partial set, no staging folder
    monkeypatch.undo()
    assert call_cli([*args, "--frames", "6"]) == 0
    full = _snapshot(out)
    assert sorted(full) == [f"frame_{k:03d}.tif" for k in range(6)] + ["frames.json"]
    monkeypatch.setattr(sim, "write_raster", _Interrupt(sim.write_raster, 2))
    assert call_cli([*args, "--frames", "3", "--seed", "2"]) == 130
    assert _snapshot(out) == full and listing(tmp_path) == ["set"]  # the previous set, untouched
    monkeypatch.undo()
    (out / ".frame_005.tif.k2j3x9_a.tmp").write_bytes(b"x")  # left in the set by an older eosr: replaced with it
    assert call_cli([*args, "--frames", "3", "--seed", "2"]) == 0
    assert listing(out) == ["frame_000.tif", "frame_001.tif", "frame_002.tif", "frames.json"]
    assert len(json.loads((out / "frames.json").read_text())["shifts_hr_px_dy_dx"]) == 3
    assert listing(tmp_path) == ["set"]


def test_frame_set_refuses_a_folder_of_other_files(tmp_path: Path, hr_tif: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "frame_000.tif").write_text("not even a raster")
    assert call_cli(["simulate", str(hr_tif), str(out), "--bands", ",".join(BANDS), "--frames", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "notes.txt" in err and "new or empty folder" in err
    assert listing(out) == ["frame_000.tif", "notes.txt"] and listing(tmp_path) == ["mine"]


# ----------------------------------------------------------------------------- maps
def test_maps_are_all_or_nothing_and_replaced_whole(tmp_path: Path, hr_tif: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import eosr.io.raster as rio

    with rasterio.open(hr_tif) as ds:
        prof, hr = ds.profile, ds.read()
    sr = tmp_path / "in" / "sr.tif"
    sr.parent.mkdir()
    with rasterio.open(sr, "w", **prof) as ds:
        ds.write((hr + np.random.default_rng(0).normal(0, 0.01, hr.shape)).astype(np.float32))
        ds.descriptions = tuple(BANDS)
    lr = sr.parent / "lr.tif"
    assert call_cli(["simulate", str(hr_tif), str(lr), "--bands", ",".join(BANDS)]) == 0
    maps = tmp_path / "maps"
    args = ["evaluate", "--sr", str(sr), "--hr", str(hr_tif), "--lr", str(lr), "--quiet", "--maps", str(maps)]
    monkeypatch.setattr(rio, "write_raster", _Interrupt(rio.write_raster, 2))
    assert call_cli(args) == 130
    assert listing(tmp_path) == ["in"]
    monkeypatch.undo()
    assert call_cli(args) == 0
    full = _snapshot(maps)
    assert len(full) >= 3 and all(n.endswith(".tif") for n in full)
    monkeypatch.setattr(rio, "write_raster", _Interrupt(rio.write_raster, 2))
    assert call_cli(args) == 130
    assert _snapshot(maps) == full and listing(tmp_path) == ["in", "maps"]
    monkeypatch.undo()
    (maps / "error.tif.aux.xml").write_text("<PAMDataset/>")  # GDAL's sidecar belongs to the set
    assert call_cli(args) == 0
    assert listing(maps) == sorted(full) and listing(tmp_path) == ["in", "maps"]
    # maps into a folder holding other files (here the SR itself): refused, nothing written or removed
    assert call_cli([*args[:-1], str(sr.parent)]) == 2
    assert listing(sr.parent) == ["lr.tif", "sr.tif"]


def test_python_write_maps_is_all_or_nothing(tmp_path: Path, hr_tif: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``EvaluationResult.write_maps`` itself stages the set: an interruption leaves no partial folder."""
    import eosr.io.raster as rio
    from eosr.degrade import Degradation
    from eosr.evaluation import evaluate

    with rasterio.open(hr_tif) as ds:
        hr = ds.read().astype(np.float32)
    sr = hr + np.random.default_rng(1).normal(0, 0.01, hr.shape).astype(np.float32)
    op = Degradation.from_mtf(0.3, 2)
    res = evaluate(sr, hr, np.asarray(op.downsample(hr)), operator=op, scale=2, maps=True)
    assert len(res.maps) >= 2
    monkeypatch.setattr(rio, "write_raster", _Interrupt(rio.write_raster, len(res.maps) - 1))  # at the last map
    with pytest.raises(KeyboardInterrupt):
        res.write_maps(tmp_path / "maps")
    assert listing(tmp_path) == []
    monkeypatch.undo()
    paths = res.write_maps(tmp_path / "maps")
    assert paths and all(p.is_file() for p in paths) and listing(tmp_path) == ["maps"]


# ----------------------------------------------------------------------------- train
def _train_doc(out: Path, **over: object) -> dict:
    from test_train import small_doc

    return small_doc(out, **{"epochs": 1, "steps_per_epoch": 1, **over})


def test_train_refuses_a_populated_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.train.config import parse_config
    from eosr.train.loop import train

    out = tmp_path / "run"
    out.mkdir()
    (out / "state.pt").write_bytes(b"the user's own state.pt")
    (out / "notes.txt").write_text("keep me")
    cfg = parse_config(_train_doc(out), tmp_path)
    for resume in (True, False):
        with pytest.raises(DataError, match="not an eosr training folder .*--overwrite"):
            train(cfg, resume=resume)
    toml = tmp_path / "c.toml"
    toml.write_text(f'output = "{out}"\n[model]\nname = "carn_m"\n[data]\nbands = ["B02"]\n'
                    f'[[data.sources]]\nkind = "eopatch"\npath = "{EOPATCH}"\n[[losses]]\nname = "l1"\n')
    capsys.readouterr()
    assert call_cli(["train", str(toml), "--restart"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "--overwrite" in err
    assert listing(out) == ["notes.txt", "state.pt"] and (out / "state.pt").read_bytes() == b"the user's own state.pt"


def test_train_overwrite_then_resume_errors_are_one_line(tmp_path: Path) -> None:
    from eosr.train.config import parse_config
    from eosr.train.loop import STATE_FILE, train
    from eosr.train.sources import build_datasets

    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    cfg = parse_config(_train_doc(out), tmp_path)
    sp = build_datasets(cfg)
    res = train(cfg, splits=sp, overwrite=True, resume=False)
    assert (out / "notes.txt").read_text() == "keep me" and res.checkpoint.with_suffix(".safetensors").is_file()
    st = torch.load(out / STATE_FILE, weights_only=True)
    train(cfg, splits=sp)  # now an eosr run folder: resumes (nothing left to do) without --overwrite
    key = next(k for k, v in st["model"].items() if v.ndim == 4)
    broken: dict[str, object] = {
        "random bytes": os.urandom(4096),
        "a tensor": torch.zeros(3),
        "a dict without the keys": {"config_hash": st["config_hash"]},
        "a foreign dict": {"weights": torch.zeros(2)},
        "a tensor of the wrong shape": {**st, "model": {**st["model"], key: torch.zeros(1, 1, 1, 1)}},
        "an edited history": {**st, "history": "[1, 2]"},
    }
    for what, content in broken.items():
        if isinstance(content, bytes):
            (out / STATE_FILE).write_bytes(content)
        else:
            torch.save(content, out / STATE_FILE)
        with pytest.raises(DataError) as e:
            train(cfg, splits=sp)
        msg = str(e.value)
        assert "\n" not in msg and str(out / STATE_FILE) in msg and "--restart" in msg, (what, msg)
    res = train(cfg, splits=sp, resume=False)  # --restart starts over in eosr's own folder
    assert res.resumed_from_step == 0 and (out / "notes.txt").is_file()
