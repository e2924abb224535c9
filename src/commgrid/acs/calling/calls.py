"""Call lifecycle: incoming calls and answer/reject/redirect, outbound calls, invitations and how they end
(answered, declined, timed out, a transfer accepted), leaving, hang-up and the end of a call, with the Event Grid
and callback events each step emits. Adding, removing and transferring participants, and group calls, are in
`participants.py`.

Rules commgrid follows where documentation is thin:
- a call ends when fewer than two members remain (the app's connection counts as one), except group and
  rooms calls, which end when the last participant leaves;
- calling Event Grid events (CallStarted, CallParticipantAdded/Removed, CallEnded) describe every participant
  but the app itself, PSTN callers included, so an IVR's calls can be observed end to end;
- `UserDisconnected` is emitted when a Communication Services user's last call connection closes (commgrid has
  no real-time chat connections).
"""

from __future__ import annotations

from typing import Any

from commgrid.acs.calling import durations
from commgrid.acs.calling.ids import (
    InvalidCallRequest,
    call_of_context,
    incoming_call_context,
    new_call_connection_id,
    new_server_call_id,
)
from commgrid.acs.calling.model import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    GROUP_CALLS,
    PARTY_SETTINGS,
    RINGING,
    TRANSFERRING,
    AlreadyHandled,
    CallNotFound,
    CallRepository,
    Effects,
    NotEstablished,
)
from commgrid.acs.calling.notify import (
    CONVERSATION_ENDED,
    DECLINED,
    ENDED_BY_API,
    NO_ANSWER,
    TRANSFERRED,
    CallNotifier,
    connected,
)
from commgrid.acs.identifiers import identifier_model, is_phone, is_user, phone_raw_id
from commgrid.acs.phone_numbers import PhoneNumbers
from commgrid.acs.resource import IDENTITIES, CommunicationResource
from commgrid.errors import NotFound
from commgrid.events.calling_shapes import CallEnding, IncomingCallFacts
from commgrid.store.base import Document, Missing

SERVER_CALLS = "acs.calls.serverCallIds"  # key: serverCallId → the call's key


