"""The typed event subscription model: Event Grid's ARM `properties`, parsed and checked once.

`grid/validation.py` turns the JSON a client sends (ARM `properties`, any key casing, defaults missing) into a
`SubscriptionProperties`; everything else (routing, delivery, the ARM API, the CLI, the store) reads these
frozen objects and writes them back with `to_arm()`. The store keeps `to_arm()`'s JSON and reads it back with
`from_arm()`, which trusts its input: it is only ever given what `to_arm()` wrote.

See https://learn.microsoft.com/rest/api/eventgrid/controlplane/event-subscriptions/create-or-update for the
fields and their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from commgrid.events.envelope import EVENTGRID

# A subscription's status (see grid/subscriptions.py); only Active ones are routed and delivered to.
ACTIVE = "Active"
AWAITING = "AwaitingManualAction"
FAILED = "Failed"
CREATING = "Creating"
QUEUE = "Queue"  # a namespace queue subscription: routed, then received by pull consumers, never pushed


def base_url(url: str) -> str:
    """A webhook URL without its query string and fragment (where secrets such as `code=` live)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


class UnreadableProperties(ValueError):
    """Stored subscription properties that cannot be read back (changed by hand, or by an older commgrid)."""


#: What a subscription whose stored properties cannot be read carries instead (see `Subscription.unreadable`).
PLACEHOLDER_DESTINATION = ""


@dataclass(frozen=True, slots=True)
class DeliveryAttribute:
    """A header added to each delivery: a fixed (possibly secret) value, or one read from the event."""

    name: str
    kind: str  # "Static" | "Dynamic"
    value: str | None = None
    is_secret: bool = False
    source_field: str | None = None

    @property
    def source_path(self) -> tuple[str, ...]:
        return tuple((self.source_field or "").split("."))

    def to_arm(self, *, reveal: bool = True) -> dict[str, Any]:
        if self.kind == "Dynamic":
            return {"name": self.name, "type": "Dynamic", "properties": {"sourceField": self.source_field}}
        shown = self.value if reveal or not self.is_secret else None
        return {"name": self.name, "type": "Static", "properties": {"value": shown, "isSecret": self.is_secret}}


@dataclass(frozen=True, slots=True)
class WebHookDestination:
    endpoint_url: str
    max_events_per_batch: int = 1
    preferred_batch_size_kb: int = 64
    delivery_attributes: tuple[DeliveryAttribute, ...] = ()
    #: Fields Azure accepts that commgrid records but does not act on (Entra ids, minimum TLS version).
    recorded: tuple[tuple[str, Any], ...] = ()

    @property
    def endpoint_base_url(self) -> str:
        return base_url(self.endpoint_url)

    def to_arm(self, *, reveal: bool = True) -> dict[str, Any]:
        props: dict[str, Any] = {"maxEventsPerBatch": self.max_events_per_batch,
                                 "preferredBatchSizeInKilobytes": self.preferred_batch_size_kb}
        if reveal:
            props = {"endpointUrl": self.endpoint_url, **props}
        else:
            props = {"endpointBaseUrl": self.endpoint_base_url, **props}
        if self.delivery_attributes:
            props["deliveryAttributeMappings"] = [a.to_arm(reveal=reveal) for a in self.delivery_attributes]
        props.update(self.recorded)
        return {"endpointType": "WebHook", "properties": props}

    @classmethod
    def from_arm(cls, arm: dict[str, Any]) -> WebHookDestination:
        p = dict(arm["properties"])
        attributes = tuple(
            DeliveryAttribute(m["name"], m["type"], m["properties"].get("value"),
                              bool(m["properties"].get("isSecret", False)), m["properties"].get("sourceField"))
            for m in p.pop("deliveryAttributeMappings", []))
        return cls(endpoint_url=p.pop("endpointUrl"), max_events_per_batch=p.pop("maxEventsPerBatch", 1),
                   preferred_batch_size_kb=p.pop("preferredBatchSizeInKilobytes", 64),
                   delivery_attributes=attributes, recorded=tuple(p.items()))


@dataclass(frozen=True, slots=True)
class AdvancedFilter:
    """One advanced filter clause; `values` holds `values` (lists become tuples), `value` the single value."""

    operator_type: str
    key: str
    value: Any = None
    values: tuple[Any, ...] | None = None

    def to_arm(self) -> dict[str, Any]:
        arm: dict[str, Any] = {"operatorType": self.operator_type, "key": self.key}
        if self.values is not None:
            arm["values"] = _thaw(self.values)
        elif self.value is not None:
            arm["value"] = self.value
        return arm

    @classmethod
    def from_arm(cls, arm: dict[str, Any]) -> AdvancedFilter:
        values = arm.get("values")
        return cls(arm["operatorType"], arm["key"], arm.get("value"), None if values is None else _freeze(values))


