"""Results people can read (issue 14, item 7): ``EvaluationResult`` grouped table with directions and
units, a short repr, ``to_pandas``, an escaped HTML view, per-band values in every view; on a real
Sentinel-2 patch evaluated by ``eosr.evaluate``."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import eosr
from eosr.degrade import Degradation
from eosr.errors import EosrError
from eosr.evaluation import EvaluationResult
from eosr.evaluation.result import GROUP_NAMES, GROUPS, metric_group
from eosr.metrics.base import MetricInfo, MetricResult

BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def res(s2_10m: np.ndarray) -> EvaluationResult:
    """The bicubic x2 SR of the Sentinel-2 LR of a real BigEarthNet patch, every metric."""
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    lr = np.asarray(op(s2_10m))
    bic = F.interpolate(torch.from_numpy(lr)[None], scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    return eosr.evaluate(bic, s2_10m, lr, operator=op, maps=False)


@pytest.fixture(scope="module")
def perfect(s2_10m: np.ndarray) -> EvaluationResult:
    op = Degradation.from_sensor("sentinel2", BANDS, 2)
    return eosr.evaluate(s2_10m, s2_10m, operator=op, maps=False)


def with_extra(r: EvaluationResult, **metrics: MetricResult) -> EvaluationResult:
    return dataclasses.replace(r, metrics={**r.metrics, **metrics})


NAN_METRIC = MetricResult(MetricInfo("zz_custom", None, (0.0, 1.0)), math.nan, np.full(4, np.nan))


def _line(table: str, name: str) -> list[str]:
    return next(ln for ln in table.splitlines() if ln.split()[1:2] == [name]).split()


def test_groups_arrows_and_units_of_known_metrics(res: EvaluationResult) -> None:
    t = res.table()
    assert _line(t, "psnr")[:4] == ["↑", "psnr", f"{res.value('psnr'):.4f}", "dB"]
    assert _line(t, "rmse")[0] == "↓" and _line(t, "rmse")[3] == "reflectance"
    assert _line(t, "shift_x_px")[0] == "—" and _line(t, "shift_x_px")[3:5] == ["HR", "px"]
    assert _line(t, "gain")[0] == "—"
    assert _line(t, "effective_resolution_px")[0] == "↓" and _line(t, "frr")[3] == "%"
    assert _line(t, "hallucination")[0] == "↓" and _line(t, "improvement")[0] == "↑"
    # per-band values in band order, as MetricResult.per_band
    cells = _line(t, "psnr")[4:]
    assert cells == [f"{v:.4f}" for v in res["psnr"].per_band]
    assert t.splitlines()[0].split() == ["metric", "value", "unit", *BANDS]
    for name, group in (("psnr", "pixel"), ("ssim", "pixel"), ("lr_fidelity", "physical fidelity"),
                        ("hr_fidelity", "physical fidelity"), ("psnr_high_gradient", "gradient strata"),
                        ("frr_overshoot_db", "frequency"), ("effective_resolution_px", "frequency"),
                        ("psnr_aligned", "registration/radiometry"), ("bias", "registration/radiometry"),
                        ("omission", "hallucination"), ("lpips", "perceptual"),
                        ("uncertainty_ause", "uncertainty"), ("sam_deg_high_gradient", "gradient strata"),
                        ("something_new", "other")):
        assert metric_group(name) == group, name


def test_the_table_is_grouped_in_the_documented_order(res: EvaluationResult) -> None:
    t = with_extra(res, zz_custom=NAN_METRIC).table()
    lines = t.splitlines()
    headers = [ln for ln in lines if ln and not ln.startswith((" ", "metric", "↑ higher", "not computed"))]
    expected = [g for g in GROUP_NAMES if g in {metric_group(n) for n in res.metrics} | {"other"}]
    assert headers == expected  # pixel, physical fidelity, gradient strata, frequency, registration/..., other
    assert headers[:6] == ["pixel", "physical fidelity", "gradient strata", "frequency", "registration/radiometry",
                           "hallucination"]
    # inside a group the documented order: psnr, rmse, mae, ssim ...
    body = [ln.split()[1] for ln in lines if ln.startswith("  ")]
    known = [n for _, names in GROUPS for n in names if n in res.metrics]
    assert body[: len(known)] == known and body[-1] == "zz_custom"
    assert len(body) == len(res.metrics) + 1
    assert "↑ higher is better, ↓ lower is better, — diagnostic" in t


def test_nan_prints_as_nan_and_is_left_out_of_json(res: EvaluationResult) -> None:
    r = with_extra(res, zz_custom=NAN_METRIC)
    assert _line(r.table(), "zz_custom") == ["—", "zz_custom", "nan", "nan", "nan", "nan", "nan"]
    d = r.to_dict()
    assert "zz_custom" not in d["metrics"]
    json.dumps(d, allow_nan=False)
    df = r.to_pandas()
    row = df[df.metric == "zz_custom"].iloc[0]
    assert math.isnan(row["value"]) and math.isnan(row["B02"]) and row["better"] == "—"


def test_capped_psnr_prints_as_at_least_the_cap(perfect: EvaluationResult) -> None:
    t = perfect.table()
    assert _line(t, "psnr")[2:4] == ["≥120.0000", "dB"]
    assert _line(t, "psnr")[4:] == ["≥120.0000"] * 4
    assert _line(t, "rmse")[2] == "0.0000"  # not a PSNR: no mark
    assert "psnr≥120 dB" in repr(perfect)


def test_repr_is_short(res: EvaluationResult) -> None:
    r = repr(res)
    assert "\n" not in r and len(r) < 200
    assert r.startswith(f"EvaluationResult({len(res.metrics)} metrics, 4 bands B02,B03,B04,B08; psnr=")
    assert f"psnr={res.value('psnr'):.4g} dB" in r and "ssim=" in r and "hallucination=" in r


def test_to_pandas(res: EvaluationResult) -> None:
    df = res.to_pandas()
    assert list(df.columns) == ["metric", "group", "better", "higher_is_better", "value", "unit", "capped", *BANDS]
    assert list(df.metric) == [r["metric"] for r in res.rows()]
    assert len(df) == len(res.metrics)
    psnr = df.set_index("metric").loc["psnr"]
    assert psnr["group"] == "pixel" and psnr["better"] == "↑" and psnr["unit"] == "dB"
    assert psnr["value"] == res.value("psnr")
    np.testing.assert_array_equal(psnr[BANDS].to_numpy(float), res["psnr"].per_band)
    sam = df.set_index("metric").loc["sam_deg"]  # no per-band value: NaN in the band columns
    assert np.isnan(sam[BANDS].to_numpy(float)).all()
    assert df.attrs["bands"] == BANDS and df.attrs["data_range"] == 1.0


def test_to_pandas_without_pandas_is_one_clear_line(res: EvaluationResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(EosrError, match=r"needs pandas.*pip install pandas") as ei:
        res.to_pandas()
    assert "\n" not in str(ei.value)


def test_html_is_a_small_escaped_table(res: EvaluationResult) -> None:
    h = res._repr_html_()
    assert h.startswith('<table class="eosr-evaluation">') and h.count("<tr><td>") == len(res.metrics)
    assert '<th colspan="8" style="text-align:left">pixel</th>' in h
    assert '<td>psnr</td><td title="higher is better">↑</td>' in h
    evil = MetricResult(MetricInfo("<script>x</script>", True, (0.0, 1.0), unit="a&b"), 0.5, np.array([]))
    bad = dataclasses.replace(res, metrics={"<script>x</script>": evil}, bands=["<B1>", "B&2", "B3", "B4"],
                              info={"skipped": {"<i>": "needs <HR>"}})
    h = bad._repr_html_()
    assert "<script>" not in h and "&lt;script&gt;x&lt;/script&gt;" in h
    assert "&lt;B1&gt;" in h and "B&amp;2" in h and "a&amp;b" in h and "needs &lt;HR&gt;" in h
    assert "<i>" not in h


def test_per_band_values_reach_json_and_every_metric_has_its_group(res: EvaluationResult) -> None:
    d = json.loads(res.to_json())
    assert d["bands"] == BANDS
    m = d["metrics"]
    assert m["psnr"]["per_band"] == pytest.approx(list(res["psnr"].per_band))
    assert m["hallucination"]["per_band"] == pytest.approx(list(res["hallucination"].per_band))
    assert m["effective_resolution_px"]["group"] == "frequency" and m["gain"]["group"] == "registration/radiometry"
    assert list(m) == [r["metric"] for r in res.rows()]  # table order
