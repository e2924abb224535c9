"""What the ACS event profiles share: the envelope, the builders whose shape has not changed, and the actions.

A profile renders commgrid's domain facts (`events/acs.py`) as the events ACS publishes to Event Grid;
`CurrentProfile` (`events/profiles/current.py`) and `SeedProfile` (`events/profiles/seed.py`) implement the
abstract hooks below where the shapes differ. Builders never change their inputs.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from commgrid.acs.identifiers import communication_identifier, identifier_model
from commgrid.acs.sms_text import digits
from commgrid.events import acs
from commgrid.events.acs import (
    AcsEventType,
    Change,
    ChatMessageSnapshot,
    ChatThreadSnapshot,
    ChatUser,
    Emission,
    subject_of,
)
from commgrid.events.calling_shapes import NO_ID, CallEnding, CallParty, CallSnapshot, IncomingCallFacts, RecordingFile
from commgrid.timestamps import Precision, format_timestamp

_T = AcsEventType


def millis(moment: datetime, suffix: str = "Z") -> str:
    return format_timestamp(moment, Precision.MILLIS, suffix)


def ticks(moment: datetime, suffix: str = "Z") -> str:
    return format_timestamp(moment, Precision.TICKS, suffix)


# Chat events write `type` capitalised; HTML shows as `RichText/Html` (wire-facts: shapes).
_MESSAGE_TYPES = {"text": "Text", "html": "RichText/Html"}


def message_type(rest_type: str) -> str:
    return _MESSAGE_TYPES.get(rest_type.lower(), rest_type)


def others(users: Sequence[ChatUser], actor: ChatUser) -> list[ChatUser]:
    """Everyone but the actor, each once: user-level events exclude the event sender (wire-facts: recipients)."""
    unique = {u.raw_id: u for u in users if u.raw_id != actor.raw_id}
    return list(unique.values())


@dataclass(frozen=True, slots=True)
class Move:
    """How one kind of participant change is named in each shape."""

    verb: str  # "added" | "removed": `addedBy`, `participantAdded`, subject `participantadded`, ...
    user_event: AcsEventType
    thread_event: AcsEventType
    legacy_event: AcsEventType


ADDED = Move(
    "added",
    _T.CHAT_PARTICIPANT_ADDED_TO_THREAD_WITH_USER,
    _T.CHAT_THREAD_PARTICIPANT_ADDED,
    _T.CHAT_MEMBER_ADDED_TO_THREAD_WITH_USER,
)
REMOVED = Move(
    "removed",
    _T.CHAT_PARTICIPANT_REMOVED_FROM_THREAD_WITH_USER,
    _T.CHAT_THREAD_PARTICIPANT_REMOVED,
    _T.CHAT_MEMBER_REMOVED_FROM_THREAD_WITH_USER,
)


class AcsEventProfile(abc.ABC):
    """What every profile shares: the envelope, the builders whose shape has not changed since 2020, and the
    actions, which apply who gets which event (wire-facts: recipients). Each public builder returns one Event
    Grid schema event; each action returns every event one API action emits, thread-level first. `CurrentProfile` and
    `SeedProfile` fill in the fields whose shape changed.
    """

    name: str
    thread_time_suffix = "+00:00"  # thread-level samples write offsets, user-level ones `Z` (ACS events pages)

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
        """The eight-key envelope (event-schema); chat event ids are random GUIDs, SMS ones the message id."""
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

    @abc.abstractmethod
    def _who(self, legacy_key: str | None, prefix: str, user: ChatUser) -> dict:
        """A user as the shape names it: a legacy raw-id field under `legacy_key` and/or its identifier object."""

    @staticmethod
    def _identifier(prefix: str, user: ChatUser) -> dict:
        return {f"{prefix}CommunicationIdentifier": communication_identifier(user.raw_id)}

    @abc.abstractmethod
    def _message_metadata(self, message: ChatMessageSnapshot) -> dict:
        """A message's `metadata` field, where the shape has one."""

    @abc.abstractmethod
    def _thread_participants(self, thread: ChatThreadSnapshot) -> dict:
        """ChatThreadCreatedWithUser's `participants`, where the shape has them."""

    def _participant(self, user: ChatUser) -> dict:
        identifier = communication_identifier(user.raw_id)
        return {"displayName": user.display_name or "", "participantCommunicationIdentifier": identifier}

    def _user_tail(self, em: Emission, thread_id: str, recipient: ChatUser) -> dict:
        tail = {"transactionId": em.transaction_id, "threadId": thread_id}
        return self._who("recipientId", "recipient", recipient) | tail

    def _thread_times(self, thread: ChatThreadSnapshot, sfx: str = "Z") -> dict:
        return {"createTime": millis(thread.created_at, sfx), "version": thread.version}

    @abc.abstractmethod
    def _metadata(self, thread: ChatThreadSnapshot) -> dict:
        """A thread's `metadata` field, where the shape has one."""

    # SMS ------------------------------------------------------------------------------------------

    def sms_received(self, em: Emission, sms: acs.InboundSms) -> dict:
        data = {"messageId": sms.message_id, "from": sms.from_, "to": sms.to, "message": sms.message,
                "receivedTimestamp": millis(sms.received_at)}
        return self._sms_event(em, AcsEventType.SMS_RECEIVED, sms.to, self._received_data(sms, data), sms.message_id)

    def sms_delivery_report(self, em: Emission, report: acs.SmsDeliveryReport) -> dict:
        data = {"messageId": report.message_id, "from": report.from_, "to": report.to, "deliveryStatus": report.status,
                "deliveryStatusDetails": report.status_details, "receivedTimestamp": ticks(report.received_at),
                "deliveryAttempts": [self._attempt(a) for a in report.attempts]}
        data |= {"tag": report.tag} if report.tag is not None else {}
        event_type = AcsEventType.SMS_DELIVERY_REPORT_RECEIVED
        return self._sms_event(em, event_type, report.from_, self._report_data(report, data), report.message_id)

    @abc.abstractmethod
    def _received_data(self, sms: acs.InboundSms, data: dict) -> dict:
        """SMSReceived's `data` in this shape, from today's fields (`data`, camelCase)."""

    @abc.abstractmethod
    def _report_data(self, report: acs.SmsDeliveryReport, data: dict) -> dict:
        """SMSDeliveryReportReceived's `data` in this shape, from today's fields (`data`, camelCase)."""

    @staticmethod
    def _attempt(attempt: acs.DeliveryAttempt) -> dict:
        return {"timestamp": ticks(attempt.timestamp), "segmentsSucceeded": attempt.segments_succeeded,
                "segmentsFailed": attempt.segments_failed}

    def _sms_event(
        self, em: Emission, event_type: AcsEventType, acs_number: str, data: dict, msg_id: str
    ) -> dict:
        # In every SMS sample (seed 002, ACS events pages) the event id is the message id, the subject the ACS-owned
        # number without `+`, and `eventTime` whole seconds.
        subject = subject_of(event_type, digits(acs_number))
        return self._event(em, event_type, subject, data, event_id=msg_id, precision=Precision.SECONDS)

    # Chat, user level -----------------------------------------------------------------------------

    def _message_data(self, message: ChatMessageSnapshot, body: bool = True) -> dict:
        data = {"messageBody": message.content} if body else {}
        data |= {"messageId": message.message_id} | (self._message_metadata(message) if body else {})
        data |= self._who("senderId", "sender", message.sender)
        return data | {
            "senderDisplayName": message.sender.display_name or "",
            "composeTime": millis(message.created_at),
            "type": message_type(message.type),
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
        subject = subject_of(event_type, thread_id, message.sender.raw_id, recipient.raw_id)
        return self._event(em, event_type, subject, data)

    def chat_message_received(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        return self._user_message_event(em, _T.CHAT_MESSAGE_RECEIVED, thread_id, message, recipient, {})

    def chat_message_edited(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        head = {"editTime": millis(message.edited_at or em.event_time)}
        return self._user_message_event(em, _T.CHAT_MESSAGE_EDITED, thread_id, message, recipient, head)

    def chat_message_deleted(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot, recipient: ChatUser
    ) -> dict:
        head = {"deleteTime": millis(message.deleted_at or em.event_time)}
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
        data |= self._thread_participants(thread)
        event_type = AcsEventType.CHAT_THREAD_CREATED_WITH_USER
        return self._user_thread_event(em, event_type, thread, thread.created_by, recipient, data)

    def chat_thread_with_user_deleted(self, em: Emission, thread: ChatThreadSnapshot, change: Change,
                                      recipient: ChatUser) -> dict:
        data = self._who("deletedBy", "deletedBy", change.by) | {"deleteTime": ticks(change.at)}
        event_type = AcsEventType.CHAT_THREAD_WITH_USER_DELETED
        return self._user_thread_event(em, event_type, thread, change.by, recipient, data)

    def chat_thread_properties_updated_per_user(self, em: Emission, thread: ChatThreadSnapshot, change: Change,
                                                recipient: ChatUser) -> dict:
        data = self._who("editedBy", "editedBy", change.by) | {"editTime": ticks(change.at)}
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        event_type = AcsEventType.CHAT_THREAD_PROPERTIES_UPDATED_PER_USER
        return self._user_thread_event(em, event_type, thread, change.by, recipient, data)

    def _user_thread_event(self, em: Emission, event_type: AcsEventType, thread: ChatThreadSnapshot, actor: ChatUser,
                           recipient: ChatUser, data: dict) -> dict:
        """A user-level thread event: `data`, then the thread's times and the recipient's tail."""
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = subject_of(event_type, thread.thread_id, actor.raw_id, recipient.raw_id)
        return self._event(em, event_type, subject, data)

    def participant_added_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: ChatUser, recipient: ChatUser
    ) -> dict:
        """ChatParticipantAddedToThreadWithUser (SEED: ChatMemberAddedToThreadWithUser)."""
        return self._user_move(em, thread, ADDED, change, added, recipient)

    def participant_removed_with_user(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser, recipient: ChatUser
    ) -> dict:
        """ChatParticipantRemovedFromThreadWithUser (SEED: ChatMemberRemovedFromThreadWithUser)."""
        return self._user_move(em, thread, REMOVED, change, removed, recipient)

    @abc.abstractmethod
    def _user_move(self, em: Emission, thread: ChatThreadSnapshot, move: Move, change: Change, target: ChatUser,
                   recipient: ChatUser) -> dict:
        """A user-level participant added/removed event."""

    # Chat, thread level: no legacy ids, offset timestamps (chat events page samples) ----------------------

    def _thread_event(
        self, em: Emission, event_type: AcsEventType, thread: ChatThreadSnapshot, actor: ChatUser, data: dict
    ) -> dict:
        data |= self._thread_times(thread, self.thread_time_suffix)
        data |= {"threadId": thread.thread_id, "transactionId": em.transaction_id}
        return self._event(em, event_type, subject_of(event_type, thread.thread_id, actor.raw_id), data)

    def chat_thread_created(self, em: Emission, thread: ChatThreadSnapshot) -> dict:
        data = self._who(None, "createdBy", thread.created_by)
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        data |= {"participants": [self._participant(p) for p in thread.participants]}
        return self._thread_event(em, AcsEventType.CHAT_THREAD_CREATED, thread, thread.created_by, data)

    def chat_thread_deleted(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> dict:
        data = self._who(None, "deletedBy", change.by) | {
            "deleteTime": ticks(change.at, self.thread_time_suffix)
        }
        return self._thread_event(em, AcsEventType.CHAT_THREAD_DELETED, thread, change.by, data)

    def chat_thread_properties_updated(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change
    ) -> dict:
        data = self._who(None, "editedBy", change.by) | {
            "editTime": ticks(change.at, self.thread_time_suffix)
        }
        data |= {"properties": {"topic": thread.topic}} | self._metadata(thread)
        return self._thread_event(em, AcsEventType.CHAT_THREAD_PROPERTIES_UPDATED, thread, change.by, data)

    def chat_thread_participant_added(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: ChatUser
    ) -> dict:
        return self._thread_move(em, thread, ADDED, change, added)

    def chat_thread_participant_removed(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser
    ) -> dict:
        return self._thread_move(em, thread, REMOVED, change, removed)

    def _thread_move(
        self, em: Emission, thread: ChatThreadSnapshot, move: Move, change: Change, target: ChatUser
    ) -> dict:
        data = {"time": ticks(change.at, self.thread_time_suffix)} | self._who(
            None, f"{move.verb}By", change.by
        )
        data |= {f"participant{move.verb.title()}": self._participant(target)}
        # The doc samples write this subject lower-case: `participantadded` (ACS events pages).
        return self._thread_event(em, move.thread_event, thread, target, data)

    def _thread_message_event(
        self, em: Emission, event_type: AcsEventType, thread_id: str, message: ChatMessageSnapshot, head: dict
    ) -> dict:
        # `version` is a string in these samples, an int in the user-level ones (wire-facts: shapes).
        body = event_type is not AcsEventType.CHAT_MESSAGE_DELETED_IN_THREAD
        data = head | ({"messageBody": message.content} if body else {}) | {"messageId": message.message_id}
        data |= {"metadata": dict(message.metadata)} if body else {}
        data |= {"type": message_type(message.type), "version": str(message.version)}
        data |= {"senderDisplayName": message.sender.display_name or ""} | self._who(
            None, "sender", message.sender
        )
        data |= {"composeTime": millis(message.created_at, self.thread_time_suffix)}
        data |= {"threadId": thread_id, "transactionId": em.transaction_id}
        return self._event(em, event_type, subject_of(event_type, thread_id, message.sender.raw_id), data)

    def chat_message_received_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        return self._thread_message_event(em, _T.CHAT_MESSAGE_RECEIVED_IN_THREAD, thread_id, message, {})

    def chat_message_edited_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        head = {"editTime": millis(message.edited_at or em.event_time, self.thread_time_suffix)}
        return self._thread_message_event(em, _T.CHAT_MESSAGE_EDITED_IN_THREAD, thread_id, message, head)

    def chat_message_deleted_in_thread(
        self, em: Emission, thread_id: str, message: ChatMessageSnapshot
    ) -> dict:
        head = {"deleteTime": millis(message.deleted_at or em.event_time, self.thread_time_suffix)}
        return self._thread_message_event(em, _T.CHAT_MESSAGE_DELETED_IN_THREAD, thread_id, message, head)

    # Actions: who gets which event (wire-facts: recipients) ------------------------------------------

    def thread_created(self, em: Emission, thread: ChatThreadSnapshot) -> list[dict]:
        """`POST /chat/threads`: ChatThreadCreated, then ChatThreadCreatedWithUser to each other member."""
        users = others(thread.participants, thread.created_by)
        return [self.chat_thread_created(em, thread),
                *(self.chat_thread_created_with_user(em, thread, r) for r in users)]

    def message_sent(self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot) -> list[dict]:
        """`POST .../messages`: one thread-level event, then one per participant but the sender."""
        tid, users = thread.thread_id, others(thread.participants, message.sender)
        return [self.chat_message_received_in_thread(em, tid, message),
                *(self.chat_message_received(em, tid, message, r) for r in users)]

    def message_edited(self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot,
                       editor: ChatUser) -> list[dict]:
        tid, users = thread.thread_id, others(thread.participants, editor)
        return [self.chat_message_edited_in_thread(em, tid, message),
                *(self.chat_message_edited(em, tid, message, r) for r in users)]

    def message_deleted(self, em: Emission, thread: ChatThreadSnapshot, message: ChatMessageSnapshot,
                        deleter: ChatUser) -> list[dict]:
        tid, users = thread.thread_id, others(thread.participants, deleter)
        return [self.chat_message_deleted_in_thread(em, tid, message),
                *(self.chat_message_deleted(em, tid, message, r) for r in users)]

    def thread_updated(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> list[dict]:
        users = others(thread.participants, change.by)
        return [self.chat_thread_properties_updated(em, thread, change),
                *(self.chat_thread_properties_updated_per_user(em, thread, change, r) for r in users)]

    def thread_deleted(self, em: Emission, thread: ChatThreadSnapshot, change: Change) -> list[dict]:
        users = others(thread.participants, change.by)
        return [self.chat_thread_deleted(em, thread, change),
                *(self.chat_thread_with_user_deleted(em, thread, change, r) for r in users)]

    def participants_added(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, added: Sequence[ChatUser]
    ) -> list[dict]:
        """Per added participant: a thread-level event, and one per member but the actor, the added user
        included (wire-facts: recipients; `thread` already lists them)."""
        users = others(thread.participants, change.by)
        return [
            event
            for user in added
            for event in [self.chat_thread_participant_added(em, thread, change, user)]
            + [self.participant_added_with_user(em, thread, change, user, r) for r in users]
        ]

    def participant_removed(
        self, em: Emission, thread: ChatThreadSnapshot, change: Change, removed: ChatUser
    ) -> list[dict]:
        """`thread` is after the removal; the removed user still hears of it (the add rule, mirrored,
        wire-facts: recipients)."""
        users = others([*thread.participants, removed], change.by)
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
        subject = subject_of(_T.CALL_STARTED, call.server_call_id, call.started_by.raw_id)
        return self._event(em, _T.CALL_STARTED, subject, self._call_base(call))

    def call_ended(self, em: Emission, call: CallSnapshot, ending: CallEnding) -> dict:
        data = {"durationOfCall": ending.duration_seconds} | self._call_base(call) | self._call_ending(ending)
        return self._event(em, _T.CALL_ENDED, subject_of(_T.CALL_ENDED, call.server_call_id), data)

    @abc.abstractmethod
    def _call_ending(self, ending: CallEnding) -> dict:
        """CallEnded's fields beyond `durationOfCall` and the call."""

    def call_participant_added(self, em: Emission, call: CallSnapshot, party: CallParty) -> dict:
        return self._call_participant(em, _T.CALL_PARTICIPANT_ADDED, call, party)

    def call_participant_removed(self, em: Emission, call: CallSnapshot, party: CallParty) -> dict:
        return self._call_participant(em, _T.CALL_PARTICIPANT_REMOVED, call, party)

    def _call_participant(self, em: Emission, event_type: AcsEventType, call: CallSnapshot, party: CallParty) -> dict:
        data = {"user": self._call_party(party), "displayName": party.display_name,
                "participantId": party.participant_id, "endpointType": party.user_agent}
        data |= self._participant_agent(party) | self._call_base(call)
        return self._event(em, event_type, subject_of(event_type, call.server_call_id, party.raw_id), data)

    @abc.abstractmethod
    def _participant_agent(self, party: CallParty) -> dict:
        """A call participant's user-agent field, where the shape has one."""

    def incoming_call(self, em: Emission, facts: IncomingCallFacts) -> dict:
        data = {
            "to": identifier_model(facts.recipient),
            "from": identifier_model(facts.caller),
            "serverCallId": facts.server_call_id,
            "callerDisplayName": facts.caller_display_name,
            "incomingCallContext": facts.incoming_call_context,
            "correlationId": facts.correlation_id,
        } | self._incoming_extras(facts)
        return self._event(em, _T.INCOMING_CALL, subject_of(_T.INCOMING_CALL, facts.caller, facts.recipient), data)

    @abc.abstractmethod
    def _incoming_extras(self, facts: IncomingCallFacts) -> dict:
        """IncomingCall's fields beyond the caller, callee and context."""

    def recording_file_status_updated(self, em: Emission, rec: RecordingFile) -> dict:
        chunks = [
            {"documentId": c.document_id, "index": c.index, "endReason": c.end_reason,
             "contentLocation": c.content_location, "metadataLocation": c.metadata_location,
             "deleteLocation": c.delete_location}
            for c in rec.chunks
        ]
        data = {
            "recordingStorageInfo": {"recordingChunks": chunks},
            "recordingStartTime": ticks(rec.started_at),
            "recordingDurationMs": rec.duration_ms,
        } | self._recording_types(rec) | {"sessionEndReason": rec.session_end_reason}
        return self._event(em, _T.RECORDING_FILE_STATUS_UPDATED, self._recording_subject(rec), data)

    @abc.abstractmethod
    def _recording_types(self, rec: RecordingFile) -> dict:
        """A recording's content/channel/format types, where the shape has them."""

    @abc.abstractmethod
    def _recording_subject(self, rec: RecordingFile) -> str:
        """RecordingFileStatusUpdated's subject."""

    def user_disconnected(self, em: Emission, raw_id: str) -> dict:
        data = {"userCommunicationIdentifier": communication_identifier(raw_id)}
        return self._event(em, _T.USER_DISCONNECTED, subject_of(_T.USER_DISCONNECTED, raw_id), data)
