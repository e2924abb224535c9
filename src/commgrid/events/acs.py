"""The events ACS publishes to Event Grid: the catalog of event types and the domain facts they are built from.

`CATALOG` names each event type's level (who gets it) and subject template; the dataclasses below are the
inputs the profiles in `events/profiles/` render as Event Grid schema events.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

_NS = "Microsoft.Communication."


class AcsEventType(StrEnum):
    """Every ACS event type commgrid emits (ACS events pages and seed 004)."""

    SMS_RECEIVED = _NS + "SMSReceived"
    SMS_DELIVERY_REPORT_RECEIVED = _NS + "SMSDeliveryReportReceived"
    CHAT_MESSAGE_RECEIVED = _NS + "ChatMessageReceived"
    CHAT_MESSAGE_EDITED = _NS + "ChatMessageEdited"
    CHAT_MESSAGE_DELETED = _NS + "ChatMessageDeleted"
    CHAT_THREAD_CREATED_WITH_USER = _NS + "ChatThreadCreatedWithUser"
    CHAT_THREAD_WITH_USER_DELETED = _NS + "ChatThreadWithUserDeleted"
    CHAT_THREAD_PROPERTIES_UPDATED_PER_USER = _NS + "ChatThreadPropertiesUpdatedPerUser"
    CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER = _NS + "ChatMemberAddedToThreadWithUser"
    CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER = _NS + "ChatMemberRemovedFromThreadWithUser"
    CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER = _NS + "ChatParticipantAddedToThreadWithUser"
    CHAT_PARTICIPANT_REMOVED_FROM_THREAD_WITH_USER = _NS + "ChatParticipantRemovedFromThreadWithUser"
    CHAT_THREAD_CREATED = _NS + "ChatThreadCreated"
    CHAT_THREAD_DELETED = _NS + "ChatThreadDeleted"
    CHAT_THREAD_PROPERTIES_UPDATED = _NS + "ChatThreadPropertiesUpdated"
    CHAT_THREAD_PARTICIPANT_ADDED = _NS + "ChatThreadParticipantAdded"
    CHAT_THREAD_PARTICIPANT_REMOVED = _NS + "ChatThreadParticipantRemoved"
    CHAT_MESSAGE_RECEIVED_IN_THREAD = _NS + "ChatMessageReceivedInThread"
    CHAT_MESSAGE_EDITED_IN_THREAD = _NS + "ChatMessageEditedInThread"
    CHAT_MESSAGE_DELETED_IN_THREAD = _NS + "ChatMessageDeletedInThread"
    # Voice and video calling, and presence
    CALL_STARTED = _NS + "CallStarted"
    CALL_ENDED = _NS + "CallEnded"
    CALL_PARTICIPANT_ADDED = _NS + "CallParticipantAdded"
    CALL_PARTICIPANT_REMOVED = _NS + "CallParticipantRemoved"
    INCOMING_CALL = _NS + "IncomingCall"
    RECORDING_FILE_STATUS_UPDATED = _NS + "RecordingFileStatusUpdated"
    USER_DISCONNECTED = _NS + "UserDisconnected"


class Level(StrEnum):
    """User-level chat events go once per recipient, thread-level once per thread (wire-facts: recipients)."""

    SMS = "sms"
    USER = "user"
    THREAD = "thread"
    CALL = "call"
    PRESENCE = "presence"


@dataclass(frozen=True, slots=True)
class EventTypeInfo:
    event_type: AcsEventType
    level: Level
    subject: str  # the subject template (ACS events pages)
    legacy: bool = False  # a 2020-preview name, emitted only by the SEED profile


def _info(
    t: AcsEventType, level: Level, subject: str, legacy: bool = False
) -> tuple[AcsEventType, EventTypeInfo]:
    return t, EventTypeInfo(t, level, subject, legacy)


_T = AcsEventType
CATALOG: Mapping[AcsEventType, EventTypeInfo] = dict(
    [
        _info(_T.SMS_RECEIVED, Level.SMS, "/phonenumber/{acsNumberDigits}"),
        _info(_T.SMS_DELIVERY_REPORT_RECEIVED, Level.SMS, "/phonenumber/{acsNumberDigits}"),
        _info(_T.CHAT_MESSAGE_RECEIVED, Level.USER, "thread/{threadId}/sender/{rawId}/recipient/{rawId}"),
        _info(_T.CHAT_MESSAGE_EDITED, Level.USER, "thread/{threadId}/sender/{rawId}/recipient/{rawId}"),
        _info(_T.CHAT_MESSAGE_DELETED, Level.USER, "thread/{threadId}/sender/{rawId}/recipient/{rawId}"),
        _info(
            _T.CHAT_THREAD_CREATED_WITH_USER,
            Level.USER,
            "thread/{threadId}/createdBy/{rawId}/recipient/{rawId}",
        ),
        _info(
            _T.CHAT_THREAD_WITH_USER_DELETED,
            Level.USER,
            "thread/{threadId}/deletedBy/{rawId}/recipient/{rawId}",
        ),
        _info(
            _T.CHAT_THREAD_PROPERTIES_UPDATED_PER_USER,
            Level.USER,
            "thread/{threadId}/editedBy/{rawId}/recipient/{rawId}",
        ),
        _info(
            _T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER,
            Level.USER,
            "thread/{threadId}/memberAdded/{rawId}/recipient/{rawId}",
            legacy=True,
        ),
        _info(
            _T.CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER,
            Level.USER,
            "thread/{threadId}/memberRemoved/{rawId}/recipient/{rawId}",
            legacy=True,
        ),
        _info(
            _T.CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER,
            Level.USER,
            "thread/{threadId}/participantAdded/{rawId}/recipient/{rawId}",
        ),
        _info(
            _T.CHAT_PARTICIPANT_REMOVED_FROM_THREAD_WITH_USER,
            Level.USER,
            "thread/{threadId}/participantRemoved/{rawId}/recipient/{rawId}",
        ),
        _info(_T.CHAT_THREAD_CREATED, Level.THREAD, "thread/{threadId}/createdBy/{rawId}"),
        _info(_T.CHAT_THREAD_DELETED, Level.THREAD, "thread/{threadId}/deletedBy/{rawId}"),
        _info(_T.CHAT_THREAD_PROPERTIES_UPDATED, Level.THREAD, "thread/{threadId}/editedBy/{rawId}"),
        _info(_T.CHAT_THREAD_PARTICIPANT_ADDED, Level.THREAD, "thread/{threadId}/participantadded/{rawId}"),
        _info(
            _T.CHAT_THREAD_PARTICIPANT_REMOVED, Level.THREAD, "thread/{threadId}/participantremoved/{rawId}"
        ),
        _info(_T.CHAT_MESSAGE_RECEIVED_IN_THREAD, Level.THREAD, "thread/{threadId}/sender/{rawId}"),
        _info(_T.CHAT_MESSAGE_EDITED_IN_THREAD, Level.THREAD, "thread/{threadId}/sender/{rawId}"),
        _info(_T.CHAT_MESSAGE_DELETED_IN_THREAD, Level.THREAD, "thread/{threadId}/sender/{rawId}"),
        # calling and presence
        _info(_T.CALL_STARTED, Level.CALL, "call/{serverCallId}/startedBy/{rawId}"),
        _info(_T.CALL_ENDED, Level.CALL, "call/{serverCallId}"),
        _info(_T.CALL_PARTICIPANT_ADDED, Level.CALL, "call/{serverCallId}/participant/{rawId}"),
        _info(_T.CALL_PARTICIPANT_REMOVED, Level.CALL, "call/{serverCallId}/participant/{rawId}"),
        _info(_T.INCOMING_CALL, Level.CALL, "/caller/{rawId}/recipient/{rawId}"),
        _info(_T.RECORDING_FILE_STATUS_UPDATED, Level.CALL, "/recording/call/{callId}/recordingId/{recordingId}"),
        _info(_T.USER_DISCONNECTED, Level.PRESENCE, "user/{rawId}"),
    ]
)


# --- Domain inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundSms:
    """An SMS received by an ACS-owned number (`to`). Numbers are E.164."""

    message_id: str
    from_: str
    to: str
    message: str
    received_at: datetime
    segment_count: int | None = None  # computed from `message` when None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    timestamp: datetime
    segments_succeeded: int
    segments_failed: int


@dataclass(frozen=True, slots=True)
class SmsDeliveryReport:
    """The outcome of one outbound SMS to one recipient; `from_` is the ACS-owned number. E.164 numbers."""

    message_id: str
    from_: str
    to: str
    status: str  # "Delivered" | "Failed" (MicrosoftDocs/azure-docs#92663)
    status_details: str
    received_at: datetime
    attempts: tuple[DeliveryAttempt, ...]
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class ChatUser:
    """A participant, actor or recipient: its raw id (`8:acs:...`) and, for participants, display name."""

    raw_id: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class ChatThreadSnapshot:
    """A thread as it is after the action. `version` is the epoch ms of its last change (wire-facts: chat API)."""

    thread_id: str
    topic: str
    created_by: ChatUser
    created_at: datetime
    version: int
    participants: tuple[ChatUser, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatMessageSnapshot:
    """A user message as it is after the action; `sender.display_name` is its `senderDisplayName`."""

    message_id: str
    sender: ChatUser
    content: str
    created_at: datetime
    version: int
    type: str = "text"  # REST `text` | `html`
    metadata: Mapping[str, str] = field(default_factory=dict)
    edited_at: datetime | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """The actor of a thread change and when it happened (deletion, topic edit, participant added/removed)."""

    by: ChatUser
    at: datetime


def new_event_id() -> str:
    return str(uuid.uuid4())


def new_transaction_id() -> str:
    """An opaque MS-CV-like id, shaped as in the samples (`oh+LGB2dUUadMcTAdRWQxQ.1.1.1.1.1827536918.1.7`)."""
    cv = base64.b64encode(uuid.uuid4().bytes).decode("ascii")[:22]
    return f"{cv}.1.1.1.1.{secrets.randbelow(9 * 10**9) + 10**9}.1.1"


def new_sms_message_id(direction: str, at: datetime) -> str:
    """`Outgoing_<yyyyMMddHHmmss><guid>` / `Incoming_...`, the samples' format (SMS spec)."""
    return f"{direction}_{at.astimezone(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Emission:
    """Envelope inputs shared by the events of one API action."""

    topic: str
    event_time: datetime
    transaction_id: str = field(default_factory=new_transaction_id)
    new_id: Callable[[], str] = new_event_id


_PLACEHOLDER = re.compile(r"\{\w+\}")
_SUBJECT_PARTS = {t: _PLACEHOLDER.split(info.subject) for t, info in CATALOG.items()}


def subject_of(event_type: AcsEventType, *values: str) -> str:
    """The subject of an `event_type` event: its catalog template with the placeholders filled in order."""
    parts = _SUBJECT_PARTS[event_type]
    if len(values) != len(parts) - 1:
        raise ValueError(f"{event_type} subjects take {len(parts) - 1} values, not {len(values)}")
    return parts[0] + "".join(value + literal for value, literal in zip(values, parts[1:], strict=True))
