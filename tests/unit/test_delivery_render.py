"""Batching and the delivery request: bodies, content types and headers per schema (docs/wire-facts.md,
Event Grid delivery requests; https://learn.microsoft.com/azure/event-grid/delivery-and-retry)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from commgrid.grid.deadletter import blob_path, dead_letter_event
from commgrid.grid.delivery import Target, plan_batches, render
from commgrid.grid.properties import SubscriptionProperties
from commgrid.store.base import Delivery, StoredEvent, Subscription, Topic
from commgrid.timestamps import azure_time

EG_TOPIC = Topic(name="orders", arm_id="/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/orders")
CE_TOPIC = Topic(name="ce", arm_id="/x/topics/ce", input_schema="CloudEventSchemaV1_0")


def eg_event(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"id-{i}", "topic": EG_TOPIC.arm_id, "subject": f"/orders/{i}", "eventType": "Order.Created",
            "eventTime": "2024-05-01T12:00:00Z", "dataVersion": "2.0", "metadataVersion": "1",
            "data": {"n": i, "tenant": "contoso", "flag": True, "nested": {"x": 1}}, **extra}


def delivery(event: dict[str, Any], attempts: int = 0, i: int = 1) -> Delivery:
    stored = StoredEvent(seq=i, topic="orders", id=event["id"], type="T", subject="", time="", published_at=0.0,
                         body=orjson.dumps(event))
    return Delivery(id=i, topic="orders", subscription="sub", event=stored, attempts=attempts, next_attempt_at=0.0)


def target(topic: Topic = EG_TOPIC, schema: str | None = None, max_events: int = 1, mappings: list | None = None,
           ) -> Target:
    dest: dict[str, Any] = {"endpointUrl": "http://127.0.0.1:1/hook?code=s", "maxEventsPerBatch": max_events,
                            "preferredBatchSizeInKilobytes": 64}
    if mappings:
        dest["deliveryAttributeMappings"] = mappings
    props = {"destination": {"endpointType": "WebHook", "properties": dest}, "filter": {},
             "eventDeliverySchema": schema or topic.input_schema,
             "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}}
    return Target.of(Subscription(topic.name, "My-Sub", SubscriptionProperties.from_arm(props)), topic)


def test_plan_batches_honours_both_limits_in_order() -> None:
    items = list(range(10))
    assert plan_batches(items, [1] * 10, 1, 1000) == [[i] for i in items]
    assert plan_batches(items, [1] * 10, 4, 1000) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plan_batches(items, [100] * 10, 10, 250) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    # an item larger than the preferred size travels alone; the order is kept
    assert plan_batches([0, 1, 2, 3], [10, 500, 10, 10], 10, 100) == [[0], [1], [2, 3]]
    assert plan_batches([], [], 5, 100) == []


def test_eventgrid_single_event_is_an_array_with_aeg_headers() -> None:
    t = target()
    body, headers = render(t, [delivery(eg_event(1), attempts=2)])
    assert orjson.loads(body) == [eg_event(1)]
    assert headers == {"aeg-event-type": "Notification", "aeg-subscription-name": "MY-SUB", "aeg-delivery-count": "2",
                       "Content-Type": "application/json; charset=utf-8", "aeg-metadata-version": "1",
                       "aeg-data-version": "2.0"}
    assert t.endpoint == "http://127.0.0.1:1/hook"


def test_eventgrid_to_cloudevents_single_is_a_structured_object() -> None:
    body, headers = render(target(schema="CloudEventSchemaV1_0"), [delivery(eg_event(1))])
    event = orjson.loads(body)
    assert headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    assert headers["aeg-metadata-version"] == "1.0" and "aeg-data-version" not in headers
    assert event == {"id": "id-1", "source": EG_TOPIC.arm_id, "type": "Order.Created", "specversion": "1.0",
                     "subject": "/orders/1", "time": "2024-05-01T12:00:00Z", "dataversion": "2.0",
                     "datacontenttype": "application/json", "data": eg_event(1)["data"]}


def test_cloudevents_batch_is_an_array() -> None:
    ce = [{"id": f"c{i}", "source": "/s", "type": "T", "specversion": "1.0", "data": {"i": i}} for i in range(3)]
    body, headers = render(target(CE_TOPIC, max_events=10), [delivery(e, i=i) for i, e in enumerate(ce)])
    assert orjson.loads(body) == ce
    assert headers["Content-Type"] == "application/cloudevents-batch+json; charset=utf-8"


def test_delivery_attribute_headers_static_and_dynamic() -> None:
    mappings = [
        {"name": "X-Static", "type": "Static", "properties": {"value": "v1", "isSecret": False}},
        {"name": "Authorization", "type": "Static", "properties": {"value": "Bearer s", "isSecret": True}},
        {"name": "X-Tenant", "type": "Dynamic", "properties": {"sourceField": "data.tenant"}},
        {"name": "X-Number", "type": "Dynamic", "properties": {"sourceField": "data.n"}},
        {"name": "X-Flag", "type": "Dynamic", "properties": {"sourceField": "data.flag"}},
        {"name": "X-Subject", "type": "Dynamic", "properties": {"sourceField": "Subject"}},
        {"name": "X-Object", "type": "Dynamic", "properties": {"sourceField": "data.nested"}},
        {"name": "X-Missing", "type": "Dynamic", "properties": {"sourceField": "data.nope"}},
    ]
    _, headers = render(target(mappings=mappings), [delivery(eg_event(7))])
    assert headers["X-Static"] == "v1" and headers["Authorization"] == "Bearer s"
    assert (headers["X-Tenant"], headers["X-Number"], headers["X-Flag"]) == ("contoso", "7", "true")
    assert headers["X-Subject"] == "/orders/7"
    assert "X-Object" not in headers and "X-Missing" not in headers


@pytest.mark.parametrize("schema", ["EventGridSchema", "CloudEventSchemaV1_0"])
def test_dead_letter_fields_per_schema(schema: str) -> None:
    event = {"id": "e1"}
    out = dead_letter_event(event, schema, reason="MaxDeliveryAttemptsExceeded", attempts=3, last_outcome="Busy",
                            last_status=500, published_at=0.0, last_attempt_at=1.5)
    fields = ["deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode", "publishTime",
              "lastDeliveryAttemptTime"]
    if schema == "CloudEventSchemaV1_0":
        fields = [f.lower() for f in fields]
    assert [out[f] for f in fields] == ["MaxDeliveryAttemptsExceeded", 3, "Busy", 500,
                                        "1970-01-01T00:00:00.0000000Z", "1970-01-01T00:00:01.5000000Z"]
    assert event == {"id": "e1"}


def test_dead_letter_blob_layout(tmp_path) -> None:
    path = blob_path(tmp_path, "My-Blob-Subscription", 1565240400.0)  # 2019-08-08 05:00 UTC
    assert path.parent == tmp_path / "MY-BLOB-SUBSCRIPTION" / "2019" / "8" / "8" / "5"
    assert path.suffix == ".json"
    assert azure_time(1565240400.25) == "2019-08-08T05:00:00.2500000Z"
