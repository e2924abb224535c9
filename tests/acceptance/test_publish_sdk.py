"""Publishing with the official azure-eventgrid SDK to a real `commgrid serve`, over HTTP and HTTPS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from tests.support import ServerProcess


@pytest.fixture(scope="module")
def eg_topic(server: ServerProcess) -> dict:
    return server.create_topic("orders")


@pytest.fixture(scope="module")
def ce_topic(server: ServerProcess) -> dict:
    return server.create_topic("ce-orders", "cloudeventschemav1_0")


class Publisher:
    """EventGridPublisherClient trusting commgrid's CA (its constructor ignores `connection_verify`)."""

    def __init__(self, endpoint: str, credential, ca: str) -> None:
        self._client = EventGridPublisherClient(endpoint, credential)
        self._ca = ca

    def send(self, events) -> None:
        self._client.send(events, connection_verify=self._ca)


def client(endpoint: str, credential, server: ServerProcess) -> Publisher:
    return Publisher(endpoint, credential, server.ca)


def stored(server: ServerProcess, topic: str) -> list[dict]:
    return json.loads(server.cli("events", "list", "--topic", topic, "--limit", "500", "--json").stdout)


def test_eventgrid_events_over_https_with_key(server: ServerProcess, eg_topic: dict) -> None:
    c = client(eg_topic["endpoint"], AzureKeyCredential(eg_topic["key1"]), server)
    single = EventGridEvent(subject="/orders/1", event_type="Order.Created", data={"n": 1}, data_version="1.0")
    batch = [EventGridEvent(subject=f"/orders/{i}", event_type="Order.Created", data={"n": i}, data_version="1.0")
             for i in range(2, 12)]
    c.send(single)
    c.send(batch)
    ids = {e["id"] for e in stored(server, "orders")}
    assert {str(single.id), *(str(e.id) for e in batch)} <= ids
    shown = json.loads(server.cli("events", "show", str(single.id), "--topic", "orders", "--json").stdout)["event"]
    assert shown["topic"] == eg_topic["armId"]
    assert shown["metadataVersion"] == "1" and shown["data"] == {"n": 1} and shown["dataVersion"] == "1.0"


def test_key2_and_http_endpoint(server: ServerProcess, eg_topic: dict) -> None:
    c = EventGridPublisherClient(eg_topic["httpEndpoint"], AzureKeyCredential(eg_topic["key2"]))
    event = EventGridEvent(subject="s", event_type="T", data={}, data_version="1")
    c.send(event)
    assert str(event.id) in {e["id"] for e in stored(server, "orders")}


def test_cloudevents_single_and_batch(server: ServerProcess, ce_topic: dict) -> None:
    c = client(ce_topic["endpoint"], AzureKeyCredential(ce_topic["key1"]), server)
    one = CloudEvent(source="/shop", type="Order.Created", data={"n": 1}, subject="orders/1")
    many = [CloudEvent(source="/shop", type="Order.Paid", data={"n": i}) for i in range(5)]
    c.send(one)
    c.send(many)
    events = {e["id"]: e for e in stored(server, "ce-orders")}
    assert {one.id, *(e.id for e in many)} <= events.keys()
    assert events[one.id]["event"]["source"] == "/shop" and events[one.id]["subject"] == "orders/1"


def test_sas_token_from_generate_sas(server: ServerProcess, eg_topic: dict) -> None:
    token = generate_sas(eg_topic["endpoint"], eg_topic["key1"], datetime.now(UTC) + timedelta(hours=1))
    c = client(eg_topic["endpoint"], AzureSasCredential(token), server)
    event = EventGridEvent(subject="sas", event_type="T", data={}, data_version="1")
    c.send(event)
    assert str(event.id) in {e["id"] for e in stored(server, "orders")}


def test_expired_sas_token_is_rejected(server: ServerProcess, eg_topic: dict) -> None:
    token = generate_sas(eg_topic["endpoint"], eg_topic["key1"], datetime.now(UTC) - timedelta(minutes=1))
    c = client(eg_topic["endpoint"], AzureSasCredential(token), server)
    with pytest.raises(ClientAuthenticationError):
        c.send(EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))


def test_sas_token_signed_with_wrong_key_is_rejected(server: ServerProcess, eg_topic: dict) -> None:
    token = generate_sas(eg_topic["endpoint"], "d3Jvbmcta2V5", datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(ClientAuthenticationError):
        client(eg_topic["endpoint"], AzureSasCredential(token), server).send(
            EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))


def test_wrong_key_is_401(server: ServerProcess, eg_topic: dict) -> None:
    c = client(eg_topic["endpoint"], AzureKeyCredential("bm90LXRoZS1rZXk="), server)
    with pytest.raises(ClientAuthenticationError) as raised:
        c.send(EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))
    assert raised.value.status_code == 401


def test_unknown_topic_is_404(server: ServerProcess, eg_topic: dict) -> None:
    endpoint = eg_topic["endpoint"].replace("/orders/", "/nope/")
    with pytest.raises(ResourceNotFoundError):
        client(endpoint, AzureKeyCredential(eg_topic["key1"]), server).send(
            EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))


def test_wrong_schema_for_topic_is_400(server: ServerProcess, ce_topic: dict) -> None:
    c = client(ce_topic["endpoint"], AzureKeyCredential(ce_topic["key1"]), server)
    with pytest.raises(HttpResponseError) as raised:
        c.send(EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))
    assert raised.value.status_code == 400
    assert "CloudEvents" in raised.value.message

