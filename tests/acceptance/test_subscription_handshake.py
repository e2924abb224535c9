"""Creating event subscriptions with the CLI against a real server: validation handshakes, errors, warnings.

The server runs with `--time-scale 60`: the manual validation window is 10 s, the response timeout 1 s.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, shown, subscribe
from tests.support import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("handshake"), extra_args=("--time-scale", "60")).start()
    proc.create_topic("orders")
    proc.create_topic("ce-orders", "cloudeventschemav1_0")
    yield proc
    proc.stop()


def show(server: ServerProcess, name: str, topic: str = "orders", *flags: str) -> dict:
    return json.loads(server.cli("subscription", "show", "--topic", topic, "--name", name, *flags).stdout)


def test_sync_handshake_activates_and_hides_the_secret(server: ServerProcess, rx: Receiver) -> None:
    url = rx.endpoint("sync") + "?code=secret"
    sub = shown(subscribe(server, "orders", "sync-sub", url, "--labels", "a b", settle=False))
    assert sub["properties"]["provisioningState"] == "Succeeded"
    assert sub["commgrid"]["state"] == "Active"
    (validation,) = rx.received("sync", "SubscriptionValidation")
    assert validation.query == "code=secret"
    assert validation.headers["aeg-subscription-name"] == "SYNC-SUB"
    assert validation.headers["content-type"] == "application/json; charset=utf-8"
    (event,) = validation.json()
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert event["subject"] == "" and event["metadataVersion"] == "1" and event["dataVersion"] == "1"
    assert set(event["data"]) == {"validationCode", "validationUrl"}
    assert event["data"]["validationUrl"].startswith(f"{server.http}/eventsubscriptions/orders/sync-sub/validate?id=")
    assert sub["type"] == "Microsoft.EventGrid/eventSubscriptions"
    assert sub["id"].endswith("/topics/orders/providers/Microsoft.EventGrid/eventSubscriptions/sync-sub")
    assert sub["properties"]["labels"] == ["a", "b"]
    assert sub["properties"]["destination"]["properties"]["endpointBaseUrl"] == rx.endpoint("sync")
    assert "secret" not in json.dumps(show(server, "sync-sub"))
    full = show(server, "sync-sub", "orders", "--include-full-endpoint-url")
    assert full["properties"]["destination"]["properties"]["endpointUrl"] == url


def test_manual_validation_by_get(server: ServerProcess, rx: Receiver) -> None:
    done = subscribe(server, "orders", "manual-sub", rx.endpoint("manual", validation="manual"), settle=False)
    sub = shown(done)
    assert sub["properties"]["provisioningState"] == "AwaitingManualAction"
    assert "Http GET is expected on the validation url" in sub["commgrid"]["message"]
    (validation,) = rx.received("manual", "SubscriptionValidation")
    validation_url = validation.json()[0]["data"]["validationUrl"]
    assert sub["commgrid"]["validationUrl"] == validation_url
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(validation_url.replace("token=", "token=x"), timeout=5)
    assert forged.value.code == 400
    with urllib.request.urlopen(validation_url, timeout=5) as response:
        assert response.status == 200
    assert show(server, "manual-sub")["properties"]["provisioningState"] == "Succeeded"


@pytest.mark.parametrize(("validation", "fragment"), [
    ("fail", "failed with response code 500"),
    ("wrong-code", "does not match the validationCode"),
    ("hang", "response code Unknown (TimedOut)"),
])
def test_failed_handshakes(server: ServerProcess, rx: Receiver, validation: str, fragment: str) -> None:
    path = f"failing-{validation}"
    done = subscribe(server, "orders", path, rx.endpoint(path, validation=validation), check=False, settle=False)
    assert done.returncode == 1
    assert "Webhook validation handshake failed for" in done.stderr and fragment in done.stderr
    assert show(server, path)["properties"]["provisioningState"] == "Failed"
    # a Failed subscription may be created again; this time the endpoint cooperates
    rx.behave(path, validation="sync")
    again = shown(subscribe(server, "orders", path, rx.endpoint(path), settle=False))
    assert again["properties"]["provisioningState"] == "Succeeded"


def test_cloudevents_options_handshake(server: ServerProcess, rx: Receiver) -> None:
    sub = shown(subscribe(server, "ce-orders", "ce-sub", rx.endpoint("ce-ok", allowed_origin="*"), settle=False))
    assert sub["properties"]["provisioningState"] == "Succeeded"
    assert sub["properties"]["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    (options,) = rx.received("ce-ok", "*")
    assert options.method == "OPTIONS" and options.headers["webhook-request-origin"] == "eventgrid.azure.net"
    refused = subscribe(server, "ce-orders", "ce-refused", rx.endpoint("ce-no", allowed_origin=None), check=False,
                        settle=False)
    assert refused.returncode == 1 and "OPTIONS request failed with response code 405" in refused.stderr
    # Event Grid schema topic delivering CloudEvents: also the OPTIONS handshake
    converted = subscribe(server, "orders", "eg-to-ce", rx.endpoint("eg-to-ce"), "--event-delivery-schema",
                          "cloudeventschemav1_0", settle=False)
    assert shown(converted)["properties"]["provisioningState"] == "Succeeded"
    assert [r.method for r in rx.received("eg-to-ce", "*")] == ["OPTIONS"]


def test_invalid_properties_are_all_reported(server: ServerProcess, rx: Receiver) -> None:
    done = subscribe(server, "orders", "bad-props", rx.endpoint("bad-props"), "--max-delivery-attempts", "31",
                     "--max-events-per-batch", "0", "--event-ttl", "2000", check=False, settle=False)
    assert done.returncode == 1
    for fragment in ("maxDeliveryAttempts must be an integer between 1 and 30; got 31",
                     "maxEventsPerBatch must be an integer between 1 and 5000; got 0",
                     "eventTimeToLiveInMinutes must be an integer between 1 and 1440; got 2000"):
        assert fragment in done.stderr
    schema = subscribe(server, "ce-orders", "bad-schema", rx.endpoint("x"), "--event-delivery-schema",
                       "eventgridschema", check=False, settle=False)
    assert schema.returncode == 1 and "cannot convert" in schema.stderr
    assert rx.received("bad-props", "*") == []


def test_seed_docs_subject_filter_warns_with_the_fix(server: ServerProcess, rx: Receiver) -> None:
    done = subscribe(server, "commgrid", "sms-sub", rx.endpoint("sms"), "--included-event-types",
                     "Microsoft.Communication.SMSReceived Microsoft.Communication.SMSDeliveryReportReceived",
                     "--subject-begins-with", "phonenumber/1555", settle=False)
    assert done.returncode == 0
    assert "can never match" in done.stderr and "Did you mean '/phonenumber/1555'?" in done.stderr
    sub = shown(done)
    assert sub["id"].endswith("/providers/Microsoft.EventGrid/systemTopics/commgrid/eventSubscriptions/sms-sub")
    assert sub["commgrid"]["warnings"] and sub["properties"]["filter"]["subjectBeginsWith"] == "phonenumber/1555"
    fixed = server.cli("subscription", "update", "--topic", "commgrid", "--name", "sms-sub",
                       "--subject-begins-with", "/phonenumber/1555")
    assert "warning" not in fixed.stderr


def test_update_list_test_and_delete(server: ServerProcess, rx: Receiver, tmp_path) -> None:
    subscribe(server, "orders", "life", rx.endpoint("life"), "--advanced-filter", "data.n NumberGreaterThan 5",
              settle=False)
    server.cli("subscription", "update", "--topic", "orders", "--name", "life", "--subject-ends-with", ".json",
               "--max-delivery-attempts", "5")
    props = show(server, "life")["properties"]
    assert props["filter"]["subjectEndsWith"] == ".json"
    assert props["filter"]["advancedFilters"][0]["operatorType"] == "NumberGreaterThan"
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 1440}
    assert len(rx.received("life", "SubscriptionValidation")) == 1  # no new handshake for a filter change
    server.cli("subscription", "update", "--topic", "orders", "--name", "life", "--endpoint", rx.endpoint("life2"))
    assert len(rx.received("life2", "SubscriptionValidation")) == 1  # a new endpoint is validated again

    event = {"id": "e1", "subject": "/a/b.json", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
             "data": {"n": 9}, "dataVersion": "1"}
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(event))
    bad.write_text(json.dumps([{**event, "id": "e2", "data": {"n": 2}}]))
    matched = server.cli("subscription", "test", "--topic", "orders", "--name", "life", "--event", str(good))
    assert "event e1: matches life" in matched.stdout
    rejected = server.cli("subscription", "test", "--topic", "orders", "--name", "life", "--event", str(bad),
                          check=False)
    assert rejected.returncode == 1
    assert "advancedFilters[0] NumberGreaterThan on data.n: value 2 is not greater than 5" in rejected.stdout

    listed = json.loads(server.cli("subscription", "list", "--topic", "orders", "--json").stdout)
    assert "life" in {s["name"] for s in listed}
    server.cli("subscription", "delete", "--topic", "orders", "--name", "life")
    (goodbye,) = rx.received("life2", "SubscriptionDeletion")
    (deleted,) = goodbye.json()
    assert deleted["eventType"] == "Microsoft.EventGrid.SubscriptionDeletedEvent"
    assert deleted["data"]["eventSubscriptionId"].endswith("/eventSubscriptions/life")
    missing = server.cli("subscription", "show", "--topic", "orders", "--name", "life", check=False)
    assert missing.returncode == 1 and "was not found" in missing.stderr


def test_awaiting_subscription_gets_no_events(server: ServerProcess, rx: Receiver) -> None:
    subscribe(server, "orders", "waiting", rx.endpoint("waiting", validation="manual"))
    topic = server.info()["topics"]
    orders = next(t for t in topic if t["name"] == "orders")
    publish(orders, [{"id": "w1", "subject": "/w", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                      "data": {}, "dataVersion": "1"}])
    assert rx.received("waiting") == []
    assert show(server, "waiting")["commgrid"]["state"] == "AwaitingManualAction"
