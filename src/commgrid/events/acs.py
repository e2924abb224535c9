"""The events ACS publishes to Event Grid (SMS and chat), built as Event Grid schema dicts.

Two profiles render the same domain facts (`acs-wire-facts.md` §5):

- `SEED` reproduces the 2020 documentation samples field for field (`/work/shared/seeds`, 002 SMS, 004 chat):
  PascalCase SMS data, raw-id chat fields (`senderId`, `createdBy`, `members`), `ChatMember*` events.
- `CURRENT` reproduces today's payloads (§5.2-§5.4, `articles/event-grid/communication-services-*-events.md`):
  camelCase SMS data with `segmentCount`, `*CommunicationIdentifier` objects beside the legacy ids,
  `ChatParticipant*` events.

The seeds predate thread-level events, so `SEED` renders those as `CURRENT` does.

Per-event builders (`profile.chat_message_received(...)`) build one event; the action methods
(`profile.message_sent(...)`, ...) apply §6, who gets which event, and return every event of one API action.
Builders never change their inputs.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum

from commgrid.acs.sms_text import digits, segment_count
from commgrid.events.calling_shapes import NO_ID, CallEnding, CallParty, CallSnapshot, IncomingCallFacts, RecordingFile

_NS = "Microsoft.Communication."


class AcsEventType(StrEnum):
    """Every ACS event type commgrid emits (§5.2 and seed 004)."""

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
    """User-level chat events go once per recipient, thread-level once per thread (§6)."""

    SMS = "sms"
    USER = "user"
    THREAD = "thread"
    CALL = "call"
    PRESENCE = "presence"


@dataclass(frozen=True, slots=True)
class EventTypeInfo:
    event_type: AcsEventType
    level: Level
    subject: str  # the subject template (§5.2)
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
    """A thread as it is after the action. `version` is the epoch ms of its last change (§4)."""

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
    """`Outgoing_<yyyyMMddHHmmss><guid>` / `Incoming_...`, the samples' format (§2)."""
    return f"{direction}_{at.astimezone(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Emission:
    """Envelope inputs shared by the events of one API action."""

    topic: str
    event_time: datetime
    transaction_id: str = field(default_factory=new_transaction_id)
    new_id: Callable[[], str] = new_event_id


def resource_topic(subscription_id: str, resource_group: str, name: str) -> str:
    """The `topic` of a Communication Services resource (§5.1)."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Communication/communicationServices/{name}"
    )


def communication_identifier(raw_id: str) -> dict:
    """The CommunicationIdentifierModel of a raw id: `rawId` plus the kind's object (§4, §5.2). Every `8:` id
    is an ACS user here: commgrid issues no Teams identities."""
    if raw_id.startswith("4:"):
        return {"rawId": raw_id, "phoneNumber": {"value": raw_id[2:]}}
    if raw_id.startswith("8:"):
        return {"rawId": raw_id, "communicationUser": {"id": raw_id}}
    return {"rawId": raw_id}


def _kinded(raw_id: str) -> dict:
    """An identifier with `kind` first, as IncomingCall's `to` and `from` carry it (doc sample)."""
    model = communication_identifier(raw_id)
    kinds = [k for k in ("phoneNumber", "communicationUser") if k in model]
    kind = kinds[0] if kinds else "unknown"
    return {"kind": kind} | model


# --- Timestamps -----------------------------------------------------------------------------------


class Precision(Enum):
    """How a timestamp field is written. The service formats .NET-style with trailing zeros trimmed; the
    samples show whole seconds (SMS `eventTime`), milliseconds (chat compose/create/message-edit times, which
    match the epoch-ms ids and versions, and SMSReceived's `receivedTimestamp`) or 100 ns ticks (the rest)."""

    SECONDS = "seconds"
    MILLIS = "millis"  # trimmed like .NET: `.91Z`, `.14Z`, `.988Z`
    TICKS = "ticks"  # always 7 digits, the common case; Python has no 7th digit to trim


