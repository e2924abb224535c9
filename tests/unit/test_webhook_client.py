"""The delivery worker's HTTP/1.1 client against a scripted TCP server on loopback, on asyncio's loop and uvloop:
what goes on the wire, keep-alive, bounded answers, timeouts, and how failures are classified."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop

from commgrid.grid.retry import outcome_of_error
from commgrid.grid.webhook_client import WebhookClient
from commgrid.tls import ensure_certificates

UA = "commgrid/test"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Script:
    """A server that answers each request with the next of `answers` (None: never answers), recording them."""

    answers: list[bytes | None]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    close_after: bool = False  # close each connection after its answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    await asyncio.sleep(30)
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(loop_kind: str, main: Callable[[], Awaitable[None]]) -> None:
    if loop_kind == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


async def serving(script: Script) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def talking_to(script: Script, timeout: float = 5.0) -> AsyncIterator[tuple[WebhookClient, str]]:
    """A client, and the base URL of `script` served on loopback; both closed after."""
    server, base = await serving(script)
    client = WebhookClient(UA, timeout)
    try:
        yield client, base
    finally:
        client.close()
        server.close()


LOOPS = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])


@LOOPS
def test_requests_share_a_kept_alive_connection_and_say_what_aiohttp_said(loop_kind: str) -> None:
    script = Script([OK, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"])

    async def main() -> None:
        async with talking_to(script) as (client, base):
            headers = {"aeg-event-type": "Notification", "Content-Type": "application/json; charset=utf-8"}
            assert await client.post(f"{base}/hook?code=s%20x", b"[1]", headers, 4096) == (200, b"ok")
            assert await client.post(f"{base}/hook?code=s%20x", b"[22]", headers, 4096) == (201, b"abc")

    run(loop_kind, main)
    assert script.connections == 1
    head, body = script.requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hook?code=s%20x HTTP/1.1" and body == b"[1]"
    assert set(lines[1:]) == {b"Host: 127.0.0.1:" + lines[1].rsplit(b":", 1)[1], b"User-Agent: commgrid/test",
                              b"aeg-event-type: Notification", b"Content-Type: application/json; charset=utf-8",
                              b"Content-Length: 3"}


@LOOPS
def test_a_long_answer_is_cut_and_its_connection_closed(loop_kind: str) -> None:
    script = Script([b"HTTP/1.1 400 Bad\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10000, OK])

    async def main() -> None:
        async with talking_to(script) as (client, base):
            assert await client.post(base, b"{}", {}, 4096) == (400, b"x" * 4096)
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")

    run(loop_kind, main)
    assert script.connections == 2


@LOOPS
def test_interim_answers_and_bodies_ending_with_the_connection(loop_kind: str) -> None:
    script = Script([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nuntil the end"],
                    close_after=True)

    async def main() -> None:
        async with talking_to(script) as (client, base):
            assert await client.post(base, b"{}", {}, 4096) == (202, b"until the end")

    run(loop_kind, main)


@LOOPS
def test_a_connection_the_endpoint_closed_is_not_reused(loop_kind: str) -> None:
    script = Script([OK, OK], close_after=True)

    async def main() -> None:
        async with talking_to(script) as (client, base):
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")
            await asyncio.sleep(0.05)  # the close arrives
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")

    run(loop_kind, main)
    assert script.connections == 2


@LOOPS
def test_a_connection_out_of_step_is_not_reused(loop_kind: str) -> None:
    script = Script([OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra", OK, OK])

    async def main() -> None:
        async with talking_to(script) as (client, base):
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")  # and an answer nobody asked for
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")  # on a new connection

    run(loop_kind, main)
    assert script.connections == 2


@LOOPS
def test_no_answer_within_the_timeout_is_a_timeout(loop_kind: str) -> None:
    script = Script([None, OK])

    async def main() -> None:
        async with talking_to(script, 0.2) as (client, base):
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimeoutError) as caught:
                await client.post(base, b"{}", {}, 4096)
            assert 0.15 < asyncio.get_running_loop().time() - started < 1.0
            assert outcome_of_error(caught.value).name == "TimedOut"
            assert await client.post(base, b"{}", {}, 4096) == (200, b"ok")  # on a new connection

    run(loop_kind, main)
    assert script.connections == 2


@LOOPS
def test_failures_are_classified_as_before(loop_kind: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    script = Script([b"not http\r\n\r\n"])

    async def main() -> None:
        client = WebhookClient(UA, 5.0)
        with pytest.raises(OSError) as refused:
            await client.post(f"http://127.0.0.1:{closed_port}/hook", b"{}", {}, 4096)
        assert outcome_of_error(refused.value).name == "SocketError"
        with pytest.raises(OSError) as unresolved:
            await client.post("http://commgrid-test.invalid/hook", b"{}", {}, 4096)
        assert outcome_of_error(unresolved.value).name == "ResolutionError"
        server, base = await serving(script)
        with pytest.raises(ConnectionError) as garbled:
            await client.post(base, b"{}", {}, 4096)
        assert outcome_of_error(garbled.value).name == "SocketError"
        client.close()
        server.close()

    run(loop_kind, main)


def test_headers_with_line_breaks_are_refused_before_anything_is_sent() -> None:
    script = Script([OK])

    async def main() -> None:
        async with talking_to(script) as (client, base):
            for headers in ({"x-tenant": "a\r\nx-admin: yes"}, {"x-bad\n": "v"}, {"x": "\0"}):
                with pytest.raises(ValueError):
                    await client.post(base, b"{}", headers, 4096)

    asyncio.run(main())
    assert script.requests == []


def test_credentials_in_the_url_go_as_basic_authorization() -> None:
    script = Script([OK])

    async def main() -> None:
        async with talking_to(script) as (client, base):
            authority = base.removeprefix("http://")
            assert await client.post(f"http://user:p%40ss@{authority}/h", b"{}", {}, 4096) == (200, b"ok")

    asyncio.run(main())
    head = script.requests[0].split(b"\r\n")
    assert head[0] == b"POST /h HTTP/1.1" and b"Authorization: Basic dXNlcjpwQHNz" in head  # user:p@ss


@LOOPS
def test_https_verifies_the_endpoint_certificate(loop_kind: str, tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path)  # a CA and a certificate for localhost and 127.0.0.1
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(files.cert, files.key)
    script = Script([OK])

    async def main() -> None:
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=served)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}/hook"
        with pytest.raises(OSError) as untrusted:  # the default context does not know the CA
            await WebhookClient(UA, 5.0).post(url, b"{}", {}, 4096)
        assert outcome_of_error(untrusted.value).name == "SocketError"
        client = WebhookClient(UA, 5.0, ssl_context=ssl.create_default_context(cafile=str(files.ca_cert)))
        assert await client.post(url, b"{}", {}, 4096) == (200, b"ok")
        client.close()
        server.close()

    run(loop_kind, main)
    assert script.requests[0].startswith(b"POST /hook HTTP/1.1\r\nHost: localhost:")
