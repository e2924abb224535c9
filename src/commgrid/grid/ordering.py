"""commgrid's ordered delivery per key (`commgrid.orderingKey`).

Each delivery of an ordered subscription stores its event's key (`deliveries.order_key`, set when the event is
routed). The store claims, per key, only the delivery of the oldest pending event (`claim_ordered_deliveries`),
so at most one event per key is in flight and none overtakes an earlier one: a failing event holds back its
key alone, across retries, restarts and nodes, while other keys flow. An event without the key (a missing
subject property, say) is delivered unordered, as is a redelivered dead letter.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_KEY_BYTES = 512  # longer keys are cut: they still group the same events


def key_of(event: dict[str, Any], spec: str) -> str | None:
    """The ordering key of an event (in its topic's input schema) under `spec`, or None if it has none."""
    if spec == "subject":
        value = event.get("subject")
    elif spec.startswith("extension:"):
        value = event.get(spec[10:])
    else:
        value = event
        for name in spec.split("."):
            value = value.get(name) if isinstance(value, dict) else None
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:MAX_KEY_BYTES]
