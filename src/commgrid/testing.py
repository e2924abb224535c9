"""commgrid for your own tests: a server on free ports in a temporary directory, and a webhook that records events.

    from commgrid.testing import EventSink, Server

    with Server() as cg, EventSink() as sink:
        topic = cg.create_topic("orders")
        cg.subscribe("orders", "audit", sink.url)
        ...  # publish with azure-eventgrid to topic.endpoint, key topic.key1, connection_verify=cg.ca
        event = sink.wait_for(type="Shop.OrderCreated", timeout=5)

The pytest plugin (`commgrid.pytest_plugin`, registered on install) wraps both as the `commgrid` and
`event_sink` fixtures. Everything here talks to the server as a user's code would: over HTTP, through the
management API; nothing imports the server into the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commgrid.arm_ids import COMMUNICATION_SERVICES, EVENTGRID_TOPICS, resource_id

__all__ = ["EventSink", "Server", "TopicInfo"]

ARM_API_VERSION = "2025-02-15"
ACS_API_VERSION = "2025-09-01"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: held open together while chosen, so no two are the same."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.socket())
            sockets[-1].bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def server_env(**extra: str) -> dict[str, str]:
    """This process's environment without its `COMMGRID_*` variables (a server takes only what it is given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMGRID_")}
    env.update(extra)
    return env


def launch(args: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `python -m commgrid.cli ARGS`, its output appended to `log_path`."""
    with log_path.open("ab") as log:  # the child writes to its own copy of the handle
        return subprocess.Popen([sys.executable, "-m", "commgrid.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=env)


def wait_healthy(process: subprocess.Popen[bytes], http: str, timeout: float, log: Callable[[], str]) -> None:
    """Wait until the server at `http` answers `/healthz`; `RuntimeError` (with its log) if it exits or not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"commgrid serve exited with {process.returncode}:\n{log()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{http}/healthz", timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"commgrid serve did not become healthy in {timeout}s:\n{log()}")


def end(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Send `sig` to a running server and wait for it (SIGKILL after `timeout`); returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout)


@dataclass(frozen=True)
class TopicInfo:
    """A custom topic as a publisher needs it."""

    name: str
    id: str
    endpoint: str
    key1: str
    key2: str
    input_schema: str


