"""`commgrid serve --workers N`: several serving processes on one store share the ports and the work."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from commgrid.workers import SETTLED
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess, clean_env


def workers_of(supervisor: int) -> set[int]:
    """The ids of `supervisor`'s child processes."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def answering(server: ServerProcess, at_least: int, timeout: float = 30.0) -> set[int]:
    """The processes answering `/healthz` over fresh connections, once `at_least` of them have, each with its
    catalog up to date with the store (a subscription made meanwhile routes on every one of them)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < at_least:
        assert time.monotonic() < deadline, f"only {seen} answered"
        health = json.loads(request(server, "GET", "/healthz")[1])  # a new connection: the kernel picks a worker
        if health["catalogVersion"] >= health["storeVersion"]:
            seen.add(health["process"])
    return seen


def request(server: ServerProcess, method: str, path: str, body: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def sample(exposition: str, name: str, label: str) -> float:
    """The value of the one sample of `name` with `label` in a Prometheus text exposition."""
    [value] = [float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
               if line.startswith(name + "{") and label in line]
    return value


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"  # ended, not yet reaped


def wait_gone(pids: set[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if not gone(p)]}"
        time.sleep(0.05)


def test_two_workers_share_the_port_and_deliver_every_event_once(tmp_path: Path, store_url: str,
                                                                 rx: Receiver) -> None:
    with ServerProcess(tmp_path / "data", store=store_url, extra_args=("--workers", "2")) as server:
        assert server.process is not None
        workers = workers_of(server.process.pid)
        assert len(workers) == 2
        assert answering(server, 2) == workers
        topic = server.create_topic("shared")
        path = f"workers-{uuid.uuid4().hex[:8]}"  # the receiver outlives this test
        server.cli("subscription", "create", "--topic", "shared", "--name", "hook", "--endpoint", rx.endpoint(path))
        assert answering(server, 2) == workers
        ids = [str(uuid.uuid4()) for _ in range(200)]
        for event_id in ids:  # a connection each: both workers take publishes
            event = {"id": event_id, "subject": "/s", "eventType": "T", "data": {},
                     "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1"}
            status, body = request(server, "POST", "/topics/shared/api/events", json.dumps([event]),
                                   {"aeg-sas-key": topic["key1"], "Content-Type": "application/json"})
            assert status == 200, body
        rx.wait_events(path, len(ids), timeout=20)
        server.wait_settled()  # a duplicate, had two workers taken one delivery, has arrived by now
        assert sorted(e["id"] for e in rx.events(path)) == sorted(ids)
        for _ in range(6):  # whichever worker answers, it reports every worker's counts
            text = request(server, "GET", "/metrics")[1].decode()
            assert sample(text, "eventgrid_publish_success_count_total", 'topic="shared"') == len(ids)
            assert sample(text, "eventgrid_delivery_success_count_total", 'subscription="hook"') == len(ids)
        assert server.stop() == 0
        wait_gone(workers)


def test_a_worker_that_dies_is_replaced_and_the_supervisor_takes_its_workers_with_it(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", extra_args=("--workers", "2")).start()
    try:
        assert server.process is not None
        supervisor = server.process.pid
        first = workers_of(supervisor)
        time.sleep(SETTLED + 1)  # the workers started before the server was ready: they are now old enough to replace
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(now := workers_of(supervisor) - {victim}) < 2:
            assert time.monotonic() < deadline, f"no replacement: {now}"
            time.sleep(0.1)
        assert answering(server, 2) == now
        server.kill()  # the supervisor, by SIGKILL: nothing of its own runs, the kernel ends its workers
        wait_gone(now)
    finally:
        if server.process:
            server.stop()


def test_workers_need_a_fixed_port(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "commgrid.cli", "serve", "--data-dir", str(tmp_path), "--port", "0",
                           "--workers", "2"], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode != 0 and "--workers needs a fixed --port" in done.stderr + done.stdout
