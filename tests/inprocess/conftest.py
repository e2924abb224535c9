"""In-process fixtures: the Starlette app over a Runtime on SQLite in a temp dir, driven through httpx's ASGI
transport (no server process, no port), and a real aiohttp webhook on loopback in the same event loop.

The Runtime is opened here with its workers (delivery, catalog watch) as `commgrid serve` opens it, and the app
is built over it; requests go straight into the ASGI app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from commgrid.api.app import create_app
from commgrid.commands.topics import topic_json
from commgrid.config import Settings
from commgrid.runtime import Runtime
from tests.acceptance.receiver import Receiver

T = TypeVar("T")

#: Delivery delays divided by 600: the 10 s first retry takes 17 ms, as the subprocess tests run it.
TIME_SCALE = 600.0


@pytest.fixture
async def runtime(tmp_path) -> AsyncIterator[Runtime]:
    """A serving node's Runtime (store, services, delivery worker) over SQLite in `tmp_path`."""
    runtime = Runtime(Settings(data_dir=tmp_path, time_scale=TIME_SCALE))
    await runtime.open(workers=True)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests go into the app in process."""
    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=runtime.settings.http_base, timeout=10) as c:
        yield c


@pytest.fixture
async def webhook() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback, served by the test's own event loop."""
    receiver = await Receiver().serve()
    try:
        yield receiver
    finally:
        await receiver.close()


async def create_topic(runtime: Runtime, name: str, input_schema: str = "EventGridSchema") -> dict[str, Any]:
    """A topic as `commgrid topic create --json` shows it."""
    return topic_json(await runtime.grid.create_topic(name, input_schema), runtime.settings)


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll an async condition until it gives a true value (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return result
