"""`/metrics`: Prometheus counters named after Event Grid's Azure Monitor metrics, from a real server."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.eventgrid import EventGridEvent
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, subscribe
from tests.support import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("metrics"), extra_args=("--time-scale", "600")).start()
    yield proc
    proc.stop()


def scrape(server: ServerProcess) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait_for(server: ServerProcess, name: str, labels: dict[str, str], value: float) -> dict:
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(server)
        if samples.get((name, tuple(sorted(labels.items())))) == value or time.monotonic() > deadline:
            assert samples.get((name, tuple(sorted(labels.items())))) == value, (name, labels, samples)
            return samples
        time.sleep(0.05)


def test_publish_match_delivery_and_dead_letter_counts(server: ServerProcess, rx: Receiver) -> None:
    topic = server.create_topic("orders")
    subscribe(server, "orders", "fine", rx.endpoint("fine"))
    subscribe(server, "orders", "down", rx.endpoint("down", status=503), "--max-delivery-attempts", "2")
    subscribe(server, "orders", "none", rx.endpoint("none"), "--included-event-types", "Other")
    publish(topic, [EventGridEvent(subject=f"/o/{i}", event_type="Order.Created", data={}, data_version="1")
                    for i in range(3)])
    with pytest.raises(HttpResponseError):
        publish(topic, [{"not": "an event"}])
    orders, ok, down = {"topic": "orders"}, {"topic": "orders", "subscription": "fine"}, {
        "topic": "orders", "subscription": "down"}
    wait_for(server, "eventgrid_delivery_success_count_total", ok, 3)
    gave_up = down | {"reason": "MaxDeliveryAttemptsExceeded"}
    samples = wait_for(server, "eventgrid_dropped_event_count_total", gave_up, 3)
    assert samples[("eventgrid_publish_success_count_total", tuple(orders.items()))] == 3
    assert samples[("eventgrid_publish_success_latency_ms_count", tuple(orders.items()))] == 1
    assert sum(v for (name, labels), v in samples.items()
               if name == "eventgrid_publish_fail_count_total" and ("topic", "orders") in labels) >= 1
    assert samples[("eventgrid_matched_event_count_total", tuple(sorted(ok.items())))] == 3
    assert ("eventgrid_matched_event_count_total", (("subscription", "none"), ("topic", "orders"))) not in samples
    assert samples[("eventgrid_delivery_attempt_fail_count_total",
                    tuple(sorted((down | {"outcome": "Busy"}).items())))] == 6
    assert samples[("eventgrid_destination_processing_duration_ms_count", tuple(sorted(ok.items())))] == 3
    assert samples[("eventgrid_delivery_queue_depth", ())] == 0
    assert samples[("eventgrid_oldest_undelivered_event_age_seconds", ())] == 0