class CallLifecycle:
    """Calls from ringing to ended; the media and recording operations build on it."""

    def __init__(self, resource: CommunicationResource, repo: CallRepository) -> None:
        self.resource = resource
        self.repo = repo
        self.notify = CallNotifier(resource)
        self.numbers = PhoneNumbers(resource.store)

    # Lookups ---------------------------------------------------------------------------------------------
    async def connection(self, call_id: str) -> dict[str, Any]:
        """A call the app is connected to (what the SDK's call connection addresses); 404 otherwise."""
        call = await self.repo.get(call_id)
        if not call.get("app") or call["state"] == DISCONNECTED:
            raise CallNotFound(call_id)
        return call

    async def by_server_call_id(self, server_call_id: str) -> dict[str, Any]:
        try:
            index = await self.resource.store.get_document(SERVER_CALLS, server_call_id)
        except Missing:
            raise CallNotFound(server_call_id) from None
        return await self.repo.get(index.value["callId"])

    async def by_group(self, group_id: str) -> dict[str, Any]:
        try:
            index = await self.resource.store.get_document(GROUP_CALLS, group_id)
        except Missing:
            raise CallNotFound(group_id) from None
        return await self.repo.get(index.value["callId"])

    def props(self, call: dict[str, Any]) -> dict[str, Any]:
        """CallConnectionProperties."""
        app = call.get("app") or {}
        others = [p for p in call["parties"] if p["state"] in ("ringing", "connected")]
        props: dict[str, Any] = {
            "callConnectionId": call["id"], "serverCallId": call["serverCallId"],
            "targets": [identifier_model(p["rawId"]) for p in others],
            "callConnectionState": call["state"], "callbackUri": app.get("callbackUri"),
            "correlationId": call["correlationId"],
        }
        if app.get("sourceCallerIdNumber"):
            props["sourceCallerIdNumber"] = {"value": app["sourceCallerIdNumber"]}
            props["source"] = identifier_model(phone_raw_id(app['sourceCallerIdNumber']))
        if app.get("sourceDisplayName"):
            props["sourceDisplayName"] = app["sourceDisplayName"]
        if app.get("answeredBy"):
            props["answeredBy"] = {"rawId": app["answeredBy"], "communicationUser": {"id": app["answeredBy"]}}
        return props

    # Creating calls --------------------------------------------------------------------------------------
    def new_call(self, kind: str, started_by: str, state: str) -> dict[str, Any]:
        return {"id": new_call_connection_id(), "serverCallId": new_server_call_id(),
                "correlationId": new_call_connection_id(), "kind": kind, "state": state, "live": True,
                "app": None, "startedBy": started_by, "parties": [], "sequence": 0, "startedAt": None,
                "createdAt": self.resource.clock(), "media": None, "mediaQueue": [], "recordings": {}}

    def new_party(self, raw_id: str, state: str, display_name: str = "", **extra: Any) -> dict[str, Any]:
        return {"rawId": raw_id, "displayName": display_name, "participantId": new_call_connection_id(),
                "state": state, "isMuted": False, "isOnHold": False} | extra

    async def index(self, call: dict[str, Any]) -> None:
        await self.resource.store.put_document(Document(SERVER_CALLS, call["serverCallId"], {"callId": call["id"]}))

    async def dial(self, caller: str, recipient: str, display_name: str = "",
                   sip_headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A simulated party calls an owned number or a user: IncomingCall to the resource's subscribers."""
        await self._check_recipient(recipient)
        call = self.new_call("twoParty", caller, RINGING)
        call["recipient"] = recipient
        call["parties"].append(self.new_party(caller, "connected", display_name))
        context = incoming_call_context(call["id"])

        def build(c: dict[str, Any], fx: Effects) -> None:
            facts = IncomingCallFacts(caller, recipient, c["serverCallId"], display_name, context,
                                      c["correlationId"], sip_headers or {})
            self.notify.grid(fx, "incoming_call", facts)
            fx.timer(durations.UNANSWERED, "unanswered")

        await self.index(call)
        await self.repo.create(call, build)
        return call | {"incomingCallContext": context}

    async def _check_recipient(self, recipient: str) -> None:
        if is_phone(recipient):
            if not await self.numbers.owns(recipient[2:]):
                raise NotFound(f"The resource does not own the phone number {recipient[2:]}.", code="8523")
            return
        try:
            await self.resource.store.get_document(IDENTITIES, recipient)
        except Missing:
            raise NotFound(f"No Communication Services user {recipient}.", code="8523") from None

    async def create_call(self, targets: list[str], callback_uri: str, *, source_number: str | None,
                          source_name: str | None, context: str | None) -> dict[str, Any]:
        if not targets:
            raise InvalidCallRequest("At least one target is required.")
        if any(is_phone(t) for t in targets):
            if not source_number:
                raise InvalidCallRequest("SourceCallerIdNumber is required to call a phone number.")
            if not await self.numbers.owns(source_number):
                raise InvalidCallRequest(f"The resource does not own the caller id {source_number}.")
        started_by = phone_raw_id(source_number) if source_number else targets[0]
        call = self.new_call("twoParty" if len(targets) == 1 else "group", started_by, CONNECTING)
        call["app"] = {"callbackUri": callback_uri, "operationContext": context,
                       "sourceCallerIdNumber": source_number, "sourceDisplayName": source_name}
        settings = {t: await self.party_setting(t) for t in targets}

        def build(c: dict[str, Any], fx: Effects) -> None:
            for target in targets:
                self.invite(c, fx, target, settings[target], {"purpose": "create", "context": context})

        await self.index(call)
        await self.repo.create(call, build)
        return self.props(call)

    async def party_setting(self, raw_id: str) -> str:
        """How a simulated party answers invitations: auto (after a ring), manual, decline."""
        try:
            return (await self.resource.store.get_document(PARTY_SETTINGS, raw_id)).value["answer"]
        except Missing:
            return "auto"

    async def set_party_setting(self, raw_id: str, answer: str) -> None:
        if answer not in ("auto", "manual", "decline"):
            raise InvalidCallRequest("answer must be auto, manual or decline.")
        await self.resource.store.put_document(Document(PARTY_SETTINGS, raw_id, {"answer": answer}))

    def invite(self, call: dict[str, Any], fx: Effects, raw_id: str, setting: str, invite: dict[str, Any],
               timeout: float = durations.INVITATION_TIMEOUT) -> dict[str, Any]:
        """Ring `raw_id`; the party answers or declines after a ring (per its setting) or times out."""
        party = self.new_party(raw_id, "ringing", invite=invite)
        call["parties"] = [p for p in call["parties"] if p["rawId"] != raw_id or p["state"] == "connected"]
        call["parties"].append(party)
        args = {"party": raw_id, "participantId": party["participantId"]}
        if setting == "auto":
            fx.timer(durations.RING, "party_answer", **args)
        elif setting == "decline":
            fx.timer(durations.RING, "party_decline", **args)
        fx.timer(timeout, "invite_timeout", **args)
        return party

    # Incoming-call decisions -----------------------------------------------------------------------------
    async def answer(self, context: Any, callback_uri: str, op_context: str | None,
                     answered_by: str | None) -> dict[str, Any]:
        call_id = call_of_context(context)

        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self._require_ringing(call)
            call["app"] = {"callbackUri": callback_uri, "operationContext": op_context, "answeredBy": answered_by}
            call["state"] = CONNECTED
            self._connect(call, fx, op_context)
            return self.props(call)

        return await self.repo.change(call_id, change)

    async def reject(self, context: Any) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            self._require_ringing(call)
            call["state"], call["live"] = DISCONNECTED, False

        await self.repo.change(call_of_context(context), change)

    async def redirect(self, context: Any, target: str) -> None:
        setting = await self.party_setting(target)

        def change(call: dict[str, Any], fx: Effects) -> None:
            self._require_ringing(call)
            call["recipient"] = target
            self.invite(call, fx, target, setting, {"purpose": "redirect"})

        await self.repo.change(call_of_context(context), change)

    @staticmethod
    def _require_ringing(call: dict[str, Any]) -> None:
        if call["state"] != RINGING or not call["live"]:
            raise AlreadyHandled()

    # Connecting ------------------------------------------------------------------------------------------
    def _connect(self, call: dict[str, Any], fx: Effects, op_context: str | None) -> None:
        """The app's connection is up: CallConnected, ParticipantsUpdated; the call starts if it had not."""
        self._start(call, fx)
        self.notify.callback(call, fx, "CallConnected", context=op_context)
        self.notify.participants_updated(call, fx)

    def _start(self, call: dict[str, Any], fx: Effects) -> None:
        if call["startedAt"] is not None:
            return
        call["startedAt"] = self.resource.clock()
        self.notify.grid(fx, "call_started", self.notify.snapshot(call))
        for party in connected(call):
            self.notify.grid(fx, "call_participant_added", self.notify.snapshot(call),
                             self.notify.party(call, party["rawId"]))

    def joined(self, call: dict[str, Any], fx: Effects, party: dict[str, Any]) -> None:
        party["state"] = "connected"
        if call["startedAt"] is None:
            self._start(call, fx)
        else:
            self.notify.grid(fx, "call_participant_added", self.notify.snapshot(call),
                             self.notify.party(call, party["rawId"]))

    # A simulated party answers or declines -----------------------------------------------------------------
    async def party_answers(self, call_id: str, raw_id: str, participant_id: str | None = None) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            party = self._ringing(call, raw_id, participant_id)
            if party is None:
                return
            self._invite_answered(call, fx, party)

        await self.repo.change(call_id, change)

    def _invite_answered(self, call: dict[str, Any], fx: Effects, party: dict[str, Any]) -> None:
        purpose = party.get("invite", {}).get("purpose")
        invite = party.pop("invite", {})
        self.joined(call, fx, party)
        if purpose == "create" and call["state"] == CONNECTING:
            call["state"] = CONNECTED
            self._connect(call, fx, invite.get("context"))
        elif purpose == "add":
            self.notify.callback(call, fx, "AddParticipantSucceeded", {"participant": identifier_model(party["rawId"])},
                                 result=(200, 0, ""), context=invite.get("context"), url=invite.get("url"))
            self.notify.participants_updated(call, fx)
        elif purpose == "transfer":
            self._transfer_accepted(call, fx, party, invite)
        elif purpose == "redirect":
            call["state"] = CONNECTED
        elif call.get("app") and call["state"] == CONNECTED:
            self.notify.participants_updated(call, fx)

    async def party_declines(self, call_id: str, raw_id: str, participant_id: str | None = None,
                             result: tuple[int, int, str] = DECLINED) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            party = self._ringing(call, raw_id, participant_id)
            if party is None:
                return
            party["state"] = "declined"
            self._invite_failed(call, fx, party, result)

        await self.repo.change(call_id, change)

    def _invite_failed(self, call: dict[str, Any], fx: Effects, party: dict[str, Any],
                       result: tuple[int, int, str]) -> None:
        invite = party.pop("invite", {})
        purpose = invite.get("purpose")
        if purpose == "create" and call["state"] == CONNECTING:
            if not [p for p in call["parties"] if p["state"] in ("ringing", "connected")]:
                self.notify.callback(call, fx, "CreateCallFailed", result=result, context=invite.get("context"))
                call["state"], call["live"] = DISCONNECTED, False
        elif purpose == "add":
            self.notify.callback(call, fx, "AddParticipantFailed", {"participant": identifier_model(party["rawId"])},
                                 result=result, context=invite.get("context"), url=invite.get("url"))
        elif purpose == "transfer":
            call["state"] = CONNECTED
            call.pop("transfer", None)
            self.notify.callback(call, fx, "CallTransferFailed", result=result, context=invite.get("context"),
                                 url=invite.get("url"))
        elif purpose == "redirect":
            call["state"], call["live"] = DISCONNECTED, False

    @staticmethod
    def _ringing(call: dict[str, Any], raw_id: str, participant_id: str | None) -> dict[str, Any] | None:
        if not call["live"]:
            return None
        return next((p for p in call["parties"] if p["rawId"] == raw_id and p["state"] == "ringing"
                     and (participant_id is None or p["participantId"] == participant_id)), None)

    # Checks -------------------------------------------------------------------------------------------------
    @staticmethod
    def connected_party(call: dict[str, Any], raw_id: str) -> dict[str, Any]:
        party = next((p for p in connected(call) if p["rawId"] == raw_id), None)
        if party is None:
            raise NotFound("Participant not found.", code="8522")
        return party

    def require_connected(self, call: dict[str, Any]) -> None:
        if not call.get("app") or call["state"] == DISCONNECTED:
            raise CallNotFound(call["id"])
        if call["state"] != CONNECTED:
            raise NotEstablished()

    def _transfer_accepted(self, call: dict[str, Any], fx: Effects, party: dict[str, Any],
                           invite: dict[str, Any]) -> None:
        moved = call.pop("transfer", {}).get("transferee")
        extra = {"transferTarget": identifier_model(party["rawId"])}
        if moved:
            extra["transferee"] = identifier_model(moved)
        self.notify.callback(call, fx, "CallTransferAccepted", extra, result=TRANSFERRED, context=invite.get("context"),
                             url=invite.get("url"))
        self._disconnect_app(call, fx, TRANSFERRED)

    # Leaving and ending --------------------------------------------------------------------------------------
    async def connected_elsewhere(self, call_id: str) -> frozenset[str]:
        """Users connected to another live call: closing this call's connection leaves them connected."""
        return frozenset(p["rawId"] for c in await self.repo.list_calls() if c["live"] and c["id"] != call_id
                         for p in connected(c) if is_user(p["rawId"]))

    async def hang_up(self, call_id: str, for_everyone: bool) -> None:
        elsewhere = await self.connected_elsewhere(call_id)

        def change(call: dict[str, Any], fx: Effects) -> None:
            if not call.get("app") or call["state"] == DISCONNECTED:
                raise CallNotFound(call_id)
            if for_everyone:
                self.end(call, fx, None, ENDED_BY_API, elsewhere)
                return
            self._disconnect_app(call, fx, ENDED_BY_API)
            if call["kind"] == "twoParty" and len(connected(call)) < 2:
                self.end(call, fx, None, ENDED_BY_API, elsewhere)

        await self.repo.change(call_id, change)

    async def party_hangs_up(self, call_id: str, raw_id: str) -> None:
        """A simulated party leaves the call (or, while it rings, gives up calling)."""
        elsewhere = await self.connected_elsewhere(call_id)

        def change(call: dict[str, Any], fx: Effects) -> None:
            if not call["live"]:
                raise CallNotFound(call_id)
            if call["state"] == RINGING and raw_id == call["startedBy"]:
                call["state"], call["live"] = DISCONNECTED, False  # a missed call
                return
            party = next((p for p in call["parties"] if p["rawId"] == raw_id and p["state"] in ("connected",
                                                                                               "ringing")), None)
            if party is None:
                raise NotFound(f"{raw_id} is not in the call.", code="8522")
            if party["state"] == "ringing":
                party["state"] = "declined"
                self._invite_failed(call, fx, party, DECLINED)
                return
            self.leave(call, fx, party, raw_id, elsewhere)

        await self.repo.change(call_id, change)

    def leave(self, call: dict[str, Any], fx: Effects, party: dict[str, Any], ended_by: str | None,
               elsewhere: frozenset[str]) -> None:
        """One participant leaves; the call ends if too few members remain."""
        members = len(connected(call)) - 1 + (1 if self.app_connected(call) else 0)
        ends = members == 0 if call.get("groupId") or call.get("roomId") else members < 2
        if ends:
            self.end(call, fx, ended_by, CONVERSATION_ENDED, elsewhere)
            return
        self._remove(call, fx, party, elsewhere)
        if self.app_connected(call):
            self.notify.participants_updated(call, fx)

    def _remove(self, call: dict[str, Any], fx: Effects, party: dict[str, Any], elsewhere: frozenset[str]) -> None:
        party["state"] = "left"
        if call["startedAt"] is not None:
            self.notify.grid(fx, "call_participant_removed", self.notify.snapshot(call),
                             self.notify.party(call, party["rawId"]))
        if is_user(party["rawId"]) and party["rawId"] not in elsewhere:
            self.notify.grid(fx, "user_disconnected", party["rawId"])  # the user's last call connection closed

    @staticmethod
    def app_connected(call: dict[str, Any]) -> bool:
        return bool(call.get("app")) and call["state"] in (CONNECTED, TRANSFERRING, CONNECTING)

    def _disconnect_app(self, call: dict[str, Any], fx: Effects, result: tuple[int, int, str]) -> None:
        call["media"], call["mediaQueue"] = None, []
        self.notify.callback(call, fx, "CallDisconnected", result=result)
        call["state"] = DISCONNECTED

    def end(self, call: dict[str, Any], fx: Effects, ended_by: str | None, result: tuple[int, int, str],
            elsewhere: frozenset[str] = frozenset()) -> None:
        """End the call for everyone: participants removed, CallEnded, the app disconnected, recordings done."""
        ending_party = self.notify.party(call, ended_by) if ended_by else None
        for party in connected(call):
            self._remove(call, fx, party, elsewhere)
        for party in call["parties"]:
            if party["state"] == "ringing":
                party["state"] = "canceled"
        if call["startedAt"] is not None:
            code, sub, phrase = result
            ending = CallEnding(ending_party, "Participant" if ended_by else "MicrosoftInternal", code, sub, phrase,
                                round(self.resource.clock() - call["startedAt"], 3))
            self.notify.grid(fx, "call_ended", self.notify.snapshot(call), ending)
        if self.app_connected(call):
            self._disconnect_app(call, fx, result)
        call["state"], call["live"], call["endedAt"] = DISCONNECTED, False, self.resource.clock()
        for recording_id, recording in call["recordings"].items():
            if recording["state"] in ("inactive", "active"):
                fx.timer(0, "recording_stop", recordingId=recording_id, reason="CallEnded")

    async def unanswered(self, call_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            if call["state"] == RINGING and call["live"]:
                call["state"], call["live"] = DISCONNECTED, False

        await self.repo.change(call_id, change)

    async def invite_timeout(self, call_id: str, raw_id: str, participant_id: str) -> None:
        await self.party_declines(call_id, raw_id, participant_id, NO_ANSWER)

    async def sim_answer(self, call_id: str, raw_id: str, display_name: str = "") -> None:
        """A simulated party answers: a ringing invitation, or an IncomingCall to that user."""

        def change(call: dict[str, Any], fx: Effects) -> None:
            party = self._ringing(call, raw_id, None)
            if party is not None:
                self._invite_answered(call, fx, party)
                return
            if call["state"] != RINGING or call.get("recipient") != raw_id or not call["live"]:
                raise AlreadyHandled(f"{raw_id} has no ringing invitation in this call.")
            call["state"] = CONNECTED
            party = self.new_party(raw_id, "connected", display_name)
            call["parties"].append(party)
            self._start(call, fx)

        await self.repo.change(call_id, change)


def context_field(context: str | None) -> dict[str, Any]:
    """`{"operationContext": …}` when the request gave one (the SDK's result models read it)."""
    return {"operationContext": context} if context is not None else {}

