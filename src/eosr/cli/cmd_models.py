"""``eosr models``: list every registered model and shipped checkpoint (scale, bands, parameters, receptive field,
and whether its weights are trained, untrained (needs --allow-untrained) or not needed)."""

from __future__ import annotations

import json

import typer

#: how the table marks the ``weights`` field of :func:`eosr.models.describe_model`
WEIGHTS_LABEL = {"trained": "trained weights", "untrained": "untrained (--allow-untrained)",
                 "none needed": "no weights needed"}


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command("models")
    def models(
        as_json: bool = typer.Option(False, "--json", help='print JSON {"schema_version", "models": [...]} '
                                                           "instead of a table"),
        mlm: str = typer.Option(None, "--mlm", metavar="WEIGHTS",
                                help="print the STAC MLM item of shipped weights or a checkpoint (needs eosr[stac])"),
    ) -> None:
        """List the SR models: architectures (default options) and shipped trained weights."""
        from eosr.models import describe_model, list_models

        if mlm is not None:
            from eosr.models.mlm import mlm_item

            typer.echo(json.dumps(mlm_item(mlm), indent=2, allow_nan=False))
            return

        rows = [describe_model(n) for n in list_models()]
        if as_json:
            from eosr import SCHEMA_VERSION

            typer.echo(json.dumps({"schema_version": SCHEMA_VERSION, "models": rows}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title="eosr models (architectures at default options)")
        for col in ("name", "weights", "kind", "scale", "bands", "params", "receptive field (LR px)"):
            t.add_column(col, no_wrap=col in ("name", "weights"))
        for r in rows:
            bands = ",".join(r["bands"]) if r.get("bands") else ("any" if r.get("n_bands") is None else
                                                                  f"{r['n_bands']} (any names)")
            kind = (r.get("kind", "") + (" [multi-image]" if r.get("multi_image") else "")
                    + (" [--uncertainty]" if r.get("uncertainty") else ""))
            params = f"{r['params']:,}" if r.get("params") is not None else "?"
            t.add_row(r["name"], WEIGHTS_LABEL.get(r["weights"], r["weights"]), kind, f"x{r['scale']}", bands, params,
                      str(r.get("receptive_field")))
        Console(width=160).print(t)
