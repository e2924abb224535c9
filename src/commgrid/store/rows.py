"""Row ↔ record mapping shared by the SQL backends: each record is read from a row in one place, by column name
(sqlite3.Row and asyncpg.Record both map names to values)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from commgrid.grid.properties import (
    PLACEHOLDER_DESTINATION,
    SubscriptionProperties,
    UnreadableProperties,
    WebHookDestination,
)
from commgrid.grid.topic_options import TopicOptions
from commgrid.store.base import (
    Attempt,
    DeadLetter,
    Delivery,
    Document,
    Lease,
    LockedEvent,
    NamespaceResource,
    NewEvent,
    Route,
    StoredEvent,
    Subscription,
    Topic,
)

TOPIC_COLS = "name, arm_id, input_schema, kind, key1, key2, created_at, location, tags, options"
SUBSCRIPTION_COLS = "topic, name, properties, status, created_at, updated_at"
# Joined selects use the aliases e (events), d (deliveries) and x (dead_letters); an event's columns are named
# event_* so that they never clash with those of the delivery or dead letter they are joined to.
EVENT_COLS = (
    "e.seq AS event_seq, e.topic AS event_topic, e.id AS event_id, e.type AS event_type,"
    " e.subject AS event_subject, e.time AS event_time, e.published_at AS event_published_at, e.body AS event_body"
)
DELIVERY_COLS = (  # read by position in `delivery_from_row`
    "d.id, d.topic, d.subscription, d.attempts, d.next_attempt_at, d.last_outcome, d.last_status,"
    " d.last_attempt_at, d.replay_id, " + EVENT_COLS
)
DEAD_LETTER_COLS = (
    "x.id, x.topic, x.subscription, x.reason, x.attempts, x.last_outcome, x.last_status, x.last_attempt_at,"
    " x.dead_lettered_at, " + EVENT_COLS
)


CREATE_SCHEMA_VERSION = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_version"


def created_tables(migrations: Sequence[Sequence[str]]) -> list[str]:
    """The tables the migrations create, and the migrations' own bookkeeping table."""
    created = (re.match(r"\s*CREATE TABLE (?:IF NOT EXISTS )?(\w+)", s, re.I) for m in migrations for s in m)
    return [*(c.group(1) for c in created if c), "schema_version"]


def drop_tables(migrations: Sequence[Sequence[str]], suffix: str = "") -> list[str]:
    """The statements that drop every table the migrations made (`reset`)."""
    return [f"DROP TABLE IF EXISTS {table}{suffix}" for table in created_tables(migrations)]


def topic_values(t: Topic) -> tuple:
    return (t.name, t.arm_id, t.input_schema, t.kind, t.key1, t.key2, t.created_at, t.location,
            orjson.dumps(t.tags).decode(), options_json(t))


def options_json(t: Topic) -> str:
    return orjson.dumps(t.options.to_json()).decode()


class Row(Protocol):
    """A result row read by column name: `sqlite3.Row` or `asyncpg.Record`."""

    def __getitem__(self, key: Any, /) -> Any: ...


def topic_from_row(r: Row) -> Topic:
    return Topic(name=r["name"], arm_id=r["arm_id"], input_schema=r["input_schema"], kind=r["kind"], key1=r["key1"],
                 key2=r["key2"], created_at=r["created_at"], location=r["location"], tags=orjson.loads(r["tags"]),
                 options=TopicOptions.from_json(orjson.loads(r["options"])))


def subscription_values(s: Subscription) -> tuple:
    return (s.topic, s.name, properties_json(s), s.status, s.created_at, s.updated_at)


def properties_json(s: Subscription) -> str | None:
    """The properties to store; None keeps the stored ones (those of an `unreadable` subscription)."""
    return None if s.unreadable else orjson.dumps(s.properties.to_stored()).decode()


def subscription_from_row(r: Row) -> Subscription:
    """A subscription; one whose stored properties cannot be read comes back marked `unreadable`, so that one bad
    row fails that subscription visibly instead of every read of the subscriptions."""
    unreadable = None
    try:
        properties = SubscriptionProperties.from_arm(orjson.loads(r["properties"]))
    except (UnreadableProperties, orjson.JSONDecodeError) as exc:
        properties, unreadable = SubscriptionProperties(WebHookDestination(PLACEHOLDER_DESTINATION)), str(exc)
    return Subscription(topic=r["topic"], name=r["name"], properties=properties, status=r["status"],
                        created_at=r["created_at"], updated_at=r["updated_at"], unreadable=unreadable)


