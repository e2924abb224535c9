"""SQL and helpers both backends share for namespace resources and queue (pull) subscriptions.

A queue subscription's events are ordinary pending deliveries: `attempts` counts receives, `lease_until`
is the lock's end, `lock_token` names the lock and `next_attempt_at` delays a released event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from commgrid.store import rows
from commgrid.store.base import LOCK_EXPIRED, LOCK_OK, LOCK_UNKNOWN

MAX_SWEEPS = 20  # candidate batches a receive may dead-letter before it gives up for this call
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"
TTL_REASON = "TimeToLiveExceeded"

INSERT_RESOURCE = (
    "INSERT INTO namespace_resources (namespace, topic, name, properties, created_at, updated_at) VALUES ({p})"
)
SELECT_RESOURCE = "SELECT namespace, topic, name, properties, created_at, updated_at FROM namespace_resources"

_AVAILABLE = "d.next_attempt_at <= {now} AND (d.lease_until IS NULL OR d.lease_until < {now})"
LOCK_CANDIDATES_SQLITE = """
    SELECT d.id, d.attempts, e.published_at FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.topic = ? AND d.subscription = ? AND d.next_attempt_at <= ?
      AND (d.lease_until IS NULL OR d.lease_until < ?) ORDER BY d.id LIMIT ?"""
LOCK_SQLITE = (
    "UPDATE deliveries SET attempts = attempts + 1, lease_owner = 'pull', lease_until = ?, lock_token = ?"
    " WHERE id = ?"
)
SELECT_LOCKED_SQLITE = f"""
    SELECT d.id, d.lock_token, d.attempts, {rows.EVENT_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.id"""
# By token alone, so the lock_token index is used; the subscription is checked by `lock_outcomes`.
FIND_LOCKS_SQLITE = """
    SELECT lock_token, id, lease_until, topic, subscription FROM deliveries
    WHERE lock_token IN (SELECT value FROM json_each(?))"""
RELEASE_SQLITE = (
    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, lock_token = NULL, next_attempt_at = ?"
    " WHERE id = ?"
)

LOCK_CANDIDATES_PG = f"""
    SELECT d.id, d.attempts, e.published_at FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.topic = $1 AND d.subscription = $2 AND {_AVAILABLE.format(now="$3")}
    ORDER BY d.id LIMIT $4 FOR UPDATE OF d SKIP LOCKED"""
LOCK_PG = f"""
    WITH locked AS (
        UPDATE deliveries d SET attempts = d.attempts + 1, lease_owner = 'pull', lease_until = $1,
                                lock_token = t.token
        FROM unnest($2::bigint[], $3::text[]) AS t(id, token) WHERE d.id = t.id
        RETURNING d.id, d.lock_token, d.attempts, d.event_seq)
    SELECT d.id, d.lock_token, d.attempts, {rows.EVENT_COLS} FROM locked d JOIN events e ON e.seq = d.event_seq
    ORDER BY d.id"""
FIND_LOCKS_PG = """
    SELECT lock_token, id, lease_until, topic, subscription FROM deliveries
    WHERE lock_token = ANY($1::text[]) FOR UPDATE"""
RELEASE_PG = (
    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, lock_token = NULL, next_attempt_at = $1"
    " WHERE id = ANY($2::bigint[])"
)


def children(namespace: str, topic: str, mark: str) -> tuple[str, tuple]:
    """WHERE clause for the resources directly beneath (namespace, topic)."""
    p = [mark, mark] if mark == "?" else ["$1", "$2"]
    if not namespace:
        return "topic = '' AND name = ''", ()
    if not topic:
        return f"namespace = {p[0]} AND topic <> '' AND name = ''", (namespace,)
    return f"namespace = {p[0]} AND topic = {p[1]} AND name <> ''", (namespace, topic)


def children_sql(namespace: str, topic: str, mark: str) -> tuple[str, tuple]:
    """The select of the resources directly beneath (namespace, topic), by name."""
    where, args = children(namespace, topic, mark)
    return f"{SELECT_RESOURCE} WHERE {where} ORDER BY namespace, topic, name", args


def delete_subtree_sql(namespace: str, topic: str, name: str, mark: str) -> tuple[str, tuple]:
    """The delete of a resource and everything beneath it."""
    where, args = subtree(namespace, topic, name, mark)
    return f"DELETE FROM namespace_resources WHERE {where}", args


def subtree(namespace: str, topic: str, name: str, mark: str) -> tuple[str, tuple]:
    """WHERE clause for a resource and everything beneath it."""
    p = [mark] * 3 if mark == "?" else ["$1", "$2", "$3"]
    if not topic:
        return f"namespace = {p[0]}", (namespace,)
    if not name:
        return f"namespace = {p[0]} AND topic = {p[1]}", (namespace, topic)
    return f"namespace = {p[0]} AND topic = {p[1]} AND name = {p[2]}", (namespace, topic, name)


def split_candidates(
    found: Iterable[rows.Row], max_deliveries: int, published_after: float
) -> tuple[list[int], dict[str, list[int]]]:
    """(ids to lock, {dead-letter reason: ids}) of available candidates `(id, attempts, published_at)`."""
    take: list[int] = []
    dead: dict[str, list[int]] = {}
    for row in found:
        delivery_id, attempts, published_at = row["id"], row["attempts"], row["published_at"]
        if attempts >= max_deliveries:
            dead.setdefault(MAX_DELIVERY_REASON, []).append(delivery_id)
        elif published_at <= published_after:
            dead.setdefault(TTL_REASON, []).append(delivery_id)
        else:
            take.append(delivery_id)
    return take, dead


def lock_outcomes(
    tokens: Sequence[str], found: Iterable[rows.Row], topic: str, subscription: str, now: float
) -> tuple[dict[str, str], list[int]]:
    """({token: outcome}, ids still locked) from rows `(lock_token, id, lease_until, topic, subscription)`."""
    outcomes = dict.fromkeys(tokens, LOCK_UNKNOWN)
    valid: list[int] = []
    for row in found:
        token, delivery_id, lease_until = row["lock_token"], row["id"], row["lease_until"]
        row_topic, row_subscription = row["topic"], row["subscription"]
        if row_topic != topic or row_subscription.lower() != subscription.lower():
            continue  # another subscription's lock is not this one's to settle
        if lease_until is not None and lease_until > now:
            outcomes[token] = LOCK_OK
            valid.append(delivery_id)
        else:
            outcomes[token] = LOCK_EXPIRED
    return outcomes, valid


def new_tokens(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]
