"""An acknowledged event survives `kill -9`: publish concurrently, kill mid-stream, restart, find every 200."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.support import ServerProcess


def publish_until_stopped(endpoint: str, key: str, acked: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(10)]
            body = [{"id": i, "subject": "/crash", "eventType": "Crash.Test", "eventTime": "2024-01-01T00:00:00Z",
                     "data": {"n": n}, "dataVersion": "1"} for n, i in enumerate(ids)]
            try:
                response = client.post(endpoint, json=body, headers={"aeg-sas-key": key})
            except httpx.HTTPError:
                return  # the server is gone: whatever was not acknowledged may be lost
            if response.status_code == 200:
                acked.extend(ids)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_events_survive_sigkill(tmp_path, request, backend) -> None:
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    server = ServerProcess(tmp_path / "data", store=store).start()
    topic = server.create_topic("crash")
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=publish_until_stopped, args=(topic["httpEndpoint"], topic["key1"], acked, stop))
               for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL while publishers are mid-request
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 2000, "publishers did not get enough acknowledgements before the kill"

    server.start()
    try:
        listed = json.loads(server.cli("events", "list", "--topic", "crash", "--limit", "1000000", "--json").stdout)
        stored = {e["id"] for e in listed}
        missing = set(acked) - stored
        assert not missing, f"{len(missing)} acknowledged events were lost"
    finally:
        server.stop()
