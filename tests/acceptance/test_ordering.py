"""Ordered delivery per key on real webhooks: publish order per key under random handler failures, across a
kill -9 of the server, and across two nodes on one PostgreSQL database.

The invariant checked on every arrival: an event reaches the receiver only after every earlier event of its
key was accepted (answered 2xx) at least once. Duplicates are allowed (at-least-once), overtaking is not.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest
from azure.eventgrid import EventGridEvent

from tests.acceptance.receiver import Received, Receiver
from tests.acceptance.subscribing import publish, subscribe
from tests.support import ServerProcess

KEYS = 8


def thread_events(count: int, prefix: str, start: int = 0) -> list[EventGridEvent]:
    """Events numbered per key, published in that order (keys interleaved)."""
    return [EventGridEvent(subject=f"/{prefix}/{n}", event_type="Chat.Message",
                           data={"threadId": f"t{n % KEYS}", "n": n // KEYS}, data_version="1")
            for n in range(start, start + count)]


def check_order(requests: list[Received], expected: int) -> None:
    """No event overtakes an earlier one of its key, and every event is eventually accepted."""
    accepted: dict[str, set[int]] = defaultdict(set)
    for request in sorted(requests, key=lambda r: r.at):
        for event in request.events():
            key, n = event["data"]["threadId"], event["data"]["n"]
            missing = set(range(n)) - accepted[key]
            assert not missing, f"{key}#{n} arrived before {sorted(missing)[:5]} of its key were accepted"
        if 200 <= request.status < 300:
            for event in request.events():
                accepted[event["data"]["threadId"]].add(event["data"]["n"])
    assert sum(len(v) for v in accepted.values()) == expected


def wait_accepted(rx: Receiver, path: str, count: int, timeout: float = 60) -> list[Received]:
    def done() -> bool:
        ok = {e["id"] for r in rx.received(path) if 200 <= r.status < 300 for e in r.events()}
        return len(ok) >= count
    rx.wait(done, timeout=timeout, what=f"{count} accepted events at /{path}")
    return rx.received(path)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_key_is_delivered_in_publish_order_under_random_failures(tmp_path, request, backend: str) -> None:
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with Receiver() as rx, ServerProcess(tmp_path / "data", store=store, extra_args=("--time-scale", "600")) as server:
        topic = server.create_topic("chat")
        subscribe(server, "chat", "ordered", rx.endpoint("ordered", fail_ratio=0.3), "--ordering-key",
                  "data.threadId", "--max-events-per-batch", "10")
        for chunk in range(4):  # several publishes, so later events queue behind earlier failures
            publish(topic, thread_events(40, "c", chunk * 40))
        check_order(wait_accepted(rx, "ordered", 160), 160)
        assert any(r.status == 500 for r in rx.received("ordered")), "the handler failed some deliveries"
        assert any(len(r.events()) > 1 for r in rx.received("ordered")), "keys still share batches"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_order_holds_across_a_sigkill(tmp_path, request, backend: str) -> None:
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with Receiver() as rx, ServerProcess(tmp_path / "data", store=store, extra_args=("--time-scale", "600")) as server:
        topic = server.create_topic("chat")
        subscribe(server, "chat", "ordered", rx.endpoint("ordered", delay=0.05, fail_ratio=0.2),
                  "--ordering-key", "data.threadId")
        publish(topic, thread_events(120, "k"))
        rx.wait(lambda: len(rx.received("ordered")) >= 20, what="deliveries under way")
        server.kill()
        server.start()
        check_order(wait_accepted(rx, "ordered", 120), 120)


def test_order_holds_across_two_nodes_on_postgresql(tmp_path, postgres_url: str) -> None:
    rx = Receiver().start()
    args = ("--time-scale", "600")
    a = ServerProcess(tmp_path / "a", store=postgres_url, extra_args=args).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url, extra_args=args).start()
    try:
        topic = a.create_topic("chat")
        subscribe(a, "chat", "ordered", rx.endpoint("ordered", delay=0.01, fail_ratio=0.2), "--ordering-key",
                  "data.threadId")
        b.wait_catalog()
        rng = random.Random(3)
        for chunk in range(4):
            publish(topic, thread_events(40, "n", chunk * 40))
            time.sleep(rng.random() / 10)
        check_order(wait_accepted(rx, "ordered", 160), 160)
    finally:
        a.stop()
        b.stop()
        rx.stop()
