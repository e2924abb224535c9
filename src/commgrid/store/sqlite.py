"""SQLite backend (the embedded default): one WAL database file, `synchronous=FULL`.

Writes take turns under one asyncio lock, so transactions never interleave; another connection reads.
The hot writes (appending events, claiming and completing deliveries) run as one function on a dedicated
writer thread with a plain `sqlite3` connection: one thread hand-off per transaction instead of one per
statement. The rest go through aiosqlite statement by statement.
Several processes (a server and the CLI) may open the same file: writes take `BEGIN IMMEDIATE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import aiosqlite
import orjson

from commgrid.private_files import private_file
from commgrid.store import console_sql, queue_sql, retention_sql, rows
from commgrid.store.base import (
    AlreadyExists,
    Attempt,
    AttemptRecord,
    DeadLetter,
    Delivery,
    Document,
    DocumentWrite,
    EventQuery,
    Lease,
    LockedEvent,
    Missing,
    NamespaceResource,
    NewEvent,
    Route,
    Store,
    StoredEvent,
    StoreError,
    StoreNotOpen,
    StoreStats,
    Subscription,
    Swept,
    Topic,
    TopicCounts,
    VersionConflict,
)

# Event ids are random: a plain index on them costs each commit about one random leaf page per event, written
# to the WAL and fsynced (most of a batch's write cost). Keyed by (seq >> ID_BLOCK_BITS, id) instead, a commit's
# new entries share the few leaf pages of the newest block, and a lookup by id probes each block newest first
# (`id_clause`): ~2 µs a block, 2 ms among 2 million stored events.
ID_BLOCK_BITS = 11

# Numbered by position (1, 2, ...): each is a list of statements, applied in one transaction.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE topics (
            name TEXT PRIMARY KEY COLLATE NOCASE, arm_id TEXT NOT NULL, input_schema TEXT NOT NULL,
            kind TEXT NOT NULL, key1 TEXT NOT NULL, key2 TEXT NOT NULL, created_at REAL NOT NULL)""",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
            subject TEXT NOT NULL, time TEXT NOT NULL, published_at REAL NOT NULL, body BLOB NOT NULL)""",
        "CREATE INDEX events_topic_seq ON events (topic, seq)",
        "CREATE INDEX events_topic_id ON events (topic, id)",
        """CREATE TABLE subscriptions (
            topic TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, properties TEXT NOT NULL,
            status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (topic, name))""",
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
            lease_owner TEXT, lease_until REAL, last_outcome TEXT, last_status INTEGER, last_attempt_at REAL)""",
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at)",
        "CREATE INDEX deliveries_subscription ON deliveries (topic, subscription)",
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq INTEGER NOT NULL,
            reason TEXT NOT NULL, attempts INTEGER NOT NULL, last_outcome TEXT, last_status INTEGER,
            last_attempt_at REAL, dead_lettered_at REAL NOT NULL)""",
        "CREATE INDEX dead_letters_subscription ON dead_letters (topic, subscription)",
        """CREATE TABLE documents (
            collection TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, version INTEGER NOT NULL,
            PRIMARY KEY (collection, key))""",
    ],
    [
        """CREATE TABLE namespace_resources (
            namespace TEXT NOT NULL, topic TEXT NOT NULL, name TEXT NOT NULL, properties TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (namespace, topic, name))""",
        "ALTER TABLE deliveries ADD COLUMN lock_token TEXT",
        "CREATE INDEX deliveries_lock_token ON deliveries (lock_token) WHERE lock_token IS NOT NULL",
    ],
    [
        "ALTER TABLE topics ADD COLUMN location TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE topics ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
    ],
    [
        """CREATE TABLE delivery_attempts (
            id INTEGER PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL, at REAL NOT NULL, outcome TEXT NOT NULL, status INTEGER, duration REAL NOT NULL,
            error TEXT, response TEXT NOT NULL)""",
        "CREATE INDEX delivery_attempts_event ON delivery_attempts (event_seq)",
        "CREATE INDEX delivery_attempts_subscription ON delivery_attempts (topic, subscription, id)",
        "CREATE INDEX events_id ON events (id)",
        "CREATE INDEX deliveries_event ON deliveries (event_seq)",
        "CREATE INDEX dead_letters_event ON dead_letters (event_seq)",
    ],
    [
        "ALTER TABLE topics ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE deliveries ADD COLUMN replay_id TEXT",
        """CREATE TABLE published_ids (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at REAL NOT NULL,
            PRIMARY KEY (topic, id))""",
        "CREATE INDEX published_ids_expiry ON published_ids (expires_at)",
        "CREATE INDEX dead_letters_age ON dead_letters (topic, dead_lettered_at)",
    ],
    [  # 6: ordered delivery per key (grid/ordering.py)
        "ALTER TABLE deliveries ADD COLUMN order_key TEXT",
        "CREATE INDEX deliveries_ordered_due ON deliveries (next_attempt_at) WHERE order_key IS NOT NULL",
        """CREATE INDEX deliveries_order_key ON deliveries (topic, subscription, order_key, event_seq)
            WHERE order_key IS NOT NULL""",
    ],
    [  # 7: one index on event ids, not two: lookups by (topic, id) use events_id, and every index on these
        # random keys costs each commit a page per event (batch ingest ~2x faster without this one)
        "DROP INDEX events_topic_id",
    ],
    [  # 8: event ids indexed within blocks of 2,048 sequence numbers (see `ID_BLOCKS`)
        "DROP INDEX events_id",
        f"CREATE INDEX events_id_block ON events (seq >> {ID_BLOCK_BITS}, id)",
    ],
]


INSERT_SCHEMA_VERSION = "INSERT INTO schema_version (version) VALUES (?)"
INSERT_EVENT = (
    "INSERT INTO events (seq, topic, id, type, subject, time, published_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, order_key) VALUES (?, ?, ?, ?, ?)"
)
INSERT_LEASED_DELIVERY = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, lease_owner, lease_until)
    VALUES (?, ?, ?, ?, ?, ?)"""
