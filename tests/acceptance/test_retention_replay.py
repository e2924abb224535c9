"""Retention, replay and publish dedupe through real servers, webhooks and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from azure.mgmt.eventgrid import models as m

from tests.acceptance.arm import eventgrid_client, management
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import subscribe
from tests.support import ServerProcess

RG = "commgrid"
NUMBER = "+14255550100"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request) -> str | None:
    """The store URL a test's servers share: None for the data dir's SQLite file."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


def event(n: int, subject: str = "/orders", event_id: str | None = None, kind: str = "Order.Created") -> dict:
    return {"id": event_id or f"ev-{n}", "subject": subject, "eventType": kind, "eventTime": "2024-01-01T00:00:00Z",
            "data": {"n": n}, "dataVersion": "1"}


def post(server: ServerProcess, topic: dict[str, Any], events: list[dict], client: httpx.Client | None = None) -> None:
    if client is None:
        with httpx.Client(timeout=10) as own:
            post(server, topic, events, own)
        return
    response = client.post(f"{server.http}/topics/{topic['name']}/api/events", json=events,
                           headers={"aeg-sas-key": topic["key1"]})
    assert response.status_code == 200, response.text


def stats(server: ServerProcess) -> dict[str, Any]:
    return json.loads(server.cli("store", "stats", "--json").stdout)


def topic_stats(server: ServerProcess, name: str) -> dict[str, Any]:
    found = [t for t in stats(server)["topics"] if t["topic"] == name]
    return found[0] if found else {"events": 0, "pendingDeliveries": 0, "deadLetters": 0}


def arm(server: ServerProcess, method: str, path: str, body: dict | None = None) -> httpx.Response:
    m_ = management(server)
    base = f"/subscriptions/{m_['subscriptionId']}/resourceGroups/{RG}/providers/Microsoft.EventGrid"
    with httpx.Client(base_url=server.https, verify=ssl.create_default_context(cafile=server.ca), timeout=30) as h:
        return h.request(method, f"{base}{path}?api-version=2025-02-15", json=body,
                         headers={"Authorization": f"Bearer {m_['token']}"})


# ------------------------------------------------------------------------------------------------------------
# The topic extension


