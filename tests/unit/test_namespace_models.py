"""Namespace resource validation and ARM rendering (grid/namespaces/models.py)."""

from __future__ import annotations

import pytest
from azure.mgmt.eventgrid.models import Namespace as ArmNamespace
from azure.mgmt.eventgrid.models import NamespaceTopic as ArmTopic
from azure.mgmt.eventgrid.models import Subscription as ArmSubscription

from commgrid.errors import InvalidInput
from commgrid.grid.namespaces.models import (
    Namespace,
    NamespaceSubscription,
    NamespaceTopic,
    duration_seconds,
    validate_namespace,
    validate_subscription,
    validate_topic,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("P1D", 86400), ("PT10M", 600), ("PT1H30M", 5400), ("P1W", 604800), ("PT0.5S", 0.5), ("P1DT1S", 86401),
])
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "1D", "P1Y", "P1M", "PT1D", "", "P1DT"])
def test_not_durations(text: str) -> None:
    assert duration_seconds(text) is None


def test_queue_defaults_are_filled_in() -> None:
    props = validate_subscription({}, 7)
    assert props["deliveryConfiguration"] == {"deliveryMode": "Queue", "queue": {
        "receiveLockDurationInSeconds": 60, "maxDeliveryCount": 10, "eventTimeToLive": "P7D"}}
    assert props["filtersConfiguration"] == {"filters": []}


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_subscription({"deliveryConfiguration": {"deliveryMode": "Queue", "queue": {
            "receiveLockDurationInSeconds": 301, "maxDeliveryCount": 0, "eventTimeToLive": "PT30S"}},
            "eventDeliverySchema": "EventGridSchema",
            "filtersConfiguration": {"filters": [{"operatorType": "StringIn", "key": "data.x"}]}}, 1)
    messages = [d.message for d in caught.value.details]
    assert len(messages) == 5, messages
    assert any("receiveLockDurationInSeconds" in m for m in messages)
    assert any("maxDeliveryCount" in m for m in messages)
    assert any("shorter than the minimum" in m for m in messages)
    assert any("eventDeliverySchema" in m for m in messages)
    assert caught.value.status == 400


def test_ttl_longer_than_retention_and_bad_push_destination() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_subscription({"deliveryConfiguration": {"deliveryMode": "Push", "push": {
            "eventTimeToLive": "P2D", "destination": {"endpointType": "EventHub", "properties": {}}}}}, 1)
    messages = " ".join(d.message for d in caught.value.details)
    assert "retention of 1 days" in messages and "EventHub" in messages and "endpointUrl" in messages


def test_topic_and_namespace_rules() -> None:
    assert validate_topic({"eventRetentionInDays": 1}) == 1
    with pytest.raises(InvalidInput) as caught:
        validate_topic({"inputSchema": "EventGridSchema", "eventRetentionInDays": 8, "publisherType": "Partner"})
    assert len(caught.value.details) == 3
    assert validate_namespace({"sku": {"name": "Standard", "capacity": 2}, "tags": {"a": "b"}}, "local") == (
        "local", 2, {"a": "b"})
    with pytest.raises(InvalidInput):
        validate_namespace({"sku": {"name": "Basic", "capacity": 41}}, "local")


def test_arm_renderings_deserialise_with_the_management_sdk() -> None:
    ns = ArmNamespace.deserialize(Namespace("ns", "local", "k1", "k2", 2, {"a": "b"}).to_arm(
        "/x/namespaces/ns", "127.0.0.1:7443/namespaces/ns"))
    assert ns.name == "ns" and ns.sku.capacity == 2 and ns.provisioning_state == "Succeeded"
    assert ns.topics_configuration.hostname == "127.0.0.1:7443/namespaces/ns"
    topic = ArmTopic.deserialize(NamespaceTopic("ns", "t", 3).to_arm("/x/topics/t"))
    assert topic.input_schema == "CloudEventSchemaV1_0" and topic.event_retention_in_days == 3
    props = validate_subscription({"deliveryConfiguration": {"deliveryMode": "Push", "push": {
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "https://h/x?code=secret"}}}},
        "filtersConfiguration": {"includedEventTypes": ["A"], "filters": [
            {"operatorType": "NumberIn", "key": "data.n", "values": [1.0]}]}}, 7)
    sub = ArmSubscription.deserialize(NamespaceSubscription("ns", "t", "s", props).to_arm("/x/s"))
    push = sub.delivery_configuration.push
    assert push.destination.endpoint_base_url == "https://h/x" and push.max_delivery_count == 10
    assert sub.filters_configuration.included_event_types == ["A"]
    assert sub.filters_configuration.filters[0].values == [1.0]
