"""Issue 15, models part: weights integrity, card limits before allocation, quiet self-contained export of
every shipped model (checked against onnxruntime on real Sentinel-2 data), ``explain --image`` reading only
its window, and the numeric options of ``export`` / ``explain``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import eosr.models as M
from conftest import BEN, call_cli
from eosr.errors import ModelError
from eosr.models import checkpoint as ck
from eosr.models import limits
from eosr.models.registry import shipped_weights

SHIPPED = "carn_m_s2_x2"


def _one_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture()
def copied(tmp_path: Path) -> Path:
    """A user checkpoint: a copy of the shipped weights and card (stem path)."""
    stem = shipped_weights()[SHIPPED]
    for suffix in (".safetensors", ".json"):
        shutil.copy(stem.with_suffix(suffix), tmp_path / f"ck{suffix}")
    return tmp_path / "ck"


def _edit_card(stem: Path, edit: Any) -> None:
    card_path = stem.with_suffix(".json")
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))


# ------------------------------------------------------------------ weights integrity
def test_tampered_weights_are_refused_with_both_hashes(copied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    M.load_checkpoint(copied)  # the intact copy loads
    w = copied.with_suffix(".safetensors")
    raw = bytearray(w.read_bytes())
    raw[-5] ^= 0x01  # one bit of one weight
    w.write_bytes(bytes(raw))
    want = json.loads(copied.with_suffix(".json").read_text())["weights_sha256"]
    with pytest.raises(ModelError) as e:
        M.load_checkpoint(copied)
    msg = str(e.value)
    assert "do not match their card" in msg and w.name in msg and want[:12] in msg
    assert ck.file_sha256(w)[:12] in msg and "\n" not in msg
    assert call_cli(["export", str(copied), str(copied.parent / "x.onnx")]) == 2
    assert "do not match their card" in _one_line(capsys.readouterr().err)
    assert not (copied.parent / "x.onnx").exists()


def test_shipped_weights_must_carry_a_valid_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eosr.models import registry

    stem = shipped_weights()[SHIPPED]
    folder = tmp_path / "weights"
    folder.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(stem.with_suffix(suffix), folder / f"{SHIPPED}{suffix}")
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder.resolve())
    M.get_model(SHIPPED)
    _edit_card(folder / SHIPPED, lambda c: c.pop("weights_sha256"))
    with pytest.raises(ModelError, match="no valid weights_sha256"):
        M.get_model(SHIPPED)
    # a user checkpoint written before hashes existed still loads
    user = tmp_path / "old"
    for suffix in (".safetensors", ".json"):
        shutil.copy(folder / f"{SHIPPED}{suffix}", user.with_suffix(suffix))
    assert M.load_checkpoint(user).n_bands == 4


def test_hash_is_computed_once_per_file_version(copied: Path) -> None:
    w = copied.with_suffix(".safetensors")
    ck.file_sha256(w)
    before = ck._sha256_of.cache_info()
    for _ in range(3):
        M.load_checkpoint(copied)
    after = ck._sha256_of.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 3
    raw = bytearray(w.read_bytes())
    raw[-5] ^= 0x01
    w.write_bytes(bytes(raw))  # new content (size equal, mtime/inode may not change on fast filesystems)

    st = os.stat(w)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(ModelError, match="do not match"):
        M.load_checkpoint(copied)


# ------------------------------------------------------------------ card limits before allocation
@pytest.mark.parametrize(
    ("edit", "needle"),
    [(lambda c: c["architecture"]["kwargs"].update(channels=100000), "channels = 100000 is outside the limit 1..1024"),
     (lambda c: c["architecture"]["kwargs"].update(scale=64), "scale = 64 is outside the limit 1..16"),
     (lambda c: c["architecture"]["kwargs"].update(n_bands=500), "n_bands = 500 is outside the limit 1..64"),
     (lambda c: c["architecture"]["kwargs"].update(channels="64"), "channels must be an integer"),
     (lambda c: c.update(bands=[f"B{i}" for i in range(100)]), "at most 64 band names"),
     (lambda c: c.update(architecture=["carn_m"]), "card field 'architecture'")],
)
def test_card_fields_are_checked_before_building(copied: Path, monkeypatch: pytest.MonkeyPatch, edit: Any,
                                                 needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.models import registry

    _edit_card(copied, edit)

    def no_build(*a: Any, **k: Any) -> None:
        raise AssertionError("a model was built from an invalid card")

    monkeypatch.setattr(registry, "build_from_arch", no_build)
    with pytest.raises(ModelError) as e:
        M.load_checkpoint(copied)
    assert needle in str(e.value) and "\n" not in str(e.value)
    monkeypatch.undo()
    out = copied.parent / "explained"
    assert call_cli(["explain", str(copied.with_suffix(".json")), "--out", str(out), "--no-figures"]) == 2
    assert needle in _one_line(capsys.readouterr().err)


def test_model_too_large_for_memory_is_refused_without_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within every per-option bound, but 4.9 GB of parameters: the meta-device estimate refuses it."""
    monkeypatch.setattr(limits, "available_memory", lambda: 2**30)
    tracemalloc.start()
    try:
        with pytest.raises(ModelError) as e:
            M.get_model("rcan_ca", n_bands=4, n_feats=1024, n_blocks=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "parameters need about" in str(e.value) and "1.0 GiB of memory available" in str(e.value)
    assert peak < 50 * 2**20, peak  # nothing close to the model was allocated
    assert M.get_model("rcan_ca", n_bands=4).n_params() > 0  # ordinary models still fit


def test_limits_hold_for_architectures_built_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelError, match="features = 4096 is outside the limit 1..1024"):
        M.get_model("s2_multires", features=4096)
    assert call_cli(["export", "carn", str(tmp_path / "c.onnx"), "--n-bands", "100000"]) == 2
    assert "n_bands = 100000 is outside" in _one_line(capsys.readouterr().err)