def format_timestamp(moment: datetime, precision: Precision, suffix: str = "Z") -> str:
    """`2020-09-18T00:22:14.9315918Z`-style text; `suffix` is `Z` or `+00:00` (thread-level samples)."""
    moment = moment.astimezone(UTC)
    fraction = {
        Precision.SECONDS: "",
        Precision.MILLIS: f"{moment.microsecond // 1000:03d}".rstrip("0"),
        Precision.TICKS: f"{moment.microsecond:06d}0",
    }[precision]
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "") + suffix


def _ms(moment: datetime, suffix: str = "Z") -> str:
    return format_timestamp(moment, Precision.MILLIS, suffix)


def _ticks(moment: datetime, suffix: str = "Z") -> str:
    return format_timestamp(moment, Precision.TICKS, suffix)


# Chat events write `type` capitalised; HTML shows as `RichText/Html` (§5.3).
_MESSAGE_TYPES = {"text": "Text", "html": "RichText/Html"}


def _message_type(rest_type: str) -> str:
    return _MESSAGE_TYPES.get(rest_type.lower(), rest_type)


def _others(users: Sequence[ChatUser], actor: ChatUser) -> list[ChatUser]:
    """Everyone but the actor, each once: user-level events exclude the event sender (§6)."""
    unique = {u.raw_id: u for u in users if u.raw_id != actor.raw_id}
    return list(unique.values())


# --- Profiles -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Move:
    """How one kind of participant change is named in each shape."""

    verb: str  # "added" | "removed": `addedBy`, `participantAdded`, subject `participantadded`, ...
    user_event: AcsEventType
    thread_event: AcsEventType
    legacy_event: AcsEventType


_ADDED = _Move(
    "added",
    _T.CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER,
    _T.CHAT_THREAD_PARTICIPANT_ADDED,
    _T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER,
)
_REMOVED = _Move(
    "removed",
    _T.CHAT_PARTICIPANT_REMOVED_FROM_THREAD_WITH_USER,
    _T.CHAT_THREAD_PARTICIPANT_REMOVED,
    _T.CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER,
)


