"""`POST /topics/{topic}/api/events` in process: who may publish, and both input schemas end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.eventgrid import generate_sas

from commgrid.runtime import Runtime
from tests.inprocess.conftest import create_topic

EVENT = {"id": "e1", "subject": "/s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z", "data": {"n": 1},
         "dataVersion": "1"}
CLOUD_EVENT = {"specversion": "1.0", "id": "c1", "source": "/shop", "type": "Order.Created", "data": {"n": 1}}


@pytest.fixture
async def topic(runtime: Runtime) -> dict:
    return await create_topic(runtime, "routes")


async def post(client: httpx.AsyncClient, topic: dict, body: object, content_type: str = "application/json",
               **headers: str) -> httpx.Response:
    return await client.post(topic["httpEndpoint"], content=json.dumps(body).encode(),
                             headers={"content-type": content_type, **headers})


async def stored_ids(runtime: Runtime, topic: str) -> set[str]:
    return {e.id for e in await runtime.grid.list_events(topic)}


@pytest.mark.parametrize("key", ["key1", "key2"])
async def test_either_key_publishes(runtime: Runtime, client: httpx.AsyncClient, topic: dict, key: str) -> None:
    assert (await post(client, topic, [EVENT], **{"aeg-sas-key": topic[key]})).status_code == 200
    assert await stored_ids(runtime, "routes") == {"e1"}


async def test_a_wrong_key_is_401_and_stores_nothing(runtime: Runtime, client: httpx.AsyncClient,
                                                     topic: dict) -> None:
    response = await post(client, topic, [EVENT], **{"aeg-sas-key": "bm90LXRoZS1rZXk="})
    assert response.status_code == 401
    assert set(response.json()) == {"error"} and response.json()["error"]["code"]
    assert await stored_ids(runtime, "routes") == set()


async def test_a_sas_token_made_by_the_sdk_publishes(client: httpx.AsyncClient, topic: dict) -> None:
    token = generate_sas(topic["httpEndpoint"], topic["key1"], datetime.now(UTC) + timedelta(hours=1))
    assert (await post(client, topic, [EVENT], **{"aeg-sas-token": token})).status_code == 200


async def test_an_expired_or_foreign_sas_token_is_401(runtime: Runtime, client: httpx.AsyncClient,
                                                      topic: dict) -> None:
    expired = generate_sas(topic["httpEndpoint"], topic["key1"], datetime.now(UTC) - timedelta(minutes=1))
    other = await create_topic(runtime, "other")
    foreign = generate_sas(other["httpEndpoint"], other["key1"], datetime.now(UTC) + timedelta(hours=1))
    for token in (expired, foreign):
        assert (await post(client, topic, [EVENT], **{"aeg-sas-token": token})).status_code == 401


async def test_an_unknown_topic_is_404(client: httpx.AsyncClient, topic: dict) -> None:
    response = await client.post(topic["httpEndpoint"].replace("/routes/", "/nowhere/"), json=[EVENT],
                                 headers={"aeg-sas-key": topic["key1"]})
    assert response.status_code == 404


async def test_cloudevents_topic_takes_structured_and_batched_events(runtime: Runtime,
                                                                     client: httpx.AsyncClient) -> None:
    topic = await create_topic(runtime, "ce-topic", "CloudEventSchemaV1_0")
    key = {"aeg-sas-key": topic["key1"]}
    assert (await post(client, topic, CLOUD_EVENT, "application/cloudevents+json; charset=utf-8",
                       **key)).status_code == 200
    batch = [CLOUD_EVENT | {"id": "c2"}, CLOUD_EVENT | {"id": "c3"}]
    assert (await post(client, topic, batch, "application/cloudevents-batch+json; charset=utf-8",
                       **key)).status_code == 200
    assert await stored_ids(runtime, "ce-topic") == {"c1", "c2", "c3"}
    (stored,) = [e for e in await runtime.grid.list_events("ce-topic") if e.id == "c1"]
    assert json.loads(stored.body)["source"] == "/shop"


async def test_an_eventgrid_event_to_a_cloudevents_topic_is_400(runtime: Runtime,
                                                                client: httpx.AsyncClient) -> None:
    topic = await create_topic(runtime, "ce-topic", "CloudEventSchemaV1_0")
    key = {"aeg-sas-key": topic["key1"]}
    response = await post(client, topic, [EVENT], "application/cloudevents-batch+json", **key)
    assert response.status_code == 400
    assert await stored_ids(runtime, "ce-topic") == set()
