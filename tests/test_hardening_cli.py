"""Issue 15, the CLI's error discipline and the private Dask cluster: usage errors of every command are a short
message with exit 2; SIGTERM/SIGHUP act as SIGINT (``interrupted``, exit 130, nothing left behind); a full disk
is one line with exit 2 and no partial file; ``sr --workers`` runs on a cluster only its own client can use."""

from __future__ import annotations

import asyncio
import builtins
import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from conftest import BEN, EOPATCH, SAT, ben_wald_dataset, call_cli
from eosr.cli.main import COMMANDS

PATCH = BEN / "S2A_MSIL2A_20170613T101031_87_48"
BANDS = ("B02", "B03", "B04", "B08")


def eosr(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "eosr.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def short_error(err: str, code: int, *, lines: int = 2) -> list[str]:
    """The stderr lines, after checking: exit 2, ``error: ...`` first, at most ``lines`` lines, no traceback."""
    out = err.strip().splitlines()
    assert code == 2, err
    assert out and out[0].startswith("error: ") and len(out) <= lines and "Traceback" not in err, err
    return out


# ---------------------------------------------------------------------------------------------- usage errors
#: per command: a missing argument (or an extra one where nothing is required), a bad value, a missing value
USAGE = {
    "sensors": [["sensors", "a", "b"], ["sensors", "--scale", "abc"], ["sensors", "--scale"]],
    "simulate": [["simulate", "hr.tif"], ["simulate", "a", "b", "--noise", "abc"], ["simulate", "a", "b", "--sensor"]],
    "evaluate": [["evaluate"], ["evaluate", "--sr", "x", "--scale", "1.5"], ["evaluate", "--sr"]],
    "models": [["models", "extra"], ["models", "--json=3"]],
    "sr": [["sr", "a"], ["sr", "a", "b", "--model", "x", "--tile", "big"], ["sr", "a", "b", "--model"]],
    "train": [["train"], ["train", "c.toml", "--epochs", "1.5"], ["train", "c.toml", "--epochs"]],
    "benchmark": [["benchmark"], ["benchmark", "c.toml", "--check=yes"], ["benchmark", "c.toml", "--out"]],
    "export": [["export", "m"], ["export", "m", "o.onnx", "--atol", "tiny"], ["export", "m", "o.onnx", "--opset"]],
    "explain": [["explain"], ["explain", "m", "--size", "x"], ["explain", "m", "--size"]],
    "demo": [["demo", "extra"], ["demo", "--limit", "two"], ["demo", "--limit"]],
    "calibrate": [["calibrate", "hr.tif"], ["calibrate", "a", "b", "--n-boot", "many"], ["calibrate", "a", "b",
                                                                                           "--json"]],
}
CASES = [(c, ["--bogus-option", "1"]) for c in COMMANDS] + [(c, a) for c in COMMANDS for a in USAGE.get(c, [])]


def test_every_command_has_usage_cases() -> None:
    assert set(USAGE) == set(COMMANDS)


@pytest.mark.parametrize(("cmd", "args"), CASES, ids=[" ".join(a[:1] + a[1:][-2:]) for _, a in CASES])
def test_usage_error_is_short_with_exit_2(cmd: str, args: list[str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, anyway
    argv = [cmd, *args] if args[0].startswith("--bogus") else args
    code = call_cli(argv)
    lines = short_error(capsys.readouterr().err, code)
    if args[0].startswith("--bogus"):
        assert lines[0].startswith("error: No such option: --bogus-option")
        assert lines[1] == f"try 'eosr {cmd} --help'"
    assert list(tmp_path.iterdir()) == []


def test_misspelled_option_in_a_real_process() -> None:
    p = eosr("sr", "in.tif", "out.tif", "--modle", "x")
    _, err = p.communicate(timeout=120)
    lines = short_error(err, p.returncode)
    assert lines == ["error: No such option: --modle (Possible options: --model, --tile)", "try 'eosr sr --help'"]


def test_no_command_prints_the_help_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert call_cli([]) == 2
    captured = capsys.readouterr()
    assert "simulate" in captured.out + captured.err and "Traceback" not in captured.err


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real Sentinel-2 10 m bands as HR (uint16), its simulated LR and a bicubic SR, made by the CLI."""
    d = tmp_path_factory.mktemp("scene")
    arrs, profile = [], {}
    for b in BANDS:
        with rasterio.open(next(PATCH.glob(f"*_{b}.tif"))) as ds:
            arrs.append(ds.read(1))
            profile = dict(crs=ds.crs, transform=ds.transform)
    with rasterio.open(d / "hr.tif", "w", driver="GTiff", width=120, height=120, count=4, dtype="uint16",
                       **profile) as ds:
        ds.write(np.stack(arrs))
        ds.descriptions = BANDS
    assert call_cli(["simulate", str(d / "hr.tif"), str(d / "lr.tif"), "--operator", "wald"]) == 0
    assert call_cli(["sr", str(d / "lr.tif"), str(d / "sr.tif"), "--model", "bicubic", "--scale", "2",
                     "--no-progress"]) == 0
    return {"hr": d / "hr.tif", "lr": d / "lr.tif", "sr": d / "sr.tif"}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_interrupt_like_ctrl_c(sig: str, tmp_path: Path) -> None:
    """A real `eosr sr` of a 1207 x 1254 Landsat band (thousands of small tiles), signalled mid-write."""
    src = SAT / "landsat8_LC80200392015216" / "l8_B8.tif"
    out = tmp_path / "out"
    out.mkdir()
    p = eosr("sr", str(src), str(out / "sr.tif"), "--model", "bicubic", "--scale", "2", "--tile", "24",
             "--dn-scale", "1.5e-5", "--no-progress")
    t0 = time.monotonic()
    while not any(out.iterdir()) and p.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    assert p.poll() is None and any(out.iterdir()), "the run ended before its temporary file appeared"
    p.send_signal(getattr(signal, sig))
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip() == "interrupted"
    assert files_under(out) == []


def test_signal_handlers_are_restored_after_main(scene: dict[str, Path], tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert call_cli(["models"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


# ---------------------------------------------------------------------------------------------- disk full
@pytest.fixture
def disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder ``out`` where every write fails with ENOSPC: Python files, GDAL rasters, torch and safetensors."""
    out = tmp_path / "out"
    out.mkdir()

    def full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class FullFile:
        """A file that opens (as on a full disk) but cannot take one byte."""

        def __init__(self, f: object) -> None:
            self._f = f

        def __getattr__(self, name: str) -> object:
            return getattr(self._f, name)

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *a: object) -> None:
            self._f.close()  # type: ignore[attr-defined]

        write = writelines = full

    real_open = builtins.open

    def open_(file: object, mode: str = "r", *a: object, **k: object) -> object:
        f = real_open(file, mode, *a, **k)  # type: ignore[call-overload]
        writing = set(mode) & set("wax+") and isinstance(file, str | os.PathLike)
        return FullFile(f) if writing and Path(file).resolve().is_relative_to(out) else f  # type: ignore[arg-type]

    import safetensors.torch
    import torch

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full)
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    return out


def train_config(tmp_path: Path, out: Path) -> Path:
    doc = f"""name = "tiny"
seed = 0
epochs = 1
steps_per_epoch = 1
batch_size = 2
patch = 32
stride = 16
progress = false
threads = 1
output = "{out}"
model = {{name = "carn_m", options = {{channels = 8}}}}
losses = [{{name = "l1"}}]
[data]
bands = ["B02", "B03", "B04", "B08"]
[[data.sources]]
kind = "eopatch"
path = "{EOPATCH}"
dates = [0]
window = [0, 64, 0, 100]
location = "north"
split = "train"
[[data.sources]]
kind = "eopatch"
path = "{EOPATCH}"
dates = [0]
window = [64, 100, 0, 100]
location = "south"
split = "val"
"""
    (tmp_path / "train.toml").write_text(doc)
    return tmp_path / "train.toml"


def bench_config(tmp_path: Path) -> Path:
    (tmp_path / "bench.toml").write_text(f"""name = "tiny"
bootstrap = 100
{ben_wald_dataset(1)}[[methods]]
name = "bicubic"
""")
    return tmp_path / "bench.toml"


RUNS = {
    "sr": lambda s, o, t: ["sr", str(s["lr"]), str(o / "sr.tif"), "--model", "bicubic", "--scale", "2",
                           "--no-progress"],
    "sr --cog": lambda s, o, t: ["sr", str(s["lr"]), str(o / "sr.tif"), "--model", "bicubic", "--scale", "2",
                                 "--no-progress", "--cog"],
    "simulate": lambda s, o, t: ["simulate", str(s["hr"]), str(o / "lr.tif"), "--operator", "wald"],
    "evaluate --json": lambda s, o, t: ["evaluate", "--sr", str(s["sr"]), "--hr", str(s["hr"]), "--lr", str(s["lr"]),
                                        "--json", str(o / "m.json"), "--quiet"],
    "evaluate --maps": lambda s, o, t: ["evaluate", "--sr", str(s["sr"]), "--hr", str(s["hr"]), "--lr", str(s["lr"]),
                                        "--maps", str(o / "maps"), "--quiet"],
    "benchmark": lambda s, o, t: ["benchmark", str(bench_config(t)), "--out", str(o / "b"), "--no-progress"],
    "train": lambda s, o, t: ["train", str(train_config(t, o / "t")), "--no-progress"],
    "explain": lambda s, o, t: ["explain", "rcan-ca", "--out", str(o / "x"), "--stimuli", "edge", "--size", "12",
                                "--ig-steps", "2", "--erf-samples", "1"],
}


WRITES = {"sr": "sr.tif", "sr --cog": "sr.tif", "simulate": "lr.tif", "evaluate --json": "m.json"}


@pytest.mark.parametrize("run", list(RUNS))
def test_disk_full_is_one_line_exit_2_no_partial_file(run: str, scene: dict[str, Path], disk_full: Path,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = call_cli(RUNS[run](scene, disk_full, tmp_path))
    (line,) = short_error(capsys.readouterr().err, code, lines=1)
    assert line.startswith("error: no space left on device"), line
    if run in WRITES:  # the output whose temporary file was being written
        assert line == f"error: no space left on device writing {WRITES[run]}"
    assert files_under(disk_full) == []


# ---------------------------------------------------------------------------------------------- Dask
def test_workers_out_of_range_refused_before_any_work(scene: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from eosr.scene.sr import max_local_workers

    for n, want in (("0", "workers must be an integer >= 1, got 0"),
                    (str(max_local_workers() + 1), f"workers must be <= {max_local_workers()} on this machine")):
        code = call_cli(["sr", str(scene["lr"]), str(tmp_path / "o.tif"), "--model", "bicubic", "--workers", n])
        (line,) = short_error(capsys.readouterr().err, code, lines=1)
        assert line.startswith(f"error: {want}"), line
    assert list(tmp_path.iterdir()) == []


def test_without_cryptography_a_local_cluster_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import Security

    from eosr.errors import ConfigError
    from eosr.scene.sr import local_cluster

    def missing() -> None:
        raise ImportError("No module named 'cryptography'")

    monkeypatch.setattr(Security, "temporary", staticmethod(missing))
    with pytest.raises(ConfigError, match="needs the package 'cryptography'"):
        local_cluster(1)


async def _outsider(address: str, **connection_args: object) -> str:
    """What a process without this run's certificate gets from the scheduler: 'refused' or its identity."""
    from distributed.comm import connect

    try:
        comm = await connect(address, timeout=10, **connection_args)
        await comm.write({"op": "identity"})
        reply = await asyncio.wait_for(comm.read(), 10)
        await comm.close()
    except Exception:
        return "refused"
    return f"answered {reply}"


def test_sr_workers_runs_on_a_private_cluster(scene: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`eosr sr --workers 2`: same output as one process; during the run an outside client (plain TCP, or TLS
    with another certificate) is refused, nothing listens for HTTP; after it no worker process is left."""
    import http.client
    import urllib.error
    import urllib.request

    import psutil
    from distributed import Security

    import eosr.scene.sr as scene_sr

    seen: dict[str, object] = {}
    real = scene_sr.local_cluster

    def spy(workers: int) -> tuple[object, object]:
        cluster, client = real(workers)
        address = cluster.scheduler_address  # type: ignore[attr-defined]
        seen["address"] = address
        seen["plain"] = asyncio.run(_outsider(address.replace("tls://", "tcp://")))
        seen["stranger"] = asyncio.run(_outsider(address, **Security.temporary().get_connection_args("client")))
        seen["own"] = asyncio.run(_outsider(address, **client.security.get_connection_args("client")))  # type: ignore[attr-defined]
        procs = psutil.Process().children(recursive=True)
        seen["workers"] = [p for p in procs if "spawn_main" in " ".join(p.cmdline())]
        seen["children"] = procs
        seen["cmdlines"] = [" ".join(p.cmdline()) for p in procs]
        ports = {c.laddr.port for p in [psutil.Process(), *procs] for c in p.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
        http_ports = []
        for port in ports:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                http_ports.append(port)
            except urllib.error.HTTPError:  # an HTTP server answered, if only 404
                http_ports.append(port)
            except (OSError, http.client.HTTPException):  # not HTTP (Dask's TLS comm)
                pass
        seen["http"] = http_ports
        seen["alloc"] = client.run(lambda: __import__("eosr._alloc", fromlist=["_kept"])._kept)  # type: ignore[attr-defined]
        return cluster, client

    monkeypatch.setattr(scene_sr, "local_cluster", spy)
    code = call_cli(["sr", str(scene["lr"]), str(tmp_path / "dask.tif"), "--model", "bicubic", "--scale", "2",
                     "--no-progress", "--workers", "2"])
    assert code == 0
    assert seen["plain"] == "refused" and seen["stranger"] == "refused"
    assert str(seen["address"]).startswith("tls://127.0.0.1:")
    assert str(seen["own"]).startswith("answered")  # the check can fail: the run's own credentials get through
    assert seen["http"] == []
    from eosr import _alloc

    glibc = _alloc._libc() is not None  # buffers kept in the workers where the allocator is glibc's
    assert list(seen["alloc"].values()) == [glibc, glibc]  # type: ignore[attr-defined]
    workers = seen["workers"]
    assert len(workers) >= 2  # type: ignore[arg-type]
    children = seen["children"]
    assert any("resource_tracker" in c for c in seen["cmdlines"])  # type: ignore[attr-defined]
    psutil.wait_procs(children, timeout=10)  # type: ignore[arg-type]
    assert [p.pid for p in children if p.is_running()] == []  # type: ignore[attr-defined]
    with rasterio.open(scene["sr"]) as a, rasterio.open(tmp_path / "dask.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
