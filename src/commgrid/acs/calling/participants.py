"""Participants of a connected call (add, remove, transfer) and group and rooms calls that simulated users join.

Invitations ring the simulated party (`CallLifecycle.invite`); how they end (answered, declined, timed out) is
`CallLifecycle`'s, as is a participant leaving.
"""

from __future__ import annotations

from typing import Any

from commgrid.acs.calling import durations
from commgrid.acs.calling.calls import CallLifecycle, context_field
from commgrid.acs.calling.ids import InvalidCallRequest, new_call_connection_id
from commgrid.acs.calling.model import CONNECTED, GROUP_CALLS, TRANSFERRING, CallNotFound, Effects
from commgrid.acs.calling.notify import connected
from commgrid.acs.identifiers import identifier_model, is_user
from commgrid.store.base import Document


class ParticipantOps:
    def __init__(self, calls: CallLifecycle) -> None:
        self.calls = calls
        self.notify = calls.notify
        self.repo = calls.repo

    async def add_participant(self, call_id: str, target: str, *, context: str | None, url: str | None,
                              timeout: float | None) -> dict[str, Any]:
        setting = await self.calls.party_setting(target)

        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self.calls.require_connected(call)
            invite = {"purpose": "add", "context": context, "url": url, "invitationId": new_call_connection_id()}
            self.calls.invite(call, fx, target, setting, invite, timeout or durations.INVITATION_TIMEOUT)
            if call["kind"] == "twoParty":
                call["kind"] = "group"
            participant = {"identifier": identifier_model(target), "isMuted": False, "isOnHold": False}
            return {"participant": participant, "invitationId": invite["invitationId"]} | context_field(context)

        return await self.repo.change(call_id, change)

    async def remove_participant(self, call_id: str, target: str, *, context: str | None,
                                 url: str | None) -> dict[str, Any]:
        elsewhere = await self.calls.connected_elsewhere(call_id)

        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self.calls.require_connected(call)
            party = self.calls.connected_party(call, target)
            self.notify.callback(call, fx, "RemoveParticipantSucceeded", {"participant": identifier_model(target)},
                                 context=context, url=url)
            self.calls.leave(call, fx, party, None, elsewhere)
            return context_field(context)

        return await self.repo.change(call_id, change)

    async def transfer(self, call_id: str, target: str, transferee: str | None, *, context: str | None,
                       url: str | None) -> dict[str, Any]:
        setting = await self.calls.party_setting(target)

        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self.calls.require_connected(call)
            others = connected(call)
            if transferee is None and len(others) != 1:
                raise InvalidCallRequest("Transferee is required to transfer a call with several participants.")
            moved = transferee or others[0]["rawId"]
            self.calls.connected_party(call, moved)
            call["state"] = TRANSFERRING
            call["transfer"] = {"target": target, "transferee": moved}
            self.calls.invite(call, fx, target, setting, {"purpose": "transfer", "context": context, "url": url})
            return context_field(context)

        return await self.repo.change(call_id, change)

    # Group and rooms calls (simulated users joining) ---------------------------------------------------------
    async def join(self, user: str, *, group_id: str | None, room_id: str | None, display_name: str = "") -> dict:
        key = group_id or room_id
        if not key:
            raise InvalidCallRequest("A group id or a room id is required.")
        try:
            call = await self.calls.by_group(key)
            if not call["live"]:
                raise CallNotFound(key)
        except CallNotFound:
            call = self.calls.new_call("room" if room_id else "group", user, CONNECTED)
            call["groupId"], call["roomId"] = group_id, room_id
            await self.calls.index(call)
            await self.repo.create(call, lambda c, fx: None)
            await self.calls.resource.store.put_document(Document(GROUP_CALLS, key, {"callId": call["id"]}))

        def change(c: dict[str, Any], fx: Effects) -> dict[str, Any]:
            if any(p["rawId"] == user for p in connected(c)):
                return c
            party = self.calls.new_party(user, "connected", display_name)
            c["parties"].append(party)
            self.calls.joined(c, fx, party)
            if self.calls.app_connected(c):
                self.notify.participants_updated(c, fx)
            return c

        return await self.repo.change(call["id"], change)

    # Mute and hold -----------------------------------------------------------------------------------------------
    async def mute(self, call_id: str, target: str, context: str | None) -> dict[str, Any]:
        """Mute a Communication Services user (the service mutes only those): ParticipantsUpdated follows."""
        if not is_user(target):
            raise InvalidCallRequest("Only Communication Services users can be muted.")
        return await self._flag(call_id, target, "isMuted", True) | context_field(context)

    async def hold(self, call_id: str, target: str, on_hold: bool) -> None:
        await self._flag(call_id, target, "isOnHold", on_hold)

    async def _flag(self, call_id: str, target: str, flag: str, value: bool) -> dict[str, Any]:
        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self.calls.require_connected(call)
            party = self.calls.connected_party(call, target)
            if party[flag] != value:
                party[flag] = value
                self.notify.participants_updated(call, fx)
            return {}

        return await self.repo.change(call_id, change)
