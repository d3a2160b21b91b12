"""``eosr benchmark CONFIG.toml``: run a benchmark (cached, resumable) and write its report."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("benchmark")
    def benchmark(
        config: Path = typer.Argument(..., help="benchmark config (TOML), see docs/benchmark.md"),
        out: Path = typer.Option(None, "--out", "-o", help="output folder (default: benchmark-<name>)"),
        report: bool = typer.Option(None, "--report/--no-report",
                                    help="write report.html (default: the config's report key, true)"),
        progress: bool = typer.Option(None, "--progress/--no-progress",
                                      help="show progress bars (default: when stderr is a terminal)"),
        check: bool = typer.Option(False, "--check", help="only validate the config, run nothing (imports no "
                                                        "reader or method code)"),
        allow_code: bool = typer.Option(False, "--allow-code",
                                        help="allow readers and methods given as dotted paths 'module:function' "
                                             "in the config (runs that code; registry names need no flag)"),
        allow_untrained: bool = typer.Option(False, "--allow-untrained",
                                             help="allow learned architectures without trained weights (random-"
                                                  "weight output; the config cannot opt in by itself)"),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="write into a populated --out folder that holds no eosr results "
                                            "(its result files are replaced, other files kept)"),
    ) -> None:
        """Run methods x datasets x metrics; write per-image and aggregated results, leaderboard and report."""
        from eosr._progress import show_progress
        from eosr.benchmark.config import check_config, load_config
        from eosr.benchmark.runner import run_benchmark
        from eosr.benchmark.terminal import print_summary

        cfg = load_config(config)
        check_config(cfg, allow_code=allow_code, allow_untrained=allow_untrained)
        if check:
            typer.echo(f"{config}: valid ({len(cfg.methods)} methods, {len(cfg.datasets)} datasets)")
            return
        res = run_benchmark(cfg, out or Path(f"benchmark-{cfg.name}"), progress=show_progress(progress), report=report,
                            config_text=config.read_text(encoding="utf-8"), allow_code=allow_code,
                            overwrite=overwrite, allow_untrained=allow_untrained)
        print_summary(res)
