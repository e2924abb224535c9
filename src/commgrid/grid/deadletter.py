"""Dead-lettered events as Event Grid writes them (
https://learn.microsoft.com/azure/event-grid/delivery-and-retry#dead-letter-events), and where commgrid writes them.

A dead-lettered event is the event as the subscription would have received it, plus Event Grid's fields:
Event Grid schema `deadLetterReason`, `deliveryAttempts`, `lastDeliveryOutcome`, `lastHttpStatusCode`,
`publishTime`, `lastDeliveryAttemptTime`; CloudEvents the same names in lower case (`deadletterreason`, ...).

Every dead letter is kept in the store (`commgrid deadletter list/show/redeliver`). A subscription's
`deadLetterDestination` may also be:

- Azure's `{"endpointType": "StorageBlob", "properties": {"resourceId": "<storage account id>",
  "blobContainerName": "<container>"}}`: accepted and shown as configured; commgrid has no blob service, so
  the store is the only copy.
- commgrid's `{"endpointType": "LocalDirectory", "properties": {"path": "<absolute directory>"}}`: each
  dead-lettering writes one JSON file holding an array of events, laid out as Azure lays out blobs in the
  container: `<path>/<SUBSCRIPTION-NAME-UPPER-CASE>/<YYYY>/<M>/<D>/<H>/<uuid>.json` (UTC, not zero-padded).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from commgrid.events.envelope import CLOUDEVENTS
from commgrid.grid.properties import DeadLetterDestination
from commgrid.timestamps import azure_time

STORAGE_BLOB = "StorageBlob"
LOCAL_DIRECTORY = "LocalDirectory"
DESTINATION_TYPES = (STORAGE_BLOB, LOCAL_DIRECTORY)

_FIELDS = ("deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode", "publishTime",
           "lastDeliveryAttemptTime")


def dead_letter_event(
    event: dict[str, Any], schema: str, *, reason: str, attempts: int, last_outcome: str | None,
    last_status: int | None, published_at: float, last_attempt_at: float | None,
) -> dict[str, Any]:
    """`event` (in the delivery `schema`) with the dead-letter fields added; the input is not changed."""
    values = (reason, attempts, last_outcome, last_status, azure_time(published_at), azure_time(last_attempt_at))
    names = [n.lower() for n in _FIELDS] if schema == CLOUDEVENTS else _FIELDS
    return {**event, **dict(zip(names, values, strict=True))}


def local_directory(destination: DeadLetterDestination | None) -> Path | None:
    """The directory of a LocalDirectory destination, None for any other (or none)."""
    if destination is None or destination.endpoint_type != LOCAL_DIRECTORY or not destination.path:
        return None
    return Path(destination.path)


def blob_path(root: Path, subscription: str, at: float) -> Path:
    """Where a dead-letter file goes: Azure's blob name layout under `root` (delivery-and-retry)."""
    t = datetime.fromtimestamp(at, UTC)
    return root / subscription.upper() / str(t.year) / str(t.month) / str(t.day) / str(t.hour) / f"{uuid.uuid4()}.json"


def write_file(root: Path, subscription: str, at: float, events: list[dict[str, Any]]) -> Path:
    """Write one dead-letter file (a JSON array); returns its path. Blocking: run it in a thread."""
    path = blob_path(root, subscription, at)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    partial.replace(path)  # readers never see half a file
    return path