def event_from_row(r: Row) -> StoredEvent:
    """From `EVENT_COLS`."""
    return StoredEvent(
        seq=r["event_seq"], topic=r["event_topic"], id=r["event_id"], type=r["event_type"],
        subject=r["event_subject"], time=r["event_time"], published_at=r["event_published_at"],
        body=bytes(r["event_body"]),
    )


def delivery_from_row(r: Row) -> Delivery:
    """From `DELIVERY_COLS`, by position: a claim reads hundreds of rows (a look-up by name walks the columns),
    and a SQLite claim reads plain tuples."""
    return Delivery(
        id=r[0], topic=r[1], subscription=r[2], attempts=r[3], next_attempt_at=r[4], last_outcome=r[5],
        last_status=r[6], last_attempt_at=r[7], replay_id=r[8],
        event=StoredEvent(seq=r[9], topic=r[10], id=r[11], type=r[12], subject=r[13], time=r[14],
                          published_at=r[15], body=bytes(r[16])),
    )


def split_leased(routes: Sequence[Route], lease: Lease | None) -> tuple[list[Route], Sequence[Route]]:
    """`append_events`' routes as (stored leased, left for a claim): without a lease, none are leased."""
    leased = [r for r in routes if r.leased] if lease is not None else []
    return leased, ([r for r in routes if not r.leased] if leased else routes)


def leased_delivery(delivery_id: int, subscription: str, event: NewEvent, seq: int, now: float) -> Delivery:
    """A delivery `append_events` created already leased, as a claim would have read it back."""
    stored = StoredEvent(seq, event.topic, event.id, event.type, event.subject, event.time, now, event.body)
    return Delivery(id=delivery_id, topic=event.topic, subscription=subscription, event=stored, attempts=0,
                    next_attempt_at=now)


def dead_letter_from_row(r: Row) -> DeadLetter:
    """From `DEAD_LETTER_COLS`."""
    return DeadLetter(
        id=r["id"], topic=r["topic"], subscription=r["subscription"], reason=r["reason"], attempts=r["attempts"],
        last_outcome=r["last_outcome"], last_status=r["last_status"], last_attempt_at=r["last_attempt_at"],
        dead_lettered_at=r["dead_lettered_at"], event=event_from_row(r),
    )


def document_from_row(r: Row) -> Document:
    return Document(collection=r["collection"], key=r["key"], value=orjson.loads(r["value"]), version=r["version"])


def attempt_values(attempt: Attempt | None) -> tuple[int, str | None, int | None, float | None]:
    """(attempts to add, outcome, status, time) for a dead-letter record."""
    if attempt is None:
        return 0, None, None, None
    return 1, attempt.outcome, attempt.status, attempt.at


def filter_sql(
    base: str, topic: str | None, subscription: str | None, mark: str, prefix: str = ""
) -> tuple[str, tuple]:
    """Append `WHERE topic = … AND subscription = …` for the given filters, with `mark` placeholders."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("topic", topic), ("subscription", subscription)):
        if value is not None:
            args.append(value)
            placeholder = mark if mark == "?" else f"${len(args)}"
            clauses.append(f"{prefix}{column} = {placeholder}")
    return (f"{base} WHERE {' AND '.join(clauses)}" if clauses else base), tuple(args)


def namespace_resource_values(r: NamespaceResource) -> tuple:
    return (r.namespace, r.topic, r.name, orjson.dumps(r.properties).decode(), r.created_at, r.updated_at)


def namespace_resource_from_row(r: Row) -> NamespaceResource:
    return NamespaceResource(namespace=r["namespace"], topic=r["topic"], name=r["name"],
                             properties=orjson.loads(r["properties"]), created_at=r["created_at"],
                             updated_at=r["updated_at"])


def resource_path(r: NamespaceResource) -> str:
    return "/".join(filter(None, (r.namespace, r.topic, r.name)))


def locked_event_from_row(r: Row) -> LockedEvent:
    """From `d.id, d.lock_token, d.attempts, <EVENT_COLS>`."""
    return LockedEvent(id=r["id"], lock_token=r["lock_token"], delivery_count=r["attempts"], event=event_from_row(r))
