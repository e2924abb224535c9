"""The delivery worker's record of each attempt (stored for the console, counted for `/metrics`) and of each
delivery that succeeded (forgotten by the store).

Both are written by one background writer that takes everything added while its previous write ran, in one
transaction (`Store.record_outcomes`): a success and its attempt record are one hand-off to the store and one
commit, and recording costs the delivery path a list append. Until a completion is written its delivery stays
leased to the worker; if the write fails, the lease lapses and the delivery is sent again (at-least-once).
The store keeps the newest `ATTEMPT_RETENTION` attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from commgrid.metrics import Metrics
from commgrid.store import Store
from commgrid.store.base import AttemptRecord, Delivery

log = logging.getLogger("commgrid.delivery")

ATTEMPT_RETENTION = 100_000


class AttemptLog:
    """Buffers attempts and completions and writes them in bulk; feeds the delivery metrics."""

    def __init__(self, store: Store, metrics: Metrics | None = None, *, keep: int = ATTEMPT_RETENTION) -> None:
        self._store = store
        self.metrics = metrics
        self._keep = keep
        self._items: list[AttemptRecord] = []
        self._completed: list[int] = []
        self._task: asyncio.Task[None] | None = None
        #: Told which completions were written (or failed to be): the worker stops renewing their leases.
        self.written: Callable[[list[int]], None] | None = None

    def attempted(self, topic: str, subscription: str, batch: Sequence[Delivery], at: float, outcome: str,
                  status: int | None, duration: float, error: str | None = None, response: bytes = b"") -> None:
        """One try of `batch` (one request); `outcome` is "Succeeded" or the failure's name."""
        excerpt = response[:1024].decode("utf-8", "replace")
        error = error if status is None else None  # with a response, its status and body say it all
        self._items.extend(AttemptRecord(topic, subscription, d.event.seq, d.attempts + 1, at, outcome, status,
                                         duration, error or None, excerpt) for d in batch)
        if self.metrics is not None:
            tried = outcome != "Probation"  # a probation attempt sends nothing: no destination duration
            self.metrics.attempted(topic, subscription, len(batch), outcome, duration if tried else None)
        if self._task is None:
            self._task = asyncio.create_task(self._flush())

    def completed(self, ids: Sequence[int]) -> None:
        """Deliveries that succeeded: written with the attempts recorded meanwhile."""
        self._completed.extend(ids)
        if self._task is None:
            self._task = asyncio.create_task(self._flush())

    def gave_up(self, topic: str, subscription: str, count: int, reason: str, *, has_destination: bool) -> None:
        if self.metrics is not None:
            self.metrics.gave_up(topic, subscription, count, reason, has_destination=has_destination)

    async def _flush(self) -> None:
        try:
            while self._items or self._completed:
                items, self._items = self._items, []
                completed, self._completed = self._completed, []
                try:
                    await self._store.record_outcomes(completed, items, self._keep)
                except Exception:  # the console loses a line of history; the deliveries are sent again
                    log.exception("could not record delivery outcomes", extra={
                        "action": "outcomes_record_failed", "count": len(items), "completed": len(completed)})
                finally:
                    if completed and self.written is not None:
                        self.written(completed)
        finally:
            self._task = None

    async def drain(self) -> None:
        while self._task is not None:
            await asyncio.shield(self._task)
