"""Retention: a serving node's background sweep of events and dead letters older than their topic keeps them.

A topic keeps its events `retentionMinutes` after publishing and its dead letters as long after dead-lettering
(its `commgrid` options); by default `DEFAULT_RETENTION_MINUTES`, the longest event time to live a subscription
can have (1440 minutes) plus a margin of `RETENTION_MARGIN_MINUTES` for retries in flight and for replaying a
handler's last day. Durations are divided by `--time-scale`.

The sweep deletes in batches of `BATCH` per short transaction and yields between them, so publishing (which
shares SQLite's one writer) waits for at most one batch. It never deletes an event with a pending delivery (a
queue lock included) or a dead-letter record: those events stay until delivered, or until their dead letters
are swept. The record of delivery attempts (the console's history) is kept as long as events are. On
PostgreSQL every node sweeps; batches skip rows another node holds. Publish dedupe records past their window
are forgotten by the same sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from commgrid.grid.timing import Timing
from commgrid.store import Store
from commgrid.store.base import Topic

log = logging.getLogger("commgrid.retention")

EVENT_TTL_MINUTES = 1440  # the longest eventTimeToLiveInMinutes Event Grid allows
RETENTION_MARGIN_MINUTES = 60
DEFAULT_RETENTION_MINUTES = EVENT_TTL_MINUTES + RETENTION_MARGIN_MINUTES
BATCH = 500
INTERVAL = 60.0  # seconds between sweeps (scaled, within the bounds below)
MIN_INTERVAL, MAX_INTERVAL = 0.2, 60.0


def retention_minutes(topic: Topic) -> int:
    return topic.options.retention_minutes or DEFAULT_RETENTION_MINUTES


@dataclass(slots=True)
class SweepTotals:
    events: int = 0
    dead_letters: int = 0
    attempts: int = 0
    published_ids: int = 0


class RetentionSweeper:
    """Deletes what topics no longer keep, every `interval` seconds, until stopped."""

    def __init__(self, store: Store, timing: Timing, *, clock: Callable[[], float] = time.time,
                 batch: int = BATCH) -> None:
        self._store = store
        self._timing = timing
        self._clock = clock
        self._batch = batch
        self.interval = min(max(timing.scaled(INTERVAL), MIN_INTERVAL), MAX_INTERVAL)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the store is away for a moment: the next sweep catches up
                log.exception("retention sweep failed", extra={"action": "retention_sweep_failed"})
            await asyncio.sleep(self.interval)

    async def sweep(self) -> SweepTotals:
        """One pass over every topic; returns what it deleted."""
        totals = SweepTotals()
        for topic in await self._store.list_topics():
            cutoff = self._clock() - self._timing.scaled(retention_minutes(topic) * 60.0)
            while True:
                swept = await self._store.sweep_retention(topic.name, cutoff, cutoff, self._batch)
                totals.events += swept.events
                totals.dead_letters += swept.dead_letters
                totals.attempts += swept.attempts
                await asyncio.sleep(0)  # publishing goes between batches
                if max(swept.events, swept.dead_letters, swept.attempts) < self._batch:
                    break
        while (forgotten := await self._store.forget_published_ids(self._clock(), self._batch)) > 0:
            totals.published_ids += forgotten
            await asyncio.sleep(0)
            if forgotten < self._batch:
                break
        if totals.events or totals.dead_letters or totals.attempts:
            await self._store.reclaim_space()
            log.info("retention sweep", extra={"action": "retention_swept", "events": totals.events,
                                               "dead_letters": totals.dead_letters,
                                               "attempts": totals.attempts,
                                               "published_ids": totals.published_ids})
        return totals
