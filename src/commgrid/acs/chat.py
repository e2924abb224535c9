"""Chat: threads, messages, participants, read receipts and typing, and the events each change emits, for the
Chat REST API (azure-rest-api-specs `specification/communication/data-plane/Chat/stable/2024-03-07`; docs/wire-facts.md,
Chat API details and Who gets which event).

Every change of a thread is decided on the latest state of its document and written as one store transaction
(`CommunicationResource.emit_change`): the thread document under its optimistic version, the documents the
change implies (messages, memberships), and its events with their deliveries. A concurrent change of the thread
fails the version check and writes nothing, and the change is decided again on the new state. So a crash leaves
a change whole or not at all, and the caller is answered once it is durable.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
    to_ms,
    user_message,
)
from commgrid.acs.identifiers import communication_identifier
from commgrid.acs.resource import IDENTITIES, CommunicationResource
from commgrid.acs.tokens import Permission, TokenClaims, require
from commgrid.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from commgrid.events.acs import Change, ChatUser
from commgrid.faults import fault_point
from commgrid.store.base import Document, DocumentWrite, Missing, VersionConflict

log = logging.getLogger("commgrid.chat")

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
_NOT_ALLOWED = "User is not allowed to perform specified action."  # the spec's 403 example (Chat spec)
# An invalid participant as the service reports it (azure-cli scenario tests, Chat spec).
_PERMISSION_CHECK_FAILED = {"code": "403", "message": "Permissions check failed"}


@dataclass
class _Plan:
    """What one change of a thread implies besides the thread itself: documents to write, events to publish,
    and the answer; `changed` False when the request changes nothing (then nothing is written)."""

    writes: list[DocumentWrite] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    changed: bool = True


_UNCHANGED = _Plan(changed=False)


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
        writes = [DocumentWrite(THREADS, thread_id, thread.to_value(), expect_version=0),
                  *self._message_writes(thread, added, titled), *self._membership_writes(thread, members)]
        try:
            await self.resource.emit_change(writes, self._events("thread_created", thread, now))
        except VersionConflict:  # a repeated request created it concurrently
            return (await self._load(thread_id))[1], invalid
        return thread, invalid

    async def _remember_request(self, key: str, thread_id: str, invalid: list[dict[str, str]]) -> dict[str, Any]:
        record = {"threadId": thread_id, "invalidParticipants": invalid}
        try:
            await self.store.put_document(Document(REQUESTS, key, record), expect_version=0)
        except VersionConflict:
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

        return await self._paged(self.store.scan_documents(MEMBERSHIPS, prefix, after=after), size, pick)

    async def delete_thread(self, caller: TokenClaims, thread_id: str) -> None:
        """Mark the thread deleted (it stays listed with `deletedOn`); deleting it again changes nothing."""
        require(caller, Permission.DELETE_THREAD)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            if thread.deleted_on is not None:
                return _UNCHANGED
            now = self._now()
            thread.deleted_on, thread.updated_on = now, max(thread.updated_on, now)
            return _Plan(events=self._events("thread_deleted", thread, now, by=actor))

        await self._commit(thread_id, decide, deleted_ok=True)

    async def update_thread(
        self, caller: TokenClaims, thread_id: str, topic: str | None, metadata: dict[str, str | None] | None
    ) -> None:
        """Set the topic (adds a `topicUpdated` message) and merge metadata (newer api-versions)."""
        require(caller, Permission.UPDATE_THREAD)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            if topic is None and metadata is None:
                return _UNCHANGED
            now = self._now()
            thread.metadata = _merge(thread.metadata, metadata)
            writes = []
            if topic is not None:
                thread.topic = topic
                writes = self._message_writes(thread, system_message(thread, "topicUpdated", actor.raw_id, now,
                                                                      topic=topic))
            thread.touch(now)
            return _Plan(writes=writes, events=self._events("thread_updated", thread, now, by=actor))

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
            events = self._events("message_sent", thread, now, message=message)
            return _Plan(writes=self._message_writes(thread, message), events=events, result=message["id"])

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

        return await self._paged(self.store.scan_documents(MESSAGES, prefix, after=after), size, pick)

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
                return _UNCHANGED
            now = self._now()
            edited = dict(message)
            if content is not None:
                edited["content"] = {"message": content}
            edited["metadata"] = _merge(message.get("metadata") or {}, metadata)
            # The version becomes the edit's epoch ms, which `editedOn` shows (wire-facts: chat API).
            edited["version"] = edited["editedOn"] = max(now, message["version"] + 1)
            thread.updated_on = max(thread.updated_on, now)
            events = self._events("message_edited", thread, now, by=actor, message=edited)
            return _Plan(writes=self._message_writes(thread, edited), events=events)

        await self._commit(thread_id, decide)

    async def delete_message(self, caller: TokenClaims, thread_id: str, message_id: str) -> None:
        """Soft-delete the caller's own message: it stays readable with `deletedOn` (wire-facts: chat API)."""
        require(caller, Permission.CHAT)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            message = await self._own_message(thread, caller, message_id)
            if message.get("deletedOn") is not None:
                return _UNCHANGED
            now = self._now()
            deleted = dict(message)
            deleted["version"] = deleted["deletedOn"] = max(now, message["version"] + 1)
            thread.updated_on = max(thread.updated_on, now)
            events = self._events("message_deleted", thread, now, by=actor, message=deleted)
            return _Plan(writes=self._message_writes(thread, deleted), events=events)

        await self._commit(thread_id, decide)

    async def _own_message(self, thread: Thread, caller: TokenClaims, message_id: str) -> dict[str, Any]:
        """The message as it is; only its sender may change it."""
        try:
            message = (await self.store.get_document(MESSAGES, message_key(thread.id, _message_number(message_id)))
                       ).value
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
                return _Plan(changed=False, result=invalid)
            if len(thread.participants) + len(new) > MAX_PARTICIPANTS:
                raise BadRequest(f"A thread can have at most {MAX_PARTICIPANTS} participants.")
            now = self._now()
            thread.participants += new
            thread.touch(now)
            message = system_message(thread, "participantAdded", actor.raw_id, now,
                                     participants=[p.to_wire() for p in new])
            writes = [*self._message_writes(thread, message), *self._membership_writes(thread, new)]
            events = self._events("participants_added", thread, now, by=actor, users=[p.user() for p in new])
            return _Plan(writes=writes, events=events, result=invalid)

        return await self._commit(thread_id, decide)

    async def remove_participant(self, caller: TokenClaims, thread_id: str, raw_id: str) -> None:
        """Remove a member (the caller may remove themselves); removing a non-member changes nothing."""
        require(caller, Permission.MANAGE_PARTICIPANTS)

        async def decide(thread: Thread) -> _Plan:
            actor = self._actor(thread, caller)
            gone = thread.member(raw_id)
            if gone is None:
                return _UNCHANGED
            now = self._now()
            thread.participants = [p for p in thread.participants if p.raw_id != raw_id]
            thread.touch(now)
            message = system_message(thread, "participantRemoved", actor.raw_id, now, participants=[gone.to_wire()])
            events = self._events("participant_removed", thread, now, by=actor, users=[gone.user()])
            return _Plan(writes=self._message_writes(thread, message), events=events)

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
            except VersionConflict:
                continue
        raise _busy("read receipt", key)

    async def list_read_receipts(self, caller: TokenClaims, thread_id: str, size: int, skip: int) -> Page:
        require(caller, Permission.CHAT)
        thread, _ = await self._member_thread(caller, thread_id)
        prefix = f"{thread_id}/"
        receipts = [
            {"senderCommunicationIdentifier": communication_identifier(raw_id),
             "chatMessageId": doc.value["chatMessageId"], "readOn": ms_wire_time(doc.value["readOn"])}
            async for doc in self.store.scan_documents(RECEIPTS, prefix)
            if thread.member(raw_id := doc.key.removeprefix(prefix)) is not None
        ]
        return _sliced(receipts, size, skip)

    async def send_typing_notification(self, caller: TokenClaims, thread_id: str) -> None:
        """Accepted from members; typing goes over the real-time channel only, so nothing is stored."""
        require(caller, Permission.CHAT)
        await self._member_thread(caller, thread_id)

    # thread documents: load and commit ---------------------------------------------------------------------
    async def _peek(self, thread_id: str) -> Thread | None:
        try:
            return Thread.from_value((await self.store.get_document(THREADS, thread_id)).value)
        except Missing:
            return None

    async def _load(self, thread_id: str) -> tuple[Document, Thread]:
        """The thread's document and state."""
        try:
            doc = await self.store.get_document(THREADS, thread_id)
        except Missing:
            raise _thread_not_found(thread_id) from None
        return doc, Thread.from_value(doc.value)

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
        """Decide a change on the latest state and write it, with its documents and events, in one transaction
        if nobody else changed the thread meanwhile (else decide again)."""
        for attempt in range(_ATTEMPTS):
            doc, thread = await self._load(thread_id)
            if thread.deleted_on is not None and not deleted_ok:
                raise _thread_not_found(thread_id)
            plan = await decide(thread)
            if not plan.changed:
                return plan.result
            try:
                await self.resource.emit_change(
                    [DocumentWrite(THREADS, thread_id, thread.to_value(), doc.version), *plan.writes], plan.events)
            except VersionConflict:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            fault_point("chat-after-commit")
            return plan.result
        raise ServiceUnavailable("The server is currently unable to handle the request.")

    # what a change writes and emits ------------------------------------------------------------------------
    @staticmethod
    def _message_writes(thread: Thread, *messages: dict[str, Any]) -> list[DocumentWrite]:
        return [DocumentWrite(MESSAGES, message_key(thread.id, int(m["id"])), m) for m in messages]

    @staticmethod
    def _membership_writes(thread: Thread, members: list[Participant]) -> list[DocumentWrite]:
        # Never deleted: listing checks membership on the thread, so a stale entry only costs a read.
        return [DocumentWrite(MEMBERSHIPS, membership_key(p.raw_id, thread.created_on, thread.id),
                              {"threadId": thread.id}) for p in members]

    def _events(self, action: str, thread: Thread, at: int, *, by: Participant | None = None,
                message: dict[str, Any] | None = None, users: list[ChatUser] | None = None) -> list[dict[str, Any]]:
        """An action's events, built by the resource's profile from the thread as the change left it."""
        em, profile = replace(self.resource.emission(), event_time=from_ms(at)), self.resource.profile
        snapshot = thread.snapshot()
        change = Change(by.user(), from_ms(at)) if by is not None else None
        match action:
            case "thread_created":
                return profile.thread_created(em, snapshot)
            case "message_sent" if message:
                return profile.message_sent(em, snapshot, message_snapshot(message))
            case "message_edited" if change and message:
                return profile.message_edited(em, snapshot, message_snapshot(message), change.by)
            case "message_deleted" if change and message:
                return profile.message_deleted(em, snapshot, message_snapshot(message), change.by)
            case "thread_updated" if change:
                return profile.thread_updated(em, snapshot, change)
            case "thread_deleted" if change:
                return profile.thread_deleted(em, snapshot, change)
            case "participants_added" if change and users:
                return profile.participants_added(em, snapshot, change, users)
            case "participant_removed" if change and users:
                return profile.participant_removed(em, snapshot, change, users[0])
        raise ValueError(f"unknown chat action: {action!r}")

    # listing -----------------------------------------------------------------------------------------------
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
