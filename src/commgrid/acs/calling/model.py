"""The call model in the store, and the effects a change has.

A call is one document (collection `CALLS`, keyed by its call connection id): its parties, the app's
connection, the media operation in progress and its recordings. Every change is a read-modify-write with an
optimistic version; the change's effects (Event Grid events, callback events, timers) are written into the
document in the same write (`pending`) and carried out right after it by the writer; effects a crash left
behind are carried out by the calling worker's sweep (`sweep`) within about ten seconds, so nothing
acknowledged is lost (at least once: the events keep their ids).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commgrid.acs.resource import CommunicationResource
from commgrid.errors import BadRequest, Conflict, NotFound
from commgrid.store.base import Document, Missing, VersionConflict

log = logging.getLogger("commgrid.calling")

CALLS = "acs.calls"
GROUP_CALLS = "acs.calls.groups"  # key: group or room id → the call's key
CALLBACKS = "acs.calls.callbacks"  # the callback outbox (callbacks.py)
TIMERS = "acs.calls.timers"  # simulated durations (timers.py)
RECORDINGS = "acs.calls.recordings"
PARTY_SETTINGS = "acs.calls.parties"  # how a simulated party answers (`commgrid call party`)
STALE_PENDING = 10.0  # seconds after which pending effects count as left behind by a crash
RETENTION = 48 * 3600.0  # ended calls, and their recordings, are forgotten this long after they end

# Call Automation's `callConnectionState` values.
CONNECTING, CONNECTED, TRANSFERRING, DISCONNECTED = "connecting", "connected", "transferring", "disconnected"
RINGING = "ringing"  # commgrid's own: an IncomingCall nobody has answered yet


class CallNotFound(NotFound):
    """The service's answer for an unknown or finished call (`{"code": "8522", "message": "Call not found."}`)."""

    code = "8522"

    def __init__(self, call_id: str = "") -> None:
        super().__init__("Call not found.")
        self.target = f"/calling/callConnections/{call_id}"

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "target": self.target}}


class NotEstablished(BadRequest):
    code = "8501"

    def __init__(self) -> None:
        super().__init__("Action is not valid when call is not in Established state.")


class AlreadyHandled(Conflict):
    code = "8519"

    def __init__(self, what: str = "The call has already been answered, rejected or redirected.") -> None:
        super().__init__(what)


@dataclass
class Effects:
    """What one change publishes, posts and schedules; kept in the call document until carried out."""

    events: list[dict[str, Any]] = field(default_factory=list)  # Event Grid events for the system topic
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # {"url", "event"}
    timers: list[dict[str, Any]] = field(default_factory=list)  # {"in", "action", "args"}

    def timer(self, seconds: float, action: str, **args: Any) -> None:
        self.timers.append({"in": seconds, "action": action, "args": args})

    def to_json(self, created: float) -> dict[str, Any]:
        return {"id": uuid.uuid4().hex, "created": created, "events": self.events, "callbacks": self.callbacks,
                "timers": self.timers}

    def __bool__(self) -> bool:
        return bool(self.events or self.callbacks or self.timers)


Change = Callable[[dict[str, Any], Effects], Any]


class CallRepository:
    """Load, change and flush calls; the only writer of `CALLS` documents."""

    def __init__(self, resource: CommunicationResource, time_scale: float,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.resource = resource
        self.store = resource.store
        self.time_scale = time_scale
        self.wake = wake

    async def get(self, call_id: str) -> dict[str, Any]:
        try:
            return (await self.store.get_document(CALLS, call_id)).value
        except Missing:
            raise CallNotFound(call_id) from None

    async def create(self, call: dict[str, Any], build: Change) -> Any:
        effects = Effects()
        result = build(call, effects)
        pending = effects.to_json(self.resource.clock())
        call["pending"] = [pending] if effects else []
        await self.store.put_document(Document(CALLS, call["id"], call), expect_version=0)
        if effects:
            await self._finish(call["id"], pending)
        return result

    async def change(self, call_id: str, change: Change, attempts: int = 20) -> Any:
        """Apply `change(call, effects)` atomically; retried on a concurrent write. Returns its result."""
        for _ in range(attempts):
            try:
                doc = await self.store.get_document(CALLS, call_id)
            except Missing:
                raise CallNotFound(call_id) from None
            call, effects = doc.value, Effects()
            result = change(call, effects)
            pending = effects.to_json(self.resource.clock())
            if effects:
                call.setdefault("pending", []).append(pending)
            try:
                await self.store.put_document(Document(CALLS, call_id, call), expect_version=doc.version)
            except VersionConflict:
                continue
            if effects:
                await self._finish(call_id, pending)
            return result
        raise Conflict("The call changed concurrently too often; try again.")

    async def _finish(self, call_id: str, pending: dict[str, Any]) -> None:
        """Carry out the effects of the change just written (only those: concurrent changes carry out theirs)."""
        await self._carry_out(call_id, pending)
        await self._forget(call_id, pending["id"])

    async def flush(self, call_id: str, older_than: float = 0.0) -> int:
        """Carry out pending effects left behind (by a crash) that are at least `older_than` seconds old."""
        count = 0
        with contextlib.suppress(Missing):
            doc = await self.store.get_document(CALLS, call_id)
            cutoff = self.resource.clock() - older_than
            for pending in doc.value.get("pending", []):
                if pending["created"] <= cutoff:
                    await self._finish(call_id, pending)
                    count += 1
        return count

    async def _carry_out(self, call_id: str, pending: dict[str, Any]) -> None:
        # Keys derive from the pending entry, so repeating a flush rewrites the same outbox rows.
        await self.resource.emit(pending["events"])
        for n, callback in enumerate(pending["callbacks"]):
            key = f"{pending['created']:017.6f}-{pending['id']}-{n:03d}"
            row = {"callId": call_id, "url": callback["url"], "event": callback["event"], "dueAt": 0.0,
                   "attempts": 0}
            await self.store.put_document(Document(CALLBACKS, key, row))
        for n, timer in enumerate(pending["timers"]):
            due = pending["created"] + timer["in"] / self.time_scale
            key = f"{due:017.6f}-{pending['id']}-{n:03d}"
            row = {"callId": call_id, "dueAt": due, "action": timer["action"], "args": timer["args"]}
            await self.store.put_document(Document(TIMERS, key, row))
        if pending["callbacks"] or pending["timers"]:
            self.wake()

    async def _forget(self, call_id: str, pending_id: str) -> None:
        for _ in range(20):
            try:
                doc = await self.store.get_document(CALLS, call_id)
            except Missing:
                return
            left = [p for p in doc.value.get("pending", []) if p["id"] != pending_id]
            try:
                await self.store.put_document(Document(CALLS, call_id, doc.value | {"pending": left}),
                                              expect_version=doc.version)
                return
            except VersionConflict:
                continue

    async def sweep(self, older_than: float = STALE_PENDING) -> int:
        """Carry out the effects a crash left pending in any call (older than `older_than` seconds, so a change
        another node is carrying out right now is left to it), and forget calls ended `RETENTION` ago."""
        count = 0
        forget_before = self.resource.clock() - RETENTION
        async for doc in self.store.scan_documents(CALLS):
            if doc.value.get("pending"):
                count += await self.flush(doc.key, older_than)
            elif not doc.value["live"] and doc.value.get("endedAt", doc.value["createdAt"]) < forget_before:
                with contextlib.suppress(Missing):
                    await self.store.delete_document(CALLS, doc.key)
        return count

    async def list_calls(self) -> list[dict[str, Any]]:
        return [d.value async for d in self.store.scan_documents(CALLS)]
