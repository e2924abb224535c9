"""The `current` ACS event profile: today's payloads (the current samples of
https://learn.microsoft.com/azure/event-grid/communication-services-chat-events and
communication-services-sms-events): camelCase SMS data with `segmentCount`, `*CommunicationIdentifier` objects
beside the legacy ids, `ChatParticipant*` events, and the calling fields the schema added after 2022 (`endedBy`,
`reason`, `callDurationInSeconds`, `userAgent`, the recording's content/channel/format types, the IncomingCall's
`customContext`)."""

from __future__ import annotations

from commgrid.acs.identifiers import communication_identifier
from commgrid.acs.sms_text import segment_count
from commgrid.events import acs
from commgrid.events import calling_shapes as calls
from commgrid.events.profiles.base import AcsEventProfile, Move, ticks


class CurrentProfile(AcsEventProfile):
    """Today's shapes, the current documentation samples."""

    name = "current"

    def _who(self, legacy_key: str | None, prefix: str, user: acs.ChatUser) -> dict:
        """A legacy raw-id field (when the shape has one) and its `*CommunicationIdentifier` twin (ACS events pages)."""
        ids = {legacy_key: user.raw_id} if legacy_key else {}
        return ids | self._identifier(prefix, user)

    def _metadata(self, thread: acs.ChatThreadSnapshot) -> dict:
        # In the schema (ACS events pages) but in no sample, whose threads have none: emitted only when set.
        return {"metadata": dict(thread.metadata)} if thread.metadata else {}

    def _message_metadata(self, message: acs.ChatMessageSnapshot) -> dict:
        return {"metadata": dict(message.metadata)}

    def _thread_participants(self, thread: acs.ChatThreadSnapshot) -> dict:
        return {"participants": [self._participant(p) for p in thread.participants]}

    def _received_data(self, sms: acs.InboundSms, data: dict) -> dict:
        # Real payloads carry E.164 numbers (wire-facts: shapes).
        count = sms.segment_count if sms.segment_count is not None else segment_count(sms.message)
        return data | {"segmentCount": count}

    def _report_data(self, report: acs.SmsDeliveryReport, data: dict) -> dict:
        return data

    def _user_move(self, em: acs.Emission, thread: acs.ChatThreadSnapshot, move: Move, change: acs.Change,
                   target: acs.ChatUser, recipient: acs.ChatUser) -> dict:
        # No legacy raw-id fields, and the recipient before createTime (chat events page samples).
        verb = move.verb.title()
        data = {"time": ticks(change.at)} | self._who(None, f"{move.verb}By", change.by)
        data |= {f"participant{verb}": self._participant(target)} | self._who(None, "recipient", recipient)
        data |= self._thread_times(thread) | {
            "transactionId": em.transaction_id,
            "threadId": thread.thread_id,
        }
        subject = acs.subject_of(move.user_event, thread.thread_id, target.raw_id, recipient.raw_id)
        return self._event(em, move.user_event, subject, data)

    def _call_ending(self, ending: calls.CallEnding) -> dict:
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

    def _participant_agent(self, party: calls.CallParty) -> dict:
        return {"userAgent": party.user_agent}

    def _incoming_extras(self, facts: calls.IncomingCallFacts) -> dict:
        return {"customContext": {"sipHeaders": dict(facts.sip_headers), "voipHeaders": dict(facts.voip_headers)}}

    def _recording_types(self, rec: calls.RecordingFile) -> dict:
        return {"recordingContentType": rec.content_type, "recordingChannelType": rec.channel_type,
                "recordingFormatType": rec.format_type}

    def _recording_subject(self, rec: calls.RecordingFile) -> str:
        return acs.subject_of(acs.AcsEventType.RECORDING_FILE_STATUS_UPDATED, rec.call_id, rec.recording_id)
