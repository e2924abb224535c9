"""Test helpers: a real `commgrid serve` in a subprocess, and the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commgrid.testing import Loopback, end, free_port, free_ports, launch, server_env, wait_healthy

__all__ = ["ServerProcess", "clean_env", "cli", "free_port", "free_ports"]


clean_env = server_env


def cli(data_dir: Path, *args: str, check: bool = True, store: str | None = None) -> subprocess.CompletedProcess:
    """Run `commgrid ARGS --data-dir DATA_DIR` and return the finished process."""
    command = [sys.executable, "-m", "commgrid.cli", *args, "--data-dir", str(data_dir)]
    if store:
        command += ["--store", store]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"commgrid {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@dataclass
class ServerProcess(Loopback):
    """`commgrid serve` on free loopback ports, over a data dir that outlives restarts."""

    data_dir: Path
    store: str | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # COMMGRID_* variables for the server (others are cleared)
    port: int = 0  # 0: a free port, chosen with `tls_port` so the two differ
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.port or not self.tls_port:
            self.port, self.tls_port = free_ports(2)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = ["serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--tls-port", str(self.tls_port), *self.extra_args]
        if self.store:
            args += ["--store", self.store]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.process = launch(args, self.log_path, server_env(**self.env))
        wait_healthy(self.process, self.http, timeout, self.log)
        return self

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server unless the test already did."""
        if self.process:
            self.stop()

    def catalog_version(self) -> int:
        """The store change counter this node's catalog reflects (`/healthz` `catalogVersion`)."""
        return self.health()["catalogVersion"]

    def wait_catalog(self, at_least: int | None = None, timeout: float = 10.0) -> float:
        """Wait until this node's catalog reflects change `at_least` (default: every change stored so far);
        returns how long that took."""
        if at_least is None:
            at_least = self.health()["storeVersion"]
        start = time.monotonic()
        while (version := self.catalog_version()) < at_least:
            if time.monotonic() - start > timeout:
                raise AssertionError(f"catalog of {self.http} still at {version} after {timeout}s (want {at_least})")
            time.sleep(0.01)
        return time.monotonic() - start

    def delivery_backlog(self) -> float:
        """Deliveries not yet completed or dead-lettered, in flight included (the store's count, via `/metrics`)."""
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("eventgrid_delivery_queue_depth"))

    def wait_settled(self, timeout: float = 15.0) -> None:
        """Wait until every delivery is done: then no further request (a retry, a duplicate) can arrive."""
        deadline = time.monotonic() + timeout
        while (backlog := self.delivery_backlog()) > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"{backlog:g} deliveries still pending at {self.http} after {timeout}s")
            time.sleep(0.02)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.process is not None
        code = end(self.process, sig, timeout)
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return cli(self.data_dir, *args, check=check, store=self.store)

    def info(self) -> dict[str, Any]:
        return json.loads(self.cli("info", "--json").stdout)

    def create_topic(self, name: str, schema: str = "eventgridschema") -> dict[str, Any]:
        return json.loads(self.cli("topic", "create", name, "--input-schema", schema, "--json").stdout)