CLAIM_DELIVERIES = """
    UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN (
        SELECT d.id FROM deliveries d JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
        WHERE d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?) AND s.status = 'Active'
        AND d.order_key IS NULL {skip} ORDER BY d.next_attempt_at LIMIT ?)
    RETURNING id"""
CLAIM_ORDERED = """
    UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN (
        SELECT d.id FROM deliveries d JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
        WHERE d.order_key IS NOT NULL AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
        AND s.status = 'Active' {skip}
        AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.topic = d.topic AND o.subscription = d.subscription
                        AND o.order_key = d.order_key AND o.event_seq < d.event_seq)
        ORDER BY d.next_attempt_at LIMIT ?)
    RETURNING id"""
RELEASE_DELIVERIES = """
    UPDATE deliveries SET next_attempt_at = ? WHERE topic = ? AND subscription = ? AND next_attempt_at > ?
    AND (lease_until IS NULL OR lease_until < ?)"""
CLAIM_SKIP = "AND (d.topic, d.subscription) NOT IN (VALUES {pairs})"
SELECT_CLAIMED = f"""
    SELECT {rows.DELIVERY_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at, d.id"""
RENEW_LEASES = """
    UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))"""
NEXT_DUE = """
    SELECT min(d.next_attempt_at) FROM deliveries d
    JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
    WHERE s.status = 'Active' AND (d.lease_until IS NULL OR d.lease_until < ?)"""
RESCHEDULE = """
    UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL,
    last_outcome = ?, last_status = ?, last_attempt_at = ? WHERE id = ?"""
DEAD_LETTER_INSERT = """
    INSERT INTO dead_letters (topic, subscription, event_seq, reason, attempts, last_outcome, last_status,
                              last_attempt_at, dead_lettered_at)
    SELECT topic, subscription, event_seq, ?, attempts + ?, coalesce(?, last_outcome),
           CASE WHEN ? IS NULL THEN last_status ELSE ? END,  -- the last attempt's status, even when it had none
           coalesce(?, last_attempt_at), ? FROM deliveries WHERE id = ?"""


# settings, topics, events
SELECT_SETTING = "SELECT value FROM settings WHERE key = ?"
PUT_SETTING = "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)"
ADD_SETTING = "INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)"
BUMP_VERSION = """
    INSERT INTO settings (key, value) VALUES ('subscriptions_version', '1')
    ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"""
INSERT_TOPIC = f"INSERT INTO topics ({rows.TOPIC_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPDATE_TOPIC = """
    UPDATE topics SET arm_id = ?, input_schema = ?, kind = ?, key1 = ?, key2 = ?, location = ?, tags = ?,
    options = ? WHERE name = ?"""
SELECT_TOPIC = f"SELECT {rows.TOPIC_COLS} FROM topics WHERE name = ?"
LIST_TOPICS = f"SELECT {rows.TOPIC_COLS} FROM topics ORDER BY name"
# A topic goes with everything that names it.
_TOPIC_TABLES = ("deliveries", "dead_letters", "subscriptions", "events", "published_ids")
DELETE_TOPIC = [
    *(f"DELETE FROM {table} WHERE topic = ?" for table in _TOPIC_TABLES),
    "DELETE FROM topics WHERE name = ?",
]
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM events"
LIST_EVENTS = f"SELECT {rows.EVENT_COLS} FROM events e WHERE e.topic = ? AND e.seq < ? ORDER BY e.seq DESC LIMIT ?"
ID_BLOCKS = f"""WITH RECURSIVE id_blocks(n) AS (
    SELECT max(seq) >> {ID_BLOCK_BITS} FROM events
    UNION ALL SELECT n - 1 FROM id_blocks WHERE n > (SELECT min(seq) >> {ID_BLOCK_BITS} FROM events)) """


def id_clause(placeholder: str) -> str:
    """`e.id = placeholder` as one probe of `events_id_block` per block (a query using it starts `ID_BLOCKS`)."""
    return (f"e.seq IN (SELECT i.seq FROM id_blocks b CROSS JOIN events i INDEXED BY events_id_block"
            f" ON (i.seq >> {ID_BLOCK_BITS}) = b.n AND i.id = {placeholder})")


GET_EVENT = f"{ID_BLOCKS}SELECT {rows.EVENT_COLS} FROM events e WHERE {id_clause('?')} AND e.topic = ?" \
    " ORDER BY e.seq DESC LIMIT 1"
COUNT_EVENTS = "SELECT count(*) FROM events"
COUNT_TOPIC_EVENTS = "SELECT count(*) FROM events WHERE topic = ?"
# subscriptions
INSERT_SUBSCRIPTION = f"INSERT INTO subscriptions ({rows.SUBSCRIPTION_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
UPDATE_SUBSCRIPTION = """
    UPDATE subscriptions SET properties = coalesce(?, properties), status = ?, updated_at = ?
    WHERE topic = ? AND name = ?"""
SELECT_SUBSCRIPTION = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions WHERE topic = ? AND name = ?"
LIST_SUBSCRIPTIONS = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions ORDER BY topic, name"
LIST_TOPIC_SUBSCRIPTIONS = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions WHERE topic = ? ORDER BY topic, name"
DELETE_SUBSCRIPTION = "DELETE FROM subscriptions WHERE topic = ? AND name = ?"
DELETE_SUBSCRIPTION_DELIVERIES = "DELETE FROM deliveries WHERE topic = ? AND subscription = ?"
# deliveries and dead letters
DELETE_DELIVERY = "DELETE FROM deliveries WHERE id = ?"
COUNT_DELIVERIES = "SELECT count(*) FROM deliveries"
SELECT_DEAD_LETTERS = f"SELECT {rows.DEAD_LETTER_COLS} FROM dead_letters x JOIN events e ON e.seq = x.event_seq"
GET_DEAD_LETTER = f"{SELECT_DEAD_LETTERS} WHERE x.id = ?"
REDELIVER = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at)
    SELECT topic, subscription, event_seq, ? FROM dead_letters WHERE id = ?"""
