"""Publish errors: status codes and Azure's error body, and nothing stored from a rejected request."""

from __future__ import annotations

import json

import httpx
import pytest

from commgrid.runtime import Runtime
from tests.inprocess.conftest import create_topic


@pytest.fixture
async def topic(runtime: Runtime) -> dict:
    return await create_topic(runtime, "errs")


@pytest.fixture
def http(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return client


def good_event(**overrides) -> dict:
    event = {"id": "e1", "subject": "s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z", "data": {},
             "dataVersion": "1"}
    event.update(overrides)
    return event


async def post(http: httpx.AsyncClient, topic: dict, body, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(topic["endpoint"], content=content,
                     headers={"aeg-sas-key": topic["key1"], "content-type": "application/json", **headers})


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]


async def test_missing_credentials_is_401(http, topic) -> None:
    r = await http.post(topic["endpoint"], content=b"[]")
    assert r.status_code == 401
    assert "aeg-sas-key" in error_of(r)["message"]


async def test_malformed_json_is_400(http, topic) -> None:
    r = await post(http, topic, b"[{not json")
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "BadRequest" and err["details"][0]["code"] == "InputJsonInvalid"


@pytest.mark.parametrize("body", [{"id": "x"}, [], [1, 2], "text"])
async def test_body_must_be_array_of_objects(http, topic, body) -> None:
    assert (await post(http, topic, body)).status_code == 400


@pytest.mark.parametrize(
    ("field", "label"), [("id", "Id"), ("subject", "Subject"), ("eventType", "EventType"), ("eventTime", "EventTime")]
)
async def test_missing_required_field_is_named(http, topic, field, label) -> None:
    event = good_event()
    del event[field]
    r = await post(http, topic, [event])
    assert r.status_code == 400
    assert f"'{label}'" in error_of(r)["message"]


async def test_every_problem_is_listed_in_details(http, topic) -> None:
    r = await post(http, topic, [{"data": {}}, good_event(eventTime="yesterday")])
    err = error_of(r)
    messages = " ".join(d["message"] for d in err["details"])
    for label in ("Id", "Subject", "EventType", "EventTime"):
        assert f"'{label}'" in messages
    assert "not a valid date/time" in messages


async def test_bad_metadata_version_is_400(http, topic) -> None:
    r = await post(http, topic, [good_event(metadataVersion="2")])
    assert r.status_code == 400 and "MetadataVersion" in error_of(r)["message"]


async def test_foreign_topic_field_is_rejected_and_own_is_accepted(http, topic) -> None:
    r = await post(http, topic, [good_event(topic="/subscriptions/x/other")])
    assert r.status_code == 400 and "Topic" in error_of(r)["message"]
    assert (await post(http, topic, [good_event(id="own", topic=topic["armId"].upper())])).status_code == 200


async def test_cloudevent_to_eventgrid_topic_is_400(http, topic) -> None:
    ce = {"id": "c", "source": "/s", "type": "T", "specversion": "1.0"}
    r = await post(http, topic, [ce])
    assert r.status_code == 400 and error_of(r)["details"][0]["code"] == "InputSchemaMismatch"


async def test_request_over_1mb_is_413(http, topic) -> None:
    events = [good_event(id=f"big{i}", data={"pad": "x" * 60_000}) for i in range(20)]
    r = await post(http, topic, events)
    assert r.status_code == 413
    assert error_of(r)["code"] == "RequestEntityTooLarge"


async def test_chunked_request_over_1mb_is_413(http, topic) -> None:
    async def chunks():
        for _ in range(20):
            yield b" " * 100_000  # whitespace: valid JSON padding, so only the size can fail it

    r = await http.post(topic["endpoint"], content=chunks(), headers={"aeg-sas-key": topic["key1"]})
    assert r.status_code == 413


async def test_rejected_request_stores_nothing(runtime: Runtime, http, topic) -> None:
    r = await post(http, topic, [good_event(id="ok-but-batch-bad"), good_event(id="bad", eventTime="nope")])
    assert r.status_code == 400
    listed = await runtime.grid.list_events("errs")
    assert "ok-but-batch-bad" not in {e.id for e in listed}


async def test_system_topic_has_no_publish_endpoint(runtime: Runtime, http, topic) -> None:
    name = runtime.deployment.system_topic_name
    r = await http.post(topic["endpoint"].replace("/errs/", f"/{name}/"), content=b"[]",
                  headers={"aeg-sas-key": topic["key1"]})
    assert r.status_code == 404


async def test_key_in_query_string_is_accepted(http, topic) -> None:
    r = await http.post(topic["endpoint"], params={"aeg-sas-key": topic["key1"]},
                  content=json.dumps([good_event(id="q")]).encode())
    assert r.status_code == 200


async def test_an_event_delivered_back_to_the_topic_that_published_it_is_refused(http, topic, runtime) -> None:
    """A subscription whose webhook is its own topic's endpoint would loop: the delivery (it carries
    `aeg-event-type`) is refused with 400 when the topic already holds its first event's id, however old."""
    assert (await post(http, topic, [good_event(id="first")])).status_code == 200
    later = [good_event(id=f"later-{i}") for i in range(100)]
    for _ in range(25):  # over 2,048 events after it, so the lookup reaches back past the newest block
        assert (await post(http, topic, later)).status_code == 200
    looped = await post(http, topic, [good_event(id="first")], **{"aeg-event-type": "Notification"})
    assert looped.status_code == 400
    assert error_of(looped)["code"] == "DeliveryLoopDetected"
    fresh = await post(http, topic, [good_event(id="new")], **{"aeg-event-type": "Notification"})
    assert fresh.status_code == 200
    assert await runtime.store.count_events(topic["name"]) == 2502
