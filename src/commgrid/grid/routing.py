"""The catalog: every node's cache of topics and subscriptions, and which subscriptions an event goes to.

One change signal keeps every node's catalog fresh: the store's change counter, which moves in the same
transaction as any change to a topic, a subscription or an announced setting (such as an access key).

- A change made on this node invalidates the catalog at once: the next use reloads it.
- A serving node runs `watch()`: it reloads as soon as the store says the counter moved (PostgreSQL's
  LISTEN/NOTIFY, within milliseconds of the other node's commit), and also checks the counter every
  `recheck` seconds (0.1 s), which bounds the delay when notifications cannot be had (SQLite, shared by the
  CLI and the server) or are lost.
- A process that does not watch (the CLI) checks the counter when it uses the catalog, at most every
  `recheck` seconds.

Routing and the delivery worker read the same catalog; `/healthz` reports the counter value it reflects
(`catalogVersion`), so tests and scripts can wait for a change to be live on a node instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from commgrid.grid.filter_index import SubscriptionIndex
from commgrid.grid.filters import FilterError, compile_filter
from commgrid.grid.properties import ACTIVE, FAILED, QUEUE
from commgrid.grid.unusable import mark_unusable
from commgrid.store import Store
from commgrid.store.base import Missing, Route, Subscription, Topic

log = logging.getLogger("commgrid.grid")


def is_routable(sub: Subscription, now: float) -> bool:
    """Events go only to validated subscriptions that have not expired."""
    if sub.status not in (ACTIVE, QUEUE):
        return False
    expires = sub.properties.expires_at
    return expires is None or expires > now


class Catalog:
    """Cached topics, subscriptions and per-topic subscription indexes."""

    def __init__(self, store: Store, *, recheck: float = 0.1, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._recheck = recheck
        self._clock = clock
        #: The store's change counter as of the last reload (-1: never loaded).
        self.version = -1
        #: Grows with every reload, so users of `subscriptions()` know when to rebuild what they derive.
        self.generation = 0
        self._stale = True
        self._watching = False
        self._checked_at = 0.0
        self._topics: dict[str, Topic] = {}
        self._subscriptions: list[tuple[Subscription, Topic]] = []
        self._indexes: dict[str, SubscriptionIndex[str]] = {}
        self._expiring: list[float] = []
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[], Awaitable[None]]] = []

    def invalidate(self) -> None:
        """Reload on next use (after this node changed a topic or subscription)."""
        self._stale = True
        self._changed.set()

    def on_reload(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Call `listener` after each reload (for state derived from what the counter covers)."""
        self._listeners.append(listener)

    async def watch(self) -> None:
        """Keep the catalog fresh until cancelled (a serving node's background task)."""
        stop = await self._store.watch_changes(self._changed.set)
        self._watching = True
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self._recheck)
                self._changed.clear()
                try:
                    await self.refresh()
                except Exception:  # the store may be briefly unreachable; the next round tries again
                    log.exception("catalog refresh failed", extra={"action": "catalog_refresh_failed"})
        finally:
            self._watching = False
            if stop is not None:
                await stop()

    async def fresh(self) -> None:
        """Make sure the catalog reflects the store (cheap when nothing changed)."""
        now = self._clock()
        due = self._expiring and self._expiring[0] <= now
        if not self._stale and not due and (self._watching or now - self._checked_at < self._recheck):
            return
        await self.refresh()

    async def refresh(self, *, force: bool = False) -> None:
        """Reload if the change counter moved, this node changed something, a subscription expired, or `force`."""
        async with self._lock:
            now = self._clock()
            version = await self._store.subscriptions_version()
            due = bool(self._expiring and self._expiring[0] <= now)
            if force or self._stale or due or version != self.version:
                self._stale = False  # before reading: a change made during the reload marks it stale again
                await self._reload(now)
                self.version = version
                self.generation += 1
                for listener in self._listeners:
                    await listener()
            self._checked_at = now

    async def _reload(self, now: float) -> None:
        topics = {t.name.lower(): t for t in await self._store.list_topics()}
        subscriptions: list[tuple[Subscription, Topic]] = []
        indexes: dict[str, SubscriptionIndex[str]] = {}
        expiring: list[float] = []
        for sub in await self._store.list_subscriptions():
            topic = topics.get(sub.topic.lower())
            if topic is None:
                continue
            if sub.unreadable:  # it can neither be routed to nor delivered to: say so where its owner looks
                if sub.status != FAILED:
                    await mark_unusable(self._store, sub, f"its stored properties are incomplete ({sub.unreadable}).")
                continue
            subscriptions.append((sub, topic))
            if not is_routable(sub, now):
                continue
            try:
                compiled = compile_filter(sub.properties.filter.to_arm(), topic.input_schema)
            except FilterError as exc:  # validated on create; one that no longer compiles fails visibly
                await mark_unusable(self._store, sub, f"its filter does not compile ({exc.message}).")
                continue
            indexes.setdefault(topic.name.lower(), SubscriptionIndex()).add(sub.name, compiled)
            if sub.properties.expires_at is not None:
                expiring.append(sub.properties.expires_at)
        self._topics, self._subscriptions, self._indexes = topics, subscriptions, indexes
        self._expiring = sorted(expiring)

    async def topic(self, name: str) -> Topic:
        """The topic named `name` (case-insensitive); `Missing` if there is none."""
        await self.fresh()
        topic = self._topics.get(name.lower())
        if topic is None:
            topic = await self._store.get_topic(name)  # created on another node since the last check
            self.invalidate()
        return topic

    async def topics(self) -> list[Topic]:
        await self.fresh()
        return list(self._topics.values())

    def subscriptions(self) -> list[tuple[Subscription, Topic]]:
        """Every subscription with its topic, as of the last reload (`generation`)."""
        return self._subscriptions

    def routes(self, topic: Topic, events: list[dict[str, Any]]) -> list[Route]:
        """One route per (event, matching subscription)."""
        index = self._indexes.get(topic.name.lower())
        if index is None:
            return []
        schema = topic.input_schema
        return [Route(i, name) for i, event in enumerate(events) for name in index.match(event, schema)]


__all__ = ["Catalog", "Missing", "is_routable"]
