"""``eosr demo``: the main job on built-in real data (BigEarthNet-S2 example patches), end to end."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("eosr-demo"), "--out", "-o", help="output folder"),
        psf: str = typer.Option("wald", help="Wald-protocol blur: 'wald' (extra blur, HR already carries the MTF) "
                                             "or 'full' (the whole LR-sensor PSF)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
        limit: int = typer.Option(None, min=1, help="use only the first N patches (a quick look; default: all six)"),
    ) -> None:
        """Wald x2 on Sentinel-2 10 m bands: bicubic, back-projection, shipped CNN; evaluation, report, leaderboard."""
        from eosr.benchmark.demo import run_demo
        from eosr.errors import ConfigError

        if psf not in ("wald", "full"):
            raise ConfigError(f"--psf must be 'wald' or 'full', got {psf!r}")
        run_demo(out, progress=progress, psf=psf, limit=limit)
