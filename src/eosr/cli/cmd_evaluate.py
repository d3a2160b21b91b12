"""``eosr evaluate --sr SR.tif [--hr HR.tif] [--lr LR.tif]``: every metric the inputs allow, as JSON."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("evaluate")
    def evaluate(
        sr: Path = typer.Option(..., help="SR GeoTIFF (on the HR grid)"),
        hr: Path = typer.Option(None, help="HR reference: GeoTIFF, band folder or .SAFE product (same grid as SR)"),
        lr: Path = typer.Option(None, help="LR: GeoTIFF, band folder or .SAFE product (same origin, pixel size x r)"),
        sensor: str = typer.Option(None, help="sensor name or .toml file, for the operator (LR/HR fidelity)"),
        operator: str = typer.Option(None, help="operator: 'full' (sensor PSF), 'wald' (extra blur for an HR that "
                                                "carries the MTF) or a sensor file; default: the LR's eosr_operator "
                                                "tag, else full"),
        dn_scale: float = typer.Option(None, help="DN -> reflectance scale of integer inputs and of float inputs "
                                                  "holding DN (e.g. 0.00392156862745 = 1/255; float reflectance is "
                                                  "read as it is); default: file metadata or product convention"),
        dn_offset: float = typer.Option(None, help="DN -> reflectance offset of the inputs --dn-scale applies to"),
        bands: str = typer.Option(None, help="comma-separated sensor bands, in the files' band order"),
        scale: int = typer.Option(None, help="scale factor r (inferred from georeferenced SR and LR; needed for "
                                             "images without georeference)"),
        mask: Path = typer.Option(None, help="validity raster on the SR grid (non-zero = valid)"),
        uncertainty: Path = typer.Option(None, help="predictive std GeoTIFF on the SR grid (calibration metrics); "
                                                    "default: SR.uncertainty.tif when eosr sr wrote it with this SR"),
        data_range: float = typer.Option(1.0, help="data range for PSNR/SSIM (1.0 = reflectance)"),
        noise_sigma: float = typer.Option(None, help="LR noise sigma: adds lr_fidelity_sigma"),
        lpips_weights: Path = typer.Option(None, help="local LPIPS weights (.safetensors) to add lpips"),
        metrics: str = typer.Option(None, help="comma-separated metric names and/or groups (standard, fidelity, "
                                              "strata, frequency, registration, hallucination, perceptual, "
                                              "uncertainty); default: all the inputs allow"),
        json_out: Path = typer.Option(None, "--json", help="write the metrics as strict JSON here"),
        maps: Path = typer.Option(None, help="write per-pixel maps (error, hallucination, ...) as GeoTIFF here"),
        windowed: bool = typer.Option(None, "--windowed/--whole", help="force block-wise (large scenes) or whole"),
        quiet: bool = typer.Option(False, help="do not print the table"),
        no_size_check: bool = typer.Option(False, "--no-size-check",
                                           help="skip the memory/disk estimate and the declared-size limit"),
    ) -> None:
        """Evaluate an SR result: pixel, physical (LR/HR fidelity), stratified, spectral, registration metrics."""
        from eosr._validate import check_dn, check_number, check_scale_option
        from eosr.io.raster import size_checks
        from eosr.scene.evaluate import evaluate_files
        from eosr.scene.source import check_evaluate_budget

        check_scale_option("--scale", scale)
        check_number("--data-range", data_range, lo=0, lo_open=True, hi=1e9)
        check_number("--noise-sigma", noise_sigma, lo=0, lo_open=True, hi=10)
        check_dn(dn_scale, dn_offset)
        if metrics is not None:
            from eosr.evaluation.core import resolve_metrics

            resolve_metrics(metrics)  # an unknown name fails before any file is read
        with size_checks(not no_size_check):
            check_evaluate_budget(sr, whole=None if windowed is None else not windowed, maps_dir=maps)
            res = evaluate_files(sr, hr, lr, sensor=sensor, bands=bands, scale=scale, operator=operator,
                                 dn_scale=dn_scale, dn_offset=dn_offset, mask=mask, uncertainty=uncertainty,
                                 data_range=data_range, noise_sigma=noise_sigma,
                                 lpips_weights=None if lpips_weights is None else str(lpips_weights),
                                 maps_dir=maps, windowed=windowed, metrics=metrics)
        if json_out is not None:
            res.to_json(json_out)
        if not quiet:
            typer.echo(res.table())
        if json_out is not None:
            typer.echo(f"wrote {json_out}")
        if maps is not None:
            typer.echo(f"wrote maps to {maps}")
