"""Client input → `SubscriptionProperties`: ARM `properties` checked as Azure checks them.

Keys are read case-insensitively (ARM does), defaults are filled in, and every problem found is listed in one
`InvalidInput` (Azure's `details`), so a client fixes them all at once. Ranges and defaults are Azure's:
https://learn.microsoft.com/azure/event-grid/delivery-and-retry and
https://learn.microsoft.com/rest/api/eventgrid/controlplane/event-subscriptions/create-or-update.
"""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from commgrid.errors import InvalidInput, Problems
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID, can_convert
from commgrid.grid.deadletter import DESTINATION_TYPES, LOCAL_DIRECTORY, STORAGE_BLOB
from commgrid.grid.filter_operators import canonical_operator
from commgrid.grid.filters import FilterError, compile_filter
from commgrid.grid.properties import (
    AdvancedFilter,
    DeadLetterDestination,
    DeliveryAttribute,
    EventFilter,
    RetryPolicy,
    SubscriptionProperties,
    WebHookDestination,
)
from commgrid.jsonfields import fields
from commgrid.timestamps import parse_time

MAX_EVENTS_PER_BATCH = (1, 5000, 1)  # (min, max, default)
PREFERRED_BATCH_KB = (1, 1024, 64)
MAX_DELIVERY_ATTEMPTS = (1, 30, 30)
EVENT_TTL_MINUTES = (1, 1440, 1440)
MAX_ATTRIBUTE_MAPPINGS = 10
MAX_ATTRIBUTE_BYTES = 4096
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})
RECORDED_DESTINATION_FIELDS = ("azureActiveDirectoryTenantId", "azureActiveDirectoryApplicationIdOrUri",
                               "minimumTlsVersionAllowed")

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DELIVERY_SCHEMAS = (EVENTGRID, CLOUDEVENTS)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ranged(value: Any, name: str, bounds: tuple[int, int, int], problems: Problems) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if not _is_int(value) or not low <= value <= high:
        problems.add(f"{name} must be an integer between {low} and {high}; got {value!r}.")
        return default
    return value


def _endpoint_url(value: Any, problems: Problems) -> str:
    if not isinstance(value, str) or not value:
        problems.add("destination.properties.endpointUrl is required for a WebHook destination.")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(f"destination.properties.endpointUrl '{value}' is not an absolute http or https URL.")
    return value


