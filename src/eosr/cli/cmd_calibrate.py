"""``eosr calibrate HR LR``: fit the PSF kernel (family chosen by BIC), MTF at the LR Nyquist, shift, gain
and bias of each band of a real LR/HR raster pair, with a quality report and an "unreliable" flag
(docs/physics.md, "PSF calibration"); ``--write-sensor`` turns the fit into a sensor/operator file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np

    from eosr.io import Raster


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("calibrate")
    def calibrate(
        hr: Path = typer.Argument(..., help="HR raster, band folder or .SAFE product (1 band or as many as LR)"),
        lr: Path = typer.Argument(..., help="LR raster: same origin and an integer coarser pixel (or --register)"),
        json_out: Path = typer.Option(None, "--json", help="write the whole fit as JSON"),
        register_: bool = typer.Option(
            False, "--register",
            help="grids may be offset (e.g. Landsat pan/MS): estimate the integer + sub-pixel offset first"),
        dn_scale: float = typer.Option(None, "--dn-scale", help="reflectance = DN * scale + offset (both rasters)"),
        dn_offset: float = typer.Option(None, "--dn-offset", help="DN offset (with --dn-scale)"),
        write_sensor: Path = typer.Option(
            None, "--write-sensor", help="write the calibrated operator as a sensor file (.toml) for --operator"),
        scale: int = typer.Option(None, "--scale", help="scale factor (needed only without georeference)"),
        families: str = typer.Option(
            "gaussian,keys,box,separable,separable_nonneg", "--families", help="kernel families to compare (BIC)"),
        n_boot: int = typer.Option(200, "--n-boot", help="block-bootstrap resamples for the uncertainties"),
        operator: str = typer.Option(
            None, "--operator",
            help="also score a stated operator on the pair: 'full', 'wald' (with --sensor) or a sensor file; "
                 "default: the LR file's eosr_operator tag, if any"),
        sensor: str = typer.Option(None, "--sensor", help="sensor name or .toml for --operator full|wald"),
        bands: str = typer.Option(
            None, "--bands", help="comma-separated sensor band names of the LR bands, in order (else the LR's "
                                  "band descriptions)"),
        mask: Path = typer.Option(
            None, "--mask", help="validity raster on the LR (or HR) grid, non-zero = use (e.g. clear sky)"),
        no_size_check: bool = typer.Option(
            False, "--no-size-check", help="skip the memory estimate and the declared-size limit"),
    ) -> None:
        """Fit per-band PSF kernel, MTF at the LR Nyquist, shift, gain and bias of a real pair, with uncertainties."""
        from eosr._validate import check_dn, check_number, check_scale_option
        from eosr.degrade.calibrate import calibrate_pair, check_operator, schema_version
        from eosr.degrade.resolve import TAG, check_mode, resolve_operator
        from eosr.errors import GeoError, ScaleError, SensorError, ShapeError
        from eosr.io import check_pair
        from eosr.io.raster import atomic_path, integer_ratio, radiometry_record, size_checks
        from eosr.scene.source import check_calibrate_budget, is_multifile, read_scene

        check_scale_option("--scale", scale)
        check_number("--n-boot", n_boot, lo=2, hi=100_000, integer=True)
        check_dn(dn_scale, dn_offset)
        if write_sensor is not None and write_sensor.suffix.lower() != ".toml":
            raise SensorError(f"--write-sensor needs a .toml path, got {write_sensor}")
        if dn_offset is not None and dn_scale is None:
            raise ScaleError("--dn-offset needs --dn-scale")
        check_mode(operator)
        names = [b.strip() for b in bands.split(",") if b.strip()] if bands else None
        with size_checks(not no_size_check):
            check_calibrate_budget(hr, lr)
            sel = names if is_multifile(hr) or is_multifile(lr) else None  # a folder or product: select bands
            h = read_scene(hr, sel, dn_scale=dn_scale, dn_offset=dn_offset, mask=True)
            lo = read_scene(lr, sel, dn_scale=dn_scale, dn_offset=dn_offset, mask=True)
        if names is not None and len(names) != lo.shape[0]:
            raise ShapeError(f"--bands names {len(names)} bands, the LR has {lo.shape[0]}")
        if h.shape[0] not in (1, lo.shape[0]):
            raise ShapeError(f"HR has {h.shape[0]} bands and LR {lo.shape[0]}: give as many, or one HR band")
        georef = h.georeferenced and lo.georeferenced
        prior = None
        if not georef:
            if scale is None:
                raise ScaleError("rasters without georeference need --scale")
            r = int(scale)
        elif not register_:
            try:
                r = check_pair(h, lo, scale)
            except GeoError as e:
                raise GeoError(f"{e} (use --register for offset grids such as pan/MS pairs)") from None
        else:
            if h.crs != lo.crs:
                raise GeoError(f"CRS mismatch: {h.crs} vs {lo.crs}")
            r = integer_ratio(h.pixel_size, lo.pixel_size, scale)
            # where the LR origin falls on the HR pixel grid: LR sees HR displaced by -that (operator convention)
            py = (lo.transform.f - h.transform.f) / h.transform.e
            px = (lo.transform.c - h.transform.c) / h.transform.a
            prior = (-float(py), -float(px))
        fams = [f.strip() for f in families.split(",") if f.strip()]
        with size_checks(not no_size_check):
            exclude = _mask(mask, lo, h if not register_ else None, r) if mask is not None else None
        cal = calibrate_pair(
            h.data, lo.data, r, families=fams, band_names=names or lo.band_names, register=register_,
            prior_shift=prior, n_boot=n_boot, mask=exclude, hr_gsd_m=h.pixel_size[0] if georef else None,
            lr_gsd_m=lo.pixel_size[0] if georef else None)
        if register_:
            g = cal.registration
            exp = "none (no georeference)" if prior is None else f"({prior[0]:+.3f}, {prior[1]:+.3f})"
            typer.echo(f"registration: expected shift from the georeference {exp} HR px; coarse estimate "
                       f"({g['coarse_shift_px'][0]:+.3f}, {g['coarse_shift_px'][1]:+.3f}); per-band fit below "
                       "(shift: LR = D(HR(. - shift)), +y south, +x east, HR px)")
        typer.echo(cal.table())
        if cal.unreliable:
            typer.echo("UNRELIABLE fit: see the reasons above (limits in docs/physics.md, 'PSF calibration')")
        doc = ({"schema_version": schema_version()} if schema_version() else {}) | {
               "hr": str(hr), "lr": str(lr),
               "radiometry": {"hr": radiometry_record(h), "lr": radiometry_record(lo)},
               "georeferenced": georef, **cal.as_dict()}
        choice = resolve_operator(operator, sensor=sensor,
                                  bands=names or (lo.band_names if sensor is not None and lo.described else None),
                                  scale=r, n_bands=lo.shape[0], tag=lo.tags.get(TAG), default=None)
        if choice.operator is not None:
            chk = check_operator(h.data, lo.data, choice.operator, cal, mask=exclude)
            typer.echo(f"\nstated operator ({choice.mode}, from the {choice.source}) on the same pixels, "
                       "gain/bias refitted, the fit's sub-pixel shift applied:")
            typer.echo(chk.table())
            doc["stated_operator"] = {"mode": choice.mode, "source": choice.source, **chk.as_dict()}
        if mask is not None:
            doc["mask"] = str(mask)
        if write_sensor is not None:
            cal.write_sensor(write_sensor, description=f"calibrated x{r} operator from {hr.name} -> {lr.name}")
            doc["sensor_file"] = str(write_sensor)
            typer.echo(f"sensor file: {write_sensor}")
        if json_out is not None:
            with atomic_path(json_out) as tmp:
                tmp.write_text(json.dumps(doc, indent=2, allow_nan=False))


def _mask(path: Path, lo: Raster, hr: Raster | None, r: int) -> np.ndarray:
    """Exclusion mask (h, w), True = leave out, from a validity raster (non-zero = use) on the LR grid,
    or on the HR grid (``hr`` given: pixel-is-area, same origin): an LR pixel is used only if its whole
    block is valid. A georeferenced mask must share the grid's origin and pixel size."""
    import numpy as np

    from eosr.errors import GeoError, ShapeError
    from eosr.io import read_raster

    v = read_raster(path, dn_scale=1.0)
    if v.shape[0] != 1:
        raise ShapeError(f"--mask needs one band, {path} has {v.shape[0]}")
    ok = np.isfinite(v.data[0]) & (v.data[0] != 0)
    h, w = int(lo.shape[1]), int(lo.shape[2])
    for grid, shape in ((lo, (h, w)), (hr, (h * r, w * r))):
        if grid is None or ok.shape != shape:
            continue
        if v.georeferenced and grid.georeferenced and not v.transform.almost_equals(grid.transform):
            raise GeoError(f"--mask {path} is {shape[0]}x{shape[1]} but not on the same grid (origin, pixel size)")
        return ~ok if grid is lo else ~ok.reshape(h, r, w, r).all(axis=(1, 3))
    raise ShapeError(f"--mask is {ok.shape[0]}x{ok.shape[1]}; it must be on the LR grid ({h}x{w})"
                     + ("" if hr is None else f" or the HR grid ({h * r}x{w * r})"))
