"""Hung endpoints never hold up a healthy subscription, however many there are (README: "a slow endpoint
never holds up others").

Nine subscriptions whose endpoints never answer and one healthy one get 700 events. Each hung endpoint could
hold up to `ENDPOINT_BACKLOG` claimed deliveries, and nine of those pass the worker's capacity: before the
fix the healthy subscription's events then waited for the hung requests' 30 s timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from azure.eventgrid import EventGridEvent

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, subscribe
from tests.support import ServerProcess

HUNG = 9
EVENTS = 700


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()  # real 30 s response timeout
    yield proc
    proc.stop()


def test_hung_endpoints_do_not_delay_a_healthy_subscription(server: ServerProcess, rx: Receiver) -> None:
    topic = server.create_topic("isolation")
    for i in range(HUNG):
        subscribe(server, "isolation", f"hung-{i}", rx.endpoint(f"hung-{i}", delay=3600), settle=False)
    subscribe(server, "isolation", "healthy", rx.endpoint("healthy"))
    started = time.monotonic()
    for start in range(0, EVENTS, 50):
        publish(topic, [EventGridEvent(subject=f"/iso/{n}", event_type="Iso", data={"n": n}, data_version="1")
                        for n in range(start, start + 50)])
    # Well inside the hung requests' 30 s timeout: nothing the hung endpoints hold may stand in the way.
    events = rx.wait_events("healthy", EVENTS, timeout=20)
    assert sorted(e["data"]["n"] for e in events) == list(range(EVENTS))
    assert time.monotonic() - started < 20
