"""Calling and presence events in both profiles against the documented samples; identifiers, incoming-call
contexts and the generated recording files."""

from __future__ import annotations

import io
import json
import struct
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commgrid.acs.calling.ids import (
    InvalidCallRequest,
    call_of_context,
    incoming_call_context,
    normalize_party,
    raw_id_of,
)
from commgrid.acs.calling.media import tone_word
from commgrid.acs.calling.media_files import media_file, mp3, mp4, wav
from commgrid.acs.identifiers import identifier_model
from commgrid.events.acs import CATALOG, AcsEventType, Emission
from commgrid.events.calling_shapes import (
    CallEnding,
    CallParty,
    CallSnapshot,
    IncomingCallFacts,
    RecordingChunk,
    RecordingFile,
)
from commgrid.events.profiles import CURRENT, SEED

SAMPLES = {e["eventType"]: e for e in json.loads(
    (Path(__file__).parents[1] / "acceptance" / "samples" / "calling_events.json").read_text())}
USER = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"
AT = datetime(2026, 11, 30, 12, 0, 0, 123456, UTC)
CALL = CallSnapshot("c2VydmVy", "corr-1", CallParty(USER, "Alice", "p-1"))
ENDING = CallEnding(CallParty(USER, "Alice"), "Participant", 200, 5002, "The conversation has ended.", 12.5)
CHUNK = RecordingChunk("0-eus-d1-abc", 0, "SessionEnded", "https://h/v1/objects/x/content/audio",
                       "https://h/v1/objects/x/content/acsmetadata", "https://h/v1/objects/x")
RECORDING = RecordingFile("corr-1", "c2VydmVy", "rec-1", (CHUNK,), AT, 6620, "Audio", "Mixed", "Wav", "CallEnded")
INCOMING = IncomingCallFacts("4:+14255550123", "4:+18005550100", "c2VydmVy", "Pat", "a.b.", "corr-1")


def _events(profile) -> dict[str, dict]:
    em = Emission(topic="/subscriptions/s/resourceGroups/g/providers/Microsoft.Communication/communicationServices/r",
                  event_time=AT)
    built = [profile.call_started(em, CALL), profile.call_ended(em, CALL, ENDING),
             profile.call_participant_added(em, CALL, CALL.started_by),
             profile.call_participant_removed(em, CALL, CALL.started_by), profile.incoming_call(em, INCOMING),
             profile.recording_file_status_updated(em, RECORDING), profile.user_disconnected(em, USER)]
    return {e["eventType"]: e for e in built}


def test_seed_profile_has_the_documented_fields_in_order() -> None:
    for event_type, event in _events(SEED).items():
        sample = SAMPLES[event_type]
        assert list(event) == list(sample)
        assert list(event["data"]) == list(sample["data"]), event_type


def test_current_profile_adds_the_schema_fields() -> None:
    events = _events(CURRENT)
    extra = {t: [k for k in e["data"] if k not in SAMPLES[t]["data"]] for t, e in events.items()}
    ns = "Microsoft.Communication."
    assert extra == {ns + "CallStarted": [], ns + "CallEnded": ["endedBy", "reason", "callDurationInSeconds"],
                     ns + "CallParticipantAdded": ["userAgent"], ns + "CallParticipantRemoved": ["userAgent"],
                     ns + "IncomingCall": ["customContext"], ns + "UserDisconnected": [],
                     ns + "RecordingFileStatusUpdated": ["recordingContentType", "recordingChannelType",
                                                        "recordingFormatType"]}
    ended = events[ns + "CallEnded"]["data"]
    assert ended["endedBy"] == {"communicationIdentifier": {"rawId": USER, "communicationUser": {"id": USER}},
                                "type": "Participant", "name": "Alice"}
    assert ended["reason"] == {"code": 200, "subCode": 5002, "phrase": "The conversation has ended."}


@pytest.mark.parametrize("profile", [SEED, CURRENT], ids=["seed", "current"])
def test_subjects_follow_the_catalog(profile) -> None:
    events = _events(profile)
    subjects = {t: e["subject"] for t, e in events.items()}
    assert subjects[AcsEventType.CALL_STARTED] == f"call/c2VydmVy/startedBy/{USER}"
    assert subjects[AcsEventType.CALL_ENDED] == "call/c2VydmVy"
    assert subjects[AcsEventType.CALL_PARTICIPANT_ADDED] == f"call/c2VydmVy/participant/{USER}"
    assert subjects[AcsEventType.INCOMING_CALL] == "/caller/4:+14255550123/recipient/4:+18005550100"
    assert subjects[AcsEventType.USER_DISCONNECTED] == f"user/{USER}"
    recording = subjects[AcsEventType.RECORDING_FILE_STATUS_UPDATED]
    assert recording == ("/recording/call/corr-1/serverCallId/c2VydmVy/recordingId/rec-1" if profile is SEED
                         else "/recording/call/corr-1/recordingId/rec-1")
    assert all(t in CATALOG for t in events)
    incoming = events[AcsEventType.INCOMING_CALL]["data"]
    assert incoming["from"] == {"kind": "phoneNumber", "rawId": "4:+14255550123",
                                "phoneNumber": {"value": "+14255550123"}}


def test_call_base_marks_group_and_rooms_calls() -> None:
    em = Emission(topic="t", event_time=AT)
    room = CallSnapshot("s", "c", CallParty(USER), room_id="room-1", is_two_party=False)
    data = CURRENT.call_started(em, room)["data"]
    assert (data["room"], data["group"]["id"], data["isRoomsCall"], data["isTwoParty"]) == (
        {"id": "room-1"}, "00000000-0000-0000-0000-000000000000", True, False)


def test_incoming_call_context_round_trip_and_rejects() -> None:
    context = incoming_call_context("call-1")
    assert context.endswith(".") and call_of_context(context) == "call-1"
    for bad in ("nonsense", "a.b.c", 42, None):
        with pytest.raises(InvalidCallRequest):
            call_of_context(bad)


def test_identifiers() -> None:
    assert raw_id_of({"rawId": "4:+14255550123", "phoneNumber": {"value": "+14255550123"}}) == "4:+14255550123"
    assert raw_id_of({"communicationUser": {"id": USER}}) == USER
    with pytest.raises(InvalidCallRequest):
        raw_id_of({"phoneNumber": {"value": "425-555"}})
    with pytest.raises(InvalidCallRequest):
        raw_id_of(None)
    assert normalize_party("+14255550123") == "4:+14255550123" and normalize_party(USER) == USER
    assert identifier_model(USER)["kind"] == "communicationUser"
    assert [tone_word(k) for k in ("1", "#", "*", "A", "pound")] == ["one", "pound", "asterisk", "a", "pound"]
    with pytest.raises(InvalidCallRequest):
        tone_word("x")


def test_generated_files_are_real_containers() -> None:
    with wave.open(io.BytesIO(wav(1.5))) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes()) == (1, 8000, 2, 12000)
    frames = mp3(1.0)
    assert frames[:4] == bytes([0xFF, 0xFB, 0x10, 0xC0]) and len(frames) % 104 == 0 and len(frames) // 104 == 39
    movie = mp4(2.5)
    size, kind = struct.unpack(">I4s", movie[:8])
    assert kind == b"ftyp" and movie[size + 4:size + 8] == b"moov"
    assert struct.unpack(">I", movie[size + 8 + 8 + 16:size + 8 + 8 + 20])[0] == 2500  # mvhd duration in ms
    assert len(media_file("wav", 10**9)) == 44 + 30 * 8000 * 2  # capped at 30 s
