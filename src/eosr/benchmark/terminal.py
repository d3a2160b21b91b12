"""Terminal output of a benchmark: the leaderboard as a rich table and where the outputs are."""

from __future__ import annotations

from typing import Any

from eosr.benchmark.metric_docs import doc_for
from eosr.benchmark.report import fmt


def leaderboard_table(results: dict[str, Any], dataset: str) -> Any:
    """A rich Table of one dataset's leaderboard (mean, CI, paired difference to the baseline)."""
    from rich.table import Table

    rows = [r for r in results["leaderboard"] if r["dataset"] == dataset]
    metric = rows[0]["metric"] if rows else "-"
    d = doc_for(metric)
    unit = f" ({d.unit})" if d.unit else ""
    pct = round(100 * results["confidence"])
    t = Table(title=f"{results['name']} / {dataset}: ranked by {d.title}{unit}")
    for col in ("rank", "method", f"{d.title}{unit}", f"{pct} % CI", f"Δ vs {results['baseline']}", f"{pct} % CI of Δ"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        t.add_row(str(r["rank"]), r["method"], fmt(r["mean"]), f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                  "–" if r["diff_mean"] is None else f"{r['diff_mean']:+.4g}",
                  "" if r["diff_mean"] is None else f"[{fmt(r['diff_ci_low'])}, {fmt(r['diff_ci_high'])}]")
    return t


def print_summary(res: Any, console: Any = None) -> None:
    """Print every dataset's leaderboard, the cache statistics and the output paths."""
    from rich.console import Console

    con = console or Console()
    for d in res.results["datasets"]:
        con.print(leaderboard_table(res.results, d["name"]))
    c = res.counts
    con.print(f"SR outputs: {c['sr_computed']} computed, {c['sr_cached']} from the cache; "
              f"scores: {c['scores_computed']} computed, {c['scores_cached']} from the cache "
              f"({res.seconds:.1f} s; scored by {res.results['versions']['evaluator']})")
    con.print(f"Results: {res.out_dir}")
    if res.report is not None:
        con.print(f"Report:  {res.report}", soft_wrap=True)
