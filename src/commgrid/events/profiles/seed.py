"""The `seed` ACS event profile: the 2020 documentation samples (seeds 002 SMS and 004 chat) field for field,
PascalCase SMS data, raw-id chat fields (`senderId`, `createdBy`, `members`), `ChatMember*` events, and the
2022 voice and video events page. The seeds predate thread-level events, which this profile renders as the
current one does."""

from __future__ import annotations

from commgrid.acs.sms_text import digits
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


class SeedProfile(AcsEventProfile):
    """The 2020 documentation samples (seeds 002 and 004), field for field."""

    name = "seed"

    def _who(self, legacy_key: str | None, prefix: str, user: ChatUser) -> dict:
        # The seeds predate `*CommunicationIdentifier` objects (Feb 2021, wire-facts: shapes). Shapes without a
        # legacy field are the thread-level ones, absent from the seeds, which keep the CURRENT form.
        return {legacy_key: user.raw_id} if legacy_key else self._identifier(prefix, user)

    def _metadata(self, thread: ChatThreadSnapshot) -> dict:
        return {}  # the seeds predate thread metadata

    # Chat: no message `metadata`, `members` without `participants`, ChatMember* events.

    def _message_metadata(self, message: ChatMessageSnapshot) -> dict:
        return {}

    def _thread_participants(self, thread: ChatThreadSnapshot) -> dict:
        return {}

    # SMS: PascalCase (wire-facts: shapes); `From` without `+`; `To` with it in delivery reports, without in
    # received SMS.

    def sms_received(self, em: Emission, sms: InboundSms) -> dict:
        data = {
            "MessageId": sms.message_id,
            "From": digits(sms.from_),
            "To": digits(sms.to),
            "Message": sms.message,
            "ReceivedTimestamp": millis(sms.received_at),
        }
        return self._sms_event(em, AcsEventType.SMS_RECEIVED, sms.to, data, sms.message_id)

    def sms_delivery_report(self, em: Emission, report: SmsDeliveryReport) -> dict:
        data = {
            "MessageId": report.message_id,
            "From": digits(report.from_),
            "To": report.to,
            "DeliveryStatus": report.status,
            "DeliveryStatusDetails": report.status_details,
            "ReceivedTimestamp": ticks(report.received_at),
            "DeliveryAttempts": [
                self._attempt(a, "Timestamp", "SegmentsSucceeded", "SegmentsFailed") for a in report.attempts
            ],
        } | ({"Tag": report.tag} if report.tag is not None else {})
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
        """ChatMemberAddedToThreadWithUser / ChatMemberRemovedFromThreadWithUser (seed 004)."""
        verb = move.verb.title()
        data = {"time": ticks(change.at), f"{move.verb}By": change.by.raw_id}
        data |= {f"member{verb}": {"displayName": target.display_name or "", "memberId": target.raw_id}}
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = subject_of(move.legacy_event, thread.thread_id, target.raw_id, recipient.raw_id)
        return self._event(em, move.legacy_event, subject, data)

    # Calling: the 2022 voice and video events page, field for field.

    def _call_ending(self, ending: CallEnding) -> dict:
        return {}

    def _participant_agent(self, party: CallParty) -> dict:
        return {}

    def _incoming_extras(self, facts: IncomingCallFacts) -> dict:
        return {}

    def _recording_types(self, rec: RecordingFile) -> dict:
        return {}

    def _recording_subject(self, rec: RecordingFile) -> str:
        # The 2022 page's layout, with the server call id; the catalog holds today's.
        return f"/recording/call/{rec.call_id}/serverCallId/{rec.server_call_id}/recordingId/{rec.recording_id}"
