"""Matplotlib figures of the report (Agg backend), returned as base64 PNG strings for embedding.

Consistent scales: one display stretch (2-98 % of HR) for every image panel, and one colour range per
map type shared by all methods (99th percentile over all methods), so panels compare at a glance.
Bars start at zero (no truncated axis); curves that coincide are merged into one labelled line; maps
and image panels carry a scale bar and a north arrow when the image is georeferenced (north-up).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

_DPI = 100


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def to_base64(fig: Any) -> str:
    """Render a figure to a base64 PNG (and close it)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def bar_with_ci(labels: list[str], means: list[float], lo: list[float], hi: list[float], *, ylabel: str,
                title: str, highlight: str | None = None) -> str:
    """Horizontal bars of means with CI whiskers (one bar per method)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    m = np.asarray(means, float)
    err = np.vstack([m - np.asarray(lo, float), np.asarray(hi, float) - m])
    colors = ["#d62728" if lab == highlight else "#1f77b4" for lab in labels]
    ax.barh(y, m, xerr=np.nan_to_num(err), color=colors, capsize=4, alpha=0.85)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    for yi, v, h in zip(y, m, np.asarray(hi, float), strict=True):  # the value, right of its CI whisker
        ax.text(max(v, h) if np.isfinite(h) else v, yi, f"  {v:.4g}", va="center", ha="left", fontsize=8)
    ax.set_xlim(left=min(0.0, float(np.nanmin(lo))) if len(m) else 0.0,
                right=1.15 * float(np.nanmax(hi)) if len(m) and np.nanmax(hi) > 0 else None)
    ax.grid(axis="x", alpha=0.3)
    return to_base64(fig)


def strata_bars(methods: list[str], strata: dict[str, tuple[list[float], list[float], list[float]]], *, unit: str,
                title: str) -> str:
    """Grouped bars: per method, one bar per gradient stratum with CI whiskers."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.4))
    k = len(strata)
    width = 0.8 / max(k, 1)
    x = np.arange(len(methods))
    for j, (name, (m, lo, hi)) in enumerate(strata.items()):
        mm = np.asarray(m, float)
        err = np.vstack([mm - np.asarray(lo, float), np.asarray(hi, float) - mm])
        ax.bar(x + (j - (k - 1) / 2) * width, mm, width, yerr=np.nan_to_num(err), capsize=3, label=name)
    ax.set_xticks(x, methods)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.set_ylim(bottom=0)  # bars from zero: no truncated axis
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: no bar hidden
    ax.grid(axis="y", alpha=0.3)
    return to_base64(fig)


