"""What the dashboard's panels show, as JSON: topics, subscriptions, dead letters and Communication Services.

Every read is bounded (a page, a limit, an indexed count), so the panels stay quick with many stored events.
"""

from __future__ import annotations

import time
from typing import Any

from commgrid.acs.chat_docs import MESSAGES, THREADS
from commgrid.acs.resource import IDENTITIES
from commgrid.acs.sms import SENT
from commgrid.console.journey import attempt_json, event_summary
from commgrid.grid.properties import ACTIVE
from commgrid.runtime import Runtime
from commgrid.store.base import DeadLetter, Subscription, Topic
from commgrid.timestamps import console_time

RECENT_ATTEMPTS = 5
LIST_LIMIT = 100


def _status(runtime: Runtime, sub: Subscription, now: float) -> str:
    """Active, AwaitingManualAction, Failed…, or why an Active one gets nothing now."""
    expires = sub.properties.expires_at
    if expires is not None and expires <= now:
        return "Disabled (expired)"
    worker = runtime.delivery
    if sub.status == ACTIVE and worker is not None:
        until = worker.health.probation_until(sub.properties.destination.endpoint_base_url, now)
        if until is not None:
            return f"Probation until {console_time(until)}"
    return sub.status


async def subscription_json(runtime: Runtime, sub: Subscription, now: float) -> dict[str, Any]:
    props = sub.properties
    arm = props.to_arm(reveal=False)  # the endpoint without its query, secret header values hidden
    attempts = await runtime.store.recent_attempts(sub.topic, sub.name, RECENT_ATTEMPTS)
    return {"topic": sub.topic, "name": sub.name, "status": _status(runtime, sub, now),
            "endpoint": props.destination.endpoint_base_url, "schema": props.event_delivery_schema,
            "filter": arm.get("filter", {}),
            "delivery": {"maxEventsPerBatch": props.destination.max_events_per_batch,
                         "preferredBatchSizeInKilobytes": props.destination.preferred_batch_size_kb,
                         "headers": [a.name for a in props.destination.delivery_attributes]},
            "retryPolicy": arm.get("retryPolicy", {}), "deadLetterDestination": arm.get("deadLetterDestination"),
            "expirationTimeUtc": props.expiration_time_utc,
            "pending": await runtime.store.count_pending_deliveries(sub.topic, sub.name),
            "recent": [attempt_json(a) | {"eventSeq": a.event_seq} for a in attempts]}


async def topic_json(runtime: Runtime, topic: Topic) -> dict[str, Any]:
    s = runtime.settings
    endpoint = None if topic.kind == "system" else f"{s.https_base}/topics/{topic.name}/api/events"
    store = runtime.store
    return {"name": topic.name, "kind": topic.kind, "inputSchema": topic.input_schema, "endpoint": endpoint,
            "events": await store.count_events(topic.name),
            "pending": await store.count_pending_deliveries(topic.name),
            "deadLetters": len(await store.list_dead_letters(topic.name, limit=1000))}


async def overview(runtime: Runtime) -> dict[str, Any]:
    now = time.time()
    topics = await runtime.store.list_topics()
    subs = await runtime.store.list_subscriptions()
    return {"resource": runtime.deployment.resource_name,
            "topics": [await topic_json(runtime, t) for t in topics],
            "subscriptions": [await subscription_json(runtime, s, now) for s in subs]}


def dead_letter_json(d: DeadLetter) -> dict[str, Any]:
    return {"id": d.id, "topic": d.topic, "subscription": d.subscription, "reason": d.reason,
            "attempts": d.attempts, "lastOutcome": d.last_outcome, "lastStatus": d.last_status,
            "lastAttemptAt": console_time(d.last_attempt_at), "deadLetteredAt": console_time(d.dead_lettered_at),
            "event": event_summary(d.event)}


async def communication(runtime: Runtime) -> dict[str, Any]:
    store = runtime.store
    numbers = [n.to_json() for n in await runtime.sms.numbers.list_all()]
    sent = [d.value for d in await store.list_documents(SENT, limit=LIST_LIMIT)]  # newest first
    identities = [{"id": d.key, **d.value} for d in await store.list_documents(IDENTITIES, limit=LIST_LIMIT)]
    threads = []
    for doc in await store.list_documents(THREADS, limit=LIST_LIMIT):
        t = doc.value
        stored = await store.list_documents(MESSAGES, after_key=f"{doc.key}/", limit=20)
        messages = [_message(m.value) for m in stored if m.key.startswith(f"{doc.key}/")]
        threads.append({"id": doc.key, "topic": t.get("topic"), "deleted": t.get("deletedOn") is not None,
                        "participants": [p[1] or p[0] for p in t.get("participants", [])], "messages": messages})
    return {"phoneNumbers": numbers, "smsSent": sent, "identities": identities, "chatThreads": threads}


def _message(value: dict[str, Any]) -> dict[str, Any]:
    """A stored chat message (newest first) as the panel lists it; system messages say what changed."""
    content = found if isinstance(found := value.get("content"), dict) else {}
    kind = value.get("type")
    if "message" in content:
        sender, text = value.get("senderDisplayName") or value.get("sender"), content["message"]
    elif "topic" in content:
        sender, text = "(thread)", f"topic set to '{content['topic']}'"
    else:
        names = [p.get("displayName") or p.get("communicationIdentifier", {}).get("rawId", "?")
                 for p in content.get("participants", [])]
        sender, text = "(thread)", f"{kind}: {', '.join(names)}"
    created = value.get("createdOn")
    return {"id": value.get("id"), "type": kind, "sender": sender, "text": text,
            "createdOn": console_time(created / 1000) if isinstance(created, int) else None,
            "deleted": value.get("deletedOn") is not None}
