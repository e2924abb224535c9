"""ACS event builders against the seed documents (SEED profile) and today's samples (CURRENT profile).

Every ```json sample in `/work/shared/seeds/*.txt` is rebuilt from the domain facts it states, with the SEED
profile, and compared recursively: same keys in the same order, same nesting, same JSON types (int vs str vs
bool), equal values, and for timestamps the same format class and instant. Subjects whose ids are placeholders
(`{thread-id}`) or inconsistent with `data` in the seed are compared by structure and id format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.eventgrid import EventGridEvent, SystemEventNames

from commgrid.events.acs import (
    CATALOG,
    AcsEventType,
    Change,
    ChatMessageSnapshot,
    ChatThreadSnapshot,
    ChatUser,
    DeliveryAttempt,
    Emission,
    InboundSms,
    Level,
    SmsDeliveryReport,
    new_event_id,
    new_sms_message_id,
    new_transaction_id,
)
from commgrid.events.profiles import CURRENT, DEFAULT_PROFILE, SEED, AcsEventProfile, profile_by_name
from commgrid.timestamps import Precision, format_timestamp

SEEDS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)$")
THREAD_ID = re.compile(r"^19:[0-9a-z]{32}@thread\.v2$")
RAW_ID = re.compile(r"^8:acs:[0-9a-f-]+_[0-9a-f-]+$")
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9+/]{22}(\.\d+)+$")
SMS_MESSAGE_ID = re.compile(rf"^(Outgoing|Incoming)_\d{{14}}{GUID}$")
ENVELOPE_KEYS = ["id", "topic", "subject", "data", "eventType", "dataVersion", "metadataVersion", "eventTime"]
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/acs"


# --- Seed samples ---------------------------------------------------------------------------------


def _lenient_json(text: str) -> Any:
    """The seeds are hand-written: allow the trailing commas they contain (004, ChatThreadCreatedWithUser)."""
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", text))


def _load_seed_samples() -> list[Any]:
    if not SEEDS_DIR.is_dir():
        return []
    samples = []
    for path in sorted(SEEDS_DIR.glob("*.txt")):
        for block in re.findall(r"```json\s*\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            if '"eventType"' not in block:
                continue  # e.g. the subscription-filter snippet, not an event
            for index, event in enumerate(_lenient_json(block)):
                short = event["eventType"].removeprefix("Microsoft.Communication.")
                samples.append(pytest.param(event, id=f"{path.name[:3]}-{short}-{index}"))
    return samples


SEED_SAMPLES = _load_seed_samples()
MISSING = pytest.param(None, id="seeds-missing")


def _require_seed(sample: dict | None) -> dict:
    if sample is None:
        pytest.fail(f"No seed samples found: expected ```json event samples in {SEEDS_DIR}/*.txt")
    return sample


def test_seed_documents_are_present_and_cover_every_seed_event_type() -> None:
    assert SEEDS_DIR.is_dir(), f"seed documents missing: {SEEDS_DIR} (the SEED profile's spec)"
    types = {p.values[0]["eventType"] for p in SEED_SAMPLES}
    assert types == {
        f"Microsoft.Communication.{name}"
        for name in (
            "SMSReceived",
            "SMSDeliveryReportReceived",
            "ChatMessageReceived",
            "ChatMessageEdited",
            "ChatMessageDeleted",
            "ChatThreadCreatedWithUser",
            "ChatThreadWithUserDeleted",
            "ChatThreadPropertiesUpdatedPerUser",
            "ChatMemberAddedToThreadWithUser",
            "ChatMemberRemovedFromThreadWithUser",
        )
    }


# --- Recursive comparison -------------------------------------------------------------------------


def _parse_time(text: str) -> datetime:
    """Parse a sample timestamp to the microsecond (Python has no 100 ns digit)."""
    match = TIMESTAMP.match(text)
    assert match, text
    fraction = (match.group(1) or "")[:6].ljust(6, "0")
    base = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return base.replace(microsecond=int(fraction))


def _assert_same_timestamp(built: str, expected: str, where: str) -> None:
    got, want = TIMESTAMP.match(built), TIMESTAMP.match(expected)
    assert got, f"{where}: {built!r} is not a timestamp like {expected!r}"
    assert got.group(2) == want.group(2), f"{where}: zone {built!r} vs {expected!r}"
    digits = len(want.group(1) or "")
    if digits <= 3:  # whole seconds, or milliseconds that .NET trimmed: reproduced exactly
        assert built == expected, where
    else:  # 100 ns ticks (.NET trims a trailing zero, `.037823Z`): always written with all 7 digits
        assert len(got.group(1) or "") == 7, f"{where}: {built!r} should carry 7 fractional digits"
        assert _parse_time(built) == _parse_time(expected), where


def _id_format(segment: str) -> str:
    for name, pattern in (("thread", THREAD_ID), ("raw", RAW_ID), ("digits", re.compile(r"^\d+$"))):
        if pattern.match(segment):
            return name
    return "placeholder" if segment.startswith("{") or segment == "rawId" else segment


def _assert_same_subject(built: str, expected: str) -> None:
    """Same labels in the same places; each id equal to the sample's or, where the sample has a placeholder or
    disagrees with its own data (004 ChatThreadCreatedWithUser's `createdBy`), of a valid format."""
    got, want = built.split("/"), expected.split("/")
    assert len(got) == len(want), (built, expected)
    for position, (g, w) in enumerate(zip(got, want, strict=True)):
        is_label = (position % 2 == 0) if want[0] == "thread" else position < 2
        if is_label or g == w:
            assert g == w, (built, expected)
        else:
            assert _id_format(g) in {"thread", "raw", "digits"}, (built, expected)
            assert _id_format(w) in {_id_format(g), "placeholder"}, (built, expected)


def assert_same_event(built: Any, expected: Any, where: str = "$") -> None:
    assert type(built) is type(expected), f"{where}: {type(built).__name__} vs {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(built) == list(expected), f"{where}: keys {list(built)} vs {list(expected)}"
        for key in expected:
            assert_same_event(built[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(built) == len(expected), where
        for index, (b, e) in enumerate(zip(built, expected, strict=True)):
            assert_same_event(b, e, f"{where}[{index}]")
    elif where == "$.subject":
        _assert_same_subject(built, expected)
    elif isinstance(expected, str) and TIMESTAMP.match(expected):
        _assert_same_timestamp(built, expected, where)
    else:
        assert built == expected, f"{where}: {built!r} vs {expected!r}"


# --- Rebuilding a sample from the facts it states -------------------------------------------------


def _emission(sample: dict) -> Emission:
    data = sample["data"]
    return Emission(
        topic=sample["topic"],
        event_time=_parse_time(sample["eventTime"]),
        transaction_id=data.get("transactionId", "unused"),
        new_id=lambda: sample["id"],
    )


def _plus(number: str) -> str:
    return number if number.startswith("+") else f"+{number}"


def _user(raw_id: str, name: str | None = None) -> ChatUser:
    return ChatUser(raw_id, name)


def _message(d: dict) -> ChatMessageSnapshot:
    sender = d.get("senderCommunicationIdentifier", {}).get("rawId") or d["senderId"]
    return ChatMessageSnapshot(
        message_id=d["messageId"],
        sender=_user(sender, d["senderDisplayName"]),
        content=d.get("messageBody", ""),
        created_at=_parse_time(d["composeTime"]),
        version=int(d["version"]),
        type={"Text": "text", "RichText/Html": "html"}[d["type"]],
        metadata=d.get("metadata", {}),
        edited_at=_parse_time(d["editTime"]) if "editTime" in d else None,
        deleted_at=_parse_time(d["deleteTime"]) if "deleteTime" in d else None,
    )


def _raw(d: dict, legacy: str, prefix: str) -> str:
    return d[legacy] if legacy in d else d[f"{prefix}CommunicationIdentifier"]["rawId"]


def _thread(
    d: dict, created_by: str = "8:acs:00000000-0000-0000-0000-000000000000_creator"
) -> ChatThreadSnapshot:
    members = [_user(m["memberId"], m["displayName"]) for m in d.get("members", [])]
    return ChatThreadSnapshot(
        thread_id=d["threadId"],
        topic=d.get("properties", {}).get("topic", ""),
        created_by=_user(d.get("createdBy", created_by)),
        created_at=_parse_time(d["createTime"]),
        version=int(d["version"]),
        participants=tuple(members),
    )


def _recipient(d: dict) -> ChatUser:
    return _user(_raw(d, "recipientId", "recipient"))


def _member(d: dict) -> ChatUser:
    return _user(d["memberId"], d["displayName"])


def _build_sms_received(p: AcsEventProfile, em: Emission, d: dict) -> dict:
    get = {k.lower(): v for k, v in d.items()}.get
    sms = InboundSms(
        get("messageid"),
        _plus(get("from")),
        _plus(get("to")),
        get("message"),
        _parse_time(get("receivedtimestamp")),
        get("segmentcount"),
    )
    return p.sms_received(em, sms)


def _build_delivery_report(p: AcsEventProfile, em: Emission, d: dict) -> dict:
    get = {k.lower(): v for k, v in d.items()}.get
    attempts = tuple(
        DeliveryAttempt(
            _parse_time(a.get("Timestamp") or a["timestamp"]),
            a.get("SegmentsSucceeded", a.get("segmentsSucceeded")),
            a.get("SegmentsFailed", a.get("segmentsFailed")),
        )
        for a in get("deliveryattempts")
    )
    report = SmsDeliveryReport(
        get("messageid"),
        _plus(get("from")),
        get("to"),
        get("deliverystatus"),
        get("deliverystatusdetails"),
        _parse_time(get("receivedtimestamp")),
        attempts,
        get("tag"),
    )
    return p.sms_delivery_report(em, report)


T = AcsEventType
REBUILD: dict[str, Callable[[AcsEventProfile, Emission, dict], dict]] = {
    T.SMS_RECEIVED: _build_sms_received,
    T.SMS_DELIVERY_REPORT_RECEIVED: _build_delivery_report,
    T.CHAT_MESSAGE_RECEIVED: lambda p, em, d: p.chat_message_received(
        em, d["threadId"], _message(d), _recipient(d)
    ),
    T.CHAT_MESSAGE_EDITED: lambda p, em, d: p.chat_message_edited(
        em, d["threadId"], _message(d), _recipient(d)
    ),
    T.CHAT_MESSAGE_DELETED: lambda p, em, d: p.chat_message_deleted(
        em, d["threadId"], _message(d), _recipient(d)
    ),
    T.CHAT_THREAD_CREATED_WITH_USER: lambda p, em, d: p.chat_thread_created_with_user(
        em, _thread(d), _recipient(d)
    ),
    T.CHAT_THREAD_WITH_USER_DELETED: lambda p, em, d: p.chat_thread_with_user_deleted(
        em,
        _thread(d),
        Change(_user(_raw(d, "deletedBy", "deletedBy")), _parse_time(d["deleteTime"])),
        _recipient(d),
    ),
    T.CHAT_THREAD_PROPERTIES_UPDATED_PER_USER: lambda p, em, d: p.chat_thread_properties_updated_per_user(
        em,
        _thread(d),
        Change(_user(_raw(d, "editedBy", "editedBy")), _parse_time(d["editTime"])),
        _recipient(d),
    ),
    T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER: lambda p, em, d: p.participant_added_with_user(
        em,
        _thread(d),
        Change(_user(d["addedBy"]), _parse_time(d["time"])),
        _member(d["memberAdded"]),
        _recipient(d),
    ),
    T.CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER: lambda p, em, d: p.participant_removed_with_user(
        em,
        _thread(d),
        Change(_user(d["removedBy"]), _parse_time(d["time"])),
        _member(d["memberRemoved"]),
        _recipient(d),
    ),
}


@pytest.mark.parametrize("sample", SEED_SAMPLES or [MISSING])
def test_seed_profile_reproduces_the_seed_sample(sample: dict | None) -> None:
    sample = _require_seed(sample)
    built = REBUILD[sample["eventType"]](SEED, _emission(sample), sample["data"])
    assert_same_event(built, sample)


@pytest.mark.parametrize("sample", SEED_SAMPLES or [MISSING])
def test_seed_shaped_events_parse_as_event_grid_events(sample: dict | None) -> None:
    sample = _require_seed(sample)
    built = REBUILD[sample["eventType"]](SEED, _emission(sample), sample["data"])
    parsed = EventGridEvent.from_dict(json.loads(json.dumps(built)))
    assert (parsed.event_type, parsed.subject, parsed.data) == (
        built["eventType"],
        built["subject"],
        built["data"],
    )


def test_seed_tag_is_appended_when_given() -> None:
    report = SmsDeliveryReport(
        "Outgoing_x",
        "+15555555555",
        "+15555555555",
        "Delivered",
        "No error.",
        datetime(2020, 9, 18, tzinfo=UTC),
        (),
        tag="t1",
    )
    data = SEED.sms_delivery_report(Emission(TOPIC, datetime(2020, 9, 18, tzinfo=UTC)), report)["data"]
    assert list(data)[-1] == "Tag" and data["Tag"] == "t1"


# --- CURRENT profile: reference ACS events pages samples and the current doc samples --------------------------

# The SMS doc samples, with the raw ids it abbreviates written out from the current doc sample.
CURRENT_MESSAGE_RECEIVED = {
    "id": "02272459-badb-4e2e-b538-4cb8a2f71da6",
    "topic": "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Communication"
    "/communicationServices/{name}",
    "subject": "thread/{thread-id}/sender/{rawId}/recipient/{rawId}",
    "data": {
        "messageBody": "Welcome to Azure Communication Services",
        "messageId": "1613694358927",
        "metadata": {"key": "value"},
        "senderId": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7caf-07fd-084822001724",
        "senderCommunicationIdentifier": {
            "rawId": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7caf-07fd-084822001724",
            "communicationUser": {
                "id": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7caf-07fd-084822001724"
            },
        },
        "senderDisplayName": "Bob(Admin)",
        "composeTime": "2021-02-19T00:25:58.927Z",
        "type": "Text",
        "version": 1613694358927,
        "recipientId": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7d05-83fe-084822000f6d",
        "recipientCommunicationIdentifier": {
            "rawId": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7d05-83fe-084822000f6d",
            "communicationUser": {
                "id": "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7d05-83fe-084822000f6d"
            },
        },
        "transactionId": "oh+LGB2dUUadMcTAdRWQxQ.1.1.1.1.1827536918.1.7",
        "threadId": "19:6e5d6ca1d75044a49a36a7965ec4a906@thread.v2",
    },
    "eventType": "Microsoft.Communication.ChatMessageReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2021-02-19T00:25:59.9436666Z",
}

CURRENT_DELIVERY_REPORT = {
    "id": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
    "topic": "...",
    "subject": "/phonenumber/15555555555",
    "data": {
        "messageId": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
        # wire-facts: shapes: real payloads carry E.164; the doc sample prints `from` as "15555555555".
        "from": "+15555555555",
        "to": "+15555555555",
        "deliveryStatus": "Delivered",
        "deliveryStatusDetails": "No error.",
        "receivedTimestamp": "2020-09-18T00:22:20.2855749Z",
        "deliveryAttempts": [
            {"timestamp": "2020-09-18T00:22:14.9315918Z", "segmentsSucceeded": 1, "segmentsFailed": 0}
        ],
        "tag": "custom-tag",
    },
    "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2020-09-18T00:22:20Z",
}


@pytest.mark.parametrize(
    "sample", [CURRENT_MESSAGE_RECEIVED, CURRENT_DELIVERY_REPORT], ids=lambda s: s["eventType"]
)
def test_current_profile_reproduces_the_reference_samples(sample: dict) -> None:
    built = REBUILD[sample["eventType"]](CURRENT, _emission(sample), sample["data"])
    assert_same_event(built, sample)


def test_current_sms_received_is_camel_case_with_segment_count() -> None:
    sms = InboundSms(
        "Incoming_x",
        "+14255550123",
        "+18005550100",
        "€" * 81,
        datetime(2020, 9, 18, 0, 27, 45, 320000, tzinfo=UTC),
    )
    event = CURRENT.sms_received(Emission(TOPIC, datetime(2020, 9, 18, 0, 27, 47, tzinfo=UTC)), sms)
    assert event["data"] == {
        "messageId": "Incoming_x",
        "from": "+14255550123",
        "to": "+18005550100",
        "message": "€" * 81,
        "receivedTimestamp": "2020-09-18T00:27:45.32Z",
        "segmentCount": 2,
    }
    assert (event["id"], event["subject"], event["eventTime"]) == (
        "Incoming_x",
        "/phonenumber/18005550100",
        "2020-09-18T00:27:47Z",
    )


# Key order of each CURRENT data shape, from the current doc samples (`communication-services-chat-events.md`,
# summarised in ACS events pages).
CURRENT_KEYS = {
    T.CHAT_MESSAGE_EDITED: [
        "editTime",
        "messageBody",
        "messageId",
        "metadata",
        "senderId",
        "senderCommunicationIdentifier",
        "senderDisplayName",
        "composeTime",
        "type",
        "version",
        "recipientId",
        "recipientCommunicationIdentifier",
        "transactionId",
        "threadId",
    ],
    T.CHAT_MESSAGE_DELETED: [
        "deleteTime",
        "messageId",
        "senderId",
        "senderCommunicationIdentifier",
        "senderDisplayName",
        "composeTime",
        "type",
        "version",
        "recipientId",
        "recipientCommunicationIdentifier",
        "transactionId",
        "threadId",
    ],
    T.CHAT_THREAD_CREATED_WITH_USER: [
        "createdBy",
        "createdByCommunicationIdentifier",
        "properties",
        "members",
        "participants",
        "createTime",
        "version",
        "recipientId",
        "recipientCommunicationIdentifier",
        "transactionId",
        "threadId",
    ],
    T.CHAT_THREAD_WITH_USER_DELETED: [
        "deletedBy",
        "deletedByCommunicationIdentifier",
        "deleteTime",
        "createTime",
        "version",
        "recipientId",
        "recipientCommunicationIdentifier",
        "transactionId",
        "threadId",
    ],
    T.CHAT_THREAD_PROPERTIES_UPDATED_PER_USER: [
        "editedBy",
        "editedByCommunicationIdentifier",
        "editTime",
        "properties",
        "createTime",
        "version",
        "recipientId",
        "recipientCommunicationIdentifier",
        "transactionId",
        "threadId",
    ],
    T.CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER: [
        "time",
        "addedByCommunicationIdentifier",
        "participantAdded",
        "recipientCommunicationIdentifier",
        "createTime",
        "version",
        "transactionId",
        "threadId",
    ],
    T.CHAT_PARTICIPANT_REMOVED_FROM_THREAD_WITH_USER: [
        "time",
        "removedByCommunicationIdentifier",
        "participantRemoved",
        "recipientCommunicationIdentifier",
        "createTime",
        "version",
        "transactionId",
        "threadId",
    ],
    T.CHAT_THREAD_CREATED: [
        "createdByCommunicationIdentifier",
        "properties",
        "participants",
        "createTime",
        "version",
        "threadId",
        "transactionId",
    ],
    T.CHAT_THREAD_PROPERTIES_UPDATED: [
        "editedByCommunicationIdentifier",
        "editTime",
        "properties",
        "createTime",
        "version",
        "threadId",
        "transactionId",
    ],
    T.CHAT_THREAD_DELETED: [
        "deletedByCommunicationIdentifier",
        "deleteTime",
        "createTime",
        "version",
        "threadId",
        "transactionId",
    ],
    T.CHAT_THREAD_PARTICIPANT_ADDED: [
        "time",
        "addedByCommunicationIdentifier",
        "participantAdded",
        "createTime",
        "version",
        "threadId",
        "transactionId",
    ],
    T.CHAT_THREAD_PARTICIPANT_REMOVED: [
        "time",
        "removedByCommunicationIdentifier",
        "participantRemoved",
        "createTime",
        "version",
        "threadId",
        "transactionId",
    ],
    T.CHAT_MESSAGE_RECEIVED_IN_THREAD: [
        "messageBody",
        "messageId",
        "metadata",
        "type",
        "version",
        "senderDisplayName",
        "senderCommunicationIdentifier",
        "composeTime",
        "threadId",
        "transactionId",
    ],
    T.CHAT_MESSAGE_EDITED_IN_THREAD: [
        "editTime",
        "messageBody",
        "messageId",
        "metadata",
        "type",
        "version",
        "senderDisplayName",
        "senderCommunicationIdentifier",
        "composeTime",
        "threadId",
        "transactionId",
    ],
    T.CHAT_MESSAGE_DELETED_IN_THREAD: [
        "deleteTime",
        "messageId",
        "type",
        "version",
        "senderDisplayName",
        "senderCommunicationIdentifier",
        "composeTime",
        "threadId",
        "transactionId",
    ],
}

# --- A small chat world, and every event each action emits ----------------------------------------

RES = "109f0644-b956-4cd9-87b1-71024f6e2f44"
ALICE, BOB, CAROL, DAVE = (
    ChatUser(f"8:acs:{RES}_00000008-578d-7caf-07fd-08482200172{i}", name)
    for i, name in enumerate(["Alice", "Bob", "Carol", "Dave"])
)
CREATED = datetime(2021, 2, 20, 0, 31, 54, 365000, tzinfo=UTC)
LATER = datetime(2021, 2, 20, 0, 54, 42, 862264, tzinfo=UTC)
THREAD = ChatThreadSnapshot(
    "19:e07c8ddc5bab4c059ea9f11d29b544b6@thread.v2",
    "Talk",
    ALICE,
    CREATED,
    1613781114365,
    (ALICE, BOB, CAROL),
)
MESSAGE = ChatMessageSnapshot(
    "1613783230064",
    BOB,
    "hello",
    datetime(2021, 2, 20, 1, 7, 10, 64000, tzinfo=UTC),
    1613783230064,
    metadata={"k": "v"},
    edited_at=LATER,
    deleted_at=LATER,
)


def _all_actions(profile: AcsEventProfile, em: Emission) -> list[dict]:
    grown = ChatThreadSnapshot(
        THREAD.thread_id, THREAD.topic, ALICE, CREATED, 1613782482822, (*THREAD.participants, DAVE)
    )
    return [
        *profile.thread_created(em, THREAD),
        *profile.message_sent(em, THREAD, MESSAGE),
        *profile.message_edited(em, THREAD, MESSAGE, BOB),
        *profile.message_deleted(em, THREAD, MESSAGE, BOB),
        *profile.thread_updated(em, THREAD, Change(ALICE, LATER)),
        *profile.participants_added(em, grown, Change(ALICE, LATER), [DAVE]),
        *profile.participant_removed(em, THREAD, Change(ALICE, LATER), DAVE),
        *profile.thread_deleted(em, THREAD, Change(ALICE, LATER)),
    ]


def _emit() -> Emission:
    return Emission(TOPIC, LATER)


def test_current_data_shapes_match_the_current_doc_samples() -> None:
    events = _all_actions(CURRENT, _emit())
    seen = {}
    for event in events:
        seen.setdefault(event["eventType"], event)
    assert {AcsEventType(t) for t in seen} == set(CURRENT_KEYS) | {T.CHAT_MESSAGE_RECEIVED}
    for event_type, keys in CURRENT_KEYS.items():
        assert list(seen[event_type]["data"]) == keys, event_type


def test_current_identifiers_are_raw_id_plus_communication_user() -> None:
    for event in _all_actions(CURRENT, _emit()):
        for key, value in event["data"].items():
            if key.endswith("CommunicationIdentifier"):
                assert value == {"rawId": value["rawId"], "communicationUser": {"id": value["rawId"]}}, key


def test_current_thread_level_events_use_offsets_and_string_message_versions() -> None:
    for event in _all_actions(CURRENT, _emit()):
        level = CATALOG[AcsEventType(event["eventType"])].level
        times = [v for v in event["data"].values() if isinstance(v, str) and TIMESTAMP.match(v)]
        suffix = "+00:00" if level is Level.THREAD else "Z"
        assert times and all(t.endswith(suffix) for t in times), event["eventType"]
        is_thread_message = level is Level.THREAD and "messageId" in event["data"]
        assert type(event["data"]["version"]) is (str if is_thread_message else int), event["eventType"]


def test_current_timestamp_precisions() -> None:
    events = {e["eventType"]: e["data"] for e in _all_actions(CURRENT, _emit())}
    assert events[T.CHAT_THREAD_PARTICIPANT_ADDED]["time"] == "2021-02-20T00:54:42.8622640+00:00"
    assert events[T.CHAT_THREAD_PARTICIPANT_ADDED]["createTime"] == "2021-02-20T00:31:54.365+00:00"
    assert events[T.CHAT_MESSAGE_RECEIVED]["composeTime"] == "2021-02-20T01:07:10.064Z"
    assert events[T.CHAT_MESSAGE_EDITED]["editTime"] == "2021-02-20T00:54:42.862Z"
    assert events[T.CHAT_THREAD_WITH_USER_DELETED]["deleteTime"] == "2021-02-20T00:54:42.8622640Z"


def test_html_messages_are_rich_text() -> None:
    html = ChatMessageSnapshot("1", BOB, "<b>hi</b>", CREATED, 1, type="html")
    event = CURRENT.chat_message_received(_emit(), THREAD.thread_id, html, ALICE)
    assert event["data"]["type"] == "RichText/Html"


# --- wire-facts: recipients: who gets which event ---------------------------------------------------------------------


def _recipients(events: list[dict]) -> list[str]:
    return [e["subject"].rsplit("/recipient/", 1)[1] for e in events if "/recipient/" in e["subject"]]


@pytest.mark.parametrize("profile", [SEED, CURRENT], ids=lambda p: p.name)
def test_user_level_events_exclude_the_actor(profile: AcsEventProfile) -> None:
    em = _emit()
    assert _recipients(profile.thread_created(em, THREAD)) == [BOB.raw_id, CAROL.raw_id]
    sent = profile.message_sent(em, THREAD, MESSAGE)
    assert [e["eventType"] for e in sent] == [T.CHAT_MESSAGE_RECEIVED_IN_THREAD] + [
        T.CHAT_MESSAGE_RECEIVED
    ] * 2
    assert _recipients(sent) == [ALICE.raw_id, CAROL.raw_id]
    assert _recipients(profile.thread_deleted(em, THREAD, Change(CAROL, LATER))) == [ALICE.raw_id, BOB.raw_id]


@pytest.mark.parametrize(
    ("profile", "user_type"),
    [
        (SEED, T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER),
        (CURRENT, T.CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER),
    ],
    ids=["seed", "current"],
)
def test_participants_added_per_added_user_and_recipient(profile: AcsEventProfile, user_type: str) -> None:
    grown = ChatThreadSnapshot(THREAD.thread_id, "Talk", ALICE, CREATED, 2, (ALICE, BOB, CAROL, DAVE))
    erin = ChatUser(f"8:acs:{RES}_00000008-578d-7caf-07fd-084822001799", "Erin")
    grown = ChatThreadSnapshot(grown.thread_id, "Talk", ALICE, CREATED, 2, (*grown.participants, erin))
    events = profile.participants_added(_emit(), grown, Change(ALICE, LATER), [DAVE, erin])
    assert [e["eventType"] for e in events] == ([T.CHAT_THREAD_PARTICIPANT_ADDED] + [user_type] * 4) * 2
    # Every member but the actor hears of each addition, the added users included.
    assert _recipients(events) == [BOB.raw_id, CAROL.raw_id, DAVE.raw_id, erin.raw_id] * 2


def test_a_removed_participant_still_hears_of_the_removal() -> None:
    events = CURRENT.participant_removed(_emit(), THREAD, Change(ALICE, LATER), DAVE)
    assert events[0]["subject"] == f"thread/{THREAD.thread_id}/participantremoved/{DAVE.raw_id}"
    assert _recipients(events) == [BOB.raw_id, CAROL.raw_id, DAVE.raw_id]


def test_one_action_shares_one_transaction_id() -> None:
    em = _emit()
    events = CURRENT.message_sent(em, THREAD, MESSAGE)
    assert {e["data"]["transactionId"] for e in events} == {em.transaction_id}
    assert len({e["id"] for e in events}) == len(events)


# --- Envelope, catalog, ids, profiles -------------------------------------------------------------


def _sms_events(profile: AcsEventProfile) -> list[dict]:
    at = datetime(2020, 9, 18, 0, 22, 20, 285574, tzinfo=UTC)
    sms = InboundSms(new_sms_message_id("Incoming", at), "+14255550123", "+18005550100", "hi", at)
    report = SmsDeliveryReport(
        new_sms_message_id("Outgoing", at),
        "+18005550100",
        "+14255550123",
        "Failed",
        "ErrorCode: 5002. ErrorMessage: Message Delivery Timeout",
        at,
        (DeliveryAttempt(at, 0, 1),),
    )
    return [profile.sms_received(_emit(), sms), profile.sms_delivery_report(_emit(), report)]


@pytest.mark.parametrize("profile", [SEED, CURRENT], ids=lambda p: p.name)
def test_every_event_has_the_full_envelope_and_parses(profile: AcsEventProfile) -> None:
    for event in _all_actions(profile, _emit()) + _sms_events(profile):
        assert list(event) == ENVELOPE_KEYS
        assert (event["dataVersion"], event["metadataVersion"], event["topic"]) == ("1.0", "1", TOPIC)
        parsed = EventGridEvent.from_dict(json.loads(json.dumps(event)))
        assert parsed.event_type == event["eventType"]


@pytest.mark.parametrize("profile", [SEED, CURRENT], ids=lambda p: p.name)
def test_subjects_follow_the_catalog(profile: AcsEventProfile) -> None:
    for event in _all_actions(profile, _emit()) + _sms_events(profile):
        template = CATALOG[AcsEventType(event["eventType"])].subject
        pattern = re.escape(template).replace(r"\{threadId\}", "19:[^/]+").replace(r"\{rawId\}", "[^/]+")
        pattern = pattern.replace(r"\{acsNumberDigits\}", r"\d+")
        assert re.fullmatch(pattern, event["subject"]), (event["subject"], template)


def test_sms_ids_and_subjects() -> None:
    received, report = _sms_events(CURRENT)
    assert received["id"] == received["data"]["messageId"] and SMS_MESSAGE_ID.match(received["id"])
    assert received["subject"] == "/phonenumber/18005550100"  # the ACS number is the recipient
    assert report["subject"] == "/phonenumber/18005550100"  # ... and the sender of a delivery report
    assert received["eventTime"] == "2021-02-20T00:54:42Z"  # SMS event times are whole seconds


def test_generated_ids_have_the_samples_formats() -> None:
    assert re.fullmatch(GUID, new_event_id())
    assert TRANSACTION_ID.match(new_transaction_id())
    assert TRANSACTION_ID.match("oh+LGB2dUUadMcTAdRWQxQ.1.1.1.1.1827536918.1.7")
    for sample in SEED_SAMPLES:
        event = sample.values[0]
        if event["id"].startswith(("Outgoing_", "Incoming_")):
            assert SMS_MESSAGE_ID.match(event["id"])
        else:
            assert re.fullmatch(GUID, event["id"]) and TRANSACTION_ID.match(event["data"]["transactionId"])


def test_the_catalog_covers_every_event_type_and_python_knows_them() -> None:
    assert set(CATALOG) == set(AcsEventType)
    known = {v for k, v in vars(SystemEventNames).items() if k.startswith("Acs")}
    assert set(AcsEventType) <= known
    assert {t for t, info in CATALOG.items() if info.legacy} == {
        T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER,
        T.CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER,
    }


def test_builders_do_not_share_or_change_their_inputs() -> None:
    metadata = {"k": "v"}
    message = ChatMessageSnapshot("1", BOB, "x", CREATED, 1, metadata=metadata)
    event = CURRENT.chat_message_received(_emit(), THREAD.thread_id, message, ALICE)
    event["data"]["metadata"]["k"] = "changed"
    assert metadata == {"k": "v"}


def test_profile_by_name() -> None:
    assert profile_by_name("seed") is SEED
    assert profile_by_name(" CURRENT ") is CURRENT
    assert DEFAULT_PROFILE is SEED
    with pytest.raises(ValueError, match="seed, current"):
        profile_by_name("legacy")


@pytest.mark.parametrize(
    ("precision", "suffix", "expected"),
    [
        (Precision.SECONDS, "Z", "2020-09-18T00:22:20Z"),
        (Precision.MILLIS, "Z", "2020-09-18T00:22:20.28Z"),
        (Precision.TICKS, "Z", "2020-09-18T00:22:20.2809990Z"),
        (Precision.MILLIS, "+00:00", "2020-09-18T00:22:20.28+00:00"),
    ],
)
def test_format_timestamp(precision: Precision, suffix: str, expected: str) -> None:
    assert (
        format_timestamp(datetime(2020, 9, 18, 0, 22, 20, 280999, tzinfo=UTC), precision, suffix) == expected
    )


def test_whole_milliseconds_drop_the_fraction_like_dotnet() -> None:
    assert (
        format_timestamp(datetime(2021, 2, 18, 23, 47, 26, tzinfo=UTC), Precision.MILLIS)
        == "2021-02-18T23:47:26Z"
    )
