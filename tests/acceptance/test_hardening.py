"""Hostile and unlucky inputs get a clear 4xx (Azure's error format) and bounded resources, never a 500, a hang,
a leak or silently altered data. Each test reproduces one defect found by probing commgrid."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from commgrid.acs.hmac_auth import sign_request
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import dead_letters, shown, subscribe
from tests.support import ServerProcess

READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("hardening"), extra_args=(
        "--time-scale", "600", "--log-level", "info", "--read-timeout", str(READ_TIMEOUT))).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def topic(server: ServerProcess) -> dict[str, Any]:
    return server.create_topic("hardening")


def event(n: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": f"ev-{n}-{time.monotonic_ns()}", "subject": f"/h/{n}", "eventType": "H",
            "eventTime": "2024-01-01T00:00:00Z", "data": {"n": n}, "dataVersion": "1", **fields}


def post_events(server: ServerProcess, topic: dict[str, Any], body: bytes | list, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.http}/topics/hardening/api/events", content=content, timeout=10,
                      headers={"aeg-sas-key": topic["key1"], "content-type": "application/json", **headers})


def assert_azure_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return error


def raw(server: ServerProcess, data: bytes, *, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


# 2. webhook responses are read as a bounded excerpt ---------------------------------------------------------
def test_a_webhook_streaming_a_huge_response_is_read_only_in_part(server, topic, rx: Receiver) -> None:
    total = 512 * 1024 * 1024
    subscribe(server, "hardening", "streamer", rx.endpoint("streamer", body_bytes=total),
              "--subject-begins-with", "/stream/")
    assert post_events(server, topic, [event(subject="/stream/1")]).status_code == 200
    rx.wait(lambda: rx.received("streamer"), what="the delivery")
    behaviour = rx.behaviours["streamer"]
    rx.wait(lambda: behaviour.streamed and time.sleep(0.5) is None, what="the stream to stop")
    assert behaviour.streamed < total // 8, f"the server read {behaviour.streamed} bytes of the response"


def test_a_validation_answer_streaming_without_end_is_read_only_in_part(server, rx: Receiver) -> None:
    total = 512 * 1024 * 1024
    done = subscribe(server, "hardening", "stream-validation",
                     rx.endpoint("stream-validation", validation="stream", body_bytes=total), settle=False)
    assert shown(done)["commgrid"]["state"] == "AwaitingManualAction"  # 200 without a validation code
    assert rx.behaviours["stream-validation"].streamed < total // 8


# 3. HMAC-authenticated bodies: authenticated before they are read, and limited -----------------------------
@pytest.mark.parametrize("path", ["/identities?api-version=2023-10-01", "/sms?api-version=2021-03-07",
                                  "/commgrid/sms/inbound"])
def test_unauthenticated_acs_uploads_are_refused_before_their_body(server: ServerProcess, path: str) -> None:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: 400000000\r\nAuthorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;"
            f"x-ms-content-sha256&Signature=AAAA\r\nx-ms-date: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
            f"x-ms-content-sha256: AAAA\r\n\r\n").encode()
    with raw(server, head + b"{") as sock:  # the rest of the 400 MB never comes
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_signed_acs_bodies_beyond_the_limit_get_a_413(server: ServerProcess) -> None:
    key = server.info()["communicationServices"]["accessKey"]
    body = orjson.dumps({"createTokenWithScopes": ["chat"], "pad": "x" * (300 * 1024)})
    url = f"{server.http}/identities?api-version=2023-10-01"
    response = httpx.post(url, content=body, headers=sign_request("POST", url, body, key), timeout=10)
    assert assert_azure_error(response, 413)["code"] == "RequestEntityTooLarge"
    small = b"{}"
    response = httpx.post(url, content=small, headers=sign_request("POST", url, small, key), timeout=10)
    assert response.status_code == 201, response.text


# 4. 500s that are 400s -------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [254, 300, 1000])
def test_deeply_nested_data_is_a_400(server, topic, depth: int) -> None:
    body = b'[{"id":"deep","subject":"/d","eventType":"T","eventTime":"2024-01-01T00:00:00Z","dataVersion":"1",'
    body += b'"data":' + b"[" * depth + b"]" * depth + b"}]"
    assert_azure_error(post_events(server, topic, body), 400)


def test_non_ascii_validation_id_is_a_400(server: ServerProcess, rx: Receiver) -> None:
    server.create_topic("manual")
    info = shown(subscribe(server, "manual", "by-hand", rx.endpoint("by-hand", validation="manual"), settle=False))
    url = info["commgrid"]["validationUrl"]
    tampered = url.replace("id=", f"id={quote('é')}", 1)
    response = httpx.get(tampered, timeout=10)
    assert_azure_error(response, 400)


# 5. integers are kept exactly or refused -------------------------------------------------------------------
@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "1" + "0" * 40,
                                    "1.00000000000000000001", "3.14159265358979323846", "1E-400"])
def test_integers_beyond_64_bits_are_refused_not_altered(server, topic, number: str) -> None:
    body = b'[{"id":"big","subject":"/b","eventType":"T","eventTime":"2024-01-01T00:00:00Z","dataVersion":"1",'
    body += b'"data":{"n":' + number.encode() + b"}}]"
    error = assert_azure_error(post_events(server, topic, body), 400)
    assert "cannot be stored exactly" in error["message"]


def test_64_bit_integers_and_long_digit_strings_are_delivered_exactly(server, topic, rx: Receiver) -> None:
    subscribe(server, "hardening", "exact", rx.endpoint("exact"), "--subject-begins-with", "/exact/")
    data = {"max": 18446744073709551615, "min": -9223372036854775808, "text": "123456789012345678901234567890",
            "pi": 3.141592653589793, "tiny": 5e-324}
    assert post_events(server, topic, [event(subject="/exact/1", data=data)]).status_code == 200
    (delivered,) = rx.wait_events("exact", 1)
    assert delivered["data"] == data


def test_numbers_in_filters_beyond_64_bits_are_refused_cleanly(server: ServerProcess, rx: Receiver) -> None:
    done = subscribe(server, "hardening", "huge-filter", rx.endpoint("huge-filter"), "--advanced-filter",
                     "data.n NumberGreaterThan 18446744073709551616", check=False, settle=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "64-bit" in done.stderr
    exact = subscribe(server, "hardening", "max-filter", rx.endpoint("max-filter"), "--advanced-filter",
                      "data.n NumberGreaterThan 18446744073709551615", settle=False)
    (flt,) = shown(exact)["properties"]["filter"]["advancedFilters"]
    assert flt["value"] == 18446744073709551615


# 6. secrets at rest ------------------------------------------------------------------------------------------
def test_data_dir_and_files_holding_secrets_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        proc = ServerProcess(tmp_path / "private").start()
    finally:
        os.umask(old)
    try:
        proc.create_topic("private")  # something written: the WAL exists
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in proc.data_dir.iterdir() if p.is_file()
                 and (p.name.startswith("commgrid.db") or p.name == "commgrid.json")}
        assert {"commgrid.db", "commgrid.db-wal", "commgrid.json"} <= modes.keys()
        assert set(modes.values()) == {0o600}, modes
        assert stat.S_IMODE(proc.data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((proc.data_dir / "tls" / "server-key.pem").stat().st_mode) == 0o600
    finally:
        proc.stop()


def test_a_store_urls_password_is_never_written(tmp_path, postgres_url: str) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:Sup3rSecretPw@", 1)
    assert "Sup3rSecretPw" in with_password
    proc = ServerProcess(tmp_path / "pg", store=with_password).start()
    try:
        runtime_file = (proc.data_dir / "commgrid.json").read_text()
        assert "Sup3rSecretPw" not in runtime_file
        assert json.loads(runtime_file)["store_url"] == postgres_url
        assert "Sup3rSecretPw" not in proc.log()
        assert "Sup3rSecretPw" not in proc.cli("info", "--json").stdout
    finally:
        proc.stop()


# 7. clients that disconnect mid-body -------------------------------------------------------------------------
def test_clients_disconnecting_mid_body_log_no_tracebacks(server, topic) -> None:
    before = server.log()
    head = (f"POST /topics/hardening/api/events HTTP/1.1\r\nHost: x\r\naeg-sas-key: {topic['key1']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{").encode()
    for _ in range(20):
        raw(server, head).close()
    # the server is healthy and answers at once; what it logged about the disconnects is no traceback
    assert httpx.get(f"{server.http}/healthz", timeout=5).status_code == 200
    time.sleep(0.3)
    added = server.log()[len(before):]
    assert "Traceback" not in added and "Exception in ASGI" not in added, added[:2000]


# 8. header and body read timeouts --------------------------------------------------------------------------
def test_partial_headers_are_dropped_after_the_read_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    with raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", timeout=READ_TIMEOUT + 5) as sock:
        assert read_all(sock) == b""  # closed by the server, not by our own timeout
    assert time.monotonic() - started < READ_TIMEOUT + 4


def test_silent_connections_are_dropped_after_the_read_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    with raw(server, b"", timeout=READ_TIMEOUT + 5) as sock:
        assert read_all(sock) == b""
    assert time.monotonic() - started < READ_TIMEOUT + 4


def test_a_stalled_body_gets_a_408(server, topic) -> None:
    head = (f"POST /topics/hardening/api/events HTTP/1.1\r\nHost: x\r\naeg-sas-key: {topic['key1']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{").encode()
    with raw(server, head, timeout=READ_TIMEOUT + 8) as sock:
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"RequestTimeout"' in answer


# 9. webhook secrets stay out of the logs -------------------------------------------------------------------
class _GarbageEndpoint:
    """Validates like a webhook, then answers every delivery with a malformed status line."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def main() -> None:
            server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            server.close()  # closes the listening socket, then the loop: nothing left for the garbage collector
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        body = await reader.readexactly(length)
        if b"SubscriptionValidation" in head:
            code = orjson.loads(body)[0]["data"]["validationCode"]
            answer = orjson.dumps({"validationResponse": code})
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\nConnection: close\r\n\r\n" + answer)
        else:
            writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_webhook_query_secrets_never_reach_the_logs(server, topic) -> None:
    endpoint = _GarbageEndpoint()
    try:
        subscribe(server, "hardening", "garbage", f"http://127.0.0.1:{endpoint.port}/hook?code=T0pS3cretCode",
                  "--subject-begins-with", "/garbage/")
        assert post_events(server, topic, [event(subject="/garbage/1")]).status_code == 200
        deadline = time.monotonic() + 10
        while "delivery_failed" not in server.log() or "not HTTP/1.1" not in server.log():  # the parse error
            assert time.monotonic() < deadline, "no failed delivery logged"
            time.sleep(0.1)
        assert "T0pS3cretCode" not in server.log()
    finally:
        endpoint.stop()


