"""The body read timeout (`BodyReadTimeout`): each chunk must arrive within the timeout of the previous one.

Driven as an ASGI app in the test's event loop, with chunks fed through a queue as a server hands them over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from commgrid.read_timeouts import BodyReadTimeout, RequestTimeout

TIMEOUT = 0.2


async def read_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that reads the whole body and answers with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.body", "body": str(size).encode()})


def request(middleware: BodyReadTimeout, chunks: asyncio.Queue[bytes | None]) -> asyncio.Task[list[Any]]:
    """A request whose body chunks come from `chunks` (None ends the body); the task gives what was sent."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        chunk = await chunks.get()
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> list[Any]:
        await middleware({"type": "http", "path": "/p"}, receive, send)
        return sent

    return asyncio.create_task(run())


async def test_a_stalled_body_is_a_request_timeout_after_the_timeout() -> None:
    middleware = BodyReadTimeout(read_body, TIMEOUT)
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    await chunks.put(b"[{")
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await request(middleware, chunks)
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 0.2


async def test_chunks_each_within_the_timeout_pass_however_long_the_body_takes() -> None:
    middleware = BodyReadTimeout(read_body, TIMEOUT)
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    task = request(middleware, chunks)
    for _ in range(5):  # 5 × 0.1 s: the whole body takes longer than the timeout, no chunk does
        await chunks.put(b"x" * 10)
        await asyncio.sleep(TIMEOUT / 2)
    await chunks.put(None)
    assert (await task)[-1]["body"] == b"50"


async def test_a_stalled_request_times_out_while_others_keep_completing() -> None:
    middleware = BodyReadTimeout(read_body, TIMEOUT)
    stalled: asyncio.Queue[bytes | None] = asyncio.Queue()
    stuck = request(middleware, stalled)
    for _ in range(6):  # quick requests before, during and after the stalled one's timeout
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        quick = request(middleware, chunks)
        await chunks.put(b"abc")
        await chunks.put(None)
        assert (await quick)[-1]["body"] == b"3"
        await asyncio.sleep(TIMEOUT / 3)
    with pytest.raises(RequestTimeout):
        await stuck
    later: asyncio.Queue[bytes | None] = asyncio.Queue()
    with pytest.raises(RequestTimeout):  # the timer is set again for a later stall
        await request(middleware, later)


async def test_a_request_cancelled_while_reading_stays_cancelled() -> None:
    middleware = BodyReadTimeout(read_body, TIMEOUT)
    task = request(middleware, asyncio.Queue())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(TIMEOUT * 1.5)  # its timer comes and finds nothing to do
    assert not middleware._waiting and not middleware._expired
