"""``eosr.evaluate(metrics=...)``: a selection computes only what it names, with the full run's values."""

from __future__ import annotations

import pytest

import eosr
from eosr.errors import EosrError
from eosr.evaluation.core import METRIC_GROUPS, resolve_metrics

BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def full(eval_triplet):
    sr, hr, lr = eval_triplet
    return eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS)


@pytest.mark.parametrize("sel", [*METRIC_GROUPS, "psnr", "ssim_high_gradient,gain", ["frr", "sam_lr_deg"],
                                 "hallucination"])
def test_selection_equals_the_full_run(eval_triplet, full, sel) -> None:
    sr, hr, lr = eval_triplet
    names = resolve_metrics(sel)
    assert names is not None
    res = eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS, metrics=sel)
    expect = names & set(full.metrics)
    assert set(res.metrics) == expect
    for k in expect:
        assert res.value(k) == full.value(k), k


def test_selection_skips_unneeded_maps(eval_triplet) -> None:
    sr, hr, lr = eval_triplet
    res = eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS, metrics="standard")
    assert set(res.maps) == {"error"}
    res = eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS, metrics=["gain"])
    assert set(res.metrics) == {"gain"} and not res.maps


def test_groups_cover_every_default_metric(full) -> None:
    every = {n for names in METRIC_GROUPS.values() for n in names}
    assert set(full.metrics) <= every


@pytest.mark.parametrize("bad", ["psnr,nope", "", ["standard", "PSNR"]])
def test_unknown_name_is_one_line_error(eval_triplet, bad) -> None:
    sr, hr, lr = eval_triplet
    with pytest.raises(EosrError) as e:
        eosr.evaluate(sr, hr, lr, sensor="sentinel2", bands=BANDS, metrics=bad)
    msg = str(e.value)
    assert "\n" not in msg
    if bad:
        assert "valid groups: standard" in msg and "psnr" in msg


def test_cli_metrics_option(tmp_path, hr_tif) -> None:
    """``eosr evaluate --metrics``: the JSON holds the selection; an unknown name is exit code 2."""
    import json

    from conftest import call_cli

    out = tmp_path / "m.json"
    assert call_cli(["evaluate", "--sr", str(hr_tif), "--hr", str(hr_tif), "--scale", "2",
                     "--metrics", "psnr,ssim", "--json", str(out), "--quiet"]) == 0
    assert set(json.loads(out.read_text())["metrics"]) == {"psnr", "ssim"}
    assert call_cli(["evaluate", "--sr", str(hr_tif), "--hr", str(hr_tif), "--metrics", "nope"]) == 2
