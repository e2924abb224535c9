"""Chat with the official SDKs against a real `commgrid serve` over HTTPS (the Chat spec,
https://learn.microsoft.com/azure/event-grid/communication-services-chat-events, docs/wire-facts.md).

Users and tokens come from azure-communication-identity, every chat call from azure-communication-chat 1.3.0.
Events are read back from the system topic and received by a real webhook subscriber.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    ChatThreadClient,
    CommunicationTokenCredential,
    CommunicationUserIdentifier,
)
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import subscribe
from tests.support import ServerProcess
from tests.unit.test_acs_events import CURRENT_KEYS, CURRENT_MESSAGE_RECEIVED, SEED_SAMPLES

NS = "Microsoft.Communication."
THREAD_ID = re.compile(r"^19:[0-9a-f]{32}@thread\.v2$")
NOT_ALLOWED = "User is not allowed to perform specified action."


@dataclass
class User:
    identifier: CommunicationUserIdentifier
    token: str

    @property
    def id(self) -> str:
        return self.identifier.properties["id"]


@dataclass
class Acs:
    """One server's Communication Services resource, as a quickstart sees it."""

    server: ServerProcess
    clients: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        info = self.server.info()["communicationServices"]
        self.connection_string = info["connectionString"]
        self.topic = info["systemTopic"]["name"]
        self.endpoint = self.server.https
        # The identity client has no close(): give it a transport this object closes.
        self.transport = self._keep(RequestsTransport(connection_verify=self.server.ca))
        self.identity = CommunicationIdentityClient.from_connection_string(self.connection_string,
                                                                           transport=self.transport)

    def _keep(self, client: Any) -> Any:
        self.clients.append(client)
        return client

    def user(self, *scopes: str) -> User:
        identifier, token = self.identity.create_user_and_token(list(scopes or ("chat",)))
        return User(identifier, token.token)

    def chat(self, user: User) -> ChatClient:
        return self._keep(ChatClient(self.endpoint, CommunicationTokenCredential(user.token),
                                     connection_verify=self.server.ca))

    def thread(self, user: User, thread_id: str) -> ChatThreadClient:
        return self._keep(ChatThreadClient(self.endpoint, CommunicationTokenCredential(user.token), thread_id,
                                           connection_verify=self.server.ca))

    def create(self, creator: User, *members: User, topic: str = "Lunch") -> ChatThreadClient:
        participants = [ChatParticipant(identifier=m.identifier, display_name=f"name-{i}")
                        for i, m in enumerate(members)]
        result = self.chat(creator).create_chat_thread(topic, thread_participants=participants)
        assert result.errors == []
        return self.thread(creator, result.chat_thread.id)

    def events(self, thread_id: str | None = None) -> list[dict[str, Any]]:
        """The system topic's stored events, oldest first (those of one thread, if given)."""
        listed = json.loads(self.server.cli("events", "list", "--topic", self.topic, "--limit", "100000",
                                            "--json").stdout)
        events = [e["event"] for e in reversed(listed)]
        return [e for e in events if thread_id is None or e["data"].get("threadId") == thread_id]

    def raw(self, user: User, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.endpoint, verify=ssl.create_default_context(cafile=self.server.ca)) as client:
            return client.request(method, path, headers={"Authorization": f"Bearer {user.token}"}, **kwargs)

    def close(self) -> None:
        """Close the SDK clients' connections, so the server stops without waiting for them."""
        for client in self.clients:
            client.close()


@pytest.fixture(scope="module")
def acs(server: ServerProcess, rx: Receiver) -> Iterator[Acs]:
    resource = Acs(server)
    # Chat events take the normal subscription path: one webhook gets everything, one only a type (item 9).
    subscribe(server, resource.topic, "all-chat", rx.endpoint("all"), settle=False)
    subscribe(server, resource.topic, "in-thread", rx.endpoint("in-thread"), "--included-event-types",
              NS + "ChatMessageReceivedInThread", "--event-delivery-schema", "cloudeventschemav1_0")
    yield resource
    resource.close()


