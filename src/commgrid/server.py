"""`commgrid serve`: one process serving the same app over HTTP and HTTPS, with the runtime's workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

import uvicorn

from commgrid.api.app import create_app
from commgrid.config import Settings
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
        app, host=settings.host, port=port, lifespan="off", log_level="warning", access_log=False,
        http="httptools", loop="uvloop", timeout_graceful_shutdown=3, server_header=False,
        ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
    )


async def serve(settings: Settings, announce: Callable[[Runtime, TlsFiles], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests and commits finish before the store closes."""
    tls = ensure_certificates(settings.data_dir, extra_hosts=(settings.host,))
    settings.write_runtime_file()
    runtime = Runtime(settings)
    await runtime.open(workers=True)
    try:
        app = create_app(settings, runtime)
        servers = [_Server(_uvicorn_config(app, settings, settings.port, None))]
        if settings.tls_port:
            servers.append(_Server(_uvicorn_config(app, settings, settings.tls_port, tls)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop, servers)
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.02)
        if all(s.started for s in servers) and announce:
            announce(runtime, tls)
        await asyncio.gather(*tasks)
    finally:
        await runtime.close()


def _stop(servers: list[_Server]) -> None:
    for server in servers:
        server.should_exit = True
