"""Two nodes on PostgreSQL: a killed node's deliveries go out from the other within seconds, and a live node
keeps the deliveries it is sending however long its requests take (leases renewed while held)."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import httpx

from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess


def _publish(node: ServerProcess, key: str, topic: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    events = [{"id": i, "subject": "/s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z", "data": {},
               "dataVersion": "1"} for i in ids]
    response = httpx.post(f"{node.http}/topics/{topic}/api/events", json=events, headers={"aeg-sas-key": key},
                          timeout=10)
    assert response.status_code == 200, response.text
    return ids


def test_killed_nodes_deliveries_fail_over_within_seconds(tmp_path, postgres_url: str, rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url)
    try:
        topic = a.create_topic("failover")
        a.cli("subscription", "create", "--topic", "failover", "--name", "hook",
              "--endpoint", rx.endpoint("failover", delay=3600))
        ids = _publish(a, topic["key1"], "failover", 20)
        rx.wait(lambda: len(rx.events("failover")) >= 20, 10, "node a's requests in flight")  # a holds them all
        b.start()
        rx.behave("failover", delay=0.0)
        killed = time.monotonic()
        a.kill()
        rx.wait(lambda: len(rx.events("failover")) >= 40, 15, "node b's deliveries")
        assert time.monotonic() - killed < 10
        assert Counter(e["id"] for e in rx.events("failover")) == Counter({i: 2 for i in ids})
    finally:
        for node in (a, b):
            if node.process:
                node.stop()


def test_a_live_node_keeps_deliveries_longer_than_a_lease(tmp_path, postgres_url: str, rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url).start()
    try:
        topic = a.create_topic("slowpoke")
        a.cli("subscription", "create", "--topic", "slowpoke", "--name", "hook", "--endpoint", rx.endpoint("slow"))
        rx.behave("slow", delay=9.0)  # longer than a 6 s lease, inside the 30 s response timeout
        for node in (a, b):
            node.wait_catalog()
        ids = _publish(a, topic["key1"], "slowpoke", 10) + _publish(b, topic["key1"], "slowpoke", 10)
        rx.wait(lambda: len(rx.events("slow")) >= 20, 10, "every delivery in flight")
        # every answer in: past the first 6 s lease, so a duplicate, had a lease lapsed, would have been sent
        a.wait_settled(timeout=30)
        assert Counter(e["id"] for e in rx.events("slow")) == Counter({i: 1 for i in ids})
    finally:
        for node in (a, b):
            if node.process:
                node.stop()
