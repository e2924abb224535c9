"""Event envelopes: parse and validate published events, and convert between the two schemas.

Every envelope commgrid reads or writes goes through here (https://learn.microsoft.com/azure/event-grid/event-schema,
https://learn.microsoft.com/azure/event-grid/cloud-event-schema, https://learn.microsoft.com/azure/event-grid/post-to-custom-topic,
https://learn.microsoft.com/azure/event-grid/event-schema-compatibility). Events stay plain
dicts in their own schema; validation collects every problem and raises once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from commgrid.errors import BadRequest, Detail, InvalidInput, PayloadTooLarge

EVENTGRID = "EventGridSchema"
CLOUDEVENTS = "CloudEventSchemaV1_0"
SCHEMAS = (EVENTGRID, CLOUDEVENTS)
# The Content-Type of a delivery or system request, by what its body holds.
EVENTGRID_JSON = "application/json; charset=utf-8"
CLOUDEVENT_JSON = "application/cloudevents+json; charset=utf-8"
CLOUDEVENT_BATCH_JSON = "application/cloudevents-batch+json; charset=utf-8"

MAX_REQUEST_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 5000

_EG_REQUIRED = (("id", "Id"), ("subject", "Subject"), ("eventType", "EventType"), ("eventTime", "EventTime"))
_CE_REQUIRED = ("id", "source", "type", "specversion")


def schema_from_cli(value: str) -> str:
    """Accept `eventgridschema` / `cloudeventschemav1_0` in any case, as the az CLI does."""
    for schema in SCHEMAS:
        if value.lower() == schema.lower():
            return schema
    raise BadRequest(f"Unknown schema '{value}'; expected one of {', '.join(SCHEMAS)}.")


def _invalid(message: str, code: str = "InputJsonInvalid") -> InvalidInput:
    return InvalidInput(message, details=[Detail(code, message)])


def parse_json_array(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The events of a publish request body: a JSON array, or one structured CloudEvent."""
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"The size of the request body ({len(body)} bytes) exceeds the maximum of {MAX_REQUEST_BYTES} bytes.",
            code="RequestEntityTooLarge",
        )
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"The request body is not valid JSON: {exc}.") from exc
    if not _exact_as_parsed([parsed]):  # the body's numbers are exact as parsed; else the slower re-read
        check_numbers(body)
    if isinstance(parsed, dict) and content_type.startswith("application/cloudevents+json"):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise _invalid("The request body must be a JSON array of events.")
    if not parsed:
        raise _invalid("The request body must contain at least one event.")
    if len(parsed) > MAX_EVENTS_PER_REQUEST:
        raise _invalid(f"A request may contain at most {MAX_EVENTS_PER_REQUEST} events; it has {len(parsed)}.")
    if any(type(e) is not dict for e in parsed):  # orjson makes plain dicts
        raise _invalid("Every element of the request array must be a JSON object.")
    return parsed


# orjson reads integers outside [-2**63, 2**64) as floats (18446744073709551616 would come back as
# 1.8446744073709552e+19) and decimals as 64-bit floats (1.00000000000000000001 would come back as 1.0). A body
# holding such a number is refused rather than acknowledged and altered. A number needs 16 significant digits
# (a double holds 15 exactly) or an exponent beyond ±99 to be altered, so only numbers written with 17 or more
# characters, or with an exponent, get the exact (slower) comparison. A body whose parsed value holds a float
# (or nests deep) is re-read by the standard parser with these hooks: its C scanner costs a few µs per KB, where
# a regex pre-scan for long numbers cost about 30 µs per KB and still sent most batches through the parser (ids
# such as UUIDs often hold "e123"). A body without floats needs no re-read (`_exact_as_parsed`).
_INT_RANGE = (-(2**63), 2**64 - 1)


def _inexact(text: str, why: str) -> InvalidInput:
    shown = f"{text[:40]}{'...' if len(text) > 40 else ''}"
    return _invalid(f"The number {shown} {why}, so it cannot be stored exactly; send it as a string.")


def _checked_int(text: str) -> int:
    value = int(text)
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise _inexact(text, "is outside the 64-bit integer range")
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if len(text) < 17 and "e" not in text and "E" not in text:
        return value
    if Decimal(repr(value)) != Decimal(text):
        too_small = value == 0.0 and Decimal(text) != 0
        raise _inexact(text, "is outside the range of a 64-bit float" if too_small
                       else "has more precision than a 64-bit float")
    return value


_EXACT_NUMBERS = json.JSONDecoder(parse_int=_checked_int, parse_float=_checked_float)  # built once, not per body