# ------------------------------------------------------------------ export
def _ben_band(band: str, size: int) -> np.ndarray:
    import rasterio

    patch = BEN / "S2A_MSIL2A_20170613T101031_87_48"
    with rasterio.open(next(patch.glob(f"*_{band}.tif"))) as ds:
        return ds.read(1, window=((0, size), (0, size))).astype(np.float32) / 1e4


def _real_inputs(model: Any, size: int = 40) -> tuple[torch.Tensor, ...]:
    """Real Sentinel-2 (BigEarthNet) inputs in the layout the model takes (any future shipped model)."""
    all_bands = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"]
    if model.arch.get("model") == "s2_multires":
        x10 = np.stack([_ben_band(b, size) for b in model.spec.bands[: model.n10]])
        x20 = np.stack([_ben_band(b, size // 2) for b in model.spec.bands[model.n10:]])
        return torch.from_numpy(x10)[None], torch.from_numpy(x20)[None]
    bands = list(model.spec.bands or all_bands[: model.n_bands or 4])
    half = size // 2 if any(b not in ("B02", "B03", "B04", "B08") for b in bands) else size  # 20 m bands: 60 px
    lr = np.stack([_ben_band(b, half) for b in bands])
    if model.spec.multi_image:
        frames = np.stack([np.roll(lr, k, axis=-1) for k in range(4)])
        ft, mt = torch.from_numpy(frames)[None], torch.ones(1, 4, *lr.shape[-2:])
        if getattr(model, "register", False):  # registered outside the exported graph: the shifts are an input
            from eosr.models.highresnet import register_to_first

            return ft, mt, register_to_first(ft, mt.bool())
        return ft, mt
    return (torch.from_numpy(lr)[None],)


def test_every_shipped_model_has_weights_to_export() -> None:
    assert SHIPPED in shipped_weights()


@pytest.mark.parametrize("name", sorted(shipped_weights()))
def test_export_each_shipped_model_quietly_and_alone(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    cwd, scratch = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert call_cli(["export", name, "m.onnx"]) == 0
    out, err = capfd.readouterr()
    assert len((out + err).strip().splitlines()) <= 2, (out + err)[:2000]
    assert "wrote m.onnx" in out and not err.strip()
    assert sorted(p.name for p in cwd.iterdir()) == ["m.onnx"]  # no sym_shape_infer_temp.onnx, no <uuid>.data
    # the exporter's private folder is gone; torch's own compile cache (torchinductor_<user>, made in the
    # system temp folder the first time a process imports it) is not a file of the export
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
    model = M.load_model(name)
    if hasattr(model, "self_ensemble"):
        model.self_ensemble = False  # the export is the plain network (docs/models.md)
    inputs = _real_inputs(model)
    sess = onnxruntime.InferenceSession(str(cwd / "m.onnx"), providers=["CPUExecutionProvider"])
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    got = sess.run(None, feed)[0]
    ref = M.predict(model, inputs[0]) if len(inputs) == 1 else model(*inputs).detach()
    ref = ref.numpy()
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert float(np.abs(got - ref).max()) <= 1e-4
    assert float(ref.std()) > 1e-3  # a real scene, not a flat input


def test_self_ensemble_exports_as_flips_and_matches(tmp_path: Path, s2_10m: np.ndarray) -> None:
    import onnxruntime

    torch.manual_seed(0)
    m = M.get_model("carn_m", bands=["B02", "B03", "B04", "B08"], channels=8, self_ensemble=True)
    torch.nn.init.normal_(m.exit.weight, std=0.05)  # not the identity-like start, so the flips matter
    m.set_normalisation(torch.full((4,), 0.08), torch.full((4,), 0.04))
    x = torch.from_numpy(s2_10m[:, :24, :30].astype(np.float32))[None]
    plain = tmp_path / "plain.onnx"
    ens = tmp_path / "ens.onnx"
    assert M.export_onnx(m, plain, height=8, width=8, check=False)["self_ensemble"] is False
    assert M.export_onnx(m, ens, height=8, width=8, check=False, self_ensemble=True)["self_ensemble"] is True
    assert m.self_ensemble is True  # the model's own setting is restored
    run = {p: onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"lr": x.numpy()})[0]
           for p in (plain, ens)}
    with torch.no_grad():
        ref_ens = m.eval()(x).numpy()
        m.self_ensemble = False
        ref_plain = m(x).numpy()
    np.testing.assert_allclose(run[ens], ref_ens, atol=1e-4, rtol=0)
    np.testing.assert_allclose(run[plain], ref_plain, atol=1e-4, rtol=0)
    assert float(np.abs(ref_ens - ref_plain).max()) > 1e-5  # the two exports differ
    with pytest.raises(ModelError, match="has no self-ensemble"):
        M.export_onnx(M.get_model("bicubic"), tmp_path / "b.onnx", self_ensemble=True)


def test_dihedral_ensemble_equals_the_rot90_formulation() -> None:
    from eosr.models.base import dihedral_ensemble

    def fn(z: torch.Tensor) -> torch.Tensor:  # not equivariant: depends on position
        return z * torch.arange(z.shape[-1], dtype=z.dtype) + z.roll(1, dims=-2)

    x = torch.rand(2, 3, 7, 9)
    ref = torch.zeros_like(x)
    for t in (False, True):
        xt = x.transpose(-1, -2) if t else x
        for k in range(4):
            y = torch.rot90(fn(torch.rot90(xt, k, dims=(-2, -1))), -k, dims=(-2, -1))
            ref += y.transpose(-1, -2) if t else y
    assert torch.allclose(dihedral_ensemble(fn, x), ref / 8, atol=1e-6)


def test_failed_export_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """The old failure (aten::rot90 in the graph): torch prints its TorchScript IR; none of it reaches the user."""
    import eosr.models.carn as carn

    def rot90_ensemble(fn: Any, x: torch.Tensor) -> torch.Tensor:
        return sum(torch.rot90(fn(torch.rot90(x, k, dims=(-2, -1))), -k, dims=(-2, -1)) for k in range(4)) / 4

    monkeypatch.setattr(carn, "dihedral_ensemble", rot90_ensemble)
    monkeypatch.chdir(tmp_path)
    m = M.get_model("carn_m", n_bands=2, channels=8, self_ensemble=True)
    M.save_checkpoint(m, tmp_path / "ck")
    assert call_cli(["export", "ck", "m.onnx", "--self-ensemble", "--height", "8", "--width", "8"]) == 2
    out, err = capfd.readouterr()
    assert not out.strip()
    assert "aten::rot90" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--height", "0"], "height must be an integer in 8..1024"),
     (["--width", "100000"], "width must be an integer in 8..1024"),
     (["--frames", "0"], "frames must be an integer in 1..64"),
     (["--atol", "nan"], "atol must be a finite number > 0")],
)
def test_export_option_errors(tmp_path: Path, args: list[str], needle: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli(["export", "bicubic", str(tmp_path / "m.onnx"), *args]) == 2
    assert needle in _one_line(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ explain
@pytest.fixture(scope="module")
def header_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoTIFF declaring 100000 x 100000 x 4 float32 pixels (149 GiB) whose tiles are all absent."""
    import rasterio
    from rasterio.transform import from_origin

    p = tmp_path_factory.mktemp("bomb") / "bomb.tif"
    with rasterio.open(p, "w", driver="GTiff", width=100_000, height=100_000, count=4, dtype="float32",
                       tiled=True, blockxsize=512, blockysize=512, sparse_ok=True, crs="EPSG:32633",
                       transform=from_origin(500_000, 5_000_000, 20, 20)):
        pass
    assert p.stat().st_size < 2**20
    return p


def test_explain_reads_only_the_window_it_analyses(header_bomb: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import rasterio.io

    windows: list[Any] = []
    read = rasterio.io.DatasetReader.read

    def recording_read(self: Any, *a: Any, **k: Any) -> Any:
        windows.append(k.get("window"))
        return read(self, *a, **k)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    out = tmp_path / "exp"
    args = ["explain", "rcan-ca", "--image", str(header_bomb), "--out", str(out), "--stimuli", "flat",
            "--size", "8", "--max-lr", "16", "--ig-steps", "1", "--erf-samples", "1", "--no-figures",
            "--allow-untrained"]
    # above the declared-size limit: refused before any read, unless the user insists
    assert call_cli(args) == 2
    assert "--no-size-check" in _one_line(capsys.readouterr().err) and not windows and not out.exists()
    tracemalloc.start()
    try:
        code = call_cli([*args, "--no-size-check"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, capsys.readouterr().err
    assert windows and all(w is not None and w.width <= 16 and w.height <= 16 for w in windows), windows
    assert peak < 500 * 2**20
    doc = json.loads((out / "explain.json").read_text())
    assert doc["image"]["crop_offset_lr_px"] == [49_992, 49_992]  # reported in the file's pixels
    assert doc["image"]["crop_shape_lr_px"] == [16, 16]
    import rasterio

    with rasterio.open(out / "sr.tif") as ds:  # georeferenced at the window, on the x2 grid
        assert ds.shape == (32, 32) and ds.transform.c == 500_000 + 20 * 49_992 and ds.transform.a == 10


def test_explain_takes_the_dn_scale_its_error_asks_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Integer DN without a scale in the metadata: refused naming --dn-scale, which explain accepts; the
    explain.json records the radiometry used."""
    import rasterio
    from rasterio.transform import from_origin

    from eosr.data.s2bands import scene_folders
    from eosr.data.samples import bigearthnet_dir

    folder = scene_folders(bigearthnet_dir())[0]
    dn = np.stack([rasterio.open(next(folder.glob(f"*_{b}.tif"))).read(1) for b in ("B02", "B03", "B04", "B08")])
    p = tmp_path / "dn.tif"
    with rasterio.open(p, "w", driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=4, dtype=dn.dtype,
                       crs="EPSG:32633", transform=from_origin(500_000, 5_000_000, 10, 10)) as ds:
        ds.write(dn)
    args = ["explain", "carn_m_s2_x2", "--image", str(p), "--stimuli", "flat", "--size", "8", "--max-lr", "16",
            "--ig-steps", "1", "--erf-samples", "1", "--no-figures"]
    assert call_cli([*args, "--out", str(tmp_path / "a")]) == 2
    assert "give --dn-scale" in _one_line(capsys.readouterr().err) and not (tmp_path / "a").exists()
    assert call_cli([*args, "--out", str(tmp_path / "b"), "--dn-scale", "1e-4"]) == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "b" / "explain.json").read_text())
    assert doc["image"]["radiometry"] == {"dn_scale": 1e-4, "dn_offset": 0.0, "rule": "explicit"}
    assert call_cli([*args, "--out", str(tmp_path / "c"), "--dn-scale", "0"]) == 2
    assert "--dn-scale must not be 0" in _one_line(capsys.readouterr().err)


