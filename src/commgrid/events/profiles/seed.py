"""The `seed` ACS event profile: the 2020 documentation samples (seeds 002 SMS and 004 chat) field for field,
PascalCase SMS data, raw-id chat fields (`senderId`, `createdBy`, `members`), `ChatMember*` events, and the
2022 voice and video events page. The seeds predate thread-level events, which this profile renders as the
current one does."""

from __future__ import annotations

from typing import Any

from commgrid.acs.sms_text import digits
from commgrid.events import acs
from commgrid.events import calling_shapes as calls
from commgrid.events.profiles.base import AcsEventProfile, Move, ticks


class SeedProfile(AcsEventProfile):
    """The 2020 documentation samples (seeds 002 and 004), field for field."""

    name = "seed"

    def _who(self, legacy_key: str | None, prefix: str, user: acs.ChatUser) -> dict:
        # The seeds predate `*CommunicationIdentifier` objects (Feb 2021, wire-facts: shapes). Shapes without a
        # legacy field are the thread-level ones, absent from the seeds, which keep the CURRENT form.
        return {legacy_key: user.raw_id} if legacy_key else self._identifier(prefix, user)

    def _metadata(self, thread: acs.ChatThreadSnapshot) -> dict:
        return {}  # the seeds predate thread metadata

    # Chat: no message `metadata`, `members` without `participants`, ChatMember* events.

    def _message_metadata(self, message: acs.ChatMessageSnapshot) -> dict:
        return {}

    def _thread_participants(self, thread: acs.ChatThreadSnapshot) -> dict:
        return {}

    # SMS: PascalCase (wire-facts: shapes); `From` without `+`; `To` with it in delivery reports, without in
    # received SMS.

    def _received_data(self, sms: acs.InboundSms, data: dict) -> dict:
        return _pascal(data | {"from": digits(sms.from_), "to": digits(sms.to)})

    def _report_data(self, report: acs.SmsDeliveryReport, data: dict) -> dict:
        return _pascal(data | {"from": digits(report.from_)})

    def _user_move(self, em: acs.Emission, thread: acs.ChatThreadSnapshot, move: Move, change: acs.Change,
                   target: acs.ChatUser, recipient: acs.ChatUser) -> dict:
        """ChatMemberAddedToThreadWithUser / ChatMemberRemovedFromThreadWithUser (seed 004)."""
        verb = move.verb.title()
        data: dict[str, object] = {"time": ticks(change.at), f"{move.verb}By": change.by.raw_id}
        data |= {f"member{verb}": {"displayName": target.display_name or "", "memberId": target.raw_id}}
        data |= self._thread_times(thread) | self._user_tail(em, thread.thread_id, recipient)
        subject = acs.subject_of(move.legacy_event, thread.thread_id, target.raw_id, recipient.raw_id)
        return self._event(em, move.legacy_event, subject, data)

    # Calling: the 2022 voice and video events page, field for field.

    def _call_ending(self, ending: calls.CallEnding) -> dict:
        return {}

    def _participant_agent(self, party: calls.CallParty) -> dict:
        return {}

    def _incoming_extras(self, facts: calls.IncomingCallFacts) -> dict:
        return {}

    def _recording_types(self, rec: calls.RecordingFile) -> dict:
        return {}

    def _recording_subject(self, rec: calls.RecordingFile) -> str:
        # The 2022 page's layout, with the server call id; the catalog holds today's.
        return f"/recording/call/{rec.call_id}/serverCallId/{rec.server_call_id}/recordingId/{rec.recording_id}"


def _pascal(value: Any) -> Any:
    """`value` with every object key capitalised (`deliveryAttempts` → `DeliveryAttempts`), order kept."""
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: _pascal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value
