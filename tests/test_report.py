"""The HTML report: self-contained, every number equal to results.json, and it renders in a real browser."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import BEN
from eosr.benchmark.report import fmt
from eosr.benchmark.runner import run_benchmark

METHODS = ["bicubic", "bp", "lanczos", "carn_m_var"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("report")
    cfg = tmp / "r.toml"
    cfg.write_text(f"""
name = "report-test"
bootstrap = 300
[[datasets]]
name = "ben"
kind = "wald"
path = "{BEN}"
limit = 2
[[methods]]
name = "bicubic"
[[methods]]
name = "bp"
model = "backprojection"
options = {{iterations = 3}}
[[methods]]
name = "lanczos"
[[methods]]
name = "carn_m_var"             # untrained CARN-M with a variance head: exercises the uncertainty maps
model = "carn_m"
options = {{bands = ["B02", "B03", "B04", "B08"], variance_head = "gaussian"}}
""")
    res = run_benchmark(cfg, tmp / "out", progress=False, allow_untrained=True)
    assert res.report is not None
    return res.report, json.loads((tmp / "out" / "results.json").read_text())


class _Cells(HTMLParser):
    """Collects <img> sources, links, and numeric cells of the leaderboard / summary tables."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.urls: list[str] = []
        self.table: dict[str, str] | None = None
        self.row: dict[str, str] = {}
        self.values: list[tuple[str, str, str, str, float]] = []  # (table, dataset, method, metric, value)
        self.methods: list[str] = []
        self._in_method = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if k in a and tag != "img":
                self.urls.append(a[k])
        if tag == "table":
            self.table = a
        elif tag == "tr":
            self.row = a
        elif tag == "td" and self.table is not None and "data-value" in a:
            cls = self.table.get("class", "")
            if cls == "leaderboard" and "data-metric" in a:
                self.values.append((cls, self.table["data-dataset"], self.row["data-method"], a["data-metric"],
                                    float(a["data-value"])))
            elif cls == "leaderboard" and "data-diff" in a:
                self.values.append(("diff", self.table["data-dataset"], self.row["data-method"], a["data-diff"],
                                    float(a["data-value"])))
            elif cls == "summary":
                self.values.append((cls, self.table["data-dataset"], a["data-method"], self.row["data-metric"],
                                    float(a["data-value"])))
        if tag == "td" and "method" in a.get("class", "").split():
            self._in_method = True

    def handle_data(self, data: str) -> None:
        if self._in_method:
            self.methods.append(data.strip())
            self._in_method = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None


def _parse(path: Path) -> _Cells:
    p = _Cells()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_numbers_in_the_report_equal_the_json(bench: tuple[Path, dict]) -> None:
    report, results = bench
    cells = _parse(report)
    summary = {(r["dataset"], r["method"], r["metric"]): r for r in results["summary"]}
    seen = {"leaderboard": 0, "diff": 0, "summary": 0}
    for table, ds, method, metric, value in cells.values:
        row = summary[(ds, method, metric)]
        expect = row["diff_mean"] if table == "diff" else row["mean"]
        assert value == expect, (table, method, metric)  # exact: the cell carries repr(float)
        seen[table] += 1
    n_metrics = len({r["metric"] for r in results["summary"]})
    assert seen["leaderboard"] == len(METHODS)
    assert seen["diff"] == len(METHODS) - 1  # the baseline has no difference to itself
    assert seen["summary"] == n_metrics * len(METHODS)


def test_leaderboard_lists_every_method_in_rank_order(bench: tuple[Path, dict]) -> None:
    report, results = bench
    cells = _parse(report)
    assert cells.methods == [r["method"] for r in results["leaderboard"]]
    assert sorted(cells.methods) == sorted(METHODS)


def test_report_is_self_contained_with_valid_pngs(bench: tuple[Path, dict]) -> None:
    from PIL import Image

    report, _ = bench
    text = report.read_text(encoding="utf-8")
    cells = _parse(report)
    assert len(cells.imgs) >= 6  # leaderboard, strata, triptych, spectra, maps, uncertainty
    for src in cells.imgs:
        assert src.startswith("data:image/png;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert im.size[0] > 100 and np.asarray(im).std() > 0
    assert all(u.startswith("#") for u in cells.urls)  # only in-page links
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "<script" not in text and "@import" not in text


def test_every_metric_has_a_definition(bench: tuple[Path, dict]) -> None:
    report, results = bench
    text = report.read_text(encoding="utf-8")
    for name in {r["metric"] for r in results["summary"]}:
        assert f"<code>{name}</code>" in text
    for needle in ("Radial power spectra", "Registration and radiometric bias", "Gradient strata", "hallucination",
                   'alt="uncertainty"'):
        assert needle in text


def test_trust_section_shows_maps_sparsification_and_calibration(bench: tuple[Path, dict]) -> None:
    report, _ = bench
    text = report.read_text(encoding="utf-8")
    for needle in ('id="trust"', 'alt="trust maps"', 'alt="sparsification"', 'class="calibration"',
                   "support share", "AUSE"):
        assert needle in text, needle
    row = re.search(r'<table class="calibration">.*?<td class="name">carn_m_var</td>(.*?)</tr>', text, re.S)
    assert row, "the calibration table lists the method with a variance head"
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    assert len(cells) == 7 and all(0.0 <= float(c) <= 1.0 for c in cells[:4])


def test_fmt() -> None:
    assert fmt(None) == "–" and fmt(float("nan")) == "–"
    assert fmt(38.4731) == "38.47" and fmt(0.95512) == "0.9551" and fmt(5.976e-05) == "5.976e-05"


# ------------------------------------------------------------------ the report in a real browser
_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var r = {n: imgs.length,
           loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
           methods: Array.prototype.map.call(document.querySelectorAll('table.leaderboard td.method'),
                                             function (t) { return t.textContent.trim(); })};
  var pre = document.createElement('pre');
  pre.id = 'eosr-probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars"]


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_report_renders_in_headless_chromium(bench: tuple[Path, dict], tmp_path: Path) -> None:
    exe = _browser()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium chromium-driver): browser test skipped")
    report, results = bench
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    flags = [*_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([exe, *flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    m = re.search(r'<pre id="eosr-probe">(.*?)</pre>', dom.stdout)
    assert m, f"the browser did not run the page: {dom.stderr[-500:]}"
    state = json.loads(m.group(1).replace("&quot;", '"'))
    assert state["n"] >= 5 and state["loaded"] == state["n"], state
    assert state["methods"] == [r["method"] for r in results["leaderboard"]]
    shot = Path(os.environ.get("EOSR_TEST_ARTIFACTS", tmp_path)) / "report_screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, *flags, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, text=True, timeout=120, check=False)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1280) and img.std() > 10  # not a blank page
