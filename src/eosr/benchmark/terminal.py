"""Terminal output of a benchmark: the leaderboard as a rich table and where the outputs are.

The table fits the terminal: when its natural width exceeds the console's (80 columns by default
when not a terminal), each CI moves into its value's cell; when that still does not fit, the
leaderboard is printed vertically, one block per method, instead of wrapping cells or truncating
method names. Numbers use one format per column
(:mod:`eosr.benchmark.numbers`); confidence intervals are omitted below 3 images, as in the report.
"""

from __future__ import annotations

from typing import Any

from eosr.benchmark.metric_docs import doc_for
from eosr.benchmark.numbers import ColumnFormat, formatter

#: Fewer images than this: no confidence intervals (as in the report).
MIN_IMAGES_FOR_CI = 3


def _rows(results: dict[str, Any], dataset: str) -> tuple[list[dict[str, Any]], str, bool]:
    rows = [r for r in results["leaderboard"] if r["dataset"] == dataset]
    metric = rows[0]["metric"] if rows else "-"
    n = max((int(r.get("n") or 0) for r in rows), default=0)
    return rows, metric, n >= MIN_IMAGES_FOR_CI


def _ci(f: ColumnFormat, lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f"[{f(lo)}, {f(hi)}]"


def _board(results: dict[str, Any], dataset: str) -> tuple[list[dict[str, Any]], bool, Any, str, int, Any, Any]:
    """What both leaderboard layouts need: rows, whether CIs are shown, the ranking metric's doc, its unit
    suffix, the confidence in %, and the formatters of the means and of the differences."""
    rows, metric, show_ci = _rows(results, dataset)
    d = doc_for(metric)
    unit = f" ({d.unit})" if d.unit else ""
    pct = round(100 * results["confidence"])
    fm = formatter([r["mean"] for r in rows], metric, [r[k] for r in rows for k in ("ci_low", "ci_high")])
    fd = formatter([r["diff_mean"] for r in rows], "", [r[k] for r in rows for k in ("diff_ci_low", "diff_ci_high")])
    return rows, show_ci, d, unit, pct, fm, fd


def leaderboard_table(results: dict[str, Any], dataset: str, compact: bool = False) -> Any:
    """A rich Table of one dataset's leaderboard (mean, CI, paired difference to the baseline);
    ``compact``: each CI in its value's cell (fewer columns, for 80-column terminals)."""
    from rich.table import Table

    rows, show_ci, d, unit, pct, fm, fd = _board(results, dataset)
    t = Table(title=f"{results['name']} / {dataset}: ranked by {d.title}{unit}"
              + ("" if show_ci else " (CI omitted: < 3 images)"))
    sep = show_ci and not compact
    both = f" [{pct} % CI]" if show_ci and compact else ""
    cols = ["#" if compact else "rank", "method", f"{d.title}{unit}{both}"] + ([f"{pct} % CI"] if sep else [])
    cols += [f"Δ vs {results['baseline']}{both}"] + ([f"{pct} % CI of Δ"] if sep else [])
    for col in cols:
        t.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for r in rows:
        m = fm(r["mean"])
        dm = "–" if r["diff_mean"] is None else fd(r["diff_mean"], True)
        ci, dci = _ci(fm, r["ci_low"], r["ci_high"]), _ci(fd, r["diff_ci_low"], r["diff_ci_high"])
        if sep:
            t.add_row(str(r["rank"]), r["method"], m, ci, dm, dci)
        elif show_ci:
            t.add_row(str(r["rank"]), r["method"], f"{m} {ci}", f"{dm} {dci}".strip())
        else:
            t.add_row(str(r["rank"]), r["method"], m, dm)
    return t


def leaderboard_lines(results: dict[str, Any], dataset: str) -> list[str]:
    """The leaderboard as lines, one block per method (the layout for narrow terminals)."""
    rows, show_ci, d, unit, pct, fm, fd = _board(results, dataset)
    out = [f"{results['name']} / {dataset}: ranked by {d.title}{unit}"
           + (f", mean [{pct} % CI]" if show_ci else ", mean (CI omitted: < 3 images)")]
    for r in rows:
        out.append(f"{r['rank']}. {r['method']}")
        out.append(f"   {d.title}: {fm(r['mean'])}" + (f" {_ci(fm, r['ci_low'], r['ci_high'])}" if show_ci else ""))
        if r["diff_mean"] is not None:
            out.append(f"   Δ vs {results['baseline']}: {fd(r['diff_mean'], True)}"
                       + (f" {_ci(fd, r['diff_ci_low'], r['diff_ci_high'])}" if show_ci else ""))
    return out


def print_leaderboard(results: dict[str, Any], dataset: str, console: Any) -> None:
    """The table when it fits the console's width, else the compact table, else the vertical layout."""
    from rich.measure import Measurement

    for compact in (False, True):
        table = leaderboard_table(results, dataset, compact)
        if Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width:
            console.print(table)
            return
    for line in leaderboard_lines(results, dataset):
        console.print(line, soft_wrap=True, highlight=False)


def print_summary(res: Any, console: Any = None) -> None:
    """Print every dataset's leaderboard, the cache statistics and the output paths."""
    from rich.console import Console

    con = console or Console()
    for d in res.results["datasets"]:
        print_leaderboard(res.results, d["name"], con)
    c = res.counts
    con.print(f"SR outputs: {c['sr_computed']} computed, {c['sr_cached']} from the cache; "
              f"scores: {c['scores_computed']} computed, {c['scores_cached']} from the cache "
              f"({res.seconds:.1f} s; scored by {res.results['versions']['evaluator']})")
    con.print(f"Results: {res.out_dir}")
    if res.report is not None:
        con.print(f"Report:  {res.report}", soft_wrap=True)
