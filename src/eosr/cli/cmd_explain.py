"""``eosr explain MODEL``: layer-level analysis of an SR model as figures and JSON (thin layer over
:func:`eosr.trust.explain.explain`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("explain")
    def explain_cmd(
        model: str = typer.Argument(..., help="registry name (e.g. carn, bicubic, rcan-ca), shipped weights, or "
                                              "checkpoint path (.safetensors, .json, stem, or its folder)"),
        stimuli: str = typer.Option("flat,edge,texture,stripes,noise",
                                    help="comma-separated stimuli: flat, edge, texture, stripes, noise"),
        image: Path = typer.Option(None, help="LR GeoTIFF to analyse (support map, attribution, attention)"),
        out: Path = typer.Option(Path("explain"), help="output folder (created)"),
        scale: int = typer.Option(2, help="scale factor for architectures built by name"),
        n_bands: int = typer.Option(None, help="band count for architectures built by name (default: image or 4)"),
        size: int = typer.Option(32, help="stimulus size in LR pixels (8..512)"),
        max_lr: int = typer.Option(96, help="analyse at most this centre crop of the image, the only part read "
                                            "(LR pixels, 8..1024)"),
        ig_steps: int = typer.Option(16, help="integrated-gradients steps"),
        erf_samples: int = typer.Option(4, help="random inputs averaged for the effective receptive field"),
        figures: bool = typer.Option(True, help="write PNG figures"),
        no_size_check: bool = typer.Option(False, "--no-size-check",
                                           help="read the centre window of a raster above the declared-size limit"),
        dn_scale: float = typer.Option(None, help="DN -> reflectance scale of --image (default: the file's metadata "
                                                  "or product convention; required for other integer data)"),
        dn_offset: float = typer.Option(None, help="DN -> reflectance offset of --image (default: as --dn-scale)"),
        allow_untrained: bool = typer.Option(False, "--allow-untrained",
                                             help="with --image: analyse a learned architecture without trained "
                                                  "weights (without --image it is always allowed, and reported)"),
    ) -> None:
        """Write explain.json and figures: activations under stimuli, hallucination trace, filter responses,
        effective receptive field; with --image also the support map, attribution and attention maps."""
        from eosr._validate import check_dn
        from eosr.io.raster import radiometry_record, size_checks
        from eosr.models.registry import check_trained
        from eosr.trust.explain import canonical_name, check_explain_options, explain, read_centre_window, resolve_model

        check_explain_options(size=size, max_lr=max_lr, ig_steps=ig_steps, erf_samples=erf_samples)
        check_dn(dn_scale, dn_offset)
        if image is not None:  # an SR of a real image from random weights: refused before anything is read
            check_trained(canonical_name(model), allow_untrained)
        georef = None
        arr = None
        offset = (0, 0)
        radiometry = None
        if image is not None:
            with size_checks(not no_size_check):  # only the analysed crop is read
                ras, offset = read_centre_window(image, max_lr, dn_scale=dn_scale, dn_offset=dn_offset)
            arr = ras.data
            georef = {"crs": ras.crs, "transform": ras.transform}
            radiometry = radiometry_record(ras)
            n_bands = n_bands or arr.shape[0]
        net = resolve_model(model, scale=scale, n_bands=n_bands, allow_untrained=allow_untrained or image is None)
        kinds = [s.strip() for s in stimuli.split(",") if s.strip()]
        doc = explain(net, out, stimuli=kinds, image=arr, size=size, n_bands=n_bands, max_lr=max_lr,
                      figures=figures, georef=georef, ig_steps=ig_steps, erf_samples=erf_samples,
                      image_offset=offset, image_radiometry=radiometry)
        if "warning" in doc:
            typer.echo(f"warning: {doc['warning']}", err=True)
        typer.echo(f"wrote {out / 'explain.json'} ({len(doc.get('figures', []))} figures)")
