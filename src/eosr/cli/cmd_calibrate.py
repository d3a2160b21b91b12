"""``eosr calibrate HR LR``: fit the PSF (sigma, MTF at Nyquist), sub-pixel offset, gain and bias of
a real LR/HR GeoTIFF pair, so the operator of a cross-sensor pair is derived instead of guessed."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("calibrate")
    def calibrate(
        hr: Path = typer.Argument(..., help="HR GeoTIFF"),
        lr: Path = typer.Argument(..., help="LR GeoTIFF on the same origin, integer coarser pixel size"),
        json_out: Path = typer.Option(None, "--json", help="write the fit as JSON"),
    ) -> None:
        """Fit per-band Gaussian PSF sigma, MTF at the LR Nyquist, offset, gain and bias of a real pair."""
        from eosr.degrade.calibrate import calibrate_psf
        from eosr.errors import ShapeError
        from eosr.io import check_pair, read_raster
        from eosr.io.raster import atomic_path

        h, lo = read_raster(hr), read_raster(lr)
        r = check_pair(h, lo)
        if h.shape[0] != lo.shape[0]:
            raise ShapeError(f"HR has {h.shape[0]} bands, LR {lo.shape[0]}")
        fit = calibrate_psf(h.data, lo.data, r)
        rows = [
            {"band": b, "sigma_hr_px": s, "mtf_at_lr_nyquist": m, "shift_y_px": dy, "shift_x_px": dx,
             "gain": g, "bias": o, "rmse": e}
            for b, s, m, dy, dx, g, o, e in zip(h.band_names, fit.sigma, fit.mtf, fit.shift_y, fit.shift_x,
                                                fit.gain, fit.bias, fit.rmse, strict=True)
        ]
        for row in rows:
            typer.echo("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if json_out is not None:
            with atomic_path(json_out) as tmp:
                tmp.write_text(json.dumps({"scale": r, "bands": rows}, indent=2))
