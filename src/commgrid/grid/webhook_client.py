"""Webhook POSTs over kept-alive HTTP/1.1 connections: what the delivery worker asks of an HTTP client, no more.

aiohttp's client took about two thirds of the event loop's time per delivery (~90 µs of ~140 µs at
maxEventsPerBatch 1): a request and a response object, header multidicts, a timeout handle and a task for the
body, per request. This client writes each request as one buffer, built from a line and headers prepared once
per URL, and reads the answer with httptools (llhttp, as the server side uses); its connections are
asyncio protocols kept per origin. What it does, as aiohttp did for deliveries: http and https (the default
verifying TLS context), credentials in the URL as Basic authorization, no redirects followed (a 3xx is an
answer), no proxy, at most `limit` bytes of a response body read (a longer one closes its connection), one
`timeout` for the whole request (connecting included). It sends no `Accept-Encoding`, so answers come
uncompressed.

Failures raise `TimeoutError`, `socket.gaierror` (the name did not resolve) or another `OSError`
(`ConnectionError` for a connection lost or an answer that is not HTTP), as `retry.outcome_of_error` expects;
`ValueError` for a URL or a header that cannot be sent (a line break in a header value), before anything is.
Timeouts share one timer: requests are noted in one dict, oldest first, and the timer fires when the oldest is
due (`read_timeouts.BodyReadTimeout` does the same for request bodies).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

IDLE_TIMEOUT = 15.0  # an idle connection is closed after this long (aiohttp's keep-alive default)
_FORBIDDEN = re.compile(r"[\r\n\0]")  # in a header: the end of it, and a request smuggled after it


class ResponseError(ConnectionError):
    """The endpoint's answer was not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class _Origin:
    """What a URL's requests share: where to connect, and the start of each request."""

    key: tuple[str, str, int]  # scheme, host, port
    host: str
    port: int
    tls: bool
    head: bytes  # the request line and the fixed headers


def _checked(text: str) -> str:
    """`text` (header names and values, all of them at once), if it holds no line break or NUL."""
    if _FORBIDDEN.search(text):
        raise ValueError("a header holds a line break or NUL")
    return text


def _origin(url: str, user_agent: str) -> _Origin:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("not an http(s) URL")
    tls = parsed.scheme == "https"
    port = parsed.port or (443 if tls else 80)
    lines = [f"POST {parsed.raw_path_qs or '/'} HTTP/1.1", f"Host: {parsed.host_port_subcomponent}",
             f"User-Agent: {user_agent}"]
    if parsed.user is not None:  # credentials in the URL go as Basic authorization, never on the request line
        pair = f"{parsed.user}:{parsed.password or ''}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(pair).decode()}")
    head = "".join(_checked(line) + "\r\n" for line in lines).encode()
    return _Origin((parsed.scheme, parsed.raw_host, port), parsed.raw_host, port, tls, head)


