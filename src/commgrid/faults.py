"""Test-only crash points: end the process abruptly at a named point, so a test can crash it exactly there.

`commgrid serve` arms one point from `COMMGRID_FAULT` at start (`name`, or `name@N` for its Nth pass);
unset, `fault_point` is one string comparison and does nothing. The exit is `os._exit(137)`, the
status of `kill -9`: nothing is flushed, closed or committed after it.

Points: `chat-after-commit` (a chat change and its events are stored; the request is not yet answered).
"""

from __future__ import annotations

import os

_armed: str | None = None
_passes_left = 0


def arm(spec: str | None) -> None:
    """Arm the point `spec` names (`name` or `name@N`); None or empty disarms."""
    global _armed, _passes_left
    name, _, count = (spec or "").partition("@")
    _armed, _passes_left = (name or None), int(count or 1)


def fault_point(name: str) -> None:
    """Exit the process here (status 137) if this is the armed point's last pass."""
    global _passes_left
    if name != _armed:
        return
    _passes_left -= 1
    if _passes_left <= 0:
        os._exit(137)
