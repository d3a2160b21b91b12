"""``eosr demo``: the main job on built-in real data, end to end.

Data: the six BigEarthNet-S2 example patches (Sentinel-2 L2A, 120 x 120 at 10 m) shipped by the PyPI
package ``bigearthnet-common``. Wald protocol x2 on the 10 m bands B02 B03 B04 B08 with the
Sentinel-2 operator (per-band Gaussian PSF from the MTF at Nyquist). Methods: bicubic,
back-projection, and the shipped CNN ``carn_m_s2_x2`` when its weights are installed. Full
evaluation, the HTML report, and a leaderboard in the terminal. These patches are evaluation data
only: shipped weights are never trained on them (docs/conventions.md#evaluation-data-never-trains-shipped-weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eosr._deprecation import renamed_option
from eosr.benchmark.config import BenchmarkConfig, parse_config

#: The shipped CNN the demo evaluates when its weights exist.
DEMO_CNN = "carn_m_s2_x2"


def cnn_available(name: str = DEMO_CNN) -> bool:
    """Whether the shipped CNN's weights are installed (``eosr.models.shipped_weights``)."""
    try:
        from eosr.models import shipped_weights
    except ImportError:
        return False
    return name in shipped_weights()


def demo_config(operator: str | None = None, with_cnn: bool | None = None, limit: int | None = None, *,
                psf: str | None = None) -> tuple[BenchmarkConfig, list[str]]:
    """The demo benchmark config, and notes to print (e.g. that the CNN weights are missing).

    ``operator``: ``"wald"`` (default) or ``"full"`` (``psf`` is its deprecated alias). ``limit`` keeps
    only the first patches (a quick look; the demo proper uses all six)."""
    operator = renamed_option(("operator", operator), ("psf", psf), "wald")
    notes = []
    methods: list[dict[str, Any]] = [{"name": "bicubic"}, {"name": "backprojection"}]
    use_cnn = cnn_available() if with_cnn is None else with_cnn
    if use_cnn:
        methods.append({"name": DEMO_CNN})
    else:
        notes.append(f"the shipped CNN {DEMO_CNN!r} is not installed (no weights in eosr/models/weights/): "
                     "the demo runs the baselines only")
    data = {
        "name": "demo-bigearthnet-s2-x2",
        "methods": methods,
        "datasets": [{"name": "bigearthnet-s2", "kind": "samples", "sensor": "sentinel2",
                      "bands": ["B02", "B03", "B04", "B08"], "scale": 2, "operator": operator, "limit": limit}],
    }
    return parse_config(data), notes


def run_demo(out_dir: str | Path = "eosr-demo", *, progress: bool = True, operator: str | None = None,
             limit: int | None = None, console: Any = None, psf: str | None = None, overwrite: bool = False) -> Any:
    """Run the demo into ``out_dir``, print the leaderboard and where the report is; return the result.

    ``operator``: ``"wald"`` (default) or ``"full"`` (``psf`` is its deprecated alias). A populated
    ``out_dir`` that holds no eosr results is refused unless ``overwrite``."""

    from rich.console import Console

    from eosr.benchmark.runner import run_benchmark
    from eosr.benchmark.terminal import print_summary

    con = console or Console()
    operator = renamed_option(("operator", operator), ("psf", psf), "wald")
    cfg, notes = demo_config(operator, limit=limit)
    for n in notes:
        con.print(f"note: {n}")
    blur = "Wald extra blur" if operator == "wald" else "full PSF"
    con.print("eosr demo: BigEarthNet-S2 example patches (bigearthnet-common), Wald protocol x2 on "
              f"B02 B03 B04 B08 with the Sentinel-2 operator ({blur}); "
              f"methods: {', '.join(m.name for m in cfg.methods)}")
    res = run_benchmark(cfg, out_dir, progress=progress, config_text=_to_toml(cfg), overwrite=overwrite)
    print_summary(res, con)
    return res


def _to_toml(cfg: BenchmarkConfig) -> str:
    """A TOML rendering of the demo config (so the output folder holds a re-runnable config.toml)."""
    lines = [f'name = "{cfg.name}"', ""]
    for d in cfg.datasets:
        lines += ["[[datasets]]", f'name = "{d.name}"', f'kind = "{d.kind}"', f'sensor = "{d.sensor}"',
                  "bands = [" + ", ".join(f'"{b}"' for b in d.bands or []) + "]", f"scale = {d.scale}",
                  f'operator = "{d.operator}"'] + ([f"limit = {d.limit}"] if d.limit else []) + [""]
    for m in cfg.methods:
        lines += ["[[methods]]", f'name = "{m.name}"', ""]
    return "\n".join(lines)
