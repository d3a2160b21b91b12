"""The package's dependency direction (docs/conventions.md, "Layout"): sensors -> physics -> degrade ->
metrics / data / models -> evaluation / train / scene -> benchmark -> cli. A module may import from its own
layer and the layers below it, never from a layer above (lazy function-level imports included); nothing
imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "eosr"
#: Layer of each top-level package or module of eosr (same layer: free to import each other).
LAYER = {"errors": 0, "_arrays": 0, "_schema": 0, "_cache": 0, "_alloc": 0, "_threads": 0, "_progress": 0,
         "_windows": 0, "_lazy": 0, "_deprecation": 0, "sensors": 1, "io": 1, "physics": 2, "_validate": 2,
         "degrade": 3, "metrics": 4, "data": 4, "models": 4, "losses": 4, "trust": 4,
         "evaluation": 5, "train": 5, "scene": 5, "xarray": 5, "benchmark": 6, "cli": 7}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eosr."):
            out.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("eosr.")]
    return out


def test_every_package_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.stem != "__init__"}
    assert names <= set(LAYER), f"give these a layer: {sorted(names - set(LAYER))}"


@pytest.mark.parametrize("pkg", sorted(LAYER))
def test_imports_flow_one_way(pkg: str) -> None:
    files = [ROOT / f"{pkg}.py"] if (ROOT / f"{pkg}.py").is_file() else sorted((ROOT / pkg).rglob("*.py"))
    wrong = [f"{f.relative_to(ROOT)}:{line} imports eosr.{tgt}" for f in files for line, tgt in _imports(f)
             if tgt in LAYER and (LAYER[tgt] > LAYER[pkg] or (tgt == "cli" and pkg != "cli"))]
    assert not wrong, "; ".join(wrong)
