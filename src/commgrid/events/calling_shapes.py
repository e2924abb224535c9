"""Domain inputs of the calling and presence events (`events/acs.py` renders them per profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

NO_ID = "00000000-0000-0000-0000-000000000000"  # `group.id` of a call that is not a group call (doc samples)


@dataclass(frozen=True, slots=True)
class CallParty:
    """A participant of a call: its raw id (`8:acs:…`, `4:+1…`) and how it appears in the call."""

    raw_id: str
    display_name: str = ""
    participant_id: str = ""
    role: str = "Attendee"
    user_agent: str = "commgrid-simulated-endpoint/1.0"


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """The facts every calling event repeats (`AcsCallingEventProperties`)."""

    server_call_id: str
    correlation_id: str
    started_by: CallParty
    group_id: str | None = None
    room_id: str | None = None
    is_two_party: bool = True


@dataclass(frozen=True, slots=True)
class CallEnding:
    """Why and when a call ended (`AcsCallEndedEventData`)."""

    ended_by: CallParty | None
    ended_by_type: str  # Participant | MicrosoftInternal
    code: int
    sub_code: int
    phrase: str
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class IncomingCallFacts:
    caller: str
    recipient: str
    server_call_id: str
    caller_display_name: str
    incoming_call_context: str
    correlation_id: str
    sip_headers: dict[str, str] = field(default_factory=dict)
    voip_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingChunk:
    document_id: str
    index: int
    end_reason: str
    content_location: str
    metadata_location: str
    delete_location: str


@dataclass(frozen=True, slots=True)
class RecordingFile:
    """A finished recording session (`AcsRecordingFileStatusUpdatedEventData`)."""

    call_id: str
    server_call_id: str
    recording_id: str
    chunks: tuple[RecordingChunk, ...]
    started_at: datetime
    duration_ms: int
    content_type: str  # AudioVideo | Audio
    channel_type: str  # Mixed | Unmixed
    format_type: str  # Wav | Mp3 | Mp4
    session_end_reason: str  # CallEnded | RecordingStopped …
