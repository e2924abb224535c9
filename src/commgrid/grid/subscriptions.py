"""Event subscriptions: their properties checked as Azure checks them, their life cycle, and their ARM shape.

A subscription's `properties` are Event Grid's ARM `properties` (eventgrid-facts.md §3.2), stored normalized:
every default filled in, keys spelt in camelCase, the secret `endpointUrl` kept (rendered only as
`endpointBaseUrl`). Its `status` says whether it gets events:

    Creating ──handshake──► Active                 (validated; provisioningState Succeeded)
                   ├──────► AwaitingManualAction   (200 without the code; a GET on validationUrl → Active)
                   └──────► Failed                 (no valid answer, or the manual window passed)

Only Active subscriptions are routed to and delivered to. Changing the endpoint or the delivery schema runs
the handshake again. The validation state (code, validation URL, why a subscription is not Active) lives in
the store's documents, collection `eventsubscription-validation`, so every node and the CLI see it.

commgrid supports `WebHook` destinations over http or https (Azure requires https) and the dead-letter
destinations described in `grid/deadletter.py`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from commgrid.config import Settings
from commgrid.errors import BadRequest, Conflict, Detail, InvalidInput, NotFound
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID, can_convert, convert
from commgrid.grid.deadletter import DESTINATION_TYPES, LOCAL_DIRECTORY, STORAGE_BLOB, azure_time, dead_letter_event
from commgrid.grid.filters import FilterError, compile_filter
from commgrid.grid.handshake import (
    ACTIVE,
    AWAITING,
    CREATING,
    FAILED,
    HandshakeResult,
    base_url,
    send_deleted_event,
    validate_cloudevents,
    validate_eventgrid,
    validation_event,
)
from commgrid.grid.service import Grid
from commgrid.grid.timing import Timing
from commgrid.store import Store
from commgrid.store.base import DeadLetter, Document, Missing, Subscription, Topic

log = logging.getLogger("commgrid.subscriptions")

PROVISIONING_STATE = {ACTIVE: "Succeeded", AWAITING: "AwaitingManualAction", FAILED: "Failed", CREATING: "Creating"}
VALIDATION_DOCS = "eventsubscription-validation"

MAX_EVENTS_PER_BATCH = (1, 5000, 1)  # (min, max, default), §3.2
PREFERRED_BATCH_KB = (1, 1024, 64)
MAX_DELIVERY_ATTEMPTS = (1, 30, 30)
EVENT_TTL_MINUTES = (1, 1440, 1440)
MAX_ATTRIBUTE_MAPPINGS = 10
MAX_ATTRIBUTE_BYTES = 4096
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})

_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FILTER_KEYS = {k.lower(): k for k in ("includedEventTypes", "subjectBeginsWith", "subjectEndsWith",
                                       "isSubjectCaseSensitive", "enableAdvancedFilteringOnArrays",
                                       "advancedFilters")}
_DELIVERY_SCHEMAS = (EVENTGRID, CLOUDEVENTS)


# ------------------------------------------------------------------------------------------------------------
# Validation of properties


class _Problems:
    def __init__(self) -> None:
        self.details: list[Detail] = []

    def add(self, message: str, code: str = "InvalidRequest") -> None:
        self.details.append(Detail(code, message))


def _fields(value: Any) -> dict[str, Any]:
    """An object's properties by lower-cased name: ARM reads JSON property names case-insensitively."""
    return {k.lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ranged(value: Any, name: str, bounds: tuple[int, int, int], problems: _Problems) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if not _is_int(value) or not low <= value <= high:
        problems.add(f"{name} must be an integer between {low} and {high}; got {value!r}.")
        return default
    return value


def _endpoint_url(value: Any, problems: _Problems) -> str:
    if not isinstance(value, str) or not value:
        problems.add("destination.properties.endpointUrl is required for a WebHook destination.")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(f"destination.properties.endpointUrl '{value}' is not an absolute http or https URL.")
    return value


def _attribute_mappings(value: Any, problems: _Problems) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add("destination.properties.deliveryAttributeMappings must be a list.")
        return []
    if len(value) > MAX_ATTRIBUTE_MAPPINGS:
        problems.add(f"At most {MAX_ATTRIBUTE_MAPPINGS} delivery attribute mappings are allowed; got {len(value)}.")
    mappings, seen = [], set()
    for i, raw in enumerate(value):
        where = f"deliveryAttributeMappings[{i}]"
        f = _fields(raw)
        name, kind, props = f.get("name"), str(f.get("type") or "").lower(), _fields(f.get("properties"))
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            problems.add(f"{where}.name must be a valid HTTP header name; got {name!r}.")
            continue
        if name.lower() in seen:
            problems.add(f"{where}.name '{name}' is used by more than one delivery attribute mapping.")
        seen.add(name.lower())
        if name.lower().startswith("aeg-") or name.lower() in RESERVED_HEADERS:
            problems.add(f"{where}.name '{name}' is reserved: Event Grid sets that header itself.")
        if kind == "static":
            mappings.append({"name": name, "type": "Static", "properties": _static(props, where, problems)})
        elif kind == "dynamic":
            source = props.get("sourcefield")
            if not isinstance(source, str) or not source or "" in source.split("."):
                problems.add(f"{where}.properties.sourceField must be a property path such as 'data.key1'.")
            mappings.append({"name": name, "type": "Dynamic", "properties": {"sourceField": source}})
        else:
            problems.add(f"{where}.type must be 'Static' or 'Dynamic'; got {f.get('type')!r}.")
    return mappings


def _static(props: dict[str, Any], where: str, problems: _Problems) -> dict[str, Any]:
    value, secret = props.get("value"), props.get("issecret", False)
    if not isinstance(value, str):
        problems.add(f"{where}.properties.value must be a string.")
        value = ""
    elif len(value.encode()) > MAX_ATTRIBUTE_BYTES:
        problems.add(f"{where}.properties.value is {len(value.encode())} bytes; at most {MAX_ATTRIBUTE_BYTES}.")
    if not isinstance(secret, bool):
        problems.add(f"{where}.properties.isSecret must be true or false.")
        secret = False
    return {"value": value, "isSecret": secret}


def _destination(value: Any, problems: _Problems) -> dict[str, Any]:
    f = _fields(value)
    if not f:
        problems.add('destination is required: {"endpointType": "WebHook", "properties": {"endpointUrl": ...}}.')
        return {}
    kind = f.get("endpointtype")
    if not isinstance(kind, str) or kind.lower() != "webhook":
        problems.add(f"destination.endpointType '{kind}' is not supported by commgrid; use 'WebHook'.")
        return {}
    p = _fields(f.get("properties"))
    props: dict[str, Any] = {
        "endpointUrl": _endpoint_url(p.get("endpointurl"), problems),
        "maxEventsPerBatch": _ranged(p.get("maxeventsperbatch"), "destination.properties.maxEventsPerBatch",
                                     MAX_EVENTS_PER_BATCH, problems),
        "preferredBatchSizeInKilobytes": _ranged(p.get("preferredbatchsizeinkilobytes"),
                                                 "destination.properties.preferredBatchSizeInKilobytes",
                                                 PREFERRED_BATCH_KB, problems),
    }
    mappings = _attribute_mappings(p.get("deliveryattributemappings"), problems)
    if mappings:
        props["deliveryAttributeMappings"] = mappings
    for key in ("azureActiveDirectoryTenantId", "azureActiveDirectoryApplicationIdOrUri", "minimumTlsVersionAllowed"):
        if p.get(key.lower()) is not None:  # recorded; commgrid sends no Entra tokens and accepts any TLS
            props[key] = p[key.lower()]
    return {"endpointType": "WebHook", "properties": props}


def _filter(value: Any, input_schema: str, problems: _Problems) -> dict[str, Any]:
    if value is not None and not isinstance(value, dict):
        problems.add("filter must be an object.")
        value = None
    given = {_FILTER_KEYS[k.lower()]: v for k, v in (value or {}).items() if k.lower() in _FILTER_KEYS}
    try:
        compile_filter(given, input_schema)
    except FilterError as exc:
        problems.details.extend(exc.details)
    normalized = {"subjectBeginsWith": "", "subjectEndsWith": "", "isSubjectCaseSensitive": False}
    normalized.update({k: v for k, v in given.items() if v is not None})
    return normalized


def _delivery_schema(value: Any, input_schema: str, problems: _Problems) -> str:
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


def _retry_policy(value: Any, problems: _Problems) -> dict[str, int]:
    if value is not None and not isinstance(value, dict):
        problems.add("retryPolicy must be an object.")
    f = _fields(value)
    return {
        "maxDeliveryAttempts": _ranged(f.get("maxdeliveryattempts"), "retryPolicy.maxDeliveryAttempts",
                                       MAX_DELIVERY_ATTEMPTS, problems),
        "eventTimeToLiveInMinutes": _ranged(f.get("eventtimetoliveinminutes"), "retryPolicy.eventTimeToLiveInMinutes",
                                            EVENT_TTL_MINUTES, problems),
    }


def _dead_letter(value: Any, problems: _Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    f = _fields(value)
    kind = next((t for t in DESTINATION_TYPES if str(f.get("endpointtype", "")).lower() == t.lower()), None)
    p = _fields(f.get("properties"))
    if kind == STORAGE_BLOB:
        resource, container = p.get("resourceid"), p.get("blobcontainername")
        if not isinstance(resource, str) or "/storageaccounts/" not in resource.lower():
            problems.add("deadLetterDestination.properties.resourceId must be a storage account resource id.")
        if not isinstance(container, str) or not container:
            problems.add("deadLetterDestination.properties.blobContainerName is required.")
        return {"endpointType": STORAGE_BLOB, "properties": {"resourceId": resource, "blobContainerName": container}}
    if kind == LOCAL_DIRECTORY:
        path = p.get("path")
        if not isinstance(path, str) or not PurePath(path).is_absolute():
            problems.add(f"deadLetterDestination.properties.path must be an absolute directory path; got {path!r}.")
        return {"endpointType": LOCAL_DIRECTORY, "properties": {"path": path}}
    problems.add(f"deadLetterDestination.endpointType '{f.get('endpointtype')}' is not supported; use"
                 f" '{STORAGE_BLOB}' or commgrid's '{LOCAL_DIRECTORY}' ({{\"path\": \"/absolute/dir\"}}).")
    return None


def parse_time(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC (as az CLI's --expiration-date)."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expiration(value: Any, now: float, problems: _Problems) -> str | None:
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


def _labels(value: Any, problems: _Problems) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add("labels must be a list of strings.")
        return None
    return value


def validate_properties(raw: Any, input_schema: str, now: float) -> dict[str, Any]:
    """Check ARM subscription `properties` for a topic of `input_schema`; return them normalized.

    Raises
    ------
    InvalidInput
        Listing every problem found, as Azure's `details`.
    """
    problems = _Problems()
    if not isinstance(raw, dict):
        raise InvalidInput("The event subscription properties must be a JSON object.")
    f = _fields(raw)
    for unsupported in ("deliveryWithResourceIdentity", "deadLetterWithResourceIdentity"):
        if f.get(unsupported.lower()) is not None:
            problems.add(f"{unsupported} is not supported: commgrid has no managed identities; use"
                         f" {'destination' if unsupported.startswith('delivery') else 'deadLetterDestination'}.")
    props: dict[str, Any] = {
        "destination": _destination(f.get("destination"), problems),
        "filter": _filter(f.get("filter"), input_schema, problems),
        "eventDeliverySchema": _delivery_schema(f.get("eventdeliveryschema"), input_schema, problems),
        "retryPolicy": _retry_policy(f.get("retrypolicy"), problems),
    }
    optional = {"labels": _labels(f.get("labels"), problems),
                "deadLetterDestination": _dead_letter(f.get("deadletterdestination"), problems),
                "expirationTimeUtc": _expiration(f.get("expirationtimeutc"), now, problems)}
    props.update({k: v for k, v in optional.items() if v is not None})
    if problems.details:
        summary = "Invalid event subscription: " + " ".join(d.message for d in problems.details)
        raise InvalidInput.from_problems(problems.details, summary)
    return props


# ------------------------------------------------------------------------------------------------------------
# Subject warnings


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


# ------------------------------------------------------------------------------------------------------------
# Service


@dataclass
class Saved:
    """A subscription after create or update: its state, why, and any warnings about its filter."""

    subscription: Subscription
    message: str = ""
    warnings: list[str] = field(default_factory=list)


class Subscriptions:
    """Create, change, validate and delete event subscriptions; render them as ARM resources."""

    def __init__(self, store: Store, grid: Grid, settings: Settings, *, clock: Any = time.time) -> None:
        self.store = store
        self.grid = grid
        self.settings = settings
        self.timing = Timing(settings.time_scale, settings.delivery_lease)
        self.clock = clock

    # reading ---------------------------------------------------------------------------------------------
    async def get(self, topic_name: str, name: str) -> Subscription:
        topic = await self.grid.get_topic(topic_name)
        return await self._get(topic, name)

    async def _get(self, topic: Topic, name: str) -> Subscription:
        try:
            sub = await self.store.get_subscription(topic.name, name)
        except Missing:
            raise NotFound(f"Event subscription '{name}' was not found on topic '{topic.name}'.",
                           code="ResourceNotFound") from None
        return await self._expire_if_due(sub)

    async def list(self, topic_name: str | None = None) -> list[Subscription]:
        topic = await self.grid.get_topic(topic_name) if topic_name else None
        subs = await self.store.list_subscriptions(topic.name if topic else None)
        return [await self._expire_if_due(s) for s in subs]

    async def status(self, sub: Subscription) -> dict[str, Any]:
        """Why the subscription is (not) getting events: state, message and, when waiting, the validation URL."""
        doc = await self._validation(sub)
        shown: dict[str, Any] = {"state": sub.status, "message": doc.get("message", "")}
        if sub.status == AWAITING:
            shown["validationUrl"] = doc.get("validationUrl")
            shown["validationExpiresAt"] = azure_time(doc.get("expiresAt"))
        return shown

    def arm_id(self, sub: Subscription, topic: Topic) -> str:
        if topic.kind == "system":
            return f"{self.grid.deployment.system_topic_arm_id}/eventSubscriptions/{sub.name}"
        return f"{topic.arm_id}/providers/Microsoft.EventGrid/eventSubscriptions/{sub.name}"

    def render(self, sub: Subscription, topic: Topic) -> dict[str, Any]:
        """The ARM resource: the secret endpointUrl becomes endpointBaseUrl, secret header values are hidden."""
        props = copy.deepcopy(sub.properties)
        dest = props.get("destination", {}).get("properties", {})
        if "endpointUrl" in dest:
            dest["endpointBaseUrl"] = base_url(dest.pop("endpointUrl"))
        for mapping in dest.get("deliveryAttributeMappings", []):
            if mapping["type"] == "Static" and mapping["properties"].get("isSecret"):
                mapping["properties"] = {"value": None, "isSecret": True}
        topic_id = self.grid.deployment.system_topic_arm_id if topic.kind == "system" else topic.arm_id
        properties = {"topic": topic_id, "provisioningState": PROVISIONING_STATE.get(sub.status, sub.status), **props}
        return {"id": self.arm_id(sub, topic), "name": sub.name, "type": "Microsoft.EventGrid/eventSubscriptions",
                "properties": properties}

    async def full_url(self, topic_name: str, name: str) -> str:
        """The endpoint URL with its query string (ARM `getFullUrl`)."""
        return (await self.get(topic_name, name)).properties["destination"]["properties"]["endpointUrl"]

    async def explain(self, topic_name: str, name: str, event: dict[str, Any]) -> str | None:
        """None if `event` (in the topic's input schema) passes the subscription's filter, else why not."""
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        return compile_filter(sub.properties.get("filter"), topic.input_schema).explain(event)

    # writing ---------------------------------------------------------------------------------------------
    async def create(self, topic_name: str, name: str, properties: dict[str, Any]) -> Saved:
        """Create a subscription and validate its endpoint; a Failed one of the same name is replaced.

        Returns once the handshake has an outcome (Active, AwaitingManualAction or Failed), as Azure's
        long-running create does.
        """
        topic = await self.grid.get_topic(topic_name)
        if not _NAME.match(name):
            raise BadRequest(f"Event subscription name '{name}' is invalid: use 3-64 letters, digits and '-'.",
                             code="InvalidEventSubscriptionName")
        now = self.clock()
        props = validate_properties(properties, topic.input_schema, now)
        sub = Subscription(topic=topic.name, name=name, properties=props, status=CREATING, created_at=now,
                           updated_at=now)
        try:
            existing = await self.store.get_subscription(topic.name, name)
        except Missing:
            existing = None
        if existing is not None and existing.status != FAILED:
            raise Conflict(f"Event subscription '{existing.name}' already exists on topic '{topic.name}'; use update.",
                           code="ResourceAlreadyExists")
        with contextlib.suppress(Missing):  # a stale handshake (of a replaced or topic-deleted one) must not count
            await self.store.delete_document(VALIDATION_DOCS, _doc_key(sub))
        if existing is not None:
            sub.name, sub.created_at = existing.name, existing.created_at
            await self.store.update_subscription(sub)
        else:
            await self.store.create_subscription(sub)
        log.info("subscription created", extra={"action": "subscription_created", "topic": topic.name,
                                                "subscription": name})
        return await self._finish(topic, sub, handshake=True)

    async def update(self, topic_name: str, name: str, changes: dict[str, Any]) -> Saved:
        """Replace the given top-level properties (ARM PATCH); a destination without endpointUrl keeps it.

        The handshake runs again when the endpoint or the delivery schema changes, and for a subscription
        that failed or never finished one (its creator died mid-handshake).
        """
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        old = sub.properties
        merged = {**old, **{k: v for k, v in changes.items() if k not in ("topic", "provisioningState")}}
        new_dest = _fields(_fields(merged.get("destination")).get("properties"))
        if "destination" in changes and not new_dest.get("endpointurl"):
            merged["destination"] = copy.deepcopy(merged["destination"])
            merged["destination"].setdefault("properties", {})["endpointUrl"] = old["destination"]["properties"][
                "endpointUrl"]
        sub.properties = validate_properties(merged, topic.input_schema, self.clock())
        sub.updated_at = self.clock()
        new = sub.properties
        revalidate = (sub.status in (FAILED, CREATING) or _endpoint_of(new) != _endpoint_of(old)
                      or new["eventDeliverySchema"] != old["eventDeliverySchema"])
        if revalidate:
            sub.status = CREATING
        await self.store.update_subscription(sub)
        log.info("subscription updated", extra={"action": "subscription_updated", "topic": topic.name,
                                                "subscription": sub.name, "revalidate": revalidate})
        return await self._finish(topic, sub, handshake=revalidate)

    async def delete(self, topic_name: str, name: str) -> None:
        """Delete a subscription with its pending deliveries; a validated endpoint is told (best effort)."""
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        await self.store.delete_subscription(topic.name, sub.name)
        with contextlib.suppress(Missing):
            await self.store.delete_document(VALIDATION_DOCS, _doc_key(sub))
        self.grid.catalog.invalidate()
        log.info("subscription deleted", extra={"action": "subscription_deleted", "topic": topic.name,
                                                "subscription": sub.name})
        if sub.status == ACTIVE:
            timeout = min(self.timing.response_timeout, 5.0)
            async with aiohttp.ClientSession() as session:
                await send_deleted_event(session, _endpoint_of(sub.properties), sub.name, self.arm_id(sub, topic),
                                         topic.arm_id, sub.properties["eventDeliverySchema"], timeout=timeout)

    async def validate_manually(self, topic_name: str, name: str, validation_id: str, token: str) -> str:
        """The GET on a validationUrl (§4.1): activates a subscription awaiting it within the window."""
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        doc = await self._validation(sub)
        if not (secrets.compare_digest(validation_id.encode(), doc.get("id", "").encode()) and
                secrets.compare_digest(token.encode(), doc.get("token", "").encode())):
            raise BadRequest("This validation link is not valid for the event subscription (it may have been"
                             " replaced by a newer handshake).", code="InvalidValidationLink")
        if sub.status == ACTIVE:
            return "Webhook successfully validated as a part of the subscription validation."
        if sub.status not in (AWAITING, CREATING):
            raise BadRequest(f"The event subscription is {sub.status}: {doc.get('message', '')}",
                             code="ValidationFailed")
        await self._save_state(sub, ACTIVE, "Validated by a GET on the validation URL.", doc)
        log.info("subscription validated manually", extra={"action": "subscription_validated_manually",
                                                           "topic": topic.name, "subscription": sub.name})
        return "Webhook successfully validated as a part of the subscription validation."

    # dead letters ----------------------------------------------------------------------------------------
    async def dead_letters(
        self, topic_name: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        topic = await self.grid.get_topic(topic_name) if topic_name else None
        if name and topic:
            name = (await self._get(topic, name)).name
        return await self.store.list_dead_letters(topic.name if topic else None, name, limit)

    async def dead_letter(self, dead_letter_id: int) -> DeadLetter:
        try:
            return await self.store.get_dead_letter(dead_letter_id)
        except Missing:
            raise NotFound(f"Dead-letter record {dead_letter_id} was not found.") from None

    async def render_dead_letter(self, record: DeadLetter) -> dict[str, Any]:
        """The dead-lettered event as Event Grid writes it, in the subscription's delivery schema (§4.6)."""
        topic = await self.grid.get_topic(record.topic)
        try:
            schema = (await self.store.get_subscription(topic.name, record.subscription)).properties[
                "eventDeliverySchema"]
        except Missing:
            schema = topic.input_schema
        event = convert(orjson.loads(record.event.body), topic.input_schema, schema)
        return dead_letter_event(event, schema, reason=record.reason, attempts=record.attempts,
                                 last_outcome=record.last_outcome, last_status=record.last_status,
                                 published_at=record.event.published_at, last_attempt_at=record.last_attempt_at)

    async def redeliver(self, ids: list[int]) -> int:
        """Turn dead letters back into deliveries due now (attempt count starting again); returns how many."""
        moved = await self.store.redeliver_dead_letters(ids, self.clock())
        log.info("dead letters redelivered", extra={"action": "dead_letters_redelivered", "count": moved})
        return moved

    # internals -------------------------------------------------------------------------------------------
    async def _finish(self, topic: Topic, sub: Subscription, *, handshake: bool) -> Saved:
        message = (await self._validation(sub)).get("message", "")
        if handshake:
            result = await self._handshake(topic, sub)
            sub, message = await self._get(topic, sub.name), result.message
        self.grid.catalog.invalidate()
        return Saved(sub, message, await self._warnings(topic, sub.properties["filter"]))

    async def _handshake(self, topic: Topic, sub: Subscription) -> HandshakeResult:
        url = _endpoint_of(sub.properties)
        timeout = self.timing.response_timeout
        async with aiohttp.ClientSession() as session:
            if sub.properties["eventDeliverySchema"] == CLOUDEVENTS:
                doc: dict[str, Any] = {"state": CREATING, "message": "Validation handshake in progress."}
                await self.store.put_document(Document(VALIDATION_DOCS, _doc_key(sub), doc))  # no GET link
                result = await validate_cloudevents(session, url, timeout=timeout)
            else:
                doc = await self._new_validation(topic, sub)
                event = validation_event(topic.arm_id, doc["code"], doc["validationUrl"])
                result = await validate_eventgrid(session, url, sub.name, event, timeout=timeout,
                                                  retry_after=self.timing.handshake_retry)
        current = await self._validation(sub)
        if result.state == AWAITING and current.get("state") == ACTIVE:  # the endpoint did the GET meanwhile
            result = HandshakeResult(ACTIVE, current.get("message", ""))
        await self._save_state(sub, result.state, result.message, {**doc, **current})
        log.info("validation handshake finished", extra={
            "action": "subscription_handshake", "topic": topic.name, "subscription": sub.name,
            "state": result.state, "detail": result.message})
        return result

    async def _new_validation(self, topic: Topic, sub: Subscription) -> dict[str, Any]:
        now = self.clock()
        doc = {"id": str(uuid.uuid4()), "token": secrets.token_urlsafe(24), "code": str(uuid.uuid4()).upper(),
               "issuedAt": now, "expiresAt": now + self.timing.validation_window, "state": CREATING,
               "message": "Validation handshake in progress."}
        query = (f"id={doc['id']}&t={quote(azure_time(now) or '')}&apiVersion=2018-05-01-preview"
                 f"&token={doc['token']}")
        doc["validationUrl"] = (f"{self.settings.http_base}/eventsubscriptions/{quote(topic.name)}/"
                                f"{quote(sub.name)}/validate?{query}")
        await self.store.put_document(Document(VALIDATION_DOCS, _doc_key(sub), doc))
        return doc

    async def _validation(self, sub: Subscription) -> dict[str, Any]:
        try:
            return (await self.store.get_document(VALIDATION_DOCS, _doc_key(sub))).value
        except Missing:
            return {}

    async def _save_state(self, sub: Subscription, state: str, message: str, doc: dict[str, Any]) -> None:
        await self.store.put_document(Document(VALIDATION_DOCS, _doc_key(sub), {**doc, "state": state,
                                                                                 "message": message}))
        current = await self.store.get_subscription(sub.topic, sub.name)
        current.status, current.updated_at = state, self.clock()
        await self.store.update_subscription(current)
        sub.status = state
        self.grid.catalog.invalidate()

    async def _expire_if_due(self, sub: Subscription) -> Subscription:
        """A subscription awaiting the manual GET fails once the window has passed (§4.1)."""
        if sub.status != AWAITING:
            return sub
        doc = await self._validation(sub)
        if doc.get("expiresAt", float("inf")) > self.clock():
            return sub
        message = (f"Webhook validation handshake failed for {base_url(_endpoint_of(sub.properties))}: no Http GET"
                   " on the validation url within 10 minutes. Create the subscription again.")
        await self._save_state(sub, FAILED, message, doc)
        return sub

    async def _warnings(self, topic: Topic, filt: dict[str, Any]) -> list[str]:
        begins = filt.get("subjectBeginsWith") or ""
        if not begins:
            return []
        types = {t.lower() for t in filt.get("includedEventTypes") or [] if isinstance(t, str)}
        types = set() if "all" in types else types
        samples: list[tuple[str, bool]] = []
        if topic.kind == "system":
            from commgrid.events.acs import CATALOG  # the subjects ACS events use (§5.2)

            samples += [(info.subject, True) for t, info in CATALOG.items() if not types or str(t).lower() in types]
        samples += [(e.subject, False) for e in await self.store.list_events(topic.name, limit=200)
                    if not types or e.type.lower() in types]
        warning = subject_warning(begins, bool(filt.get("isSubjectCaseSensitive")), samples, topic.name)
        return [warning] if warning else []


def _endpoint_of(properties: dict[str, Any]) -> str:
    return properties["destination"]["properties"]["endpointUrl"]


def _doc_key(sub: Subscription) -> str:
    return f"{sub.topic}/{sub.name}".lower()