# 10. delivery loops ------------------------------------------------------------------------------------------
def test_a_subscription_delivering_to_its_own_topic_is_stopped(server: ServerProcess, rx: Receiver) -> None:
    looped = server.create_topic("looped")
    own_url = f"{server.http}/topics/looped/api/events?aeg-sas-key={quote(looped['key1'])}"
    info = shown(subscribe(server, "looped", "ouroboros", own_url, settle=False))
    assert info["commgrid"]["state"] == "AwaitingManualAction"  # the publish API does not answer validation
    assert httpx.get(info["commgrid"]["validationUrl"], timeout=10).status_code == 200
    server.wait_catalog()
    response = httpx.post(f"{server.http}/topics/looped/api/events", json=[event(1)],
                          headers={"aeg-sas-key": looped["key1"]}, timeout=10)
    assert response.status_code == 200
    letters = []
    deadline = time.monotonic() + 10
    while not letters and time.monotonic() < deadline:
        letters = dead_letters(server, "--topic", "looped", "--subscription", "ouroboros")
        time.sleep(0.2)
    assert letters, "the looping delivery is dead-lettered"
    time.sleep(1.0)  # other tests' deliveries on this server may still be retrying: no settled state to wait for
    events = json.loads(server.cli("events", "list", "--topic", "looped", "--json").stdout)
    assert len(events) <= 2, f"the loop went on: {len(events)} events"  # the validation event and ours
    assert "delivery_loop_refused" in server.log()


# 11. the 1 MB limit counts what the publisher sent -----------------------------------------------------------
def test_a_one_megabyte_request_with_one_event_is_accepted(server, topic) -> None:
    shell = orjson.dumps([event(subject="/size/1", data="")])
    padding = 1024 * 1024 - len(shell)
    body = shell.replace(b'"data":""', b'"data":"' + b"x" * padding + b'"')
    assert len(body) == 1024 * 1024
    assert post_events(server, topic, body).status_code == 200, "Azure measures what the publisher sent"
    assert post_events(server, topic, body + b" ").status_code == 413