class CurrentProfile:
    """Today's shapes (§5.2-§5.4, the current doc samples); `SeedProfile` overrides what the seeds show.

    Each public builder returns one Event Grid schema event; the action methods at the end return every event
    one API action emits, thread-level first (§6).
    """

    name = "current"
    thread_time_suffix = "+00:00"  # thread-level samples write offsets, user-level ones `Z` (§5.4)

    # Shared pieces --------------------------------------------------------------------------------

    def _event(
        self,
        em: Emission,
        event_type: AcsEventType,
        subject: str,
        data: dict,
        *,
        event_id: str | None = None,
        precision: Precision = Precision.TICKS,
    ) -> dict:
        """The eight-key envelope (§5.1); chat event ids are random GUIDs, SMS ones the message id."""
        return {
            "id": event_id or em.new_id(),
            "topic": em.topic,
            "subject": subject,
            "data": data,
            "eventType": str(event_type),
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": format_timestamp(em.event_time, precision),
        }

    def _who(self, legacy_key: str | None, prefix: str, user: ChatUser) -> dict:
        """A legacy raw-id field (when the shape has one) and its `*CommunicationIdentifier` twin (§5.2)."""
        ids = {legacy_key: user.raw_id} if legacy_key else {}
        return ids | {f"{prefix}CommunicationIdentifier": communication_identifier(user.raw_id)}

    def _participant(self, user: ChatUser) -> dict:
        identifier = communication_identifier(user.raw_id)
        return {"displayName": user.display_name or "", "participantCommunicationIdentifier": identifier}

    def _user_tail(self, em: Emission, thread_id: str, recipient: ChatUser) -> dict:
        tail = {"transactionId": em.transaction_id, "threadId": thread_id}
        return self._who("recipientId", "recipient", recipient) | tail

    def _thread_times(self, thread: ChatThreadSnapshot, sfx: str = "Z") -> dict:
        return {"createTime": _ms(thread.created_at, sfx), "version": thread.version}

    def _metadata(self, thread: ChatThreadSnapshot) -> dict:
        # In the schema (§5.2) but in no sample, whose threads have none: emitted only when set.
        return {"metadata": dict(thread.metadata)} if thread.metadata else {}

    # SMS ------------------------------------------------------------------------------------------

    def sms_received(self, em: Emission, sms: InboundSms) -> dict:
        count = sms.segment_count if sms.segment_count is not None else segment_count(sms.message)
        data = {
            "messageId": sms.message_id,
            "from": sms.from_,  # real payloads carry E.164 (§5.3)
            "to": sms.to,
            "message": sms.message,
            "receivedTimestamp": _ms(sms.received_at),
            "segmentCount": count,
        }
        return self._sms_event(em, AcsEventType.SMS_RECEIVED, sms.to, data, sms.message_id)

    def sms_delivery_report(self, em: Emission, report: SmsDeliveryReport) -> dict:
        data = {
            "messageId": report.message_id,
            "from": report.from_,
            "to": report.to,
            "deliveryStatus": report.status,
            "deliveryStatusDetails": report.status_details,
            "receivedTimestamp": _ticks(report.received_at),
            "deliveryAttempts": [
                self._attempt(a, "timestamp", "segmentsSucceeded", "segmentsFailed") for a in report.attempts
            ],
        } | ({"tag": report.tag} if report.tag is not None else {})
        return self._sms_event(
            em, AcsEventType.SMS_DELIVERY_REPORT_RECEIVED, report.from_, data, report.message_id
        )

    @staticmethod
    def _attempt(attempt: DeliveryAttempt, *keys: str) -> dict:
        values = (_ticks(attempt.timestamp), attempt.segments_succeeded, attempt.segments_failed)
        return dict(zip(keys, values, strict=True))

    def _sms_event(
        self, em: Emission, event_type: AcsEventType, acs_number: str, data: dict, msg_id: str
    ) -> dict:
        # In every SMS sample (seed 002, §5.4) the event id is the message id, the subject the ACS-owned
        # number without `+`, and `eventTime` whole seconds.
        subject = f"/phonenumber/{digits(acs_number)}"
        return self._event(em, event_type, subject, data, event_id=msg_id, precision=Precision.SECONDS)

    # Chat, user level -----------------------------------------------------------------------------

    def _message_data(self, message: ChatMessageSnapshot, body: bool = True) -> dict:
        data: dict[str, object] = {"messageBody": message.content} if body else {}
        data |= {"messageId": message.message_id} | ({"metadata": dict(message.metadata)} if body else {})
        data |= self._who("senderId", "sender", message.sender)
        return data | {
            "senderDisplayName": message.sender.display_name or "",
            "composeTime": _ms(message.created_at),
            "type": _message_type(message.type),
            "version": message.version,
        }

    def _user_message_event(
        self,
        em: Emission,
        event_type: AcsEventType,
        thread_id: str,
        message: ChatMessageSnapshot,
        recipient: ChatUser,
        head: dict,
    ) -> dict:
        body = event_type is not AcsEventType.CHAT_MESSAGE_DELETED
        data = head | self._message_data(message, body) | self._user_tail(em, thread_id, recipient)
        subject = f"thread/{thread_id}/sender/{message.sender.raw_id}/recipient/{recipient.raw_id}"
        return self._event(em, event_type, subject, data)

    def chat_message_received(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        return self._user_message_event(em, _T.CHAT_MESSAGE_RECEIVED, thread_id, message, recipient, {})

    def chat_message_edited(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        head = {"editTime": _ms(message.edited_at or em.event_time)}
        return self._user_message_event(em, _T.CHAT_MESSAGE_EDITED, thread_id, message, recipient, head)

    def chat_message_deleted(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        head = {"deleteTime": _ms(message.deleted_at or em.event_time)}
        return self._user_message_event(em, _T.CHAT_MESSAGE_DELETED, thread_id, message, recipient, head)

    def chat_thread_created_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, recipient: ChatUser
    ) -> dict:
        data = self._who("createdBy", "createdBy", thread.created_by)
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        data |= {
            "members": [
                {"displayName": p.display_name or "", "memberId": p.raw_id} for p in thread.participants
            ]
        }
        data |= {"participants": [self._participant(p) for p in thread.participants]}
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = (
            f"thread/{thread.thread_id}/createdBy/{thread.created_by.raw_id}/recipient/{recipient.raw_id}"
        )
        return self._event(em, AcsEventType.CHAT_THREAD_CREATED_WITH_USER, subject, data)

    def chat_thread_with_user_deleted(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, recipient: ChatUser
    ) -> dict:
        data = self._who("deletedBy", "deletedBy", change.by) | {"deleteTime": _ticks(change.at)}
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = f"thread/{thread.thread_id}/deletedBy/{change.by.raw_id}/recipient/{recipient.raw_id}"
        return self._event(em, AcsEventType.CHAT_THREAD_WITH_USER_DELETED, subject, data)

    def chat_thread_properties_updated_per_user(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, recipient: ChatUser
    ) -> dict:
        data = self._who("editedBy", "editedBy", change.by) | {"editTime": _ticks(change.at)}
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = f"thread/{thread.thread_id}/editedBy/{change.by.raw_id}/recipient/{recipient.raw_id}"
        return self._event(em, AcsEventType.CHAT_THREAD_PROPERTIES_UPDATED_PER_USER, subject, data)

    def participant_added_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: ChatUser, recipient: ChatUser
    ) -> dict:
        """ChatParticipantAddedToThreadWithUser (SEED: ChatMemberAddedToThreadWithUser)."""
        return self._user_move(em, thread, _ADDED, change, added, recipient)

    def participant_removed_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser, recipient: ChatUser
    ) -> dict:
        """ChatParticipantRemovedFromThreadWithUser (SEED: ChatMemberRemovedFromThreadWithUser)."""
        return self._user_move(em, thread, _REMOVED, change, removed, recipient)

    def _user_move(
        self,
        em: Emission,
        thread: ChatThreadSnapshot,
        move: _Move,
        change: Change,
        target: ChatUser,
        recipient: ChatUser,
    ) -> dict:
        # No legacy raw-id fields, and the recipient before createTime (§5.2 doc samples).
        verb = move.verb.title()
        data = {"time": _ticks(change.at)} | self._who(None, f"{move.verb}By", change.by)
        data |= {f"participant{verb}": self._participant(target)} | self._who(None, "recipient", recipient)
        data |= self._thread_times(thread) | {
            "transactionId": em.transaction_id,
            "threadId": thread.thread_id,
        }
        subject = f"thread/{thread.thread_id}/participant{verb}/{target.raw_id}/recipient/{recipient.raw_id}"
        return self._event(em, move.user_event, subject, data)

    # Chat, thread level: no legacy ids, offset timestamps (§5.2 doc samples) ----------------------

    def _thread_event(
        self, em: Emission, event_type: AcsEventType, thread: ChatThreadSnapshot, subject: str, data: dict
    ) -> dict:
        data |= self._thread_times(thread, self.thread_time_suffix)
        data |= {"threadId": thread.thread_id, "transactionId": em.transaction_id}
        return self._event(em, event_type, f"thread/{thread.thread_id}/{subject}", data)

    def chat_thread_created(self, em: Emission, thread: ChatThreadSnapshot) -> dict:
        data = self._who(None, "createdBy", thread.created_by)
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        data |= {"participants": [self._participant(p) for p in thread.participants]}
        subject = f"createdBy/{thread.created_by.raw_id}"
        return self._thread_event(em, AcsEventType.CHAT_THREAD_CREATED, thread, subject, data)

    def chat_thread_deleted(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> dict:
        data = self._who(None, "deletedBy", change.by) | {
            "deleteTime": _ticks(change.at, self.thread_time_suffix)
        }
        subject = f"deletedBy/{change.by.raw_id}"
        return self._thread_event(em, AcsEventType.CHAT_THREAD_DELETED, thread, subject, data)

    def chat_thread_properties_updated(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change
    ) -> dict:
        data = self._who(None, "editedBy", change.by) | {
            "editTime": _ticks(change.at, self.thread_time_suffix)
        }
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        subject = f"editedBy/{change.by.raw_id}"
        return self._thread_event(em, AcsEventType.CHAT_THREAD_PROPERTIES_UPDATED, thread, subject, data)

    def chat_thread_participant_added(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: ChatUser
    ) -> dict:
        return self._thread_move(em, thread, _ADDED, change, added)

    def chat_thread_participant_removed(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser
    ) -> dict:
        return self._thread_move(em, thread, _REMOVED, change, removed)

    def _thread_move(
        self, em: Emission, thread: ChatThreadSnapshot, move: _Move, change: Change, target: ChatUser
    ) -> dict:
        data = {"time": _ticks(change.at, self.thread_time_suffix)} | self._who(
            None, f"{move.verb}By", change.by
        )
        data |= {f"participant{move.verb.title()}": self._participant(target)}
        # The doc samples write this subject lower-case: `participantadded` (§5.2).
        subject = f"participant{move.verb}/{target.raw_id}"
        return self._thread_event(em, move.thread_event, thread, subject, data)

    def _thread_message_event(
        self, em: Emission, event_type: AcsEventType, thread_id: str, message: ChatMessageSnapshot, head: dict
    ) -> dict:
        # `version` is a string in these samples, an int in the user-level ones (§5.3).
        body = event_type is not AcsEventType.CHAT_MESSAGE_DELETED_IN_THREAD
        data = head | ({"messageBody": message.content} if body else {}) | {"messageId": message.message_id}
        data |= {"metadata": dict(message.metadata)} if body else {}
        data |= {"type": _message_type(message.type), "version": str(message.version)}
        data |= {"senderDisplayName": message.sender.display_name or ""} | self._who(
            None, "sender", message.sender
        )
        data |= {"composeTime": _ms(message.created_at, self.thread_time_suffix)}
        data |= {"threadId": thread_id, "transactionId": em.transaction_id}
        return self._event(em, event_type, f"thread/{thread_id}/sender/{message.sender.raw_id}", data)

    def chat_message_received_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        return self._thread_message_event(em, _T.CHAT_MESSAGE_RECEIVED_IN_THREAD, thread_id, message, {})

    def chat_message_edited_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        head = {"editTime": _ms(message.edited_at or em.event_time, self.thread_time_suffix)}
        return self._thread_message_event(em, _T.CHAT_MESSAGE_EDITED_IN_THREAD, thread_id, message, head)

    def chat_message_deleted_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        head = {"deleteTime": _ms(message.deleted_at or em.event_time, self.thread_time_suffix)}
        return self._thread_message_event(em, _T.CHAT_MESSAGE_DELETED_IN_THREAD, thread_id, message, head)

    # Actions: who gets which event (§6) -----------------------------------------------------------

    def thread_created(self, em: Emission, thread: ChatThreadSnapshot) -> list[dict]:
        """`POST /chat/threads`: ChatThreadCreated, then ChatThreadCreatedWithUser to each other member."""
        users = _others(thread.participants, thread.created_by)
        return [self.chat_thread_created(em, thread)] + [
            self.chat_thread_created_with_user(em, thread, r) for r in users
        ]

    def message_sent(
        self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot
    ) -> list[dict]:
        """`POST .../messages`: one thread-level event, then one per participant but the sender."""
        tid, users = thread.thread_id, _others(thread.participants, message.sender)
        return [self.chat_message_received_in_thread(em, tid, message)] + [
            self.chat_message_received(em, tid, message, r) for r in users
        ]

    def message_edited(
        self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot, editor: ChatUser
    ) -> list[dict]:
        tid, users = thread.thread_id, _others(thread.participants, editor)
        return [self.chat_message_edited_in_thread(em, tid, message)] + [
            self.chat_message_edited(em, tid, message, r) for r in users
        ]

    def message_deleted(
        self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot, deleter: ChatUser
    ) -> list[dict]:
        tid, users = thread.thread_id, _others(thread.participants, deleter)
        return [self.chat_message_deleted_in_thread(em, tid, message)] + [
            self.chat_message_deleted(em, tid, message, r) for r in users
        ]

    def thread_updated(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> list[dict]:
        users = _others(thread.participants, change.by)
        return [self.chat_thread_properties_updated(em, thread, change)] + [
            self.chat_thread_properties_updated_per_user(em, thread, change, r) for r in users
        ]

    def thread_deleted(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> list[dict]:
        users = _others(thread.participants, change.by)
        return [self.chat_thread_deleted(em, thread, change)] + [
            self.chat_thread_with_user_deleted(em, thread, change, r) for r in users
        ]

    def participants_added(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: Sequence[ChatUser]
    ) -> list[dict]:
        """Per added participant: a thread-level event, and one per member but the actor, the added user
        included (§6; `thread` already lists them)."""
        users = _others(thread.participants, change.by)
        return [
            event
            for user in added
            for event in [self.chat_thread_participant_added(em, thread, change, user)]
            + [self.participant_added_with_user(em, thread, change, user, r) for r in users]
        ]

    def participant_removed(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser
    ) -> list[dict]:
        """`thread` is after the removal; the removed user still hears of it (the add rule, mirrored, §6)."""
        users = _others([*thread.participants, removed], change.by)
        return [self.chat_thread_participant_removed(em, thread, change, removed)] + [
            self.participant_removed_with_user(em, thread, change, removed, r) for r in users
        ]

    # Calling and presence (learn.microsoft.com/azure/event-grid/communication-services-voice-video-events) ----
    # The 2022 doc samples (the page the seed links) give the shapes; CURRENT adds the schema's later fields
    # (`AzureCommunicationServices.json`): `endedBy`, `reason`, `callDurationInSeconds`, `userAgent`, the
    # recording's content/channel/format types and the IncomingCall's `customContext`.

    def _call_party(self, party: CallParty) -> dict:
        return {"communicationIdentifier": communication_identifier(party.raw_id), "role": party.role}

    def _call_base(self, call: CallSnapshot) -> dict:
        return {
            "startedBy": self._call_party(call.started_by),
            "serverCallId": call.server_call_id,
            "group": {"id": call.group_id or NO_ID},
            "room": {"id": call.room_id or NO_ID},
            "isTwoParty": call.is_two_party,
            "correlationId": call.correlation_id,
            "isRoomsCall": call.room_id is not None,
        }

    def call_started(self, em: Emission, call: CallSnapshot) -> dict:
        subject = f"call/{call.server_call_id}/startedBy/{call.started_by.raw_id}"
        return self._event(em, _T.CALL_STARTED, subject, self._call_base(call))

    def call_ended(self, em: Emission, call: CallSnapshot, ending: CallEnding) -> dict:
        data = {"durationOfCall": ending.duration_seconds} | self._call_base(call) | self._call_ending(ending)
        return self._event(em, _T.CALL_ENDED, f"call/{call.server_call_id}", data)

    def _call_ending(self, ending: CallEnding) -> dict:
        by = ending.ended_by
        return {
            "endedBy": {
                "communicationIdentifier": communication_identifier(by.raw_id) if by else None,
                "type": ending.ended_by_type,
                "name": by.display_name if by else "",
            },
            "reason": {"code": ending.code, "subCode": ending.sub_code, "phrase": ending.phrase},
            "callDurationInSeconds": ending.duration_seconds,
        }

    def call_participant_added(self, em: Emission, call: CallSnapshot, party: CallParty) -> dict:
        return self._call_participant(em, _T.CALL_PARTICIPANT_ADDED, call, party)

    def call_participant_removed(self, em: Emission, call: CallSnapshot, party: CallParty) -> dict:
        return self._call_participant(em, _T.CALL_PARTICIPANT_REMOVED, call, party)

    def _call_participant(self, em: Emission, event_type: AcsEventType, call: CallSnapshot, party: CallParty) -> dict:
        data = {"user": self._call_party(party), "displayName": party.display_name,
                "participantId": party.participant_id, "endpointType": party.user_agent}
        data |= self._participant_agent(party) | self._call_base(call)
        return self._event(em, event_type, f"call/{call.server_call_id}/participant/{party.raw_id}", data)

    def _participant_agent(self, party: CallParty) -> dict:
        return {"userAgent": party.user_agent}

    def incoming_call(self, em: Emission, facts: IncomingCallFacts) -> dict:
        data = {
            "to": _kinded(facts.recipient),
            "from": _kinded(facts.caller),
            "serverCallId": facts.server_call_id,
            "callerDisplayName": facts.caller_display_name,
            "incomingCallContext": facts.incoming_call_context,
            "correlationId": facts.correlation_id,
        } | self._incoming_extras(facts)
        return self._event(em, _T.INCOMING_CALL, f"/caller/{facts.caller}/recipient/{facts.recipient}", data)

    def _incoming_extras(self, facts: IncomingCallFacts) -> dict:
        return {"customContext": {"sipHeaders": dict(facts.sip_headers), "voipHeaders": dict(facts.voip_headers)}}

    def recording_file_status_updated(self, em: Emission, rec: RecordingFile) -> dict:
        chunks = [
            {"documentId": c.document_id, "index": c.index, "endReason": c.end_reason,
             "contentLocation": c.content_location, "metadataLocation": c.metadata_location,
             "deleteLocation": c.delete_location}
            for c in rec.chunks
        ]
        data = {
            "recordingStorageInfo": {"recordingChunks": chunks},
            "recordingStartTime": _ticks(rec.started_at),
            "recordingDurationMs": rec.duration_ms,
        } | self._recording_types(rec) | {"sessionEndReason": rec.session_end_reason}
        return self._event(em, _T.RECORDING_FILE_STATUS_UPDATED, self._recording_subject(rec), data)

    def _recording_types(self, rec: RecordingFile) -> dict:
        return {"recordingContentType": rec.content_type, "recordingChannelType": rec.channel_type,
                "recordingFormatType": rec.format_type}

    def _recording_subject(self, rec: RecordingFile) -> str:
        return f"/recording/call/{rec.call_id}/recordingId/{rec.recording_id}"

    def user_disconnected(self, em: Emission, raw_id: str) -> dict:
        data = {"userCommunicationIdentifier": communication_identifier(raw_id)}
        return self._event(em, _T.USER_DISCONNECTED, f"user/{raw_id}", data)


class SeedProfile(CurrentProfile):
    """The 2020 documentation samples (seeds 002 and 004), field for field."""

    name = "seed"

    def _who(self, legacy_key: str | None, prefix: str, user: ChatUser) -> dict:
        # The seeds predate `*CommunicationIdentifier` objects (Feb 2021, §5.3). Shapes without a legacy field
        # are the thread-level ones, absent from the seeds, which keep the CURRENT form.
        return {legacy_key: user.raw_id} if legacy_key else super()._who(legacy_key, prefix, user)

    def _metadata(self, thread: ChatThreadSnapshot) -> dict:
        return {}  # the seeds predate thread metadata

    # SMS: PascalCase (§5.3); `From` without `+`; `To` with it in delivery reports, without in received SMS.

    def sms_received(self, em: Emission, sms: InboundSms) -> dict:
        data = {
            "MessageId": sms.message_id,
            "From": digits(sms.from_),
            "To": digits(sms.to),
            "Message": sms.message,
            "ReceivedTimestamp": _ms(sms.received_at),
        }
        return self._sms_event(em, AcsEventType.SMS_RECEIVED, sms.to, data, sms.message_id)

    def sms_delivery_report(self, em: Emission, report: SmsDeliveryReport) -> dict:
        data = {
            "MessageId": report.message_id,
            "From": digits(report.from_),
            "To": report.to,
            "DeliveryStatus": report.status,
            "DeliveryStatusDetails": report.status_details,
            "ReceivedTimestamp": _ticks(report.received_at),
            "DeliveryAttempts": [
                self._attempt(a, "Timestamp", "SegmentsSucceeded", "SegmentsFailed") for a in report.attempts
            ],
        } | ({"Tag": report.tag} if report.tag is not None else {})
        return self._sms_event(
            em, AcsEventType.SMS_DELIVERY_REPORT_RECEIVED, report.from_, data, report.message_id
        )

    # Chat: no message `metadata`, `members` without `participants`, ChatMember* events.

    def _message_data(self, message: ChatMessageSnapshot, body: bool = True) -> dict:
        data = super()._message_data(message, body)
        data.pop("metadata", None)
        return data

    def chat_thread_created_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, recipient: ChatUser
    ) -> dict:
        event = super().chat_thread_created_with_user(em, thread, recipient)
        del event["data"]["participants"]
        return event

    def _user_move(
        self,
        em: Emission,
        thread: ChatThreadSnapshot,
        move: _Move,
        change: Change,
        target: ChatUser,
        recipient: ChatUser,
    ) -> dict:
        """ChatMemberAddedToThreadWithUser / ChatMemberRemovedFromThreadWithUser (seed 004)."""
        verb = move.verb.title()
        data: dict[str, object] = {"time": _ticks(change.at), f"{move.verb}By": change.by.raw_id}
        data |= {f"member{verb}": {"displayName": target.display_name or "", "memberId": target.raw_id}}
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = f"thread/{thread.thread_id}/member{verb}/{target.raw_id}/recipient/{recipient.raw_id}"
        return self._event(em, move.legacy_event, subject, data)

    # Calling: the 2022 voice and video events page, field for field.

    def _call_ending(self, ending: CallEnding) -> dict:
        return {}

    def call_ended(self, em: Emission, call: CallSnapshot, ending: CallEnding) -> dict:
        data = {"durationOfCall": ending.duration_seconds} | self._call_base(call)
        return self._event(em, _T.CALL_ENDED, f"call/{call.server_call_id}", data)

    def _participant_agent(self, party: CallParty) -> dict:
        return {}

    def _incoming_extras(self, facts: IncomingCallFacts) -> dict:
        return {}

    def _recording_types(self, rec: RecordingFile) -> dict:
        return {}

    def _recording_subject(self, rec: RecordingFile) -> str:
        return f"/recording/call/{rec.call_id}/serverCallId/{rec.server_call_id}/recordingId/{rec.recording_id}"


AcsEventProfile = CurrentProfile  # the strategy type: every profile is a CurrentProfile with overrides

CURRENT = CurrentProfile()
SEED = SeedProfile()
PROFILES: Mapping[str, AcsEventProfile] = {p.name: p for p in (SEED, CURRENT)}
DEFAULT_PROFILE = SEED


def profile_by_name(name: str) -> AcsEventProfile:
    """`seed` or `current` (case-insensitive); ValueError naming the choices otherwise."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown ACS event profile {name!r}; choose one of {', '.join(PROFILES)}") from None