@contextmanager
def own_server(data_dir: Path, **options: Any) -> Iterator[Acs]:
    """A server of the test's own and its resource, stopped however the test ends."""
    server = ServerProcess(data_dir, **options).start()
    try:
        resource = Acs(server)
        try:
            yield resource
        finally:
            resource.close()
    finally:
        if server.process:
            server.stop()


def by_type(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["eventType"].removeprefix(NS) for e in events)


def forbidden(exc: pytest.ExceptionInfo[HttpResponseError]) -> bool:
    return exc.value.status_code == 403 and NOT_ALLOWED in str(exc.value)


# --- the quickstart -------------------------------------------------------------------------------------


def test_quickstart_thread_messages_and_participants(acs: Acs) -> None:
    alice, bob = acs.user(), acs.user()
    result = acs.chat(alice).create_chat_thread(
        "Quickstart", thread_participants=[ChatParticipant(identifier=bob.identifier, display_name="Bob")])
    thread = result.chat_thread
    assert THREAD_ID.match(thread.id) and thread.topic == "Quickstart" and result.errors == []
    assert thread.created_by.properties["id"] == alice.id
    alice_thread, bob_thread = acs.thread(alice, thread.id), acs.thread(bob, thread.id)

    props = bob_thread.get_properties()
    assert (props.id, props.topic, props.created_by.raw_id) == (thread.id, "Quickstart", alice.id)
    sent = alice_thread.send_message("Hello Bob", sender_display_name="Alice", metadata={"k": "v"})
    assert sent.id.isdigit() and len(sent.id) == 13

    message = bob_thread.get_message(sent.id)
    assert (message.type, message.sequence_id, message.version) == (ChatMessageType.TEXT, "3", sent.id)
    assert (message.content.message, message.sender_display_name, message.metadata) == ("Hello Bob", "Alice",
                                                                                        {"k": "v"})
    assert message.sender.properties["id"] == alice.id
    # The id is the compose time in epoch milliseconds (Chat spec).
    assert int(message.created_on.timestamp() * 1000) == int(sent.id)
    assert message.edited_on is None and message.deleted_on is None

    listed = list(bob_thread.list_messages())
    assert [(m.sequence_id, m.type) for m in listed] == [
        ("3", ChatMessageType.TEXT), ("2", ChatMessageType.TOPIC_UPDATED), ("1", ChatMessageType.PARTICIPANT_ADDED)]
    added, titled = listed[2], listed[1]
    assert {p.identifier.raw_id for p in added.content.participants} == {alice.id, bob.id}
    assert added.content.initiator.raw_id == alice.id and added.sender is None
    assert titled.content.topic == "Quickstart" and titled.content.initiator.raw_id == alice.id

    participants = {p.identifier.raw_id: p for p in bob_thread.list_participants()}
    assert set(participants) == {alice.id, bob.id}
    assert participants[bob.id].display_name == "Bob"
    assert participants[alice.id].share_history_time == datetime(1970, 1, 1, tzinfo=UTC)

    (item,) = [t for t in acs.chat(bob).list_chat_threads() if t.id == thread.id]
    assert item.topic == "Quickstart" and item.deleted_on is None
    assert item.last_message_received_on == message.created_on


def test_html_messages_edits_and_soft_deletes(acs: Acs) -> None:
    alice, bob = acs.user(), acs.user()
    chat = acs.create(alice, bob)
    bob_chat = acs.thread(bob, chat.thread_id)
    html = chat.send_message("<b>hi</b>", chat_message_type=ChatMessageType.HTML)
    assert bob_chat.get_message(html.id).type == ChatMessageType.HTML

    sent = chat.send_message("first draft", metadata={"keep": "1", "drop": "2"})
    with pytest.raises(HttpResponseError) as exc:
        bob_chat.update_message(sent.id, content="not mine")
    assert forbidden(exc)
    chat.update_message(sent.id, content="final", metadata={"drop": None, "new": "3"})  # a merge-patch
    edited = bob_chat.get_message(sent.id)
    assert edited.content.message == "final" and edited.metadata == {"keep": "1", "new": "3"}
    assert edited.edited_on is not None and int(edited.version) > int(sent.id)
    assert int(edited.edited_on.timestamp() * 1000) == int(edited.version)

    chat.delete_message(sent.id)
    chat.delete_message(sent.id)  # again: still 204, nothing more happens
    deleted = bob_chat.get_message(sent.id)  # soft delete: still readable
    assert deleted.deleted_on is not None and int(deleted.version) > int(edited.version)
    assert [m.id for m in bob_chat.list_messages() if m.deleted_on] == [sent.id]
    with pytest.raises(ResourceNotFoundError):
        chat.update_message(sent.id, content="too late")

    events = acs.events(chat.thread_id)
    assert by_type(events)["ChatMessageEdited"] == 1 and by_type(events)["ChatMessageDeleted"] == 1
    assert by_type(events)["ChatMessageEditedInThread"] == 1 and by_type(events)["ChatMessageDeletedInThread"] == 1


