"""The `current` ACS event profile: today's payloads (the current samples of
https://learn.microsoft.com/azure/event-grid/communication-services-chat-events and
communication-services-sms-events): camelCase SMS data with `segmentCount`, `*CommunicationIdentifier` objects
beside the legacy ids, `ChatParticipant*` events, and the calling fields the schema added after 2022 (`endedBy`,
`reason`, `callDurationInSeconds`, `userAgent`, the recording's content/channel/format types, the IncomingCall's
`customContext`)."""

from __future__ import annotations

from commgrid.acs.identifiers import communication_identifier
from commgrid.acs.sms_text import segment_count
from commgrid.events.acs import (
    AcsEventType,
    Change,
    ChatMessageSnapshot,
    ChatThreadSnapshot,
    ChatUser,
    Emission,
    InboundSms,
    SmsDeliveryReport,
    subject_of,
)
from commgrid.events.calling_shapes import CallEnding, CallParty, IncomingCallFacts, RecordingFile
from commgrid.events.profiles.base import AcsEventProfile, Move, millis, ticks


class CurrentProfile(AcsEventProfile):
    """Today's shapes, the current documentation samples."""

    name = "current"

    def _who(self, legacy_key: str | None, prefix: str, user: ChatUser) -> dict:
        """A legacy raw-id field (when the shape has one) and its `*CommunicationIdentifier` twin (ACS events pages)."""
        ids = {legacy_key: user.raw_id} if legacy_key else {}
        return ids | self._identifier(prefix, user)

    def _metadata(self, thread: ChatThreadSnapshot) -> dict:
        # In the schema (ACS events pages) but in no sample, whose threads have none: emitted only when set.
        return {"metadata": dict(thread.metadata)} if thread.metadata else {}

    def _message_metadata(self, message: ChatMessageSnapshot) -> dict:
        return {"metadata": dict(message.metadata)}

    def _thread_participants(self, thread: ChatThreadSnapshot) -> dict:
        return {"participants": [self._participant(p) for p in thread.participants]}

    def sms_received(self, em: Emission, sms: InboundSms) -> dict:
        count = sms.segment_count if sms.segment_count is not None else segment_count(sms.message)
        data = {
            "messageId": sms.message_id,
            "from": sms.from_,  # real payloads carry E.164 (wire-facts: shapes)
            "to": sms.to,
            "message": sms.message,
            "receivedTimestamp": millis(sms.received_at),
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
            "receivedTimestamp": ticks(report.received_at),
            "deliveryAttempts": [
                self._attempt(a, "timestamp", "segmentsSucceeded", "segmentsFailed") for a in report.attempts
            ],
        } | ({"tag": report.tag} if report.tag is not None else {})
        return self._sms_event(
            em, AcsEventType.SMS_DELIVERY_REPORT_RECEIVED, report.from_, data, report.message_id
        )

    def _user_move(
        self,
        em: Emission,
        thread: ChatThreadSnapshot,
        move: Move,
        change: Change,
        target: ChatUser,
        recipient: ChatUser,
    ) -> dict:
        # No legacy raw-id fields, and the recipient before createTime (chat events page samples).
        verb = move.verb.title()
        data = {"time": ticks(change.at)} | self._who(None, f"{move.verb}By", change.by)
        data |= {f"participant{verb}": self._participant(target)} | self._who(None, "recipient", recipient)
        data |= self._thread_times(thread) | {
            "transactionId": em.transaction_id,
            "threadId": thread.thread_id,
        }
        subject = subject_of(move.user_event, thread.thread_id, target.raw_id, recipient.raw_id)
        return self._event(em, move.user_event, subject, data)

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

    def _participant_agent(self, party: CallParty) -> dict:
        return {"userAgent": party.user_agent}

    def _incoming_extras(self, facts: IncomingCallFacts) -> dict:
        return {"customContext": {"sipHeaders": dict(facts.sip_headers), "voipHeaders": dict(facts.voip_headers)}}

    def _recording_types(self, rec: RecordingFile) -> dict:
        return {"recordingContentType": rec.content_type, "recordingChannelType": rec.channel_type,
                "recordingFormatType": rec.format_type}

    def _recording_subject(self, rec: RecordingFile) -> str:
        return subject_of(AcsEventType.RECORDING_FILE_STATUS_UPDATED, rec.call_id, rec.recording_id)