def spectra(freqs: np.ndarray, curves: dict[str, np.ndarray], lr_nyquist: float) -> str:
    """Radial power spectra (band-averaged) on a log scale, with the LR Nyquist marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, p, style in _merged_curves(curves):
        ax.semilogy(freqs, np.maximum(p, 1e-20), label=name, **style)
    ax.axvline(lr_nyquist, color="r", ls=":", lw=1)
    ax.text(lr_nyquist, ax.get_ylim()[1], " LR Nyquist", color="r", va="top", fontsize=8)
    ax.set_xlabel("spatial frequency (cycles / HR pixel)")
    ax.set_ylabel("power (reflectance$^2$, log)")
    ax.set_title("Radial power spectrum (mean over bands)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3, which="both")
    return to_base64(fig)


def _merged_curves(curves: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """Curves equal to an earlier one (relative difference < 1e-6 everywhere) join its label ("a = b")
    instead of being drawn underneath it, invisible."""
    kept: list[tuple[list[str], np.ndarray]] = []
    for name, p in curves.items():
        for names, q in kept:
            if p.shape == q.shape and np.allclose(p, q, rtol=1e-6, atol=0.0):
                names.append(name)
                break
        else:
            kept.append(([name], np.asarray(p)))
    out = []
    for names, p in kept:
        style: dict[str, Any] = {}
        if "HR" in names:
            style = {"lw": 2.2, "color": "k"}
        elif any(n.startswith("interpolated") for n in names):
            style = {"ls": "--", "color": "grey", "lw": 1.8}
        label = " = ".join(names) + (" (identical curves)" if len(names) > 1 else "")
        out.append((label, p, style))
    return out


def scale_bar(ax: Any, width_px: int, height_px: int, pixel_m: float | None, north_up: bool = True) -> None:
    """A white scale bar (a round length of about a quarter of the panel, metres from the georeference)
    at the bottom left of an image axis, and a north arrow at the top right when the image is north-up."""
    if not pixel_m:
        return
    target = 0.25 * width_px * pixel_m
    nice = 10 ** np.floor(np.log10(target))
    length_m = max(v * nice for v in (1, 2, 5) if v * nice <= target)
    n = length_m / pixel_m
    x0, y0 = 0.05 * width_px, 0.92 * height_px
    ax.plot([x0, x0 + n], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    ax.plot([x0, x0 + n], [y0, y0], color="black", lw=1, solid_capstyle="butt")
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(x0 + n / 2, y0 - 0.03 * height_px, label, color="white", fontsize=7, ha="center", va="bottom",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})
    if north_up:
        ax.annotate("N", xy=(0.93 * width_px, 0.06 * height_px), xytext=(0.93 * width_px, 0.2 * height_px),
                    color="white", fontsize=7, ha="center", va="center",
                    arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 1.2})


def paired_differences(images: list[str], diffs: dict[str, list[float]], *, xlabel: str, better: int) -> str:
    """Small multiples, one panel per method: the per-image paired difference to the baseline (dots),
    their mean (line) and zero (dashed), on one shared x-axis, so one image that drives the mean shows."""
    plt = _plt()
    methods = list(diffs)
    n = len(methods)
    fig, axes = plt.subplots(1, n, figsize=(max(4.5 * n, 6), 0.32 * len(images) + 1.4), sharex=True, sharey=True,
                             squeeze=False)
    allv = np.asarray([v for m in methods for v in diffs[m]], float)
    span = float(np.nanmax(np.abs(allv))) if np.isfinite(allv).any() else 1.0
    y = np.arange(len(images))
    short = [i if len(i) <= 28 else "…" + i[-27:] for i in images]
    for ax, m in zip(axes[0], methods, strict=True):
        v = np.asarray(diffs[m], float)
        good = v * better > 0
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.scatter(v[good], y[good], color="#1a7f37", s=22, zorder=3, label="better than baseline")
        ax.scatter(v[~good], y[~good], color="#b42318", s=22, zorder=3, label="worse or equal")
        if np.isfinite(v).any():
            ax.axvline(float(np.nanmean(v)), color="k", lw=1.2, label="mean")
        ax.set_title(m, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(-1.1 * span if (allv < 0).any() else -0.05 * span, 1.1 * span if (allv > 0).any() else 0.05 * span)
        ax.set_xlabel(xlabel, fontsize=8)
    axes[0, 0].set_yticks(y, short, fontsize=7)
    axes[0, 0].invert_yaxis()
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_base64(fig)


def display_rgb(x: np.ndarray, bands: list[str], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(H, W, 3) display image: B04/B03/B02 when present (else the first band as grey), stretched lo..hi."""
    idx = rgb_index(bands)
    a = np.stack([np.asarray(x[i], float) for i in idx], axis=-1)
    return np.clip((np.nan_to_num(a) - lo) / np.maximum(hi - lo, 1e-12), 0, 1)


def rgb_index(bands: list[str]) -> list[int]:
    """Indices of the display channels (true colour when possible)."""
    if all(b in bands for b in ("B04", "B03", "B02")):
        return [bands.index("B04"), bands.index("B03"), bands.index("B02")]
    return [0, 0, 0]


