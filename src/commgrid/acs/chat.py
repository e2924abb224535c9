"""Chat: threads, messages, participants, read receipts and typing, and the events each change emits, for the
Chat REST API (azure-rest-api-specs `specification/communication/data-plane/Chat/stable/2024-03-07`; docs/wire-facts.md,
Chat API details and Who gets which event).

Every change of a thread is one optimistic write of its document (`expect_version`), recording the new state
with an outbox entry: the documents the change implies (messages, memberships) and the events to publish.
The entry is then carried out (documents written, events published through the system topic) and removed.
So a change is durable before its events are published, the caller is answered only after both, and an entry
left behind by a crash is carried out later, with the same event ids: when its thread is next used, or by
`recover()` when a server starts. Document writes carry the thread's `rev`, so a late entry never overwrites a
newer change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from commgrid.acs.chat_docs import (
    MEMBERSHIPS,
    MESSAGES,
    RECEIPTS,
    REQUESTS,
    THREADS,
    Participant,
    RequestedParticipant,
    Thread,
    decode_cursor,
    encode_cursor,
    from_ms,
    is_acs_user,
    membership_key,
    message_key,
    message_snapshot,
    message_to_wire,
    ms_wire_time,
    new_thread_id,
    receipt_key,
    request_key,
    system_message,
    thread_snapshot_from_value,
    thread_snapshot_value,
    to_ms,
    user_from_value,
    user_message,
    user_to_value,
)
from commgrid.acs.identifiers import communication_identifier
from commgrid.acs.resource import IDENTITIES, CommunicationResource
from commgrid.acs.tokens import Permission, TokenClaims, require
from commgrid.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from commgrid.events.acs import Change, new_transaction_id
from commgrid.store.base import Document, Missing

log = logging.getLogger("commgrid.chat")

#: How old an outbox entry must be before another request or a starting server carries it out for the
#: request that wrote it, which has presumably crashed (a live one finishes in milliseconds).
STALE_AFTER = 10.0
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 200  # no documented maximum (Chat spec)
MAX_PARTICIPANTS = 250  # the service's per-thread limit
MAX_CONTENT = 28 * 1024  # the service's message size limit
_ATTEMPTS = 100


def _busy(what: str, key: str) -> ServiceUnavailable:
    """Every attempt lost to a concurrent writer: nothing was written, and the caller must hear so."""
    log.warning("write lost to concurrent changes", extra={"action": "chat_write_contended", "what": what,
                                                              "key": key, "attempts": _ATTEMPTS})
    return ServiceUnavailable("The server is currently unable to handle the request: the chat thread is being"
                              " changed by too many concurrent requests. Retry the request.")
_EVENT_IDS = uuid.UUID("5d1c3f0e-3c55-4a43-9b7e-2f1f6c0a7c11")
_NOT_ALLOWED = "User is not allowed to perform specified action."  # the spec's 403 example (Chat spec)
# An invalid participant as the service reports it (azure-cli scenario tests, Chat spec).
_PERMISSION_CHECK_FAILED = {"code": "403", "message": "Permissions check failed"}


@dataclass
class _Plan:
    """What one change of a thread implies: documents to write, events to publish, and the answer."""

    writes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    emit: dict[str, Any] | None = None
    result: Any = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    sync_state: str | None = None  # for `nextLink`, when there is more
    next_skip: int | None = None


class ChatService:
    """The Chat API's operations for one Communication Services resource."""

    def __init__(self, resource: CommunicationResource) -> None:
        self.resource = resource
        self.store = resource.store
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """On a serving node: carry out, in the background, what crashed requests left in thread outboxes."""
        self._recovery = asyncio.create_task(self._run_recovery(), name="chat-recovery")

    async def stop(self) -> None:
        if self._recovery:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery

    def _now(self) -> int:
        return to_ms(self.resource.now())

    # threads -----------------------------------------------------------------------------------------------
    async def create_thread(
        self, caller: TokenClaims, topic: str, requested: list[RequestedParticipant], metadata: dict[str, str],
        request_id: str | None = None,
    ) -> tuple[Thread, list[dict[str, str]]]:
        """A new thread with the caller and the valid `requested` users; invalid ones are reported, not fatal.

        With a `repeatability-request-id`, a repeated request returns the thread the first one created.
        """
        require(caller, Permission.CREATE_THREAD)
        me = caller.user_id
        valid, invalid = await self._screen([p for p in requested if p.raw_id != me])
        thread_id = new_thread_id()
        if request_id:
            record = await self._remember_request(request_key(me, request_id), thread_id, invalid)
            thread_id, invalid = record["threadId"], record["invalidParticipants"]
            try:
                return (await self._load(thread_id))[1], invalid
            except NotFound:
                pass  # the first request got no further than this: create the thread now
        now = self._now()
        mine = next((p for p in requested if p.raw_id == me), None)
        members = [Participant(me, mine.display_name if mine else None)]
        members += [Participant(p.raw_id, p.display_name, p.share_history_time) for p in valid]
        if len(members) > MAX_PARTICIPANTS:
            raise BadRequest(f"A thread can have at most {MAX_PARTICIPANTS} participants.")
        thread = Thread(thread_id, topic, now, me, members, version=now, updated_on=now, metadata=metadata)
        # Creation writes `participantAdded` (sequence 1) and `topicUpdated` (sequence 2) first (wire-facts: chat API).
        added = system_message(thread, "participantAdded", me, now, participants=[p.to_wire() for p in members])
        titled = system_message(thread, "topicUpdated", me, now, topic=topic)
        plan = _Plan(writes=[*self._message_writes(thread, added, titled), *self._membership_writes(thread, members)],
                     emit=self._emit("thread_created", thread, now))
        thread.rev = 1
        entry = self._entry(thread, plan)
        try:
            await self.store.put_document(Document(THREADS, thread_id, thread.to_value()), expect_version=0)
        except Conflict:  # a repeated request created it concurrently
            return (await self._load(thread_id))[1], invalid
        await self._carry_out(thread_id, entry)
        return thread, invalid

    async def _remember_request(self, key: str, thread_id: str, invalid: list[dict[str, str]]) -> dict[str, Any]:
        record = {"threadId": thread_id, "invalidParticipants": invalid}
        try:
            await self.store.put_document(Document(REQUESTS, key, record), expect_version=0)
        except Conflict:
            record = (await self.store.get_document(REQUESTS, key)).value
        return record

    async def get_thread(self, caller: TokenClaims, thread_id: str) -> dict[str, Any]:
        require(caller, Permission.CHAT)
        return (await self._member_thread(caller, thread_id))[0].properties()

    async def list_threads(self, caller: TokenClaims, size: int, start: int, sync_state: str | None) -> Page:
        """The caller's threads, newest first, deleted ones with `deletedOn`, changed at or after `start`."""
        require(caller, Permission.CHAT)
        prefix = f"{caller.user_id}/"
        after = decode_cursor(sync_state, prefix) if sync_state else None

        async def pick(doc: Document) -> dict[str, Any] | None:
            thread = await self._peek(doc.value["threadId"])
            ok = thread is not None and thread.member(caller.user_id) and thread.updated_on >= start
            return thread.item() if ok and thread else None

        return await self._paged(self._scan(MEMBERSHIPS, prefix, after), size, pick)

    async def delete_thread(self, caller: TokenClaims, thread_id: str) -> None:
        """Mark the thread deleted (it stays listed with `deletedOn`); deleting it again changes nothing."""
        require(caller, Permission.DELETE_THREAD)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            if thread.deleted_on is not None:
                return _Plan()
            now = self._now()
            thread.deleted_on, thread.updated_on = now, max(thread.updated_on, now)
            return _Plan(emit=self._emit("thread_deleted", thread, now, by=actor))

        await self._commit(thread_id, decide, deleted_ok=True)

    async def update_thread(
        self, caller: TokenClaims, thread_id: str, topic: str | None, metadata: dict[str, str | None] | None
    ) -> None:
        """Set the topic (adds a `topicUpdated` message) and merge metadata (newer api-versions)."""
        require(caller, Permission.UPDATE_THREAD)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            if topic is None and metadata is None:
                return _Plan()
            now = self._now()
            thread.metadata = _merge(thread.metadata, metadata)
            writes = []
            if topic is not None:
                thread.topic = topic
                writes = self._message_writes(thread, system_message(thread, "topicUpdated", actor.raw_id, now,
                                                                      topic=topic))
            thread.touch(now)
            return _Plan(writes=writes, emit=self._emit("thread_updated", thread, now, by=actor))

        await self._commit(thread_id, decide)

    # messages ----------------------------------------------------------------------------------------------
    async def send_message(
        self, caller: TokenClaims, thread_id: str, content: str, kind: str, display_name: str | None,
        metadata: dict[str, str],
    ) -> str:
        require(caller, Permission.CHAT)
        if len(content) > MAX_CONTENT:
            raise BadRequest(f"The message content exceeds {MAX_CONTENT} characters.")

        async def decide(thread: Thread) -> _Plan:
            self._actor(thread, caller)
            now = self._now()
            message = user_message(thread, caller.user_id, content, kind, display_name, metadata, now)
            thread.last_message_received_on = message["createdOn"]
            thread.updated_on = max(thread.updated_on, now)
            emit = self._emit("message_sent", thread, now, message=message)
            return _Plan(writes=self._message_writes(thread, message), emit=emit, result=message["id"])

        return await self._commit(thread_id, decide)

    async def get_message(self, caller: TokenClaims, thread_id: str, message_id: str) -> dict[str, Any]:
        require(caller, Permission.CHAT)
        await self._member_thread(caller, thread_id)
        try:
            doc = await self.store.get_document(MESSAGES, message_key(thread_id, _message_number(message_id)))
        except Missing:
            raise _message_not_found(message_id) from None
        return message_to_wire(doc.value)

    async def list_messages(self, caller: TokenClaims, thread_id: str, size: int, start: int,
                            sync_state: str | None) -> Page:
        """Messages newest first, system messages included, from `start` or the caller's shareHistoryTime."""
        require(caller, Permission.CHAT)
        _, me = await self._member_thread(caller, thread_id)
        since = max(start, me.share_history_time)
        prefix = f"{thread_id}/"
        after = decode_cursor(sync_state, prefix) if sync_state else None

        async def pick(doc: Document) -> dict[str, Any] | _End | None:
            return message_to_wire(doc.value) if doc.value["createdOn"] >= since else _END

        return await self._paged(self._scan(MESSAGES, prefix, after), size, pick)

    async def update_message(
        self, caller: TokenClaims, thread_id: str, message_id: str, content: str | None,
        metadata: dict[str, str | None] | None,
    ) -> None:
        """Edit the caller's own message: new content and/or metadata (a merge-patch), `editedOn`, version."""
        require(caller, Permission.CHAT)
        if content is not None and len(content) > MAX_CONTENT:
            raise BadRequest(f"The message content exceeds {MAX_CONTENT} characters.")

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            message = await self._own_message(thread, caller, message_id)
            if message.get("deletedOn") is not None:
                raise _message_not_found(message_id)
            if content is None and metadata is None:
                return _Plan()
            now = self._now()
            edited = dict(message)
            if content is not None:
                edited["content"] = {"message": content}
            edited["metadata"] = _merge(message.get("metadata") or {}, metadata)
            # The version becomes the edit's epoch ms, which `editedOn` shows (wire-facts: chat API).
            edited["version"] = edited["editedOn"] = max(now, message["version"] + 1)
            thread.updated_on = max(thread.updated_on, now)
            emit = self._emit("message_edited", thread, now, by=actor, message=edited)
            return _Plan(writes=self._message_writes(thread, edited), emit=emit)

        await self._commit(thread_id, decide)

    async def delete_message(self, caller: TokenClaims, thread_id: str, message_id: str) -> None:
        """Soft-delete the caller's own message: it stays readable with `deletedOn` (wire-facts: chat API)."""
        require(caller, Permission.CHAT)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            message = await self._own_message(thread, caller, message_id)
            if message.get("deletedOn") is not None:
                return _Plan()
            now = self._now()
            deleted = dict(message)
            deleted["version"] = deleted["deletedOn"] = max(now, message["version"] + 1)
            thread.updated_on = max(thread.updated_on, now)
            emit = self._emit("message_deleted", thread, now, by=actor, message=deleted)
            return _Plan(writes=self._message_writes(thread, deleted), emit=emit)

        await self._commit(thread_id, decide)

    async def _own_message(self, thread: Thread, caller: TokenClaims, message_id: str) -> dict[str, Any]:
        """The message as it is, counting writes still in the outbox; only its sender may change it."""
        key = message_key(thread.id, _message_number(message_id))
        pending = [w["value"] for e in thread.pending for w in e["writes"] if (w["collection"], w["key"]) == (
            MESSAGES, key)]
        if pending:
            message = pending[-1]
        else:
            try:
                message = (await self.store.get_document(MESSAGES, key)).value
            except Missing:
                raise _message_not_found(message_id) from None
        if message.get("sender") != caller.user_id:
            raise Forbidden(_NOT_ALLOWED)
        return message

    # participants ------------------------------------------------------------------------------------------
    async def list_participants(self, caller: TokenClaims, thread_id: str, size: int, skip: int) -> Page:
        require(caller, Permission.CHAT)
        thread, _ = await self._member_thread(caller, thread_id)
        return _sliced([p.to_wire() for p in thread.participants], size, skip)

    async def add_participants(
        self, caller: TokenClaims, thread_id: str, requested: list[RequestedParticipant]
    ) -> list[dict[str, str]]:
        """Add the valid users who are not members yet; returns the invalid ones (reported, not fatal)."""
        require(caller, Permission.MANAGE_PARTICIPANTS)
        valid, invalid = await self._screen(requested)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            new = [Participant(p.raw_id, p.display_name, p.share_history_time)
                   for p in valid if thread.member(p.raw_id) is None]
            if not new:
                return _Plan(result=invalid)
            if len(thread.participants) + len(new) > MAX_PARTICIPANTS:
                raise BadRequest(f"A thread can have at most {MAX_PARTICIPANTS} participants.")
            now = self._now()
            thread.participants += new
            thread.touch(now)
            message = system_message(thread, "participantAdded", actor.raw_id, now,
                                     participants=[p.to_wire() for p in new])
            writes = [*self._message_writes(thread, message), *self._membership_writes(thread, new)]
            emit = self._emit("participants_added", thread, now, by=actor, users=[p.user() for p in new])
            return _Plan(writes=writes, emit=emit, result=invalid)

        return await self._commit(thread_id, decide)

    async def remove_participant(self, caller: TokenClaims, thread_id: str, raw_id: str) -> None:
        """Remove a member (the caller may remove themselves); removing a non-member changes nothing."""
        require(caller, Permission.MANAGE_PARTICIPANTS)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            gone = thread.member(raw_id)
            if gone is None:
                return _Plan()
            now = self._now()
            thread.participants = [p for p in thread.participants if p.raw_id != raw_id]
            thread.touch(now)
            message = system_message(thread, "participantRemoved", actor.raw_id, now, participants=[gone.to_wire()])
            emit = self._emit("participant_removed", thread, now, by=actor, users=[gone.user()])
            return _Plan(writes=self._message_writes(thread, message), emit=emit)

        await self._commit(thread_id, decide)

    async def _screen(
        self, requested: list[RequestedParticipant]
    ) -> tuple[list[RequestedParticipant], list[dict[str, str]]]:
        """Split into users of this resource that exist, and the rest as the service reports them (Chat spec)."""
        valid, invalid = [], []
        for p in requested:
            if is_acs_user(p.raw_id) and await self._identity_exists(p.raw_id):
                valid.append(p)
            else:
                invalid.append(_PERMISSION_CHECK_FAILED | {"target": p.raw_id})
        return valid, invalid

    async def _identity_exists(self, raw_id: str) -> bool:
        try:
            await self.store.get_document(IDENTITIES, raw_id)
        except Missing:
            return False
        return True

    # read receipts and typing ------------------------------------------------------------------------------
    async def send_read_receipt(self, caller: TokenClaims, thread_id: str, message_id: str) -> None:
        """Record the latest message the caller has read (no events: receipts travel in real time only)."""
        require(caller, Permission.CHAT)
        await self._member_thread(caller, thread_id)
        number = _message_number(message_id)
        try:
            await self.store.get_document(MESSAGES, message_key(thread_id, number))
        except Missing:
            raise _message_not_found(message_id) from None
        key, receipt = receipt_key(thread_id, caller.user_id), {"chatMessageId": message_id, "readOn": self._now()}
        for _ in range(_ATTEMPTS):
            try:
                current = await self.store.get_document(RECEIPTS, key)
            except Missing:
                current = None
            if current and int(current.value["chatMessageId"]) >= number:
                return
            try:
                await self.store.put_document(Document(RECEIPTS, key, receipt),
                                              expect_version=current.version if current else 0)
                return
            except Conflict:
                continue
        raise _busy("read receipt", key)

    async def list_read_receipts(self, caller: TokenClaims, thread_id: str, size: int, skip: int) -> Page:
        require(caller, Permission.CHAT)
        thread, _ = await self._member_thread(caller, thread_id)
        prefix = f"{thread_id}/"
        receipts = [
            {"senderCommunicationIdentifier": communication_identifier(raw_id),
             "chatMessageId": doc.value["chatMessageId"], "readOn": ms_wire_time(doc.value["readOn"])}
            async for doc in self._scan(RECEIPTS, prefix)
            if thread.member(raw_id := doc.key.removeprefix(prefix)) is not None
        ]
        return _sliced(receipts, size, skip)

    async def send_typing_notification(self, caller: TokenClaims, thread_id: str) -> None:
        """Accepted from members; typing goes over the real-time channel only, so nothing is stored."""
        require(caller, Permission.CHAT)
        await self._member_thread(caller, thread_id)

    # thread documents: load, commit, outbox ----------------------------------------------------------------
    async def _peek(self, thread_id: str) -> Thread | None:
        try:
            return Thread.from_value((await self.store.get_document(THREADS, thread_id)).value)
        except Missing:
            return None

    async def _load(self, thread_id: str) -> tuple[Document, Thread]:
        """The thread's document and state, after carrying out outbox entries left by crashed requests."""
        for _ in range(_ATTEMPTS):
            try:
                doc = await self.store.get_document(THREADS, thread_id)
            except Missing:
                raise _thread_not_found(thread_id) from None
            thread = Thread.from_value(doc.value)
            stale = [e for e in thread.pending if e["at"] < self.resource.clock() - STALE_AFTER]
            if not stale:
                return doc, thread
            for entry in stale:
                await self._carry_out(thread_id, entry, recovered=True)
        raise ServiceUnavailable("The server is currently unable to handle the request.")

    async def _member_thread(self, caller: TokenClaims, thread_id: str) -> tuple[Thread, Participant]:
        """A live thread the caller belongs to: 404 if there is none, 403 if they are not a member."""
        _, thread = await self._load(thread_id)
        if thread.deleted_on is not None:
            raise _thread_not_found(thread_id)
        return thread, self._actor(thread, caller)

    @staticmethod
    def _actor(thread: Thread, caller: TokenClaims) -> Participant:
        member = thread.member(caller.user_id)
        if member is None:
            raise Forbidden(_NOT_ALLOWED)
        return member

    async def _commit(
        self, thread_id: str, decide: Callable[[Thread], Awaitable[_Plan]], *, deleted_ok: bool = False
    ) -> Any:
        """Decide a change on the latest state and write it if nobody else changed the thread meanwhile
        (else decide again); then carry out its outbox entry."""
        for attempt in range(_ATTEMPTS):
            doc, thread = await self._load(thread_id)
            if thread.deleted_on is not None and not deleted_ok:
                raise _thread_not_found(thread_id)
            plan = await decide(thread)
            if not plan.writes and plan.emit is None:
                return plan.result
            thread.rev += 1
            entry = self._entry(thread, plan)
            try:
                await self.store.put_document(Document(THREADS, thread_id, thread.to_value()),
                                              expect_version=doc.version)
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            await self._carry_out(thread_id, entry)
            return plan.result
        raise ServiceUnavailable("The server is currently unable to handle the request.")

    def _entry(self, thread: Thread, plan: _Plan) -> dict[str, Any]:
        """Append the outbox entry of a change to the thread, its writes stamped with the thread's `rev`."""
        writes = [{"collection": c, "key": k, "value": v | {"rev": thread.rev}} for c, k, v in plan.writes]
        entry = {"id": uuid.uuid4().hex, "at": self.resource.clock(), "writes": writes, "emit": plan.emit}
        thread.pending.append(entry)
        return entry

    async def _carry_out(self, thread_id: str, entry: dict[str, Any], *, recovered: bool = False) -> None:
        for write in entry["writes"]:
            await self._apply(write)
        if entry["emit"]:
            await self.resource.emit(self._events(entry))
        for _ in range(_ATTEMPTS):  # drop the entry from the outbox
            doc = await self.store.get_document(THREADS, thread_id)
            pending = [e for e in doc.value.get("pending") or [] if e["id"] != entry["id"]]
            if len(pending) == len(doc.value.get("pending") or []):
                break
            try:
                await self.store.put_document(Document(THREADS, thread_id, doc.value | {"pending": pending}),
                                              expect_version=doc.version)
                break
            except Conflict:
                continue
        if recovered:
            log.warning("carried out a chat change left by a crashed request",
                        extra={"action": "chat_outbox_recovered", "chat_thread": thread_id, "entry": entry["id"]})

    async def _apply(self, write: dict[str, Any]) -> None:
        """Write a document unless a newer change (a higher `rev`) already wrote it."""
        collection, key, value = write["collection"], write["key"], write["value"]
        for _ in range(_ATTEMPTS):
            try:
                current = await self.store.get_document(collection, key)
            except Missing:
                current = None
            if current and current.value.get("rev", 0) >= value["rev"]:
                return
            try:
                await self.store.put_document(Document(collection, key, value),
                                              expect_version=current.version if current else 0)
                return
            except Conflict:
                continue
        raise _busy(collection, key)  # the change stays in the outbox: carried out (and its events sent) later

    async def recover(self) -> int:
        """Carry out every stale outbox entry (a server's start-up sweep); returns how many."""
        done = 0
        async for doc in self._scan(THREADS, ""):
            thread = Thread.from_value(doc.value)
            for entry in thread.pending:
                if entry["at"] >= self.resource.clock() - STALE_AFTER:
                    continue
                try:
                    await self._carry_out(thread.id, entry, recovered=True)
                    done += 1
                except Exception:  # one bad entry must not stop the sweep; the thread's next use retries it
                    log.exception("could not carry out a chat change",
                                  extra={"action": "chat_outbox_failed", "chat_thread": thread.id})
        return done

    async def _run_recovery(self) -> None:
        """Sweep at start, and once more when entries written just before a crash have become stale."""
        try:
            await self.recover()
            await asyncio.sleep(STALE_AFTER)
            await self.recover()
        except Exception:
            log.exception("chat outbox recovery failed", extra={"action": "chat_recovery_failed"})

    # outbox contents -------------------------------------------------------------------------------------
    @staticmethod
    def _message_writes(thread: Thread, *messages: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        return [(MESSAGES, message_key(thread.id, int(m["id"])), m) for m in messages]

    @staticmethod
    def _membership_writes(thread: Thread, members: list[Participant]) -> list[tuple[str, str, dict[str, Any]]]:
        # Never deleted: listing checks membership on the thread, so a stale entry only costs a read.
        return [(MEMBERSHIPS, membership_key(p.raw_id, thread.created_on, thread.id), {"threadId": thread.id})
                for p in members]

    @staticmethod
    def _emit(action: str, thread: Thread, at: int, *, by: Participant | None = None,
              message: dict[str, Any] | None = None, users: list[Any] | None = None) -> dict[str, Any]:
        """The inputs of an action's events, as of the change, so a late publish builds the same events."""
        emit: dict[str, Any] = {"action": action, "at": at, "transactionId": new_transaction_id(),
                                "thread": thread_snapshot_value(thread)}
        if by is not None:
            emit["by"] = user_to_value(by.user())
        if message is not None:
            emit["message"] = message
        if users is not None:
            emit["users"] = [user_to_value(u) for u in users]
        return emit

    def _events(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of an outbox entry, built by the resource's profile; ids derive from the entry's."""
        e, profile = entry["emit"], self.resource.profile
        # Random-looking (version 4, like the service's) but derived, so a late publish repeats the same ids.
        ids = (str(uuid.UUID(bytes=uuid.uuid5(_EVENT_IDS, f"{entry['id']}/{n}").bytes, version=4))
               for n in itertools.count())
        em = replace(self.resource.emission(), event_time=from_ms(e["at"]), transaction_id=e["transactionId"],
                     new_id=lambda: next(ids))
        thread = thread_snapshot_from_value(e["thread"])
        change = Change(user_from_value(e["by"]), from_ms(e["at"])) if "by" in e else None
        users = [user_from_value(u) for u in e.get("users", [])]
        match e["action"]:
            case "thread_created":
                return profile.thread_created(em, thread)
            case "message_sent":
                return profile.message_sent(em, thread, message_snapshot(e["message"]))
            case "message_edited" if change:
                return profile.message_edited(em, thread, message_snapshot(e["message"]), change.by)
            case "message_deleted" if change:
                return profile.message_deleted(em, thread, message_snapshot(e["message"]), change.by)
            case "thread_updated" if change:
                return profile.thread_updated(em, thread, change)
            case "thread_deleted" if change:
                return profile.thread_deleted(em, thread, change)
            case "participants_added" if change:
                return profile.participants_added(em, thread, change, users)
            case "participant_removed" if change:
                return profile.participant_removed(em, thread, change, users[0])
        raise ValueError(f"unknown chat action in outbox: {e['action']!r}")

    # listing -----------------------------------------------------------------------------------------------
    async def _scan(self, collection: str, prefix: str, after: str | None = None) -> AsyncIterator[Document]:
        """Documents whose keys start with `prefix`, in key order, after `after`."""
        batch, after = 100, after or prefix
        while True:
            docs = await self.store.list_documents(collection, after_key=after, limit=batch)
            for doc in docs:
                if not doc.key.startswith(prefix):
                    return
                yield doc
            if len(docs) < batch:
                return
            after = docs[-1].key

    @staticmethod
    async def _paged(
        docs: AsyncIterator[Document], size: int, pick: Callable[[Document], Awaitable[Any]]
    ) -> Page:
        """Up to `size` items `pick` keeps (None skips, `_END` stops), and a sync state if more follow."""
        items: list[dict[str, Any]] = []
        last = ""
        async for doc in docs:
            item = await pick(doc)
            if item is _END:
                break
            if item is None:
                continue
            if len(items) == size:
                return Page(items, sync_state=encode_cursor(last))
            items.append(item)
            last = doc.key
        return Page(items)


class _End:
    """`_paged`: no later document qualifies."""


_END = _End()


def _sliced(items: list[dict[str, Any]], size: int, skip: int) -> Page:
    page = items[skip:skip + size]
    return Page(page, next_skip=skip + size if skip + size < len(items) else None)


def _merge(current: dict[str, str], patch: dict[str, str | None] | None) -> dict[str, str]:
    """JSON merge-patch of string metadata: null removes a key."""
    merged = dict(current)
    for k, v in (patch or {}).items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged


def _message_number(message_id: str) -> int:
    if not message_id.isdigit() or len(message_id) > 13:
        raise _message_not_found(message_id)
    return int(message_id)


def _thread_not_found(thread_id: str) -> NotFound:
    return NotFound(f"Chat thread '{thread_id}' was not found.", code="NotFound")


def _message_not_found(message_id: str) -> NotFound:
    return NotFound(f"Chat message '{message_id}' was not found.", code="NotFound")
