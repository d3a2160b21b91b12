"""A small benchmark on real Sentinel-2 patches runs end to end, writes every output, and re-runs from its cache."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import BEN, ben_wald_dataset, read_s2_10m
from eosr import SCHEMA_VERSION
from eosr.benchmark.runner import run_benchmark
from eosr.cli.main import main

PATCHES = ["S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_36_85"]
OUTPUTS = ["config.toml", "config.json", "versions.json", "results.json", "report.html", "per_image.csv",
           "per_image.json", "per_image.parquet", "summary.csv", "summary.json", "summary.parquet",
           "leaderboard.csv", "leaderboard.json"]


def write_oracle(folder: Path) -> None:
    """SR produced 'elsewhere': the HR reference itself, as 4-band float32 GeoTIFFs named by patch."""
    import rasterio

    (folder / "ben").mkdir(parents=True)
    for p in PATCHES:
        hr = read_s2_10m(BEN / p).astype(np.float32)
        with rasterio.open(next((BEN / p).glob("*_B02.tif"))) as src:
            crs, transform = src.crs, src.transform
        with rasterio.open(folder / "ben" / f"{p}.tif", "w", driver="GTiff", width=hr.shape[2], height=hr.shape[1],
                           count=4, dtype="float32", crs=crs, transform=transform) as ds:
            ds.write(hr)


def make_config(tmp: Path, metrics: str = "") -> Path:
    write_oracle(tmp / "oracle")
    text = f"""
name = "small"
bootstrap = 500
{metrics}
{ben_wald_dataset(2)}
[[methods]]
name = "bicubic"

[[methods]]
name = "bp"
model = "backprojection"
options = {{iterations = 4}}