class ManagementError(RuntimeError):
    """The management API refused a request; `status` and `body` say why."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Loopback:
    """Where a `commgrid serve` on loopback answers, from its `port`, `tls_port` and `data_dir`."""

    port: int
    tls_port: int
    data_dir: Path | None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca(self) -> str:
        """The CA certificate to trust (`connection_verify=`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`)."""
        assert self.data_dir is not None, "start the server first"
        return str(self.data_dir / "tls" / "ca.pem")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.http}/healthz", timeout=5) as response:
            return json.loads(response.read())


@dataclass
class Server(Loopback):
    """`commgrid serve` in a subprocess, on free loopback ports, over a data dir of its own.

    `data_dir` defaults to a temporary directory removed on `stop()`. `time_scale` divides every delivery delay
    (600 turns the 10 s first retry into 17 ms); `phone_numbers` are owned by the Communication Services
    resource; `store` may name a PostgreSQL database to share with other nodes.
    """

    data_dir: Path | None = None
    store: str | None = None
    time_scale: float | None = None
    phone_numbers: tuple[str, ...] = ()
    event_profile: str | None = None
    extra_args: tuple[str, ...] = ()
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "commgrid"
    resource_name: str = "commgrid"
    management_token: str = field(default_factory=lambda: "cgm_" + secrets.token_urlsafe(24))
    port: int = 0  # 0: a free port, chosen with `tls_port` so the two differ
    tls_port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _own_dir: bool = field(default=False, repr=False)
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.port or not self.tls_port:
            self.port, self.tls_port = free_ports(2)

    # life cycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Server:
        if self.data_dir is None:
            self.data_dir, self._own_dir = Path(tempfile.mkdtemp(prefix="commgrid-")), True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--tls-port", str(self.tls_port),
                "--subscription-id", self.subscription_id, "--resource-group", self.resource_group,
                "--resource-name", self.resource_name, "--management-token", self.management_token]
        if self.store:
            args += ["--store", self.store]
        if self.time_scale is not None:
            args += ["--time-scale", str(self.time_scale)]
        if self.event_profile:
            args += ["--event-profile", self.event_profile]
        for number in self.phone_numbers:
            args += ["--phone-number", number]
        self._process = launch([*args, *self.extra_args], self.data_dir / "server.log", server_env())
        wait_healthy(self._process, self.http, timeout, self.log)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM: in-flight work finishes) and remove a temporary data dir."""
        if self._process is not None:
            end(self._process, timeout=timeout)
            self._process = None
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        """What the server printed so far."""
        path = self.data_dir / "server.log" if self.data_dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    # where it is -----------------------------------------------------------------------------------------
    @property
    def resource_id(self) -> str:
        """The ARM id of the Communication Services resource (the scope of its event subscriptions)."""
        return resource_id(self.subscription_id, self.resource_group, COMMUNICATION_SERVICES, self.resource_name)

    @property
    def connection_string(self) -> str:
        """The Communication Services connection string, for the identity, SMS and chat SDKs."""
        return self._arm("POST", f"{self.resource_id}/listKeys", api_version=ACS_API_VERSION)[
            "primaryConnectionString"]

    # resources -------------------------------------------------------------------------------------------
    def _topic_id(self, name: str) -> str:
        return resource_id(self.subscription_id, self.resource_group, EVENTGRID_TOPICS, name)

    def create_topic(self, name: str, input_schema: str = "EventGridSchema") -> TopicInfo:
        """Create (or confirm) a custom topic; its endpoint is over HTTPS (trust `ca`)."""
        topic = self._arm("PUT", self._topic_id(name),
                          {"location": "local", "properties": {"inputSchema": input_schema}})
        keys = self._arm("POST", self._topic_id(name) + "/listKeys")
        return TopicInfo(topic["name"], topic["id"], topic["properties"]["endpoint"], keys["key1"], keys["key2"],
                         topic["properties"]["inputSchema"])

    def subscribe(self, topic: str | None, name: str, endpoint: str, **properties: Any) -> dict[str, Any]:
        """Subscribe `endpoint` (a webhook) to `topic`, or to the Communication Services events with None.

        Keyword arguments are ARM `properties` beside the destination, e.g. `filter={"includedEventTypes":
        [...]}`, `eventDeliverySchema="CloudEventSchemaV1_0"`, `retryPolicy={...}`. Returns the subscription
        once its webhook passed the validation handshake.
        """
        scope = self._topic_id(topic) if topic else self.resource_id
        body = {"properties": {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": endpoint}},
                               **properties}}
        return self._arm("PUT", f"{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{name}", body)

    def unsubscribe(self, topic: str | None, name: str) -> None:
        scope = self._topic_id(topic) if topic else self.resource_id
        self._arm("DELETE", f"{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{name}")

    def _arm(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             api_version: str = ARM_API_VERSION) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(
            f"{self.https}{path}?api-version={api_version}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.management_token}", "Content-Type": "application/json"})
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._ssl) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ManagementError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else {}


# ------------------------------------------------------------------------------------------------------------
# A webhook that records what it receives


async def _shut_down(runner: Any) -> None:
    """Clean up an aiohttp runner, then end the handlers still waiting (a webhook told to hang): left pending,
    each would be reported as "Task was destroyed but it is pending!" once its loop is gone."""
    await runner.cleanup()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@dataclass
class LoopbackApp:
    """An aiohttp handler for every path and method, served on 127.0.0.1 from a background thread of its own."""

    handler: Callable[[Any], Awaitable[Any]]
    port: int = 0  # 0: a free port, known once started
    name: str = "commgrid-loopback"
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> LoopbackApp:
        from aiohttp import web

        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handler)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            loop.run_forever()
            loop.run_until_complete(_shut_down(runner))
            loop.close()

        self._thread = threading.Thread(target=main, daemon=True, name=self.name)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class EventSink:
    """A webhook on 127.0.0.1 that passes Event Grid's validation handshakes and records every event.

    Use `url` as a subscription's endpoint; `wait_for(type=…, subject=…)` returns the first matching event
    received (in the subscription's delivery schema), waiting up to `timeout` seconds.
    """

    port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    _app: LoopbackApp | None = field(default=None, repr=False)
    _arrived: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> EventSink:
        self._app = LoopbackApp(self._handle, self.port, "commgrid-event-sink").start()
        self.port = self._app.port
        return self

    def stop(self) -> None:
        if self._app is not None:
            self._app.stop()

    def __enter__(self) -> EventSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._arrived:
            self.events.clear()

    def wait_for(self, type: str | None = None, subject: str | None = None, *, timeout: float = 10.0,
                 where: Callable[[dict[str, Any]], bool] | None = None, count: int = 1) -> Any:
        """The first event (or, with `count` > 1, the first `count` events) matching every condition given.

        `type` and `subject` compare with either schema's attribute (`eventType`/`type`); `where` is any test.
        Raises `TimeoutError` naming what arrived instead.
        """

        def matches(e: dict[str, Any]) -> bool:
            return ((type is None or type in (e.get("eventType"), e.get("type")))
                    and (subject is None or e.get("subject") == subject) and (where is None or where(e)))

        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [e for e in self.events if matches(e)]
                if len(found) >= count:
                    return found[0] if count == 1 else found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(e.get("eventType") or e.get("type"), e.get("subject")) for e in self.events]
                    raise TimeoutError(f"no event with type={type!r} subject={subject!r} within {timeout}s;"
                                       f" received {seen}")
                self._arrived.wait(left)

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        if request.method == "OPTIONS":  # CloudEvents abuse protection
            origin = request.headers.get("WebHook-Request-Origin", "*")
            return web.Response(headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return web.Response(status=400)
        events = body if isinstance(body, list) else [body]
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return web.json_response({"validationResponse": events[0]["data"]["validationCode"]})
        with self._arrived:
            self.events.extend(e for e in events if isinstance(e, dict))
            self._arrived.notify_all()
        return web.Response(status=200)
