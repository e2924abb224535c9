"""The Grid: topics and the publish path (validate → persist with routes → acknowledge).

The HTTP API, the CLI and the Communication Services APIs all publish through `Grid.publish`, so every
event takes the same path into the store, whatever produced it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from commgrid.deployment import Deployment, new_key
from commgrid.errors import BadRequest, CommgridError, Conflict, NotFound, from_store
from commgrid.events.envelope import EVENTGRID, SCHEMAS, encode_event, identity, validate_events
from commgrid.grid.auth import authenticate
from commgrid.grid.committer import GroupCommitter
from commgrid.grid.routing import Catalog
from commgrid.grid.topic_options import TopicOptions
from commgrid.metrics import Metrics
from commgrid.store import Store
from commgrid.store.base import (
    AlreadyExists,
    DocumentWrite,
    Missing,
    NewEvent,
    Route,
    StoredEvent,
    StoreError,
    Topic,
    VersionConflict,
)

log = logging.getLogger("commgrid.grid")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")


class Grid:
    """Topics, publishing and event history of one deployment."""

    def __init__(self, store: Store, deployment: Deployment, *, clock: Callable[[], float] = time.time,
                 time_scale: float = 1.0) -> None:
        self.store = store
        self.deployment = deployment
        self.clock = clock
        self.time_scale = time_scale  # divides the dedupe window, like every duration (grid/timing.py)
        self.catalog = Catalog(store, clock=clock)
        self.committer = GroupCommitter(store, clock=clock)
        self.metrics: Metrics | None = None  # set by a serving node
        # Event type → subject template of the system topic's events, registered by their source (ACS), so
        # subscription checks can warn about a subjectBeginsWith no event would start with.
        self.system_event_subjects: dict[str, str] = {}

    async def start(self) -> None:
        """Make sure the Communication Services system topic exists."""
        d = self.deployment
        with contextlib.suppress(AlreadyExists):
            await self.store.create_topic(Topic(name=d.system_topic_name, arm_id=d.acs_arm_id, kind="system",
                                                input_schema=EVENTGRID, created_at=self.clock()))
        self.catalog.invalidate()

    # topics ----------------------------------------------------------------------------------------------
    async def create_topic(self, name: str, input_schema: str = EVENTGRID, *, location: str = "",
                           tags: dict[str, str] | None = None, options: TopicOptions | None = None) -> Topic:
        if not _TOPIC_NAME.match(name):
            raise BadRequest(f"Topic name '{name}' is invalid: use 3-50 letters, digits and '-'.",
                             code="InvalidTopicName")
        if input_schema not in SCHEMAS:
            raise BadRequest(f"Input schema '{input_schema}' is not supported; use one of {', '.join(SCHEMAS)}.",
                             code="InvalidInputSchema")
        topic = Topic(name=name, arm_id=self.deployment.topic_arm_id(name), input_schema=input_schema,
                      key1=new_key(), key2=new_key(), created_at=self.clock(), location=location, tags=tags or {},
                      options=options or TopicOptions())
        try:
            await self.store.create_topic(topic)
        except AlreadyExists:
            raise Conflict(f"Topic '{name}' already exists.", code="ResourceAlreadyExists") from None
        self.catalog.invalidate()
        return topic

    async def get_topic(self, name: str) -> Topic:
        try:
            return await self.store.get_topic(name)
        except Missing:
            raise NotFound(f"Topic '{name}' was not found.", code="ResourceNotFound") from None

    async def list_topics(self) -> list[Topic]:
        """Custom topics and the system topic (the topics backing namespace topics are the namespaces' own)."""
        return [t for t in await self.store.list_topics() if t.kind != "namespace"]

    async def update_topic(self, name: str, *, location: str | None = None, tags: dict[str, str] | None = None,
                           input_schema: str | None = None, options: dict[str, int | None] | None = None) -> Topic:
        """Change a topic's ARM `location` or `tags`, or set or unset (None) some of its commgrid `options`;
        its input schema cannot change (Azure's rule)."""
        topic = await self.get_topic(name)
        if input_schema is not None and input_schema.lower() != topic.input_schema.lower():
            raise BadRequest(f"The input schema of topic '{topic.name}' is {topic.input_schema}; it cannot be"
                             f" changed to {input_schema}. Create a new topic instead.", code="InvalidRequest")
        topic.location = topic.location if location is None else location
        topic.tags = topic.tags if tags is None else tags
        topic.options = topic.options if options is None else topic.options.merged(options)
        await self._save_topic(topic)
        return topic

    async def delete_topic(self, name: str) -> None:
        topic = await self.get_topic(name)
        if topic.kind == "system":
            raise BadRequest(f"'{name}' is the Communication Services system topic; it cannot be deleted.")
        try:
            await self.store.delete_topic(topic.name)
        except Missing as exc:  # deleted concurrently
            raise from_store(exc) from None
        self.catalog.invalidate()

    async def regenerate_key(self, name: str, key_name: str) -> Topic:
        topic = await self.get_topic(name)
        if key_name not in ("key1", "key2"):
            raise BadRequest(f"Key name '{key_name}' is invalid; use key1 or key2.")
        setattr(topic, key_name, new_key())
        await self._save_topic(topic)
        return topic

    async def _save_topic(self, topic: Topic) -> None:
        try:
            await self.store.update_topic(topic)
        except Missing as exc:  # deleted concurrently
            raise from_store(exc) from None
        self.catalog.invalidate()

    # publishing ------------------------------------------------------------------------------------------
    async def authorize_publish(
        self, topic_name: str, url: str | Callable[[], str], headers: Mapping[str, str], query: Mapping[str, str]
    ) -> Topic:
        """The topic a publisher may post to with these credentials (401 / 404 otherwise); `url` may be a
        function giving it (only SAS tokens need it)."""
        topic = await self._published_topic(topic_name)
        authenticate(url, headers, query, (topic.key1, topic.key2), datetime.now(UTC))
        return topic

    async def _published_topic(self, name: str) -> Topic:
        try:
            topic = await self.catalog.topic(name)
        except Missing:
            raise NotFound(f"The topic '{name}' was not found.", code="NotFound") from None
        if topic.kind == "system":
            raise NotFound(f"'{name}' is a system topic: its events come from Communication Services and it has"
                           " no publishing endpoint.", code="NotFound")
        return topic

    async def publish(self, topic: Topic | str, events: list[dict[str, Any]]) -> None:
        """Validate, persist and route `events`; returns once they are durable."""
        await self._publish(topic, events, None)

    async def publish_change(self, topic: Topic | str, events: list[dict[str, Any]],
                             documents: list[DocumentWrite]) -> None:
        """`publish`, with document writes in the same transaction as the events: all or nothing.

        A document not at its expected version raises `VersionConflict` and nothing is written (the caller
        decides the change again on the new state).
        """
        await self._publish(topic, events, documents)

    async def _publish(self, topic: Topic | str, events: list[dict[str, Any]],
                       documents: list[DocumentWrite] | None) -> None:
        if isinstance(topic, str):
            topic = await self.catalog.topic(topic)
        if self.metrics is None:
            await self._store_events(topic, events, documents)
            return
        started = time.perf_counter()
        try:
            routes = await self._store_events(topic, events, documents)
        except CommgridError as exc:
            self.metrics.publish_failed(topic.name, len(events), exc.code)
            raise
        self.metrics.published(topic.name, len(events), time.perf_counter() - started,
                               [r.subscription for r in routes])

    async def _store_events(self, topic: Topic, events: list[dict[str, Any]],
                            documents: list[DocumentWrite] | None) -> list[Route]:
        sent, events = events, validate_events(events, topic.input_schema, topic.arm_id)
        schema = topic.input_schema
        window = topic.options.dedupe_window_minutes
        dedupe = window * 60.0 / self.time_scale if window else 0.0
        new = [NewEvent(topic.name, *identity(e, schema), encode_event(e, i, sent[i]), dedupe)
               for i, e in enumerate(events)]
        await self.catalog.fresh()  # a Topic passed in (the CLI's publish) has not loaded the catalog
        routes = self.catalog.routes(topic, events)
        try:
            if documents is None:
                await self.committer.commit(new, routes)
            else:
                await self.committer.commit_change(documents, new, routes)
        except VersionConflict:
            raise  # the caller's signal to decide again, not a failure
        except StoreError as exc:  # counted as a failed publish, answered as the store's failure
            raise from_store(exc) from exc
        if log.isEnabledFor(logging.INFO):
            log.info("events published", extra={"action": "events_published", "topic": topic.name,
                                                "count": len(new), "deliveries": len(routes)})
        return routes

    # history ---------------------------------------------------------------------------------------------
    async def list_events(self, topic_name: str, limit: int = 50) -> list[StoredEvent]:
        topic = await self.get_topic(topic_name)
        return await self.store.list_events(topic.name, limit=limit)

    async def find_event(self, topic_name: str, id_or_prefix: str) -> StoredEvent:
        """An event by id, or by the start of its id when that is unique among the topic's recent events."""
        try:
            return await self.get_event(topic_name, id_or_prefix)
        except NotFound:
            pass
        found = [e for e in await self.list_events(topic_name, limit=10_000) if e.id.startswith(id_or_prefix)]
        if len({e.id for e in found}) == 1:
            return found[0]
        if found:
            raise BadRequest(f"'{id_or_prefix}' starts {len({e.id for e in found})} event ids of topic"
                             f" '{topic_name}'; give more of the id.", code="AmbiguousEventId")
        raise NotFound(f"No event of topic '{topic_name}' has an id starting '{id_or_prefix}'.")

    async def get_event(self, topic_name: str, event_id: str) -> StoredEvent:
        topic = await self.get_topic(topic_name)
        try:
            return await self.store.get_event(topic.name, event_id)
        except Missing:
            raise NotFound(f"Event '{event_id}' was not found in topic '{topic.name}'.") from None
