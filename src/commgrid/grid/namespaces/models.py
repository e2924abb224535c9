"""Namespace resources as Azure checks and renders them: namespaces, namespace topics, their event subscriptions.

Rules follow Azure's Event Grid namespace model (Microsoft.EventGrid 2025-02-15 resource manager spec and
the azure-mgmt-eventgrid `Namespace`, `NamespaceTopic` and `Subscription` models): CloudEvents 1.0 input only,
event retention 1–7 days, queue locks 60–300 s, 1–10 deliveries, an event time to live (ISO 8601 duration)
no longer than the topic's retention. Each `validate_*` raises one `InvalidInput` listing every problem.
`to_arm()` renders the ARM resource body the management SDK deserialises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from commgrid.errors import Detail, InvalidInput, Problems
from commgrid.events.envelope import CLOUDEVENTS
from commgrid.grid.filter_operators import OPERATOR_NAMES, find_operator
from commgrid.grid.filters import FilterError, compile_filter
from commgrid.jsonfields import fields

NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
NAMESPACE_TYPE = "Microsoft.EventGrid/namespaces"
TOPIC_TYPE = "Microsoft.EventGrid/namespaces/topics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/namespaces/topics/eventSubscriptions"

QUEUE, PUSH = "Queue", "Push"
CAPACITY = (1, 40, 1)  # (min, max, default) throughput units of the Standard tier
RETENTION_DAYS = (1, 7, 7)
LOCK_SECONDS = (60, 300, 60)
MAX_DELIVERY_COUNT = (1, 10, 10)
MIN_TTL_SECONDS = 60
MAX_FILTERS = 25
RELEASE_DELAYS = (0, 10, 60, 600, 3600)  # the releaseDelayInSeconds values the data plane accepts
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def check_name(kind: str, name: str) -> None:
    if not NAME.match(name):
        raise InvalidInput.from_problems([Detail("InvalidResourceName", f"{kind} name '{name}' is invalid: use 3-50"
                                                 " letters, digits and '-'.")])


def ranged(value: Any, name: str, bounds: tuple[int, int, int], problems: Problems) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        problems.add(f"{name} must be an integer between {low} and {high}.")
        return default
    if not low <= value <= high:
        problems.add(f"{name} must be between {low} and {high}; got {int(value)}.")
    return int(value)


def duration_seconds(text: str) -> float | None:
    """Seconds of an ISO 8601 duration in weeks, days, hours, minutes and seconds; None if not one."""
    match = _DURATION.match(text) if isinstance(text, str) and text.upper() not in ("P", "PT") else None
    if match is None or text.upper().endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


# ------------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Namespace:
    """An Event Grid namespace: its topics' publishers authenticate with its two keys."""

    name: str
    location: str
    key1: str
    key2: str
    capacity: int = 1
    tags: dict[str, str] = field(default_factory=dict)

    def to_arm(self, arm_id: str, hostname: str | None = None) -> dict[str, Any]:
        """azure-mgmt-eventgrid `Namespace`; `hostname` is where its topics are published (host[:port]/path)."""
        properties: dict[str, Any] = {"provisioningState": "Succeeded", "isZoneRedundant": False,
                                      "publicNetworkAccess": "Enabled", "minimumTlsVersionAllowed": "1.2",
                                      "inboundIpRules": []}
        if hostname:
            properties["topicsConfiguration"] = {"hostname": hostname}
        return {"id": arm_id, "name": self.name, "type": NAMESPACE_TYPE, "location": self.location,
                "tags": self.tags, "sku": {"name": "Standard", "capacity": self.capacity}, "properties": properties}

    def stored(self) -> dict[str, Any]:
        return {"name": self.name, "location": self.location, "key1": self.key1, "key2": self.key2,
                "capacity": self.capacity, "tags": self.tags}


def validate_namespace(body: Any, default_location: str) -> tuple[str, int, dict[str, str]]:
    """(location, capacity, tags) of an ARM namespace body."""
    problems = Problems()
    f = fields(body)
    if body is not None and not isinstance(body, dict):
        problems.add("The namespace must be a JSON object.")
    location = f.get("location") or default_location
    if not isinstance(location, str):
        problems.add("location must be a string.")
    sku = fields(f.get("sku"))
    if sku.get("name") not in (None, "Standard"):
        problems.add(f"sku.name '{sku.get('name')}' is not supported; use Standard.")
    capacity = ranged(sku.get("capacity"), "sku.capacity", CAPACITY, problems)
    tags = f.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        problems.add("tags must be an object of strings.")
    problems.raise_if_any("namespace")
    return str(location), capacity, dict(tags)


