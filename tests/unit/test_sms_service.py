"""SMS domain logic in-process, on a real SQLite store: request validation, rules, concurrent repeats of one
repeatability id, and delivery reports drained by two nodes at once (each emitted once)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from commgrid.acs.hmac_auth import rfc1123
from commgrid.acs.identity import token_lifetime
from commgrid.acs.sms import PENDING_REPORTS, SendRequest, SmsService, _report_key
from commgrid.acs.sms_rules import DEFAULT_OUTCOME, DeliveryRules
from commgrid.acs.validation import ValidationError
from commgrid.config import Settings
from commgrid.runtime import Runtime

SENDER = "+15555550100"


@pytest.fixture
async def runtime(tmp_path) -> AsyncIterator[Runtime]:
    async with Runtime(Settings(data_dir=tmp_path)) as rt:
        await rt.sms.numbers.add(SENDER, "now")
        yield rt


def _request(*recipients: dict, message: str = "hi", report: bool = True) -> SendRequest:
    return SendRequest.from_json({"from": SENDER, "smsRecipients": list(recipients), "message": message,
                                  "smsSendOptions": {"enableDeliveryReport": report, "tag": "t"}})


@pytest.mark.parametrize(("body", "target"), [
    ({"smsRecipients": [{"to": "+1"}], "message": ""}, "From"),
    ({"from": SENDER, "message": ""}, "SmsRecipients"),
    ({"from": SENDER, "smsRecipients": [], "message": ""}, "SmsRecipients"),
    ({"from": SENDER, "smsRecipients": [{"to": "+1"}] * 101, "message": ""}, "SmsRecipients"),
    ({"from": SENDER, "smsRecipients": [{}], "message": ""}, "To"),
    ({"from": SENDER, "smsRecipients": [{"to": "+1"}]}, "Message"),
    ({"from": SENDER, "smsRecipients": [{"to": "+1"}], "message": "é" * 2049}, "Message"),
    ({"from": SENDER, "smsRecipients": [{"to": "+1"}], "message": "", "smsSendOptions": {}}, "EnableDeliveryReport"),
])
def test_request_validation(body: dict, target: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SendRequest.from_json(body)
    assert raised.value.to_body()["error"]["target"] == target and raised.value.status == 400


def test_empty_message_and_no_options_are_valid() -> None:
    request = SendRequest.from_json({"from": SENDER, "smsRecipients": [{"to": "+14255550123"}], "message": ""})
    assert not request.enable_delivery_report and request.tag is None


def test_report_keys_sort_by_due_time() -> None:
    dues = [9.5, 10.25, 1_767_225_600.5, 1_767_225_601.0, 99_999.0]
    keys = [_report_key(due, "m") for due in dues]
    assert sorted(keys) == [_report_key(due, "m") for due in sorted(dues)]


def test_token_lifetime_bounds() -> None:
    assert token_lifetime(None) == timedelta(hours=24) and token_lifetime(60) == timedelta(hours=1)
    for bad in (59, 1441, "60", 60.5, True):
        with pytest.raises(ValidationError):
            token_lifetime(bad)


async def test_rules_first_match_wins(runtime: Runtime) -> None:
    rules = runtime.sms.rules
    await rules.add("failed", "2026-01-01T00:00:01", to_prefix="+1555")
    await rules.add("Delivered", "2026-01-01T00:00:02", to_pattern=r"\+1555000\d+")
    await rules.add("Failed", "2026-01-01T00:00:03", details="everything else fails")
    listed = await rules.list_all()
    assert [r.status for r in listed] == ["Failed", "Delivered", "Failed"]
    assert DeliveryRules.outcome(listed, "+15550001234").rule_id == listed[0].id
    assert DeliveryRules.outcome(listed, "+14255550123").details == "everything else fails"
    assert DeliveryRules.outcome([], "+14255550123") == DEFAULT_OUTCOME


async def test_concurrent_repeats_of_one_id_send_one_message(runtime: Runtime) -> None:
    recipient = {"to": "+14255550123", "repeatabilityRequestId": str(uuid.uuid4()),
                 "repeatabilityFirstSent": rfc1123(datetime.now(UTC))}
    results = await asyncio.gather(*(runtime.sms.send(_request(recipient)) for _ in range(8)))
    assert all(r == results[0] for r in results), results
    assert results[0][0]["repeatabilityResult"] == "accepted"
    pending = await runtime.store.list_documents(PENDING_REPORTS)
    assert [d.value["messageId"] for d in pending] == [results[0][0]["messageId"]]


async def test_two_nodes_drain_each_report_once(runtime: Runtime) -> None:
    node_a = SmsService(runtime.acs, carrier_delay=0.0)
    node_b = SmsService(runtime.acs, carrier_delay=0.0)
    sent = await node_a.send(_request(*({"to": f"+1425555{i:04d}"} for i in range(30))))
    await asyncio.gather(node_a.deliver_due_reports("a"), node_b.deliver_due_reports("b"))
    assert await runtime.store.list_documents(PENDING_REPORTS) == []
    events = await runtime.grid.list_events(runtime.deployment.system_topic_name, 100)
    assert sorted(e.id for e in events) == sorted(item["messageId"] for item in sent)
    data = json.loads(events[0].body)["data"]
    assert data["Tag"] == "t" and data["DeliveryStatus"] == "Delivered"
