"""The official azure-communication-sms SDK against a real `commgrid serve` over HTTPS: sending, per-recipient
results, repeatability, limits, owned numbers, delivery reports and their rules, inbound SMS, the event profiles,
and SMS events reaching a real webhook subscriber on the system topic (the SMS spec, https://learn.microsoft.com/azure/event-grid/communication-services-sms-events,
docs/wire-facts.md)."""

from __future__ import annotations

import json
import math
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.communication.sms import SmsClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import RequestsTransport

from tests.acceptance.acs_helpers import SMS_MESSAGE_ID, Acs, assert_same_shape, now_rfc1123, of_type, seed_samples
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess

SENDER = "+15555550100"
SHORT_CODE = "12345"
REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
RECEIVED = "Microsoft.Communication.SMSReceived"
SEND = "/sms?api-version=2021-03-07"
# Time scale 20: the simulated carrier answers 0.25 s after the 202.
SERVER_ARGS = ("--time-scale", "20", "--phone-number", SENDER, "--phone-number", SHORT_CODE)


@pytest.fixture(scope="module")
def acs(server: ServerProcess) -> Acs:
    return Acs(server)


@pytest.fixture(scope="module")
def sms(acs: Acs) -> Iterator[SmsClient]:
    # Our own transport, closed at the end: an idle TLS keep-alive connection holds up the server's shutdown.
    transport = RequestsTransport(connection_verify=acs.ca)
    yield SmsClient.from_connection_string(acs.connection_string, transport=transport)
    transport.close()


@pytest.fixture(scope="module")
def webhook(server: ServerProcess, acs: Acs) -> Iterator[tuple[Receiver, str]]:
    """A webhook subscription to the system topic's SMS events (it answers the validation handshake)."""
    receiver = Receiver().start()
    url = receiver.endpoint("sms-events")
    server.cli("subscription", "create", "--topic", acs.system_topic, "--name", "sms-events",
                   "--endpoint", url, "--included-event-types", f"{RECEIVED} {REPORT}")
    try:
        yield receiver, "sms-events"
    finally:
        receiver.stop()


def _report(acs: Acs, message_id: str) -> dict:
    return acs.wait_events(of_type("SMSDeliveryReportReceived", messageId=message_id), 1)[0]


def _send_raw(acs: Acs, recipients: list[dict], message: str = "hi", report: bool = True,
              tag: str | None = None) -> dict:
    options = {"enableDeliveryReport": report} | ({"tag": tag} if tag is not None else {})
    body = {"from": SENDER, "smsRecipients": recipients, "message": message, "smsSendOptions": options}
    response = acs.request("POST", SEND, body)
    assert response.status_code == 202, response.text
    return response.json()


# --- sending ----------------------------------------------------------------------------------------------


def test_send_one_with_delivery_report(acs: Acs, sms: SmsClient) -> None:
    [result] = sms.send(from_=SENDER, to="+14255550123", message="Hello from commgrid", enable_delivery_report=True,
                        tag="order-42")
    assert result.successful and result.http_status_code == 202 and result.error_message is None
    assert SMS_MESSAGE_ID.match(result.message_id) and result.message_id.startswith("Outgoing_")
    event = _report(acs, result.message_id)
    assert event["id"] == result.message_id and event["subject"] == "/phonenumber/15555550100"
    assert event["data"] | {"ReceivedTimestamp": None, "DeliveryAttempts": None} == {
        "MessageId": result.message_id, "From": "15555550100", "To": "+14255550123", "DeliveryStatus": "Delivered",
        "DeliveryStatusDetails": "No error.", "ReceivedTimestamp": None, "DeliveryAttempts": None, "Tag": "order-42"}
    [attempt] = event["data"]["DeliveryAttempts"]
    assert (attempt["SegmentsSucceeded"], attempt["SegmentsFailed"]) == (1, 0)


def test_events_match_the_seed_samples_in_store_and_at_the_webhook(
    acs: Acs, sms: SmsClient, server: ServerProcess, webhook: tuple[Receiver, str],
) -> None:
    receiver, path = webhook
    samples = seed_samples()
    [sent] = sms.send(from_=SENDER, to="+14255550124", message="shape", enable_delivery_report=True)
    received = json.loads(server.cli("sms", "receive", "--from", "+14255550124", "--to", SENDER,
                                         "Great to connect with ACS events", "--json").stdout)
    stored = {e["id"]: e for e in acs.wait_events(lambda e: e["id"] in (sent.message_id, received["messageId"]), 2)}

    def both() -> list[dict] | None:
        got = [e for e in receiver.events(path) if e["id"] in stored]
        return got if len(got) >= 2 else None

    delivered = {e["id"]: e for e in receiver.wait(both, 15, "both SMS events at the webhook")}
    for event_id, event in stored.items():
        assert_same_shape(event, samples[event["eventType"]])
        assert delivered[event_id] == event  # the webhook receives the stored event unchanged
    assert stored[received["messageId"]]["data"]["To"] == "15555550100"


