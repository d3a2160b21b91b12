/*
 * eosr report viewer: interactive LR / SR / HR comparison inside the self-contained benchmark report.
 *
 * Inlined by report.html.j2; no network, no library. Reads the JSON of
 * the JSON script element with id "eosr-viewer-data" (built by eosr.benchmark.viewer):
 *   {n_images, tolerance, cmaps: {name: hex of 256 RGB triplets},
 *    images: [{id, dataset, bands, h, w, scale, stretch: [[lo, hi] per band], stretch_of: "HR" | "LR",
 *              geo: {pixel_m, north_up, origin: [x, y], step: [dx, dy], crs} | null,
 *              layers: [{name, kind: "lr" | "sr" | "hr", shape: [C, H, W], offset, step, data}],
 *              maps: {method: {error | hallucination: {shape: [1, H, W], offset, step, data}}},
 *              vmax: {error, hallucination}}]}
 * data: base64 of little-endian uint16 q, band-major; value = offset + q * step; q = 65535 is nodata.
 *
 * What it draws into <div id="eosr-viewer">:
 *   - a swipe canvas: layer A left of the slider, layer B right of it (any of LR, each SR, HR);
 *   - a grid: LR, every SR, HR, and under each SR its |SR - HR| and hallucination maps;
 *   - every canvas shows the same window (synchronised zoom and pan): mouse wheel or +/- zooms about the
 *     cursor, dragging pans, double click or "reset" shows the whole image;
 *   - band combination: true colour (B04 B03 B02), false colour (B08 B04 B03), or one band with a colour
 *     map; one stretch for every panel (2-98 % of HR per band; of the LR without HR);
 *   - the read-out table: under the cursor, its map coordinates (georeferenced, north-up images) and the
 *     reflectance of every band in every layer (4 decimals; the
 *     encoding is exact to `tolerance`), and the map values;
 *   - a scale bar (metres, from the georeference) and a north arrow when the image is north-up.
 * Also: every <table class="sortable"> sorts by a clicked column (numbers by their data-value).
 * For tests: window.eosrViewer exposes state(), value(layer, band, x, y) and set(...).
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ sortable tables
  function sortable(table) {
    var head = table.tHead ? table.tHead.rows[0] : table.rows[0];
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.style.cursor = "pointer";
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r !== head; });
        var asc = th.getAttribute("data-sort") !== "asc";
        Array.prototype.forEach.call(head.cells, function (h) { h.removeAttribute("data-sort"); });
        th.setAttribute("data-sort", asc ? "asc" : "desc");
        function key(r) {
          var c = r.cells[col];
          if (!c) { return ""; }
          var v = c.getAttribute("data-value");
          return v === null ? c.textContent.trim() : parseFloat(v);
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var d = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
          return asc ? d : -d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);

  // ------------------------------------------------------------------ data
  var node = document.getElementById("eosr-viewer-data");
  var root = document.getElementById("eosr-viewer");
  if (!node || !root) { return; }
  var DATA = JSON.parse(node.textContent);
  var BANDS = DATA.images[0].bands;  // of the image shown (datasets may differ)
  var NODATA = 65535;

  function lut(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(hex.substr(2 * i, 2), 16); }
    return out;
  }
  var CMAPS = {};
  Object.keys(DATA.cmaps).forEach(function (k) { CMAPS[k] = lut(DATA.cmaps[k]); });

  function decode(enc) {
    if (enc.q) { return enc.q; }
    var bin = atob(enc.data);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var dv = new DataView(bytes.buffer);
    var q = new Uint16Array(bytes.length / 2);
    for (var j = 0; j < q.length; j++) { q[j] = dv.getUint16(2 * j, true); }  // little-endian, any platform
    enc.q = q;
    return q;
  }
  function valueOf(enc, band, x, y) {
    var h = enc.shape[1], w = enc.shape[2];
    if (x < 0 || y < 0 || x >= w || y >= h) { return NaN; }
    var q = decode(enc)[band * h * w + y * w + x];
    return q === NODATA ? NaN : enc.offset + q * enc.step;
  }

  // ------------------------------------------------------------------ state
  var S = {img: 0, combo: "", cmap: "viridis", a: "", b: "", split: 0.5, z: 1, cx: 0, cy: 0, cursor: null};
  var cache = {};  // offscreen canvases by image|layer|combo

  function image() { return DATA.images[S.img]; }
  function layer(name) {
    var im = image();
    for (var i = 0; i < im.layers.length; i++) { if (im.layers[i].name === name) { return im.layers[i]; } }
    return null;
  }
  function combos() {
    var out = [];
    var bi = function (b) { return BANDS.indexOf(b); };
    if (bi("B04") >= 0 && bi("B03") >= 0 && bi("B02") >= 0) {
      out.push({key: "true", label: "true colour (B04 B03 B02)", rgb: [bi("B04"), bi("B03"), bi("B02")]});
    }
    if (bi("B08") >= 0 && bi("B04") >= 0 && bi("B03") >= 0) {
      out.push({key: "false", label: "false colour, NIR (B08 B04 B03)", rgb: [bi("B08"), bi("B04"), bi("B03")]});
    }
    BANDS.forEach(function (b, i) { out.push({key: "band" + i, label: "single band " + b, band: i}); });
    return out;
  }
  var COMBOS = combos();
  function setCombos() {  // the band combinations of the image's bands; keeps the choice when it exists
    BANDS = image().bands;
    COMBOS = combos();
    el.combo.innerHTML = "";
    COMBOS.forEach(function (c) { make("option", {value: c.key}, el.combo, c.label); });
    var keep = COMBOS.filter(function (c) { return c.key === S.combo; }).length > 0;
    S.combo = keep ? S.combo : COMBOS[0].key;
    el.combo.value = S.combo;
  }
  function combo() {
    for (var i = 0; i < COMBOS.length; i++) { if (COMBOS[i].key === S.combo) { return COMBOS[i]; } }
    return COMBOS[0];
  }

  // ------------------------------------------------------------------ rendering
  function render(enc, kind, vmax) {  // offscreen canvas at the layer's own resolution
    var key = S.img + "|" + (enc.name || enc.key) + "|" + (kind === "map" ? "map" : S.combo + "|" + S.cmap);
    if (cache[key]) { return cache[key]; }
    var h = enc.shape[1], w = enc.shape[2], n = h * w;
    var q = decode(enc);
    var cv = document.createElement("canvas");
    cv.width = w; cv.height = h;
    var ctx = cv.getContext("2d");
    var img = ctx.createImageData(w, h);
    var px = img.data, st = image().stretch, c = combo();
    function put(p, band) {  // the band's value at pixel p as 0..255 on the stretch, -1 for nodata
      var v = q[band * n + p];
      if (v === NODATA) { return -1; }
      var x = enc.offset + v * enc.step, lo = st[band][0], hi = st[band][1];
      var t = (x - lo) / (hi - lo);
      return t < 0 ? 0 : t > 1 ? 255 : Math.round(255 * t);
    }
    for (var p = 0; p < n; p++) {
      var o = 4 * p;
      if (kind === "map") {
        var v = q[p];
        if (v === NODATA) { px[o + 3] = 0; continue; }
        var t = Math.min(1, Math.max(0, (enc.offset + v * enc.step) / vmax));
        var k = 3 * Math.round(255 * t), m = CMAPS.magma;
        px[o] = m[k]; px[o + 1] = m[k + 1]; px[o + 2] = m[k + 2]; px[o + 3] = 255;
      } else if (c.rgb) {
        var r = put(p, c.rgb[0]), g = put(p, c.rgb[1]), b = put(p, c.rgb[2]);
        if (r < 0 || g < 0 || b < 0) { px[o + 3] = 0; continue; }
        px[o] = r; px[o + 1] = g; px[o + 2] = b; px[o + 3] = 255;
      } else {
        var s = put(p, c.band);
        if (s < 0) { px[o + 3] = 0; continue; }
        var L = CMAPS[S.cmap], kk = 3 * s;
        px[o] = L[kk]; px[o + 1] = L[kk + 1]; px[o + 2] = L[kk + 2]; px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    cache[key] = cv;
    return cv;
  }
  function sourceOf(name) {  // "layer:<name>" or "error:<method>" / "hallucination:<method>"
    var im = image(), i = name.indexOf(":"), kind = name.slice(0, i), what = name.slice(i + 1);
    if (kind === "layer") {
      var l = layer(what);
      return l ? {cv: render(l, "layer"), f: l.shape[2] / im.w} : null;
    }
    var e = im.maps[what] && im.maps[what][kind];
    if (!e) { return null; }
    e.key = kind + ":" + what;
    return {cv: render(e, "map", im.vmax[kind]), f: 1};
  }
  function view() {  // the visible window in HR pixels
    var im = image(), vw = im.w / S.z, vh = im.h / S.z;
    return {x0: S.cx - vw / 2, y0: S.cy - vh / 2, vw: vw, vh: vh};
  }
  function blit(ctx, src, cw, ch) {
    var v = view();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(src.cv, v.x0 * src.f, v.y0 * src.f, v.vw * src.f, v.vh * src.f, 0, 0, cw, ch);
  }
  function drawPanel(cv) {
    var ctx = cv.getContext("2d"), src = sourceOf(cv.getAttribute("data-src"));
    ctx.fillStyle = "#eee";
    ctx.fillRect(0, 0, cv.width, cv.height);
    if (src) { blit(ctx, src, cv.width, cv.height); }
    drawCursor(ctx, cv);
  }
  function drawSwipe() {
    var cv = el.swipe, ctx = cv.getContext("2d"), a = sourceOf("layer:" + S.a), b = sourceOf("layer:" + S.b);
    var sx = Math.round(S.split * cv.width);
    ctx.fillStyle = "#eee";
    ctx.fillRect(0, 0, cv.width, cv.height);
    if (a) { blit(ctx, a, cv.width, cv.height); }
    ctx.save();
    ctx.beginPath();
    ctx.rect(sx, 0, cv.width - sx, cv.height);
    ctx.clip();
    if (b) { blit(ctx, b, cv.width, cv.height); }
    ctx.restore();
    ctx.fillStyle = "#fff";
    ctx.fillRect(sx - 1, 0, 2, cv.height);
    label(ctx, "◀ " + S.a, 6, 16, "left");
    label(ctx, S.b + " ▶", cv.width - 6, 16, "right");
    drawScale(ctx, cv);
    drawCursor(ctx, cv);
  }
  function label(ctx, text, x, y, align) {
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = align;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0,0,0,0.7)";
    ctx.strokeText(text, x, y);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x, y);
  }
  function drawScale(ctx, cv) {
    var geo = image().geo;
    if (!geo) { return; }
    var mPerPx = geo.pixel_m * view().vw / cv.width, target = 0.25 * cv.width * mPerPx;
    var p = Math.pow(10, Math.floor(Math.log10(target))), len = p;
    [1, 2, 5].forEach(function (k) { if (k * p <= target) { len = k * p; } });
    var n = len / mPerPx, x0 = 12, y0 = cv.height - 14;
    ctx.fillStyle = "#000";
    ctx.fillRect(x0 - 1, y0 - 1, n + 2, 7);
    ctx.fillStyle = "#fff";
    ctx.fillRect(x0, y0, n, 5);
    label(ctx, len >= 1000 ? (len / 1000) + " km" : len + " m", x0 + n / 2, y0 - 5, "center");
    if (geo.north_up) {
      var ax = cv.width - 18, ay = 30;
      label(ctx, "N", ax, ay + 30, "center");
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(ax, ay + 16); ctx.lineTo(ax, ay); ctx.lineTo(ax - 5, ay + 7);
      ctx.moveTo(ax, ay); ctx.lineTo(ax + 5, ay + 7); ctx.stroke();
    }
  }
  function drawCursor(ctx, cv) {
    if (!S.cursor) { return; }
    var v = view(), sx = cv.width / v.vw;
    var x = (S.cursor[0] + 0.5 - v.x0) * sx, y = (S.cursor[1] + 0.5 - v.y0) * sx;
    ctx.strokeStyle = "#0ff";
    ctx.lineWidth = 1;
    ctx.strokeRect(x - Math.max(3, sx / 2), y - Math.max(3, sx / 2), 2 * Math.max(3, sx / 2), 2 * Math.max(3, sx / 2));
  }
  function drawAll() {
    drawSwipe();
    Array.prototype.forEach.call(root.querySelectorAll("canvas.v-panel"), drawPanel);
    readout();
    root.setAttribute("data-state", JSON.stringify(state()));
  }

  // ------------------------------------------------------------------ read-out
  function fix(v) { return isNaN(v) ? "nodata" : v.toFixed(4); }
  function readout() {
    var t = el.readout, im = image();
    if (!S.cursor) { t.innerHTML = "<tr><td class='name'>move the cursor over an image</td></tr>"; return; }
    var x = S.cursor[0], y = S.cursor[1], hasMaps = Object.keys(im.maps).length > 0;
    t.setAttribute("data-x", x); t.setAttribute("data-y", y);
    var g = im.geo, where = "x " + x + ", y " + y + " (HR px)";
    if (g && g.north_up) {  // the pixel centre in map coordinates
      where += "<br>E " + Math.round(g.origin[0] + (x + 0.5) * g.step[0]) + ", N " +
        Math.round(g.origin[1] + (y + 0.5) * g.step[1]) + " m (" + g.crs + ")";
    }
    var html = "<tr><th class='name'>" + where + "</th>" +
      BANDS.map(function (b) { return "<th>" + b + "</th>"; }).join("") + (hasMaps ? "<th>|SR − HR|</th><th>halluc.</th>" : "") + "</tr>";
    im.layers.forEach(function (l) {
      var f = l.shape[2] / im.w, lx = Math.floor(x * f), ly = Math.floor(y * f);
      html += "<tr data-layer='" + l.name + "'><td class='name'>" + l.name + (l.kind === "lr" ? " (" + lx + ", " + ly + ")" : "") + "</td>";
      BANDS.forEach(function (b, i) {
        var v = valueOf(l, i, lx, ly);
        html += "<td data-band='" + b + "' data-value='" + v + "'>" + fix(v) + "</td>";
      });
      (hasMaps ? ["error", "hallucination"] : []).forEach(function (k) {
        var e = im.maps[l.name] && im.maps[l.name][k];
        html += "<td>" + (e ? fix(valueOf(e, 0, x, y)) : "") + "</td>";
      });
      html += "</tr>";
    });
    t.innerHTML = html;
  }

  // ------------------------------------------------------------------ interaction
  function clampView() {
    var im = image();
    S.z = Math.max(1, Math.min(64, S.z));
    var hw = im.w / S.z / 2, hh = im.h / S.z / 2;
    S.cx = Math.max(hw, Math.min(im.w - hw, S.cx));
    S.cy = Math.max(hh, Math.min(im.h - hh, S.cy));
  }
  function toPixel(cv, ev) {
    var r = cv.getBoundingClientRect(), v = view();
    return [v.x0 + (ev.clientX - r.left) / r.width * v.vw, v.y0 + (ev.clientY - r.top) / r.height * v.vh];
  }
  function zoom(f, px, py) {  // zoom by f keeping HR point (px, py) where it is
    var v = view();
    px = px === undefined ? S.cx : px; py = py === undefined ? S.cy : py;
    var rx = (px - v.x0) / v.vw, ry = (py - v.y0) / v.vh;
    S.z *= f;
    clampView();
    var nv = view();
    S.cx += px - (nv.x0 + rx * nv.vw); S.cy += py - (nv.y0 + ry * nv.vh);
    clampView();
    drawAll();
  }
  function reset() { var im = image(); S.z = 1; S.cx = im.w / 2; S.cy = im.h / 2; drawAll(); }
  var drag = null;  // [x, y] of the last mouse position while a button is held on a panel
  window.addEventListener("mouseup", function () { drag = null; });
  function attach(cv) {
    cv.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var p = toPixel(cv, ev);
      zoom(ev.deltaY < 0 ? 1.25 : 0.8, p[0], p[1]);
    }, {passive: false});
    cv.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY]; ev.preventDefault(); });
    cv.addEventListener("mousemove", function (ev) {
      if (drag) {
        var r = cv.getBoundingClientRect(), v = view();
        S.cx -= (ev.clientX - drag[0]) / r.width * v.vw; S.cy -= (ev.clientY - drag[1]) / r.height * v.vh;
        drag = [ev.clientX, ev.clientY];
        clampView();
      }
      var p = toPixel(cv, ev), im = image();
      S.cursor = [Math.min(im.w - 1, Math.max(0, Math.floor(p[0]))), Math.min(im.h - 1, Math.max(0, Math.floor(p[1])))];
      drawAll();
    });
    cv.addEventListener("dblclick", reset);
  }

  // ------------------------------------------------------------------ DOM
  var el = {};
  function make(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function select(id, label, options, parent) {
    var wrap = make("label", {}, parent, label + " ");
    var s = make("select", {id: id}, wrap);
    options.forEach(function (o) { make("option", {value: o[0]}, s, o[1]); });
    return s;
  }
  function layerNames() { return image().layers.map(function (l) { return l.name; }); }
  function build() {
    root.innerHTML = "";
    var ctl = make("div", {"class": "v-controls"}, root);
    var many = DATA.images.some(function (im) { return im.dataset !== DATA.images[0].dataset; });
    el.image = select("v-image", "image", DATA.images.map(function (im, i) {
      return [String(i), many ? im.dataset + " / " + im.id : im.id]; }), ctl);
    el.combo = select("v-combo", "bands", COMBOS.map(function (c) { return [c.key, c.label]; }), ctl);
    el.cmap = select("v-cmap", "colour map (single band)", [["viridis", "viridis"], ["gray", "grey"]], ctl);
    el.a = select("v-a", "swipe: left", [], ctl);
    el.b = select("v-b", "right", [], ctl);
    var sw = make("label", {}, ctl, "split ");
    el.split = make("input", {id: "v-split", type: "range", min: "0", max: "100", value: "50"}, sw);
    el.zin = make("button", {id: "v-zoom-in", type: "button", title: "zoom in (or mouse wheel)"}, ctl, "+");
    el.zout = make("button", {id: "v-zoom-out", type: "button", title: "zoom out"}, ctl, "−");
    el.reset = make("button", {id: "v-reset", type: "button", title: "whole image (or double click)"}, ctl, "reset");
    var top = make("div", {"class": "v-top"}, root);
    el.swipe = make("canvas", {id: "v-swipe", "class": "v-swipe"}, top);
    var side = make("div", {"class": "v-side"}, top);
    el.readout = make("table", {id: "v-readout", "class": "v-readout"}, side);
    el.legend = make("div", {"class": "v-legend note"}, side);
    el.grid = make("div", {"class": "v-grid"}, root);
    el.image.addEventListener("change", function () { setImage(parseInt(el.image.value, 10)); });
    el.combo.addEventListener("change", function () { S.combo = el.combo.value; drawAll(); });
    el.cmap.addEventListener("change", function () { S.cmap = el.cmap.value; drawAll(); });
    el.a.addEventListener("change", function () { S.a = el.a.value; drawAll(); });
    el.b.addEventListener("change", function () { S.b = el.b.value; drawAll(); });
    el.split.addEventListener("input", function () { S.split = el.split.value / 100; drawAll(); });
    el.zin.addEventListener("click", function () { zoom(2); });
    el.zout.addEventListener("click", function () { zoom(0.5); });
    el.reset.addEventListener("click", reset);
    attach(el.swipe);
    window.addEventListener("resize", function () { layout(); drawAll(); });
    S.combo = COMBOS[0].key;
  }
  function setImage(i) {
    S.img = i;
    cache = {};
    setCombos();
    S.cursor = [Math.floor(image().w / 2), Math.floor(image().h / 2)];  // a read-out from the start
    var names = layerNames(), srs = image().layers.filter(function (l) { return l.kind === "sr"; });
    [el.a, el.b].forEach(function (s) {
      s.innerHTML = "";
      names.forEach(function (n) { make("option", {value: n}, s, n); });
    });
    var last = srs.length ? srs[srs.length - 1].name : names[0];  // with HR: last SR | HR, else LR | last SR
    S.a = names.indexOf("HR") >= 0 ? last : names[0];
    S.b = names.indexOf("HR") >= 0 ? "HR" : last;
    el.a.value = S.a; el.b.value = S.b;
    grid();
    layout();
    reset();
  }
  function grid() {  // row 1: every layer; rows 2-3: each SR's maps under it (colour scale at the row end)
    var im = image(), g = el.grid, names = layerNames();
    g.innerHTML = "";
    g.style.gridTemplateColumns = "repeat(" + names.length + ", 1fr)";
    function cell(title, src) {
      var c = make("div", {"class": "v-cell"}, g);
      make("div", {"class": "v-title"}, c, title);
      if (src) { attach(make("canvas", {"class": "v-panel", "data-src": src}, c)); }
      return c;
    }
    im.layers.forEach(function (l) {
      cell(l.kind === "lr" ? "LR (×" + im.scale + " nearest)" : l.kind === "hr" ? "HR (reference)" : "SR: " + l.name,
           "layer:" + l.name);
    });
    [["error", "|SR − HR|"], ["hallucination", "hallucination |a − c|"]].forEach(function (k) {
      if (!im.vmax[k[0]]) { return; }
      im.layers.forEach(function (l, j) {
        if (im.maps[l.name]) { cell(k[1] + " · " + l.name, k[0] + ":" + l.name); }
        else if (j === im.layers.length - 1) { colourBar(cell(k[1]), im.vmax[k[0]]); }
        else { cell(""); }
      });
    });
  }
  function colourBar(parent, vmax) {
    var cv = make("canvas", {"class": "v-cbar", width: "256", height: "12"}, parent);
    var ctx = cv.getContext("2d"), m = CMAPS.magma;
    for (var i = 0; i < 256; i++) { ctx.fillStyle = "rgb(" + m[3 * i] + "," + m[3 * i + 1] + "," + m[3 * i + 2] + ")"; ctx.fillRect(i, 0, 1, 12); }
    make("div", {"class": "v-cbar-label"}, parent, "mean over bands, 0 … " + vmax.toPrecision(3) + " reflectance (one scale for every method: 99th percentile)");
  }
  function layout() {  // canvases sized to the page (CSS px x device pixel ratio)
    var im = image(), dpr = window.devicePixelRatio || 1;
    var W = root.clientWidth || 1000, n = layerNames().length;
    var sw = Math.min(Math.round(W * 0.5), 640);
    el.swipe.style.width = sw + "px"; el.swipe.style.height = Math.round(sw * im.h / im.w) + "px";
    el.swipe.width = Math.round(sw * dpr); el.swipe.height = Math.round(sw * im.h / im.w * dpr);
    var pw = Math.min(400, Math.floor((W - 8 * (n - 1)) / n));
    Array.prototype.forEach.call(root.querySelectorAll("canvas.v-panel"), function (cv) {
      cv.style.width = pw + "px"; cv.style.height = Math.round(pw * im.h / im.w) + "px";
      cv.width = Math.round(pw * dpr); cv.height = Math.round(pw * im.h / im.w * dpr);
    });
    var geo = im.geo, c = combo();
    el.legend.textContent = "Dataset " + im.dataset + ", bands " + im.bands.join(" ") + ", ×" + im.scale + ". " +
      "Image " + (S.img + 1) + " of " + DATA.images.length + " shown" +
      (DATA.n_images > DATA.images.length ? " (" + DATA.n_images + " in the benchmark; the rest exceed the report's size budget)" : "") +
      ". " + im.w + " × " + im.h + " HR px" + (geo ? ", " + geo.pixel_m + " m per HR px, " + (geo.north_up ? "north up" : "not north-up") : ", no georeference (no scale bar)") +
      ". Stretch: 2–98 % of " + (im.stretch_of || "HR") + " per band, the same for every panel" + (c.rgb ? "" : " (colour map " + S.cmap + ")") +
      ". Read-out exact to ±" + DATA.tolerance.toExponential(1) + " reflectance.";
  }
  function state() {
    return {image: S.img, combo: S.combo, cmap: S.cmap, a: S.a, b: S.b, split: S.split, z: S.z, cx: S.cx, cy: S.cy,
            cursor: S.cursor};
  }

  build();
  setImage(0);
  window.eosrViewer = {
    state: state,
    value: function (name, band, x, y) { var l = layer(name); return l ? valueOf(l, band, x, y) : NaN; },
    set: function (o) { Object.keys(o).forEach(function (k) { S[k] = o[k]; }); clampView(); drawAll(); }
  };
})();
