"""Routing: the topics and subscription filters this node knows, and which subscriptions an event goes to.

Every node caches topics and compiled filter indexes and reloads them when the store's change counter
moves (checked at most every `recheck` seconds, and at once after a local change), so several nodes on one
PostgreSQL database agree within that interval without a store read on every publish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from commgrid.grid.filters import FilterError, SubscriptionIndex, compile_filter
from commgrid.grid.unusable import mark_unusable
from commgrid.store import Store
from commgrid.store.base import Missing, Route, Subscription, Topic

ACTIVE = "Active"
log = logging.getLogger("commgrid.grid")


def is_routable(sub: Subscription, now: float) -> bool:
    """Events go only to validated subscriptions that have not expired."""
    if sub.status != ACTIVE:
        return False
    expires = sub.properties.get("expirationTimeUtc")
    if expires:
        try:
            return datetime.fromisoformat(expires).timestamp() > now
        except ValueError:
            return True
    return True


class Catalog:
    """Cached topics and per-topic subscription indexes."""

    def __init__(self, store: Store, *, recheck: float = 0.1, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._recheck = recheck
        self._clock = clock
        self._version = -1
        self._checked_at = 0.0
        self._topics: dict[str, Topic] = {}
        self._indexes: dict[str, SubscriptionIndex[str]] = {}
        self._expiring: list[float] = []
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Reload on next use (after this node changed a topic or subscription)."""
        self._checked_at = 0.0
        self._version = -1

    async def _fresh(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._recheck and not (self._expiring and self._expiring[0] <= now):
            return
        async with self._lock:
            if self._clock() - self._checked_at < self._recheck and self._version >= 0:
                return
            version = await self._store.subscriptions_version()
            if version != self._version or (self._expiring and self._expiring[0] <= now):
                await self._reload(now)
                self._version = version
            self._checked_at = self._clock()

    async def _reload(self, now: float) -> None:
        topics = {t.name.lower(): t for t in await self._store.list_topics()}
        indexes: dict[str, SubscriptionIndex[str]] = {}
        expiring: list[float] = []
        for sub in await self._store.list_subscriptions():
            topic = topics.get(sub.topic.lower())
            if topic is None or not is_routable(sub, now):
                continue
            try:
                compiled = compile_filter(sub.properties.get("filter"), topic.input_schema)
            except FilterError as exc:  # validated on create; one that no longer compiles fails visibly
                await mark_unusable(self._store, sub, f"its filter does not compile ({exc.message}).")
                continue
            indexes.setdefault(topic.name.lower(), SubscriptionIndex()).add(sub.name, compiled)
            if sub.properties.get("expirationTimeUtc"):
                expiring.append(datetime.fromisoformat(sub.properties["expirationTimeUtc"]).timestamp())
        self._topics, self._indexes, self._expiring = topics, indexes, sorted(expiring)

    async def topic(self, name: str) -> Topic:
        """The topic named `name` (case-insensitive); `Missing` if there is none."""
        await self._fresh()
        topic = self._topics.get(name.lower())
        if topic is None:
            topic = await self._store.get_topic(name)  # created on another node since the last check
            self.invalidate()
        return topic

    async def topics(self) -> list[Topic]:
        await self._fresh()
        return list(self._topics.values())

    def routes(self, topic: Topic, events: list[dict[str, Any]]) -> list[Route]:
        """One route per (event, matching subscription)."""
        index = self._indexes.get(topic.name.lower())
        if index is None:
            return []
        schema = topic.input_schema
        return [Route(i, name) for i, event in enumerate(events) for name in index.match(event, schema)]


__all__ = ["Catalog", "Missing", "is_routable"]