# A body nesting this deep or deeper is re-read whatever its numbers: the standard parser's recursion may run out
# before orjson's 1,024 levels, and the re-read answers that as before ("nested too deeply").
_SHALLOW = 200


def _exact_as_parsed(value: Any, depth: int = 1) -> bool:
    """True if orjson's result (a container `depth` deep) holds no float and nests less than `_SHALLOW` deep:
    every number in it was then an integer literal within [-2**63, 2**64), which orjson reads exactly (beyond
    that range, and for every literal with a fraction or an exponent, it gives a float), so the exact re-read
    would refuse nothing. About 1.5 µs for a 1 KB event, where the re-read takes 4-8 µs.
    """
    if depth >= _SHALLOW:
        return False
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is float:
            return False
        if (kind is dict or kind is list) and not _exact_as_parsed(item, depth + 1):
            return False
    return True


def check_numbers(body: bytes) -> None:
    """Refuse a JSON body holding a number that would not survive parsing exactly (after orjson accepted it,
    so it is UTF-8)."""
    try:
        _EXACT_NUMBERS.decode(body.decode())
    except RecursionError:  # deeper than the standard parser goes; orjson already limits depth to 1024
        raise _invalid("The request body is nested too deeply.") from None
    except ValueError as exc:
        raise _invalid(f"The request body is not valid JSON: {exc}.") from exc


def looks_like_cloudevent(event: dict[str, Any]) -> bool:
    return "specversion" in event


def _valid_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def eventgrid_problems(event: dict[str, Any], index: int, topic_arm_id: str) -> list[Detail]:
    """What is wrong with one Event Grid schema event (event-schema), as Azure words it."""
    problems = [
        Detail("InputJsonInvalid", f"Required property '{label}' was not set (event {index}).")
        for key, label in _EG_REQUIRED
        if not isinstance(event.get(key), str) or (key != "subject" and not event[key])
    ]
    if "data" not in event:
        problems.append(Detail("InputJsonInvalid", f"Required property 'Data' was not set (event {index})."))
    if isinstance(event.get("eventTime"), str) and not _valid_time(event["eventTime"]):
        problems.append(Detail(
            "InputJsonInvalid", f"The event time property 'EventTime' was not a valid date/time (event {index})."))
    metadata = event.get("metadataVersion")
    if metadata not in (None, "1"):
        message = (f"Property 'MetadataVersion' was found to be set to '{metadata}', but was expected to either"
                   f" be null or be set to 1 (event {index}).")
        problems.append(Detail("InputJsonInvalid", message))
    topic = event.get("topic")
    if topic not in (None, "") and (not isinstance(topic, str) or topic.lower() != topic_arm_id.lower()):
        problems.append(Detail("InputJsonInvalid", f"Property 'Topic' was set to '{topic}', which does not match"
                                                   f" the topic '{topic_arm_id}' it was published to (event {index})."))
    return problems


def _plain_eventgrid(event: dict[str, Any], topic_arm_id: str) -> bool:
    """True if `eventgrid_problems` would find nothing wrong with `event`, nor `validate_events` a CloudEvent:
    the common case, checked without building its messages. Anything else takes the full check."""
    get = event.get
    event_id, subject, event_type, time = get("id"), get("subject"), get("eventType"), get("eventTime")
    topic = get("topic")
    return (isinstance(event_id, str) and event_id != "" and isinstance(subject, str)
            and isinstance(event_type, str) and event_type != "" and isinstance(time, str) and time != ""
            and "data" in event and "specversion" not in event and get("metadataVersion") in (None, "1")
            and (topic in (None, "") or (isinstance(topic, str) and topic.lower() == topic_arm_id.lower()))
            and _valid_time(time))


def _stamped(event: dict[str, Any], schema: str, topic_arm_id: str) -> dict[str, Any]:
    """A valid event with the fields Event Grid fills in: `topic`, `metadataVersion` and `dataVersion` (Event
    Grid schema; CloudEvents events are kept as sent)."""
    if schema == CLOUDEVENTS:
        return event
    stamped = dict(event)  # the keys in the publisher's order, `topic` where the publisher put it
    stamped["topic"] = topic_arm_id
    stamped["metadataVersion"] = "1"
    if "dataVersion" not in stamped:
        stamped["dataVersion"] = ""
    return stamped


