"""Chat state as store documents, and its wire form (
azure-rest-api-specs `specification/communication/data-plane/Chat/stable/2024-03-07`).

Collections and keys are chosen so that the store's one ordered listing (by key, bytewise on both backends)
serves every page the API returns:

    chat.threads      {threadId}                                  the thread: topic, members, counters
    chat.messages     {threadId}/{10^13-1 - messageId}            messages newest first (ids are epoch ms)
    chat.memberships  {rawId}/{10^13-1 - createdOn}/{threadId}    a user's threads newest first
    chat.receipts     {threadId}/{rawId}                          each member's latest read receipt
    chat.requests     {rawId}/{repeatability-request-id}          idempotent thread creation

The thread document is the one place every change of a thread is decided: see `acs/chat.py`.
Times are kept as epoch milliseconds.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from commgrid.acs.identifiers import communication_identifier, phone_raw_id
from commgrid.errors import BadRequest, Detail, InvalidInput
from commgrid.events.acs import ChatMessageSnapshot, ChatThreadSnapshot, ChatUser
from commgrid.timestamps import from_ms, ms_wire_time, parse_time, to_ms

THREADS = "chat.threads"
MESSAGES = "chat.messages"
MEMBERSHIPS = "chat.memberships"
RECEIPTS = "chat.receipts"
REQUESTS = "chat.requests"

#: Epoch milliseconds stay below 10^13 until the year 2286, so 13 digits keep key order = numeric order.
_SPAN = 10**13 - 1

# User ids the identity API issues (`8:acs:{resource guid}_{suffix}`), and the other identifier kinds a
# request may name (phone numbers, Teams users and apps), which are well formed but cannot join a thread.
_ACS_USER = re.compile(r"^8:acs:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_[0-9a-f-]+$", re.I)
_OTHER_KINDS = re.compile(r"^(4:\+?\d{3,20}|8:(orgid|dod|gcch|teamsvisitor|dod-acs|gcch-acs):\S+|28:\S+)$")


# --- time ----------------------------------------------------------------------------------------------


def time_param(text: str, name: str) -> int:
    """Epoch ms of an RFC 3339 timestamp from a query or body (`2024-01-01T00:00:00Z`, offsets, fractions)."""
    try:
        return to_ms(parse_time(text))
    except (ValueError, AttributeError):
        raise _invalid(name, f"'{text}' is not an RFC 3339 timestamp (yyyy-MM-ddTHH:mm:ssZ).") from None


# --- keys ----------------------------------------------------------------------------------------------


def message_key(thread_id: str, message_id: int) -> str:
    return f"{thread_id}/{_SPAN - message_id:013d}"


def membership_key(raw_id: str, created_on: int, thread_id: str) -> str:
    return f"{raw_id}/{_SPAN - created_on:013d}/{thread_id}"


def receipt_key(thread_id: str, raw_id: str) -> str:
    return f"{thread_id}/{raw_id}"


def request_key(raw_id: str, request_id: str) -> str:
    return f"{raw_id}/{request_id}"


def new_thread_id() -> str:
    return f"19:{uuid.uuid4().hex}@thread.v2"


def encode_cursor(key: str) -> str:
    """An opaque `syncState`: hex, like the service's, so the SDK's re-quoting of nextLink leaves it intact."""
    return key.encode().hex()


def decode_cursor(state: str, prefix: str) -> str:
    try:
        key = bytes.fromhex(state).decode()
    except ValueError:
        key = ""
    if not key.startswith(prefix):
        raise _invalid("syncState", "The syncState is not one this service issued for this list.")
    return key


# --- identifiers -----------------------------------------------------------------------------------------


def identifier_raw_id(model: Any) -> str:
    """The raw id of a CommunicationIdentifierModel; the SDK always sends `rawId` (Chat spec)."""
    raw = None
    if isinstance(model, dict):
        raw = model.get("rawId")
        user = model.get("communicationUser")
        if raw is None and isinstance(user, dict):
            raw = user.get("id")
        phone = model.get("phoneNumber")
        if raw is None and isinstance(phone, dict) and isinstance(phone.get("value"), str):
            raw = phone_raw_id(phone["value"])
    if not isinstance(raw, str) or not (_ACS_USER.match(raw) or _OTHER_KINDS.match(raw)):
        raise BadRequest("Identifier format is invalid.", code="InvalidIdentifier",
                         details=[Detail("InvalidIdentifier", f"Identifier format is invalid: {raw!r}.")])
    return raw


def is_acs_user(raw_id: str) -> bool:
    return bool(_ACS_USER.match(raw_id))


# --- threads ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Participant:
    raw_id: str
    display_name: str | None = None
    share_history_time: int = 0  # epoch ms; the service shows the creator and defaults as 1970-01-01T00:00:00Z

    def user(self) -> ChatUser:
        return ChatUser(self.raw_id, self.display_name)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"communicationIdentifier": communication_identifier(self.raw_id)}
        if self.display_name is not None:
            body["displayName"] = self.display_name
        return body | {"shareHistoryTime": ms_wire_time(self.share_history_time)}

    def to_value(self) -> list[Any]:
        return [self.raw_id, self.display_name, self.share_history_time]

    @classmethod
    def from_value(cls, value: list[Any]) -> Participant:
        return cls(*value)


@dataclass(slots=True)
class Thread:
    """A chat thread as its document holds it. `version` is the epoch ms of its last change, as thread events
    carry it (Chat spec)."""

    id: str
    topic: str
    created_on: int
    created_by: str
    participants: list[Participant]
    version: int
    updated_on: int
    metadata: dict[str, str] = field(default_factory=dict)
    sequence: int = 0  # the last sequenceId given
    last_message_id: int = 0
    last_message_received_on: int | None = None
    deleted_on: int | None = None

    def member(self, raw_id: str) -> Participant | None:
        return next((p for p in self.participants if p.raw_id == raw_id), None)

    def creator(self) -> ChatUser:
        found = self.member(self.created_by)
        return ChatUser(self.created_by, found.display_name if found else None)

    def next_message_id(self, now: int) -> int:
        """Ids are compose-time epoch ms (wire-facts: chat API), unique and increasing within the thread."""
        self.last_message_id = max(now, self.last_message_id + 1)
        self.sequence += 1
        return self.last_message_id

    def touch(self, now: int) -> int:
        """Record a change of the thread itself (topic, members); returns its new version."""
        self.version = max(now, self.version + 1)
        self.updated_on = max(self.updated_on, now)
        return self.version

    def snapshot(self) -> ChatThreadSnapshot:
        return ChatThreadSnapshot(self.id, self.topic, self.creator(), from_ms(self.created_on), self.version,
                                  tuple(p.user() for p in self.participants), dict(self.metadata))

    def properties(self) -> dict[str, Any]:
        """ChatThreadProperties (Chat spec); `metadata` only where a newer api-version set it."""
        body: dict[str, Any] = {"id": self.id, "topic": self.topic, "createdOn": ms_wire_time(self.created_on),
                                "createdByCommunicationIdentifier": communication_identifier(self.created_by)}
        if self.deleted_on is not None:
            body["deletedOn"] = ms_wire_time(self.deleted_on)
        return body | ({"metadata": dict(self.metadata)} if self.metadata else {})

    def item(self) -> dict[str, Any]:
        """ChatThreadItem, as `list_chat_threads` shows it."""
        body: dict[str, Any] = {"id": self.id, "topic": self.topic}
        if self.deleted_on is not None:
            body["deletedOn"] = ms_wire_time(self.deleted_on)
        if self.last_message_received_on is not None:
            body["lastMessageReceivedOn"] = ms_wire_time(self.last_message_received_on)
        return body

    def to_value(self) -> dict[str, Any]:
        return {
            "id": self.id, "topic": self.topic, "createdOn": self.created_on, "createdBy": self.created_by,
            "participants": [p.to_value() for p in self.participants], "version": self.version,
            "updatedOn": self.updated_on, "metadata": self.metadata, "sequence": self.sequence,
            "lastMessageId": self.last_message_id, "lastMessageReceivedOn": self.last_message_received_on,
            "deletedOn": self.deleted_on,
        }

    @classmethod
    def from_value(cls, v: dict[str, Any]) -> Thread:
        return cls(
            id=v["id"], topic=v["topic"], created_on=v["createdOn"], created_by=v["createdBy"],
            participants=[Participant.from_value(p) for p in v["participants"]], version=v["version"],
            updated_on=v["updatedOn"], metadata=v.get("metadata") or {}, sequence=v["sequence"],
            last_message_id=v["lastMessageId"], last_message_received_on=v.get("lastMessageReceivedOn"),
            deleted_on=v.get("deletedOn"),
        )


# --- messages ------------------------------------------------------------------------------------------
# A message document is its wire form with epoch-ms times and the sender's raw id.


def user_message(thread: Thread, sender: str, content: str, kind: str, display_name: str | None,
                 metadata: dict[str, str], now: int) -> dict[str, Any]:
    message_id = thread.next_message_id(now)
    value: dict[str, Any] = {"id": str(message_id), "type": kind, "sequenceId": thread.sequence,
                             "version": message_id, "createdOn": message_id, "content": {"message": content},
                             "sender": sender}
    if display_name is not None:
        value["senderDisplayName"] = display_name
    return value | ({"metadata": metadata} if metadata else {})


def system_message(thread: Thread, kind: str, initiator: str, now: int, **content: Any) -> dict[str, Any]:
    """topicUpdated / participantAdded / participantRemoved: no sender, the initiator in `content`
    (wire-facts: chat API)."""
    message_id = thread.next_message_id(now)
    body = content | {"initiatorCommunicationIdentifier": communication_identifier(initiator)}
    return {"id": str(message_id), "type": kind, "sequenceId": thread.sequence, "version": message_id,
            "createdOn": message_id, "content": body}


def message_to_wire(value: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"id": value["id"], "type": value["type"], "sequenceId": str(value["sequenceId"]),
                            "version": str(value["version"]), "content": value["content"]}
    if "senderDisplayName" in value:
        body["senderDisplayName"] = value["senderDisplayName"]
    body["createdOn"] = ms_wire_time(value["createdOn"])
    if "sender" in value:
        body["senderCommunicationIdentifier"] = communication_identifier(value["sender"])
    for name in ("deletedOn", "editedOn"):
        if value.get(name) is not None:
            body[name] = ms_wire_time(value[name])
    return body | ({"metadata": value["metadata"]} if value.get("metadata") else {})


def message_snapshot(value: dict[str, Any]) -> ChatMessageSnapshot:
    optional = {name: from_ms(value[key]) for name, key in (("edited_at", "editedOn"), ("deleted_at", "deletedOn"))
                if value.get(key) is not None}
    return ChatMessageSnapshot(
        message_id=value["id"], sender=ChatUser(value["sender"], value.get("senderDisplayName")),
        content=value["content"].get("message", ""), created_at=from_ms(value["createdOn"]),
        version=value["version"], type=value["type"], metadata=dict(value.get("metadata") or {}), **optional,
    )


# --- request validation ----------------------------------------------------------------------------------


def _invalid(target: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="BadRequest", details=[Detail("InvalidInput", f"{target}: {message}")])


def require_string(body: dict[str, Any], name: str, *, required: bool = False, empty: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(name, f"'{name}' is required.")
        return None
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _invalid(name, f"'{name}' must be a{'' if empty else ' non-empty'} string.")
    return value


def metadata_of(body: dict[str, Any]) -> dict[str, str]:
    """`metadata` of a new message or thread: an object of string values."""
    value = metadata_patch_of(body) or {}
    if any(v is None for v in value.values()):
        raise _invalid("metadata", "'metadata' must be an object of string values.")
    return {k: v for k, v in value.items() if v is not None}


def metadata_patch_of(body: dict[str, Any]) -> dict[str, str | None] | None:
    """`metadata` of a merge-patch: string values, null removing a key; None when absent."""
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(v is None or isinstance(v, str) for v in value.values()):
        raise _invalid("metadata", "'metadata' must be an object of string values.")
    return value


@dataclass(frozen=True, slots=True)
class RequestedParticipant:
    raw_id: str
    display_name: str | None
    share_history_time: int


def participants_of(items: Any, name: str = "participants") -> list[RequestedParticipant]:
    """ChatParticipant objects from a request, first mention of each id kept; a bad identifier fails all."""
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid(name, f"'{name}' must be an array of participants.")
    found: dict[str, RequestedParticipant] = {}
    for item in items:
        raw = identifier_raw_id(item.get("communicationIdentifier"))
        display = require_string(item, "displayName")
        share = item.get("shareHistoryTime")
        share_ms = time_param(share, "shareHistoryTime") if isinstance(share, str) else 0
        found.setdefault(raw, RequestedParticipant(raw, display, max(share_ms, 0)))
    return list(found.values())


def page_size(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise _invalid("maxPageSize", "'maxPageSize' must be a positive integer.")
    return min(size, maximum)


def skip_of(value: str | None) -> int:
    if value is None:
        return 0
    try:
        skip = int(value)
    except ValueError:
        skip = -1
    if skip < 0:
        raise _invalid("skip", "'skip' must be a non-negative integer.")
    return skip