def _attribute_mappings(value: Any, problems: Problems) -> tuple[DeliveryAttribute, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add("destination.properties.deliveryAttributeMappings must be a list.")
        return ()
    if len(value) > MAX_ATTRIBUTE_MAPPINGS:
        problems.add(f"At most {MAX_ATTRIBUTE_MAPPINGS} delivery attribute mappings are allowed; got {len(value)}.")
    mappings: list[DeliveryAttribute] = []
    seen: set[str] = set()
    for i, raw in enumerate(value):
        where = f"deliveryAttributeMappings[{i}]"
        f = fields(raw)
        name, kind, props = f.get("name"), str(f.get("type") or "").lower(), fields(f.get("properties"))
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            problems.add(f"{where}.name must be a valid HTTP header name; got {name!r}.")
            continue
        if name.lower() in seen:
            problems.add(f"{where}.name '{name}' is used by more than one delivery attribute mapping.")
        seen.add(name.lower())
        if name.lower().startswith("aeg-") or name.lower() in RESERVED_HEADERS:
            problems.add(f"{where}.name '{name}' is reserved: Event Grid sets that header itself.")
        if kind == "static":
            mappings.append(_static(name, props, where, problems))
        elif kind == "dynamic":
            source = props.get("sourcefield")
            if not isinstance(source, str) or not source or "" in source.split("."):
                problems.add(f"{where}.properties.sourceField must be a property path such as 'data.key1'.")
            mappings.append(DeliveryAttribute(name, "Dynamic", source_field=source))
        else:
            problems.add(f"{where}.type must be 'Static' or 'Dynamic'; got {f.get('type')!r}.")
    return tuple(mappings)


def _static(name: str, props: dict[str, Any], where: str, problems: Problems) -> DeliveryAttribute:
    value, secret = props.get("value"), props.get("issecret", False)
    if not isinstance(value, str):
        problems.add(f"{where}.properties.value must be a string.")
        value = ""
    elif len(value.encode()) > MAX_ATTRIBUTE_BYTES:
        problems.add(f"{where}.properties.value is {len(value.encode())} bytes; at most {MAX_ATTRIBUTE_BYTES}.")
    if not isinstance(secret, bool):
        problems.add(f"{where}.properties.isSecret must be true or false.")
        secret = False
    return DeliveryAttribute(name, "Static", value=value, is_secret=secret)


def _destination(value: Any, problems: Problems) -> WebHookDestination:
    f = fields(value)
    if not f:
        problems.add('destination is required: {"endpointType": "WebHook", "properties": {"endpointUrl": ...}}.')
        return WebHookDestination("")
    kind = f.get("endpointtype")
    if not isinstance(kind, str) or kind.lower() != "webhook":
        problems.add(f"destination.endpointType '{kind}' is not supported by commgrid; use 'WebHook'.")
        return WebHookDestination("")
    p = fields(f.get("properties"))
    return WebHookDestination(
        endpoint_url=_endpoint_url(p.get("endpointurl"), problems),
        max_events_per_batch=_ranged(p.get("maxeventsperbatch"), "destination.properties.maxEventsPerBatch",
                                     MAX_EVENTS_PER_BATCH, problems),
        preferred_batch_size_kb=_ranged(p.get("preferredbatchsizeinkilobytes"),
                                        "destination.properties.preferredBatchSizeInKilobytes",
                                        PREFERRED_BATCH_KB, problems),
        delivery_attributes=_attribute_mappings(p.get("deliveryattributemappings"), problems),
        # recorded: commgrid sends no Entra tokens and accepts any TLS version
        recorded=tuple((k, p[k.lower()]) for k in RECORDED_DESTINATION_FIELDS if p.get(k.lower()) is not None),
    )


def _filter(value: Any, input_schema: str, problems: Problems) -> EventFilter:
    if value is not None and not isinstance(value, dict):
        problems.add("filter must be an object.")
        value = None
    try:
        compile_filter(value, input_schema)
    except FilterError as exc:
        problems.details.extend(exc.details)
        return EventFilter()
    f = fields(value)
    types = f.get("includedeventtypes")
    return EventFilter(
        included_event_types=None if types is None else tuple(types),
        subject_begins_with=f.get("subjectbeginswith") or "",
        subject_ends_with=f.get("subjectendswith") or "",
        is_subject_case_sensitive=bool(f.get("issubjectcasesensitive") or False),
        enable_advanced_filtering_on_arrays=f.get("enableadvancedfilteringonarrays"),
        advanced_filters=tuple(_advanced(fields(raw)) for raw in f.get("advancedfilters") or ()),
    )


def parse_filter(value: Any, input_schema: str) -> EventFilter:
    """An ARM `filter` object checked and typed on its own (`InvalidInput` listing every problem)."""
    problems = Problems()
    parsed = _filter(value, input_schema, problems)
    if problems.details:
        raise InvalidInput.from_problems(problems.details)
    return parsed


def _advanced(f: dict[str, Any]) -> AdvancedFilter:
    """A clause that compiled: its operator spelt as Azure spells it."""
    return AdvancedFilter.from_arm({"operatorType": canonical_operator(f["operatortype"]), "key": f["key"],
                                    "value": f.get("value"), "values": f.get("values")})


def _delivery_schema(value: Any, input_schema: str, problems: Problems) -> str:
    if value is None:
        return input_schema  # as `az eventgrid event-subscription create`: the topic's input schema
    schema = next((s for s in _DELIVERY_SCHEMAS if isinstance(value, str) and value.lower() == s.lower()), None)
    if schema is None:
        problems.add(f"eventDeliverySchema '{value}' is not supported; use one of {', '.join(_DELIVERY_SCHEMAS)}.")
        return input_schema
    if not can_convert(input_schema, schema):
        problems.add(f"eventDeliverySchema '{schema}' is not supported for a topic whose input schema is"
                     f" '{input_schema}': Event Grid cannot convert those events. Use '{input_schema}'.")
    return schema


def _retry_policy(value: Any, problems: Problems) -> RetryPolicy:
    if value is not None and not isinstance(value, dict):
        problems.add("retryPolicy must be an object.")
    f = fields(value)
    return RetryPolicy(
        _ranged(f.get("maxdeliveryattempts"), "retryPolicy.maxDeliveryAttempts", MAX_DELIVERY_ATTEMPTS, problems),
        _ranged(f.get("eventtimetoliveinminutes"), "retryPolicy.eventTimeToLiveInMinutes", EVENT_TTL_MINUTES,
                problems),
    )


def _dead_letter(value: Any, problems: Problems) -> DeadLetterDestination | None:
    if value is None:
        return None
    f = fields(value)
    kind = next((t for t in DESTINATION_TYPES if str(f.get("endpointtype", "")).lower() == t.lower()), None)
    p = fields(f.get("properties"))
    if kind == STORAGE_BLOB:
        resource, container = p.get("resourceid"), p.get("blobcontainername")
        if not isinstance(resource, str) or "/storageaccounts/" not in resource.lower():
            problems.add("deadLetterDestination.properties.resourceId must be a storage account resource id.")
        if not isinstance(container, str) or not container:
            problems.add("deadLetterDestination.properties.blobContainerName is required.")
        return DeadLetterDestination(STORAGE_BLOB, resource_id=resource, blob_container_name=container)
    if kind == LOCAL_DIRECTORY:
        path = p.get("path")
        if not isinstance(path, str) or not PurePath(path).is_absolute():
            problems.add(f"deadLetterDestination.properties.path must be an absolute directory path; got {path!r}.")
        return DeadLetterDestination(LOCAL_DIRECTORY, path=path)
    problems.add(f"deadLetterDestination.endpointType '{f.get('endpointtype')}' is not supported; use"
                 f" '{STORAGE_BLOB}' or commgrid's '{LOCAL_DIRECTORY}' ({{\"path\": \"/absolute/dir\"}}).")
    return None


def _expiration(value: Any, now: float, problems: Problems) -> str | None:
    if value is None:
        return None
    try:
        moment = parse_time(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        problems.add(f"Invalid expiration time. expirationTimeUtc {value!r} is not an ISO 8601 date-time.")
        return None
    if moment.timestamp() <= now:
        problems.add(f"Invalid expiration time. expirationTimeUtc '{value}' must be in the future.")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _labels(value: Any, problems: Problems) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add("labels must be a list of strings.")
        return None
    return tuple(value)


def validate_properties(raw: Any, input_schema: str, now: float) -> SubscriptionProperties:
    """Check ARM subscription `properties` for a topic of `input_schema`; return them typed, defaults filled in.

    Raises
    ------
    InvalidInput
        Listing every problem found, as Azure's `details`.
    """
    problems = Problems()
    if not isinstance(raw, dict):
        raise InvalidInput("The event subscription properties must be a JSON object.")
    f = fields(raw)
    for unsupported in ("deliveryWithResourceIdentity", "deadLetterWithResourceIdentity"):
        if f.get(unsupported.lower()) is not None:
            problems.add(f"{unsupported} is not supported: commgrid has no managed identities; use"
                         f" {'destination' if unsupported.startswith('delivery') else 'deadLetterDestination'}.")
    props = SubscriptionProperties(
        destination=_destination(f.get("destination"), problems),
        filter=_filter(f.get("filter"), input_schema, problems),
        event_delivery_schema=_delivery_schema(f.get("eventdeliveryschema"), input_schema, problems),
        retry_policy=_retry_policy(f.get("retrypolicy"), problems),
        labels=_labels(f.get("labels"), problems),
        dead_letter_destination=_dead_letter(f.get("deadletterdestination"), problems),
        expiration_time_utc=_expiration(f.get("expirationtimeutc"), now, problems),
    )
    problems.raise_if_any("event subscription")
    return props


# Subject warnings: not errors, since a topic's subjects are only ever samples


def _literal_prefix(template: str) -> str:
    return template.split("{", 1)[0]


def subject_warning(begins: str, case_sensitive: bool, samples: list[tuple[str, bool]], topic: str) -> str | None:
    """A warning if `begins` can match none of the subjects seen (`(subject, is_template)` pairs), naming a fix."""
    if not begins or not samples:
        return None
    fold = (lambda s: s) if case_sensitive else str.casefold

    def possible(prefix: str) -> bool:
        for subject, template in samples:
            literal = fold(_literal_prefix(subject) if template else subject)
            if literal.startswith(fold(prefix)) or (template and fold(prefix).startswith(literal)):
                return True
        return False

    if possible(begins):
        return None
    candidates = [begins, "/" + begins.lstrip("/"), begins.lstrip("/")]
    if case_sensitive:
        candidates += [c.lower() for c in candidates]
    fix = next((c for c in candidates if c != begins and possible(c)), None)
    shown = ", ".join(sorted({f"'{s}'" for s, _ in samples})[:3])
    message = (f"filter.subjectBeginsWith '{begins}' can never match the subjects of topic '{topic}' (they look"
               f" like {shown}), so this subscription will receive no events.")
    return message + (f" Did you mean '{fix}'?" if fix else "")