class _Connection(asyncio.Protocol):
    """One connection: one request at a time; the answer's status and the start of its body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.limit = 0
        self.status = 0
        self.ends_with_connection = False  # the answer's body ends when the connection does
        self.chunks: list[bytes] = []
        self.size = 0
        self.reusable = False  # the last answer was complete and allows another request
        self.closed = False
        self.idle_since = 0.0

    def start(self, waiter: asyncio.Future[tuple[int, bytes]], limit: int) -> None:
        self.waiter, self.limit, self.status, self.chunks, self.size = waiter, limit, 0, [], 0
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for, on an idle connection: it is out of step
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.fail(ResponseError(f"the endpoint's answer is not HTTP/1.1 ({exc})"))

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and self.status >= 200 and self.ends_with_connection:
            self._answer()
            return
        self.fail(ConnectionResetError("the endpoint closed the connection") if exc is None else exc)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.ends_with_connection = not self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.status < 200:
            return
        self.chunks.append(body)
        self.size += len(body)
        if self.size >= self.limit:  # enough for the attempt log; the rest is never read
            self._answer()
            self.close()

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim answer (100 Continue): the final one follows
            self.status = 0
            return
        if self.waiter is None:  # a second answer to one request: the connection is out of step
            self.close()
            return
        self.reusable = self.parser.should_keep_alive()
        self._answer()

    # the client's side
    def _answer(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, b"".join(self.chunks)[:self.limit]))

    def fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class WebhookClient:
    """POSTs to webhooks, every request bounded by `timeout` seconds; `close()` when done."""

    def __init__(self, user_agent: str, timeout: float, *, idle_timeout: float = IDLE_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self._user_agent = user_agent
        self._idle_timeout = idle_timeout
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._waiting: dict[_Connection, float] = {}  # requests in flight → when each began
        self._timer: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], limit: int) -> tuple[int, bytes]:
        """The status of the answer and at most `limit` bytes of its body."""
        if self._closed:
            raise RuntimeError("the webhook client is closed")
        origin = self._origins.get(url)
        if origin is None:
            if len(self._origins) > 10_000:  # URLs come from subscriptions: a bound, not a cache policy
                self._origins.clear()
            origin = self._origins[url] = _origin(url, self._user_agent)
        _checked("".join([k + v for k, v in headers.items()]))
        lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()]).encode()
        request = b"".join((origin.head, lines, b"Content-Length: %d\r\n\r\n" % len(body), body))
        loop = asyncio.get_running_loop()
        began = loop.time()
        connection = self._idle_connection(origin, began) or await self._connect(origin, loop, began)
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        connection.start(waiter, limit)
        self._begin(connection, loop, began)
        try:
            assert connection.transport is not None
            connection.transport.write(request)
            answer = await waiter
        except BaseException:  # cancelled, timed out, failed: the connection's state is unknown
            connection.close()
            raise
        finally:
            self._waiting.pop(connection, None)
        if connection.reusable and not connection.closed and not self._closed:
            connection.idle_since = loop.time()
            self._idle.setdefault(origin.key, []).append(connection)
            self._sweep_later(loop)
        else:
            connection.close()
        return answer

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the idle connections (those in use close as their requests end)."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()

    # connections ---------------------------------------------------------------------------------------------
    def _idle_connection(self, origin: _Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin.key)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed by the other end
            if not connection.closed and now - connection.idle_since < self._idle_timeout:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin, loop: asyncio.AbstractEventLoop, began: float) -> _Connection:
        tls: ssl.SSLContext | None = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        connecting = loop.create_connection(_Connection, origin.host, origin.port, ssl=tls,
                                            server_hostname=origin.host if tls else None)
        _, connection = await asyncio.wait_for(connecting, max(began + self.timeout - loop.time(), 0.0))
        return connection

    def _sweep_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._idle_timeout, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections idle for longer than the idle timeout."""
        self._sweeper = None
        now = loop.time()
        for key, idle in list(self._idle.items()):
            kept = [c for c in idle if not c.closed and now - c.idle_since < self._idle_timeout]
            for connection in idle:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep_later(loop)

    # the timeout ---------------------------------------------------------------------------------------------
    def _begin(self, connection: _Connection, loop: asyncio.AbstractEventLoop, began: float) -> None:
        self._waiting[connection] = began
        if self._timer is None:
            self._timer = loop.call_at(began + self.timeout, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the requests that are due; set the timer for the oldest of the others. (Mostly oldest first, but
        one that waited for a new connection comes after younger ones: all are looked at.)"""
        self._timer = None
        now = loop.time()
        due = [c for c, began in self._waiting.items() if began + self.timeout <= now]
        for connection in due:
            del self._waiting[connection]
            connection.fail(TimeoutError(f"no answer within {self.timeout:g} s"))
        if self._waiting:
            self._timer = loop.call_at(min(self._waiting.values()) + self.timeout, self._expire, loop)
