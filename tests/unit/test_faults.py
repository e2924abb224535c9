"""The test-only crash points: inert unless armed, and an exit with kill -9's status exactly where armed."""

from __future__ import annotations

import subprocess
import sys

from commgrid import faults


def _run(spec: str, passes: int) -> int:
    code = (f"from commgrid import faults\nfaults.arm({spec!r})\n"
            f"for _ in range({passes}):\n    faults.fault_point('here')\n")
    return subprocess.run([sys.executable, "-c", code], timeout=30).returncode


def test_an_unarmed_or_other_point_does_nothing() -> None:
    faults.arm(None)
    faults.fault_point("here")
    faults.arm("elsewhere")
    try:
        faults.fault_point("here")
    finally:
        faults.arm(None)


def test_the_armed_point_exits_137_on_its_pass() -> None:
    assert _run("here", 1) == 137
    assert _run("here@3", 2) == 0
    assert _run("here@3", 3) == 137
