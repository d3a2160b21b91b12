"""Data for real LR-HR work: dataset readers, the Wald protocol, location splits, semi-simulated
multi-image sets, multi-image augmentation, frame registration and the built-in sample.

Every reader yields :class:`~eosr.data.sample.Sample` records and is a ``torch.utils.data.Dataset``.
Submodules are imported lazily, so ``import eosr.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sample": "sample",
    "DNScale": "sample",
    "collate_samples": "sample",
    "SampleDataset": "sample",
    "S2_10M": "s2bands",
    "S2_20M": "s2bands",
    "S2_60M": "s2bands",
    "S2Stacks": "s2bands",
    "read_s2_band_folder": "s2bands",
    "S2BandFolderDataset": "s2bands",
    "HVN2Scene": "matfiles",
    "read_hvn2_mat": "matfiles",
    "EOPatchS2": "eopatch",
    "read_eopatch_s2": "eopatch",
    "wald_pair": "wald",
    "patch_origins": "wald",
    "wald_samples": "wald",
    "WaldDataset": "wald",
    "split_locations": "splits",
    "assign_splits": "splits",
    "write_manifest": "splits",
    "read_manifest": "splits",
    "split_dataset": "splits",
    "Sen2VenusDataset": "sen2venus",
    "ProbaVDataset": "probav",
    "read_probav_norm": "probav",
    "WorldStratDataset": "worldstrat",
    "PairedGeoTiffDataset": "paired",
    "semi_simulated_set": "semisim",
    "SemiSimulatedDataset": "semisim",
    "valid_from_cloud_mask": "semisim",
    "MISRAugment": "augment",
    "register_frames": "register",
    "align_frames": "register",
    "check_registration": "register",
}

_SUBMODULES = {"samples", "sample", "s2bands", "matfiles", "eopatch", "wald", "splits", "sen2venus", "probav",
               "worldstrat", "paired", "semisim", "augment", "register"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"eosr.data.{name}")
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'eosr.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"eosr.data.{mod}"), name)