def cloudevent_problems(event: dict[str, Any], index: int, _topic_arm_id: str = "") -> list[Detail]:
    """What is wrong with one CloudEvents 1.0 event (cloud-event-schema)."""
    problems = [
        Detail("InputJsonInvalid", f"Required attribute '{key}' was not set (event {index}).")
        for key in _CE_REQUIRED
        if not isinstance(event.get(key), str) or not event[key]
    ]
    if isinstance(event.get("specversion"), str) and event["specversion"] != "1.0":
        problems.append(Detail("InputJsonInvalid", f"Attribute 'specversion' must be '1.0' (event {index})."))
    if "time" in event and not _valid_time(event["time"]):
        problems.append(Detail("InputJsonInvalid", f"Attribute 'time' is not a valid RFC 3339 time (event {index})."))
    if "data" in event and "data_base64" in event:
        problems.append(Detail("InputJsonInvalid", f"Only one of 'data' and 'data_base64' may be set (event {index})."))
    return problems


_PROBLEMS: dict[str, Callable[[dict[str, Any], int, str], list[Detail]]] = {
    EVENTGRID: eventgrid_problems,
    CLOUDEVENTS: cloudevent_problems,
}


def validate_events(events: list[dict[str, Any]], schema: str, topic_arm_id: str) -> list[dict[str, Any]]:
    """Check every event against the topic's input schema and raise once with all problems; else the events
    as stored, with the fields Event Grid fills in. `events` is not changed."""
    if schema == EVENTGRID and all(_plain_eventgrid(e, topic_arm_id) for e in events):
        return [_stamped(e, schema, topic_arm_id) for e in events]
    wrong = [i for i, e in enumerate(events) if looks_like_cloudevent(e) != (schema == CLOUDEVENTS)]
    if wrong:
        expected = "CloudEvents 1.0" if schema == CLOUDEVENTS else "Event Grid"
        message = (f"This topic accepts events in the {expected} schema ({schema}); event {wrong[0]} is not."
                   " Publish with the matching schema or create the topic with the other input schema.")
        raise _invalid(message, code="InputSchemaMismatch")
    check = _PROBLEMS[schema]
    problems = [p for i, e in enumerate(events) for p in check(e, i, topic_arm_id)]
    if problems:
        raise InvalidInput.from_problems(problems[:50], summary=problems[0].message)
    return [_stamped(e, schema, topic_arm_id) for e in events]


def identity(event: dict[str, Any], schema: str) -> tuple[str, str, str, str]:
    """(id, type, subject, time) of an event in its schema."""
    if schema == CLOUDEVENTS:
        return event["id"], event["type"], event.get("subject") or "", event.get("time") or ""
    return event["id"], event["eventType"], event["subject"], event["eventTime"]


def encode_event(event: dict[str, Any], index: int, sent: dict[str, Any] | None = None) -> bytes:
    """The stored JSON of one event, checking the per-event size limit (quotas-limits) and nesting depth.

    The size limit applies to the event as the publisher sent it (`sent`, before `validate_events` added
    `topic`, `metadataVersion` and `dataVersion`), not to the fields commgrid adds.
    """
    try:
        # Encoded inside two arrays and unwrapped: an event that encodes here also encodes in a dead-letter
        # file or a batch, which wrap it (orjson stops at 255 levels).
        body = orjson.dumps([[event]])[2:-2]
    except orjson.JSONEncodeError as exc:
        raise _invalid(f"Event {index} cannot be stored: {exc}. Nest its data less deeply.") from None
    if len(body) > MAX_EVENT_BYTES:
        size = len(orjson.dumps(sent)) if sent is not None else len(body)
        if size > MAX_EVENT_BYTES:
            raise PayloadTooLarge(
                f"Event {index} is {size} bytes; an event may be at most {MAX_EVENT_BYTES} bytes.",
                code="RequestEntityTooLarge",
            )
    return body


# conversions (event-schema-compatibility) ------------------------------------------------------------------
def eventgrid_to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """Map an Event Grid event to CloudEvents 1.0 as Event Grid does on delivery."""
    out: dict[str, Any] = {
        "id": event["id"],
        "source": event.get("topic", ""),
        "type": event["eventType"],
        "specversion": "1.0",
    }
    if event.get("subject"):
        out["subject"] = event["subject"]
    out["time"] = event["eventTime"]
    if event.get("dataVersion"):
        out["dataversion"] = event["dataVersion"]
    out["datacontenttype"] = "application/json"
    out["data"] = event.get("data")
    return out


def convert(event: dict[str, Any], from_schema: str, to_schema: str) -> dict[str, Any]:
    """Convert an event for delivery; only the conversions Event Grid allows (event-schema-compatibility) exist."""
    if from_schema == to_schema:
        return event
    if from_schema == EVENTGRID and to_schema == CLOUDEVENTS:
        return eventgrid_to_cloudevent(event)
    raise BadRequest(f"Events published in {from_schema} cannot be delivered in {to_schema}.")


def can_convert(from_schema: str, to_schema: str) -> bool:
    return from_schema == to_schema or (from_schema, to_schema) == (EVENTGRID, CLOUDEVENTS)