def test_multiple_recipients_with_invalid_ones(acs: Acs, sms: SmsClient) -> None:
    to = ["+14255550125", "Ad155500000000000", "+14255550126", "+0123"]
    results = sms.send(from_=SENDER, to=to, message="many", enable_delivery_report=True)
    assert [r.to for r in results] == to
    assert [r.http_status_code for r in results] == [202, 400, 202, 400]
    for bad in (results[1], results[3]):
        assert not bad.successful and bad.message_id is None
        assert bad.error_message == "Invalid To phone number format."
    for good in (results[0], results[2]):
        assert _report(acs, good.message_id)["data"]["To"] == good.to
    assert not [e for e in acs.events() if e["data"].get("To") in ("Ad155500000000000", "+0123")]


def test_rules_make_chosen_recipients_fail(acs: Acs, sms: SmsClient, server: ServerProcess) -> None:
    rule = json.loads(server.cli("sms", "rule", "add", "--to-prefix", "+1555000", "--status", "Failed",
                                     "--json").stdout)
    server.cli("sms", "rule", "add", "--to-pattern", r"\+4420\d+", "--status", "failed",
                   "--details", "Sender blocked for given recipient.")
    try:
        rules = json.loads(server.cli("sms", "rule", "list", "--json").stdout)
        assert rules[0]["id"] == rule["id"] and len(rules) == 2
        results = sms.send(from_=SENDER, to=["+15550001234", "+442079460000", "+14255550127"],
                           message="x" * 200, enable_delivery_report=True, tag="rules")
        assert all(r.successful for r in results)  # the 202 says accepted; the report tells the outcome
        timeout, blocked, fine = (_report(acs, r.message_id)["data"] for r in results)
    finally:
        server.cli("sms", "rule", "clear")
    assert (timeout["DeliveryStatus"], timeout["DeliveryStatusDetails"]) == (
        "Failed", "ErrorCode: 5002. ErrorMessage: Message Delivery Timeout")
    assert timeout["DeliveryAttempts"][0] | {"Timestamp": None} == {
        "Timestamp": None, "SegmentsSucceeded": 0, "SegmentsFailed": 2}
    assert (blocked["DeliveryStatus"], blocked["DeliveryStatusDetails"]) == (
        "Failed", "Sender blocked for given recipient.")
    assert fine["DeliveryStatus"] == "Delivered" and fine["Tag"] == "rules"


@pytest.mark.parametrize(("text", "segments"), [
    ("a" * 160, 1), ("a" * 161, 2), ("ж" * 70, 1), ("ж" * 71, 2), ("a" * 2048, math.ceil(2048 / 153)),
], ids=["gsm-160", "gsm-161", "ucs2-70", "ucs2-71", "gsm-2048"])
def test_segment_counting(acs: Acs, sms: SmsClient, text: str, segments: int) -> None:
    [result] = sms.send(from_=SHORT_CODE, to="+14255550128", message=text, enable_delivery_report=True)
    event = _report(acs, result.message_id)
    assert event["subject"] == "/phonenumber/12345" and event["data"]["From"] == "12345"
    assert event["data"]["DeliveryAttempts"][0]["SegmentsSucceeded"] == segments


