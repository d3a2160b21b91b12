"""The README's Python example runs as written and prints what it promises.

Every fenced ``python`` block of README.md is executed in order in one fresh namespace (as a reader
would paste them), from a temporary working directory; a block that raises fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    """The fenced ``python`` code blocks of a Markdown text, in order."""
    return [m.group(1) for m in _BLOCK.finditer(text)]


def test_block_extraction() -> None:
    md = "a\n```python\nx = 1\n```\nb\n```bash\nmake test\n```\n```python\ny = x + 1\n```\n"
    assert python_blocks(md) == ["x = 1\n", "y = x + 1\n"]


@pytest.mark.slow
def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                             ) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    ns: dict[str, object] = {"__name__": "__readme__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), ns)  # noqa: S102 - the README's own code
    out = capsys.readouterr().out
    # the example makes its own inputs (nothing may come from outside the block) ...
    for name in ("hr", "lr", "sr"):
        assert name in ns, f"the README example does not define {name!r}"
    # ... and prints the evaluation table, with the headline metrics and the bands as columns
    first = out.splitlines()[0].split() if out else []
    assert first[:2] == ["metric", "value"], out[:200]
    for metric in ("psnr", "lr_fidelity", "hr_fidelity", "shift_x_px", "gain", "hallucination", "improvement"):
        assert re.search(rf"^\s*[↑↓—]?\s*{metric}\s", out, re.MULTILINE), f"{metric} missing from the README output"
    assert first[2:] == ["unit", "B02", "B03", "B04", "B08"]
