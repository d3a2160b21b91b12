"""The built-in sample (BigEarthNet-S2 examples inside bigearthnet-common) equals the shared copy."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BEN, _need
from eosr.data import read_s2_band_folder, samples
from eosr.errors import DataError

pytest.importorskip("bigearthnet_common")


def test_builtin_sample_equals_shared_copy(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path / "cache"))
    names = samples.bigearthnet_patches()
    shared = sorted(p.name for p in _need(BEN).iterdir() if p.is_dir())
    assert names == shared and len(names) == 6
    for i, name in enumerate(names):
        a, b = samples.bigearthnet(name), read_s2_band_folder(BEN / name)
        assert a.resolutions == b.resolutions == [10, 20, 60]
        for g in a.resolutions:
            np.testing.assert_array_equal(a[g].data, b[g].data)
            assert a[g].transform == b[g].transform and a[g].crs == b[g].crs and a[g].band_names == b[g].band_names
        assert samples.bigearthnet(i).name == name
    # extracted once, atomically: only the final folder remains in the cache
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [samples.FOLDER]


def test_builtin_sample_cache_reuse_and_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EOSR_CACHE", str(tmp_path))
    d = samples.bigearthnet_dir()
    marker = d / "marker.txt"
    marker.write_text("x")
    assert samples.bigearthnet_dir() == d and marker.exists()  # not extracted again
    assert samples.cache_dir() == tmp_path
    with pytest.raises(DataError, match="no example patch 'nope'"):
        samples.bigearthnet("nope")
    with pytest.raises(DataError, match="outside"):
        samples.bigearthnet(6)
    monkeypatch.setattr(samples, "PACKAGE", "no_such_package_eosr")
    with pytest.raises(DataError, match="no_such_package_eosr"):
        samples.bigearthnet_dir(tmp_path / "other")
