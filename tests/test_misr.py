"""Multi-image SR: the attention ``highresnet`` (registration onto frame 0, masks, rejection, order invariance),
``eosr.super_resolve`` on stacks / lists of frames, and ``eosr sr`` on several frames. No training here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import eosr
import eosr.models as M
from eosr.data.s2bands import S2_10M
from eosr.degrade import Degradation
from eosr.degrade.multi import simulate_frames
from eosr.errors import DataError, ModelError

BASE = {"model": "carn_m", "kwargs": {"scale": 2, "bands": list(S2_10M), "channels": 8, "global_skip": True}}


def _model(seed: int = 0, base_all: bool = False, **kw) -> M.SRNet:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    if base_all:
        kw.update(base=BASE, base_all=True)
    m = M.get_model("highresnet", scale=2, bands=S2_10M, channels=8, fusion="attention", register=True,
                    encoder_blocks=1, decoder_blocks=1, **kw)
    m.set_normalisation(torch.tensor([0.05, 0.08, 0.06, 0.3]), torch.tensor([0.03, 0.03, 0.04, 0.1]))
    with torch.no_grad():
        m.attend.weight.mul_(20)  # random weights with a non-trivial attention: scale the attention logits up
        m.decode[-1].weight.normal_(0, 0.05)  # and a non-zero residual over a base
    return m.eval()


@pytest.fixture(scope="module")
def frames(s2_10m: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """6 real-textured frames (48 x 48 LR) with known shifts of a BigEarthNet patch (frame 0 unshifted)."""
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True, noise_sigma=0.002)
    fs = simulate_frames(s2_10m[:, :96, :96], op, 6, max_shift_lr=0.9, seed=5)
    return torch.as_tensor(np.asarray(fs.frames)).float()[None], fs.shifts_lr


def test_registers_onto_the_first_frame(frames) -> None:  # type: ignore[no-untyped-def]
    fr, truth = frames
    m = _model()
    with torch.no_grad():
        y = m(fr)
    assert y.shape == (1, 4, 96, 96) and torch.isfinite(y).all()
    assert m.last_shifts is not None and m.last_rejected is not None
    np.testing.assert_allclose(m.last_shifts[0].numpy(), truth, atol=0.1)
    assert not m.last_rejected.any()


@pytest.mark.parametrize("base_all", [False, True])
def test_order_of_the_other_frames_does_not_matter(frames, base_all: bool) -> None:  # type: ignore[no-untyped-def]
    fr, _ = frames
    m = _model(base_all=base_all)
    mask = torch.ones(1, 6, 48, 48, dtype=torch.bool)
    mask[0, 2, 10:30, 5:25] = False  # a cloud travels with its frame
    with torch.no_grad():
        y = m(fr, mask)
        for perm in ([0, 5, 4, 3, 2, 1], [0, 3, 1, 5, 2, 4]):
            y2 = m(fr[:, perm], mask[:, perm])
            assert float((y - y2).abs().max()) <= 1e-5
        # the first frame is the reference grid: putting another frame first changes the output grid
        y3 = m(fr[:, [1, 0, 2, 3, 4, 5]], mask[:, [1, 0, 2, 3, 4, 5]])
    assert float((y - y3).abs().max()) > 1e-3


@pytest.mark.parametrize("base_all", [False, True])
def test_masked_pixels_are_never_averaged_in(frames, base_all: bool) -> None:  # type: ignore[no-untyped-def]
    fr, _ = frames
    m = _model(base_all=base_all)
    mask = torch.ones(1, 6, 48, 48, dtype=torch.bool)
    mask[0, 3, 8:40, 8:40] = False
    a, b = fr.clone(), fr.clone()
    a[0, 3, :, 8:40, 8:40] = 5.0  # bright cloud
    b[0, 3, :, 8:40, 8:40] = -3.0  # anything else
    with torch.no_grad():
        ya, yb = m(a, mask), m(b, mask)
        torch.testing.assert_close(ya, yb, atol=1e-6, rtol=0)
        # NaN is invalid as well
        c = fr.clone()
        c[0, 3, :, 8:40, 8:40] = float("nan")
        torch.testing.assert_close(m(c), ya, atol=1e-5, rtol=0)
        # a fully clouded frame is the same as no frame
        full = mask.clone()
        full[0, 4] = False
        keep = [0, 1, 2, 3, 5]
        torch.testing.assert_close(m(a, full), m(a[:, keep], mask[:, keep]), atol=1e-5, rtol=0)


def test_nodata_where_no_frame_is_valid(frames) -> None:  # type: ignore[no-untyped-def]
    fr, _ = frames
    mask = torch.ones(1, 6, 48, 48, dtype=torch.bool)
    mask[0, :, 20:24, 30:33] = False
    with torch.no_grad():
        y = _model()(fr, mask)
    assert torch.isnan(y[0, :, 40:48, 60:66]).all()
    assert torch.isfinite(y[0, :, :40]).all()


@pytest.mark.parametrize("base_all", [False, True])
def test_large_misregistration_and_foreign_frames_are_rejected(frames, s2_10m: np.ndarray,  # type: ignore[no-untyped-def]
                                                               base_all: bool) -> None:
    fr, _ = frames
    m = _model(base_all=base_all)
    far = torch.roll(fr[:, 1:2], shifts=(4, 0), dims=(-2, -1))  # 4 LR px > max_shift = 2
    other = torch.as_tensor(Degradation.from_sensor("sentinel2", S2_10M, 2, wald=True).downsample(
        torch.as_tensor(s2_10m[:, ::-1, ::-1].copy()[:, :96, :96]))).float()[None, None]  # another place
    with torch.no_grad():
        y = m(fr)
        y_far = m(torch.cat([fr, far], dim=1))
        assert m.last_rejected is not None and m.last_rejected[0].tolist() == [False] * 6 + [True]
        y_other = m(torch.cat([fr, other], dim=1))
        assert m.last_rejected[0].tolist() == [False] * 6 + [True]
    torch.testing.assert_close(y_far, y, atol=1e-5, rtol=0)
    torch.testing.assert_close(y_other, y, atol=1e-5, rtol=0)


def test_legacy_highresnet_is_unchanged() -> None:
    m = M.get_model("highresnet", scale=3, n_bands=2, channels=8)
    assert m.spec.extra["fusion"] == "recursive" and "attention" not in m.arch["kwargs"].values()
    with pytest.raises(ModelError, match="register=True needs fusion='attention'"):
        M.get_model("highresnet", scale=2, n_bands=2, register=True)


def test_super_resolve_takes_a_stack_or_a_list(frames) -> None:  # type: ignore[no-untyped-def]
    fr, _ = frames
    m = _model()
    st = fr[0].numpy()
    with torch.no_grad():
        ref = m(fr)[0].numpy()
    y = eosr.super_resolve(st, m)
    assert isinstance(y, np.ndarray) and y.shape == (4, 96, 96)
    np.testing.assert_allclose(y, ref, atol=1e-5)
    y_list = eosr.super_resolve([torch.from_numpy(f) for f in st], m)
    assert isinstance(y_list, torch.Tensor)
    np.testing.assert_allclose(y_list.numpy(), ref, atol=1e-5)
    # tiled = whole (shifts estimated once on the whole stack)
    np.testing.assert_allclose(eosr.super_resolve(st, m, tile=16), y, atol=1e-5)
    masks = np.ones((6, 48, 48), bool)
    masks[1] = False
    np.testing.assert_allclose(eosr.super_resolve(st, m, masks=masks),
                               eosr.super_resolve(st[[0, 2, 3, 4, 5]], m), atol=1e-5)
    with pytest.raises(ModelError, match="takes one image"):
        eosr.super_resolve(st, "bicubic")
    with pytest.raises(DataError, match="first frame"):
        eosr.super_resolve(st, m, masks=np.zeros((6, 48, 48), bool))


def test_mi_median_through_the_api(frames) -> None:  # type: ignore[no-untyped-def]
    fr, _ = frames
    y = eosr.super_resolve(fr[0].numpy(), "mi_median")
    np.testing.assert_allclose(y, M.get_model("mi_median", scale=2)(fr)[0].numpy(), atol=1e-5)


def _write(path, data, transform, names=S2_10M):  # type: ignore[no-untyped-def]
    from eosr.io.raster import write_raster

    return write_raster(path, data, crs="EPSG:32633", transform=transform, band_names=list(names))


def _cli(argv: list[str], capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    from eosr.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    io = capsys.readouterr()
    return int(e.value.code or 0), io.out + io.err


def test_cli_several_files_folder_and_time_stack(tmp_path, frames, capsys) -> None:  # type: ignore[no-untyped-def]
    import rasterio
    from rasterio.transform import from_origin

    from eosr.models.checkpoint import save_checkpoint

    fr, _ = frames
    st = fr[0].numpy()
    m = _model()
    ck = str(tmp_path / "misr")
    save_checkpoint(m, ck)
    t = from_origin(500000.0, 5100000.0, 20.0, 20.0)
    (tmp_path / "frames").mkdir()
    files = [_write(tmp_path / "frames" / f"f{i}.tif", st[i], t) for i in range(6)]
    cloud = np.zeros((48, 48), np.float32)
    cloud[5:20, 5:20] = 1
    mfiles = [tmp_path / f"m{i}.tif" for i in range(6)]
    for i, p in enumerate(mfiles):
        _write(p, (cloud if i == 2 else np.zeros_like(cloud))[None], t, ["cloud"])
    out = tmp_path / "sr.tif"
    code, msg = _cli(["sr", *map(str, files), str(out), "--model", ck, "--no-progress", "--masks",
                      ",".join(map(str, mfiles))], capsys)
    assert code == 0, msg
    with rasterio.open(out) as ds:
        got = ds.read()
        assert ds.transform == from_origin(500000.0, 5100000.0, 10.0, 10.0) and ds.crs.to_epsg() == 32633
        assert list(ds.descriptions) == list(S2_10M)
    valid = np.ones((6, 48, 48), bool)
    valid[2, 5:20, 5:20] = False
    np.testing.assert_allclose(got, eosr.super_resolve(st, m, masks=valid), atol=1e-5)
    # a folder (sorted by name) and a time-stacked GeoTIFF (frame-major) give the same
    out2 = tmp_path / "sr2.tif"
    assert _cli(["sr", str(tmp_path / "frames"), str(out2), "--model", ck, "--no-progress"], capsys)[0] == 0
    stack = _write(tmp_path / "stack.tif", st.reshape(24, 48, 48), t, [f"{b}_t{k}" for k in range(6) for b in S2_10M])
    out3 = tmp_path / "sr3.tif"
    code, msg = _cli(["sr", str(stack), str(out3), "--model", ck, "--no-progress", "--bands", "1,2,3,4"], capsys)
    assert code != 0  # a band selection makes it one 4-band frame, not a stack
    code, msg = _cli(["sr", str(stack), str(out3), "--model", ck, "--no-progress"], capsys)
    assert code == 0, msg
    with rasterio.open(out2) as a, rasterio.open(out3) as b:
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-6)
        np.testing.assert_allclose(a.read(), eosr.super_resolve(st, m), atol=1e-5)
    # frames on another grid, or several files for a single-image model: one line, exit code 2
    bad = _write(tmp_path / "bad.tif", st[1][:, :40], t)
    code, msg = _cli(["sr", str(files[0]), str(bad), str(tmp_path / "x.tif"), "--model", ck, "--no-progress"], capsys)
    assert code == 2 and "first frame's grid" in msg and "Traceback" not in msg
    code, msg = _cli(["sr", str(files[0]), str(files[1]), str(tmp_path / "y.tif"), "--model", "bicubic",
                      "--no-progress"], capsys)
    assert code == 2 and "multi-image model" in msg
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


def test_onnx_export_with_shifts_input(tmp_path, frames) -> None:  # type: ignore[no-untyped-def]
    ort = pytest.importorskip("onnxruntime")
    m = _model(1, base_all=True)
    rep = M.export_onnx(m, tmp_path / "m.onnx", height=16, width=20, n_frames=6)
    assert rep["max_abs_diff"] <= 1e-4
    fr, _ = frames
    mask = torch.ones(1, 6, 48, 48)
    mask[0, 2, 10:20, 10:20] = 0
    mask[0, :, 40:, 40:] = 0  # no valid frame: NaN in both
    from eosr.models.highresnet import register_to_first

    shifts = register_to_first(fr, mask.bool())
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"frames": fr.numpy(), "masks": mask.numpy(), "shifts": shifts.numpy()})[0]
    with torch.no_grad():
        ref = m(fr, mask.bool(), shifts).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert np.isnan(got[0, :, 80:, 80:]).all()
    # the base's weights are stored with the fusion's and rebuilt from the card
    from eosr.models.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(m, tmp_path / "ck")
    m2 = load_checkpoint(tmp_path / "ck").eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(fr, mask.bool()), m(fr, mask.bool()), atol=1e-6, rtol=0, equal_nan=True)


def test_misr_config_and_batches(s2_10m: np.ndarray) -> None:
    from pathlib import Path

    from eosr.train.misr import MIImage, is_misr_config, load_misr_config, sample_batch

    cfgp = Path(__file__).resolve().parents[1] / "configs" / "highresnet_s2_x2.toml"
    assert is_misr_config(cfgp)
    cfg = load_misr_config(cfgp)
    assert cfg.model.base == "carn_m_s2_x2" and cfg.frames.counts and max(cfg.frames.counts) <= 16
    cfg = cfg.model_copy(update={"batch_size": 2, "patch": 32})
    imgs = [MIImage(s2_10m.astype(np.float32), "ben", "train", "ben")]
    bank = np.ones((3, 40, 40), bool)
    bank[0, :20] = False  # one real-looking cloud mask
    f1, v1, h1 = sample_batch(cfg, imgs, bank, gstep=5, epoch=1)
    f2, v2, h2 = sample_batch(cfg, imgs, bank, gstep=5, epoch=1)
    assert f1.shape[0] == 2 and f1.shape[2:] == (4, 16, 16) and h1.shape == (2, 4, 32, 32)
    assert 2 <= f1.shape[1] <= 16 and v1.shape == (2, f1.shape[1], 16, 16)
    torch.testing.assert_close(f1, f2, equal_nan=True)  # a pure function of (seed, step)
    assert torch.isnan(f1[~v1[:, :, None].expand_as(f1)]).all()  # invalid pixels are NaN


def test_shipped_highresnet_s2_x2(frames, s2_10m: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    from eosr.models.checkpoint import read_card
    from eosr.models.registry import shipped_weights

    stem = shipped_weights()["highresnet_s2_x2"]
    assert stem.with_suffix(".safetensors").stat().st_size <= 10 * 2**20
    card = read_card(stem)
    assert card["multi_image"] and card["bands"] == list(S2_10M) and card["scale"] == 2
    assert card["training"]["selection"].startswith("validation split only")
    assert "bigearthnet_s2_examples" in card["training"]["split_manifest"]["never_used"]
    m = M.resolve_model("highresnet_s2_x2")
    fr, _ = frames
    hr = torch.from_numpy(s2_10m[:, :96, :96]).float()
    carn = M.resolve_model("carn_m_s2_x2")
    carn.self_ensemble = False
    with torch.no_grad():
        err_misr = float((m(fr)[0] - hr).pow(2).mean())
        err_single = float((carn(fr[:, 0])[0] - hr).pow(2).mean())
    assert err_misr < 0.9 * err_single  # six frames beat the single-image model on the reference frame


def test_cli_frames_without_georeference_or_descriptions(tmp_path, frames, capsys) -> None:  # type: ignore[no-untyped-def]
    """Plain TIFF frames (no CRS, no band descriptions): --bands labels them in order, the output keeps their
    identity transform (no grid made up) and evaluates against an HR of the same kind; options that do not
    apply to several frames (--stac, --self-ensemble, --engine onnxruntime) are refused in one line."""
    import rasterio

    fr, _ = frames
    st = fr[0].numpy()
    files = []
    for i in range(3):
        p = tmp_path / f"f{i}.tif"
        with rasterio.open(p, "w", driver="GTiff", width=48, height=48, count=4, dtype="float32") as ds:
            ds.write(st[i])
        files.append(str(p))
    out = tmp_path / "sr.tif"
    code, msg = _cli(["sr", *files, str(out), "--model", "mi_median", "--no-progress", "--bands", "B02,B03,B04,B08"],
                     capsys)
    assert code == 0, msg
    with rasterio.open(out) as ds:
        assert ds.crs is None and ds.transform == rasterio.Affine.identity() and ds.shape == (96, 96)
        assert list(ds.descriptions) == list(S2_10M)
    for extra in (["--stac"], ["--self-ensemble"], ["--engine", "onnxruntime"]):
        code, msg = _cli(["sr", *files, str(tmp_path / "x.tif"), "--model", "mi_median", "--no-progress", *extra],
                         capsys)
        assert code == 2 and "do not apply" in msg and len(msg.strip().splitlines()) == 1, msg
    assert not (tmp_path / "x.tif").exists()
