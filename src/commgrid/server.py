"""`commgrid serve`: one process serving the same app over HTTP and HTTPS, with the runtime's workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from commgrid.api.app import create_app
from commgrid.config import Settings
from commgrid.errors import ServiceUnavailable
from commgrid.private_files import private_dir
from commgrid.read_timeouts import BodyReadTimeout, header_timeout_protocol
from commgrid.runtime import Runtime
from commgrid.tls import TlsFiles, ensure_certificates

log = logging.getLogger("commgrid")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve()`, which stops both listeners together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_config(app: object, settings: Settings, port: int, tls: TlsFiles | None) -> uvicorn.Config:
    # An idle HTTPS keep-alive client never answers the TLS close, which would hold shutdown for the whole
    # graceful timeout; in-flight publishes commit in milliseconds, so a short timeout loses nothing.
    return uvicorn.Config(
        BodyReadTimeout(app, settings.read_timeout), host=settings.host, port=port, lifespan="off",
        log_level="warning", access_log=False, http=header_timeout_protocol(settings.read_timeout), loop="uvloop",
        timeout_graceful_shutdown=3, server_header=False,
        ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
    )


def prepare_data_dir(settings: Settings) -> TlsFiles:
    """The data dir (private: it holds keys) and its certificates, made on first start."""
    private_dir(settings.data_dir)  # before anything is written into it
    pinned_ca = (settings.ca_cert, settings.ca_key) if settings.ca_cert and settings.ca_key else None
    hosts = (settings.host, *filter(None, [settings.recording_host]))
    return ensure_certificates(settings.data_dir, extra_hosts=hosts, ca=pinned_ca)


def listening_ports(settings: Settings) -> list[int]:
    """The HTTP port, then the HTTPS one if any; the same port twice is refused."""
    if settings.port == settings.tls_port:
        raise ServiceUnavailable(f"--port and --tls-port are both {settings.port}; give them different ports.",
                                 code="PortUnavailable")
    return [settings.port, *([settings.tls_port] if settings.tls_port else [])]


async def serve(settings: Settings, announce: Callable[[Runtime, TlsFiles], None] | None = None, *,
                worker: bool = False) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests and commits finish before the store closes.

    A `worker` (of `commgrid serve --workers N`, see `commgrid.workers`) shares its ports with its siblings and
    leaves the runtime file to its supervisor.
    """
    tls = prepare_data_dir(settings)
    # Bind first: a port in use is a clear error before the store is opened or any worker starts.
    listeners = [(port, tls if port == settings.tls_port else None) for port in listening_ports(settings)]
    sockets = [bind(settings.host, port, reuse_port=worker) for port, _ in listeners]
    if not worker:
        settings.write_runtime_file()
    runtime = Runtime(settings)
    try:
        await runtime.open(workers=True)
        app = create_app(settings, runtime)
        # What start-up built (modules, the app, the store, the catalog) lives as long as the process: frozen,
        # the cyclic garbage collector stops walking it on every full collection, which under publish load
        # cost about 5 % of the CPU (half of that remains, for the objects requests make).
        gc.collect()
        gc.freeze()
        # A request's containers (a 100-event batch makes ~300 dicts) live until its commit, so at the default
        # threshold (700) young collections ran every few requests and walked them: 12 % of the event loop's
        # samples under batch load. At 50,000 the collector still runs, a few MB apart.
        gc.set_threshold(50_000, 20, 10)
        servers = [_Server(_uvicorn_config(app, settings, port, files)) for port, files in listeners]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop, servers)
        tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in zip(servers, sockets, strict=True)]
        while not all(s.started for s in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.02)
        if all(s.started for s in servers) and announce:
            announce(runtime, tls)
        await asyncio.gather(*tasks)
    finally:
        await runtime.close()
        for sock in sockets:
            sock.close()


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on `host:port`, or `ServiceUnavailable` saying why not; with `reuse_port`, one
    of several processes' sockets on that port, among which the kernel spreads new connections."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        raise ServiceUnavailable(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Another commgrid may be running there;"
            " stop it or choose other --port / --tls-port values.", code="PortUnavailable") from None
    sock.set_inheritable(True)
    return sock


def event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where it installs (as uvicorn would pick it), asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _stop(servers: list[_Server]) -> None:
    for server in servers:
        server.should_exit = True
