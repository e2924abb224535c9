"""What a call tells the world: Event Grid events (through the resource's profile) and the Call Automation
callback events posted to the app.

Callbacks are CloudEvents 1.0 (`source` = `subject` = `calling/callConnections/{id}`, `time` with seven
fractional digits and `+00:00`), posted one per request as a JSON array; `data` always carries `version`,
`resultInformation`, `callConnectionId`, `serverCallId`, `correlationId` and `publicEventType`
(learn.microsoft.com/azure/communication-services/concepts/call-automation/call-automation#call-automation-webhook-events).
"""

from __future__ import annotations

import uuid
from typing import Any

from commgrid.acs.calling.model import Effects
from commgrid.acs.identifiers import identifier_model
from commgrid.acs.resource import CommunicationResource
from commgrid.events.calling_shapes import CallParty, CallSnapshot
from commgrid.timestamps import Precision, format_timestamp

CALLBACK_VERSION = "2024-09-15"
_NS = "Microsoft.Communication."

OK = (200, 0, "")
COMPLETED = (200, 0, "Action completed successfully.")
CANCELED = (400, 8508, "Action failed, the operation was canceled.")
ENDED_BY_API = (200, 7000, "Call was ended by Azure Communication Service Call Automation API or a server bot. "
                "DiagCode: 0#7000.@")
CONVERSATION_ENDED = (200, 5002, "The conversation has ended. DiagCode: 0#5002.@")
TRANSFERRED = (200, 7015, "The transfer operation completed successfully.")
DECLINED = (603, 0, "Call declined by the remote party. DiagCode: 603#0.@")
NO_ANSWER = (408, 10004, "Call timed out, the participant did not answer. DiagCode: 408#10004.@")


class CallNotifier:
    """Builds a call's events into an `Effects`."""

    def __init__(self, resource: CommunicationResource) -> None:
        self.resource = resource

    # Event Grid ------------------------------------------------------------------------------------------
    def snapshot(self, call: dict[str, Any]) -> CallSnapshot:
        return CallSnapshot(
            server_call_id=call["serverCallId"], correlation_id=call["correlationId"],
            started_by=self.party(call, call["startedBy"]), group_id=call.get("groupId"),
            room_id=call.get("roomId"), is_two_party=call["kind"] == "twoParty",
        )

    def party(self, call: dict[str, Any], raw_id: str) -> CallParty:
        found = next((p for p in call["parties"] if p["rawId"] == raw_id), None)
        if found is None:
            return CallParty(raw_id, role="Attendee")
        return CallParty(raw_id, found.get("displayName", ""), found["participantId"])

    def grid(self, fx: Effects, build: str, *args: Any) -> None:
        """Add the Event Grid event `profile.<build>(emission, *args)`."""
        fx.events.append(getattr(self.resource.profile, build)(self.resource.emission(), *args))

    # Callbacks -------------------------------------------------------------------------------------------
    def callback(self, call: dict[str, Any], fx: Effects, name: str, extra: dict[str, Any] | None = None, *,
                 result: tuple[int, int, str] | None = OK, context: str | None = None,
                 url: str | None = None) -> None:
        """Queue the callback event `Microsoft.Communication.<name>` for the app, if the call has one."""
        app = call.get("app")
        target = url or (app or {}).get("callbackUri")
        if not target:
            return
        data: dict[str, Any] = {"version": CALLBACK_VERSION}
        if result is not None:
            code, sub, message = result
            data["resultInformation"] = {"code": code, "subCode": sub, "message": message}
        data |= {"callConnectionId": call["id"], "serverCallId": call["serverCallId"],
                 "correlationId": call["correlationId"]}
        if context is not None:
            data["operationContext"] = context
        data |= (extra or {}) | {"publicEventType": _NS + name}
        source = f"calling/callConnections/{call['id']}"
        event = {"id": str(uuid.uuid4()), "source": source, "type": _NS + name, "data": data,
                 "time": format_timestamp(self.resource.now(), Precision.TICKS, "+00:00"), "specversion": "1.0",
                 "datacontenttype": "application/json", "subject": source}
        fx.callbacks.append({"url": target, "event": event})

    def participants_updated(self, call: dict[str, Any], fx: Effects) -> None:
        call["sequence"] = call.get("sequence", 0) + 1
        members = [{"identifier": identifier_model(p["rawId"]), "isMuted": p.get("isMuted", False),
                    "isOnHold": p.get("isOnHold", False)} for p in connected(call)]
        self.callback(call, fx, "ParticipantsUpdated", {"sequenceNumber": call["sequence"], "participants": members})


def connected(call: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in call["parties"] if p["state"] == "connected"]
