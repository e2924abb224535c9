"""Replay: deliver a subscription's retained events again, after a handler's bug is fixed.

The events of the subscription's topic in a range (from and to: each a time or an event id, both inclusive)
that pass the subscription's current filter get a new delivery each, marked with a replay id. The delivery
worker sends them in publish order with the `commgrid-replay: <replay id>` header (a handler tells replays
from first deliveries by it), through the usual retries and dead-lettering. Times compare with when commgrid
accepted each event. A dry run only counts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from commgrid.errors import BadRequest, NotFound
from commgrid.grid.filters import compile_filter
from commgrid.grid.properties import ACTIVE, QUEUE
from commgrid.grid.service import Grid
from commgrid.store import Store
from commgrid.store.base import Missing
from commgrid.timestamps import parse_time

log = logging.getLogger("commgrid.replay")

PAGE = 1000  # events read, matched and queued per store transaction

Progress = Callable[[int, int], None]  # (events scanned, events matched) so far


@dataclass(slots=True)
class Bound:
    """One end of a replay range: a publish time (POSIX seconds) or an event's seq."""

    time: float | None = None
    seq: int | None = None


@dataclass(slots=True)
class ReplayResult:
    replay_id: str
    scanned: int = 0
    matched: int = 0
    queued: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"replayId": self.replay_id, "scanned": self.scanned, "matched": self.matched, "queued": self.queued,
                "dryRun": self.dry_run}


def _posix_time(text: str) -> float | None:
    """POSIX seconds of an ISO 8601 date or date-time (UTC unless it says otherwise), or None if it is not one."""
    try:
        return parse_time(text).timestamp()
    except ValueError:
        return None


class Replayer:
    """Queues replays of one deployment's subscriptions (the CLI and the management API call it)."""

    def __init__(self, store: Store, grid: Grid, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._grid = grid
        self._clock = clock

    async def _bound(self, topic: str, value: Any, which: str) -> Bound | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"'{which}' must be a time (ISO 8601) or an event id; got {value!r}.",
                             code="InvalidReplayRange")
        moment = _posix_time(value)
        if moment is not None:
            return Bound(time=moment)
        try:
            return Bound(seq=(await self._grid.get_event(topic, value)).seq)
        except NotFound:
            raise BadRequest(f"'{which}' is neither a time (ISO 8601) nor the id of an event topic '{topic}' still"
                             f" keeps: '{value}'.", code="InvalidReplayRange") from None

    async def replay(self, topic_name: str, name: str, start: Any, end: Any = None, *, dry_run: bool = False,
                     progress: Progress | None = None) -> ReplayResult:
        """Queue the replay (or count it, with `dry_run`); returns the counts."""
        topic = await self._grid.get_topic(topic_name)
        try:
            sub = await self._store.get_subscription(topic.name, name)
        except Missing:
            raise NotFound(f"Event subscription '{name}' of topic '{topic.name}' was not found.",
                           code="ResourceNotFound") from None
        if sub.status not in (ACTIVE, QUEUE):
            raise BadRequest(f"Event subscription '{sub.name}' is {sub.status}; only an active subscription can"
                             " replay.", code="InvalidSubscriptionState")
        if start is None:
            raise BadRequest("'from' is required: a time (ISO 8601) or an event id.", code="InvalidReplayRange")
        first, last = await self._bound(topic.name, start, "from"), await self._bound(topic.name, end, "to")
        assert first is not None
        check = compile_filter(sub.properties.filter.to_arm(), topic.input_schema)
        result = ReplayResult(replay_id=str(uuid.uuid4()), dry_run=dry_run)
        after = first.seq - 1 if first.seq is not None else 0
        while True:
            page = await self._store.events_in_order(
                topic.name, after, PAGE, until_seq=last.seq if last else None, published_from=first.time,
                published_to=last.time if last else None)
            if not page:
                break
            after = page[-1].seq
            matched = [e.seq for e in page if check.matches(orjson.loads(e.body))]
            result.scanned += len(page)
            result.matched += len(matched)
            if matched and not dry_run:
                result.queued += await self._store.queue_replay(topic.name, sub.name, matched, result.replay_id,
                                                                self._clock())
            if progress is not None:
                progress(result.scanned, result.matched)
        log.info("replay queued", extra={"action": "replay_dry_run" if dry_run else "replay_queued",
                                         "topic": topic.name, "subscription": sub.name,
                                         "replay_id": result.replay_id, "matched": result.matched,
                                         "queued": result.queued})
        return result
