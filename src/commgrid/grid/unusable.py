"""A stored subscription commgrid can no longer use (a filter that does not compile, properties a delivery
cannot be built from) is put in the `Failed` state with a message saying why.

It then gets no new events and its pending deliveries stay in the store, unclaimed, until the subscription is
updated (which validates it again): nothing is silently dropped, and `commgrid subscription show` says what
is wrong instead of the subscriber silently getting nothing.
"""

from __future__ import annotations

import logging
import time

from commgrid.grid.properties import FAILED
from commgrid.store import Store
from commgrid.store.base import Document, Missing, Subscription

log = logging.getLogger("commgrid.grid")


async def mark_unusable(store: Store, sub: Subscription, why: str) -> None:
    """Record `sub` as Failed with `why`; errors are logged (the next reload tries again)."""
    from commgrid.grid.subscriptions import VALIDATION_DOCS  # imported late: subscriptions imports routing

    message = f"Event subscription '{sub.name}' on topic '{sub.topic}' cannot be used: {why} Update it to fix it."
    log.error("subscription unusable; marked Failed", extra={
        "action": "subscription_unusable", "topic": sub.topic, "subscription": sub.name, "error": why})
    try:
        key = f"{sub.topic}/{sub.name}".lower()
        try:
            doc = (await store.get_document(VALIDATION_DOCS, key)).value
        except Missing:
            doc = {}
        await store.put_document(Document(VALIDATION_DOCS, key, {**doc, "state": FAILED, "message": message}))
        current = await store.get_subscription(sub.topic, sub.name)
        current.status, current.updated_at = FAILED, time.time()
        await store.update_subscription(current)
    except Missing:
        return  # deleted meanwhile
    except Exception:
        log.exception("could not mark the subscription Failed", extra={
            "action": "subscription_mark_failed", "topic": sub.topic, "subscription": sub.name})
