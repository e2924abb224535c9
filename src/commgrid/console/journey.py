"""An event's journey: what was stored, where it went, and why it did not go elsewhere.

For every subscription of the event's topic the journey says either how delivery went (each recorded attempt,
the next retry, the dead-letter record) or which filter clause rejects the event, in words
(`CompiledFilter.explain`). The dashboard and `commgrid events show` render the same dict.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from commgrid.grid.filters import FilterError, compile_filter
from commgrid.grid.routing import is_routable
from commgrid.store import Store
from commgrid.store.base import AttemptRecord, DeadLetter, Delivery, StoredEvent, Subscription, Topic
from commgrid.timestamps import console_time


def event_summary(e: StoredEvent) -> dict[str, Any]:
    return {"seq": e.seq, "topic": e.topic, "id": e.id, "type": e.type, "subject": e.subject, "time": e.time,
            "publishedAt": console_time(e.published_at)}


def attempt_json(a: AttemptRecord) -> dict[str, Any]:
    return {"attempt": a.attempt, "at": console_time(a.at), "outcome": a.outcome, "status": a.status,
            "durationMs": round(a.duration * 1000, 1), "error": a.error, "response": a.response}


def _rejection(sub: Subscription, topic: Topic, event: dict[str, Any]) -> str | None:
    try:
        return compile_filter(sub.properties.filter.to_arm(), topic.input_schema).explain(event)
    except FilterError as exc:
        return f"the stored filter does not compile: {exc.message}"


def _route(sub: Subscription, topic: Topic, event: StoredEvent, parsed: dict[str, Any], now: float,
           attempts: list[AttemptRecord], pending: list[Delivery], dead: list[DeadLetter]) -> dict[str, Any]:
    """One subscription's part of the journey."""
    route: dict[str, Any] = {"subscription": sub.name, "status": sub.status,
                             "attempts": [attempt_json(a) for a in attempts]}
    if pending or dead or attempts:
        route["matched"] = True
    else:
        reason = _rejection(sub, topic, parsed)
        route["matched"] = reason is None
        if reason is not None:
            route["state"], route["reason"] = "not matched", reason
            return route
    if dead:
        d = dead[-1]
        route["state"] = "dead-lettered"
        route["deadLetter"] = {"id": d.id, "reason": d.reason, "attempts": d.attempts,
                               "lastOutcome": d.last_outcome, "lastStatus": d.last_status,
                               "at": console_time(d.dead_lettered_at)}
    elif pending:
        p = pending[0]
        route["state"] = "retrying" if p.attempts else "pending"
        route["nextAttemptAt"] = console_time(p.next_attempt_at)
    elif attempts and attempts[-1].outcome == "Succeeded":
        route["state"] = "delivered"
    elif sub.created_at > event.published_at:
        route["state"], route["reason"] = "not routed", "the subscription was created after this event"
    elif not is_routable(sub, now) and not attempts:
        expires = sub.properties.expires_at
        route["state"] = "not routed"
        route["reason"] = ("the subscription has expired" if expires is not None and expires <= now
                           else f"the subscription is {sub.status}: only Active ones get events")
    else:
        route["state"] = "no record"
        route["reason"] = ("the filter matches, but no delivery is on record: it went before the attempt log's"
                           " retention limit, or none was made")
    return route


async def journey(store: Store, event: StoredEvent, *, now: float | None = None) -> dict[str, Any]:
    """The journey of a stored event (a handful of indexed reads, whatever the store holds)."""
    now = time.time() if now is None else now
    topic = await store.get_topic(event.topic)
    parsed = orjson.loads(event.body)
    attempts = await store.list_attempts(event.seq)
    pending = await store.event_deliveries(event.seq)
    dead = await store.event_dead_letters(event.seq)
    routes = []
    for sub in await store.list_subscriptions(topic.name):
        routes.append(_route(
            sub, topic, event, parsed, now, [a for a in attempts if a.subscription == sub.name],
            [p for p in pending if p.subscription == sub.name], [d for d in dead if d.subscription == sub.name]))
    return {"event": event_summary(event) | {"body": parsed}, "topic": {"name": topic.name, "kind": topic.kind,
                                                                       "inputSchema": topic.input_schema},
            "subscriptions": routes}


def journey_lines(j: dict[str, Any]) -> list[str]:
    """The journey as text, for the CLI."""
    e = j["event"]
    lines = [f"event {e['id']}  (seq {e['seq']}, topic {e['topic']})",
             f"  type {e['type']}  subject {e['subject']}  time {e['time']}  published {e['publishedAt']}"]
    if not j["subscriptions"]:
        lines.append("  the topic has no subscriptions")
    for r in j["subscriptions"]:
        lines.append(f"  subscription {r['subscription']} [{r['status']}]: {r['state']}"
                     + (f" - {r['reason']}" if r.get("reason") else ""))
        for a in r["attempts"]:
            status = a["status"] if a["status"] is not None else "-"
            detail = a["error"] or a["response"].replace("\n", " ")[:120]
            lines.append(f"    attempt {a['attempt']}  {a['at']}  {a['outcome']}  HTTP {status}  {a['durationMs']} ms"
                         + (f"  {detail}" if detail else ""))
        if r.get("nextAttemptAt"):
            lines.append(f"    next attempt at {r['nextAttemptAt']}")
        if r.get("deadLetter"):
            d = r["deadLetter"]
            lines.append(f"    dead-lettered at {d['at']}: {d['reason']} (dead letter {d['id']}, after {d['attempts']}"
                         f" attempt(s), last {d['lastOutcome']} {d['lastStatus'] or ''})".rstrip())
    return lines
