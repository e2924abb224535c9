"""SQL and helpers both backends share for retention, replay, publish dedupe and `store stats`.

Dedupe keeps one `published_ids` row per (topic, event id) accepted on a topic with a dedupe window, until
`expires_at`; `append_events` consults and writes it in the transaction that stores the events.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from commgrid.store import rows
from commgrid.store.base import NewEvent, Route

# Publish dedupe --------------------------------------------------------------------------------------------


def dedupe_keys(events: Sequence[NewEvent]) -> tuple[dict[tuple[str, str], int], set[int]]:
    """The first index of each (topic, id) to check against the store, sorted by key (so that nodes lock
    the same rows in the same order), and the indexes that repeat a key earlier in `events`."""
    first: dict[tuple[str, str], int] = {}
    repeated: set[int] = set()
    for i, e in enumerate(events):
        if e.dedupe_seconds > 0:
            key = (e.topic, e.id)
            if key in first:
                repeated.add(i)
            else:
                first[key] = i
    return dict(sorted(first.items())), repeated


def apply_dedupe(events: Sequence[NewEvent], routes: Sequence[Route], now: float,
                 seen: set[tuple[str, str]]) -> tuple[list[NewEvent], list[Route], list[tuple[str, str, float]]]:
    """The events to store (less repeats and the (topic, id) keys in `seen`), their routes re-pointed, and the
    (topic, id, expires_at) records of the new keys."""
    first, dropped = dedupe_keys(events)
    dropped.update(i for key, i in first.items() if key in seen)
    remember = [(t, i, now + events[n].dedupe_seconds) for (t, i), n in first.items() if (t, i) not in seen]
    if not dropped:
        return list(events), list(routes), remember
    moved: dict[int, int] = {}
    kept: list[NewEvent] = []
    for i, e in enumerate(events):
        if i not in dropped:
            moved[i] = len(kept)
            kept.append(e)
    return kept, [Route(moved[r.event_index], r.subscription, r.order_key, r.leased) for r in routes
                  if r.event_index in moved], remember


def seen_args(events: Sequence[NewEvent], now: float) -> tuple[str, float]:
    """The arguments of `SEEN_SQLITE`: the batch's (topic, id) keys as JSON, and now."""
    return orjson.dumps(list(dedupe_keys(events)[0])).decode(), now


SEEN_SQLITE = """
    SELECT p.topic, p.id FROM published_ids p
    JOIN json_each(?) j ON p.topic = json_extract(j.value, '$[0]') AND p.id = json_extract(j.value, '$[1]')
    WHERE p.expires_at > ?"""
REMEMBER_SQLITE = "INSERT OR REPLACE INTO published_ids (topic, id, expires_at) VALUES (?, ?, ?)"
# A row that exists and has not expired stays as it is and is not returned: that event is a duplicate. A node
# racing on the same id waits for the first one's row lock, then sees its fresh expiry.
REMEMBER_PG = """
    INSERT INTO published_ids (topic, id, expires_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])
    ON CONFLICT (topic, id) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE published_ids.expires_at <= $4
    RETURNING topic, id"""
FORGET_IDS = "DELETE FROM published_ids WHERE (topic, id) IN (SELECT topic, id FROM published_ids" \
             " WHERE expires_at < {now} ORDER BY expires_at LIMIT {limit})"

# Retention -------------------------------------------------------------------------------------------------

_UNHELD = ("NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)"
           " AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.event_seq = e.seq)")
SWEEP_DEAD_LETTERS = """
    DELETE FROM dead_letters WHERE id IN (
        SELECT id FROM dead_letters WHERE topic = {topic} AND dead_lettered_at < {before} ORDER BY id LIMIT {limit})"""
# Delivery attempts (the console's history) go with the events they tried: same cutoff, oldest first.
SWEEP_ATTEMPTS = """
    DELETE FROM delivery_attempts WHERE id IN (
        SELECT id FROM delivery_attempts WHERE topic = {topic} AND at < {before} ORDER BY id LIMIT {limit})"""
SWEEP_EVENTS_SQLITE = f"""
    DELETE FROM events WHERE seq IN (
        SELECT e.seq FROM events e WHERE e.topic = ? AND e.published_at < ? AND {_UNHELD} ORDER BY e.seq LIMIT ?)"""
# PostgreSQL: lock the candidates first (skipping rows a replay or another node's sweep holds), then delete
# those still unheld in a second statement, whose fresh snapshot sees deliveries committed meanwhile.
LOCK_OLD_EVENTS_PG = f"""
    SELECT e.seq FROM events e WHERE e.topic = $1 AND e.published_at < $2 AND {_UNHELD}
    ORDER BY e.seq LIMIT $3 FOR UPDATE SKIP LOCKED"""
DELETE_UNHELD_PG = f"DELETE FROM events e WHERE e.seq = ANY($1::bigint[]) AND {_UNHELD}"

# Replay ----------------------------------------------------------------------------------------------------


def events_in_order_sql(mark: str, topic: str, after_seq: int, limit: int, *, until_seq: int | None,
                        published_from: float | None, published_to: float | None) -> tuple[str, list[object]]:
    """A select of a topic's events after `after_seq` within the bounds given, oldest first, and its arguments."""
    conditions = [("e.topic", "=", topic), ("e.seq", ">", after_seq), ("e.seq", "<=", until_seq),
                  ("e.published_at", ">=", published_from), ("e.published_at", "<=", published_to)]
    args = [value for *_, value in conditions if value is not None]
    marks = iter(["?"] * (len(args) + 1) if mark == "?" else [f"${i}" for i in range(1, len(args) + 2)])
    where = " AND ".join(f"{column} {op} {next(marks)}" for column, op, value in conditions if value is not None)
    return f"SELECT {rows.EVENT_COLS} FROM events e WHERE {where} ORDER BY e.seq LIMIT {next(marks)}", [*args, limit]


# Replayed deliveries are due a step apart in publish order, so claims take them in that order.
REPLAY_STEP = 1e-5
QUEUE_REPLAY_SQLITE = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, replay_id)
    SELECT ?, ?, seq, ?, ? FROM events WHERE seq = ?"""
SHARE_EVENTS_PG = "SELECT seq FROM events WHERE seq = ANY($1::bigint[]) ORDER BY seq FOR SHARE"
QUEUE_REPLAY_PG = """
    INSERT INTO deliveries (topic, subscription, event_seq, next_attempt_at, replay_id)
    SELECT $1, $2, seq, due, $3 FROM unnest($4::bigint[], $5::float8[]) AS r(seq, due)"""

# Stats -----------------------------------------------------------------------------------------------------

COUNT_EVENTS = "SELECT topic, count(*), min(published_at) FROM events GROUP BY topic"
COUNT_DELIVERIES = "SELECT topic, count(*) FROM deliveries GROUP BY topic"
COUNT_DEAD_LETTERS = "SELECT topic, count(*) FROM dead_letters GROUP BY topic"
