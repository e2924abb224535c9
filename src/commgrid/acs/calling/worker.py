"""The calling worker of a serving node: fires due timers (simulated durations) and posts queued callback
events to apps, in order per callback URL, with retries.

Both queues are store documents keyed so that key order is due order (timers) or creation order (callbacks).
A node leases a row (an optimistic write of `leaseUntil`) before acting on it, so several nodes share the work
and a crashed node's rows are taken over when its lease ends (at least once). Every few seconds the worker also
sweeps calls for effects a crash left pending (`CallRepository.sweep`). A callback that fails is retried
after 5, 10, 30, 60, 300 and 600 seconds (divided by the time scale); later callbacks to the same URL wait
behind it, keeping the service's order; after the last retry it is dropped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from commgrid.acs.calling.model import CALLBACKS, TIMERS
from commgrid.store import Store
from commgrid.store.base import Document, Missing, VersionConflict

log = logging.getLogger("commgrid.calling")

RETRIES = (5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
LEASE = 30.0
POST_TIMEOUT = 10.0

SWEEP_EVERY = 5.0  # seconds between sweeps for effects a crash left pending

Dispatch = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class CallingWorker:
    def __init__(self, store: Store, dispatch: Dispatch, *, time_scale: float, clock: Callable[[], float],
                 sweep: Callable[[], Awaitable[int]], poll_interval: float = 0.25) -> None:
        self.store = store
        self.dispatch = dispatch
        self.sweep = sweep
        self.time_scale = time_scale
        self.clock = clock
        self.poll_interval = poll_interval
        self.owner = f"calls-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT))
        self._task = asyncio.create_task(self._run(), name="commgrid-calling")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        next_sweep = self.clock()
        while True:
            due: list[float] = []
            try:
                if self.clock() >= next_sweep:
                    next_sweep = self.clock() + SWEEP_EVERY
                    await self.sweep()
                due = [d for d in (await self.fire_timers(), await self.post_callbacks()) if d is not None]
            except Exception:  # the store may be briefly unavailable: retry on the next round
                log.exception("calling round failed", extra={"action": "calling_round_failed"})
            wait = min([self.poll_interval] + [max(0.0, d - self.clock()) for d in due])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def _lease(self, collection: str, doc: Document, now: float) -> Document | None:
        leased = doc.value | {"leaseUntil": now + LEASE, "owner": self.owner}
        try:
            return await self.store.put_document(Document(collection, doc.key, leased), expect_version=doc.version)
        except (VersionConflict, Missing):
            return None  # another node took it

    # Timers ---------------------------------------------------------------------------------------------------
    async def fire_timers(self) -> float | None:
        """Fire every due timer; return when the next one is due."""
        while True:
            page = await self.store.list_documents(TIMERS, limit=50)
            now = self.clock()
            due = [d for d in page if d.value["dueAt"] <= now and d.value.get("leaseUntil", 0) <= now]
            if not due:
                later = [d.value["dueAt"] for d in page if d.value["dueAt"] > now]
                return min(later) if later else None
            for doc in due:
                if await self._lease(TIMERS, doc, now) is None:
                    continue
                try:
                    await self.dispatch(doc.value["action"], doc.value["callId"], doc.value["args"])
                except Exception:
                    log.exception("call timer failed", extra={"action": "call_timer_failed"})
                with contextlib.suppress(Missing):
                    await self.store.delete_document(TIMERS, doc.key)

    # Callbacks ------------------------------------------------------------------------------------------------
    async def post_callbacks(self) -> float | None:
        """Post due callbacks, the oldest first per URL; return when a retry is next due."""
        by_url: dict[str, list[Document]] = {}
        async for doc in self.store.scan_documents(CALLBACKS, batch=200):
            by_url.setdefault(doc.value["url"], []).append(doc)
        results = await asyncio.gather(*(self._post_in_order(queue) for queue in by_url.values()))
        pending = [r for r in results if r is not None]
        return min(pending) if pending else None

    async def _post_in_order(self, queue: list[Document]) -> float | None:
        for doc in queue:
            now = self.clock()
            if doc.value["dueAt"] > now or doc.value.get("leaseUntil", 0) > now:
                return max(doc.value["dueAt"], doc.value.get("leaseUntil", 0))
            leased = await self._lease(CALLBACKS, doc, now)
            if leased is None:
                return now + self.poll_interval
            if not await self._post(leased.value):
                return await self._retry_later(leased)
            with contextlib.suppress(Missing):
                await self.store.delete_document(CALLBACKS, doc.key)
        return None

    async def _post(self, row: dict[str, Any]) -> bool:
        assert self._session is not None
        body = orjson.dumps([row["event"]])
        try:
            async with self._session.post(row["url"], data=body, headers={"Content-Type": "application/json"}) as r:
                ok = 200 <= r.status < 300
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("callback post failed", extra={"action": "callback_failed", "error": str(exc)})
            return False
        log.info("callback posted", extra={"action": "callback_posted", "type": row["event"]["type"], "ok": ok})
        return ok

    async def _retry_later(self, doc: Document) -> float | None:
        attempts = doc.value.get("attempts", 0) + 1
        if attempts > len(RETRIES):
            log.warning("callback dropped after retries", extra={"action": "callback_dropped", "url": doc.value["url"]})
            with contextlib.suppress(Missing):
                await self.store.delete_document(CALLBACKS, doc.key)
            return None
        due = self.clock() + RETRIES[attempts - 1] / self.time_scale
        row = doc.value | {"attempts": attempts, "dueAt": due, "leaseUntil": 0}
        with contextlib.suppress(VersionConflict, Missing):
            await self.store.put_document(Document(CALLBACKS, doc.key, row), expect_version=doc.version)
        return due