DELETE_DEAD_LETTER = "DELETE FROM dead_letters WHERE id = ?"
# documents
GET_DOCUMENT = "SELECT collection, key, value, version FROM documents WHERE collection = ? AND key = ?"
LIST_DOCUMENTS = """
    SELECT collection, key, value, version FROM documents WHERE collection = ? AND key > ? ORDER BY key LIMIT ?"""
# namespace resources and queue locks
UPDATE_RESOURCE = """
    UPDATE namespace_resources SET properties = ?, updated_at = ? WHERE namespace = ? AND topic = ? AND name = ?"""
GET_RESOURCE = f"{queue_sql.SELECT_RESOURCE} WHERE namespace = ? AND topic = ? AND name = ?"
RENEW_LOCK = "UPDATE deliveries SET lease_until = ? WHERE id = ?"
# delivery attempts and the console's reads
INSERT_ATTEMPT = f"INSERT INTO delivery_attempts ({console_sql.ATTEMPT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
TRIM_ATTEMPTS = "DELETE FROM delivery_attempts WHERE id <= (SELECT max(id) FROM delivery_attempts) - ?"
LIST_ATTEMPTS = f"SELECT {console_sql.ATTEMPT_COLS} FROM delivery_attempts WHERE event_seq = ? ORDER BY id"
RECENT_ATTEMPTS = f"""
    SELECT {console_sql.ATTEMPT_COLS} FROM delivery_attempts WHERE topic = ? AND subscription = ?
    ORDER BY id DESC LIMIT ?"""
EVENT_BY_SEQ = f"SELECT {rows.EVENT_COLS} FROM events e WHERE e.seq = ?"
EVENTS_AFTER = f"SELECT {rows.EVENT_COLS} FROM events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
EVENT_DELIVERIES = f"""
    SELECT {rows.DELIVERY_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.event_seq = ? ORDER BY d.id"""
EVENT_DEAD_LETTERS = f"{SELECT_DEAD_LETTERS} WHERE x.event_seq = ? ORDER BY x.id"
BACKLOG = "SELECT count(*), min(event_seq) FROM deliveries"
PUBLISHED_AT = "SELECT published_at FROM events WHERE seq = ?"
BACKGROUND_YIELDS = 4  # most turns a background write gives to the writes queued meanwhile (see `_write`)
SELECT_DOCUMENT_VERSION = "SELECT version FROM documents WHERE collection = ? AND key = ?"
REPLACE_DOCUMENT = "INSERT OR REPLACE INTO documents (collection, key, value, version) VALUES (?, ?, ?, ?)"
DELETE_DOCUMENT = "DELETE FROM documents WHERE collection = ? AND key = ?"


BUSY_TIMEOUT = 10.0  # seconds a write waits for another process's to end
# SQLite checkpoints the WAL into the database file inside the COMMIT that takes the WAL past
# `wal_autocheckpoint` pages, so the writers of that flush also waited for the checkpoint's writes and its fsync
# of the database file (at batch ingest ~3 ms of every ~30 ms flush, with the core idle). The writer thread runs
# the checkpoint itself right after such a commit instead, once its callers have their answer: their responses and
# the next requests overlap it, and the next write waits behind it on the thread, so the WAL still restarts.
# SQLite's own stays as a backstop at a larger size.
CHECKPOINT_PAGES = 1000  # SQLite's default `wal_autocheckpoint`
BACKSTOP_PAGES = 4000
RECLAIM_MIN_PAGES = 2048  # 8 MB of 4 KB pages: smaller surpluses stay for reuse


@contextlib.contextmanager
def _wrap_errors() -> Iterator[None]:
    """Translate sqlite3 errors into store errors: driver errors never leave the backend."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(f"The record already exists ({exc}).") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite error: {exc}") from exc


T = TypeVar("T")
log = logging.getLogger("commgrid.store")
# auto_vacuum takes effect when the file is new (before any table): it lets `reclaim_space` shrink it.
PRAGMAS = ("PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
           f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000:.0f}", "PRAGMA foreign_keys=OFF")


def _connect_plain(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row  # rows.py reads columns by name
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # the writer thread checkpoints (`_checkpoint`)
    return conn


def _wal_backlog(shm: int) -> int:
    """Pages in the WAL not yet copied into the database: `mxFrame` less `nBackfill`, read from the wal-index
    header at the start of the shared-memory file (sqlite.org/walformat.html; native byte order)."""
    header = os.pread(shm, 100, 0)
    if len(header) < 100:
        return 0
    return int.from_bytes(header[16:20], sys.byteorder) - int.from_bytes(header[96:100], sys.byteorder)


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database (on the writer thread, between transactions); a failure is logged, SQLite's
    backstop remains."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as exc:
        log.warning("SQLite checkpoint failed (SQLite checkpoints at %d pages instead): %s", BACKSTOP_PAGES, exc)


def _append(conn: sqlite3.Connection, events: Sequence[NewEvent], routes: Sequence[Route], now: float,
            lease: Lease | None = None) -> list[Delivery]:
    """Insert events and their deliveries (on the writer thread, inside its transaction), less the duplicates a
    topic's publish dedupe drops (the writer lock keeps the check and the insert together); returns the
    deliveries stored leased (`Store.append_events`)."""
    if any(e.dedupe_seconds for e in events):
        seen = conn.execute(retention_sql.SEEN_SQLITE, retention_sql.seen_args(events, now)).fetchall()
        events, routes, remember = retention_sql.apply_dedupe(events, routes, now, {(r[0], r[1]) for r in seen})
        conn.executemany(retention_sql.REMEMBER_SQLITE, remember)
        if not events:
            return []
    first = conn.execute(LAST_SEQ).fetchone()[0] + 1
    conn.executemany(
        INSERT_EVENT,
        [(first + i, e.topic, e.id, e.type, e.subject, e.time, now, e.body) for i, e in enumerate(events)],
    )
    leased, waiting = rows.split_leased(routes, lease)
    if waiting:
        conn.executemany(
            INSERT_DELIVERY,
            [(events[r.event_index].topic, r.subscription, first + r.event_index, now, r.order_key) for r in waiting],
        )
    claimed = []
    for r in leased:  # one at a time, for each row's id
        assert lease is not None
        event, seq = events[r.event_index], first + r.event_index
        row_id = conn.execute(INSERT_LEASED_DELIVERY, (event.topic, r.subscription, seq, now, lease.owner,
                                                       lease.until)).lastrowid
        assert row_id is not None  # an INSERT into a rowid table
        claimed.append(rows.leased_delivery(row_id, r.subscription, event, seq, now))
    return claimed


def _write_document(conn: sqlite3.Connection, write: DocumentWrite) -> int:
    """Apply one document write (on the writer thread, inside its transaction); returns the new version."""
    where = (write.collection, write.key)
    row = conn.execute(SELECT_DOCUMENT_VERSION, where).fetchone()
    current = row[0] if row else 0
    if write.expect_version is not None and current != write.expect_version:
        raise VersionConflict(f"Document '{write.collection}/{write.key}' changed (version {current}).")
    if write.value is None:
        if row is None:
            raise Missing(f"Document '{write.collection}/{write.key}' was not found.")
        conn.execute(DELETE_DOCUMENT, where)
        return 0
    conn.execute(REPLACE_DOCUMENT, (*where, orjson.dumps(write.value), current + 1))
    return current + 1


async def _pragma(conn: aiosqlite.Connection, name: str) -> int:
    row = await (await conn.execute(f"PRAGMA {name}")).fetchone()
    assert row is not None  # these pragmas always answer one row
    return row[0]


def _try_turn(turn: int) -> bool:
    """Lock `turn` if no one holds it; True if locked."""
    try:
        fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _poll_turn(turn: int) -> bool:
    """Lock `turn`, trying every ~0.1 ms; like SQLite's own wait, give up (False) after `BUSY_TIMEOUT` seconds."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while not _try_turn(turn):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0001)
    return True


