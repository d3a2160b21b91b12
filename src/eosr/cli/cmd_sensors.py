"""``eosr sensors [NAME]``: list the sensor catalog or print one sensor's band table."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("sensors")
    def sensors(
        name: str = typer.Argument(None, help="sensor name (e.g. sentinel2) or a sensor .toml file"),
        scale: int = typer.Option(2, help="scale factor for the sigma column"),
    ) -> None:
        """List sensors, or print the band table of one (GSD, wavelength, MTF at Nyquist, PSF sigma)."""
        from rich.console import Console
        from rich.table import Table

        from eosr.physics import sigma_from_mtf
        from eosr.sensors import get_sensor, list_sensors

        con = Console()
        if name is None:
            t = Table(title="eosr sensors")
            for col in ("name", "bands", "GSD (m)", "description"):
                t.add_column(col)
            for s in list_sensors():
                gsds = sorted({b.gsd_m for b in s.bands})
                t.add_row(s.name, str(len(s.bands)), "/".join(f"{g:g}" for g in gsds), s.description)
            con.print(t)
            return
        s = get_sensor(name)
        t = Table(title=f"{s.name}: {s.description}")
        for col in ("band", "GSD (m)", "centre (nm)", "width (nm)", "MTF@Nyq", f"sigma x{scale} (HR px)", "source"):
            t.add_column(col)
        for b in s.bands:
            t.add_row(b.name, f"{b.gsd_m:g}", f"{b.center_nm:g}", f"{b.bandwidth_nm:g}",
                      f"{b.mtf_nyquist:.3f}" + (" *" if b.assumed_mtf else ""),
                      f"{sigma_from_mtf(b.mtf_nyquist, scale):.3f}", b.source)
        con.print(t)
        if any(b.assumed_mtf for b in s.bands):
            con.print("* assumed MTF value (no published in-flight value found; see docs/sensors.md)")
