"""``eosr train CONFIG.toml``: train a model from a validated config (thin layer over eosr.train)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("train")
    def train_cmd(
        config: Path = typer.Argument(..., help="training config (TOML); see configs/*.toml"),
        output: Path = typer.Option(None, help="override the config's output folder"),
        epochs: int = typer.Option(None, help="override the number of epochs"),
        restart: bool = typer.Option(False, help="ignore a saved state in the output folder and start over"),
        overwrite: bool = typer.Option(False, help="use a non-empty output folder that is not an eosr training "
                                                   "folder (eosr's files in it are replaced, others kept)"),
        progress: bool = typer.Option(None, "--progress/--no-progress",
                                      help="show progress bars (default: when stderr is a terminal)"),
        no_size_check: bool = typer.Option(False, "--no-size-check", help="skip the memory estimate"),
    ) -> None:
        """Train (or resume training) deterministically on CPU; writes checkpoints, history and the split manifest."""
        from eosr._progress import show_progress
        from eosr._validate import check_number
        from eosr.io.raster import check_budget, size_checks
        from eosr.train.config import load_config, training_memory_bytes
        from eosr.train.loop import train

        check_number("--epochs", epochs, lo=1, hi=100_000, integer=True)
        from eosr.train.config import config_kind

        kind = config_kind(config)
        if kind in ("s2_multires", "misr"):  # the two-input 20 m sharpening / the multi-image (frames + masks) trainer
            if kind == "s2_multires":
                from eosr.train.multires import load_multires_config as load_kind
                from eosr.train.multires import train_multires as train_kind
            else:
                from eosr.train.misr import load_misr_config as load_kind  # type: ignore[assignment]
                from eosr.train.misr import train_misr as train_kind  # type: ignore[assignment]
            kcfg = load_kind(config)
            if output is not None:
                kcfg.output = str(output.resolve())
            if epochs is not None:
                kcfg.epochs = epochs
            kcfg.progress = kcfg.progress and show_progress(progress)
            stem = train_kind(kcfg, resume=not restart, overwrite=overwrite, log=typer.echo)  # type: ignore[arg-type]
            typer.echo(f"wrote {stem}.safetensors")
            return
        cfg = load_config(config)
        if output is not None:
            cfg.output = str(output.resolve())
        if epochs is not None:
            cfg.epochs = epochs
        with size_checks(not no_size_check):
            check_budget(f"training (batch {cfg.batch_size} of {cfg.patch} px)", memory=training_memory_bytes(cfg))
            cfg.progress = cfg.progress and show_progress(progress)
            res = train(cfg, resume=not restart, overwrite=overwrite, log=typer.echo)  # epoch lines: stdout
        typer.echo(f"wrote {res.checkpoint}.safetensors (best epoch {res.best_epoch}, score {res.best_score:.4f})")
