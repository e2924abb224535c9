"""Hung endpoints never hold up a healthy subscription, however many there are (README: "a slow endpoint
never holds up others").

Nine subscriptions whose endpoints never answer and one healthy one get 700 events. Each hung endpoint could
hold up to `ENDPOINT_BACKLOG` claimed deliveries, and nine of those pass the worker's capacity: before the
fix the healthy subscription's events then waited for the hung requests' 30 s timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from azure.eventgrid import EventGridEvent

from commgrid.config import Settings
from commgrid.events.envelope import EVENTGRID
from commgrid.grid.delivery import DeliveryWorker
from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.store import store_from_url
from commgrid.store.base import NewEvent, Route, Subscription, Topic
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


async def test_any_number_of_hung_endpoints_leave_room_for_a_healthy_one(tmp_path, rx: Receiver) -> None:
    """150 hung endpoints, each entitled to its share: together they pass the worker's capacity (the old
    fixed backlog let them fill it), and the healthy subscription still gets every event at once."""
    store = store_from_url(f"sqlite:///{tmp_path / 'commgrid.db'}")
    await store.open()
    arm = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/many"
    await store.create_topic(Topic(name="many", arm_id=arm, input_schema=EVENTGRID, key1="k1", key2="k2"))
    names = [f"many-hung-{i}" for i in range(150)] + ["many-healthy"]
    for name in names:
        url = rx.endpoint(name, delay=3600) if "hung" in name else rx.endpoint(name)
        properties = SubscriptionProperties(WebHookDestination(url))
        await store.create_subscription(Subscription(topic="many", name=name, properties=properties))
    worker = DeliveryWorker(store, Settings(data_dir=tmp_path, delivery_concurrency=4))  # capacity 2,000
    await worker.start()
    try:
        events = [NewEvent("many", f"id-{n}", "T", f"/{n}", "2024-01-01T00:00:00Z", orjson.dumps(
            {"id": f"id-{n}", "subject": f"/{n}", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
             "data": {"n": n}, "dataVersion": "1", "metadataVersion": "1", "topic": arm})) for n in range(40)]
        await store.append_events(events, [Route(i, name) for i in range(len(events)) for name in names], time.time())
        worker.wake()
        deadline = time.monotonic() + 15  # the hung requests time out after 30 s
        while len(rx.events("many-healthy")) < len(events):
            assert time.monotonic() < deadline, f"only {len(rx.events('many-healthy'))} of {len(events)} arrived"
            await asyncio.sleep(0.05)
    finally:
        await worker.stop(grace=0.1)
        await store.close()
