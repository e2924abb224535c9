"""Event subscriptions: their life cycle, their validation handshake, and their ARM shape.

A subscription's settings are a typed `SubscriptionProperties` (`grid/properties.py`), parsed from ARM
`properties` once by `grid/validation.py`; the secret `endpointUrl` is kept and rendered only as
`endpointBaseUrl`. Its `status` says whether it gets events:

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

import builtins
import contextlib
import copy
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from commgrid.config import Settings
from commgrid.errors import BadRequest, Conflict, NotFound, from_store
from commgrid.events.envelope import CLOUDEVENTS, convert
from commgrid.grid.deadletter import dead_letter_event
from commgrid.grid.filters import compile_filter
from commgrid.grid.handshake import (
    HandshakeResult,
    send_deleted_event,
    validate_cloudevents,
    validate_eventgrid,
    validation_event,
)
from commgrid.grid.properties import ACTIVE, AWAITING, CREATING, FAILED, SubscriptionProperties
from commgrid.grid.service import Grid
from commgrid.grid.timing import Timing
from commgrid.grid.validation import subject_warning, validate_properties
from commgrid.jsonfields import fields
from commgrid.store import Store
from commgrid.store.base import DeadLetter, Document, Missing, Subscription, Topic
from commgrid.timestamps import azure_time

log = logging.getLogger("commgrid.subscriptions")

PROVISIONING_STATE = {ACTIVE: "Succeeded", AWAITING: "AwaitingManualAction", FAILED: "Failed", CREATING: "Creating"}
VALIDATION_DOCS = "eventsubscription-validation"

_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")


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
        props = sub.properties.to_arm(reveal=False)
        topic_id = self.grid.deployment.system_topic_arm_id if topic.kind == "system" else topic.arm_id
        properties = {"topic": topic_id, "provisioningState": PROVISIONING_STATE.get(sub.status, sub.status), **props}
        kind = "systemTopics/eventSubscriptions" if topic.kind == "system" else "eventSubscriptions"
        return {"id": self.arm_id(sub, topic), "name": sub.name, "type": f"Microsoft.EventGrid/{kind}",
                "properties": properties}

    async def full_url(self, topic_name: str, name: str) -> str:
        """The endpoint URL with its query string (ARM `getFullUrl`)."""
        return (await self.get(topic_name, name)).properties.endpoint_url

    async def explain(self, topic_name: str, name: str, event: dict[str, Any]) -> str | None:
        """None if `event` (in the topic's input schema) passes the subscription's filter, else why not."""
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        return compile_filter(sub.properties.filter.to_arm(), topic.input_schema).explain(event)

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

    async def put(self, topic_name: str, name: str, properties: dict[str, Any]) -> tuple[Saved, bool]:
        """ARM PUT: create, or replace every property of an existing subscription; True if it was created."""
        topic = await self.grid.get_topic(topic_name)
        try:
            existing = await self.store.get_subscription(topic.name, name)
        except Missing:
            existing = None
        if existing is None or existing.status == FAILED:
            return await self.create(topic.name, name, properties), True
        return await self.update(topic.name, name, properties, replace=True), False

    async def update(self, topic_name: str, name: str, changes: dict[str, Any], *, replace: bool = False) -> Saved:
        """Replace the given top-level properties (ARM PATCH), or all of them (`replace`, ARM PUT).

        A destination without endpointUrl keeps the current one. The handshake runs again when the endpoint or
        the delivery schema changes, and for a subscription that failed or never finished one (its creator died
        mid-handshake).
        """
        topic = await self.grid.get_topic(topic_name)
        sub = await self._get(topic, name)
        old = sub.properties
        sub.properties = validate_properties(_merge(old, changes, replace=replace), topic.input_schema, self.clock())
        sub.updated_at = self.clock()
        new = sub.properties
        revalidate = (sub.status in (FAILED, CREATING) or new.endpoint_url != old.endpoint_url
                      or new.event_delivery_schema != old.event_delivery_schema)
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
        try:
            await self.store.delete_subscription(topic.name, sub.name)
        except Missing as exc:  # deleted concurrently
            raise from_store(exc) from None
        with contextlib.suppress(Missing):
            await self.store.delete_document(VALIDATION_DOCS, _doc_key(sub))
        self.grid.catalog.invalidate()
        log.info("subscription deleted", extra={"action": "subscription_deleted", "topic": topic.name,
                                                "subscription": sub.name})
        if sub.status == ACTIVE:
            timeout = min(self.timing.response_timeout, 5.0)
            async with aiohttp.ClientSession() as session:
                await send_deleted_event(session, sub.properties.endpoint_url, sub.name, self.arm_id(sub, topic),
                                         topic.arm_id, sub.properties.event_delivery_schema, timeout=timeout)

    async def validate_manually(self, topic_name: str, name: str, validation_id: str, token: str) -> str:
        """The GET on a validationUrl (endpoint validation article): activates a subscription awaiting it
        within the window."""
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
    ) -> builtins.list[DeadLetter]:
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
        """The dead-lettered event as Event Grid writes it, in the subscription's delivery schema
        (delivery-and-retry)."""
        topic = await self.grid.get_topic(record.topic)
        try:
            schema = (await self.store.get_subscription(topic.name, record.subscription)).properties.\
                event_delivery_schema
        except Missing:
            schema = topic.input_schema
        event = convert(orjson.loads(record.event.body), topic.input_schema, schema)
        return dead_letter_event(event, schema, reason=record.reason, attempts=record.attempts,
                                 last_outcome=record.last_outcome, last_status=record.last_status,
                                 published_at=record.event.published_at, last_attempt_at=record.last_attempt_at)

    async def redeliver(self, ids: builtins.list[int]) -> int:
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
        return Saved(sub, message, await self._warnings(topic, sub.properties))

    async def _handshake(self, topic: Topic, sub: Subscription) -> HandshakeResult:
        url = sub.properties.endpoint_url
        timeout = self.timing.response_timeout
        async with aiohttp.ClientSession() as session:
            if sub.properties.event_delivery_schema == CLOUDEVENTS:
                doc: dict[str, Any] = {"state": CREATING, "message": "Validation handshake in progress."}
                await self.store.put_document(Document(VALIDATION_DOCS, _doc_key(sub), doc))  # no GET link
                result = await validate_cloudevents(session, url, timeout=timeout)
            else:
                doc = await self._new_validation(topic, sub)
                event = validation_event(topic.arm_id, doc["code"], doc["validationUrl"])
                result = await validate_eventgrid(session, url, sub.name, event, timeout=timeout,
                                                  retry_after=self.timing.handshake_retry,
                                                  window=self.timing.validation_window_words)
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
        """A subscription awaiting the manual GET fails once the window has passed (endpoint validation article)."""
        if sub.status != AWAITING:
            return sub
        doc = await self._validation(sub)
        if doc.get("expiresAt", float("inf")) > self.clock():
            return sub
        endpoint = sub.properties.destination.endpoint_base_url
        message = (f"Webhook validation handshake failed for {endpoint}: no Http GET"
                   f" on the validation url within {self.timing.validation_window_words}. Create the subscription"
                   " again.")
        await self._save_state(sub, FAILED, message, doc)
        return sub

    async def _warnings(self, topic: Topic, props: SubscriptionProperties) -> builtins.list[str]:
        filt = props.filter
        begins = filt.subject_begins_with
        if not begins:
            return []
        types = {t.lower() for t in filt.included_event_types or ()}
        types = set() if "all" in types else types
        samples: list[tuple[str, bool]] = []
        if topic.kind == "system":
            samples += [(subject, True) for t, subject in self.grid.system_event_subjects.items()
                        if not types or t.lower() in types]
        samples += [(e.subject, False) for e in await self.store.list_events(topic.name, limit=200)
                    if not types or e.type.lower() in types]
        warning = subject_warning(begins, filt.is_subject_case_sensitive, samples, topic.name)
        return [warning] if warning else []


def _merge(old: SubscriptionProperties, changes: dict[str, Any], *, replace: bool = False) -> dict[str, Any]:
    """The given top-level properties replace the old ones (or all of them); a destination without endpointUrl
    keeps the old one, so a resource read (which shows only endpointBaseUrl) can be written back."""
    given = {k: v for k, v in changes.items() if k.lower() not in ("topic", "provisioningstate")}
    merged = given if replace else {**old.to_arm(), **given}
    key = next((k for k in given if k.lower() == "destination"), None)
    if key is not None and isinstance(given[key], dict):
        destination = copy.deepcopy(given[key])
        props = next((v for k, v in destination.items() if k.lower() == "properties" and isinstance(v, dict)), None)
        if props is None:
            props = destination["properties"] = {}
        if not fields(props).get("endpointurl"):
            props["endpointUrl"] = old.endpoint_url
        merged[key] = destination
    return merged


def _doc_key(sub: Subscription) -> str:
    return f"{sub.topic}/{sub.name}".lower()
