"""``eosr demo``: the main job on the built-in BigEarthNet-S2 patches, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eosr.benchmark.demo import DEMO_CNN, cnn_available, demo_config
from eosr.cli.main import main


def test_demo_config_is_the_issue_protocol() -> None:
    cfg, notes = demo_config(with_cnn=False)
    assert cfg.datasets[0].limit is None  # all six patches by default
    d = cfg.datasets[0]
    assert (d.kind, d.sensor, d.bands, d.scale) == ("samples", "sentinel2", ["B02", "B03", "B04", "B08"], 2)
    assert [m.name for m in cfg.methods] == ["bicubic", "backprojection"]
    assert notes and DEMO_CNN in notes[0] and "not installed" in notes[0]
    cfg2, notes2 = demo_config(with_cnn=True)
    assert [m.name for m in cfg2.methods][-1] == DEMO_CNN and not notes2


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bigearthnet_common", reason="the demo data ship with bigearthnet-common")
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as ei:
        main(["demo", "--out", str(out), "--no-progress", "--limit", "2"])  # the full run is timed, not tested
    assert ei.value.code == 0
    text = capsys.readouterr().out
    assert f"Report:  {out / 'report.html'}" in " ".join(text.split()) or str(out / "report.html") in text
    results = json.loads((out / "results.json").read_text())
    assert results["datasets"][0]["n_images"] == 2
    assert results["datasets"][0]["kind"] == "samples" and results["datasets"][0]["operator"] == "wald"
    names = [r["method"] for r in results["leaderboard"]]
    expected = {"bicubic", "backprojection"} | ({DEMO_CNN} if cnn_available() else set())
    assert set(names) == expected
    for n in names:
        assert n in text
    if not cnn_available():
        assert "not installed" in text
    assert (out / "report.html").stat().st_size > 50_000
    assert (out / "config.toml").read_text().count("[[methods]]") == len(expected)


def test_demo_rejects_a_bad_operator(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["demo", "--operator", "box"])
    assert ei.value.code == 2
    assert capsys.readouterr().err == "error: --operator must be 'wald' or 'full', got 'box'\n"
