"""Several processes' writers on one SQLite file take turns on its `-writer` lock file (`serve --workers N`)."""

from __future__ import annotations

import asyncio
import fcntl
import os

import pytest

from commgrid.grid.committer import GroupCommitter
from commgrid.store import sqlite, store_from_url
from commgrid.store.base import StoreError
from tests.store.test_contract import NOW, event, topic


async def test_two_stores_on_one_file_take_turns_and_every_append_lands(sqlite_url: str) -> None:
    """Two stores stand for two processes: each has its own descriptor of the lock file, as a process does."""
    a, b = store_from_url(sqlite_url), store_from_url(sqlite_url)
    await a.open()
    await b.open()
    try:
        await a.create_topic(topic())
        await asyncio.gather(*((a, b)[i % 2].append_events([event(i * 10 + j) for j in range(10)], [], NOW)
                               for i in range(40)))
        stored = await b.list_events("orders", limit=1000)
        assert len(stored) == 400 and len({e.seq for e in stored}) == 400
    finally:
        await a.close()
        await b.close()


async def test_a_write_waits_for_the_turn_and_gives_up_as_sqlite_would(sqlite_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT", 0.3)
    store = store_from_url(sqlite_url)
    await store.open()
    held = os.open(sqlite_url.removeprefix("sqlite:///") + "-writer", os.O_RDWR)
    try:
        await store.create_topic(topic())
        fcntl.flock(held, fcntl.LOCK_EX)  # another process in the middle of its transaction
        with pytest.raises(StoreError, match="database is locked"):
            await store.append_events([event(1)], [], NOW)
        waiting = asyncio.create_task(store.append_events([event(2)], [], NOW))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        fcntl.flock(held, fcntl.LOCK_UN)  # its commit ends: the next turn is ours
        await waiting
        assert [e.id for e in await store.list_events("orders")] == ["id-2"]
    finally:
        os.close(held)
        await store.close()


async def test_a_group_commit_waits_out_another_process_and_takes_what_arrived_meanwhile(sqlite_url: str) -> None:
    """Without the wait, the first publish would hold its own commit and the rest would make a second one."""
    store = store_from_url(sqlite_url)
    await store.open()
    held = os.open(sqlite_url.removeprefix("sqlite:///") + "-writer", os.O_RDWR)
    try:
        await store.create_topic(topic())
        committer = GroupCommitter(store)
        fcntl.flock(held, fcntl.LOCK_EX)  # another process in the middle of its transaction
        first = asyncio.create_task(committer.commit([event(0)], []))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(committer.commit([event(i)], [])) for i in range(1, 10)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in (first, *rest))
        fcntl.flock(held, fcntl.LOCK_UN)
        await asyncio.gather(first, *rest)
        stored = await store.list_events("orders")
        assert len(stored) == 10 and len({e.published_at for e in stored}) == 1  # one flush stamps one time
        await store.wait_for_other_writers()  # free: returns at once, and keeps no turn
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(held)
        await store.close()
