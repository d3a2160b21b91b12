"""``eosr simulate HR LR``: degrade a GeoTIFF through the sensor operator, keeping georeference."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("simulate")
    def simulate(
        hr: Path = typer.Argument(..., help="HR GeoTIFF, band folder or Sentinel-2 .SAFE product"),
        lr: Path = typer.Argument(..., help="output LR GeoTIFF"),
        sensor: str = typer.Option("sentinel2", help="sensor name or .toml file"),
        bands: str = typer.Option(None, help="comma-separated sensor bands, in the file's band order"),
        scale: str = typer.Option("2", help="integer scale factor r >= 1 (1 = blur only)"),
        mtf: str = typer.Option(None, help="override: MTF at LR Nyquist, one value or one per band"),
        operator: str = typer.Option(None, help="'full' (the sensor's whole PSF, default), 'wald' (extra blur "
                                                "sqrt(r^2-1)... for an HR that carries the MTF) or a sensor file"),
        wald: bool = typer.Option(False, hidden=True, help="deprecated: use --operator wald"),
        noise: float = typer.Option(0.0, help="Gaussian noise sigma (reflectance)"),
        snr: float = typer.Option(None, help="signal-dependent noise: SNR at --snr-reference"),
        snr_reference: float = typer.Option(0.1, help="reference reflectance of --snr"),
        bits: int = typer.Option(None, help="quantise to this bit depth over [0, --quant-range]"),
        quant_range: float = typer.Option(1.0, help="reflectance at full scale for --bits"),
        gain: float = typer.Option(1.0, help="radiometric gain"),
        offset: float = typer.Option(0.0, help="radiometric offset (reflectance)"),
        frames: int = typer.Option(0, help="write a multi-image set of N frames (LR becomes a folder)"),
        max_shift: float = typer.Option(1.0, help="frames: max random shift in LR pixels"),
        crop: bool = typer.Option(False, help="crop HR to a multiple of the scale instead of failing"),
        seed: int = typer.Option(0, help="random seed"),
        dn_scale: float = typer.Option(None, help="DN -> reflectance scale (default: the file's metadata or "
                                                  "product convention; required for other integer data)"),
        dn_offset: float = typer.Option(None, help="DN -> reflectance offset"),
        no_size_check: bool = typer.Option(False, "--no-size-check",
                                           help="skip the memory/disk estimate and the declared-size limit"),
    ) -> None:
        """Simulate LR data from HR with the sensor-aware operator (PSF from MTF, area-aligned decimation)."""
        from eosr._validate import check_dn, check_numbers, check_scale_option
        from eosr.io.raster import size_checks
        from eosr.scene.simulate import simulate_file
        from eosr.scene.source import check_simulate_budget

        r = check_scale_option("--scale", scale)
        check_numbers({
            "--noise": (noise, dict(lo=0, hi=10)), "--snr": (snr, dict(lo=0, lo_open=True, hi=1e6)),
            "--snr-reference": (snr_reference, dict(lo=0, lo_open=True, hi=10)),
            "--bits": (bits, dict(lo=1, hi=32, integer=True)),
            "--quant-range": (quant_range, dict(lo=0, lo_open=True, hi=1e6)),
            "--gain": (gain, dict(lo=0, lo_open=True, hi=1e3)), "--offset": (offset, dict(lo=-10, hi=10)),
            "--frames": (frames, dict(lo=0, hi=1000, integer=True)), "--max-shift": (max_shift, dict(lo=0, hi=100)),
            "--seed": (seed, dict(lo=0, hi=2**63 - 1, integer=True)),
        })
        check_dn(dn_scale, dn_offset)
        if wald:
            typer.echo("warning: --wald is deprecated; use --operator wald", err=True)
        with size_checks(not no_size_check):
            check_simulate_budget(hr, lr, scale=r or 1, frames=frames)
            out = simulate_file(
                hr, lr, sensor=sensor, bands=bands, scale=scale, mtf=mtf, wald=wald, noise=noise, snr=snr,
                snr_reference=snr_reference, bits=bits, quant_range=quant_range, gain=gain, offset=offset,
                frames=frames, max_shift=max_shift, crop=crop, seed=seed, dn_scale=dn_scale, operator=operator,
                dn_offset=dn_offset,
            )
        typer.echo(f"wrote {out}")
        if out.is_file():
            from eosr.io.raster import open_quietly

            with open_quietly(out) as ds:
                window = ds.tags().get("eosr_hr_window")
            if window:
                typer.echo(f"the LR covers {window} (eosr evaluate uses the common footprint of HR and SR)")