[[methods]]
name = "oracle"
folder = "oracle"
"""
    p = tmp / "small.toml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("bench")
    cfg = make_config(tmp)
    res = run_benchmark(cfg, tmp / "out", progress=False)
    return tmp, cfg, res


def _summary(res: object, method: str, metric: str) -> dict:
    return next(r for r in res.results["summary"] if r["method"] == method and r["metric"] == metric)  # type: ignore[attr-defined]


def test_every_output_file_is_written(run: tuple) -> None:
    tmp, cfg, res = run
    for name in OUTPUTS:
        assert (tmp / "out" / name).is_file(), name
    assert (tmp / "out" / "config.toml").read_text() == cfg.read_text()
    ver = json.loads((tmp / "out" / "versions.json").read_text())
    assert ver["eosr"] and ver["torch"] and ver["numpy"]
    for name in OUTPUTS:  # every JSON output is versioned; row tables are {"schema_version", "<name>": [rows]}
        if name.endswith(".json"):
            doc = json.loads((tmp / "out" / name).read_text())
            assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSION, name
    for name in ("per_image", "summary", "leaderboard"):
        assert json.loads((tmp / "out" / f"{name}.json").read_text())[name] == res.results[name]
    assert res.counts["sr_computed"] == 2 * 3 and res.counts["scores_computed"] == 2 * 3


def test_json_is_strict_and_tables_agree(run: tuple) -> None:
    tmp, _, res = run

    def no_nan(s: str) -> None:
        raise AssertionError(f"non-strict JSON constant {s}")

    out = tmp / "out"
    results = json.loads((out / "results.json").read_text(), parse_constant=no_nan)
    rows = results["per_image"]
    assert {(r["image"], r["method"]) for r in rows} == {(p, m) for p in PATCHES for m in ("bicubic", "bp", "oracle")}
    with open(out / "per_image.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [float(r["value"]) for r in csv_rows] == [r["value"] for r in rows]
    import pyarrow.parquet as pq

    assert pq.read_table(out / "summary.parquet").to_pylist() == results["summary"]
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["schema_version"] == results["schema_version"] == SCHEMA_VERSION
    assert board["leaderboard"] == results["leaderboard"]
    assert [r["method"] for r in board["leaderboard"]] == ["oracle", "bp", "bicubic"]  # ranked by PSNR


def test_per_image_outputs_carry_per_band_values(run: tuple) -> None:
    """Long format: band "all" holds the metric's value over all bands (what the summary uses), then one
    row per band with the per-band value, in csv, json and parquet alike."""
    import pyarrow.parquet as pq

    tmp, _, res = run
    out = tmp / "out"
    rows = res.results["per_image"]
    assert {r["band"] for r in rows} == {"all", "B02", "B03", "B04", "B08"}
    one = [r for r in rows if r["image"] == PATCHES[0] and r["method"] == "bicubic" and r["metric"] == "psnr"]
    assert [r["band"] for r in one] == ["all", "B02", "B03", "B04", "B08"]
    # the per-band PSNR is each band's own 10 log10(1 / MSE_b) and the "all" value pools the MSE
    per_band = [r["value"] for r in one[1:]]
    mse_b = [10 ** (-v / 10) for v in per_band]
    assert one[0]["value"] == pytest.approx(10 * np.log10(1 / np.mean(mse_b)), abs=1e-9)
    assert min(per_band) < one[0]["value"] < max(per_band)
    # the oracle (SR = HR) sits at the one 120 dB cap in every band
    orc = [r for r in rows if r["method"] == "oracle" and r["metric"] == "psnr"]
    assert len(orc) == 2 * 5 and all(r["value"] == 120.0 for r in orc)
    # SAM has no per-band value: only its "all" row
    assert {r["band"] for r in rows if r["metric"] == "sam_deg"} == {"all"}
    with open(out / "per_image.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert list(csv_rows[0]) == ["dataset", "image", "method", "metric", "band", "value"]
    assert [(r["band"], float(r["value"])) for r in csv_rows] == [(r["band"], r["value"]) for r in rows]
    assert pq.read_table(out / "per_image.parquet").to_pylist() == rows
    # the summary is over the "all" rows only
    bic = _summary(res, "bicubic", "psnr")
    alls = [r["value"] for r in rows if r["method"] == "bicubic" and r["metric"] == "psnr" and r["band"] == "all"]
    assert bic["mean"] == pytest.approx(np.mean(alls), abs=1e-12) and bic["n"] == 2


def test_known_answers_on_real_data(run: tuple) -> None:
    _, _, res = run
    # SR = HR: PSNR capped (flagged), LR fidelity 0 (LR came from the same operator), no hallucination.
    assert _summary(res, "oracle", "psnr")["mean"] >= 100.0
    assert _summary(res, "oracle", "lr_fidelity")["mean"] < 1e-6
    assert _summary(res, "oracle", "hallucination")["mean"] < 1e-3
    assert _summary(res, "oracle", "improvement")["mean"] > 0.999
    assert abs(_summary(res, "oracle", "shift_x_px")["mean"]) < 0.01
    assert _summary(res, "oracle", "gain")["mean"] == pytest.approx(1.0, abs=1e-3)
    # bicubic adds (almost) nothing and misses the high-gradient detail
    assert _summary(res, "bicubic", "hallucination")["mean"] < 0.05
    assert _summary(res, "bicubic", "omission")["mean"] > 0.9
    low, high = _summary(res, "bicubic", "psnr_low_gradient"), _summary(res, "bicubic", "psnr_high_gradient")
    assert high["mean"] < low["mean"] - 5
    # back-projection is consistent with the LR and beats bicubic in every pair of images
    bp = _summary(res, "bp", "psnr")
    assert bp["diff_mean"] > 0.5 and bp["diff_ci_low"] > 0
    assert _summary(res, "bp", "lr_fidelity")["mean"] < 0.5 * _summary(res, "bicubic", "lr_fidelity")["mean"]
    assert _summary(res, "bicubic", "psnr")["diff_mean"] is None  # the baseline has no difference to itself


def test_second_run_is_served_from_the_cache(run: tuple) -> None:
    tmp, cfg, res = run
    again = run_benchmark(cfg, tmp / "out", progress=False, report=False)
    assert again.counts == {"sr_computed": 0, "sr_cached": 0, "scores_computed": 0, "scores_cached": 6,
                            "cache_invalid": 0}
    assert again.results["summary"] == res.results["summary"]


def test_resume_recomputes_only_what_is_missing(run: tuple) -> None:
    tmp, cfg, res = run
    cache = tmp / "out" / "cache"
    victim = sorted((cache / "scores").rglob("*.json"))[0]
    victim.unlink()  # as if the run was interrupted before this image was scored
    again = run_benchmark(cfg, tmp / "out", progress=False, report=False)
    assert again.counts["scores_computed"] == 1 and again.counts["sr_cached"] == 1
    assert again.counts["sr_computed"] == 0
    assert again.results["per_image"] == res.results["per_image"]


def test_changed_metrics_reuse_the_sr_outputs(run: tuple) -> None:
    tmp, cfg, _ = run
    text = cfg.read_text().replace('name = "small"', 'name = "small"\nmetrics = ["psnr", "ssim"]')
    cfg2 = tmp / "metrics.toml"
    cfg2.write_text(text)
    res = run_benchmark(cfg2, tmp / "out", progress=False, report=False)
    assert res.counts["sr_computed"] == 0 and res.counts["sr_cached"] == 6
    assert {r["metric"] for r in res.results["per_image"]} == {"psnr", "ssim"}


def test_cli_runs_a_benchmark(run: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    tmp, cfg, _ = run
    with pytest.raises(SystemExit) as ei:
        main(["benchmark", str(cfg), "--out", str(tmp / "out"), "--no-report", "--no-progress"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "bicubic" in out and "from the cache" in out


def test_radiometry_is_recorded_per_dataset_in_json_and_report(run: tuple) -> None:
    """The DN -> reflectance rule each dataset resolved to is in results.json and the report's dataset table."""
    tmp, cfg, _ = run
    run_benchmark(cfg, tmp / "out", progress=False)  # from the cache; the --no-report re-runs above removed the report
    rad = json.loads((tmp / "out" / "results.json").read_text())["datasets"][0]["radiometry"]
    assert rad == [{"dn_scale": 1e-4, "dn_offset": 0.0, "rule": "Sentinel-2 convention", "files": 2 * 4}]
    html = (tmp / "out" / "report.html").read_text()
    table = html[html.index('id="datasets-table"'):]
    table = table[: table.index("</table>")]
    assert "Sentinel-2 convention: scale 0.0001</td>" in table and "radiometry" in table


