"""``eosr export MODEL OUT.onnx``: ONNX export with dynamic height/width, checked against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("export")
    def export(
        model: str = typer.Argument(..., help="model name (eosr models), shipped weights name or "
                                              "checkpoint path (.safetensors, .json, stem or its folder)"),
        out: Path = typer.Argument(..., help="output .onnx file"),
        scale: int = typer.Option(None, help="scale (architectures: default 2; checkpoints: checked)"),
        bands: str = typer.Option(None, help="comma-separated band names (checked against a checkpoint)"),
        n_bands: int = typer.Option(None, "--n-bands", help="band count of an untrained architecture"),
        height: int = typer.Option(32, help="example LR height used for tracing and checking (8..1024)"),
        width: int = typer.Option(32, help="example LR width used for tracing and checking (8..1024)"),
        frames: int = typer.Option(4, help="frame count of a multi-image model (fixed in the export)"),
        opset: int = typer.Option(17, help="ONNX opset"),
        atol: float = typer.Option(1e-4, help="largest allowed |onnxruntime - torch| (reflectance)"),
        self_ensemble: bool = typer.Option(False, "--self-ensemble/--no-self-ensemble",
                                           help="export a model's 8-pass geometric self-ensemble (default: the "
                                                "plain network, 8x cheaper)"),
    ) -> None:
        """Export a model to ONNX (dynamic batch/height/width) and verify it with onnxruntime.

        Only OUT is written; the exporter runs quietly in a temporary folder."""
        from eosr.models import export_onnx, resolve_model, weights_status
        from eosr.models.export import check_export_options
        from eosr.models.registry import UNTRAINED

        check_export_options(height, width, frames, atol)  # before loading anything

        band_list = [b for b in bands.split(",") if b.strip()] if bands else None
        m = resolve_model(model, scale=scale, bands=band_list, n_bands=n_bands, allow_untrained=True)
        if weights_status(m) == UNTRAINED:  # a legitimate developer use (deployment tests), but say so
            typer.echo(f"warning: {model} is an untrained architecture: the exported network has random weights",
                       err=True)
        rep = export_onnx(m, out, height=height, width=width, n_frames=frames, opset=opset, atol=atol,
                          self_ensemble=self_ensemble)
        sizes = "; ".join(f"{c['input_shape']} -> {c['output_shape']}" for c in rep["checked"])
        ens = " with its self-ensemble" if self_ensemble else ""
        typer.echo(f"wrote {out}{ens} (opset {opset}); onnxruntime vs torch max |diff| = {rep['max_abs_diff']:.2e} "
                   f"on {sizes}")
