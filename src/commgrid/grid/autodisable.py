"""commgrid's auto-disable (`commgrid.disableAfterFailingFor`): an endpoint that keeps failing is set aside.

When every attempt to a subscription's endpoint has failed for the configured (time-scaled) duration, without
one success, the subscription becomes `Disabled`: it is still routed to, so nothing is lost, but its deliveries
stay queued and unclaimed. A `Commgrid.EventGrid.SubscriptionDisabled` event goes to the system topic, and
`commgrid subscription enable` (or POST …/enable) lets the queue flow again. Each node measures the failures it
sees since it started.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from commgrid.grid.properties import ACTIVE, DISABLED
from commgrid.store import Store
from commgrid.store.base import Document, Missing
from commgrid.timestamps import azure_time

log = logging.getLogger("commgrid.delivery")

DISABLED_EVENT_TYPE = "Commgrid.EventGrid.SubscriptionDisabled"

#: Publishes events (EventGridSchema dicts) on the system topic.
Announce = Callable[[list[dict[str, Any]]], Awaitable[None]]


class FailureClock:
    """Since when each subscription's deliveries have failed without a success in between."""

    def __init__(self) -> None:
        self._since: dict[tuple[str, str], float] = {}

    def succeeded(self, key: tuple[str, str]) -> None:
        self._since.pop(key, None)

    def failed(self, key: tuple[str, str], now: float) -> float:
        """Record a failure; returns when the run of failures began."""
        return self._since.setdefault(key, now)


def disabled_event(source: str, topic: str, name: str, since: float, now: float, reason: str) -> dict[str, Any]:
    """The system-topic event saying a subscription was disabled (EventGridSchema)."""
    return {"id": str(uuid.uuid4()), "topic": source, "subject": f"eventSubscriptions/{topic}/{name}",
            "eventType": DISABLED_EVENT_TYPE, "eventTime": azure_time(now), "dataVersion": "1.0",
            "metadataVersion": "1",
            "data": {"topic": topic, "subscription": name, "failingSince": azure_time(since), "reason": reason}}


async def disable(store: Store, topic: str, name: str, message: str) -> bool:
    """Set an Active subscription Disabled with `message`; False if it was not Active (or is gone)."""
    from commgrid.grid.subscriptions import VALIDATION_DOCS  # imported late: subscriptions imports routing

    try:
        current = await store.get_subscription(topic, name)
        if current.status != ACTIVE:
            return False
        key = f"{current.topic}/{current.name}".lower()
        try:
            doc = (await store.get_document(VALIDATION_DOCS, key)).value
        except Missing:
            doc = {}
        await store.put_document(Document(VALIDATION_DOCS, key, {**doc, "state": DISABLED, "message": message,
                                                                 "disabledAt": time.time()}))
        current.status, current.updated_at = DISABLED, time.time()
        await store.update_subscription(current)
    except Missing:
        return False
    log.warning("subscription disabled: its endpoint kept failing", extra={
        "action": "subscription_disabled", "topic": topic, "subscription": name, "detail": message})
    return True
