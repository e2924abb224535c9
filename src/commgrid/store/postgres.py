"""PostgreSQL backend: several commgrid nodes may share one database.

Deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so nodes never deliver the same row at
once and a crashed node's leases expire. Migrations run under an advisory lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any

import asyncpg
import orjson

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

_MIGRATION_LOCK = 7_070_001

# Numbered by position (1, 2, ...): each is a list of statements, applied in one transaction.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE topics (
            name TEXT PRIMARY KEY, arm_id TEXT NOT NULL, input_schema TEXT NOT NULL,
            kind TEXT NOT NULL, key1 TEXT NOT NULL, key2 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
        "CREATE UNIQUE INDEX topics_lower_name ON topics (lower(name))",
        """CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
            subject TEXT NOT NULL, time TEXT NOT NULL, published_at DOUBLE PRECISION NOT NULL, body BYTEA NOT NULL)""",
        "CREATE INDEX events_topic_seq ON events (topic, seq)",
        "CREATE INDEX events_topic_id ON events (topic, id)",
        """CREATE TABLE subscriptions (
            topic TEXT NOT NULL, name TEXT NOT NULL, properties TEXT NOT NULL, status TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (topic, name))""",
        "CREATE UNIQUE INDEX subscriptions_lower_name ON subscriptions (topic, lower(name))",
        """CREATE TABLE deliveries (
            id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq BIGINT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL,
            lease_owner TEXT, lease_until DOUBLE PRECISION, last_outcome TEXT, last_status INTEGER,
            last_attempt_at DOUBLE PRECISION)""",
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at)",
        "CREATE INDEX deliveries_subscription ON deliveries (topic, subscription)",
        """CREATE TABLE dead_letters (
            id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq BIGINT NOT NULL,
            reason TEXT NOT NULL, attempts INTEGER NOT NULL, last_outcome TEXT, last_status INTEGER,
            last_attempt_at DOUBLE PRECISION, dead_lettered_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX dead_letters_subscription ON dead_letters (topic, subscription)",
        """CREATE TABLE documents (
            collection TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL, version INTEGER NOT NULL,
            PRIMARY KEY (collection, key))""",
    ],
    [
        """CREATE TABLE namespace_resources (
            namespace TEXT NOT NULL, topic TEXT NOT NULL, name TEXT NOT NULL, properties TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (namespace, topic, name))""",
        "ALTER TABLE deliveries ADD COLUMN lock_token TEXT",
        "CREATE INDEX deliveries_lock_token ON deliveries (lock_token) WHERE lock_token IS NOT NULL",
        "CREATE INDEX deliveries_subscription_id ON deliveries (topic, subscription, id)",
    ],
    [
        "ALTER TABLE topics ADD COLUMN location TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE topics ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
    ],
    [
        """CREATE TABLE delivery_attempts (
            id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, subscription TEXT NOT NULL, event_seq BIGINT NOT NULL,
            attempt INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL, outcome TEXT NOT NULL, status INTEGER,
            duration DOUBLE PRECISION NOT NULL, error TEXT, response TEXT NOT NULL)""",
        "CREATE INDEX delivery_attempts_event ON delivery_attempts (event_seq)",
        "CREATE INDEX delivery_attempts_subscription ON delivery_attempts (topic, subscription, id)",
        "CREATE INDEX events_id ON events (id)",
        "CREATE INDEX deliveries_event ON deliveries (event_seq)",
        "CREATE INDEX dead_letters_event ON dead_letters (event_seq)",
    ],
    [
        "ALTER TABLE topics ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE deliveries ADD COLUMN replay_id TEXT",
        """CREATE TABLE published_ids (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
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
        "DROP INDEX deliveries_subscription",  # deliveries_subscription_id (topic, subscription, id) covers it
    ],
]


LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock($1)"
INSERT_SCHEMA_VERSION = "INSERT INTO schema_version (version) VALUES ($1)"
INSERT_EVENTS = """
    INSERT INTO events (seq, topic, id, type, subject, time, published_at, body)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::float8[], $8::bytea[])"""
INSERT_DELIVERIES = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, order_key)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::text[])"""
INSERT_LEASED_DELIVERIES = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, lease_owner, lease_until)
    SELECT t, s, q, $4::float8, $5::text, $6::float8 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(t, s, q)
    RETURNING id, subscription, event_seq"""
INSERT_ATTEMPTS = f"""
    INSERT INTO delivery_attempts ({console_sql.ATTEMPT_COLS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::float8[], $6::text[], $7::int[],
                         $8::float8[], $9::text[], $10::text[])"""
CLAIM_DELIVERIES = f"""
    WITH due AS (
        SELECT d.id FROM deliveries d JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
        WHERE d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until < $3) AND s.status = 'Active'
          AND d.order_key IS NULL
          AND (d.topic, d.subscription) NOT IN (SELECT * FROM unnest($5::text[], $6::text[]))
        ORDER BY d.next_attempt_at LIMIT $4 FOR UPDATE OF d SKIP LOCKED),
    claimed AS (
        UPDATE deliveries d SET lease_owner = $1, lease_until = $2 FROM due WHERE d.id = due.id RETURNING d.*)
    SELECT {rows.DELIVERY_COLS} FROM claimed d JOIN events e ON e.seq = d.event_seq ORDER BY d.next_attempt_at, d.id"""
# The head of each key: its oldest pending event. Asked as a min() over the key's index rather than NOT EXISTS, so
# the planner takes `deliveries_order_key` even before statistics exist (a backlog stored into a new table):
# with NOT EXISTS it scanned each subscription's rows per candidate, 0.8 s per claim of 5,000 deliveries.
CLAIM_ORDERED = f"""
    WITH due AS (
        SELECT d.id FROM deliveries d JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
        WHERE d.order_key IS NOT NULL AND d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until < $3)
          AND s.status = 'Active'
          AND (d.topic, d.subscription) NOT IN (SELECT * FROM unnest($5::text[], $6::text[]))
          AND d.event_seq = (SELECT min(o.event_seq) FROM deliveries o
                             WHERE o.topic = d.topic AND o.subscription = d.subscription
                               AND o.order_key IS NOT NULL AND o.order_key = d.order_key)
        ORDER BY d.next_attempt_at LIMIT $4 FOR UPDATE OF d SKIP LOCKED),
    claimed AS (
        UPDATE deliveries d SET lease_owner = $1, lease_until = $2 FROM due WHERE d.id = due.id RETURNING d.*)
    SELECT {rows.DELIVERY_COLS} FROM claimed d JOIN events e ON e.seq = d.event_seq ORDER BY d.next_attempt_at, d.id"""
RELEASE_DELIVERIES = """
    UPDATE deliveries SET next_attempt_at = $1 WHERE topic = $2 AND subscription = $3 AND next_attempt_at > $1
    AND (lease_until IS NULL OR lease_until < $1)"""
RENEW_LEASES = "UPDATE deliveries SET lease_until = $1 WHERE lease_owner = $2 AND id = ANY($3::bigint[])"
NEXT_DUE = """
    SELECT min(d.next_attempt_at) FROM deliveries d
    JOIN subscriptions s ON s.topic = d.topic AND s.name = d.subscription
    WHERE s.status = 'Active' AND (d.lease_until IS NULL OR d.lease_until < $1)"""
RESCHEDULE = """
    UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
    last_outcome = $2, last_status = $3, last_attempt_at = $4 WHERE id = ANY($5::bigint[])"""
DEAD_LETTER_MOVE = """
    WITH gone AS (DELETE FROM deliveries WHERE id = ANY($7::bigint[]) RETURNING *)
    INSERT INTO dead_letters (topic, subscription, event_seq, reason, attempts, last_outcome, last_status,
                              last_attempt_at, dead_lettered_at)
    SELECT topic, subscription, event_seq, $1, attempts + $2, coalesce($3, last_outcome),
           CASE WHEN $3::text IS NULL THEN last_status ELSE $4::integer END,  -- the last attempt's, even none
           coalesce($5, last_attempt_at), $6 FROM gone"""
UPSERT_DOCUMENT = """
    INSERT INTO documents (collection, key, value, version) VALUES ($1, $2, $3, 1)
    ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value, version = documents.version + 1
    RETURNING version"""
INSERT_DOCUMENT = """
    INSERT INTO documents (collection, key, value, version) VALUES ($1, $2, $3, 1)
    ON CONFLICT (collection, key) DO NOTHING RETURNING version"""
UPDATE_DOCUMENT = """
    UPDATE documents SET value = $3, version = version + 1
    WHERE collection = $1 AND key = $2 AND version = $4 RETURNING version"""
# A version of None deletes whatever is stored; RETURNING tells whether anything was.
DELETE_DOCUMENT = """
    DELETE FROM documents WHERE collection = $1 AND key = $2 AND ($3::integer IS NULL OR version = $3)
    RETURNING version"""
NEXT_EVENT_SEQS = "SELECT nextval('events_seq_seq') FROM generate_series(1, $1)"
# settings, topics, events
SELECT_SETTING = "SELECT value FROM settings WHERE key = $1"
PUT_SETTING = "INSERT INTO settings VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
ADD_SETTING = "INSERT INTO settings VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
INSERT_TOPIC = f"INSERT INTO topics ({rows.TOPIC_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
UPDATE_TOPIC = """
    UPDATE topics SET arm_id = $1, input_schema = $2, kind = $3, key1 = $4, key2 = $5, location = $6, tags = $7,
    options = $8 WHERE lower(name) = lower($9)"""
SELECT_TOPIC = f"SELECT {rows.TOPIC_COLS} FROM topics WHERE lower(name) = lower($1)"
LIST_TOPICS = f"SELECT {rows.TOPIC_COLS} FROM topics ORDER BY name"
# A topic goes with everything that names it.
_TOPIC_TABLES = ("deliveries", "dead_letters", "subscriptions", "events", "published_ids")
DELETE_TOPIC = [
    *(f"DELETE FROM {table} WHERE topic = $1" for table in _TOPIC_TABLES),
    "DELETE FROM topics WHERE name = $1",
]
LIST_EVENTS = f"""
    SELECT {rows.EVENT_COLS} FROM events e WHERE e.topic = $1 AND e.seq < $2 ORDER BY e.seq DESC LIMIT $3"""
GET_EVENT = f"""
    SELECT {rows.EVENT_COLS} FROM events e WHERE e.topic = $1 AND e.id = $2 ORDER BY e.seq DESC LIMIT 1"""
COUNT_EVENTS = "SELECT count(*) FROM events"
COUNT_TOPIC_EVENTS = "SELECT count(*) FROM events WHERE topic = $1"
# subscriptions
INSERT_SUBSCRIPTION = f"INSERT INTO subscriptions ({rows.SUBSCRIPTION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
UPDATE_SUBSCRIPTION = """
    UPDATE subscriptions SET properties = coalesce($1, properties), status = $2, updated_at = $3
    WHERE topic = $4 AND lower(name) = lower($5)"""
SELECT_SUBSCRIPTION = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions WHERE topic = $1 AND lower(name) = lower($2)"
LIST_SUBSCRIPTIONS = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions ORDER BY topic, name"
LIST_TOPIC_SUBSCRIPTIONS = f"SELECT {rows.SUBSCRIPTION_COLS} FROM subscriptions WHERE topic = $1 ORDER BY topic, name"
DELETE_SUBSCRIPTION = "DELETE FROM subscriptions WHERE topic = $1 AND lower(name) = lower($2) RETURNING name"
DELETE_SUBSCRIPTION_DELIVERIES = "DELETE FROM deliveries WHERE topic = $1 AND subscription = $2"
# deliveries and dead letters
DELETE_DELIVERIES = "DELETE FROM deliveries WHERE id = ANY($1::bigint[])"
COUNT_DELIVERIES = "SELECT count(*) FROM deliveries"
SELECT_DEAD_LETTERS = f"SELECT {rows.DEAD_LETTER_COLS} FROM dead_letters x JOIN events e ON e.seq = x.event_seq"
GET_DEAD_LETTER = f"{SELECT_DEAD_LETTERS} WHERE x.id = $1"
REDELIVER = """
    WITH gone AS (DELETE FROM dead_letters WHERE id = ANY($1::bigint[]) RETURNING *)
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at)
    SELECT topic, subscription, event_seq, $2 FROM gone RETURNING id"""
# documents: keys compare bytewise (COLLATE "C"), as SQLite's do
GET_DOCUMENT = "SELECT collection, key, value, version FROM documents WHERE collection = $1 AND key = $2"
LIST_DOCUMENTS = """
    SELECT collection, key, value, version FROM documents WHERE collection = $1 AND key COLLATE "C" > $2
    ORDER BY key COLLATE "C" LIMIT $3"""
# namespace resources and queue locks
UPDATE_RESOURCE = """
    UPDATE namespace_resources SET properties = $4, updated_at = $5 WHERE namespace = $1 AND topic = $2 AND name = $3"""
GET_RESOURCE = f"{queue_sql.SELECT_RESOURCE} WHERE namespace = $1 AND topic = $2 AND name = $3"
RENEW_LOCKS = "UPDATE deliveries SET lease_until = $1 WHERE id = ANY($2::bigint[])"
# delivery attempts and the console's reads
TRIM_ATTEMPTS = "DELETE FROM delivery_attempts WHERE id <= (SELECT max(id) FROM delivery_attempts) - $1"
LIST_ATTEMPTS = f"SELECT {console_sql.ATTEMPT_COLS} FROM delivery_attempts WHERE event_seq = $1 ORDER BY id"
RECENT_ATTEMPTS = f"""
    SELECT {console_sql.ATTEMPT_COLS} FROM delivery_attempts WHERE topic = $1 AND subscription = $2
    ORDER BY id DESC LIMIT $3"""
EVENT_BY_SEQ = f"SELECT {rows.EVENT_COLS} FROM events e WHERE e.seq = $1"
EVENTS_AFTER = f"SELECT {rows.EVENT_COLS} FROM events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
EVENT_DELIVERIES = f"""
    SELECT {rows.DELIVERY_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.event_seq = $1 ORDER BY d.id"""
EVENT_DEAD_LETTERS = f"{SELECT_DEAD_LETTERS} WHERE x.event_seq = $1 ORDER BY x.id"
BACKLOG = "SELECT count(*), min(event_seq) FROM deliveries"
PUBLISHED_AT = "SELECT published_at FROM events WHERE seq = $1"
CHANGES_CHANNEL = "commgrid_changes"
# NOTIFY is sent on commit, so a listener never sees a change before it is readable.
BUMP_VERSION = f"""
    INSERT INTO settings (key, value) VALUES ('subscriptions_version', '1')
    ON CONFLICT (key) DO UPDATE SET value = (settings.value::bigint + 1)::text;
    NOTIFY {CHANGES_CHANNEL}"""


RECLAIM = "VACUUM (SKIP_LOCKED) events, deliveries, dead_letters, published_ids"


def _count(status: str) -> int:
    """The row count of a command status such as `DELETE 3` or `INSERT 0 5`."""
    return int(status.rsplit(" ", 1)[-1])


async def _dedupe(conn: asyncpg.Connection, events: Sequence[NewEvent], routes: Sequence[Route],
                  now: float) -> tuple[list[NewEvent], list[Route]]:
    """Drop events whose id the topic accepted within its window, on any node: the upsert returns the keys it
    took, and a node racing on the same key waits for the other's row lock, then sees its fresh expiry."""
    keys = list(retention_sql.dedupe_keys(events)[0].items())
    accepted = await conn.fetch(retention_sql.REMEMBER_PG, [t for (t, _), _ in keys], [i for (_, i), _ in keys],
                                [now + events[n].dedupe_seconds for _, n in keys], now)
    fresh = {(r[0], r[1]) for r in accepted}
    kept, kept_routes, _ = retention_sql.apply_dedupe(events, routes, now, {k for k, _ in keys if k not in fresh})
    return kept, kept_routes


@contextlib.contextmanager
def _wrap_errors() -> Iterator[None]:
    """Translate asyncpg errors into store errors: driver errors never leave the backend."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(f"The record already exists ({exc.constraint_name}).") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StoreError(f"PostgreSQL error: {exc}") from exc


class PostgresStore(Store):
    """Store backed by a PostgreSQL database (`postgresql://user@host:port/db`)."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self._sizes = (min_size, max_size)

    async def open(self) -> None:
        with _wrap_errors():
            self._pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1])
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(LOCK_MIGRATIONS, _MIGRATION_LOCK)
                await conn.execute(rows.CREATE_SCHEMA_VERSION)
                current = await conn.fetchval(rows.SCHEMA_VERSION)
                for version, statements in enumerate(MIGRATIONS, start=1):
                    if version > current:
                        for statement in statements:
                            await conn.execute(statement)
                        await conn.execute(INSERT_SCHEMA_VERSION, version)

    async def reset(self) -> None:
        async with self._conn(transaction=True) as conn:
            for statement in rows.drop_tables(MIGRATIONS, " CASCADE"):
                await conn.execute(statement)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _conn(self, *, transaction: bool = False) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreNotOpen()
        with _wrap_errors():
            async with self._pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._conn() as conn:
            return await conn.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def _required(self, missing: str, sql: str, *args: object) -> asyncpg.Record:
        """The one row `sql` selects; `Missing(missing)` if there is none."""
        row = await self._fetchrow(sql, *args)
        if row is None:
            raise Missing(missing)
        return row

    async def _fetchval(self, sql: str, *args: object) -> Any:
        """The first column of the first row (an aggregate's value)."""
        async with self._conn() as conn:
            return await conn.fetchval(sql, *args)

    # settings --------------------------------------------------------------------------------------------
    async def get_setting(self, key: str) -> str | None:
        row = await self._fetchrow(SELECT_SETTING, key)
        return row[0] if row else None

    async def set_setting(self, key: str, value: str, *, only_if_absent: bool = False, announce: bool = False) -> str:
        async with self._conn(transaction=True) as conn:
            await conn.execute(ADD_SETTING if only_if_absent else PUT_SETTING, key, value)
            if announce:
                await conn.execute(BUMP_VERSION)
            return await conn.fetchval(SELECT_SETTING, key)

    # topics ----------------------------------------------------------------------------------------------
    async def create_topic(self, topic: Topic) -> None:
        await self._insert_announced(INSERT_TOPIC, rows.topic_values(topic))

    async def _insert_announced(self, sql: str, values: Sequence[object]) -> None:
        """Insert a topic or subscription and move the change counter, in one transaction."""
        async with self._conn(transaction=True) as conn:
            await conn.execute(sql, *values)
            await conn.execute(BUMP_VERSION)

    async def update_topic(self, topic: Topic) -> None:
        async with self._conn(transaction=True) as conn:
            values = rows.topic_values(topic)
            status = await conn.execute(UPDATE_TOPIC, *values[1:6], *values[7:], topic.name)
            if status.endswith(" 0"):
                raise Missing(f"Topic '{topic.name}' was not found.")
            await conn.execute(BUMP_VERSION)

    async def get_topic(self, name: str) -> Topic:
        return rows.topic_from_row(await self._required(f"Topic '{name}' was not found.", SELECT_TOPIC, name))

    async def list_topics(self) -> list[Topic]:
        found = await self._fetch(LIST_TOPICS)
        return [rows.topic_from_row(r) for r in found]

    async def delete_topic(self, name: str) -> None:
        topic = await self.get_topic(name)
        async with self._conn(transaction=True) as conn:
            for statement in DELETE_TOPIC:
                await conn.execute(statement, topic.name)
            await conn.execute(BUMP_VERSION)

    # events ----------------------------------------------------------------------------------------------
    async def append_events(self, events: Sequence[NewEvent], routes: Sequence[Route], now: float,
                            lease: Lease | None = None) -> list[Delivery]:
        if not events:
            return []
        async with self._conn(transaction=True) as conn:
            return await self._append(conn, events, routes, now, lease)

    @staticmethod
    async def _append(conn: asyncpg.Connection, events: Sequence[NewEvent], routes: Sequence[Route],
                      now: float, lease: Lease | None = None) -> list[Delivery]:
        if any(e.dedupe_seconds for e in events):
            events, routes = await _dedupe(conn, events, routes, now)
            if not events:
                return []
        seqs = [r[0] for r in await conn.fetch(NEXT_EVENT_SEQS, len(events))]
        await conn.execute(
            INSERT_EVENTS, seqs, [e.topic for e in events], [e.id for e in events], [e.type for e in events],
            [e.subject for e in events], [e.time for e in events], [now] * len(events),
            [e.body for e in events],
        )
        leased, waiting = rows.split_leased(routes, lease)
        if waiting:
            await conn.execute(
                INSERT_DELIVERIES, [events[r.event_index].topic for r in waiting],
                [r.subscription for r in waiting], [seqs[r.event_index] for r in waiting], [now] * len(waiting),
                [r.order_key for r in waiting],
            )
        if not leased:
            return []
        assert lease is not None
        created = await conn.fetch(
            INSERT_LEASED_DELIVERIES, [events[r.event_index].topic for r in leased],
            [r.subscription for r in leased], [seqs[r.event_index] for r in leased], now, lease.owner, lease.until)
        index = {seq: i for i, seq in enumerate(seqs)}
        return [rows.leased_delivery(c["id"], c["subscription"], events[index[c["event_seq"]]], c["event_seq"], now)
                for c in created]

    async def list_events(self, topic: str, limit: int = 50, before_seq: int | None = None) -> list[StoredEvent]:
        found = await self._fetch(LIST_EVENTS, topic, before_seq if before_seq is not None else 2**62, limit)
        return [rows.event_from_row(r) for r in found]

    async def get_event(self, topic: str, event_id: str) -> StoredEvent:
        missing = f"Event '{event_id}' was not found in topic '{topic}'."
        return rows.event_from_row(await self._required(missing, GET_EVENT, topic, event_id))

    async def count_events(self, topic: str | None = None) -> int:
        if topic is None:
            return await self._fetchval(COUNT_EVENTS)
        return await self._fetchval(COUNT_TOPIC_EVENTS, topic)

    async def events_in_order(
        self, topic: str, after_seq: int, limit: int, *, until_seq: int | None = None,
        published_from: float | None = None, published_to: float | None = None,
    ) -> list[StoredEvent]:
        sql, args = retention_sql.events_in_order_sql("$", topic, after_seq, limit, until_seq=until_seq,
                                                      published_from=published_from, published_to=published_to)
        return [rows.event_from_row(r) for r in await self._fetch(sql, *args)]

    # retention, replay and dedupe ------------------------------------------------------------------------
    async def sweep_retention(self, topic: str, events_before: float, dead_letters_before: float,
                              limit: int) -> Swept:
        dead_letters = retention_sql.SWEEP_DEAD_LETTERS.format(topic="$1", before="$2", limit="$3")
        attempts = retention_sql.SWEEP_ATTEMPTS.format(topic="$1", before="$2", limit="$3")
        async with self._conn(transaction=True) as conn:
            letters = await conn.execute(dead_letters, topic, dead_letters_before, limit)
            seqs = [r[0] for r in await conn.fetch(retention_sql.LOCK_OLD_EVENTS_PG, topic, events_before, limit)]
            events = await conn.execute(retention_sql.DELETE_UNHELD_PG, seqs) if seqs else "DELETE 0"
            tried = await conn.execute(attempts, topic, events_before, limit)
        return Swept(events=_count(events), dead_letters=_count(letters), attempts=_count(tried))

    async def forget_published_ids(self, now: float, limit: int) -> int:
        async with self._conn() as conn:
            return _count(await conn.execute(retention_sql.FORGET_IDS.format(now="$1", limit="$2"), now, limit))

    async def reclaim_space(self) -> None:
        """A plain VACUUM after a sweep, so the next inserts reuse the space at once rather than when autovacuum
        comes around (it takes no lock that blocks reads or writes)."""
        async with self._conn() as conn:
            await conn.execute(RECLAIM)

    async def queue_replay(self, topic: str, subscription: str, seqs: Sequence[int], replay_id: str,
                           now: float) -> int:
        async with self._conn(transaction=True) as conn:
            # Share-locked, so a retention sweep cannot delete them under the new deliveries.
            kept = {r[0] for r in await conn.fetch(retention_sql.SHARE_EVENTS_PG, list(seqs))}
            order = [s for s in seqs if s in kept]
            due = [now + i * retention_sql.REPLAY_STEP for i in range(len(order))]
            return _count(await conn.execute(retention_sql.QUEUE_REPLAY_PG, topic, subscription, replay_id, order,
                                             due)) if order else 0

    async def stats(self) -> StoreStats:
        counts: dict[str, TopicCounts] = {}
        for topic, events, oldest in await self._fetch(retention_sql.COUNT_EVENTS):
            counts[topic] = TopicCounts(topic, events=events, oldest_event_at=oldest)
        for sql, attr in ((retention_sql.COUNT_DELIVERIES, "pending_deliveries"),
                          (retention_sql.COUNT_DEAD_LETTERS, "dead_letters")):
            for topic, n in await self._fetch(sql):
                setattr(counts.setdefault(topic, TopicCounts(topic)), attr, n)
        tables = rows.created_tables(MIGRATIONS)
        size = await self._fetchval("SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint"
                                    " FROM unnest($1::text[]) AS t", tables)
        return StoreStats(topics=[counts[t] for t in sorted(counts)], size_bytes=size)

    # subscriptions ---------------------------------------------------------------------------------------
    async def create_subscription(self, sub: Subscription) -> None:
        await self._insert_announced(INSERT_SUBSCRIPTION, rows.subscription_values(sub))

    async def update_subscription(self, sub: Subscription) -> None:
        async with self._conn(transaction=True) as conn:
            status = await conn.execute(
                UPDATE_SUBSCRIPTION, rows.properties_json(sub), sub.status, sub.updated_at, sub.topic, sub.name)
            if status.endswith(" 0"):
                raise Missing(f"Event subscription '{sub.name}' was not found.")
            await conn.execute(BUMP_VERSION)

    async def get_subscription(self, topic: str, name: str) -> Subscription:
        missing = f"Event subscription '{name}' was not found."
        return rows.subscription_from_row(await self._required(missing, SELECT_SUBSCRIPTION, topic, name))

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        if topic is None:
            found = await self._fetch(LIST_SUBSCRIPTIONS)
        else:
            found = await self._fetch(LIST_TOPIC_SUBSCRIPTIONS, topic)
        return [rows.subscription_from_row(r) for r in found]

    async def delete_subscription(self, topic: str, name: str) -> None:
        async with self._conn(transaction=True) as conn:
            deleted = await conn.fetchval(DELETE_SUBSCRIPTION, topic, name)
            if deleted is None:
                raise Missing(f"Event subscription '{name}' was not found.")
            await conn.execute(DELETE_SUBSCRIPTION_DELIVERIES, topic, deleted)
            await conn.execute(BUMP_VERSION)

    async def subscriptions_version(self) -> int:
        return int(await self.get_setting("subscriptions_version") or 0)

    async def watch_changes(self, callback: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """LISTEN on a connection of its own: every node hears each change as its transaction commits."""
        with _wrap_errors():
            conn = await asyncpg.connect(self.url)
            await conn.add_listener(CHANGES_CHANNEL, lambda *_: callback())

        async def stop() -> None:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.close()

        return stop

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
        """Lease the due deliveries `query` selects, but none of the (topic, subscription) pairs in `skip`."""
        topics, subscriptions = [t for t, _ in skip], [s for _, s in skip]
        async with self._conn(transaction=True) as conn:
            found = await conn.fetch(query, owner, now + lease, now, limit, topics, subscriptions)
        return [rows.delivery_from_row(r) for r in found]

    async def renew_leases(self, owner: str, ids: Sequence[int], until: float) -> int:
        async with self._conn() as conn:
            status = await conn.execute(RENEW_LEASES, until, owner, list(ids))
        return int(status.rsplit(" ", 1)[-1])

    async def record_outcomes(self, completed: Sequence[int], attempts: Sequence[AttemptRecord], keep: int) -> None:
        if not completed and not attempts:
            return
        async with self._conn(transaction=bool(attempts)) as conn:  # more than one statement
            if completed:
                await conn.execute(DELETE_DELIVERIES, list(completed))
            if attempts:  # one statement for the whole batch: a column per array
                columns = zip(*(console_sql.attempt_values(r) for r in attempts), strict=True)
                await conn.execute(INSERT_ATTEMPTS, *[list(c) for c in columns])
                await conn.execute(TRIM_ATTEMPTS, keep)

    async def reschedule_deliveries(self, ids: Sequence[int], attempt: Attempt, next_attempt_at: float) -> None:
        async with self._conn() as conn:
            await conn.execute(RESCHEDULE, next_attempt_at, attempt.outcome, attempt.status, attempt.at, list(ids))

    async def dead_letter_deliveries(
        self, ids: Sequence[int], reason: str, now: float, attempt: Attempt | None = None
    ) -> None:
        counted, outcome, status, at = rows.attempt_values(attempt)
        async with self._conn() as conn:
            await conn.execute(DEAD_LETTER_MOVE, reason, counted, outcome, status, at, now, list(ids))

    async def release_deliveries(self, topic: str, subscription: str, now: float) -> int:
        async with self._conn() as conn:
            status = await conn.execute(RELEASE_DELIVERIES, now, topic, subscription)
        return int(status.rsplit(" ", 1)[-1])

    async def count_pending_deliveries(self, topic: str | None = None, subscription: str | None = None) -> int:
        sql, args = rows.filter_sql(COUNT_DELIVERIES, topic, subscription, "$")
        return await self._fetchval(sql, *args)

    async def next_due_at(self, now: float) -> float | None:
        return await self._fetchval(NEXT_DUE, now)

    # dead letters ----------------------------------------------------------------------------------------
    async def list_dead_letters(
        self, topic: str | None = None, subscription: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        sql, args = rows.filter_sql(SELECT_DEAD_LETTERS, topic, subscription, "$", prefix="x.")
        found = await self._fetch(sql + f" ORDER BY x.id DESC LIMIT ${len(args) + 1}", *args, limit)
        return [rows.dead_letter_from_row(r) for r in found]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter:
        missing = f"Dead-letter record {dead_letter_id} was not found."
        return rows.dead_letter_from_row(await self._required(missing, GET_DEAD_LETTER, dead_letter_id))

    async def redeliver_dead_letters(self, ids: Sequence[int], now: float) -> int:
        async with self._conn(transaction=True) as conn:
            moved = await conn.fetch(REDELIVER, list(ids), now)
        return len(moved)

    # documents -------------------------------------------------------------------------------------------
    async def put_document(self, doc: Document, *, expect_version: int | None = None) -> Document:
        async with self._conn() as conn:
            version = await self._write_document(conn, DocumentWrite(doc.collection, doc.key, doc.value,
                                                                     expect_version))
        return Document(doc.collection, doc.key, doc.value, version)

    async def write_change(
        self, documents: Sequence[DocumentWrite], events: Sequence[NewEvent], routes: Sequence[Route], now: float,
        lease: Lease | None = None,
    ) -> list[Delivery]:
        async with self._conn(transaction=True) as conn:
            for write in documents:
                await self._write_document(conn, write)
            return await self._append(conn, events, routes, now, lease) if events else []

    @staticmethod
    async def _write_document(conn: asyncpg.Connection, write: DocumentWrite) -> int:
        """Apply one document write (in the caller's transaction, if any); returns the new version (0: deleted).

        One statement per case, so concurrent writers cannot both pass the version check.
        """
        where, expected = (write.collection, write.key), write.expect_version
        if write.value is None:
            found = await conn.fetchval(DELETE_DOCUMENT, *where, expected)
            if found is None and expected is None:
                raise Missing(f"Document '{write.collection}/{write.key}' was not found.")
            version = None if found is None else 0
        elif expected is None:
            version = await conn.fetchval(UPSERT_DOCUMENT, *where, orjson.dumps(write.value))
        elif expected == 0:
            version = await conn.fetchval(INSERT_DOCUMENT, *where, orjson.dumps(write.value))
        else:
            version = await conn.fetchval(UPDATE_DOCUMENT, *where, orjson.dumps(write.value), expected)
        if version is None:
            raise VersionConflict(f"Document '{write.collection}/{write.key}' is not at version {expected}.")
        return version

    async def get_document(self, collection: str, key: str) -> Document:
        missing = f"Document '{collection}/{key}' was not found."
        return rows.document_from_row(await self._required(missing, GET_DOCUMENT, collection, key))

    async def list_documents(
        self, collection: str, after_key: str | None = None, limit: int = 100
    ) -> list[Document]:
        found = await self._fetch(LIST_DOCUMENTS, collection, after_key or "", limit)
        return [rows.document_from_row(r) for r in found]

    async def delete_document(self, collection: str, key: str) -> None:
        async with self._conn() as conn:
            deleted = await conn.fetchval(DELETE_DOCUMENT, collection, key, None)
        if deleted is None:
            raise Missing(f"Document '{collection}/{key}' was not found.")

    # namespaces ------------------------------------------------------------------------------------------
    async def put_namespace_resource(self, resource: NamespaceResource, *, create: bool) -> None:
        values = rows.namespace_resource_values(resource)
        async with self._conn(transaction=True) as conn:
            if create:
                await conn.execute(queue_sql.INSERT_RESOURCE.format(p="$1, $2, $3, $4, $5, $6"), *values)
                return
            status = await conn.execute(UPDATE_RESOURCE, *values[:4], values[5])
            if status.endswith(" 0"):
                raise Missing(f"Namespace resource '{rows.resource_path(resource)}' was not found.")

    async def get_namespace_resource(self, namespace: str, topic: str = "", name: str = "") -> NamespaceResource:
        missing = f"Namespace resource '{'/'.join(filter(None, (namespace, topic, name)))}' was not found."
        return rows.namespace_resource_from_row(await self._required(missing, GET_RESOURCE, namespace, topic, name))

    async def list_namespace_resources(self, namespace: str = "", topic: str = "") -> list[NamespaceResource]:
        sql, args = queue_sql.children_sql(namespace, topic, "$")
        found = await self._fetch(sql, *args)
        return [rows.namespace_resource_from_row(r) for r in found]

    async def delete_namespace_resources(self, namespace: str, topic: str = "", name: str = "") -> None:
        sql, args = queue_sql.delete_subtree_sql(namespace, topic, name, "$")
        async with self._conn(transaction=True) as conn:
            status = await conn.execute(sql, *args)
            if status.endswith(" 0"):
                raise Missing(f"Namespace resource '{'/'.join(filter(None, (namespace, topic, name)))}' was not found.")

    # queue subscriptions ---------------------------------------------------------------------------------
    async def lock_events(
        self, topic: str, subscription: str, now: float, limit: int, lock_until: float, *,
        max_deliveries: int, published_after: float,
    ) -> list[LockedEvent]:
        async with self._conn(transaction=True) as conn:
            for _ in range(queue_sql.MAX_SWEEPS):
                found = await conn.fetch(queue_sql.LOCK_CANDIDATES_PG, topic, subscription, now, limit)
                take, dead = queue_sql.split_candidates(found, max_deliveries, published_after)
                for reason, ids in dead.items():
                    await conn.execute(DEAD_LETTER_MOVE, reason, 0, None, None, None, now, ids)
                if take or not dead:
                    break
            if not take:
                return []
            locked = await conn.fetch(queue_sql.LOCK_PG, lock_until, take, queue_sql.new_tokens(len(take)))
        return [rows.locked_event_from_row(r) for r in locked]

    async def settle_locks(
        self, topic: str, subscription: str, tokens: Sequence[str], action: str, now: float, *,
        until: float = 0.0, reason: str = "",
    ) -> dict[str, str]:
        async with self._conn(transaction=True) as conn:
            found = await conn.fetch(queue_sql.FIND_LOCKS_PG, list(tokens))
            outcomes, valid = queue_sql.lock_outcomes(tokens, found, topic, subscription, now)
            if valid:
                await self._settle(conn, action, valid, now, until, reason)
        return outcomes

    async def _settle(
        self, conn: asyncpg.Connection, action: str, ids: list[int], now: float, until: float, reason: str
    ) -> None:
        if action == "reject":
            await conn.execute(DEAD_LETTER_MOVE, reason, 0, None, None, None, now, ids)
        elif action == "acknowledge":
            await conn.execute(DELETE_DELIVERIES, ids)
        elif action == "release":
            await conn.execute(queue_sql.RELEASE_PG, until, ids)
        elif action == "renew":
            await conn.execute(RENEW_LOCKS, until, ids)
        else:
            raise ValueError(f"unknown settle action {action!r}")

    # delivery attempts and the console's reads ----------------------------------------------------------
    async def list_attempts(self, event_seq: int) -> list[AttemptRecord]:
        found = await self._fetch(LIST_ATTEMPTS, event_seq)
        return [console_sql.attempt_from_row(r) for r in found]

    async def recent_attempts(self, topic: str, subscription: str, limit: int = 20) -> list[AttemptRecord]:
        found = await self._fetch(RECENT_ATTEMPTS, topic, subscription, limit)
        return [console_sql.attempt_from_row(r) for r in found]

    async def event_by_seq(self, seq: int) -> StoredEvent:
        return rows.event_from_row(await self._required(f"Event {seq} was not found.", EVENT_BY_SEQ, seq))

    async def search_events(self, query: EventQuery, limit: int = 50) -> list[StoredEvent]:
        sql, args = console_sql.search_sql(query, limit, "$")
        return [rows.event_from_row(r) for r in await self._fetch(sql, *args)]

    async def events_after(self, seq: int, limit: int = 500) -> list[StoredEvent]:
        found = await self._fetch(EVENTS_AFTER, seq, limit)
        return [rows.event_from_row(r) for r in found]

    async def event_deliveries(self, event_seq: int) -> list[Delivery]:
        found = await self._fetch(EVENT_DELIVERIES, event_seq)
        return [rows.delivery_from_row(r) for r in found]

    async def event_dead_letters(self, event_seq: int) -> list[DeadLetter]:
        found = await self._fetch(EVENT_DEAD_LETTERS, event_seq)
        return [rows.dead_letter_from_row(r) for r in found]

    async def delivery_backlog(self) -> tuple[int, float | None]:
        (row,) = await self._fetch(BACKLOG)
        count, oldest = row[0], row[1]
        if oldest is None:
            return count, None
        published = await self._fetchrow(PUBLISHED_AT, oldest)
        return count, published[0] if published else None
