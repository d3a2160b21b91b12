"""Semi-simulated multi-image sets with real clouds, frame registration and MISR augmentation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from affine import Affine

from conftest import BEN, EOPATCH, HVN2
from eosr.data import (
    MISRAugment,
    SemiSimulatedDataset,
    align_frames,
    check_registration,
    read_hvn2_mat,
    read_s2_band_folder,
    register_frames,
    semi_simulated_set,
    valid_from_cloud_mask,
)
from eosr.degrade import Degradation
from eosr.errors import ShapeError

BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def clear() -> np.ndarray:
    """Real cloud masks (eo-learn CLM, cloud = 1) as boolean valid masks."""
    return valid_from_cloud_mask(np.load(EOPATCH / "CLM.npy"))


@pytest.fixture(scope="module")
def op() -> Degradation:
    return Degradation.from_sensor("sentinel2", BANDS, 2)


def test_valid_from_cloud_mask_convention() -> None:
    m = valid_from_cloud_mask(np.array([[[[1], [0]]]], dtype=np.uint8))
    assert m.dtype == bool and m.tolist() == [[[False, True]]]
    with pytest.raises(ShapeError):
        valid_from_cloud_mask(np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("patch", sorted(p.name for p in BEN.iterdir() if p.is_dir())[:3])
def test_simulation_records_shifts_and_registration_recovers_them(patch, op) -> None:
    """Real BigEarthNet 10 m bands as HR; 8 LR frames with random sub-pixel shifts (PSF/gain jitter)."""
    hr = read_s2_band_folder(BEN / patch)[10].data
    s = semi_simulated_set(hr, op, 8, seed=11, max_shift_lr=1.0)
    sh = s.meta["shifts_lr"]
    assert s.lr.shape == (8, 4, 60, 60) and sh.shape == (8, 2) and np.all(sh[0] == 0)
    assert np.abs(sh[1:]).max() > 0.3 and np.allclose(s.meta["shifts_hr"], 2 * sh)
    res = check_registration(s.lr, sh)
    assert res["ok"], res["max_error"]
    assert res["max_error"] < 0.05


def test_registration_on_a_larger_real_scene(op) -> None:
    hr = read_hvn2_mat(HVN2 / "CoastalA_cell.mat").stacks[10][:, :192, :192]
    s = semi_simulated_set(hr, op, 6, seed=3, max_shift_lr=0.75)
    est = register_frames(s.lr)
    assert np.abs(est - s.meta["shifts_lr"]).max() < 0.05
    # a wrong claim is caught
    assert not check_registration(s.lr, s.meta["shifts_lr"] + np.array([[0, 0]] + [[0.2, 0]] * 5))["ok"]


def test_real_clouds_are_invalid_and_nan(s2_10m, op, clear) -> None:
    s = semi_simulated_set(s2_10m, op, 6, clear_masks=clear, seed=5, cloud_fraction_max=0.6)
    lv = s.lr_valid.numpy()
    assert lv.shape == (6, 60, 60) and 0 < (~lv).mean() < 0.6
    assert np.isnan(s.lr.numpy()[:, 0][~lv]).all() and np.isfinite(s.lr.numpy()[:, 0][lv]).all()
    # each frame's mask is a real CLM window: a 60x60 crop of some clear mask
    frame = lv[int(np.argmin(lv.mean(axis=(1, 2))))]
    found = any((c[y : y + 60, x : x + 60] == frame).all()
                for c in clear for y in range(clear.shape[1] - 59) for x in range(clear.shape[2] - 59))
    assert found
    # registration ignores clouds through the masks
    res = check_registration(s.lr, s.meta["shifts_lr"], s.lr_valid.numpy(), tol=0.1)
    assert res["ok"], res["max_error"]


def test_align_frames_undoes_the_shifts(s2_10m, op) -> None:
    s = semi_simulated_set(s2_10m, op, 4, seed=2, sigma_jitter=0.0, gain_jitter=0.0, bias_jitter=0.0)
    al, av = align_frames(s.lr, s.meta["shifts_lr"])
    ref = s.lr[0].numpy()
    inner = (slice(None), slice(8, -8), slice(8, -8))
    before = np.nanmean(np.abs(s.lr[1].numpy() - ref)[inner])
    after = np.nanmean(np.abs(al[1] - ref)[inner])
    assert after < 0.35 * before and av[1, 8:-8, 8:-8].all() and not av[1].all()


def test_semi_simulated_dataset_reproducible_and_epochs(s2_10m, op, clear) -> None:
    ds = SemiSimulatedDataset([{"image": s2_10m, "location_id": "ben"}], op, 5, patch=60, clear_masks=clear,
                              seed=1, max_shift_lr=0.5)
    assert len(ds) == 4 and set(ds.location_ids) == {"ben"}
    a, b = ds[2], ds[2]
    assert torch.equal(torch.nan_to_num(a.lr), torch.nan_to_num(b.lr)) and a.lr.shape == (5, 4, 30, 30)
    ds.set_epoch(1)
    assert not np.allclose(ds[2].meta["shifts_lr"], a.meta["shifts_lr"])


def test_augmentation_consistent_geometry_and_true_shifts(s2_10m, op) -> None:
    s = semi_simulated_set(s2_10m, op, 6, seed=4, max_shift_lr=0.8)
    s = dataclasses.replace(s, hr_transform=Affine(10, 0, 0, 0, -10, 0), lr_transform=Affine(20, 0, 0, 0, -20, 0))
    seen = set()
    for seed in range(8):
        aug = MISRAugment(n_frames=4, seed=seed)
        t = aug(s)
        assert t.lr.shape == (4, 4, 60, 60) and t.hr is not None and t.hr.shape == (4, 120, 120)
        seen.add(tuple(t.meta["augment"]))
        # frames and HR moved together: frame 0 (the reference, kept first) is still D(HR)
        np.testing.assert_allclose(t.lr[0].numpy(), op.downsample(t.hr.numpy()), atol=0.02)
        # the recorded shifts were transformed with the frames: registration still recovers them
        assert check_registration(t.lr, t.meta["shifts_lr"])["ok"]
        assert t.meta["frame_order"][0] == 0 and len(set(t.meta["frame_order"])) == 4
        assert (t.hr_transform is None) == bool(t.meta["augment"])  # geometry invalidates the georeference
    assert len(seen) > 3  # different seeds draw different geometry
    again = MISRAugment(n_frames=4, seed=3)(s)
    assert torch.equal(again.lr, MISRAugment(n_frames=4, seed=3)(s).lr)


def test_augmentation_radiometry_dropout_masks(s2_10m, op, clear) -> None:
    s = semi_simulated_set(s2_10m, op, 6, clear_masks=clear, seed=8)
    s = dataclasses.replace(s, hr_transform=Affine(10, 0, 0, 0, -10, 0))
    aug = MISRAugment(permute=False, hflip=False, vflip=False, rot90=False, gain_jitter=0.05, bias_jitter=0.01,
                      frame_dropout=0.5, seed=0)
    t = aug(s)
    drop = t.meta["dropped"]
    assert not drop[0] and drop.any()
    assert not t.lr_valid[torch.as_tensor(drop)].any() and torch.isnan(t.lr[torch.as_tensor(drop)]).all()
    kept = ~drop
    np.testing.assert_array_equal(t.lr_valid[torch.as_tensor(kept)].numpy(), s.lr_valid[torch.as_tensor(kept)].numpy())
    for band in range(4):  # each kept frame is exactly g * frame + b with |g - 1| <= 0.05, |b| <= 0.01
        for k in np.flatnonzero(kept):
            x, y = s.lr[k, band].numpy().ravel(), t.lr[k, band].numpy().ravel()
            ok = np.isfinite(x)
            g, b = np.polyfit(x[ok], y[ok], 1)
            assert abs(g - 1) <= 0.05 + 1e-4 and abs(b) <= 0.01 + 1e-5 and (g, b) != (1.0, 0.0)
            np.testing.assert_allclose(y[ok], g * x[ok] + b, atol=1e-5)
    assert t.hr_transform == s.hr_transform  # no geometry: georeference kept
    assert torch.equal(t.hr, s.hr)  # radiometric jitter touches the LR only
    with pytest.raises(ShapeError, match="multi-image"):
        aug(s.__class__(**{**s.__dict__, "lr": s.lr[0], "lr_valid": s.lr_valid[0]}))
