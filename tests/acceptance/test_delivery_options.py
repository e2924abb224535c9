"""commgrid's opt-in delivery options on real webhooks: signed deliveries, a rate limit, auto-disable.

Signatures are checked with the `standardwebhooks` package as a receiver would; the rate is measured at the
receiver; auto-disable runs a time-scaled outage (`--time-scale 600`: PT10M of failures is 1 s).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.eventgrid import EventGridEvent
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.acceptance.arm import eventgrid_client, management
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, shown, subscribe
from tests.support import ServerProcess

RG = "commgrid"
SERVER_ARGS = ("--time-scale", "600")


@pytest.fixture(scope="module")
def orders(server: ServerProcess) -> dict[str, Any]:
    return server.create_topic("orders")


def events(prefix: str, count: int) -> list[EventGridEvent]:
    return [EventGridEvent(subject=f"/{prefix}/{n}", event_type="Order.Created", data={"n": n}, data_version="1")
            for n in range(count)]


def only(prefix: str) -> tuple[str, ...]:
    return ("--subject-begins-with", f"/{prefix}/")


def arm_http(server: ServerProcess) -> httpx.Client:
    m = management(server)
    return httpx.Client(base_url=server.https, verify=ssl.create_default_context(cafile=server.ca),
                        headers={"Authorization": f"Bearer {m['token']}"}, params={"api-version": "2025-02-15"})


def sub_path(server: ServerProcess, topic: str, name: str) -> str:
    m = management(server)
    return (f"/subscriptions/{m['subscriptionId']}/resourceGroups/{RG}/providers/Microsoft.EventGrid/topics/{topic}"
            f"/eventSubscriptions/{name}")


# ------------------------------------------------------------------------------------------------------------
# Signed deliveries


def test_signed_deliveries_verify_with_standardwebhooks_across_a_rotation(server: ServerProcess, rx: Receiver,
                                                                           orders: dict) -> None:
    created = shown(subscribe(server, "orders", "signed", rx.endpoint("signed"), *only("signed"), "--signing"))
    old = created["commgrid"]["signing"]["secrets"][0]["secret"]
    assert old.startswith("whsec_")
    later = json.loads(server.cli("subscription", "show", "--topic", "orders", "--name", "signed").stdout)
    assert old not in json.dumps(later), "the secret is shown once, when it is made"

    publish(orders, events("signed", 2))
    first = rx.wait(lambda: len(rx.received("signed")) >= 2 and rx.received("signed"), what="two deliveries")
    for request in first:
        assert Webhook(old).verify(request.body, request.headers) is not None
        assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(first[0].body, first[0].headers)

    rotated = json.loads(server.cli("subscription", "rotate-secret", "--topic", "orders", "--name", "signed",
                                    "--overlap", "PT1H", "--json").stdout)
    new = rotated["commgrid"]["signing"]["secrets"][0]["secret"]
    assert new != old and rotated["commgrid"]["signing"]["secrets"][1]["expiresAt"]
    server.wait_catalog()
    publish(orders, events("signed", 1))
    (during,) = rx.wait(lambda: rx.received("signed")[2:], what="a delivery during the overlap")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver holding either secret accepts it
        Webhook(secret).verify(during.body, during.headers)

    server.cli("subscription", "rotate-secret", "--topic", "orders", "--name", "signed", "--overlap", "PT0S",
               "--secret", new)
    server.wait_catalog()
    publish(orders, events("signed", 1))
    (after,) = rx.wait(lambda: rx.received("signed")[3:], what="a delivery after the overlap")
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_signing_through_arm_and_the_sdk_still_reads_the_subscription(server: ServerProcess, rx: Receiver,
                                                                      orders: dict) -> None:
    url = rx.endpoint("arm-signed")
    body = {"properties": {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}},
                           "filter": {"subjectBeginsWith": "/arm-signed/"}},
            "commgrid": {"signing": {"enabled": True}, "maxEventsPerSecond": 500,
                         "disableAfterFailingFor": "PT30M"}}
    with arm_http(server) as http:
        bad = http.put(sub_path(server, "orders", "arm-bad"), json={**body, "commgrid": {
            "signing": {"secrets": ["nope"]}, "maxEventsPerSecond": -1, "orderingKey": "extension:x",
            "retention": 3}})
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["code"] == "InvalidRequest" or error["code"] == "BadRequest"
        assert {d["message"].split(" ")[0] for d in error["details"]} >= {
            "commgrid.signing.secrets[0]", "commgrid.maxEventsPerSecond", "commgrid.orderingKey", "commgrid.retention"}
        made = http.put(sub_path(server, "orders", "arm-signed"), json=body)
        assert made.status_code == 201, made.text
        secret = made.json()["commgrid"]["signing"]["secrets"][0]["secret"]
        got = http.get(sub_path(server, "orders", "arm-signed")).json()
        assert got["commgrid"]["maxEventsPerSecond"] == 500 and got["commgrid"]["state"] == "Active"
        assert got["commgrid"]["disableAfterFailingFor"] == "PT30M" and secret not in json.dumps(got)
        assert got["properties"]["provisioningState"] == "Succeeded"

    sdk = eventgrid_client(server).event_subscriptions.get(
        f"/subscriptions/{management(server)['subscriptionId']}/resourceGroups/{RG}/providers/"
        "Microsoft.EventGrid/topics/orders", "arm-signed")
    assert sdk.provisioning_state == "Succeeded" and sdk.filter.subject_begins_with == "/arm-signed/"
    server.wait_catalog()
    publish(orders, events("arm-signed", 1))
    (request,) = rx.wait(lambda: rx.received("arm-signed"), what="a signed delivery")
    Webhook(secret).verify(request.body, request.headers)

    with arm_http(server) as http:  # a PUT without the member (an Azure tool's) keeps the options
        http.put(sub_path(server, "orders", "arm-signed"), json={"properties": body["properties"]})
        kept = http.get(sub_path(server, "orders", "arm-signed")).json()
        assert kept["commgrid"]["maxEventsPerSecond"] == 500 and kept["commgrid"]["signing"]["secrets"]
        http.patch(sub_path(server, "orders", "arm-signed"), json={"commgrid": {"maxEventsPerSecond": None}})
        patched = http.get(sub_path(server, "orders", "arm-signed")).json()
        assert "maxEventsPerSecond" not in patched["commgrid"] and patched["commgrid"]["signing"]["secrets"]
        rotated = http.post(sub_path(server, "orders", "arm-signed") + "/rotateSigningSecret",
                            json={"overlap": "PT5M"})
        assert rotated.status_code == 200
        assert rotated.json()["commgrid"]["signing"]["secrets"][0]["secret"].startswith("whsec_")


# ------------------------------------------------------------------------------------------------------------
# Rate limit


def test_a_rate_limit_paces_deliveries_at_the_receiver(server: ServerProcess, rx: Receiver, orders: dict) -> None:
    subscribe(server, "orders", "paced", rx.endpoint("paced"), *only("paced"), "--max-events-per-second", "20")
    publish(orders, events("paced", 60))
    got = rx.wait(lambda: len(rx.received("paced")) >= 60 and rx.received("paced"), timeout=20, what="60 events")
    arrivals = sorted(r.at for r in got)
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span
    assert 16 <= rate <= 22, f"{rate:.1f} events/s over {span:.2f} s"
    assert all(r.headers["aeg-delivery-count"] == "0" for r in got), "waiting is not a failed attempt"


# ------------------------------------------------------------------------------------------------------------
# Auto-disable


@pytest.fixture(params=["sqlite", "postgres"])
def backend_server(request, tmp_path) -> Iterator[ServerProcess]:
    store = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    proc = ServerProcess(tmp_path / "node", store=store, extra_args=("--time-scale", "600")).start()
    yield proc
    proc.stop()


def test_a_failing_endpoint_is_disabled_then_enabled_and_its_queue_flows(backend_server: ServerProcess,
                                                                         rx: Receiver) -> None:
    server = backend_server
    orders = server.create_topic("orders")
    system_topic = server.info()["communicationServices"]["systemTopic"]["name"]
    watch, flaky_path = f"system-watch-{server.port}", f"flaky-{server.port}"  # one receiver serves both backends
    subscribe(server, system_topic, "watch-disabled", rx.endpoint(watch), "--included-event-types",
              "Commgrid.EventGrid.SubscriptionDisabled")
    subscribe(server, "orders", "flaky", rx.endpoint(flaky_path, status=503), *only("flaky"),
              "--disable-after-failing-for", "PT10M")
    publish(orders, events("flaky", 3))
    (notice,) = rx.wait(lambda: rx.events(watch), what="the SubscriptionDisabled event")
    assert notice["eventType"] == "Commgrid.EventGrid.SubscriptionDisabled"
    assert notice["data"]["subscription"] == "flaky" and notice["data"]["topic"] == "orders"

    listed = json.loads(server.cli("subscription", "list", "--topic", "orders", "--json").stdout)
    (flaky,) = [s for s in listed if s["name"] == "flaky"]
    assert flaky["commgrid"]["state"] == "Disabled" and flaky["properties"]["provisioningState"] == "Succeeded"
    assert "disabled after failing" in flaky["commgrid"]["message"]
    table = server.cli("subscription", "list", "--topic", "orders").stdout
    assert "Disabled" in table
    with arm_http(server) as http:
        assert http.get(sub_path(server, "orders", "flaky")).json()["commgrid"]["state"] == "Disabled"

    publish(orders, events("flaky", 2)[1:])  # still routed while disabled: queued, not lost
    time.sleep(0.5)
    tried = len(rx.received(flaky_path))
    time.sleep(0.5)
    assert len(rx.received(flaky_path)) == tried, "a disabled subscription gets no delivery attempts"

    rx.behave(flaky_path, status=200)
    with arm_http(server) as http:
        enabled = http.post(sub_path(server, "orders", "flaky") + "/enable")
        assert enabled.status_code == 200 and enabled.json()["commgrid"]["state"] == "Active"
    delivered = rx.wait(lambda: {e["subject"] for e in rx.events(flaky_path)} >= {f"/flaky/{n}" for n in range(3)}
                        and rx.events(flaky_path), what="the queued events after enable")
    assert {"/flaky/0", "/flaky/1", "/flaky/2"} <= {e["subject"] for e in delivered}
    shown_after = json.loads(server.cli("subscription", "show", "--topic", "orders", "--name", "flaky").stdout)
    assert shown_after["commgrid"]["state"] == "Active"