def test_request_limits(acs: Acs, sms: SmsClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        sms.send(from_=SENDER, to="+14255550129", message="a" * 2049)
    assert raised.value.status_code == 400
    assert raised.value.error.code == "ValidationError" and raised.value.error.target == "Message"
    many = [f"+1425555{i:04d}" for i in range(101)]
    with pytest.raises(HttpResponseError) as raised:
        sms.send(from_=SENDER, to=many, message="too many")
    assert raised.value.status_code == 400 and "maximum length of '100'" in raised.value.error.message
    assert len(sms.send(from_=SENDER, to=many[:100], message="just enough")) == 100
    for body, message in (({"smsRecipients": [{"to": "+14255550130"}], "message": "m"}, "The From field is required."),
                          ({"from": SENDER, "smsRecipients": [], "message": "m"}, "minimum length of '1'")):
        response = acs.request("POST", SEND, body)
        assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert acs.request("POST", SEND, raw=b"{not json").status_code == 400
    missing_version = acs.request("POST", "/sms", {"from": SENDER, "smsRecipients": [{"to": "+1"}], "message": ""})
    assert missing_version.json()["error"]["code"] == "ApiVersionUnspecified"


def test_unowned_sender_is_401_as_the_service_answers(acs: Acs, sms: SmsClient) -> None:
    with pytest.raises(ClientAuthenticationError) as raised:
        sms.send(from_="+15550000000", to="+14255550131", message="not mine")
    assert raised.value.status_code == 401
    error = acs.request("POST", SEND, {"from": "+15550000000", "smsRecipients": [{"to": "+14255550131"}],
                                       "message": "not mine"}).json()["error"]
    assert (error["code"], error["message"]) == ("Unauthorized", "")


def test_wrong_access_key_is_401(acs: Acs) -> None:
    response = acs.request("POST", SEND, {"from": SENDER, "smsRecipients": [{"to": "+14255550132"}], "message": "x"},
                           key="d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmc=")
    assert response.status_code == 401 and response.json()["error"]["code"] == "Denied"


def test_no_report_unless_asked(acs: Acs, sms: SmsClient) -> None:
    [quiet] = sms.send(from_=SENDER, to="+14255550133", message="no report")
    [barrier] = sms.send(from_=SENDER, to="+14255550133", message="report", enable_delivery_report=True)
    _report(acs, barrier.message_id)  # reports go out in due order: the quiet one would be there by now
    assert not [e for e in acs.events() if e["id"] == quiet.message_id]


# --- repeatability ----------------------------------------------------------------------------------------


def test_repeated_request_id_gives_the_same_result_and_one_message(acs: Acs) -> None:
    rid, first_sent = str(uuid.uuid4()), now_rfc1123()
    recipient = {"to": "+14255550134", "repeatabilityRequestId": rid, "repeatabilityFirstSent": first_sent}
    first = _send_raw(acs, [recipient], "once", tag="rep")
    again = _send_raw(acs, [recipient], "once", tag="rep")
    assert first == again
    [item] = first["value"]
    assert list(item) == ["to", "messageId", "httpStatusCode", "repeatabilityResult", "successful"]
    assert (item["httpStatusCode"], item["repeatabilityResult"], item["successful"]) == (202, "accepted", True)
    _report(acs, item["messageId"])
    [barrier] = _send_raw(acs, [{"to": "+14255550134"}], "barrier")["value"]
    _report(acs, barrier["messageId"])
    assert len([e for e in acs.events() if e["id"] == item["messageId"]]) == 1
    # The same id for another request is rejected, not sent.
    [other] = _send_raw(acs, [recipient], "a different text")["value"]
    assert (other["httpStatusCode"], other["repeatabilityResult"], other["successful"]) == (400, "rejected", False)


def test_repeatability_first_sent_rules(acs: Acs) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    recipients = [
        {"to": "+14255550135", "repeatabilityRequestId": str(uuid.uuid4())},  # no first-sent date
        {"to": "+14255550136", "repeatabilityRequestId": str(uuid.uuid4()),
         "repeatabilityFirstSent": datetime.now(UTC).isoformat()},  # not RFC 1123
        {"to": "+14255550137", "repeatabilityRequestId": str(uuid.uuid4()), "repeatabilityFirstSent": old},
        {"to": "+14255550138"},  # not repeatable: no repeatabilityResult
    ]
    missing, iso, stale, plain = _send_raw(acs, recipients, report=False)["value"]
    for item in (missing, iso):
        assert (item["httpStatusCode"], item["repeatabilityResult"]) == (400, "rejected")
        assert item["errorMessage"] == ("Request sent with Invalid DateTime value for repeatability-first-sent."
                                        " Expected is DateTime ,RFC1123 pattern.")
    assert (stale["httpStatusCode"], stale["repeatabilityResult"], stale["successful"]) == (412, "rejected", False)
    assert plain["httpStatusCode"] == 202 and "repeatabilityResult" not in plain


# --- phone numbers and inbound SMS ------------------------------------------------------------------------


def test_phone_number_commands(acs: Acs, sms: SmsClient, server: ServerProcess) -> None:
    number = "+18005550111"
    added = json.loads(server.cli("phone-number", "add", number, "--json").stdout)
    assert added["phoneNumber"] == number and added["kind"] == "phoneNumber"
    listed = {n["phoneNumber"] for n in json.loads(server.cli("phone-number", "list", "--json").stdout)}
    assert {SENDER, SHORT_CODE, number} <= listed  # `--phone-number` numbers are owned too
    assert sms.send(from_=number, to="+14255550139", message="toll free")[0].successful
    assert server.cli("phone-number", "add", number, check=False).returncode == 0  # owned already: fine
    assert server.cli("phone-number", "add", "555-0100", check=False).returncode == 1
    server.cli("phone-number", "remove", number)
    with pytest.raises(ClientAuthenticationError):
        sms.send(from_=number, to="+14255550139", message="not any more")


def test_inbound_sms_over_http(acs: Acs) -> None:
    body = {"from": "+14255550140", "to": SENDER, "message": "Привет"}
    by_key = acs.request("POST", "/commgrid/sms/inbound", body, sign=False,
                         headers={"x-commgrid-access-key": acs.key})
    assert by_key.status_code == 202, by_key.text
    signed = acs.request("POST", "/commgrid/sms/inbound", body | {"message": "signed"})
    assert signed.status_code == 202
    ids = [by_key.json()["messageId"], signed.json()["messageId"]]
    events = {e["id"]: e for e in acs.wait_events(lambda e: e["id"] in ids, 2)}
    event = events[ids[0]]
    assert event["eventType"] == RECEIVED and event["subject"] == "/phonenumber/15555550100"
    assert event["data"] | {"ReceivedTimestamp": None} == {
        "MessageId": ids[0], "From": "14255550140", "To": "15555550100", "Message": "Привет",
        "ReceivedTimestamp": None}
    assert by_key.json()["segmentCount"] == 1
    wrong = acs.request("POST", "/commgrid/sms/inbound", body, sign=False, headers={"x-commgrid-access-key": "nope"})
    assert wrong.status_code == 401
    assert acs.request("POST", "/commgrid/sms/inbound", body, sign=False).status_code == 401
    unowned = acs.request("POST", "/commgrid/sms/inbound", body | {"to": "+15550009999"})
    assert unowned.status_code == 404 and unowned.json()["error"]["code"] == "PhoneNumberNotFound"
    assert acs.request("POST", "/commgrid/sms/inbound", body | {"from": "nobody"}).status_code == 400


# --- durability and profiles (servers of their own) -------------------------------------------------------


def test_delivery_report_survives_a_crash(tmp_path) -> None:
    # Time scale 2: the report is due 2.5 s after the 202; the server is killed long before.
    server = ServerProcess(tmp_path, extra_args=("--time-scale", "2", "--phone-number", SENDER)).start()
    try:
        acs = Acs(server)
        [item] = _send_raw(acs, [{"to": "+14255550141"}], "crash")["value"]
        server.stop(signal.SIGKILL)
        server.start()
        event = acs.wait_events(of_type("SMSDeliveryReportReceived", messageId=item["messageId"]), 1)[0]
        assert event["data"]["DeliveryStatus"] == "Delivered"
        assert len([e for e in acs.events() if e["id"] == item["messageId"]]) == 1
    finally:
        if server.process:
            server.stop()


def test_current_profile_is_recorded_for_the_resource(tmp_path) -> None:
    server = ServerProcess(tmp_path, extra_args=("--time-scale", "20", "--event-profile", "current",
                                                 "--phone-number", SENDER)).start()
    try:
        acs = Acs(server)
        [item] = _send_raw(acs, [{"to": "+14255550142"}], "é" * 71, tag="now")["value"]
        report = acs.wait_events(lambda e: e["id"] == item["messageId"], 1)[0]["data"]
        assert list(report) == ["messageId", "from", "to", "deliveryStatus", "deliveryStatusDetails",
                                "receivedTimestamp", "deliveryAttempts", "tag"]
        assert report["from"] == SENDER and report["deliveryAttempts"][0]["segmentsSucceeded"] == 1
        server.stop()
        server.extra_args = ("--phone-number", SENDER)  # no flag: the recorded profile stays
        server.start()
        received = json.loads(server.cli("sms", "receive", "--from", "+14255550142", "--to", SENDER, "ж" * 71,
                                         "--json").stdout)
        data = acs.wait_events(lambda e: e["id"] == received["messageId"], 1)[0]["data"]
        assert list(data) == ["messageId", "from", "to", "message", "receivedTimestamp", "segmentCount"]
        assert (data["from"], data["to"], data["segmentCount"]) == ("+14255550142", SENDER, 2)
    finally:
        if server.process:
            server.stop()