# ------------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class NamespaceTopic:
    """A namespace topic: CloudEvents 1.0 in, kept `event_retention_days`."""

    namespace: str
    name: str
    event_retention_days: int = RETENTION_DAYS[2]

    def properties(self) -> dict[str, Any]:
        return {"publisherType": "Custom", "inputSchema": "CloudEventSchemaV1_0",
                "eventRetentionInDays": self.event_retention_days}

    def to_arm(self, arm_id: str) -> dict[str, Any]:
        """azure-mgmt-eventgrid `NamespaceTopic`."""
        return {"id": arm_id, "name": self.name, "type": TOPIC_TYPE,
                "properties": {"provisioningState": "Succeeded", **self.properties()}}

    def stored(self) -> dict[str, Any]:
        return {"name": self.name, "eventRetentionInDays": self.event_retention_days}


def validate_topic(properties: Any) -> int:
    """The event retention in days of ARM namespace topic `properties`."""
    problems = Problems()
    f = fields(properties)
    if properties is not None and not isinstance(properties, dict):
        problems.add("The namespace topic properties must be a JSON object.")
    if f.get("publishertype") not in (None, "Custom"):
        problems.add(f"publisherType '{f['publishertype']}' is not supported; use Custom.")
    if f.get("inputschema") not in (None, "CloudEventSchemaV1_0"):
        problems.add(f"inputSchema '{f['inputschema']}' is not supported: namespace topics accept"
                     " CloudEventSchemaV1_0 only.")
    days = ranged(f.get("eventretentionindays"), "eventRetentionInDays", RETENTION_DAYS, problems)
    problems.raise_if_any("namespace topic")
    return days


# ------------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class NamespaceSubscription:
    """A namespace topic event subscription; `properties` is its normalized ARM `properties` object."""

    namespace: str
    topic: str
    name: str
    properties: dict[str, Any]

    @property
    def delivery_mode(self) -> str:
        return self.properties["deliveryConfiguration"]["deliveryMode"]

    @property
    def _mode_info(self) -> dict[str, Any]:
        config = self.properties["deliveryConfiguration"]
        return config["queue"] if self.delivery_mode == QUEUE else config["push"]

    @property
    def lock_seconds(self) -> int:
        return self._mode_info.get("receiveLockDurationInSeconds", LOCK_SECONDS[2])

    @property
    def max_delivery_count(self) -> int:
        return self._mode_info["maxDeliveryCount"]

    @property
    def ttl_seconds(self) -> float:
        return duration_seconds(self._mode_info["eventTimeToLive"]) or 0.0

    def classic_filter(self) -> dict[str, Any]:
        """The filter in classic Event Grid form, which commgrid's routing compiles."""
        filters = self.properties["filtersConfiguration"]
        classic: dict[str, Any] = {"advancedFilters": filters.get("filters", [])}
        if filters.get("includedEventTypes") is not None:
            classic["includedEventTypes"] = filters["includedEventTypes"]
        return classic

    def to_arm(self, arm_id: str) -> dict[str, Any]:
        """azure-mgmt-eventgrid `Subscription`; a push endpoint URL shows as its base URL only."""
        props = {**self.properties}
        if self.delivery_mode == PUSH:
            push = {**props["deliveryConfiguration"]["push"]}
            dest = {**push["destination"], "properties": {**push["destination"]["properties"]}}
            url = dest["properties"].pop("endpointUrl", "")
            dest["properties"]["endpointBaseUrl"] = url.split("?", 1)[0]
            props["deliveryConfiguration"] = {"deliveryMode": PUSH, "push": {**push, "destination": dest}}
        return {"id": arm_id, "name": self.name, "type": SUBSCRIPTION_TYPE,
                "properties": {"provisioningState": "Succeeded", **props}}


def _ttl(value: Any, retention_days: int, problems: Problems) -> str:
    if value is None:
        return f"P{retention_days}D"
    seconds = duration_seconds(value)
    if seconds is None:
        problems.add(f"eventTimeToLive '{value}' is not an ISO 8601 duration such as P1D or PT10M.")
    elif seconds < MIN_TTL_SECONDS:
        problems.add(f"eventTimeToLive '{value}' is shorter than the minimum of 1 minute.")
    elif seconds > retention_days * 86400:
        problems.add(f"eventTimeToLive '{value}' exceeds the topic's event retention of {retention_days} days.")
    return str(value)


