"""Patches per second delivered by a torch DataLoader (0 vs 2 workers) over eosr.data datasets.

Real imagery, built-in samples (eosr.data.samples):
  * Wald patches (in memory) of the s2_ssc_cnn_hvn2 CoastalA 10 m bands, 64 px HR / 32 px LR, x2;
  * S2 band folders read lazily from GeoTIFFs (BigEarthNet examples, 20 m + 10 m stacks);
  * semi-simulated multi-image patches (8 frames, real eo-learn clouds) simulated on the fly.
Prints patches/s for each, the 2-worker / 0-worker ratio, and the peak RSS (parent and workers).

    .venv/bin/python benchmarks/bench_dataloader.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from eosr.data import (
    S2BandFolderDataset,
    SemiSimulatedDataset,
    WaldDataset,
    collate_samples,
    read_hvn2_mat,
    valid_from_cloud_mask,
)
from eosr.data.samples import path as sample
from eosr.degrade import Degradation


def rate(ds: torch.utils.data.Dataset, workers: int, batch: int, epochs: int) -> float:
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_samples,
                    persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    n = 0
    for _ in dl:  # warm-up epoch (worker start-up, caches)
        pass
    t = time.perf_counter()
    for _ in range(epochs):
        for b in dl:
            n += b["lr"].shape[0]
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bands = ["B02", "B03", "B04", "B08"]
    coastal = read_hvn2_mat(sample("s2_ssc_cnn_hvn2") / "CoastalA_cell.mat").stacks[10]
    op = Degradation.from_sensor("sentinel2", bands, 2, wald=True)
    clear = valid_from_cloud_mask(np.load(sample("eolearn_testeopatch_s2") / "CLM.npy"))
    sets = {
        "wald x2 in memory (64 px HR)": (WaldDataset([{"image": coastal, "location_id": "coastalA"}], op,
                                                      patch=64, stride=32), 16),
        "S2 band folders, lazy GeoTIFF": (S2BandFolderDataset(sample("bigearthnet_s2_examples")), 2),
        "semi-simulated 8 frames (64 px HR)": (SemiSimulatedDataset(
            [{"image": coastal, "location_id": "coastalA"}], Degradation.from_sensor("sentinel2", bands, 2), 8,
            patch=64, stride=64, clear_masks=clear, max_shift_lr=0.5), 4),
    }
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, 1 torch thread per process, {args.epochs} epochs")
    for name, (ds, batch) in sets.items():
        r0 = rate(ds, 0, batch, args.epochs)
        r2 = rate(ds, 2, batch, args.epochs)
        print(f"{name:38s} n={len(ds):4d}  0 workers {r0:9.1f} patches/s   2 workers {r2:9.1f} patches/s"
              f"   ratio {r2 / r0:5.2f}")
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: main {me:.0f} MB, largest worker {kids:.0f} MB")


if __name__ == "__main__":
    main()
