"""Two `commgrid serve` nodes on one PostgreSQL database share topics, subscriptions and the delivery queue."""

from __future__ import annotations

import uuid

import httpx
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridEvent, EventGridPublisherClient
from azure.mgmt.eventgrid import models

from tests.acceptance.arm import eventgrid_client
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess


def test_two_nodes_share_one_workload(tmp_path, postgres_url: str, rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url).start()
    try:
        assert a.info()["communicationServices"]["accessKey"] == b.info()["communicationServices"]["accessKey"]
        topic = a.create_topic("shared")
        b.cli("subscription", "create", "--topic", "shared", "--name", "hook", "--endpoint", rx.endpoint("multi"))
        for node in (a, b):
            node.wait_catalog()
        ids = [str(uuid.uuid4()) for _ in range(200)]
        with httpx.Client(timeout=10) as client:
            for n, event_id in enumerate(ids):
                node = a if n % 2 else b
                event = {"id": event_id, "subject": "/s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                         "data": {"n": n}, "dataVersion": "1"}
                response = client.post(f"{node.http}/topics/shared/api/events", json=[event],
                                       headers={"aeg-sas-key": topic["key1"]})
                assert response.status_code == 200, response.text
        rx.wait_events("multi", len(ids), timeout=20)
        a.wait_settled()  # every delivery done: a duplicate, if a node double-claimed, has arrived
        delivered = [e["id"] for e in rx.events("multi")]
        assert sorted(delivered) == sorted(ids), "every event once, whichever node took it"
    finally:
        for node in (a, b):
            if node.process:
                node.stop()


def test_a_subscription_made_through_arm_on_one_node_delivers_from_the_other(tmp_path, postgres_url: str,
                                                                            rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url).start()
    try:
        client = eventgrid_client(a)
        client.topics.begin_create_or_update("commgrid", "arm-shared", models.Topic(location="local")).result()
        key = client.topics.list_shared_access_keys("commgrid", "arm-shared").key1
        topic_id = client.topics.get("commgrid", "arm-shared").id
        client.event_subscriptions.begin_create_or_update(topic_id, "hook", models.EventSubscription(
            destination=models.WebHookEventSubscriptionDestination(endpoint_url=rx.endpoint("arm-multi")))).result()
        b.wait_catalog(a.catalog_version(), timeout=5)  # LISTEN/NOTIFY: B hears of A's change as it commits
        a.stop()
        EventGridPublisherClient(f"{b.https}/topics/arm-shared/api/events", AzureKeyCredential(key)).send(
            [EventGridEvent("/s", "T", {"n": n}, "1.0") for n in range(20)], connection_verify=b.ca)
        assert len(rx.wait_events("arm-multi", 20, timeout=20)) == 20
    finally:
        for node in (a, b):
            if node.process:
                node.stop()
