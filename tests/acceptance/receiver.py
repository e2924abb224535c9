"""A real webhook receiver for delivery tests: an aiohttp app on a loopback port, in a background thread
(`start`) or in the caller's running event loop (`serve`, for in-process tests).

Each path is one endpoint with its own behaviour (how it answers the validation handshake, which statuses it
returns to deliveries, how long it takes); every request is recorded for the test to inspect.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from commgrid.testing import LoopbackApp


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float
    status: int = 0  # what the receiver answered

    @property
    def kind(self) -> str:
        return self.headers.get("aeg-event-type", "")

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        parsed = self.json()
        return parsed if isinstance(parsed, list) else [parsed]


@dataclass
class Behaviour:
    validation: str = "sync"  # sync | manual | fail | wrong-code | hang | stream (of body_bytes)
    allowed_origin: str | None = "eventgrid.azure.net"  # answer to the CloudEvents OPTIONS; None: 405
    statuses: list[int] = field(default_factory=list)  # one per delivery, then `status`
    status: int = 200
    delay: float = 0.0
    body: str = ""  # the text of each delivery's response
    body_bytes: int = 0  # stream a response body this long (to check the server reads only an excerpt)
    fail_ratio: float = 0.0  # answer this share of deliveries (at random) with 500
    streamed: int = 0  # how much of it the server took before closing


class Receiver:
    """Webhook endpoints on 127.0.0.1; `endpoint(path, ...)` registers one and returns its URL."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: list[Received] = []
        self._threaded: LoopbackApp | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._rng = random.Random(7)

    def start(self) -> Receiver:
        """Serve from a background thread (for tests whose commgrid runs in a subprocess)."""
        self._threaded = LoopbackApp(self._handle, name="webhook-receiver").start()
        self.port = self._threaded.port
        return self

    async def serve(self) -> Receiver:
        """Serve from the running event loop: for tests whose commgrid runs in the same loop."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        """Stop serving (after `serve`)."""
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop serving (after `start`)."""
        if self._threaded is not None:
            self._threaded.stop()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoint(self, path: str, **behaviour: Any) -> str:
        """Register (or reset) the endpoint at `/path` and return its URL."""
        self.behaviours[path] = Behaviour(**behaviour)
        return f"http://127.0.0.1:{self.port}/{path}"

    def behave(self, path: str, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.behaviours[path], key, value)

    def received(self, path: str, kind: str = "Notification") -> list[Received]:
        return [r for r in list(self.requests) if r.path == f"/{path}" and (kind == "*" or r.kind == kind)]

    def events(self, path: str) -> list[dict[str, Any]]:
        """Every event delivered to `path` (batches flattened), in arrival order."""
        return [e for r in self.received(path) for e in r.events()]

    def wait(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def until(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """`wait` for in-process tests: polls without blocking the event loop the server runs in."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_events(self, path: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        self.wait(lambda: len(self.events(path)) >= count, timeout, f"{count} events at /{path}")
        return self.events(path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.method, request.path, request.query_string,
                            {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        self.requests.append(received)
        b = self.behaviours.get(request.path.lstrip("/"), Behaviour())
        if request.method == "OPTIONS":
            if b.allowed_origin is None:
                return web.Response(status=405)
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": b.allowed_origin, "Allow": "POST"})
        if received.kind == "SubscriptionValidation":
            if b.validation == "stream":  # a 200 whose body never ends
                return await self._stream(request, b, 200)
            return await self._validate(b, received)
        if b.delay:
            await asyncio.sleep(b.delay)
        status = b.statuses.pop(0) if b.statuses else b.status
        if b.fail_ratio and self._rng.random() < b.fail_ratio:
            status = 500
        received.status = status
        if b.body_bytes:
            return await self._stream(request, b, status)
        return web.Response(status=status, text=b.body)

    @staticmethod
    async def _stream(request: web.Request, b: Behaviour, status: int) -> web.StreamResponse:
        response = web.StreamResponse(status=status)
        await response.prepare(request)
        chunk = b"0" * 65536
        try:
            while b.streamed < b.body_bytes:
                await response.write(chunk)
                b.streamed += len(chunk)
        except (OSError, RuntimeError):  # the server closed the connection: it read no further
            pass
        return response

    async def _validate(self, b: Behaviour, received: Received) -> web.Response:
        code = received.events()[0]["data"]["validationCode"]
        if b.validation == "sync":
            return web.json_response({"validationResponse": code})
        if b.validation == "manual":
            return web.Response(status=200, text="")
        if b.validation == "wrong-code":
            return web.json_response({"validationResponse": "not-the-code"})
        if b.validation == "hang":
            await asyncio.sleep(5)
        return web.Response(status=500)
