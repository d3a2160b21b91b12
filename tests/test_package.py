"""Package hygiene: every lazily exported public name resolves, unknown names fail, the CLI is never imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

LAZY = ["eosr.scene", "eosr.losses", "eosr.train", "eosr.benchmark", "eosr.data", "eosr.metrics", "eosr.trust"]


@pytest.mark.parametrize("package", LAZY)
def test_every_export_resolves(package: str) -> None:
    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018


def test_import_is_light_and_no_module_imports_the_cli() -> None:
    code = ("import sys, eosr, eosr.scene, eosr.losses, eosr.train, eosr.benchmark; "
            "print('torch' in sys.modules, any(m.startswith('eosr.cli') for m in sys.modules)); "
            "eosr.evaluate; import eosr.scene.sr, eosr.benchmark.runner, eosr.train.loop, eosr.trust.explain; "
            "print(any(m.startswith('eosr.cli') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"], out
