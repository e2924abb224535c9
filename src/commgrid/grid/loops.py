"""Delivery loop protection: a subscription whose webhook is an Event Grid publish endpoint of commgrid itself.

Event Grid marks every delivery with `aeg-event-type: Notification`, and a delivery carries the events as they
were published, ids included. A delivery that arrives at a topic which already holds its first event can only
be one that went round a loop (a topic forwarding to itself, or A → B → A), so it is refused with 400
`DeliveryLoopDetected`: the looping subscription dead-letters it instead of publishing it again for ever. A
chain of topics (A → B) is unaffected, since B has never seen A's events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from commgrid.errors import BadRequest
from commgrid.store import Store
from commgrid.store.base import Missing, Topic

log = logging.getLogger("commgrid.grid")
DELIVERY_HEADER = "aeg-event-type"


class DeliveryLoopDetected(BadRequest):
    code = "DeliveryLoopDetected"


async def refuse_loop(store: Store, topic: Topic, headers: Mapping[str, str], events: list[dict[str, Any]]) -> None:
    """Raise `DeliveryLoopDetected` if this publish is an Event Grid delivery of events the topic already has."""
    if DELIVERY_HEADER not in headers or not events or not isinstance(events[0].get("id"), str):
        return
    event_id = events[0]["id"]
    try:
        await store.get_event(topic.name, event_id)
    except Missing:
        return
    log.warning("delivery loop refused", extra={"action": "delivery_loop_refused", "topic": topic.name,
                                                "event_id": event_id,
                                                "subscription": headers.get("aeg-subscription-name")})
    raise DeliveryLoopDetected(
        f"Event '{event_id}' was delivered back to topic '{topic.name}', which published it: the event subscription"
        f" '{headers.get('aeg-subscription-name', '')}' sends its events in a loop. Point it at another endpoint.")
