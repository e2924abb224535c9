"""Paths that used to end silently now end in an explicit error or a state the operator can see.

- A chat write that loses every one of its attempts to concurrent writers answers 503 instead of reporting a
  success that wrote nothing, and writes neither its documents nor its events.
- A stored subscription whose filter no longer compiles, or whose delivery properties are incomplete, is put
  in the `Failed` state with a message (`commgrid subscription show`), and its deliveries stop cycling.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from commgrid.acs.chat_docs import MESSAGES, RECEIPTS, THREADS
from commgrid.config import Settings
from commgrid.errors import ServiceUnavailable
from commgrid.runtime import Runtime
from commgrid.store import Store, store_from_url
from commgrid.store.base import Delivery, Document, DocumentWrite, Lease, NewEvent, Route, VersionConflict
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, shown, subscribe
from tests.support import ServerProcess


class _Contended:
    """Makes every optimistic write to `collections` lose to a (simulated) concurrent writer."""

    def __init__(self, store: Store, collections: set[str]) -> None:
        self.collections = collections
        self._put, self._change = store.put_document, store.write_change
        store.put_document = self.put_document  # type: ignore[method-assign]
        store.write_change = self.write_change  # type: ignore[method-assign]

    async def put_document(self, doc: Document, *, expect_version: int | None = None) -> Document:
        if doc.collection in self.collections:
            raise VersionConflict("changed concurrently")
        return await self._put(doc, expect_version=expect_version)

    async def write_change(self, documents: Sequence[DocumentWrite], events: Sequence[NewEvent],
                           routes: Sequence[Route], now: float, lease: Lease | None = None) -> list[Delivery]:
        if any(d.collection in self.collections for d in documents):
            raise VersionConflict("changed concurrently")
        return await self._change(documents, events, routes, now, lease)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path))
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()


async def _member(rt: Runtime) -> Any:
    _, token = await rt.identities.create_user(["chat"])
    return await rt.acs.caller(f"Bearer {token.token}")


async def test_chat_write_losing_every_attempt_is_a_503_not_a_silent_success(runtime: Runtime) -> None:
    caller = await _member(runtime)
    thread, _ = await runtime.chat.create_thread(caller, "topic", [], {})
    events_before = await runtime.store.count_events()
    messages_before = await runtime.store.list_documents(MESSAGES)
    _Contended(runtime.store, {THREADS})
    with pytest.raises(ServiceUnavailable):
        await runtime.chat.send_message(caller, thread.id, "hello", "text", None, {})
    assert await runtime.store.count_events() == events_before  # nothing announced that was not written
    assert await runtime.store.list_documents(MESSAGES) == messages_before  # and nothing half-written


async def test_read_receipt_losing_every_attempt_is_a_503(runtime: Runtime) -> None:
    caller = await _member(runtime)
    thread, _ = await runtime.chat.create_thread(caller, "topic", [], {})
    message_id = await runtime.chat.send_message(caller, thread.id, "hello", "text", None, {})
    _Contended(runtime.store, {RECEIPTS})
    with pytest.raises(ServiceUnavailable):
        await runtime.chat.send_read_receipt(caller, thread.id, message_id)


async def _corrupt(server: ServerProcess, topic: str, name: str, change: Any) -> None:
    """Change a subscription's stored properties JSON behind commgrid's back (a hand edit, an old version)."""
    async with aiosqlite.connect(server.data_dir / "commgrid.db") as db:
        (stored,) = await (await db.execute("SELECT properties FROM subscriptions WHERE topic = ? AND name = ?",
                                            (topic, name))).fetchone()
        properties = json.loads(stored)
        change(properties)
        await db.execute("UPDATE subscriptions SET properties = ? WHERE topic = ? AND name = ?",
                         (json.dumps(properties), topic, name))
        await db.execute("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                         " WHERE key = 'subscriptions_version'")
        await db.commit()


def _wait_state(server: ServerProcess, topic: str, name: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        info = shown(server.cli("subscription", "show", "--topic", topic, "--name", name))
        if info["commgrid"]["state"] == state or time.monotonic() > deadline:
            assert info["commgrid"]["state"] == state, info["commgrid"]
            return info
        time.sleep(0.1)


async def test_a_filter_that_no_longer_compiles_fails_the_subscription_visibly(
        server: ServerProcess, rx: Receiver) -> None:
    topic = server.create_topic("broken-filter")
    subscribe(server, "broken-filter", "bad-filter", rx.endpoint("bad-filter"))
    await _corrupt(server, "broken-filter", "bad-filter", lambda p: p["filter"].update(
        advancedFilters=[{"operatorType": "NumberIn", "key": "data.n", "values": "not-a-list"}]))
    publish(topic, {"id": "1", "subject": "/a", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                    "data": {"n": 1}, "dataVersion": "1"})
    info = _wait_state(server, "broken-filter", "bad-filter", "Failed")
    assert "filter does not compile" in info["commgrid"]["message"]
    assert info["properties"]["provisioningState"] == "Failed"


async def test_unusable_delivery_properties_fail_the_subscription_and_stop_the_cycling(
        server: ServerProcess, rx: Receiver) -> None:
    topic = server.create_topic("broken-props")
    subscribe(server, "broken-props", "bad-props", rx.endpoint("bad-props", status=500))
    publish(topic, {"id": "1", "subject": "/a", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                    "data": {}, "dataVersion": "1"})
    rx.wait(lambda: rx.received("bad-props"), what="a first, failed attempt")  # retried in 10 s
    await _corrupt(server, "broken-props", "bad-props", lambda p: p["destination"]["properties"].pop("endpointUrl"))
    info = _wait_state(server, "broken-props", "bad-props", "Failed")
    assert "stored properties are incomplete" in info["commgrid"]["message"]
    store = store_from_url(f"sqlite:///{server.data_dir / 'commgrid.db'}")
    await store.open()
    try:  # its delivery is kept, unclaimed, for when the subscription is fixed
        assert await store.count_pending_deliveries("broken-props", "bad-props") == 1
    finally:
        await store.close()
