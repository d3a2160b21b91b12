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
from eosr.benchmark.numbers import column_format, fmt
from eosr.benchmark.runner import run_benchmark
from eosr.benchmark.viewer import decode, encode

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
    assert "@import" not in text and "url(" not in text and not re.search(r"(https?|ftp|wss?):", text)
    scripts = re.findall(r"<script([^>]*)>", text)  # the viewer's data and code, both inline
    assert scripts == [' type="application/json" id="eosr-viewer-data"', ""], scripts
    assert "Content-Security-Policy" in text and "default-src 'none'" in text  # the browser refuses any request


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


def test_one_format_per_column_and_noise_shown_as_approximately_zero() -> None:
    f = column_format([40.58, 37.2, 39.9412])
    assert [f(v) for v in (40.58, 37.2, 39.9412)] == ["40.58", "37.20", "39.94"]  # same decimals in the column
    g = column_format([0.9733, 0.9443, -5.782e-19])
    assert g(-5.782e-19) == "≈ 0" and g(0.9443) == "0.9443" and g(0.00003) == "≈ 0"  # below the last digit
    h = column_format([446.8, 0.2, 0.015])  # one large value does not hide the small ones
    assert [h(v) for v in (446.8, 0.2, 0.015)] == ["446.800", "0.200", "0.015"]
    assert column_format([1.4e-4, -7.9e-6])(-7.9e-6) == "-7.900e-06"  # small column: scientific, not "≈ 0"
    assert column_format([120.0, 41.0], cap=120.0)(120.0) == "≥ 120 (cap)"
    assert g(0.02, signed=True) == "+0.0200" and g(None) == "–"


def test_viewer_encoding_is_exact_to_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.05, 1.2, (4, 30, 20))
    x[1, 3, 4] = np.nan
    enc = encode(x)
    assert enc["step"] == 1e-4 and len(base64.b64decode(enc["data"])) == 2 * x.size  # 2 bytes per value
    y = decode(enc)
    assert np.isnan(y[1, 3, 4]) and np.nanmax(np.abs(y - x)) <= 0.5e-4 + 1e-12
    wide = encode(np.array([[[0.0, 10.0]]]))  # more than 65535 steps: a coarser step, stated
    assert wide["step"] > 1e-4 and np.allclose(decode(wide), [[[0.0, 10.0]]], atol=wide["step"] / 2)


def test_report_without_enough_images_omits_confidence_intervals(bench: tuple[Path, dict]) -> None:
    report, results = bench
    text = report.read_text(encoding="utf-8")
    assert results["datasets"][0]["n_images"] == 2
    assert 'class="note ci-note"' in text and "confidence intervals omitted" in text
    assert not re.findall(r'<span class="ci">\[', text)  # no degenerate [v, v] intervals


def test_report_has_per_image_and_per_band_tables(bench: tuple[Path, dict]) -> None:
    report, results = bench
    text = report.read_text(encoding="utf-8")
    per_image = re.search(r'<table class="per-image sortable".*?</table>', text, re.S)
    assert per_image and all(f"<code>{i}</code>" in per_image.group(0) for i in results["datasets"][0]["images"])
    long = re.search(r'<table class="per-image-all sortable".*?</table>', text, re.S)
    assert long and long.group(0).count("<tr><td") == len(results["datasets"][0]["images"]) * len(METHODS)
    per_band = re.search(r'<table class="per-band sortable".*?</table>', text, re.S)
    assert per_band
    bands = sorted({r["band"] for r in results["per_image"]} - {"all"})
    assert bands and all(f"<th>{b}</th>" in per_band.group(0) for b in bands)
    psnr_b = [r["value"] for r in results["per_image"] if r["method"] == "bicubic" and r["metric"] == "psnr"
              and r["band"] == bands[0]]
    row = re.search(r'<tr data-metric="psnr" data-method="bicubic">.*?data-value="([^"]+)"', per_band.group(0))
    assert row and float(row.group(1)) == pytest.approx(np.mean(psnr_b), rel=1e-12)
    assert 'alt="paired differences per image' in text
    assert "see docs" not in text  # every metric carries its own how-to-read line


# ------------------------------------------------------------------ the report in a real browser
# The first probe listens, from the top of <head>, for any request the page's Content-Security-Policy
# refuses; the second drives the viewer after load (the slider, the band combination, the zoom, the
# cursor read-out, a table sort) and writes what it saw into <pre id="eosr-probe"> for --dump-dom.
_LISTEN = """<script>
window.eosrBlocked = [];
document.addEventListener('securitypolicyviolation', function (e) { window.eosrBlocked.push(e.blockedURI); });
</script>"""

