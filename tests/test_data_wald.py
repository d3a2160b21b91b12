"""Wald protocol builder and location splits (property-tested with hypothesis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from eosr.data import (
    WaldDataset,
    assign_splits,
    patch_origins,
    read_manifest,
    split_dataset,
    split_locations,
    wald_pair,
    wald_samples,
    write_manifest,
)
from eosr.degrade import Degradation
from eosr.errors import DataError, ScaleError


@pytest.fixture(scope="module")
def op() -> Degradation:
    return Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2, wald=True)


def test_wald_patches_are_crops_of_the_whole_degraded_image(s2_10m, op) -> None:
    img = s2_10m.astype(np.float32)
    lr_full, hr_full = wald_pair(img, op)
    t = Affine(10, 0, 404400, 0, -10, 5342400)
    ss = wald_samples(img, op, patch=48, stride=24, location_id="p", transform=t, crs="EPSG:32633")
    assert len(ss) == len(patch_origins(120, 120, 48, 24)) == 16
    for s in ss:
        y, x = s.meta["origin_hr"]
        np.testing.assert_array_equal(s.hr.numpy(), hr_full[:, y : y + 48, x : x + 48])
        np.testing.assert_array_equal(s.lr.numpy(), lr_full[:, y // 2 : y // 2 + 24, x // 2 : x // 2 + 24])
        assert s.hr_transform.c == 404400 + 10 * x and s.hr_transform.f == 5342400 - 10 * y
        assert (s.lr_transform.a, s.lr_transform.c) == (20, s.hr_transform.c)
        assert s.lr_bands == ("B02", "B03", "B04", "B08") and s.scale == 2
    assert ss[0].meta["degradation"]["sigma_hr_px"][2] == pytest.approx(
        np.sqrt(3) * np.sqrt(-2 * np.log(0.233)) / np.pi, rel=1e-5)


def test_wald_rejects_cloudy_patches(s2_10m, op) -> None:
    valid = np.ones((120, 120), bool)
    valid[10:20, 10:20] = False  # a small "cloud" in the first patch only (patch 60, stride 60)
    ss = wald_samples(s2_10m, op, patch=60, location_id="p", valid=valid)
    assert [s.meta["origin_hr"] for s in ss] == [(0, 60), (60, 0), (60, 60)]
    ss = wald_samples(s2_10m, op, patch=60, location_id="p", valid=valid, max_invalid=0.3)
    assert len(ss) == 4 and not ss[0].hr_valid.all() and not ss[0].lr_valid.all()
    assert np.isnan(ss[0].hr.numpy()[:, 15, 15]).all() and ss[1].lr_valid.all()


def test_wald_dataset_scale_checks_and_noise_seed(s2_10m, op) -> None:
    with pytest.raises(ScaleError):
        wald_samples(s2_10m, op, patch=31, location_id="p")
    noisy = op.with_options(noise_sigma=0.01)
    a = WaldDataset([{"image": s2_10m, "location_id": "a"}], noisy, patch=40, seed=3)
    b = WaldDataset([{"image": s2_10m, "location_id": "a"}], noisy, patch=40, seed=3)
    c = WaldDataset([{"image": s2_10m, "location_id": "a"}], noisy, patch=40, seed=4)
    assert len(a) == 9 and a.stats.tried == 9 and a.stats.rejected == 0
    assert np.array_equal(a[4].lr.numpy(), b[4].lr.numpy()) and not np.array_equal(a[4].lr.numpy(), c[4].lr.numpy())


@settings(max_examples=60, deadline=None)
@given(
    locs=st.lists(st.text("abcdef0123", min_size=1, max_size=4), min_size=1, max_size=40),
    seed=st.integers(0, 2**31),
    fr=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=4),
)
def test_location_splits_disjoint_complete_reproducible(locs, seed, fr) -> None:
    fractions = {f"s{i}": f for i, f in enumerate(fr)}
    sp = split_locations(locs, fractions, seed)
    flat = [x for v in sp.values() for x in v]
    assert len(flat) == len(set(flat)) == len(set(locs))  # disjoint and complete
    assert sp == split_locations(list(reversed(locs)), fractions, seed)  # order-independent
    idx = assign_splits(locs, sp)
    for name, ii in idx.items():
        assert {locs[i] for i in ii} <= set(sp[name])
    n = len(set(locs))
    for k, f in fractions.items():  # largest-remainder sizes
        assert abs(len(sp[k]) - n * f / sum(fr)) < 1.0 + 1e-9


def test_manifest_round_trip_and_leak_detection(tmp_path) -> None:
    sp = split_locations([f"site{i}" for i in range(20)], seed=7)
    assert sp != split_locations([f"site{i}" for i in range(20)], seed=8)
    p = write_manifest(tmp_path / "m.json", sp, seed=7, fractions={"train": 0.8, "val": 0.1, "test": 0.1},
                       extra={"degradation": {"scale": 2}})
    doc = read_manifest(p)
    assert doc["splits"] == sp and doc["seed"] == 7 and [f.name for f in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(DataError, match="two splits"):
        write_manifest(tmp_path / "x.json", {"train": ["a"], "test": ["a"]}, seed=0)
    (tmp_path / "leak.json").write_text(json.dumps({"splits": {"train": ["a"], "test": ["a"]}}))
    with pytest.raises(DataError, match="leak.json"):
        read_manifest(tmp_path / "leak.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        read_manifest(tmp_path / "bad.json")
    with pytest.raises(DataError, match="no split"):
        assign_splits(["zz"], sp)


def test_split_dataset_by_location_writes_manifest(s2_10m, op, tmp_path) -> None:
    imgs = [{"image": s2_10m[:, :, :60] if i % 2 else s2_10m[:, :60], "location_id": f"loc{i}"} for i in range(10)]
    ds = WaldDataset(imgs, op, patch=30, stride=30)
    parts = split_dataset(ds, {"train": 0.6, "test": 0.4}, seed=5, manifest=tmp_path / "split.json")
    locs = {k: {ds[i].location_id for i in v.indices} for k, v in parts.items()}
    assert not locs["train"] & locs["test"] and len(locs["train"]) == 6 and len(locs["test"]) == 4
    assert sum(len(v) for v in parts.values()) == len(ds) == 80
    doc = read_manifest(tmp_path / "split.json")
    assert sorted(doc["splits"]["test"]) == sorted(locs["test"]) and len(doc["samples"]["train"]) == len(parts["train"])
    split_dataset(ds, {"train": 0.6, "test": 0.4}, seed=5, manifest=tmp_path / "again.json")
    assert read_manifest(tmp_path / "again.json") == doc  # reproducible from the seed
