"""Namespace queue locks across crashes, competing consumers, several nodes, and push delivery to a webhook."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from azure.core.messaging import CloudEvent

from tests.acceptance.namespace_helpers import (
    TIME_SCALE,
    cloud_events,
    consumer,
    create_queue,
    dead_letters,
    postgres_database,
    publisher,
)
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess


@pytest.fixture(params=["sqlite", "postgres"])
def store(request) -> str | None:
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


def test_locked_events_come_back_after_kill_9(tmp_path, store: str | None) -> None:
    server = ServerProcess(tmp_path / "crash", store=store, extra_args=("--time-scale", TIME_SCALE)).start()
    try:
        ns = create_queue(server, "crash", "orders", "held")
        publisher(server, ns, "orders").send(cloud_events(3))
        locked = consumer(server, ns, "orders", "held").receive(max_events=3, max_wait_time=10)
        assert len(locked) == 3
        server.kill()
        server.start()
        back = consumer(server, ns, "orders", "held").receive(max_events=10, max_wait_time=30)
        assert sorted(d.event.id for d in back) == sorted(d.event.id for d in locked)
        assert {d.broker_properties.delivery_count for d in back} == {2}
    finally:
        if server.process:
            server.stop()


def drain(server: ServerProcess, ns: dict, sub: str, seen: list[str], stop: threading.Event) -> None:
    """Receive and acknowledge in batches until the queue stays empty for one wait."""
    c = consumer(server, ns, "orders", sub)
    while not stop.is_set():
        got = c.receive(max_events=25, max_wait_time=10)
        if not got:
            return
        seen.extend(d.event.id for d in got)
        result = c.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])
        assert not result.failed_lock_tokens


def split_backlog(first: ServerProcess, second: ServerProcess, ns: dict, count: int) -> None:
    """Two consumers (one per server) share a backlog: each event is handed to exactly one of them, once."""
    events = cloud_events(count)
    for i in range(0, count, 100):
        publisher(first, ns, "orders").send(events[i:i + 100])
    seen: tuple[list[str], list[str]] = ([], [])
    stop = threading.Event()
    threads = [threading.Thread(target=drain, args=(srv, ns, "shared", got, stop))
               for srv, got in zip((first, second), seen, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    assert seen[0] and seen[1], "both consumers got part of the backlog"
    assert not set(seen[0]) & set(seen[1])
    counts = Counter(seen[0] + seen[1])
    assert sorted(counts) == sorted(e.id for e in events) and set(counts.values()) == {1}


def test_two_consumers_split_one_backlog(tmp_path, store: str | None) -> None:
    # Locks of 300 s (5 s scaled) outlast any pause between a receive and its acknowledge here.
    server = ServerProcess(tmp_path / "two", store=store, extra_args=("--time-scale", TIME_SCALE)).start()
    try:
        ns = create_queue(server, "busy", "orders", "shared", "--lock-duration", "300")
        split_backlog(server, server, ns, 600)
    finally:
        server.stop()


def test_two_nodes_on_one_postgres_database_split_one_backlog(tmp_path) -> None:
    with postgres_database() as url:
        a = ServerProcess(tmp_path / "a", store=url, extra_args=("--time-scale", TIME_SCALE)).start()
        b = ServerProcess(tmp_path / "b", store=url, extra_args=("--time-scale", TIME_SCALE)).start()
        try:
            ns = create_queue(a, "nodes", "orders", "shared", "--lock-duration", "300")
            split_backlog(a, b, ns, 600)
        finally:
            a.stop()
            b.stop()


def test_push_subscription_delivers_to_a_webhook(tmp_path, rx: Receiver) -> None:
    server = ServerProcess(tmp_path / "push", extra_args=("--time-scale", TIME_SCALE)).start()
    try:
        ns = create_queue(server, "pushy", "orders", "audit")
        server.cli("namespace", "subscription", "create", "pushy", "orders", "hook", "--mode", "push",
                   "--endpoint", rx.endpoint("ns-push"), "--event-type", "Order.Created", "--max-delivery-count", "2")
        failing = server.cli("namespace", "subscription", "create", "pushy", "orders", "broken", "--mode", "push",
                             "--endpoint", rx.endpoint("ns-broken", allowed_origin=None), check=False)
        assert failing.returncode == 1 and "handshake" in failing.stderr
        server.wait_catalog()
        publisher(server, ns, "orders").send([*cloud_events(3), CloudEvent(source="/o", type="Other", data=1)])
        delivered = rx.wait_events("ns-push", 3, timeout=20)
        assert sorted(e["data"]["n"] for e in delivered) == [0, 1, 2]
        assert all(e["specversion"] == "1.0" and e["type"] == "Order.Created" for e in delivered)
        assert rx.received("ns-push", kind="*")[0].method == "OPTIONS", "the CloudEvents handshake came first"
        queued = consumer(server, ns, "orders", "audit").receive(max_events=10, max_wait_time=10)
        assert len(queued) == 4, "the queue subscription on the same topic gets every event too"
        rx.behave("ns-push", status=503)
        publisher(server, ns, "orders").send(cloud_events(1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not dead_letters(server, "pushy", "orders", "hook"):
            time.sleep(0.2)
        (letter,) = dead_letters(server, "pushy", "orders", "hook")
        assert letter["deliveryCount"] == 2 and letter["reason"], "retries exhausted: dead-lettered by the one path"
        assert len(rx.received("ns-push")) == 3 + 2
    finally:
        server.stop()