def test_inference_mode_is_stated_single_pass_by_default(run: tuple) -> None:
    """Every method says how it ran (issue 16: one pass unless ``self_ensemble = true``), in results and report."""
    tmp, cfg, _ = run
    res = run_benchmark(cfg, tmp / "out", progress=False)  # from the cache, with the report
    methods = {m["name"]: m for m in res.results["methods"]}
    assert methods["bicubic"]["inference"] == methods["bp"]["inference"] == "single pass"
    html = (tmp / "out" / "report.html").read_text()
    assert 'id="inference"' in html and "bp: single pass" in html and "oracle: outputs produced elsewhere" in html


def test_self_ensemble_option_is_refused_for_a_model_without_one(tmp_path: Path) -> None:
    from eosr.benchmark.config import MethodConfig
    from eosr.benchmark.methods import _one_pass_unless
    from eosr.errors import ModelError
    from eosr.models import get_model

    carn = get_model("carn_m", scale=2, n_bands=4, self_ensemble=True)
    assert _one_pass_unless(MethodConfig(name="c", model="carn_m"), carn).self_ensemble is False
    assert _one_pass_unless(MethodConfig(name="c", model="carn_m", self_ensemble=True), carn).self_ensemble is True
    with pytest.raises(ModelError, match="no self-ensemble option"):
        _one_pass_unless(MethodConfig(name="b", model="bicubic", self_ensemble=True), get_model("bicubic"))


def test_images_run_two_at_a_time_on_one_torch_thread_when_small() -> None:
    """Small images: two threads, torch on one intra-op thread, results in image order; a large first image
    keeps them sequential with torch's threads restored; torch's setting is restored after either."""
    import threading
    import time

    import torch

    from eosr.benchmark.runner import SMALL_IMAGE_PIXELS, _map_images

    before = torch.get_num_threads()
    for pixels, parallel in ((120 * 120, True), (SMALL_IMAGE_PIXELS + 1, False)):
        seen: list[tuple[int, str, int]] = []

        def fn(i: int, ref: object, pixels: int = pixels, seen: list = seen) -> tuple[list, dict, int]:
            seen.append((i, threading.current_thread().name, torch.get_num_threads()))
            time.sleep(0.05 * (5 - i))  # later images finish first: order must still hold
            return [i], {"n": 1}, pixels

        out = list(_map_images(fn, ["a", "b", "c", "d", "e"]))  # type: ignore[list-item]
        assert [r for r, _ in out] == [[0], [1], [2], [3], [4]]
        names = {name for _, name, _ in seen}
        assert any(n.startswith("eosr-bench") for n in names) == (parallel and (os.cpu_count() or 1) >= 2)
        assert seen[0][2] == 1 and all(t == (1 if parallel else before) for _, _, t in seen[1:])
        assert torch.get_num_threads() == before
