"""A real `commgrid serve` per test module (SQLite), and a webhook receiver per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess


@pytest.fixture(scope="module")
def server(request, tmp_path_factory) -> Iterator[ServerProcess]:
    """The module's server, started with the module's `SERVER_ARGS` if it has any (`("--time-scale", "600")`)."""
    extra_args = getattr(request.module, "SERVER_ARGS", ())
    with ServerProcess(tmp_path_factory.mktemp("server"), extra_args=extra_args) as proc:
        yield proc


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    """A webhook receiver on loopback that answers the validation handshake."""
    with Receiver() as receiver:
        yield receiver
