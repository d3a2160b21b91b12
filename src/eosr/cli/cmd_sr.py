"""``eosr sr IN OUT --model NAME``: super-resolve a whole scene (GeoTIFF or band folder) to GeoTIFF / COG.

``eosr sr F1 F2 ... OUT --model highresnet_s2_x2``: multi-image SR of several revisits (files, a folder of
them or one time-stacked GeoTIFF) on the first frame's grid (:mod:`eosr.scene.multi`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("sr")
    def sr(
        inputs: list[Path] = typer.Argument(..., metavar="IN...", help="LR GeoTIFF, a folder of band files (*_B05.tif) "
                                            "or a Sentinel-2 .SAFE product (folder or zip); for a multi-image model: "
                                            "several frame GeoTIFFs (the first is the reference grid), a folder of "
                                            "them, or one time-stacked GeoTIFF (frame-major bands)"),
        out: Path = typer.Argument(..., metavar="OUT", help="output GeoTIFF (or COG with --cog)"),
        model: str = typer.Option(..., help="model name from `eosr models`, or a checkpoint: .safetensors, its "
                                            ".json, the stem, or a folder with one (e.g. an `eosr train` output)"),
        bands: str = typer.Option(None, help="comma-separated bands to use (names or 1-based indices)"),
        scale: str = typer.Option(None, help="scale factor r (must match the model's)"),
        tile: int = typer.Option(512, help="tile size in LR pixels"),
        overlap: int = typer.Option(None, help="tile overlap in LR pixels (default: from the receptive field)"),
        cog: bool = typer.Option(False, help="write a Cloud-Optimized GeoTIFF"),
        workers: int = typer.Option(None, help="run on a private local Dask cluster of N worker processes (TLS, "
                                               "no dashboard; at most 4 per CPU)"),
        scheduler: str = typer.Option(None, help="run on the Dask scheduler at this address (TLS settings from "
                                                 "Dask's config, see docs/scenes.md)"),
        uncertainty: bool = typer.Option(False, help="also write OUT.uncertainty.tif (model must offer it)"),
        float32: bool = typer.Option(False, "--float32", help="write float32 reflectance instead of the input type"),
        progress: bool = typer.Option(None, "--progress/--no-progress",
                                      help="show progress bars (default: when stderr is a terminal)"),
        self_ensemble: bool = typer.Option(False, "--self-ensemble/--no-self-ensemble",
                                           help="average a CNN over the 8 flips/rotations (8x the time, "
                                                "+0.1-0.2 dB; default: one pass)"),
        dn_scale: float = typer.Option(None, help="DN -> reflectance scale (default: the file's metadata or "
                                                  "product convention; required for other integer data)"),
        dn_offset: float = typer.Option(None, help="DN -> reflectance offset (default: as --dn-scale)"),
        operator: str = typer.Option(None, help="operator of a physics-based model (backprojection, a CNN "
                                                "with a back-projection skip such as carn_m_s2_x2_psf, or 20 m "
                                                "sharpening's guided estimate: guided_hpf, s2_multires_20m, where "
                                                "it is the 20 m bands' x2 PSF): 'full', 'wald' or a sensor file "
                                                "(eosr calibrate --write-sensor); default: the input's "
                                                "eosr_operator tag, else the model's card"),
        sensor: str = typer.Option(None, help="sensor of --operator full|wald (default for a CNN: its card's)"),
        guide: Path = typer.Option(None, help="20 m sharpening (s2_multires_20m, guided_hpf): GeoTIFF of the 10 m "
                                              "bands B02 B03 B04 B08, IN being a GeoTIFF of 20 m bands; the 10 m "
                                              "bands' shift against the 20 m bands is estimated, tagged "
                                              "(eosr_guide_shift_px) and warned about above 0.25 px"),
        with_10m: bool = typer.Option(False, "--with-10m", help="20 m sharpening: write the 10 m bands too (first)"),
        coregister: bool = typer.Option(False, "--coregister",
                                        help="20 m sharpening: shift the 10 m bands by their estimated shift "
                                             "against the 20 m bands before sharpening (Lanczos-3; above 0.1 px)"),
        no_size_check: bool = typer.Option(False, "--no-size-check",
                                           help="skip the disk estimate and the declared-size limit"),
        allow_untrained: bool = typer.Option(False, "--allow-untrained",
                                             help="run a learned architecture without trained weights (random-weight "
                                                  "output, for testing only)"),
        stac: bool = typer.Option(False, "--stac", help="also write a STAC item OUT.stac.json (assets, proj, bands, "
                                                        "model lineage)"),
        engine: str = typer.Option("auto", help="how a network runs: auto (ONNX Runtime for scenes of 512^2 LR px "
                                                "and more when installed, else torch), torch or onnxruntime"),
        masks: str = typer.Option(None, help="multi-image: comma-separated mask GeoTIFFs, one per frame in frame "
                                             "order (or a folder of them, or one k-band file)"),
        mask_kind: str = typer.Option("cloud", help="multi-image masks: 'cloud' (nonzero = cloud, e.g. Sentinel-2 "
                                                    "cloud masks) or 'valid' (nonzero = clear)"),
    ) -> None:
        """Super-resolve a scene tile by tile: same CRS and origin, pixel size / r, nodata and band names kept."""
        from eosr._validate import check_dn, check_number, check_scale_option
        from eosr.errors import ConfigError
        from eosr.io.raster import size_checks
        from eosr.scene.source import check_sr_budget, model_scale_hint
        from eosr.scene.sr import check_workers, super_resolve

        r = check_scale_option("--scale", scale)
        check_number("--tile", tile, lo=1, hi=8192, integer=True)
        check_number("--overlap", overlap, lo=0, hi=4096, integer=True)
        check_dn(dn_scale, dn_offset)
        from eosr.scene.engine import check_engine

        check_engine(engine)

        if workers is not None and scheduler is not None:
            raise ConfigError("give either --workers or --scheduler, not both")
        if workers is not None:
            check_workers(workers)  # before any work: 1 to what this machine allows
        band_list = [b.strip() for b in bands.split(",") if b.strip()] if bands else None
        from eosr.models.registry import check_trained

        check_trained(model, allow_untrained)  # before any reading
        from eosr.scene.api import _is_multi_model

        if len(inputs) > 1 or _is_multi_model(model):
            if mask_kind not in ("cloud", "valid"):
                raise ConfigError(f"--mask-kind must be 'cloud' or 'valid', got {mask_kind!r}")
            if (uncertainty or guide is not None or with_10m or coregister or workers or scheduler or operator
                    or sensor or stac or self_ensemble or engine not in ("auto", "torch")):
                raise ConfigError("several frames: --uncertainty, --guide, --with-10m, --coregister, --workers, "
                                  "--scheduler, --operator, --sensor, --stac, --self-ensemble and --engine "
                                  "onnxruntime do not apply")
            from eosr.scene.multi import super_resolve_frames

            mask_list = [Path(m.strip()) for m in masks.split(",") if m.strip()] if masks else None
            path = super_resolve_frames(inputs, out, model, masks=mask_list, mask_kind=mask_kind,  # type: ignore[arg-type]
                                        bands=band_list, tile=tile, overlap=overlap, cog=cog, dn_scale=dn_scale,
                                        dn_offset=dn_offset, output_dtype="float32" if float32 else None,
                                        allow_untrained=allow_untrained, scale=r)
            typer.echo(f"wrote {path}")
            return
        if masks:
            raise ConfigError("--masks applies to several frames (a multi-image model)")
        inp = inputs[0]
        with size_checks(not no_size_check):
            check_sr_budget(inp, out, scale=r or model_scale_hint(model), bands=band_list, float32=float32,
                            uncertainty=uncertainty)
            path = super_resolve(inp, out, model, bands=band_list, scale=scale, tile=tile, overlap=overlap, cog=cog,
                                 workers=workers, scheduler=scheduler, uncertainty=uncertainty,
                                 output_dtype="float32" if float32 else None, progress=progress,
                                 self_ensemble=self_ensemble, dn_scale=dn_scale, dn_offset=dn_offset,
                                 operator=operator, sensor=sensor,
                                 allow_untrained=allow_untrained, guide=guide, with_10m=with_10m,
                                 coregister=coregister, engine=engine)
        typer.echo(f"wrote {path}")
        if stac:
            from eosr.scene.api import write_stac_item

            typer.echo(f"wrote {write_stac_item(path, inp, model)}")