def _queue(value: Any, retention_days: int, problems: Problems) -> dict[str, Any]:
    f = fields(value)
    if f.get("deadletterdestinationwithresourceidentity") is not None:
        problems.add("deadLetterDestinationWithResourceIdentity is not supported: commgrid keeps dead-lettered"
                     " events in its store.")
    return {"receiveLockDurationInSeconds": ranged(f.get("receivelockdurationinseconds"),
                                                   "receiveLockDurationInSeconds", LOCK_SECONDS, problems),
            "maxDeliveryCount": ranged(f.get("maxdeliverycount"), "maxDeliveryCount", MAX_DELIVERY_COUNT, problems),
            "eventTimeToLive": _ttl(f.get("eventtimetolive"), retention_days, problems)}


def _push(value: Any, retention_days: int, problems: Problems) -> dict[str, Any]:
    f = fields(value)
    if f.get("deliverywithresourceidentity") is not None:
        problems.add("deliveryWithResourceIdentity is not supported: commgrid has no managed identities.")
    dest = fields(f.get("destination"))
    props = fields(dest.get("properties"))
    if dest.get("endpointtype") != "WebHook":
        problems.add(f"destination.endpointType '{dest.get('endpointtype')}' is not supported; use WebHook.")
    url = props.get("endpointurl")
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        problems.add("destination.properties.endpointUrl must be an http or https URL.")
    destination = {"endpointType": "WebHook", "properties": {
        k: v for k, v in (dest.get("properties") or {}).items() if v is not None}}
    return {"maxDeliveryCount": ranged(f.get("maxdeliverycount"), "maxDeliveryCount", MAX_DELIVERY_COUNT, problems),
            "eventTimeToLive": _ttl(f.get("eventtimetolive"), retention_days, problems),
            "destination": destination}


def _filters(value: Any, problems: Problems) -> dict[str, Any]:
    f = fields(value)
    types = f.get("includedeventtypes")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        problems.add("filtersConfiguration.includedEventTypes must be a list of strings.")
        types = None
    raw = f.get("filters") or []
    if not isinstance(raw, list):
        problems.add("filtersConfiguration.filters must be a list.")
        raw = []
    if len(raw) > MAX_FILTERS:
        problems.add(f"filtersConfiguration.filters may hold at most {MAX_FILTERS} filters; it has {len(raw)}.")
    filters = []
    for i, item in enumerate(raw):
        item_fields = fields(item)
        op = find_operator(str(item_fields.get("operatortype", "")))
        if op is None:
            problems.add(f"filters[{i}].operatorType '{item_fields.get('operatortype')}' is not supported; use one of"
                         f" {', '.join(OPERATOR_NAMES)}.", "InvalidAdvancedFilter")
            continue
        filters.append({**{k: v for k, v in item.items() if k.lower() != "operatortype"}, "operatorType": op})
    config: dict[str, Any] = {"filters": filters}
    if types is not None:
        config["includedEventTypes"] = types
    classic = {"advancedFilters": filters, **({"includedEventTypes": types} if types is not None else {})}
    try:
        compile_filter(classic, CLOUDEVENTS)
    except FilterError as exc:
        problems.details.extend(exc.details or [Detail(exc.code, exc.message)])
    return config


def validate_subscription(properties: Any, retention_days: int) -> dict[str, Any]:
    """Normalized ARM namespace subscription `properties` (defaults filled in, keys in camelCase)."""
    problems = Problems()
    if not isinstance(properties, dict):
        raise InvalidInput.from_problems([Detail("InvalidRequest", "The event subscription properties must be"
                                                 " a JSON object.")])
    f = fields(properties)
    config = fields(f.get("deliveryconfiguration"))
    mode = config.get("deliverymode") or QUEUE
    delivery: dict[str, Any] = {"deliveryMode": mode}
    if mode == QUEUE:
        delivery["queue"] = _queue(config.get("queue"), retention_days, problems)
    elif mode == PUSH:
        delivery["push"] = _push(config.get("push"), retention_days, problems)
    else:
        problems.add(f"deliveryMode '{mode}' is not supported; use Queue or Push.")
    if f.get("eventdeliveryschema") not in (None, "CloudEventSchemaV1_0"):
        problems.add(f"eventDeliverySchema '{f['eventdeliveryschema']}' is not supported; use CloudEventSchemaV1_0.")
    props = {"deliveryConfiguration": delivery, "eventDeliverySchema": "CloudEventSchemaV1_0",
             "filtersConfiguration": _filters(f.get("filtersconfiguration"), problems)}
    problems.raise_if_any("event subscription")
    return props
