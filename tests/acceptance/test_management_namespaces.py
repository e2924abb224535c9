"""Event Grid namespaces configured through azure-mgmt-eventgrid, then used with the data-plane SDK clients."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.eventgrid import models as m

from tests.acceptance.arm import eventgrid_client
from tests.acceptance.namespace_helpers import cloud_events, consumer, publisher
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess

RG = "commgrid"


def test_namespace_topic_and_queue_subscription_through_arm(server: ServerProcess) -> None:
    client = eventgrid_client(server)
    ns = client.namespaces.begin_create_or_update(
        RG, "arm-shop", m.Namespace(location="local", sku=m.NamespaceSku(name="Standard", capacity=1),
                                    tags={"team": "a"})).result()
    assert ns.provisioning_state == "Succeeded" and ns.tags == {"team": "a"}
    assert ns.topics_configuration.hostname.endswith("/namespaces/arm-shop")
    assert "arm-shop" in [n.name for n in client.namespaces.list_by_resource_group(RG)]
    assert "arm-shop" in [n.name for n in client.namespaces.list_by_subscription()]
    patched = client.namespaces.begin_update(RG, "arm-shop", m.NamespaceUpdateParameters(tags={"team": "b"})).result()
    assert patched.tags == {"team": "b"}

    topic = client.namespace_topics.begin_create_or_update(
        RG, "arm-shop", "orders", m.NamespaceTopic(event_retention_in_days=1)).result()
    assert topic.event_retention_in_days == 1 and topic.input_schema == "CloudEventSchemaV1_0"
    assert [t.name for t in client.namespace_topics.list_by_namespace(RG, "arm-shop")] == ["orders"]
    queue = m.Subscription(delivery_configuration=m.DeliveryConfiguration(
        delivery_mode="Queue", queue=m.QueueInfo(receive_lock_duration_in_seconds=60, max_delivery_count=3,
                                                 event_time_to_live=timedelta(hours=1))),
        event_delivery_schema="CloudEventSchemaV1_0",
        filters_configuration=m.FiltersConfiguration(included_event_types=["Order.Created"]))
    sub = client.namespace_topic_event_subscriptions.begin_create_or_update(
        RG, "arm-shop", "orders", "fulfil", queue).result()
    assert sub.delivery_configuration.queue.max_delivery_count == 3
    assert [s.name for s in client.namespace_topic_event_subscriptions.list_by_namespace_topic(
        RG, "arm-shop", "orders")] == ["fulfil"]

    keys = client.namespaces.list_shared_access_keys(RG, "arm-shop")
    assert client.namespace_topics.list_shared_access_keys(RG, "arm-shop", "orders").key1 == keys.key1
    namespace = {"name": "arm-shop", "key1": keys.key1}
    publisher(server, namespace, "orders").send(cloud_events(3) + cloud_events(2, kind="Order.Deleted"))
    received = consumer(server, namespace, "orders", "fulfil").receive(max_events=10, max_wait_time=10)
    assert sorted(r.event.data["n"] for r in received) == [0, 1, 2]

    new = client.namespaces.begin_regenerate_key(RG, "arm-shop",
                                                 m.NamespaceRegenerateKeyRequest(key_name="key1")).result()
    assert new.key1 != keys.key1 and new.key2 == keys.key2

    client.namespace_topic_event_subscriptions.begin_delete(RG, "arm-shop", "orders", "fulfil").result()
    with pytest.raises(ResourceNotFoundError):
        client.namespace_topic_event_subscriptions.get(RG, "arm-shop", "orders", "fulfil")
    client.namespaces.begin_delete(RG, "arm-shop").result()
    with pytest.raises(ResourceNotFoundError):
        client.namespaces.get(RG, "arm-shop")
    client.namespaces.begin_delete(RG, "arm-shop").result()  # already gone: 204


def test_namespace_validation_and_push_subscriptions(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    client.namespaces.begin_create_or_update(RG, "arm-push", m.Namespace(location="local")).result()
    client.namespace_topics.begin_create_or_update(RG, "arm-push", "orders", m.NamespaceTopic()).result()
    too_short = m.Subscription(delivery_configuration=m.DeliveryConfiguration(
        delivery_mode="Queue", queue=m.QueueInfo(receive_lock_duration_in_seconds=30, max_delivery_count=20)))
    with pytest.raises(HttpResponseError) as invalid:
        client.namespace_topic_event_subscriptions.begin_create_or_update(RG, "arm-push", "orders", "bad", too_short)
    assert invalid.value.status_code == 400
    assert "receiveLockDurationInSeconds" in str(invalid.value) and "maxDeliveryCount" in str(invalid.value)

    url = rx.endpoint("arm-ns-push") + "?code=s"
    push = m.Subscription(delivery_configuration=m.DeliveryConfiguration(
        delivery_mode="Push", push=m.PushInfo(max_delivery_count=3, event_time_to_live="PT1H",
                                              destination=m.WebHookEventSubscriptionDestination(endpoint_url=url))),
        event_delivery_schema="CloudEventSchemaV1_0")
    created = client.namespace_topic_event_subscriptions.begin_create_or_update(
        RG, "arm-push", "orders", "hook", push).result()
    assert created.delivery_configuration.push.destination.endpoint_base_url == rx.endpoint("arm-ns-push")
    assert client.namespace_topic_event_subscriptions.get_full_url(RG, "arm-push", "orders", "hook").endpoint_url \
        == url
    keys = client.namespaces.list_shared_access_keys(RG, "arm-push")
    publisher(server, {"name": "arm-push", "key1": keys.key1}, "orders").send(cloud_events(2))
    assert len(rx.wait_events("arm-ns-push", 2)) == 2
