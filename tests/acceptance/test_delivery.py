"""Push delivery from a real server to real webhooks: schemas, batching, headers, retries, dead letters, filters.

Events are published with the official azure-eventgrid SDK; the server runs with `--time-scale 600`, so the
retry ladder starts at 17 ms, a 1-minute TTL lasts 0.1 s and the response timeout is 1 s. Each test
subscribes its own endpoint and filters on its own subject prefix, so tests never see each other's events.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from cloudevents.http import from_http

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import dead_letters, publish, shown, subscribe, wait_dead_letters
from tests.support import ServerProcess, free_port

SERVER_ARGS = ("--time-scale", "600")



@pytest.fixture(scope="module")
def orders(server: ServerProcess) -> dict[str, Any]:
    return server.create_topic("orders")


@pytest.fixture(scope="module")
def ce_orders(server: ServerProcess) -> dict[str, Any]:
    return server.create_topic("ce-orders", "cloudeventschemav1_0")


def eg(prefix: str, n: int = 0, **data: Any) -> EventGridEvent:
    return EventGridEvent(subject=f"/{prefix}/{n}", event_type="Order.Created", data={"n": n, **data},
                          data_version="2.0")


def only(prefix: str) -> tuple[str, ...]:
    return ("--subject-begins-with", f"/{prefix}/")


def test_eventgrid_delivery_parses_with_the_sdk(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "eg-sub", rx.endpoint("eg") + "?code=s3cret", *only("eg"))
    sent = eg("eg", 1)
    publish(orders, sent)
    (request,) = rx.wait(lambda: rx.received("eg"), what="one delivery")
    assert request.query == "code=s3cret"
    body = request.json()
    assert isinstance(body, list) and len(body) == 1
    got = EventGridEvent.from_dict(body[0])
    assert (got.id, got.subject, got.event_type, got.data, got.data_version) == (
        str(sent.id), "/eg/1", "Order.Created", {"n": 1}, "2.0")
    assert got.topic == orders["armId"] and got.metadata_version == "1"
    h = request.headers
    assert h["content-type"] == "application/json; charset=utf-8"
    assert (h["aeg-event-type"], h["aeg-subscription-name"], h["aeg-delivery-count"]) == ("Notification", "EG-SUB", "0")
    assert (h["aeg-data-version"], h["aeg-metadata-version"]) == ("2.0", "1")


def test_cloudevents_topic_delivers_single_structured_events(server: ServerProcess, rx: Receiver,
                                                             ce_orders: dict) -> None:
    subscribe(server, "ce-orders", "ce-sub", rx.endpoint("ce"), *only("ce"))
    sent = CloudEvent(source="/shop", type="Order.Paid", data={"total": 12.5}, subject="/ce/1",
                      extensions={"tenant": "contoso"})
    publish(ce_orders, sent)
    (request,) = rx.wait(lambda: rx.received("ce"), what="one delivery")
    assert request.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    event = from_http(request.headers, request.body)
    assert (event["id"], event["source"], event["type"], event["subject"]) == (sent.id, "/shop", "Order.Paid", "/ce/1")
    assert event.data == {"total": 12.5} and event["tenant"] == "contoso"
    assert request.headers["aeg-metadata-version"] == "1.0"


def test_eventgrid_events_converted_to_cloudevents(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "eg-ce", rx.endpoint("eg-ce"), *only("egce"), "--event-delivery-schema",
              "cloudeventschemav1_0")
    sent = eg("egce", 1)
    publish(orders, sent)
    (request,) = rx.wait(lambda: rx.received("eg-ce"), what="one delivery")
    event = from_http(request.headers, request.body)
    assert (event["id"], event["source"], event["type"], event["subject"]) == (
        str(sent.id), orders["armId"], "Order.Created", "/egce/1")
    assert event["dataversion"] == "2.0" and event["datacontenttype"] == "application/json"
    assert event.data == {"n": 1} and event["time"]


def test_cloudevents_batches_are_arrays(server: ServerProcess, rx: Receiver, ce_orders: dict) -> None:
    subscribe(server, "ce-orders", "ce-batch", rx.endpoint("ce-batch"), *only("cebatch"), "--max-events-per-batch",
              "10")
    publish(ce_orders, [CloudEvent(source="/s", type="T", data={"i": i}, subject="/cebatch/x") for i in range(4)])
    rx.wait_events("ce-batch", 4)
    (request,) = rx.received("ce-batch")
    assert request.headers["content-type"] == "application/cloudevents-batch+json; charset=utf-8"
    parsed = [from_http({"content-type": "application/cloudevents+json"}, json.dumps(e)) for e in request.json()]
    assert sorted(e.data["i"] for e in parsed) == [0, 1, 2, 3]


def test_delivery_attribute_headers(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    done = subscribe(server, "orders", "attrs", rx.endpoint("attrs"), *only("attrs"),
                     "--delivery-attribute-mapping", "X-Static static fixed",
                     "--delivery-attribute-mapping", "Authorization static 'Bearer abc' true",
                     "--delivery-attribute-mapping", "X-Tenant dynamic data.tenant",
                     "--delivery-attribute-mapping", "X-Count dynamic data.count")
    mappings = shown(done)["properties"]["destination"]["properties"]["deliveryAttributeMappings"]
    assert mappings[1] == {"name": "Authorization", "type": "Static", "properties": {"value": None, "isSecret": True}}
    publish(orders, eg("attrs", 1, tenant="contoso", count=3))
    (request,) = rx.wait(lambda: rx.received("attrs"), what="one delivery")
    h = request.headers
    assert (h["x-static"], h["authorization"], h["x-tenant"], h["x-count"]) == ("fixed", "Bearer abc", "contoso", "3")


def test_500_until_max_attempts_then_dead_letter_and_redeliver(server: ServerProcess, rx: Receiver,
                                                               orders: dict) -> None:
    subscribe(server, "orders", "down", rx.endpoint("down", status=500), *only("down"), "--max-delivery-attempts",
              "3")
    sent = eg("down", 1)
    publish(orders, sent)
    (letter,) = wait_dead_letters(server, "down")
    event = letter["event"]
    assert event["id"] == str(sent.id) and event["subject"] == "/down/1" and event["data"] == {"n": 1}
    assert (event["deadLetterReason"], event["deliveryAttempts"]) == ("MaxDeliveryAttemptsExceeded", 3)
    assert (event["lastDeliveryOutcome"], event["lastHttpStatusCode"]) == ("Busy", 500)
    assert event["publishTime"].endswith("Z") and event["lastDeliveryAttemptTime"] >= event["publishTime"]
    assert len(rx.received("down")) == 3
    shown_one = json.loads(server.cli("deadletter", "show", str(letter["id"])).stdout)
    assert shown_one["event"] == event
    rx.behave("down", status=200)
    assert "redelivering 1" in server.cli("deadletter", "redeliver", str(letter["id"])).stdout
    rx.wait(lambda: len(rx.received("down")) == 4, what="the redelivery")
    assert rx.received("down")[-1].headers["aeg-delivery-count"] == "0"
    assert dead_letters(server, "--subscription", "down") == []


def test_400_is_dead_lettered_at_once_into_the_directory(server: ServerProcess, rx: Receiver, orders: dict,
                                                         tmp_path: Path) -> None:
    subscribe(server, "orders", "Client-Error", rx.endpoint("client-error", status=400), *only("bad"),
              "--deadletter-dir", str(tmp_path))
    sent = eg("bad", 1)
    publish(orders, sent)
    (letter,) = wait_dead_letters(server, "Client-Error")
    assert letter["event"]["deadLetterReason"] == "UndeliverableDueToClientError"
    assert (letter["event"]["deliveryAttempts"], letter["event"]["lastDeliveryOutcome"]) == (1, "BadRequest")
    assert letter["event"]["lastHttpStatusCode"] == 400 and len(rx.received("client-error")) == 1
    files = rx.wait(lambda: list(tmp_path.rglob("*.json")), what="the dead-letter file")
    (path,) = files
    parts = path.relative_to(tmp_path).parts
    assert parts[0] == "CLIENT-ERROR" and len(parts) == 6
    assert all(p.isdigit() and str(int(p)) == p for p in parts[1:5])  # YYYY/M/D/H, not zero-padded
    (written,) = json.loads(path.read_text())
    assert written["id"] == str(sent.id) and written["deadLetterReason"] == "UndeliverableDueToClientError"


def test_timeouts_are_retried_then_dead_lettered(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "slowpoke", rx.endpoint("slowpoke", delay=3.0), *only("slowpoke"),
              "--max-delivery-attempts", "2")
    publish(orders, eg("slowpoke", 1))
    (letter,) = wait_dead_letters(server, "slowpoke", timeout=15)
    event = letter["event"]
    assert (event["deadLetterReason"], event["deliveryAttempts"]) == ("MaxDeliveryAttemptsExceeded", 2)
    assert event["lastDeliveryOutcome"] == "TimedOut" and event["lastHttpStatusCode"] is None


def test_refused_connections_are_socket_errors(server: ServerProcess, orders: dict) -> None:
    vanishing = Receiver().start()
    try:
        subscribe(server, "orders", "refused", vanishing.endpoint("gone"), *only("refused"), "--max-delivery-attempts",
                  "2")
    finally:
        vanishing.stop()  # validated, then gone: connections are refused
    publish(orders, eg("refused", 1))
    (letter,) = wait_dead_letters(server, "refused")
    assert letter["event"]["lastDeliveryOutcome"] == "SocketError"
    assert letter["event"]["deliveryAttempts"] == 2 and letter["event"]["lastHttpStatusCode"] is None


def test_ttl_is_checked_at_the_next_attempt(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "ttl-sub", rx.endpoint("ttl", status=503), *only("ttl"), "--event-ttl", "5")
    publish(orders, eg("ttl", 1))
    (letter,) = wait_dead_letters(server, "ttl-sub")
    event = letter["event"]
    assert event["deadLetterReason"] == "TimeToLiveExceeded"
    # 5 minutes / 600 = 0.5 s. Retries after 30 s, 30 s, 1 min (503's minimum is 30 s) all fall inside it; the
    # next one, 5 min later, falls after it, and that is when the TTL is checked and the event dead-lettered.
    assert event["deliveryAttempts"] == len(rx.received("ttl")) >= 2
    published = datetime.fromisoformat(event["publishTime"])
    assert (datetime.fromisoformat(letter["deadLetteredAt"]) - published).total_seconds() >= 0.5
    assert event["lastDeliveryOutcome"] == "Busy" and event["lastHttpStatusCode"] == 503


def test_a_slow_endpoint_does_not_delay_a_healthy_one(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "slow", rx.endpoint("slow", delay=0.7), *only("race"), settle=False)
    subscribe(server, "orders", "fast", rx.endpoint("fast"), *only("race"))
    count = 150
    started = time.monotonic()
    for chunk in range(0, count, 50):
        publish(orders, [eg("race", i) for i in range(chunk, chunk + 50)])
    rx.wait_events("fast", count, timeout=10)
    fast_done = time.monotonic() - started
    assert fast_done < 2.0, f"healthy endpoint took {fast_done:.2f}s"
    assert len(rx.events("slow")) < count  # the slow one is still working through its backlog
    rx.wait_events("slow", count, timeout=15)


def test_filters_end_to_end(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "f-types", rx.endpoint("f-types"), *only("filters"), "--included-event-types",
              "Order.Shipped", settle=False)
    subscribe(server, "orders", "f-adv", rx.endpoint("f-adv"), *only("filters"), "--advanced-filter",
              "data.total NumberGreaterThan 100", "--advanced-filter", "data.region StringIn emea apac", settle=False)
    subscribe(server, "orders", "f-suffix", rx.endpoint("f-suffix"), *only("filters"), "--subject-ends-with", ".vip",
              "--subject-case-sensitive")
    tag = uuid.uuid4().hex[:6]
    events = [
        EventGridEvent(subject="/filters/1", event_type="Order.Shipped", data={"total": 5, "region": "EMEA"},
                       data_version="1", id=f"{tag}-shipped"),
        EventGridEvent(subject="/filters/2", event_type="Order.Created", data={"total": 500, "region": "Apac"},
                       data_version="1", id=f"{tag}-big"),
        EventGridEvent(subject="/filters/3.vip", event_type="Order.Created", data={"total": 500, "region": "us"},
                       data_version="1", id=f"{tag}-vip"),
        EventGridEvent(subject="/filters/4.VIP", event_type="Order.Created", data={}, data_version="1",
                       id=f"{tag}-VIP"),
    ]
    publish(orders, events)
    rx.wait(lambda: rx.events("f-types") and rx.events("f-adv") and rx.events("f-suffix"), what="filtered events")
    server.wait_settled()
    assert [e["id"] for e in rx.events("f-types")] == [f"{tag}-shipped"]
    assert [e["id"] for e in rx.events("f-adv")] == [f"{tag}-big"]
    assert [e["id"] for e in rx.events("f-suffix")] == [f"{tag}-vip"]


def test_manual_validation_window_expires(server: ServerProcess, rx: Receiver) -> None:
    done = subscribe(server, "orders", "too-late", rx.endpoint("too-late", validation="manual"), settle=False)
    validation_url = shown(done)["commgrid"]["validationUrl"]

    def expired() -> dict | None:  # once the 10 minutes (1 s at 600x) have passed
        shown_now = json.loads(server.cli("subscription", "show", "--topic", "orders", "--name", "too-late").stdout)
        return shown_now if shown_now["properties"]["provisioningState"] == "Failed" else None

    failed = rx.wait(expired, timeout=10, what="the validation window to expire")
    assert failed["properties"]["provisioningState"] == "Failed"
    assert "within 10 minutes" in failed["commgrid"]["message"]
    with pytest.raises(urllib.error.HTTPError) as late:
        urllib.request.urlopen(validation_url, timeout=5)
    assert late.value.code == 400


def test_closed_port_fails_the_handshake(server: ServerProcess, orders: dict) -> None:
    done = subscribe(server, "orders", "nobody", f"http://127.0.0.1:{free_port()}/x", check=False, settle=False)
    assert done.returncode == 1 and "response code Unknown (SocketError)" in done.stderr