def _take_turn(turn: int) -> None:
    if not _poll_turn(turn):
        raise sqlite3.OperationalError("database is locked (another process is writing)")


def _turn_is_free(turn: int) -> bool:
    """True if no one holds `turn` now (without waiting, nor keeping it)."""
    if not _try_turn(turn):
        return False
    fcntl.flock(turn, fcntl.LOCK_UN)
    return True


def _wait_turn(turn: int) -> None:
    """Wait (at most `BUSY_TIMEOUT`) until no other process holds `turn`, without keeping it."""
    if _poll_turn(turn):
        fcntl.flock(turn, fcntl.LOCK_UN)


def _run_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], turn: int) -> T:
    """`work` in one `BEGIN IMMEDIATE … COMMIT` (on the writer thread); rolled back if it raises.

    The writers of every process serving the file take turns on `turn`, a lock file's descriptor: a waiting
    one wakes as the other's commit ends, where SQLite's own wait for its lock sleeps 1, 2, 5, 10 … ms.
    """
    _take_turn(turn)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    finally:
        fcntl.flock(turn, fcntl.LOCK_UN)


class SQLiteStore(Store):
    """Store backed by one SQLite file (created with its parent directory if absent)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()  # one statement at a time on the reader (see `_one`)
        self._foreground = 0  # writes waiting for the lock that someone waits for (see `_write`)
        self._plain: sqlite3.Connection | None = None  # the writer thread's connection
        self._thread: ThreadPoolExecutor | None = None
        self._turn: int | None = None  # the lock file the writers of all processes take turns on
        self._turn_probe: int | None = None  # the same file opened again: our own writer's turn shows as taken
        self._shm: int | None = None  # SQLite's shared-memory file, read for the WAL's size (`_checkpoint`)

    # lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        # The database holds every key: owner-only, and SQLite gives its WAL and shared memory the same mode.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            if path == self.path or path.exists():
                private_file(path)
        with _wrap_errors():
            self._writer = await self._connect()
            await self._migrate(self._writer)
            self._reader = await self._connect()
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="commgrid-sqlite-writer")
            turn = self.path.with_name(self.path.name + "-writer")
            self._turn = os.open(turn, os.O_RDWR | os.O_CREAT, 0o600)
            self._turn_probe = os.open(turn, os.O_RDWR)
            self._plain = await asyncio.get_running_loop().run_in_executor(self._thread, _connect_plain, self.path)
            self._shm = os.open(self.path.with_name(self.path.name + "-shm"), os.O_RDONLY)

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row  # rows.py reads columns by name
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(rows.CREATE_SCHEMA_VERSION)
            row = await (await conn.execute(rows.SCHEMA_VERSION)).fetchone()
            applied = row[0] if row else 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version > applied:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(INSERT_SCHEMA_VERSION, (version,))
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise

    async def reset(self) -> None:
        async with self._transaction() as conn:
            for statement in rows.drop_tables(MIGRATIONS):
                await conn.execute(statement)

    async def close(self) -> None:
        async with self._write_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
            self._reader = self._writer = None
            if self._thread is not None and self._plain is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._plain.close)
                self._thread.shutdown()
            self._plain, self._thread = None, None
            for fd in (self._turn, self._turn_probe, self._shm):
                if fd is not None:
                    os.close(fd)
            self._turn = self._turn_probe = self._shm = None

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreNotOpen()
        return self._reader

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction on the writer connection, one at a time."""
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreNotOpen()
            with _wrap_errors():
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, background: bool = False) -> T:
        """Run `work` as one write transaction on the writer thread: one hand-off for the whole transaction.

        A `background` write (bookkeeping nobody waits for: completed deliveries, attempt records) lets the
        writes queued meanwhile go first (a few times at most), so a publish's commit and the delivery worker's
        claim do not queue behind it; the background writes meanwhile gather more rows into one commit.
        """
        if background:
            await self._background_turn()
        else:
            self._foreground += 1
        try:
            await self._write_lock.acquire()
        finally:
            if not background:
                self._foreground -= 1
        try:
            if self._plain is None or self._thread is None or self._turn is None or self._shm is None:
                raise StoreNotOpen()
            with _wrap_errors():
                result = await asyncio.get_running_loop().run_in_executor(
                    self._thread, _run_transaction, self._plain, work, self._turn)
            if self._checkpoint_due(self._shm):  # queued before the next write, run after this answer
                self._thread.submit(_checkpoint, self._plain)
            return result
        finally:
            self._write_lock.release()

    @staticmethod
    def _checkpoint_due(shm: int) -> bool:
        """The WAL holds `CHECKPOINT_PAGES` pages not yet in the database (one `pread`, on the event loop: the
        writer thread is woken only for a checkpoint)."""
        try:
            return _wal_backlog(shm) >= CHECKPOINT_PAGES
        except OSError as exc:  # the write itself is committed: only its checkpoint is left to SQLite's backstop
            log.warning("SQLite's WAL size could not be read (SQLite checkpoints at %d pages instead): %s",
                        BACKSTOP_PAGES, exc)
            return False

    async def _background_turn(self) -> None:
        """Wait while other writes are queued (at most `BACKGROUND_YIELDS` times)."""
        for _ in range(BACKGROUND_YIELDS):
            if not self._foreground:
                return
            await self._write_lock.acquire()  # behind the writes queued now, then let newer ones go first too
            self._write_lock.release()
            await asyncio.sleep(0)

    # Reads close their cursor at once, and take turns on the reader: a statement still open keeps the reader's
    # snapshot, and another read run meanwhile on it would miss what the writer has committed since (a
    # subscription just validated read back as still Creating, a regenerated key).
    async def _one(self, sql: str, args: Sequence = ()) -> sqlite3.Row | tuple | None:
        with _wrap_errors():
            async with self._read_lock, self._r.execute(sql, args) as cursor:
                return await cursor.fetchone()

    async def _pragma(self, name: str) -> int:
        row = await self._one(f"PRAGMA {name}")
        assert row is not None  # these pragmas always answer one row
        return row[0]

    async def _all(self, sql: str, args: Sequence = ()) -> list:
        with _wrap_errors():
            async with self._read_lock, self._r.execute(sql, args) as cursor:
                return list(await cursor.fetchall())

    async def _required(self, missing: str, sql: str, args: Sequence = ()) -> rows.Row:
        """The one row `sql` selects; `Missing(missing)` if there is none."""
        row = await self._one(sql, args)
        if row is None:
            raise Missing(missing)
        return row

    @staticmethod
    async def _change_one(conn: aiosqlite.Connection, missing: str, sql: str, args: Sequence = ()) -> None:
        """Run `sql`, an UPDATE or DELETE of one row; `Missing(missing)` if it matched none."""
        cur = await conn.execute(sql, args)
        if cur.rowcount == 0:
            raise Missing(missing)

    # settings --------------------------------------------------------------------------------------------
    async def get_setting(self, key: str) -> str | None:
        row = await self._one(SELECT_SETTING, (key,))
        return row[0] if row else None

    async def set_setting(self, key: str, value: str, *, only_if_absent: bool = False, announce: bool = False) -> str:
        async with self._transaction() as conn:
            await conn.execute(ADD_SETTING if only_if_absent else PUT_SETTING, (key, value))
            if announce:
                await self._bump_version(conn)
            row = await (await conn.execute(SELECT_SETTING, (key,))).fetchone()
        assert row is not None  # written above if it was missing
        return row[0]

    async def _bump_version(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(BUMP_VERSION)

    async def _insert_announced(self, sql: str, values: Sequence) -> None:
        """Insert a topic or subscription and move the change counter, in one transaction."""
        async with self._transaction() as conn:
            await conn.execute(sql, values)
            await self._bump_version(conn)

    # topics ----------------------------------------------------------------------------------------------
    async def create_topic(self, topic: Topic) -> None:
        await self._insert_announced(INSERT_TOPIC, rows.topic_values(topic))

    async def update_topic(self, topic: Topic) -> None:
        async with self._transaction() as conn:
            values = rows.topic_values(topic)
            await self._change_one(
                conn, f"Topic '{topic.name}' was not found.", UPDATE_TOPIC, (*values[1:6], *values[7:], topic.name))
            await self._bump_version(conn)

    async def get_topic(self, name: str) -> Topic:
        return rows.topic_from_row(await self._required(f"Topic '{name}' was not found.", SELECT_TOPIC, (name,)))

    async def list_topics(self) -> list[Topic]:
        return [rows.topic_from_row(r) for r in await self._all(LIST_TOPICS)]

    async def delete_topic(self, name: str) -> None:
        topic = await self.get_topic(name)
        async with self._transaction() as conn:
            for statement in DELETE_TOPIC:
                await conn.execute(statement, (topic.name,))
            await self._bump_version(conn)

    # events ----------------------------------------------------------------------------------------------
    async def wait_for_other_writers(self) -> None:
        """With `serve --workers`: while another process writes, what arrives meanwhile joins our next group
        (without this, two workers made more and smaller commits than one process). One system call when the
        turn is free."""
        if self._turn_probe is None or self._turn is None or self._thread is None or _turn_is_free(self._turn_probe):
            return
        # On the writer thread, after any write of ours queued there: it holds the turn while it runs.
        await asyncio.get_running_loop().run_in_executor(self._thread, _wait_turn, self._turn)

    async def append_events(self, events: Sequence[NewEvent], routes: Sequence[Route], now: float,
                            lease: Lease | None = None) -> list[Delivery]:
        if not events:
            return []
        return await self._write(lambda conn: _append(conn, events, routes, now, lease))

    async def list_events(self, topic: str, limit: int = 50, before_seq: int | None = None) -> list[StoredEvent]:
        found = await self._all(LIST_EVENTS, (topic, before_seq if before_seq is not None else 2**62, limit))
        return [rows.event_from_row(r) for r in found]

    async def get_event(self, topic: str, event_id: str) -> StoredEvent:
        missing = f"Event '{event_id}' was not found in topic '{topic}'."
        return rows.event_from_row(await self._required(missing, GET_EVENT, (event_id, topic)))

    async def count_events(self, topic: str | None = None) -> int:
        row = await (self._one(COUNT_EVENTS) if topic is None else self._one(COUNT_TOPIC_EVENTS, (topic,)))
        assert row is not None  # an aggregate has a row
        return row[0]

    async def events_in_order(
        self, topic: str, after_seq: int, limit: int, *, until_seq: int | None = None,
        published_from: float | None = None, published_to: float | None = None,
    ) -> list[StoredEvent]:
        sql, args = retention_sql.events_in_order_sql("?", topic, after_seq, limit, until_seq=until_seq,
                                                      published_from=published_from, published_to=published_to)
        return [rows.event_from_row(r) for r in await self._all(sql, args)]

    # retention, replay and dedupe ------------------------------------------------------------------------
    async def sweep_retention(self, topic: str, events_before: float, dead_letters_before: float,
                              limit: int) -> Swept:
        dead_letters = retention_sql.SWEEP_DEAD_LETTERS.format(topic="?", before="?", limit="?")
        attempts = retention_sql.SWEEP_ATTEMPTS.format(topic="?", before="?", limit="?")
        async with self._transaction() as conn:
            letters = await conn.execute(dead_letters, (topic, dead_letters_before, limit))
            events = await conn.execute(retention_sql.SWEEP_EVENTS_SQLITE, (topic, events_before, limit))
            tried = await conn.execute(attempts, (topic, events_before, limit))
            return Swept(events=events.rowcount, dead_letters=letters.rowcount, attempts=tried.rowcount)

    async def forget_published_ids(self, now: float, limit: int) -> int:
        async with self._transaction() as conn:
            cur = await conn.execute(retention_sql.FORGET_IDS.format(now="?", limit="?"), (now, limit))
            return cur.rowcount

    async def reclaim_space(self) -> None:
        """Free pages are reused by later writes, so only a large surplus (after a burst) goes back to the OS."""
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreNotOpen()
            with _wrap_errors():
                pages, free = [await _pragma(conn, p) for p in ("page_count", "freelist_count")]
                if free > max(RECLAIM_MIN_PAGES, pages // 4):
                    # A script runs the pragma to completion (a plain execute frees one page per step taken).
                    await conn.executescript(f"PRAGMA incremental_vacuum({free - pages // 8});")

    async def queue_replay(self, topic: str, subscription: str, seqs: Sequence[int], replay_id: str,
                           now: float) -> int:
        step = retention_sql.REPLAY_STEP
        async with self._transaction() as conn:
            queued = 0
            for i, seq in enumerate(seqs):
                cur = await conn.execute(retention_sql.QUEUE_REPLAY_SQLITE,
                                         (topic, subscription, now + i * step, replay_id, seq))
                queued += cur.rowcount
            return queued

    async def stats(self) -> StoreStats:
        counts: dict[str, TopicCounts] = {}
        for topic, events, oldest in await self._all(retention_sql.COUNT_EVENTS):
            counts[topic] = TopicCounts(topic, events=events, oldest_event_at=oldest)
        for sql, attr in ((retention_sql.COUNT_DELIVERIES, "pending_deliveries"),
                          (retention_sql.COUNT_DEAD_LETTERS, "dead_letters")):
            for topic, n in await self._all(sql):
                setattr(counts.setdefault(topic, TopicCounts(topic)), attr, n)
        pages, free, page_size = [await self._pragma(p) for p in ("page_count", "freelist_count", "page_size")]
        wal = self.path.with_name(self.path.name + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
        return StoreStats(topics=[counts[t] for t in sorted(counts)], size_bytes=pages * page_size + wal_size,
                          free_bytes=free * page_size)

    # subscriptions ---------------------------------------------------------------------------------------
    async def create_subscription(self, sub: Subscription) -> None:
        await self._insert_announced(INSERT_SUBSCRIPTION, rows.subscription_values(sub))

    async def update_subscription(self, sub: Subscription) -> None:
        async with self._transaction() as conn:
            await self._change_one(
                conn, f"Event subscription '{sub.name}' was not found.",
                UPDATE_SUBSCRIPTION, (rows.properties_json(sub), sub.status, sub.updated_at, sub.topic, sub.name))
            await self._bump_version(conn)

    async def get_subscription(self, topic: str, name: str) -> Subscription:
        missing = f"Event subscription '{name}' was not found."
        return rows.subscription_from_row(await self._required(missing, SELECT_SUBSCRIPTION, (topic, name)))

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        found = await (self._all(LIST_SUBSCRIPTIONS) if topic is None
                       else self._all(LIST_TOPIC_SUBSCRIPTIONS, (topic,)))
        return [rows.subscription_from_row(r) for r in found]

    async def delete_subscription(self, topic: str, name: str) -> None:
        async with self._transaction() as conn:
            await self._change_one(
                conn, f"Event subscription '{name}' was not found.", DELETE_SUBSCRIPTION, (topic, name))
            await conn.execute(DELETE_SUBSCRIPTION_DELIVERIES, (topic, name))
            await self._bump_version(conn)

    async def subscriptions_version(self) -> int:
        return int(await self.get_setting("subscriptions_version") or 0)

    # deliveries ------------------------------------------------------------------------------------------
    async def claim_due_deliveries(
        self, owner: str, now: float, limit: int, lease: float, skip: Collection[tuple[str, str]] = ()
    ) -> list[Delivery]:
        return await self._claim(CLAIM_DELIVERIES, owner, now, limit, lease, skip)

    async def claim_ordered_deliveries(
        self, owner: str, now: float, limit: int, lease: float, skip: Collection[tuple[str, str]] = ()
    ) -> list[Delivery]:
        return await self._claim(CLAIM_ORDERED, owner, now, limit, lease, skip)

    async def _claim(
        self, query: str, owner: str, now: float, limit: int, lease: float, skip: Collection[tuple[str, str]]
    ) -> list[Delivery]:
        until = now + lease
        pairs = [value for pair in skip for value in pair]
        skipped = CLAIM_SKIP.format(pairs=", ".join(["(?, ?)"] * len(skip))) if skip else ""
        sql = query.format(skip=skipped)

        def claim(conn: sqlite3.Connection) -> list:
            claimed = conn.execute(sql, (owner, until, now, now, *pairs, limit)).fetchall()
            if not claimed:
                return []
            ids = orjson.dumps([row[0] for row in claimed]).decode()  # this claim's rows, not older ones
            cursor = conn.cursor()
            cursor.row_factory = None  # tuples: `delivery_from_row` reads by position
            return cursor.execute(SELECT_CLAIMED, (ids,)).fetchall()

        return [rows.delivery_from_row(r) for r in await self._write(claim)]

    async def renew_leases(self, owner: str, ids: Sequence[int], until: float) -> int:
        args = (until, owner, orjson.dumps(list(ids)).decode())
        return await self._write(lambda conn: conn.execute(RENEW_LEASES, args).rowcount)

    async def record_outcomes(self, completed: Sequence[int], attempts: Sequence[AttemptRecord], keep: int) -> None:
        if not completed and not attempts:
            return
        done = [(i,) for i in completed]
        values = [console_sql.attempt_values(r) for r in attempts]

        def record(conn: sqlite3.Connection) -> None:
            conn.executemany(DELETE_DELIVERY, done)
            if values:
                conn.executemany(INSERT_ATTEMPT, values)
                conn.execute(TRIM_ATTEMPTS, (keep,))

        await self._write(record, background=True)

    async def reschedule_deliveries(self, ids: Sequence[int], attempt: Attempt, next_attempt_at: float) -> None:
        values = [(next_attempt_at, attempt.outcome, attempt.status, attempt.at, i) for i in ids]
        await self._write(lambda conn: conn.executemany(RESCHEDULE, values))

    async def dead_letter_deliveries(
        self, ids: Sequence[int], reason: str, now: float, attempt: Attempt | None = None
    ) -> None:
        counted, outcome, status, at = rows.attempt_values(attempt)
        values = [(reason, counted, outcome, outcome, status, at, now, i) for i in ids]

        def dead_letter(conn: sqlite3.Connection) -> None:
            conn.executemany(DEAD_LETTER_INSERT, values)
            conn.executemany(DELETE_DELIVERY, [(i,) for i in ids])

        await self._write(dead_letter)

    async def release_deliveries(self, topic: str, subscription: str, now: float) -> int:
        async with self._transaction() as conn:
            cur = await conn.execute(RELEASE_DELIVERIES, (now, topic, subscription, now, now))
            return cur.rowcount

    async def count_pending_deliveries(self, topic: str | None = None, subscription: str | None = None) -> int:
        sql, args = rows.filter_sql(COUNT_DELIVERIES, topic, subscription, "?")
        row = await self._one(sql, args)
        assert row is not None  # an aggregate has a row
        return row[0]

    async def next_due_at(self, now: float) -> float | None:
        row = await self._one(NEXT_DUE, (now,))
        return row[0] if row else None

    # dead letters ----------------------------------------------------------------------------------------
    async def list_dead_letters(
        self, topic: str | None = None, subscription: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        sql, args = rows.filter_sql(SELECT_DEAD_LETTERS, topic, subscription, "?", prefix="x.")
        found = await self._all(sql + " ORDER BY x.id DESC LIMIT ?", (*args, limit))
        return [rows.dead_letter_from_row(r) for r in found]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter:
        missing = f"Dead-letter record {dead_letter_id} was not found."
        return rows.dead_letter_from_row(await self._required(missing, GET_DEAD_LETTER, (dead_letter_id,)))

    async def redeliver_dead_letters(self, ids: Sequence[int], now: float) -> int:
        moved = 0
        async with self._transaction() as conn:
            for i in ids:
                cur = await conn.execute(REDELIVER, (now, i))
                moved += cur.rowcount
                await conn.execute(DELETE_DEAD_LETTER, (i,))
        return moved

    # documents -------------------------------------------------------------------------------------------
    async def put_document(self, doc: Document, *, expect_version: int | None = None) -> Document:
        write = DocumentWrite(doc.collection, doc.key, doc.value, expect_version)
        version = await self._write(lambda conn: _write_document(conn, write))
        return Document(doc.collection, doc.key, doc.value, version)

    async def write_change(
        self, documents: Sequence[DocumentWrite], events: Sequence[NewEvent], routes: Sequence[Route], now: float,
        lease: Lease | None = None,
    ) -> list[Delivery]:
        def change(conn: sqlite3.Connection) -> list[Delivery]:
            for write in documents:
                _write_document(conn, write)
            return _append(conn, events, routes, now, lease) if events else []

        return await self._write(change)

    async def get_document(self, collection: str, key: str) -> Document:
        missing = f"Document '{collection}/{key}' was not found."
        return rows.document_from_row(await self._required(missing, GET_DOCUMENT, (collection, key)))

    async def list_documents(
        self, collection: str, after_key: str | None = None, limit: int = 100
    ) -> list[Document]:
        found = await self._all(LIST_DOCUMENTS, (collection, after_key or "", limit))
        return [rows.document_from_row(r) for r in found]

    async def delete_document(self, collection: str, key: str) -> None:
        async with self._transaction() as conn:
            missing = f"Document '{collection}/{key}' was not found."
            await self._change_one(conn, missing, DELETE_DOCUMENT, (collection, key))

    # namespaces ------------------------------------------------------------------------------------------
    async def put_namespace_resource(self, resource: NamespaceResource, *, create: bool) -> None:
        values = rows.namespace_resource_values(resource)
        async with self._transaction() as conn:
            if create:
                await conn.execute(queue_sql.INSERT_RESOURCE.format(p=", ".join("?" * 6)), values)
                return
            await self._change_one(conn, f"Namespace resource '{rows.resource_path(resource)}' was not found.",
                                   UPDATE_RESOURCE, (values[3], values[5], *values[:3]))

    async def get_namespace_resource(self, namespace: str, topic: str = "", name: str = "") -> NamespaceResource:
        missing = f"Namespace resource '{'/'.join(filter(None, (namespace, topic, name)))}' was not found."
        return rows.namespace_resource_from_row(await self._required(missing, GET_RESOURCE, (namespace, topic, name)))

    async def list_namespace_resources(self, namespace: str = "", topic: str = "") -> list[NamespaceResource]:
        found = await self._all(*queue_sql.children_sql(namespace, topic, "?"))
        return [rows.namespace_resource_from_row(r) for r in found]

    async def delete_namespace_resources(self, namespace: str, topic: str = "", name: str = "") -> None:
        await self.get_namespace_resource(namespace, topic, name)
        sql, args = queue_sql.delete_subtree_sql(namespace, topic, name, "?")
        async with self._transaction() as conn:
            await conn.execute(sql, args)

    # queue subscriptions ---------------------------------------------------------------------------------
    async def lock_events(
        self, topic: str, subscription: str, now: float, limit: int, lock_until: float, *,
        max_deliveries: int, published_after: float,
    ) -> list[LockedEvent]:
        async with self._transaction() as conn:
            for _ in range(queue_sql.MAX_SWEEPS):
                found = await (await conn.execute(
                    queue_sql.LOCK_CANDIDATES_SQLITE, (topic, subscription, now, now, limit))).fetchall()
                take, dead = queue_sql.split_candidates(found, max_deliveries, published_after)
                for reason, ids in dead.items():
                    await conn.executemany(DEAD_LETTER_INSERT,
                                           [(reason, 0, None, None, None, None, now, i) for i in ids])
                    await conn.executemany(DELETE_DELIVERY, [(i,) for i in ids])
                if take or not dead:
                    break
            if not take:
                return []
            tokens = zip(take, queue_sql.new_tokens(len(take)), strict=True)
            await conn.executemany(queue_sql.LOCK_SQLITE, [(lock_until, t, i) for i, t in tokens])
            taken = orjson.dumps(take).decode()
            locked = await (await conn.execute(queue_sql.SELECT_LOCKED_SQLITE, (taken,))).fetchall()
        return [rows.locked_event_from_row(r) for r in locked]

    async def settle_locks(
        self, topic: str, subscription: str, tokens: Sequence[str], action: str, now: float, *,
        until: float = 0.0, reason: str = "",
    ) -> dict[str, str]:
        async with self._transaction() as conn:
            found = await (await conn.execute(queue_sql.FIND_LOCKS_SQLITE, (orjson.dumps(list(tokens)).decode(),))
                           ).fetchall()
            outcomes, valid = queue_sql.lock_outcomes(tokens, found, topic, subscription, now)
            if valid:
                await self._settle(conn, action, [(i,) for i in valid], now, until, reason)
        return outcomes

    async def _settle(
        self, conn: aiosqlite.Connection, action: str, ids: list[tuple[int]], now: float, until: float, reason: str
    ) -> None:
        if action == "reject":
            await conn.executemany(DEAD_LETTER_INSERT, [(reason, 0, None, None, None, None, now, i) for (i,) in ids])
        if action in ("acknowledge", "reject"):
            await conn.executemany(DELETE_DELIVERY, ids)
        elif action == "release":
            await conn.executemany(queue_sql.RELEASE_SQLITE, [(until, i) for (i,) in ids])
        elif action == "renew":
            await conn.executemany(RENEW_LOCK, [(until, i) for (i,) in ids])
        else:
            raise ValueError(f"unknown settle action {action!r}")

    # delivery attempts and the console's reads ----------------------------------------------------------
    async def list_attempts(self, event_seq: int) -> list[AttemptRecord]:
        found = await self._all(LIST_ATTEMPTS, (event_seq,))
        return [console_sql.attempt_from_row(r) for r in found]

    async def recent_attempts(self, topic: str, subscription: str, limit: int = 20) -> list[AttemptRecord]:
        found = await self._all(RECENT_ATTEMPTS, (topic, subscription, limit))
        return [console_sql.attempt_from_row(r) for r in found]

    async def event_by_seq(self, seq: int) -> StoredEvent:
        return rows.event_from_row(await self._required(f"Event {seq} was not found.", EVENT_BY_SEQ, (seq,)))

    async def search_events(self, query: EventQuery, limit: int = 50) -> list[StoredEvent]:
        sql, args = console_sql.search_sql(query, limit, "?", id_clause=id_clause)
        if query.id:
            sql = ID_BLOCKS + sql
        return [rows.event_from_row(r) for r in await self._all(sql, args)]

    async def events_after(self, seq: int, limit: int = 500) -> list[StoredEvent]:
        found = await self._all(EVENTS_AFTER, (seq, limit))
        return [rows.event_from_row(r) for r in found]

    async def event_deliveries(self, event_seq: int) -> list[Delivery]:
        found = await self._all(EVENT_DELIVERIES, (event_seq,))
        return [rows.delivery_from_row(r) for r in found]

    async def event_dead_letters(self, event_seq: int) -> list[DeadLetter]:
        found = await self._all(EVENT_DEAD_LETTERS, (event_seq,))
        return [rows.dead_letter_from_row(r) for r in found]

    async def delivery_backlog(self) -> tuple[int, float | None]:
        (count, oldest), = await self._all(BACKLOG)
        if oldest is None:
            return count, None
        row = await self._one(PUBLISHED_AT, (oldest,))
        return count, row[0] if row else None
