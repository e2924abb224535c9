"""`commgrid serve --workers N`: N serving processes on one store, so that one machine uses all its cores.

Each worker is a whole `serve` (its event loop, its store connections, its delivery worker), as each node of
several on one PostgreSQL database is: the store serializes their writes, leases keep their deliveries apart and
each catalog follows the store's change counter. They share the listening ports (`SO_REUSEPORT`), and the kernel
spreads new connections across them. The supervisor prepares the data dir and the store once, starts the
workers, announces when every one is ready, stops them on SIGINT/SIGTERM, and replaces one that dies (one that
dies during its first seconds stops them all: it would only die again). The workers keep their Prometheus metrics
in files of one directory (`metrics/` in the data dir, emptied at each start), so that a scrape, whichever worker
answers it, reports them all (`commgrid.metrics`).

A worker is `python -m commgrid.workers`: it reads its settings from its standard input (they may hold keys) and
writes a line to the file descriptor in `COMMGRID_WORKER_FD` once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from commgrid.config import Settings
from commgrid.errors import CommgridError, ServiceUnavailable
from commgrid.runtime import Runtime
from commgrid.server import bind, event_loop_runner, listening_ports, prepare_data_dir, serve
from commgrid.tls import TlsFiles

log = logging.getLogger("commgrid")

WORKER_FD = "COMMGRID_WORKER_FD"
READY_TIMEOUT = 120.0  # seconds a worker may take to start serving
SETTLED = 10.0  # a worker that dies sooner after its start is not replaced: everything stops
STOP_TIMEOUT = 30.0  # seconds a worker has to finish after SIGTERM before it is killed
_PATHS = ("data_dir", "ca_cert", "ca_key", "metrics_dir")


def run(settings: Settings, count: int, log_level: str, announce: Callable[[Runtime, TlsFiles], None],
        runner: Callable[[Any], None]) -> None:
    """Serve with `count` worker processes until SIGINT/SIGTERM (`runner` runs a coroutine to completion)."""
    if not settings.port:
        raise ServiceUnavailable("--workers needs a fixed --port (not 0): every worker listens on it.",
                                 code="PortUnavailable")
    tls = prepare_data_dir(settings)
    for port in listening_ports(settings):
        bind(settings.host, port).close()  # free, and not taken by another group sharing it
    settings.write_runtime_file()
    metrics_dir = settings.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters start from zero, as a single process's do
    metrics_dir.mkdir(mode=0o700)
    runner(_supervise(Pool(replace(settings, metrics_dir=metrics_dir), count, log_level), tls, announce))


async def _supervise(pool: Pool, tls: TlsFiles, announce: Callable[[Runtime, TlsFiles], None]) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        # Migrations, keys and the system topic, once, before the workers race for them; the store is theirs after.
        async with Runtime(pool.settings) as runtime:
            pool.start()
            await pool.wait_ready(stopping)
            if not stopping.is_set():
                announce(runtime, tls)
        while not stopping.is_set():
            pool.replace_exited()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.2)
    finally:
        await pool.stop()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    ready_fd: int
    started_at: float
    ready: bool = False

    def poll_ready(self) -> bool:
        if not self.ready:
            with contextlib.suppress(BlockingIOError):
                self.ready = bool(os.read(self.ready_fd, 64))
        return self.ready

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.ready_fd)


@dataclass
class Pool:
    """The worker processes of one `serve --workers N`."""

    settings: Settings
    count: int
    log_level: str
    workers: list[Worker] = field(default_factory=list)

    def start(self) -> None:
        self.workers = [self._spawn() for _ in range(self.count)]

    def _spawn(self) -> Worker:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        spec = json.dumps({"settings": asdict(self.settings), "log_level": self.log_level,
                           "supervisor": os.getpid()}, default=str)
        try:
            env = {**os.environ, WORKER_FD: str(write_fd), "PROMETHEUS_MULTIPROC_DIR": str(self.settings.metrics_dir)}
            process = subprocess.Popen([sys.executable, "-m", "commgrid.workers"], stdin=subprocess.PIPE,
                                       pass_fds=(write_fd,), env=env)
        finally:
            os.close(write_fd)
        assert process.stdin is not None
        process.stdin.write(spec.encode())
        process.stdin.close()
        return Worker(process, read_fd, time.monotonic())

    async def wait_ready(self, stopping: asyncio.Event) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(w.poll_ready() for w in self.workers) and not stopping.is_set():
            for w in self.workers:
                if w.process.poll() is not None:
                    raise CommgridError(f"A worker exited with status {w.process.returncode} before it served"
                                        " (its error is above).", code="WorkerFailed")
            if time.monotonic() > deadline:
                raise CommgridError(f"The workers did not all serve within {READY_TIMEOUT:g} s.", code="WorkerFailed")
            await asyncio.sleep(0.05)

    def replace_exited(self) -> None:
        for i, w in enumerate(self.workers):
            status = w.process.poll()
            if status is None:
                continue
            w.close()
            if time.monotonic() - w.started_at < SETTLED:
                raise CommgridError(f"A worker exited with status {status} {SETTLED:g} s or less after it started;"
                                    " stopping.", code="WorkerFailed")
            log.warning("a worker exited; starting another", extra={"action": "worker_replaced", "status": status})
            self.workers[i] = self._spawn()

    async def stop(self) -> None:
        """SIGTERM to every worker, then wait for each (killed after `STOP_TIMEOUT`)."""
        for w in self.workers:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(w.process.poll() is None for w in self.workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in self.workers:
            if w.process.poll() is None:
                w.process.kill()
                w.process.wait()
            w.close()


def _settings_from(fields: dict[str, Any]) -> Settings:
    for name in _PATHS:
        if fields.get(name) is not None:
            fields[name] = Path(fields[name])
    fields["phone_numbers"] = tuple(fields["phone_numbers"])
    return Settings(**fields)


def _end_with_supervisor(supervisor: int) -> None:
    """Linux: a SIGTERM when the supervisor ends, even by `kill -9` (`PR_SET_PDEATHSIG`), so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != supervisor:  # it ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    from commgrid import faults
    from commgrid.logs import configure as configure_logging

    ready_fd = int(os.environ.pop(WORKER_FD))
    spec = json.loads(sys.stdin.read())
    configure_logging(spec["log_level"])
    faults.arm(os.environ.get("COMMGRID_FAULT"))  # test-only crash point; see commgrid.faults
    _end_with_supervisor(spec["supervisor"])

    def ready(_runtime: Runtime, _tls: TlsFiles) -> None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)

    try:
        event_loop_runner()(serve(_settings_from(spec["settings"]), ready, worker=True))
    except CommgridError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
