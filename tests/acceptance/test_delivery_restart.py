"""At-least-once across `kill -9`: a delivery waiting for its retry, and one in flight, both arrive after restart."""

from __future__ import annotations

import time

import pytest
from azure.eventgrid import EventGridEvent

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, subscribe
from tests.support import ServerProcess


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pending_deliveries_survive_sigkill(tmp_path, request, backend: str) -> None:
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with Receiver() as rx, ServerProcess(tmp_path / "data", store=store, extra_args=("--time-scale", "600")) as server:
        topic = server.create_topic("orders")
        subscribe(server, "orders", "retrying", rx.endpoint("retrying", status=500), "--subject-begins-with", "/r/",
                  settle=False)
        subscribe(server, "orders", "in-flight", rx.endpoint("in-flight", delay=0.9), "--subject-begins-with", "/f/")
        retried = EventGridEvent(subject="/r/1", event_type="T", data={}, data_version="1")
        in_flight = EventGridEvent(subject="/f/1", event_type="T", data={}, data_version="1")
        publish(topic, [retried, in_flight])
        rx.wait(lambda: len(rx.received("retrying")) >= 2 and rx.received("in-flight"), what="attempts under way")
        server.kill()  # one delivery waits for its next retry, the other is mid-request
        killed_at = time.monotonic()
        attempts_before = len(rx.received("retrying"))
        rx.behave("retrying", status=200)
        rx.behave("in-flight", delay=0.0)
        server.start()

        rx.wait(lambda: len(rx.received("retrying")) > attempts_before, what="the retried delivery after restart")
        assert {e["id"] for e in rx.events("retrying")} == {str(retried.id)}
        # the in-flight one was leased by the dead process: it is delivered again once the lease expires
        rx.wait(lambda: len(rx.received("in-flight")) >= 2, timeout=15, what="the in-flight delivery again")
        assert time.monotonic() - killed_at < 10
        assert {e["id"] for e in rx.events("in-flight")} == {str(in_flight.id)}
        server.wait_settled()  # both succeeded: nothing more arrives, nothing was dead-lettered
        assert len(rx.received("retrying")) == attempts_before + 1 and len(rx.received("in-flight")) == 2
        assert server.cli("deadletter", "list", "--json").stdout.strip() == "[]"
