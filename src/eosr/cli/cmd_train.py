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
        progress: bool = typer.Option(True, help="show progress bars"),
        no_size_check: bool = typer.Option(False, "--no-size-check", help="skip the memory estimate"),
    ) -> None:
        """Train (or resume training) deterministically on CPU; writes checkpoints, history and the split manifest."""
        from eosr._validate import check_number
        from eosr.io.raster import check_budget, size_checks
        from eosr.train.config import load_config, training_memory_bytes
        from eosr.train.loop import train

        check_number("--epochs", epochs, lo=1, hi=100_000, integer=True)
        from eosr.train.multires import is_multires_config

        if is_multires_config(config):  # kind = "s2_multires": the two-input 20 m sharpening trainer
            from eosr.train.multires import load_multires_config, train_multires

            mcfg = load_multires_config(config)
            if output is not None:
                mcfg.output = str(output.resolve())
            if epochs is not None:
                mcfg.epochs = epochs
            mcfg.progress = mcfg.progress and progress
            stem = train_multires(mcfg, resume=not restart, overwrite=overwrite)
            typer.echo(f"wrote {stem}.safetensors")
            return
        from eosr.train.misr import is_misr_config

        if is_misr_config(config):  # kind = "misr": the multi-image trainer (several frames with masks)
            from eosr.train.misr import load_misr_config, train_misr

            icfg = load_misr_config(config)
            if output is not None:
                icfg.output = str(output.resolve())
            if epochs is not None:
                icfg.epochs = epochs
            icfg.progress = icfg.progress and progress
            stem = train_misr(icfg, resume=not restart, overwrite=overwrite)
            typer.echo(f"wrote {stem}.safetensors")
            return
        cfg = load_config(config)
        if output is not None:
            cfg.output = str(output.resolve())
        if epochs is not None:
            cfg.epochs = epochs
        with size_checks(not no_size_check):
            check_budget(f"training (batch {cfg.batch_size} of {cfg.patch} px)", memory=training_memory_bytes(cfg))
            cfg.progress = cfg.progress and progress
            res = train(cfg, resume=not restart, overwrite=overwrite)
        typer.echo(f"wrote {res.checkpoint}.safetensors (best epoch {res.best_epoch}, score {res.best_score:.4f})")
