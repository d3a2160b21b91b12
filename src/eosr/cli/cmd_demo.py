"""``eosr demo``: the main job on built-in real data (BigEarthNet-S2 example patches), end to end."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("eosr-demo"), "--out", "-o", help="output folder"),
        operator: str = typer.Option(None, "--operator",
                                     help="degradation operator: 'wald' (default: extra blur, the HR already "
                                          "carries the MTF) or 'full' (the whole LR-sensor PSF)"),
        psf: str = typer.Option(None, "--psf", hidden=True, help="deprecated alias of --operator"),
        progress: bool = typer.Option(None, "--progress/--no-progress",
                                      help="show progress bars (default: when stderr is a terminal)"),
        limit: int = typer.Option(None, min=1, help="use only the first N patches (a quick look; default: all six)"),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="write into a populated --out folder that holds no eosr results "
                                            "(its result files are replaced, other files kept)"),
    ) -> None:
        """Wald x2 on Sentinel-2 10 m bands: bicubic, back-projection, shipped CNN; evaluation, report, leaderboard."""
        from eosr._deprecation import renamed_option
        from eosr._progress import show_progress
        from eosr.benchmark.demo import run_demo
        from eosr.errors import ConfigError

        op = renamed_option(("--operator", operator), ("--psf", psf), "wald")
        if op not in ("wald", "full"):
            raise ConfigError(f"--operator must be 'wald' or 'full', got {op!r}")
        run_demo(out, progress=show_progress(progress), operator=op, limit=limit, overwrite=overwrite)
