"""The SQLite writer thread checkpoints the WAL between transactions, keeping it near `CHECKPOINT_PAGES`."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from commgrid.store import sqlite, store_from_url
from commgrid.store.base import NewEvent
from tests.store.test_contract import NOW, event, topic


def test_the_wal_backlog_is_read_as_sqlite_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (body BLOB)")
    conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(3000),) for _ in range(300)])
    shm = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        backlog = sqlite._wal_backlog(shm)
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, copied) == (0, frames) and backlog == frames > 300
        assert sqlite._wal_backlog(shm) == 0  # all copied
    finally:
        os.close(shm)
        conn.close()


async def test_continuous_appends_keep_the_wal_near_the_checkpoint_size(sqlite_url: str) -> None:
    store = store_from_url(sqlite_url)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    await store.open()
    try:
        await store.create_topic(topic())
        largest = 0
        for n in range(300):  # ~19 MB of events in 60 KB transactions: more than SQLite's backstop lets pile up
            batch = [NewEvent(e.topic, e.id, e.type, e.subject, e.time, os.urandom(1200).hex().encode())
                     for e in (event(n * 25 + i) for i in range(25))]
            await store.append_events(batch, [], NOW)
            largest = max(largest, wal.stat().st_size)
        assert largest < (sqlite.CHECKPOINT_PAGES + 100) * 4096 < sqlite.BACKSTOP_PAGES * 4096
        assert await store.count_events() == 7500
    finally:
        await store.close()