def stretch(hr: np.ndarray, bands: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 2 and 98 % percentiles of the reference image (the display stretch of every panel)."""
    idx = rgb_index(bands)
    lo = np.array([np.nanpercentile(hr[i], 2) for i in idx])
    hi = np.array([np.nanpercentile(hr[i], 98) for i in idx])
    return lo, hi


def high_gradient_box(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the highest mean gradient magnitude of HR."""
    from scipy import ndimage

    from eosr.benchmark.scoring import gradient_magnitude

    g = gradient_magnitude(hr)
    h, w = g.shape
    s = min(size, h, w)
    mean = ndimage.uniform_filter(g, s, mode="constant")
    half = s // 2
    inner = mean[half : h - (s - half) + 1, half : w - (s - half) + 1]
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(iy), int(ix)


def triptychs(lr_up: np.ndarray, srs: dict[str, np.ndarray], hr: np.ndarray, bands: list[str], zoom: int = 32,
              pixel_m: float | None = None) -> str:
    """Rows: full view and zoomed crop of the highest-gradient area; columns: LR, each SR, HR."""
    plt = _plt()
    lo, hi = stretch(hr, bands)
    panels = [("LR (nearest)", lr_up)] + [(f"SR: {k}", v) for k, v in srs.items()] + [("HR (reference)", hr)]
    y0, x0 = high_gradient_box(hr, zoom)
    s = min(zoom, hr.shape[-2], hr.shape[-1])
    n = len(panels)
    fig, axes = plt.subplots(2, n, figsize=(max(3.2 * n, 10), 6.6), squeeze=False)
    for j, (title, img) in enumerate(panels):
        rgb = display_rgb(img, bands, lo, hi)
        axes[0, j].imshow(rgb, interpolation="nearest")
        axes[0, j].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), s, s, fill=False, ec="yellow", lw=1.2))
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].imshow(rgb[y0 : y0 + s, x0 : x0 + s], interpolation="nearest")
        axes[1, j].set_title("zoom (high gradient)", fontsize=8)
        scale_bar(axes[0, j], rgb.shape[1], rgb.shape[0], pixel_m)
        scale_bar(axes[1, j], s, s, pixel_m, north_up=False)
        for a in axes[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    ch = "B04/B03/B02" if rgb_index(bands) != [0, 0, 0] else bands[0]
    fig.suptitle(f"{ch}, one stretch (2-98 % of HR) for all panels", fontsize=9)
    return to_base64(fig)


def map_grid(maps: dict[str, dict[str, np.ndarray]], kinds: list[tuple[str, str, str]],
             pixel_m: float | None = None) -> str:
    """Rows = methods, columns = map kinds; one colour range per kind shared by all methods, stated by one
    horizontal colour bar under each column (no label next to a neighbouring panel).

    ``maps[method][kind]`` is (H, W); ``kinds`` lists (key, title, unit).
    """
    plt = _plt()
    methods = list(maps)
    nk = len(kinds)
    fig, axes = plt.subplots(len(methods), nk, figsize=(max(3.3 * nk, 8), 2.9 * len(methods) + 0.9), squeeze=False)
    for j, (key, title, unit) in enumerate(kinds):
        allv = np.concatenate([np.abs(np.ravel(maps[m][key])) for m in methods])
        allv = allv[np.isfinite(allv)]
        vmax = float(np.percentile(allv, 99)) if allv.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
        im = None
        for i, m in enumerate(methods):
            ax = axes[i, j]
            im = ax.imshow(maps[m][key], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(m, fontsize=9)
            if i == 0 and j == 0:
                h, w = np.shape(maps[m][key])
                scale_bar(ax, w, h, pixel_m)
        cb = fig.colorbar(im, ax=list(axes[:, j]), orientation="horizontal", location="bottom", fraction=0.05,
                          pad=0.03, shrink=0.9)
        cb.set_label(f"{unit}, 0 to p99 of all methods", fontsize=7)
        cb.ax.tick_params(labelsize=7)
        cb.ax.xaxis.set_major_locator(plt.MaxNLocator(3))
    return to_base64(fig)


def sparsification(curves: dict[str, Any]) -> str:
    """Sparsification curves (Ilg et al., ECCV 2018): MAE of the pixels kept after removing the most
    uncertain fraction, normalised by the MAE of all, for each method (solid) and its oracle (dotted)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, sp in curves.items():
        (line,) = ax.plot(sp.fractions, sp.curve, lw=2, label=f"{name} (AUSE {sp.ause:.3f})")
        ax.plot(sp.fractions, sp.oracle, ls=":", color=line.get_color(), label=f"{name}: oracle (by |error|)")
    ax.set_xlabel("fraction of pixels removed (most uncertain first)")
    ax.set_ylabel("MAE of the rest / MAE of all")
    ax.set_title("Sparsification: does the uncertainty rank the errors?")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return to_base64(fig)