@dataclass(frozen=True, slots=True)
class EventFilter:
    included_event_types: tuple[str, ...] | None = None
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    is_subject_case_sensitive: bool = False
    enable_advanced_filtering_on_arrays: bool | None = None
    advanced_filters: tuple[AdvancedFilter, ...] = ()

    def to_arm(self) -> dict[str, Any]:
        arm: dict[str, Any] = {"subjectBeginsWith": self.subject_begins_with,
                               "subjectEndsWith": self.subject_ends_with,
                               "isSubjectCaseSensitive": self.is_subject_case_sensitive}
        if self.included_event_types is not None:
            arm["includedEventTypes"] = list(self.included_event_types)
        if self.enable_advanced_filtering_on_arrays is not None:
            arm["enableAdvancedFilteringOnArrays"] = self.enable_advanced_filtering_on_arrays
        if self.advanced_filters:
            arm["advancedFilters"] = [f.to_arm() for f in self.advanced_filters]
        return arm

    @classmethod
    def from_arm(cls, arm: dict[str, Any]) -> EventFilter:
        types = arm.get("includedEventTypes")
        return cls(
            included_event_types=None if types is None else tuple(types),
            subject_begins_with=arm.get("subjectBeginsWith") or "",
            subject_ends_with=arm.get("subjectEndsWith") or "",
            is_subject_case_sensitive=bool(arm.get("isSubjectCaseSensitive", False)),
            enable_advanced_filtering_on_arrays=arm.get("enableAdvancedFilteringOnArrays"),
            advanced_filters=tuple(AdvancedFilter.from_arm(f) for f in arm.get("advancedFilters") or ()),
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_delivery_attempts: int = 30
    event_ttl_minutes: int = 1440

    def to_arm(self) -> dict[str, int]:
        return {"maxDeliveryAttempts": self.max_delivery_attempts,
                "eventTimeToLiveInMinutes": self.event_ttl_minutes}


@dataclass(frozen=True, slots=True)
class DeadLetterDestination:
    """Azure's `StorageBlob` (recorded only) or commgrid's `LocalDirectory` (files under `path`)."""

    endpoint_type: str
    resource_id: str | None = None
    blob_container_name: str | None = None
    path: str | None = None

    def to_arm(self) -> dict[str, Any]:
        if self.endpoint_type == "LocalDirectory":
            return {"endpointType": self.endpoint_type, "properties": {"path": self.path}}
        return {"endpointType": self.endpoint_type,
                "properties": {"resourceId": self.resource_id, "blobContainerName": self.blob_container_name}}

    @classmethod
    def from_arm(cls, arm: dict[str, Any]) -> DeadLetterDestination:
        p = arm.get("properties") or {}
        return cls(arm["endpointType"], p.get("resourceId"), p.get("blobContainerName"), p.get("path"))


@dataclass(frozen=True, slots=True)
class SubscriptionProperties:
    """An event subscription's settings, every default filled in."""

    destination: WebHookDestination
    filter: EventFilter = field(default_factory=EventFilter)
    event_delivery_schema: str = EVENTGRID
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    labels: tuple[str, ...] | None = None
    dead_letter_destination: DeadLetterDestination | None = None
    #: ISO 8601 in UTC with a `Z`, as ARM returns it.
    expiration_time_utc: str | None = None

    @property
    def endpoint_url(self) -> str:
        return self.destination.endpoint_url

    @property
    def expires_at(self) -> float | None:
        if self.expiration_time_utc is None:
            return None
        return datetime.fromisoformat(self.expiration_time_utc).timestamp()

    def to_arm(self, *, reveal: bool = True) -> dict[str, Any]:
        """ARM `properties`; without `reveal`, as ARM shows them (no endpoint query string, no secret values)."""
        arm: dict[str, Any] = {"destination": self.destination.to_arm(reveal=reveal), "filter": self.filter.to_arm(),
                               "eventDeliverySchema": self.event_delivery_schema,
                               "retryPolicy": self.retry_policy.to_arm()}
        if self.labels is not None:
            arm["labels"] = list(self.labels)
        if self.dead_letter_destination is not None:
            arm["deadLetterDestination"] = self.dead_letter_destination.to_arm()
        if self.expiration_time_utc is not None:
            arm["expirationTimeUtc"] = self.expiration_time_utc
        return arm

    @classmethod
    def from_arm(cls, arm: dict[str, Any]) -> SubscriptionProperties:
        """Read back what `to_arm()` wrote (the store's form); client input goes through `grid.validation`.

        Raises `UnreadableProperties` when the stored form lacks what a subscription needs.
        """
        try:
            return cls._from_arm(arm)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UnreadableProperties(f"{type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_arm(cls, arm: dict[str, Any]) -> SubscriptionProperties:
        retry = arm.get("retryPolicy") or {}
        dead_letter = arm.get("deadLetterDestination")
        labels = arm.get("labels")
        return cls(
            destination=WebHookDestination.from_arm(arm["destination"]),
            filter=EventFilter.from_arm(arm.get("filter") or {}),
            event_delivery_schema=arm.get("eventDeliverySchema", EVENTGRID),
            retry_policy=RetryPolicy(retry.get("maxDeliveryAttempts", 30), retry.get("eventTimeToLiveInMinutes", 1440)),
            labels=None if labels is None else tuple(labels),
            dead_letter_destination=None if dead_letter is None else DeadLetterDestination.from_arm(dead_letter),
            expiration_time_utc=arm.get("expirationTimeUtc"),
        )
