"""Namespace topics and queue subscriptions driven by the official azure-eventgrid clients over HTTPS.

Runs on SQLite and on PostgreSQL, against a real `commgrid serve --time-scale 60` (60 s locks last 1 s).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import generate_sas

from tests.acceptance.namespace_helpers import (
    TIME_SCALE,
    cloud_events,
    consumer,
    create_queue,
    dead_letters,
    endpoint,
    postgres_database,
    publisher,
)
from tests.support import ServerProcess

API = "api-version=2024-06-01"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory) -> Iterator[ServerProcess]:
    def started(store: str | None) -> ServerProcess:
        return ServerProcess(tmp_path_factory.mktemp("ns"), store=store,
                             extra_args=("--time-scale", TIME_SCALE)).start()

    if request.param == "sqlite":
        proc = started(None)
        yield proc
        proc.stop()
        return
    with postgres_database() as url:
        proc = started(url)
        yield proc
        proc.stop()


def test_publish_receive_acknowledge(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "fulfil")
    single = CloudEvent(source="/orders", type="Order.Created", data={"n": "single"}, extensions={"tenant": "t1"})
    publisher(server, ns, "orders").send(single)
    publisher(server, ns, "orders").send(cloud_events(5))
    c = consumer(server, ns, "orders", "fulfil")
    got = c.receive(max_events=10, max_wait_time=10)
    assert len(got) == 6
    first = got[0]
    assert first.event.id == single.id and first.event.data == {"n": "single"}
    assert first.event.extensions == {"tenant": "t1"}
    assert all(d.broker_properties.delivery_count == 1 for d in got)
    tokens = [d.broker_properties.lock_token for d in got]
    acked = c.acknowledge(lock_tokens=tokens)
    assert sorted(acked.succeeded_lock_tokens) == sorted(tokens) and acked.failed_lock_tokens == []
    again = c.acknowledge(lock_tokens=[tokens[0], "not-a-token"])
    assert again.succeeded_lock_tokens == []
    assert {f.lock_token: f.error.code for f in again.failed_lock_tokens} == {
        tokens[0]: "TokenLost", "not-a-token": "BadToken"}


def test_receive_long_polls_until_an_event_arrives(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "waiting")
    c = consumer(server, ns, "orders", "waiting")
    result: dict = {}

    def receive() -> None:
        started = time.monotonic()
        result["got"] = c.receive(max_events=5, max_wait_time=30)
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=receive)
    thread.start()
    time.sleep(0.5)  # the receive is waiting on an empty queue
    publisher(server, ns, "orders").send(cloud_events(1, "Order.Waited"))
    thread.join(30)
    assert [d.event.type for d in result["got"]] == ["Order.Waited"]
    assert 0.4 < result["took"] < 10, "woken by the publish, not by the 30 s timeout"
    c.acknowledge(lock_tokens=[result["got"][0].broker_properties.lock_token])


def test_lock_lapses_renew_and_expired_token(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "slow")
    publisher(server, ns, "orders").send(cloud_events(2))
    c = consumer(server, ns, "orders", "slow")
    a, b = c.receive(max_events=2, max_wait_time=10)
    renewed = c.renew_locks(lock_tokens=[a.broker_properties.lock_token])
    assert renewed.succeeded_lock_tokens == [a.broker_properties.lock_token]
    time.sleep(1.5)  # past the 60 s (scaled: 1 s) lock; nothing observable marks the moment it lapses
    late = c.acknowledge(lock_tokens=[b.broker_properties.lock_token])
    assert late.failed_lock_tokens[0].error.code == "TokenLost"
    back = c.receive(max_events=2, max_wait_time=10)
    assert sorted(d.event.id for d in back) == sorted([a.event.id, b.event.id])
    assert {d.broker_properties.delivery_count for d in back} == {2}
    assert c.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in back]).failed_lock_tokens == []


def test_release_with_delay(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "later")
    publisher(server, ns, "orders").send(cloud_events(1))
    c = consumer(server, ns, "orders", "later")
    (first,) = c.receive(max_events=1, max_wait_time=10)
    released = c.release(lock_tokens=[first.broker_properties.lock_token], release_delay=60)
    assert released.succeeded_lock_tokens == [first.broker_properties.lock_token]
    started = time.monotonic()
    (again,) = c.receive(max_events=1, max_wait_time=10)
    assert again.event.id == first.event.id and again.broker_properties.delivery_count == 2
    assert time.monotonic() - started >= 0.8, "held back for the (scaled) 60 s delay"
    with pytest.raises(HttpResponseError) as bad:
        c.release(lock_tokens=[again.broker_properties.lock_token], release_delay=5)
    assert bad.value.status_code == 400
    assert c.release(lock_tokens=[again.broker_properties.lock_token]).succeeded_lock_tokens
    (third,) = c.receive(max_events=1, max_wait_time=10)
    assert third.broker_properties.delivery_count == 3
    c.acknowledge(lock_tokens=[third.broker_properties.lock_token])


def test_reject_and_max_delivery_count_dead_letter(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "picky", "--max-delivery-count", "2")
    pub = publisher(server, ns, "orders")
    pub.send(cloud_events(2))
    c = consumer(server, ns, "orders", "picky")
    doomed, rejected = c.receive(max_events=2, max_wait_time=10)
    assert c.reject(lock_tokens=[rejected.broker_properties.lock_token]).succeeded_lock_tokens
    c.release(lock_tokens=[doomed.broker_properties.lock_token])
    (second,) = c.receive(max_events=2, max_wait_time=10)
    assert second.event.id == doomed.event.id and second.broker_properties.delivery_count == 2
    c.release(lock_tokens=[second.broker_properties.lock_token])
    pub.send(CloudEvent(source="/orders", type="Sentinel", data={}))
    got = c.receive(max_events=5, max_wait_time=10)
    assert [d.event.type for d in got] == ["Sentinel"], "the twice-delivered event is dead-lettered, not handed out"
    c.acknowledge(lock_tokens=[got[0].broker_properties.lock_token])
    reasons = {d["event"]["id"]: d["reason"] for d in dead_letters(server, "shop", "orders", "picky")}
    assert reasons == {rejected.event.id: "Rejected", doomed.event.id: "MaxDeliveryCountExceeded"}


def test_filters_route_only_matching_events(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "big", "--event-type", "Order.Created",
                      "--filter", '{"operatorType":"NumberGreaterThanOrEquals","key":"data.n","value":3}')
    publisher(server, ns, "orders").send(cloud_events(5) + cloud_events(5, "Order.Deleted"))
    c = consumer(server, ns, "orders", "big")
    got = c.receive(max_events=100, max_wait_time=10)
    assert sorted((d.event.type, d.event.data["n"]) for d in got) == [("Order.Created", 3), ("Order.Created", 4)]
    c.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])


def test_errors_auth_and_limits(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "errors")
    with pytest.raises(ClientAuthenticationError):
        publisher(server, ns, "orders", key="d3Jvbmc=").send(cloud_events(1))
    with pytest.raises(ClientAuthenticationError):
        consumer(server, ns, "orders", "errors", key="d3Jvbmc=").receive(max_wait_time=10)
    with pytest.raises(ResourceNotFoundError):
        publisher(server, ns, "nope").send(cloud_events(1))
    with pytest.raises(HttpResponseError) as too_many:
        consumer(server, ns, "orders", "errors").receive(max_events=101, max_wait_time=10)
    assert too_many.value.status_code == 400
    with pytest.raises(HttpResponseError) as too_short:
        consumer(server, ns, "orders", "errors").receive(max_events=1, max_wait_time=5)
    assert too_short.value.status_code == 400
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca)) as http:
        url = f"{endpoint(server, 'shop')}/topics/orders:publish?{API}"
        bad = http.post(url, content=b'[{"id":"1","specversion":"1.0","type":"T"}]',
                        headers={"Authorization": f"SharedAccessKey {ns['key2']}",
                                 "Content-Type": "application/cloudevents-batch+json"})
        assert bad.status_code == 400 and "source" in bad.json()["error"]["message"]


def test_sas_structured_and_binary_content_modes(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "modes")
    url = f"{endpoint(server, 'shop')}/topics/orders:publish?{API}"
    sas = generate_sas(endpoint(server, "shop"), ns["key1"], datetime.now(UTC) + timedelta(hours=1))
    auth = {"Authorization": f"SharedAccessSignature {sas}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca)) as http:
        structured = http.post(url, headers={**auth, "Content-Type": "application/cloudevents+json"},
                               content=b'{"specversion":"1.0","id":"s1","source":"/x","type":"Structured","data":1}')
        assert structured.status_code == 200 and structured.json() == {}
        binary = http.post(url, content=b'{"size":2}', headers={
            **auth, "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/x",
            "ce-type": "Binary", "ce-subject": "/b"})
        assert binary.status_code == 200, binary.text
        raw = http.post(url, content=b"\x00\x01", headers={
            **auth, "Content-Type": "application/octet-stream", "ce-specversion": "1.0", "ce-id": "b2",
            "ce-source": "/x", "ce-type": "Bytes"})
        assert raw.status_code == 200, raw.text
        expired = generate_sas(endpoint(server, "shop"), ns["key1"], datetime.now(UTC) - timedelta(minutes=1))
        assert http.post(url, headers={"Authorization": f"SharedAccessSignature {expired}"},
                         json=[]).status_code == 401
    c = consumer(server, ns, "orders", "modes")
    got = {d.event.id: d.event for d in c.receive(max_events=10, max_wait_time=10)}
    assert got["s1"].type == "Structured" and got["s1"].data == 1
    assert got["b1"].data == {"size": 2} and got["b1"].subject == "/b"
    assert got["b2"].data == b"\x00\x01"


def test_update_keeps_queued_events_and_mode_is_fixed(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "changing")
    publisher(server, ns, "orders").send(cloud_events(2))
    updated = server.cli("namespace", "subscription", "create", "shop", "orders", "changing",
                         "--lock-duration", "120", "--max-delivery-count", "3")
    assert '"receiveLockDurationInSeconds": 120' in updated.stdout
    switched = server.cli("namespace", "subscription", "create", "shop", "orders", "changing", "--mode", "push",
                          "--endpoint", "http://127.0.0.1:9/x", check=False)
    assert switched.returncode == 1 and "deliveryMode cannot change" in switched.stderr
    c = consumer(server, ns, "orders", "changing")
    got = c.receive(max_events=10, max_wait_time=10)
    assert len(got) == 2
    with pytest.raises(ResourceNotFoundError):
        consumer(server, ns, "orders", "missing").receive(max_wait_time=10)
    c.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])


def test_cli_pull_prints_releases_and_acknowledges(server: ServerProcess) -> None:
    ns = create_queue(server, "shop", "orders", "by-hand")
    publisher(server, ns, "orders").send(cloud_events(2))

    def pull(*flags: str) -> list[dict]:
        done = server.cli("pull", "--namespace", "shop", "--topic", "orders", "--subscription", "by-hand", *flags)
        return [json.loads(line) for line in done.stdout.splitlines()]

    first = pull()
    assert [(p["event"]["data"]["n"], p["brokerProperties"]["deliveryCount"]) for p in first] == [(0, 1), (1, 1)]
    assert [p["brokerProperties"]["deliveryCount"] for p in pull("--ack")] == [2, 2], "released, then received again"
    publisher(server, ns, "orders").send(CloudEvent(source="/orders", type="Sentinel", data={}))
    assert [p["event"]["type"] for p in pull("--ack")] == ["Sentinel"], "the acknowledged events are gone"
