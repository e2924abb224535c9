"""The live event stream behind the dashboard's server-sent events.

While at least one browser watches, one task reads the newest events every `POLL` seconds (one indexed read of
at most `WINDOW` rows, whatever the publish rate) and hands their summaries to every watcher. Reading the store
rather than hooking the publish path keeps publishes unaffected and shows events from every node and the CLI.
When more than `WINDOW` events arrive between reads, the stream shows the newest and says how many it skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from commgrid.console.journey import event_summary
from commgrid.store import Store
from commgrid.store.base import EventQuery

log = logging.getLogger("commgrid.console")

POLL = 1.0
WINDOW = 50
BACKLOG = 50  # updates a slow watcher may fall behind before it misses the oldest


class EventFeed:
    """Fans new events out to watchers' queues; runs only while someone watches."""

    def __init__(self, store: Store, *, poll: float = POLL) -> None:
        self._store = store
        self._poll = poll
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: int | None = None

    def watch(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BACKLOG)
        self._watchers.add(queue)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return queue

    def unwatch(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.discard(queue)

    async def close(self) -> None:
        self._watchers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            while self._watchers:
                try:
                    await self._read()
                except Exception:  # the store may be briefly unavailable; the next round tries again
                    log.exception("live feed read failed", extra={"action": "console_feed_failed"})
                await asyncio.sleep(self._poll)
        finally:
            self._task, self._last = None, None

    async def _read(self) -> None:
        newest = await self._store.search_events(EventQuery(), limit=WINDOW)
        if self._last is None:
            self._last = newest[0].seq if newest else 0
            return
        fresh = [e for e in reversed(newest) if e.seq > self._last]
        if not fresh:
            return
        skipped = fresh[0].seq - self._last - 1 if len(fresh) == len(newest) else 0
        self._last = fresh[-1].seq
        update = {"events": [event_summary(e) for e in fresh], "skipped": max(skipped, 0)}
        for queue in list(self._watchers):
            if queue.full():  # a slow watcher misses the oldest update rather than holding the others up
                queue.get_nowait()
            queue.put_nowait(update)
