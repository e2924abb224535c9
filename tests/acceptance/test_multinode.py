"""Two `commgrid serve` nodes on one PostgreSQL database share topics, subscriptions and the delivery queue."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess


def test_two_nodes_share_one_workload(tmp_path, postgres_url: str, rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url).start()
    try:
        assert a.info()["communicationServices"]["accessKey"] == b.info()["communicationServices"]["accessKey"]
        topic = a.create_topic("shared")
        b.cli("subscription", "create", "--topic", "shared", "--name", "hook", "--endpoint", rx.endpoint("multi"))
        time.sleep(0.3)  # both nodes re-read subscriptions at most every 0.1 s
        ids = [str(uuid.uuid4()) for _ in range(200)]
        with httpx.Client(timeout=10) as client:
            for n, event_id in enumerate(ids):
                node = a if n % 2 else b
                event = {"id": event_id, "subject": "/s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                         "data": {"n": n}, "dataVersion": "1"}
                response = client.post(f"{node.http}/topics/shared/api/events", json=[event],
                                       headers={"aeg-sas-key": topic["key1"]})
                assert response.status_code == 200, response.text
        rx.wait_events("multi", len(ids), timeout=20)
        time.sleep(0.5)  # a duplicate, if a node double-claimed, would arrive by now
        delivered = [e["id"] for e in rx.events("multi")]
        assert sorted(delivered) == sorted(ids), "every event once, whichever node took it"
    finally:
        for node in (a, b):
            if node.process:
                node.stop()
