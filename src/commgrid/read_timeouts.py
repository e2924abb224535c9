"""Header and body read timeouts, as a front end (nginx's `client_header_timeout`, `client_body_timeout`) sets them.

uvicorn bounds only idle keep-alive connections: a client that opens a connection and sends half its headers,
or stops in the middle of a body, would otherwise hold a connection and a task forever.
- Headers: a connection must deliver a request's complete headers within the timeout of its first byte (or
  of being opened); otherwise it is closed.
- Body: each chunk of a request body must arrive within the timeout of the previous one; otherwise the
  request is answered 408 `RequestTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from commgrid.errors import CommgridError

log = logging.getLogger("commgrid.api")

DEFAULT_READ_TIMEOUT = 30.0


class RequestTimeout(CommgridError, status=408, code="RequestTimeout"):
    """The client stopped sending its request body."""

    # the rest of the body may still come: the connection cannot be reused
    headers: ClassVar[dict[str, str]] = {"Connection": "close"}


def header_timeout_protocol(timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose request headers do not arrive in `timeout`."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(timeout, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            log.debug("request headers not received in time; connection closed",
                      extra={"action": "header_timeout", "client": self.client})
            self.transport.close()

    return HeaderTimeoutProtocol


class BodyReadTimeout:
    """ASGI middleware: a request body whose next chunk takes longer than `timeout` is answered 408.

    Every wait for a chunk is noted with its start in one dict, oldest first, and a single timer per event loop
    fires when the oldest wait is due, cancels the waits that are, and sets itself for the next. A timer per
    wait (`asyncio.timeout`) cost a publish about 7 µs of the event loop, a fifth of its own work; this costs
    a dict entry, and the timer fires about once per `timeout` under load.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self._waiting: dict[asyncio.Task[Any], float] = {}  # task → when its wait began; oldest first
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        more_body = True

        async def timed_receive() -> dict[str, Any]:
            nonlocal more_body
            if not more_body:  # the body is complete: waiting for a disconnect is not bounded here
                return await receive()
            task = asyncio.current_task()
            assert task is not None
            self._begin(task)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if task in self._expired:
                    self._expired.discard(task)
                    if task.uncancel() == 0:  # cancelled by this timeout only, as `asyncio.timeout` decides
                        log.debug("request body not received in time", extra={
                            "action": "body_timeout", "path": scope.get("path")})
                        raise RequestTimeout(
                            f"The request body was not received within {self.timeout:g} seconds.") from None
                raise
            finally:
                self._waiting.pop(task, None)
            more_body = message.get("type") == "http.request" and message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)

    def _begin(self, task: asyncio.Task[Any]) -> None:
        loop = task.get_loop()
        if self._timer_loop is not loop:  # the first wait, or the first in another loop (tests run one per test)
            self._waiting = {t: began for t, began in self._waiting.items() if t.get_loop() is loop}
            self._expired.clear()
            self._timer, self._timer_loop = None, loop
        self._waiting[task] = now = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(now + self.timeout, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the waits that are due; set the timer for the oldest of the others."""
        if loop is not self._timer_loop:  # a timer left in an earlier loop
            return
        now = loop.time()
        self._timer = None
        while self._waiting:
            task, began = next(iter(self._waiting.items()))
            if began + self.timeout > now:
                self._timer = loop.call_at(began + self.timeout, self._expire, loop)
                return
            del self._waiting[task]
            self._expired.add(task)
            task.cancel()
