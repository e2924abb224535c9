"""Row ↔ record mapping shared by the SQL backends: each record is read from a row in one place."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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
    LockedEvent,
    NamespaceResource,
    StoredEvent,
    Subscription,
    Topic,
)

TOPIC_COLS = "name, arm_id, input_schema, kind, key1, key2, created_at, location, tags, options"
SUBSCRIPTION_COLS = "topic, name, properties, status, created_at, updated_at"
# Joined selects use the aliases e (events), d (deliveries) and x (dead_letters).
EVENT_COLS = "e.seq, e.topic, e.id, e.type, e.subject, e.time, e.published_at, e.body"
DELIVERY_COLS = (
    "d.id, d.topic, d.subscription, d.attempts, d.next_attempt_at, d.last_outcome, d.last_status,"
    " d.last_attempt_at, " + EVENT_COLS + ", d.replay_id"
)
DEAD_LETTER_COLS = (
    "x.id, x.topic, x.subscription, x.reason, x.attempts, x.last_outcome, x.last_status, x.last_attempt_at,"
    " x.dead_lettered_at, " + EVENT_COLS
)


def created_tables(migrations: Sequence[str]) -> list[str]:
    """The tables the migrations create, and the migrations' own bookkeeping table."""
    found = [t for script in migrations for t in re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", script, re.I)]
    return [*found, "schema_version"]


def topic_values(t: Topic) -> tuple:
    return (t.name, t.arm_id, t.input_schema, t.kind, t.key1, t.key2, t.created_at, t.location,
            orjson.dumps(t.tags).decode(), options_json(t))


def options_json(t: Topic) -> str:
    return orjson.dumps(t.options.to_json()).decode()


def topic_from_row(r: Sequence[Any]) -> Topic:
    return Topic(name=r[0], arm_id=r[1], input_schema=r[2], kind=r[3], key1=r[4], key2=r[5], created_at=r[6],
                 location=r[7], tags=orjson.loads(r[8]), options=TopicOptions.from_json(orjson.loads(r[9])))


def subscription_values(s: Subscription) -> tuple:
    return (s.topic, s.name, properties_json(s), s.status, s.created_at, s.updated_at)


def properties_json(s: Subscription) -> str | None:
    """The properties to store; None keeps the stored ones (those of an `unreadable` subscription)."""
    return None if s.unreadable else orjson.dumps(s.properties.to_arm()).decode()


def subscription_from_row(r: Sequence[Any]) -> Subscription:
    """A subscription; one whose stored properties cannot be read comes back marked `unreadable`, so that one bad
    row fails that subscription visibly instead of every read of the subscriptions."""
    unreadable = None
    try:
        properties = SubscriptionProperties.from_arm(orjson.loads(r[2]))
    except (UnreadableProperties, orjson.JSONDecodeError) as exc:
        properties, unreadable = SubscriptionProperties(WebHookDestination(PLACEHOLDER_DESTINATION)), str(exc)
    return Subscription(topic=r[0], name=r[1], properties=properties, status=r[3], created_at=r[4], updated_at=r[5],
                        unreadable=unreadable)


def event_from_row(r: Sequence[Any], offset: int = 0) -> StoredEvent:
    o = offset
    return StoredEvent(
        seq=r[o], topic=r[o + 1], id=r[o + 2], type=r[o + 3], subject=r[o + 4], time=r[o + 5],
        published_at=r[o + 6], body=bytes(r[o + 7]),
    )


def delivery_from_row(r: Sequence[Any]) -> Delivery:
    return Delivery(
        id=r[0], topic=r[1], subscription=r[2], attempts=r[3], next_attempt_at=r[4], last_outcome=r[5],
        last_status=r[6], last_attempt_at=r[7], event=event_from_row(r, 8), replay_id=r[16],
    )


def dead_letter_from_row(r: Sequence[Any]) -> DeadLetter:
    return DeadLetter(
        id=r[0], topic=r[1], subscription=r[2], reason=r[3], attempts=r[4], last_outcome=r[5], last_status=r[6],
        last_attempt_at=r[7], dead_lettered_at=r[8], event=event_from_row(r, 9),
    )


def document_from_row(r: Sequence[Any]) -> Document:
    return Document(collection=r[0], key=r[1], value=orjson.loads(r[2]), version=r[3])


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


def namespace_resource_from_row(r: Sequence[Any]) -> NamespaceResource:
    return NamespaceResource(namespace=r[0], topic=r[1], name=r[2], properties=orjson.loads(r[3]),
                             created_at=r[4], updated_at=r[5])


def resource_path(r: NamespaceResource) -> str:
    return "/".join(filter(None, (r.namespace, r.topic, r.name)))


def locked_event_from_row(r: Sequence[Any]) -> LockedEvent:
    """From `d.id, d.lock_token, d.attempts, <EVENT_COLS>`."""
    return LockedEvent(id=r[0], lock_token=r[1], delivery_count=r[2], event=event_from_row(r, 3))