def test_topic_participants_receipts_typing_and_thread_deletion(acs: Acs) -> None:
    alice, bob, carol = acs.user(), acs.user(), acs.user()
    chat = acs.create(alice, bob, topic="Before")
    chat.update_topic("After")
    assert acs.thread(bob, chat.thread_id).get_properties().topic == "After"

    resource_id = alice.id.split(":")[2].split("_")[0]
    ghost = CommunicationUserIdentifier(f"8:acs:{resource_id}_{uuid.uuid4()}")  # well formed, never created
    failed = chat.add_participants([ChatParticipant(identifier=carol.identifier, display_name="Carol"),
                                    ChatParticipant(identifier=ghost)])
    ((participant, error),) = failed  # invalid participants are reported, the valid one is added (Chat spec)
    assert participant.identifier.raw_id == ghost.raw_id
    assert (error.code, error.message, error.target) == ("403", "Permissions check failed", ghost.raw_id)
    assert chat.add_participants([ChatParticipant(identifier=carol.identifier)]) == []  # already there
    carol_chat = acs.thread(carol, chat.thread_id)
    assert carol_chat.get_properties().topic == "After"

    chat.remove_participant(carol.identifier)
    chat.remove_participant(carol.identifier)  # not a member any more: nothing happens
    with pytest.raises(HttpResponseError) as exc:
        carol_chat.get_properties()
    assert forbidden(exc)
    kinds = [m.type for m in chat.list_messages()]
    assert kinds[:3] == [ChatMessageType.PARTICIPANT_REMOVED, ChatMessageType.PARTICIPANT_ADDED,
                         ChatMessageType.TOPIC_UPDATED]

    bob_chat = acs.thread(bob, chat.thread_id)
    first, second = chat.send_message("one"), chat.send_message("two")
    bob_chat.send_read_receipt(second.id)
    bob_chat.send_read_receipt(first.id)  # an older one does not move the receipt back
    (receipt,) = chat.list_read_receipts()
    assert (receipt.sender.raw_id, receipt.chat_message_id) == (bob.id, second.id)
    assert abs(receipt.read_on - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(ResourceNotFoundError):
        bob_chat.send_read_receipt("1000000000000")
    bob_chat.send_typing_notification(sender_display_name="Bob")
    bob_chat.send_typing_notification()

    acs.chat(bob).delete_chat_thread(chat.thread_id)
    acs.chat(bob).delete_chat_thread(chat.thread_id)  # deleting again changes nothing
    with pytest.raises(ResourceNotFoundError):
        chat.get_properties()
    with pytest.raises(ResourceNotFoundError):
        chat.send_message("anyone?")
    (item,) = [t for t in acs.chat(alice).list_chat_threads() if t.id == chat.thread_id]
    assert item.deleted_on is not None  # deleted threads stay listed (Chat spec)

    counts = by_type(acs.events(chat.thread_id))
    assert counts["ChatThreadPropertiesUpdated"] == 1 and counts["ChatThreadPropertiesUpdatedPerUser"] == 1
    assert counts["ChatThreadParticipantAdded"] == 1 and counts["ChatMemberAddedToThreadWithUser"] == 2
    assert counts["ChatThreadParticipantRemoved"] == 1 and counts["ChatMemberRemovedFromThreadWithUser"] == 2
    assert counts["ChatThreadDeleted"] == 1 and counts["ChatThreadWithUserDeleted"] == 1


def test_repeated_create_with_the_same_idempotency_token_returns_the_first_thread(acs: Acs) -> None:
    alice, bob = acs.user(), acs.user()
    client, token = acs.chat(alice), str(uuid.uuid4())
    first = client.create_chat_thread("Once", thread_participants=[ChatParticipant(identifier=bob.identifier)],
                                      idempotency_token=token)
    again = client.create_chat_thread("Twice", idempotency_token=token)
    assert again.chat_thread.id == first.chat_thread.id and again.chat_thread.topic == "Once"
    other = client.create_chat_thread("Once")  # a new token (the SDK makes one per call): a new thread
    assert other.chat_thread.id != first.chat_thread.id
    counts = by_type(acs.events(first.chat_thread.id))
    assert counts == Counter({"ChatThreadCreated": 1, "ChatThreadCreatedWithUser": 1})


# --- pagination -------------------------------------------------------------------------------------------


def test_pagination_with_next_links(acs: Acs) -> None:
    alice, *others = (acs.user() for _ in range(6))
    chat = acs.create(alice, *others)
    sent = [chat.send_message(f"m{i}").id for i in range(7)]

    pages = [list(page) for page in chat.list_messages(results_per_page=4).by_page()]
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [m.sequence_id for p in pages for m in p] == [str(n) for n in range(9, 0, -1)]
    assert [m.id for p in pages for m in p][:7] == sent[::-1]

    fifth = chat.get_message(sent[4])
    recent = list(chat.list_messages(start_time=fifth.created_on))
    assert [m.id for m in recent] == sent[4:][::-1]

    raw = acs.raw(alice, "GET", f"/chat/threads/{chat.thread_id}/messages",
                  params={"maxPageSize": "2", "api-version": "2024-03-07"})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/json")
    next_link = raw.json()["nextLink"]  # absolute, on the host the client used (Chat spec, wire-facts: chat API)
    assert next_link.startswith(f"{acs.endpoint}/chat/threads/19%3A") and "syncState=" in next_link

    member_pages = [list(page) for page in chat.list_participants(results_per_page=4).by_page()]
    assert [len(p) for p in member_pages] == [4, 2]
    assert [p.identifier.raw_id for page in member_pages for p in page] == [u.id for u in (alice, *others)]
    assert len(list(chat.list_participants(skip=4))) == 2

    for user in others[:3]:
        acs.thread(user, chat.thread_id).send_read_receipt(sent[-1])
    receipt_pages = [list(page) for page in chat.list_read_receipts(results_per_page=2).by_page()]
    assert [len(p) for p in receipt_pages] == [2, 1]

    lister = acs.user()
    created = [acs.create(alice, lister, topic=f"t{i}").thread_id for i in range(3)]
    thread_pages = [list(p) for p in acs.chat(lister).list_chat_threads(results_per_page=2).by_page()]
    assert [[t.id for t in p] for p in thread_pages] == [created[::-1][:2], created[:1]]  # newest first
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert list(acs.chat(lister).list_chat_threads(start_time=later)) == []


# --- failures: 401, 403, 404, scopes, bad identifiers, api-version ----------------------------------------


def test_authentication_failures_are_401(acs: Acs) -> None:
    alice = acs.user()
    chat = acs.create(alice)
    header, payload, signature = alice.token.split(".")
    forged = User(alice.identifier, f"{header}.{payload}.{signature[::-1]}")
    with pytest.raises(ClientAuthenticationError):
        acs.thread(forged, chat.thread_id).get_properties()

    revoked = acs.user()
    acs.identity.revoke_tokens(revoked.identifier)
    with pytest.raises(ClientAuthenticationError):
        acs.chat(revoked).create_chat_thread("revoked")

    gone = acs.user()
    acs.identity.delete_user(gone.identifier)
    with pytest.raises(ClientAuthenticationError):
        list(acs.chat(gone).list_chat_threads())

    response = acs.raw(User(alice.identifier, "not-a-jwt"), "GET", "/chat/threads", params={"api-version": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert response.json()["error"]["message"] == "Request is not authorized."


def test_non_members_get_403_and_unknown_ids_404(acs: Acs) -> None:
    alice, mallory = acs.user(), acs.user()
    chat = acs.create(alice)
    sent = chat.send_message("private")
    outsider = acs.thread(mallory, chat.thread_id)
    for call in (outsider.get_properties, lambda: outsider.send_message("hi"), lambda: list(outsider.list_messages()),
                 lambda: outsider.get_message(sent.id), lambda: list(outsider.list_participants()),
                 lambda: outsider.add_participants([ChatParticipant(identifier=mallory.identifier)]),
                 lambda: outsider.update_topic("mine"), outsider.send_typing_notification,
                 lambda: acs.chat(mallory).delete_chat_thread(chat.thread_id)):
        with pytest.raises(HttpResponseError) as exc:
            call()
        assert forbidden(exc)
    body = acs.raw(mallory, "GET", f"/chat/threads/{chat.thread_id}", params={"api-version": "2024-03-07"}).json()
    assert body == {"error": {"code": "Forbidden", "message": NOT_ALLOWED}}

    with pytest.raises(ResourceNotFoundError):
        acs.thread(alice, f"19:{uuid.uuid4().hex}@thread.v2").get_properties()
    with pytest.raises(ResourceNotFoundError):
        list(acs.thread(alice, f"19:{uuid.uuid4().hex}@thread.v2").list_participants())
    for missing in ("1000000000000", "not-a-number"):
        with pytest.raises(ResourceNotFoundError):
            chat.get_message(missing)


def test_token_scopes_are_enforced(acs: Acs) -> None:
    alice, joiner, limited, newcomer = acs.user(), acs.user("chat.join"), acs.user("chat.join.limited"), acs.user()
    with pytest.raises(HttpResponseError) as exc:
        acs.chat(joiner).create_chat_thread("not allowed")
    assert forbidden(exc)
    chat = acs.create(alice, joiner, limited)
    joined, limited_chat = acs.thread(joiner, chat.thread_id), acs.thread(limited, chat.thread_id)
    joined.send_message("chat.join may talk")
    limited_chat.send_message("so may chat.join.limited")
    assert joined.add_participants([ChatParticipant(identifier=newcomer.identifier)]) == []
    for call in (lambda: joined.update_topic("no"), lambda: acs.chat(joiner).delete_chat_thread(chat.thread_id),
                 lambda: limited_chat.remove_participant(newcomer.identifier)):
        with pytest.raises(HttpResponseError) as exc:
            call()
        assert forbidden(exc)


def test_malformed_identifiers_and_missing_api_version_are_400(acs: Acs) -> None:
    alice = acs.user()
    chat = acs.create(alice)
    with pytest.raises(HttpResponseError) as exc:
        chat.add_participants([ChatParticipant(identifier=CommunicationUserIdentifier("8:acs:fakeid==="))])
    assert exc.value.status_code == 400 and "Identifier format is invalid" in str(exc.value)
    with pytest.raises(HttpResponseError) as exc:
        chat.remove_participant(CommunicationUserIdentifier("8:acs:fakeid==="))
    assert "Identifier format is invalid" in str(exc.value)

    response = acs.raw(alice, "GET", "/chat/threads")
    assert response.status_code == 400 and response.json()["error"]["code"] == "ApiVersionUnspecified"
    response = acs.raw(alice, "POST", f"/chat/threads/{chat.thread_id}/messages",
                       params={"api-version": "2024-03-07"}, json={"content": "x", "type": "topicUpdated"})
    assert response.status_code == 400


# --- events: fan-out, delivery, shapes -----------------------------------------------------------------


def test_a_message_to_ten_members_fans_out_to_nine_users_and_the_thread(acs: Acs, rx: Receiver) -> None:
    alice, *others = (acs.user() for _ in range(10))
    chat = acs.create(alice, *others)
    bob = others[0]
    sent = acs.thread(bob, chat.thread_id).send_message("hello all", sender_display_name="Bob")

    events = [e for e in acs.events(chat.thread_id) if e["data"].get("messageId") == sent.id]
    assert by_type(events) == Counter({"ChatMessageReceived": 9, "ChatMessageReceivedInThread": 1})
    recipients = [e["data"]["recipientId"] for e in events if e["eventType"] == NS + "ChatMessageReceived"]
    assert sorted(recipients) == sorted(u.id for u in (alice, *others[1:]))
    for event in events:
        if event["eventType"] == NS + "ChatMessageReceived":
            prefix = f"thread/{chat.thread_id}/sender/{bob.id}/recipient/"
            assert event["subject"] == prefix + event["data"]["recipientId"]
        else:
            assert event["subject"] == f"thread/{chat.thread_id}/sender/{bob.id}"
    assert len({e["data"]["transactionId"] for e in events}) == 1  # one action, one transaction
    created = by_type(acs.events(chat.thread_id))
    assert (created["ChatThreadCreated"], created["ChatThreadCreatedWithUser"]) == (1, 9)

    # ... and the same events reach a webhook subscriber through the normal delivery path (item 9).
    def delivered() -> list[dict[str, Any]]:
        return [e for e in rx.events("all") if e["data"].get("messageId") == sent.id]

    rx.wait(lambda: len(delivered()) >= 10, what="10 delivered chat events")
    assert sorted(e["id"] for e in delivered()) == sorted(e["id"] for e in events)
    in_thread = rx.wait(lambda: [e for e in rx.events("in-thread") if e["data"].get("messageId") == sent.id],
                        what="the filtered CloudEvents delivery")
    assert [(e["type"], e["source"], e["specversion"]) for e in in_thread] == [
        (NS + "ChatMessageReceivedInThread", events[0]["topic"], "1.0")]


def _shape(value: Any) -> Any:
    """What must match a sample: JSON types, keys in order, and each string's format class."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if isinstance(value, str):
        return _format(value)
    return type(value).__name__


def _format(text: str) -> str:
    timestamp = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)", text)
    if timestamp:
        digits = len(timestamp.group(1) or "")
        # .NET trims trailing zeros: whole or milliseconds (0-3 digits) vs 100 ns ticks (4-7 digits).
        return f"time:{'ms' if digits <= 3 else 'ticks'}:{timestamp.group(2)}"
    for name, pattern in (("thread", r"19:[0-9a-z]{32}@thread\.v2"), ("raw", r"8:acs:[0-9a-f-]+_[0-9a-f-]+"),
                          ("guid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
                          ("digits", r"\d+"), ("transaction", r"[A-Za-z0-9+/]{22}(\.\d+)+")):
        if re.fullmatch(pattern, text):
            return name
    if text.startswith(("thread/", "/subscriptions/")):  # subjects and topics: their labels, ids aside
        return "path:" + "/".join(text.strip("/").split("/")[0::2])
    return "text"


def _every_action(acs: Acs) -> tuple[str, list[dict[str, Any]]]:
    """One thread through every chat action (the seed's ten user-level event types and more)."""
    alice, bob, carol = acs.user(), acs.user(), acs.user()
    chat = acs.create(alice, bob, topic="Shapes")
    bob_chat = acs.thread(bob, chat.thread_id)
    sent = bob_chat.send_message("hello", sender_display_name="Bob", metadata={"key": "value"})
    bob_chat.update_message(sent.id, content="hello, edited")
    bob_chat.delete_message(sent.id)
    chat.update_topic("Shapes 2")
    chat.add_participants([ChatParticipant(identifier=carol.identifier, display_name="Carol")])
    chat.remove_participant(carol.identifier)
    acs.chat(alice).delete_chat_thread(chat.thread_id)
    return chat.thread_id, acs.events(chat.thread_id)


def test_seed_profile_events_have_the_seed_samples_shapes(acs: Acs) -> None:
    _, events = _every_action(acs)
    samples = {p.values[0]["eventType"]: p.values[0] for p in SEED_SAMPLES if "Chat" in p.values[0]["eventType"]}
    assert len(samples) == 8
    emitted = {e["eventType"]: e for e in events}
    for event_type, sample in samples.items():
        assert event_type in emitted, f"no {event_type} was emitted"
        assert _shape(emitted[event_type]) == _shape(sample), event_type
    thread_level = {NS + t for t in ("ChatThreadCreated", "ChatMessageReceivedInThread", "ChatMessageEditedInThread",
                                     "ChatMessageDeletedInThread", "ChatThreadPropertiesUpdated",
                                     "ChatThreadParticipantAdded", "ChatThreadParticipantRemoved",
                                     "ChatThreadDeleted")}
    assert set(emitted) == set(samples) | thread_level


def test_current_profile_events_have_todays_shapes(tmp_path) -> None:
    with own_server(tmp_path / "data", extra_args=("--event-profile", "current")) as acs:
        _, events = _every_action(acs)
    emitted = {e["eventType"]: e for e in events}
    assert NS + "ChatParticipantAddedToThreadWithUser" in emitted
    assert NS + "ChatMemberAddedToThreadWithUser" not in emitted
    for event_type, keys in CURRENT_KEYS.items():
        assert list(emitted[event_type]["data"]) == keys, event_type
    received = emitted[NS + "ChatMessageReceived"]
    assert _shape(received) == _shape(CURRENT_MESSAGE_RECEIVED)


# --- concurrency and crashes ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_changes_to_one_thread_all_land_in_order(tmp_path, request, backend) -> None:
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with own_server(tmp_path / "data", store=store) as acs:
        alice, *others = (acs.user() for _ in range(8))
        chat = acs.create(alice, *others)

        def talk(user: User) -> list[str]:
            client = acs.thread(user, chat.thread_id)
            client.update_topic(f"topic by {user.id[-4:]}")
            return [client.send_message(f"{user.id[-4:]} #{i}").id for i in range(5)]

        with ThreadPoolExecutor(8) as pool:
            sent = [i for ids in pool.map(talk, [alice, *others]) for i in ids]
        messages = list(chat.list_messages())[::-1]  # oldest first
        assert [m.sequence_id for m in messages] == [str(n) for n in range(1, 51)]
        assert sorted(m.id for m in messages if m.type == ChatMessageType.TEXT) == sorted(sent)
        assert [int(m.id) for m in messages] == sorted(int(m.id) for m in messages)  # ids follow the sequence
        counts = by_type(acs.events(chat.thread_id))
        assert (counts["ChatMessageReceivedInThread"], counts["ChatMessageReceived"]) == (40, 40 * 7)
        assert counts["ChatThreadPropertiesUpdated"] == 8


def _send_until_crashed(acs: Acs, users: list[User], thread_id: str, acked: list[str]) -> int:
    """Members send concurrently until the server crashes; returns its exit status."""

    def send(user: User) -> None:
        client = ChatThreadClient(acs.endpoint, CommunicationTokenCredential(user.token), thread_id,
                                  connection_verify=acs.server.ca, retry_total=0)
        with client:
            while True:
                try:
                    acked.append(client.send_message("crash?").id)
                except Exception:
                    return  # the server is gone: what was not acknowledged may or may not have happened

    workers = [threading.Thread(target=send, args=(u,)) for u in users]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return acs.server.stop()


def test_a_change_a_crash_interrupted_is_whole_or_absent_after_restart(tmp_path) -> None:
    """A crash (exit 137, as kill -9) while members send, right after a change committed and before its
    answer: every acknowledged message survives, every stored message has all its events, and no event
    announces a message that was not stored (a change and its events commit together)."""
    crash = {"COMMGRID_FAULT": "chat-after-commit@31"}  # the thread's creation, then the 30th message
    with own_server(tmp_path / "data", env=crash) as acs:
        server, users = acs.server, [acs.user() for _ in range(6)]
        thread_id = acs.create(users[0], *users[1:]).thread_id
        acked: list[str] = []
        assert _send_until_crashed(acs, users, thread_id, acked) == 137
        server.env = {}
        server.start()
        listed = [m.id for m in acs.thread(users[0], thread_id).list_messages() if m.type == ChatMessageType.TEXT]
        assert set(acked) <= set(listed)
        assert set(listed) - set(acked), "the crashed change was stored but never acknowledged"
        events = acs.events(thread_id)
        for message_id in listed:
            ids = {(e["id"], e["eventType"]) for e in events if e["data"].get("messageId") == message_id}
            assert by_type([{"eventType": t} for _, t in ids]) == Counter(
                {"ChatMessageReceivedInThread": 1, "ChatMessageReceived": 5}), message_id
        announced = {e["data"]["messageId"] for e in events if e["eventType"] == "ChatMessageReceivedInThread"}
        assert announced <= set(listed)