_PROBE = """<script>
window.addEventListener('load', function () {
  function hash(cv, x0, x1) {  // sum of the pixels of a vertical strip (fractions of the width)
    var d = cv.getContext('2d').getImageData(Math.floor(x0 * cv.width), 0,
                                             Math.max(1, Math.floor((x1 - x0) * cv.width)), cv.height).data;
    var s = 0; for (var i = 0; i < d.length; i++) { s += d[i] * ((i % 7) + 1); } return s;
  }
  function fire(el, type) { el.dispatchEvent(new Event(type, {bubbles: true})); }
  var r = {errors: []};
  try {
    var imgs = Array.prototype.slice.call(document.images);
    r.n = imgs.length;
    r.loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    r.methods = Array.prototype.map.call(document.querySelectorAll('table.leaderboard td.method'),
                                         function (t) { return t.textContent.trim(); });
    var swipe = document.getElementById('v-swipe');
    var hr = document.querySelector('canvas.v-panel[data-src="layer:HR"]');
    var lr = document.querySelector('canvas.v-panel[data-src="layer:LR"]');
    r.panels = document.querySelectorAll('canvas.v-panel').length;
    r.panel_width = hr.getBoundingClientRect().width;
    r.swipe0 = hash(swipe, 0.6, 0.9);
    var split = document.getElementById('v-split'); split.value = 95; fire(split, 'input');
    r.swipe1 = hash(swipe, 0.6, 0.9);  // now layer A where layer B was
    r.hr0 = hash(hr, 0, 1); r.lr0 = hash(lr, 0, 1);
    var combo = document.getElementById('v-combo'); combo.value = 'false'; fire(combo, 'change');
    r.hr1 = hash(hr, 0, 1);
    r.combo = window.eosrViewer.state().combo;
    document.getElementById('v-zoom-in').click();
    r.hr2 = hash(hr, 0, 1); r.lr2 = hash(lr, 0, 1);
    r.zoom = window.eosrViewer.state().z;
    var q = lr.getBoundingClientRect(), cx0 = window.eosrViewer.state().cx;  // drag on LR pans every panel
    function mouse(el, type, dx) { el.dispatchEvent(new MouseEvent(type, {clientX: q.left + q.width / 2 + dx,
                                                    clientY: q.top + q.height / 2, bubbles: true})); }
    mouse(lr, 'mousedown', 0); mouse(lr, 'mousemove', 30); mouse(lr, 'mouseup', 30);
    r.panned = cx0 - window.eosrViewer.state().cx; r.hr_pan = hash(hr, 0, 1);
    document.getElementById('v-reset').click();
    var b = hr.getBoundingClientRect();
    hr.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + 0.3 * b.width, clientY: b.top + 0.7 * b.height,
                                                  bubbles: true}));
    var t = document.getElementById('v-readout');
    r.x = +t.getAttribute('data-x'); r.y = +t.getAttribute('data-y'); r.where = t.querySelector('th').textContent;
    r.readout = {};
    Array.prototype.forEach.call(t.querySelectorAll('tr[data-layer]'), function (row) {
      r.readout[row.getAttribute('data-layer')] = Array.prototype.map.call(row.querySelectorAll('td[data-band]'),
        function (c) { return [+c.getAttribute('data-value'), c.textContent]; });
    });
    combo.value = 'band3'; fire(combo, 'change'); r.hr3 = hash(hr, 0, 1);  // one band (B08) with viridis
    var cmap = document.getElementById('v-cmap'); cmap.value = 'gray'; fire(cmap, 'change'); r.hr4 = hash(hr, 0, 1);
    var sel = document.getElementById('v-image'); sel.value = '1'; fire(sel, 'change');
    r.image = window.eosrViewer.state().image;  // the grid is rebuilt for the new image
    r.hr5 = hash(document.querySelector('canvas.v-panel[data-src="layer:HR"]'), 0, 1);
    var pi = document.querySelector('table.per-image');
    var th = pi.querySelector('thead th:nth-child(2)'); th.click(); th.click();  // descending by the 1st method
    r.sorted = Array.prototype.map.call(pi.querySelectorAll('tbody tr td:nth-child(2)'),
                                        function (c) { return +c.getAttribute('data-value'); });
    r.sections = Array.prototype.map.call(document.querySelectorAll('section'), function (s) {
      var q = s.getBoundingClientRect(); return [s.id, q.top + window.scrollY, q.height]; });
    r.height = document.documentElement.scrollHeight;
  } catch (e) { r.errors.push(String(e && e.stack || e)); }
  r.blocked = window.eosrBlocked;
  r.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; })
    .filter(function (u) { return u.indexOf('data:') !== 0; });
  var pre = document.createElement('pre'); pre.id = 'eosr-probe'; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]
_WIDTH, _HEIGHT = 1400, 12000  # the window: sections below _HEIGHT get no screenshot


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_viewer_in_headless_chromium(bench: tuple[Path, dict], tmp_path: Path) -> None:
    """Drives the viewer in a real browser; saves a screenshot per section (EOSR_TEST_ARTIFACTS or tmp_path)."""
    from PIL import Image

    from eosr.benchmark.config import load_config
    from eosr.benchmark.datasets import list_images, load_sample

    exe = _browser()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium chromium-driver): browser test skipped")
    report, results = bench
    text = report.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + _LISTEN, 1).replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    flags = [*_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "page.png"  # one browser run: the probe's DOM and a screenshot of the page's top
    dom = subprocess.run([exe, *flags, f"--window-size={_WIDTH},{_HEIGHT}", "--virtual-time-budget=10000",
                          f"--screenshot={shot}", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180, check=False)
    m = re.search(r'<pre id="eosr-probe">(.*?)</pre>', dom.stdout)
    assert m, f"the browser did not run the page: {dom.stderr[-500:]}"
    st = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert not st["errors"], st["errors"]
    assert st["blocked"] == [] and st["resources"] == []  # no request leaves the file
    assert st["n"] >= 6 and st["loaded"] == st["n"], st
    assert st["methods"] == [r["method"] for r in results["leaderboard"]]
    n_layers = 2 + len(METHODS)  # LR, every SR, HR; then two maps per SR
    assert st["panels"] == n_layers + 2 * len(METHODS)
    assert st["panel_width"] > 200  # panels sized to the page, not thumbnails
    assert st["swipe0"] != st["swipe1"]  # the slider moved: the strip now shows the other layer
    assert st["combo"] == "false" and st["hr1"] != st["hr0"]  # false colour draws other pixels
    assert st["zoom"] == 2 and st["hr2"] != st["hr1"] and st["lr2"] != st["lr0"]  # every panel zoomed together
    assert st["panned"] > 0 and st["hr_pan"] != st["hr2"]  # dragging LR to the right moved HR's window too
    assert len({st["hr1"], st["hr3"], st["hr4"]}) == 3  # a single band, then its grey colour map
    assert st["image"] == 1 and st["hr5"] != st["hr4"]  # the second image
    # the read-out equals the data within 1e-4 reflectance (HR at the pixel, LR at the pixel that covers it)
    cfg_path = report.parent / "config.toml"
    d = load_config(cfg_path).datasets[0]
    ref = list_images(d)[0]
    sample = load_sample(d, ref, 0)
    x, y = st["x"], st["y"]
    assert sample.hr is not None and 0 <= x < sample.hr.shape[-1] and 0 <= y < sample.hr.shape[-2]
    hr_vals = [v for v, _ in st["readout"]["HR"]]
    lr_vals = [v for v, _ in st["readout"]["LR"]]
    assert np.abs(np.array(hr_vals) - sample.hr[:, y, x]).max() <= 1e-4
    assert np.abs(np.array(lr_vals) - sample.lr[:, y // 2, x // 2]).max() <= 1e-4
    shown = np.array([float(t) for _, t in st["readout"]["HR"]])
    assert np.abs(shown - sample.hr[:, y, x]).max() <= 1e-4  # also the 4 shown decimals
    import rasterio

    with rasterio.open(next(iter(ref.files.values()))) as ds:  # the cursor's map coordinates (pixel centre)
        e, n = ds.transform * (x + 0.5, y + 0.5)
        crs = ds.crs.to_string()
    assert f"E {round(e)}, N {round(n)} m ({crs})" in st["where"], st["where"]
    assert st["sorted"] == sorted(st["sorted"], reverse=True) and len(st["sorted"]) == 2
    # a screenshot of each section, cropped from the page's screenshot (the viewer as the probe left it)
    out = Path(os.environ.get("EOSR_TEST_ARTIFACTS", tmp_path)) / "report_sections"
    out.mkdir(parents=True, exist_ok=True)
    height = _HEIGHT
    page = Image.open(shot).convert("RGB")
    assert page.size == (_WIDTH, height) and np.asarray(page.convert("L")).std() > 10  # not a blank page
    names = []
    for sid, top, h in st["sections"]:
        if top >= height:
            continue
        crop = page.crop((0, int(top), _WIDTH, min(height, int(top + h))))
        crop.save(out / f"{sid}.png")
        names.append(sid)
    assert {"sec-viewer", "sec-leaderboard", "sec-per-image", "sec-maps"} <= set(names)
    viewer_shot = np.asarray(Image.open(out / "sec-viewer.png").convert("L"))
    assert viewer_shot.std() > 20  # the viewer drew images


# ------------------------------------------------------------------ terminal
def _board(n: int) -> dict:
    rows = [{"dataset": "d", "rank": 1, "method": "backprojection_with_a_long_name", "metric": "psnr", "mean": 39.94,
             "ci_low": 36.58, "ci_high": 42.21, "diff_mean": 2.697, "diff_ci_low": 2.403, "diff_ci_high": 2.899,
             "n": n},
            {"dataset": "d", "rank": 2, "method": "bicubic", "metric": "psnr", "mean": 37.24, "ci_low": 33.74,
             "ci_high": 39.5, "diff_mean": None, "diff_ci_low": None, "diff_ci_high": None, "n": n}]
    return {"name": "t", "confidence": 0.95, "baseline": "bicubic", "leaderboard": rows}


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_terminal_leaderboard_fits_the_width_and_never_truncates_a_name(width: int) -> None:
    from rich.console import Console

    from eosr.benchmark.terminal import print_leaderboard

    con = Console(width=width, record=True, force_terminal=False)
    print_leaderboard(_board(6), "d", con)
    text = con.export_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert all(len(ln) <= width for ln in lines[1:]), text  # (the title line may soft-wrap)
    assert "backprojection_with_a_long_name" in text and "…" not in text
    assert "39.94" in text and "+2.697" in text and "[36.58, 42.21]" in text
    if width >= 140:
        assert "┃ rank" in text  # the full table where it fits
    elif width >= 100:
        assert "┃ # " in text  # CIs in their values' cells


def test_terminal_leaderboard_omits_ci_below_three_images() -> None:
    from rich.console import Console

    from eosr.benchmark.terminal import print_leaderboard

    con = Console(width=120, record=True, force_terminal=False)
    print_leaderboard(_board(2), "d", con)
    text = con.export_text()
    assert "CI omitted" in text and "[" not in text.replace("[95", "")


def test_georef_of_an_lr_file_is_the_hr_grid(tmp_path: Path) -> None:
    import rasterio
    import rasterio.errors
    from rasterio.transform import from_origin

    from eosr.benchmark.datasets import ImageRef
    from eosr.benchmark.viewer import georef

    f = tmp_path / "a.tif"
    with rasterio.open(f, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(500000, 5000000, 20, 20)) as ds:
        ds.write(np.zeros((1, 4, 4), np.float32))
    hr = georef(ImageRef("a", {"hr": f}), 2)
    lr = georef(ImageRef("a", {"lr": f}), 2)
    assert hr is not None and lr is not None and hr["north_up"] and hr["crs"] == "EPSG:32633"
    assert hr["pixel_m"] == 20 and lr["pixel_m"] == 10 and lr["origin"] == [500000.0, 5000000.0]
    g = tmp_path / "b.tif"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), \
            rasterio.open(g, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as ds:
        ds.write(np.zeros((1, 4, 4), np.float32))
    assert georef(ImageRef("b", {"hr": g}), 2) is None  # no georeference: no scale bar, said so


def test_viewer_takes_every_dataset_until_the_size_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from eosr.benchmark import report, viewer

    rng = np.random.default_rng(1)
    lr, hr = rng.random((4, 8, 8)), rng.random((4, 16, 16))
    sample = SimpleNamespace(lr=lr, hr=hr, scale=2, bands=["B02", "B03", "B04", "B08"])
    monkeypatch.setattr(report, "_image_data", lambda *a: (sample, {"m": hr}, None, {}))
    monkeypatch.setattr(viewer, "georef", lambda *a: None)
    one = viewer.size_of(viewer.image_entry("x", lr, {"m": hr}, hr, 2, {}, None))
    monkeypatch.setattr(viewer, "BUDGET_CHARS", int(2.5 * one))
    cfg = SimpleNamespace(datasets=[SimpleNamespace(name="a"), SimpleNamespace(name="b"), SimpleNamespace(name="c")])
    results = {"datasets": [{"key": "ka"}, {"key": "kb"}, {"key": "kc"}]}
    refs = {n: [SimpleNamespace(id=f"{n}{i}") for i in range(k)] for n, k in (("a", 1), ("b", 3), ("c", 2))}
    out = report.viewer_data(results, cfg, refs, None, [], (0, sample, {"m": hr}, {}, None))
    assert [(im["dataset"], im["id"]) for im in out["images"]] == [("a", "a0"), ("b", "b0")]
    assert out["n_images"] == 6 and out["tolerance"] == 5e-5
