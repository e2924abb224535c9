"""pytest fixtures for testing code that uses Event Grid and Communication Services against commgrid.

Registered with pytest on install (entry point `pytest11`). Fixtures:

- `commgrid`: a running `commgrid.testing.Server` (free ports, temporary data dir). One per test session by
  default; set `commgrid_scope = function` in your pytest ini for one per test. `commgrid_time_scale` (default
  60) divides delivery delays, and `commgrid_phone_numbers` (space-separated) are owned numbers.
- `event_sink`: a `commgrid.testing.EventSink` webhook, one per test, with `url` and `wait_for(type=…, subject=…)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, cast

import pytest

from commgrid.testing import EventSink, Server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("commgrid_scope", "scope of the `commgrid` fixture: session (default) or function",
                  default="session")
    parser.addini("commgrid_time_scale", "divide commgrid's delivery delays by this factor", default="60")
    parser.addini("commgrid_phone_numbers", "phone numbers the commgrid resource owns (space-separated)",
                  default="")


_Scope = Literal["session", "package", "module", "class", "function"]


def _scope(fixture_name: str, config: pytest.Config) -> _Scope:
    # pytest itself rejects a value that names no scope
    return cast(_Scope, str(config.getini("commgrid_scope") or "session"))


@pytest.fixture(scope=_scope)
def commgrid(pytestconfig: pytest.Config) -> Iterator[Server]:
    """A commgrid server for the test (or the session): `connection_string`, `ca`, `create_topic`, `subscribe`."""
    numbers = tuple(str(pytestconfig.getini("commgrid_phone_numbers")).split())
    server = Server(time_scale=float(pytestconfig.getini("commgrid_time_scale")), phone_numbers=numbers)
    with server:
        yield server


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    """A webhook endpoint recording the events commgrid delivers to it: `url`, `wait_for(type=…, subject=…)`."""
    with EventSink() as sink:
        yield sink