def test_topic_options_ride_beside_properties_and_the_sdk_still_reads_the_topic(server: ServerProcess) -> None:
    put = arm(server, "PUT", "/topics/kept", {"location": "local", "commgrid": {
        "retentionMinutes": 120, "dedupeWindowMinutes": 10}})
    assert put.status_code == 201, put.text
    assert put.json()["commgrid"] == {"retentionMinutes": 120, "dedupeWindowMinutes": 10}
    assert arm(server, "GET", "/topics/kept").json()["commgrid"] == {"retentionMinutes": 120,
                                                                     "dedupeWindowMinutes": 10}
    client = eventgrid_client(server)
    read = client.topics.get(RG, "kept")  # azure-mgmt-eventgrid ignores the member it does not know
    assert read.name == "kept" and read.provisioning_state == "Succeeded"
    assert "kept" in [t.name for t in client.topics.list_by_resource_group(RG)]
    client.topics.begin_update(RG, "kept", m.TopicUpdateParameters(tags={"team": "a"})).result()  # PATCH keeps them
    assert arm(server, "GET", "/topics/kept").json()["commgrid"]["dedupeWindowMinutes"] == 10
    patched = arm(server, "PATCH", "/topics/kept", {"commgrid": {"dedupeWindowMinutes": None}})
    assert patched.json()["commgrid"] == {"retentionMinutes": 120}
    bad = arm(server, "PUT", "/topics/kept", {"location": "local", "commgrid": {"retentionMinutes": 0,
                                                                                "keepForever": True}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidCommgridOptions"
    assert "retentionMinutes" in bad.json()["error"]["message"] and "keepforever" in bad.json()["error"]["message"]
    client.topics.begin_create_or_update(RG, "plain", m.Topic(location="local")).result()
    assert "commgrid" not in arm(server, "GET", "/topics/plain").json()  # only when set
    shown = json.loads(server.cli("topic", "update", "plain", "--retention-minutes", "30").stdout)
    assert shown["commgrid"] == {"retentionMinutes": 30}
    failed = server.cli("topic", "create", "odd", "--dedupe-window-minutes", "99999", check=False)
    assert failed.returncode == 2 and "dedupeWindowMinutes" in failed.stderr


# ------------------------------------------------------------------------------------------------------------
# Replay


def test_replay_after_a_handler_bug_delivers_again_in_order_and_marked(tmp_path, store: str | None,
                                                                       rx: Receiver) -> None:
    server = ServerProcess(tmp_path, store=store).start()
    try:
        topic = server.create_topic("replayed")
        path = f"buggy-{uuid.uuid4().hex[:6]}"
        subscribe(server, "replayed", "hook", rx.endpoint(path))
        with httpx.Client(timeout=10) as client:
            for n in range(30):  # one request each: 30 separate publishes, in this order
                post(server, topic, [event(n, "/orders" if n % 3 else "/refunds")], client)
        first = rx.wait_events(path, 30)
        assert all("commgrid-replay" not in r.headers for r in rx.received(path))
        # The handler acknowledged everything but lost it; it is fixed, and only orders matter now.
        server.cli("subscription", "update", "--topic", "replayed", "--name", "hook", "--subject-begins-with",
                   "/orders")
        dry = json.loads(server.cli("subscription", "replay", "--topic", "replayed", "--name", "hook",
                                    "--from", "ev-3", "--dry-run", "--json").stdout)
        assert (dry["scanned"], dry["matched"], dry["queued"], dry["dryRun"]) == (27, 18, 0, True)
        time.sleep(0.3)
        assert len(rx.events(path)) == 30  # a dry run delivers nothing
        done = json.loads(server.cli("subscription", "replay", "--topic", "replayed", "--name", "hook",
                                     "--from", "ev-3", "--to", "ev-25", "--json").stdout)
        assert (done["matched"], done["queued"]) == (15, 15)
        replayed = rx.wait_events(path, 45)[30:]
        expected = [f"ev-{n}" for n in range(3, 26) if n % 3]
        assert [e["id"] for e in replayed] == expected, "again, in publish order, through the current filter"
        marks = {r.headers.get("commgrid-replay") for r in rx.received(path)[30:]}
        assert marks == {done["replayId"]}
        assert [e["id"] for e in first] != [] and {e["id"] for e in replayed} <= {e["id"] for e in first}
    finally:
        server.stop()


def test_replay_through_the_management_api_and_on_the_system_topic(tmp_path, rx: Receiver) -> None:
    server = ServerProcess(tmp_path, extra_args=("--phone-number", NUMBER)).start()
    try:
        system = server.info()["communicationServices"]["systemTopic"]["name"]
        path = f"sms-{uuid.uuid4().hex[:6]}"
        subscribe(server, system, "sms", rx.endpoint(path))
        for n in range(5):
            server.cli("sms", "receive", f"hello {n}", "--from", "+14255550199", "--to", NUMBER)
        originals = rx.wait_events(path, 5)
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        answer = arm(server, "POST", f"/systemTopics/{system}/eventSubscriptions/sms/replay", {"from": start})
        assert answer.status_code == 200, answer.text
        assert answer.json()["queued"] == 5 and answer.json()["dryRun"] is False
        again = rx.wait_events(path, 10)[5:]
        assert [e["id"] for e in again] == [e["id"] for e in originals]
        assert {r.headers["commgrid-replay"] for r in rx.received(path)[5:]} == {answer.json()["replayId"]}
        dry = arm(server, "POST", f"/systemTopics/{system}/eventSubscriptions/sms/replay",
                  {"from": originals[2]["id"], "dryRun": True})
        assert dry.json()["matched"] == 3 and dry.json()["queued"] == 0
        bad = arm(server, "POST", f"/systemTopics/{system}/eventSubscriptions/sms/replay", {"from": "no-such-id"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidReplayRange"
        missing = arm(server, "POST", f"/systemTopics/{system}/eventSubscriptions/nope/replay", {"from": start})
        assert missing.status_code == 404
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------------------
# Publish dedupe


def test_dedupe_holds_across_a_restart_for_both_schemas(tmp_path, store: str | None, rx: Receiver) -> None:
    server = ServerProcess(tmp_path, store=store).start()
    try:
        egrid = json.loads(server.cli("topic", "create", "once", "--dedupe-window-minutes", "10", "--json").stdout)
        cloud = json.loads(server.cli("topic", "create", "once-ce", "--input-schema", "cloudeventschemav1_0",
                                      "--dedupe-window-minutes", "10", "--json").stdout)
        path = f"once-{uuid.uuid4().hex[:6]}"
        for name in ("once", "once-ce"):
            subscribe(server, name, "hook", rx.endpoint(path))
        post(server, egrid, [event(1), event(2), event(1)])  # a duplicate within one request, too
        ce = {"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "T", "data": {"n": 1}}
        for _ in range(2):
            response = httpx.post(f"{server.http}/topics/once-ce/api/events", json=ce,
                                  headers={"aeg-sas-key": cloud["key1"],
                                           "content-type": "application/cloudevents+json"})
            assert response.status_code == 200
        rx.wait_events(path, 3)
        server.stop()
        server.start()
        post(server, egrid, [event(2), event(3)])  # the publisher retries after the restart
        response = httpx.post(f"{server.http}/topics/once-ce/api/events", json=ce,
                              headers={"aeg-sas-key": cloud["key1"], "content-type": "application/cloudevents+json"})
        assert response.status_code == 200
        rx.wait_events(path, 4)
        time.sleep(0.5)  # a duplicate would have arrived by now
        assert sorted(e["id"] for e in rx.events(path)) == ["ce-1", "ev-1", "ev-2", "ev-3"]
        assert topic_stats(server, "once")["events"] == 3 and topic_stats(server, "once-ce")["events"] == 1
    finally:
        server.stop()


def test_dedupe_is_shared_by_two_nodes(tmp_path, postgres_url: str, rx: Receiver) -> None:
    a = ServerProcess(tmp_path / "a", store=postgres_url).start()
    b = ServerProcess(tmp_path / "b", store=postgres_url).start()
    try:
        topic = json.loads(a.cli("topic", "create", "shared-once", "--dedupe-window-minutes", "5", "--json").stdout)
        path = f"two-{uuid.uuid4().hex[:6]}"
        subscribe(a, "shared-once", "hook", rx.endpoint(path))
        b.wait_catalog()
        ids = [f"dup-{n}" for n in range(100)]

        def publish_all(node: ServerProcess) -> None:
            with httpx.Client(timeout=10) as client:
                for start in range(0, len(ids), 10):  # the same batches, racing on the other node
                    post(node, topic, [event(n, event_id=i) for n, i in enumerate(ids[start:start + 10])], client)

        threads = [threading.Thread(target=publish_all, args=(node,)) for node in (a, b, a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rx.wait_events(path, len(ids), timeout=20)
        time.sleep(0.5)
        assert sorted(e["id"] for e in rx.events(path)) == sorted(ids), "each id stored and delivered once"
    finally:
        for node in (a, b):
            if node.process:
                node.stop()


# ------------------------------------------------------------------------------------------------------------
# Retention


def test_retention_sweeps_old_events_but_keeps_undelivered_ones(tmp_path, store: str | None, rx: Receiver) -> None:
    # time scale 600: a minute of retention is 0.1 s, a sweep every 0.2 s
    server = ServerProcess(tmp_path, store=store, extra_args=("--time-scale", "600")).start()
    try:
        topic = json.loads(server.cli("topic", "create", "brief", "--retention-minutes", "1", "--json").stdout)
        ok, stuck = f"ok-{uuid.uuid4().hex[:6]}", f"stuck-{uuid.uuid4().hex[:6]}"
        subscribe(server, "brief", "fine", rx.endpoint(ok), "--subject-begins-with", "/ok")
        subscribe(server, "brief", "down", rx.endpoint(stuck, status=503), "--subject-begins-with", "/stuck")
        post(server, topic, [event(n, "/ok") for n in range(20)] + [event(99, "/stuck")])
        rx.wait_events(ok, 20)
        kept = {"events": 1, "pendingDeliveries": 1, "deadLetters": 0}
        rx.wait(lambda: {k: topic_stats(server, "brief")[k] for k in kept} == kept, 10,
                "the delivered events swept, the undelivered one kept")
        time.sleep(1.0)  # five sweeps later, the event still waiting for its retries is there
        assert topic_stats(server, "brief")["events"] == 1
        assert len(rx.received(stuck)) >= 2, "it was retried meanwhile"
        server.cli("subscription", "delete", "--topic", "brief", "--name", "down")  # nothing waits for it now
        rx.wait(lambda: topic_stats(server, "brief")["events"] == 0, 10, "the no longer pending event swept")
        plain = stats(server)
        assert plain["sizeBytes"] > 0 and plain["events"] == 0 and plain["oldestEvent"] is None
    finally:
        server.stop()


def test_store_size_stays_flat_under_constant_load(tmp_path) -> None:
    """A short soak: with retention at 1 s (time scale 60), the store stops growing once it holds its window."""
    server = ServerProcess(tmp_path, extra_args=("--time-scale", "60")).start()
    try:
        topic = json.loads(server.cli("topic", "create", "steady", "--retention-minutes", "1", "--json").stdout)
        samples: list[tuple[float, int, int]] = []
        body = "x" * 200
        started = time.monotonic()
        with httpx.Client(timeout=10) as client:
            n = 0
            next_sample = started + 3
            while (now := time.monotonic()) - started < 30:
                post(server, topic, [dict(event(n + i), data={"pad": body}) for i in range(20)], client)
                n += 20
                if now >= next_sample:
                    shown = stats(server)
                    samples.append((now - started, shown["events"], shown["sizeBytes"]))
                    next_sample = now + 3
        published = n
        # The events held swing with the retention sweeps (here from ~9,000 to ~24,000), and the file keeps the
        # pages its largest window needed: it must stay within what that window takes at the first sample's
        # bytes per held event, not grow with what was published.
        _, first_count, first_size = samples[0]
        peak = max(count for _, count, _ in samples)
        late = max(size for at, _, size in samples if at > 20)
        assert published > 3000
        assert peak < published / 3, samples
        assert late <= first_size / first_count * peak * 1.25 + 4_500_000, samples  # and the WAL's checkpoint cycle
    finally:
        server.stop()