def test_explain_refuses_a_file_declaring_too_many_bands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import rasterio

    p = tmp_path / "bands.tif"
    with rasterio.open(p, "w", driver="GTiff", width=50_000, height=50_000, count=500, dtype="uint8", tiled=True,
                       sparse_ok=True):
        pass
    assert call_cli(["explain", "bicubic", "--image", str(p), "--out", str(tmp_path / "x")]) == 2
    assert "declares 500 bands; explain analyses 1..64" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_explain_refuses_blocks_too_large_to_read_a_window(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One compressed strip holding the whole image: any window would decode all of it (37 GiB)."""
    import rasterio

    p = tmp_path / "strip.tif"
    with rasterio.open(p, "w", driver="GTiff", width=100_000, height=100_000, count=1, dtype="float32",
                       tiled=False, blockysize=100_000, compress="deflate", sparse_ok=True):
        pass
    assert call_cli(["explain", "bicubic", "--image", str(p), "--out", str(tmp_path / "x")]) == 2
    assert "100000 x 100000 blocks" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--size", "100000"], "explain size must be an integer in 8..512"),
     (["--size", "0"], "explain size must be an integer in 8..512"),
     (["--max-lr", "-1"], "explain max-lr must be an integer in 8..1024"),
     (["--ig-steps", "100000"], "explain ig-steps must be an integer in 1..256"),
     (["--erf-samples", "0"], "explain erf-samples must be an integer in 1..64")],
)
def test_explain_option_errors(tmp_path: Path, args: list[str], needle: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli(["explain", "bicubic", "--out", str(tmp_path / "x"), *args]) == 2
    assert needle in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()
