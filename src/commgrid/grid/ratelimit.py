"""A subscription's maximum delivery rate (`commgrid.maxEventsPerSecond`): deliveries wait, never drop.

Each serving node paces its own deliveries: a batch of n events reserves the next n / rate seconds of the
subscription's schedule and waits for its turn while its deliveries stay leased (renewed), so they are neither
dropped nor counted as failed attempts. With several nodes the limit applies per node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Spaces events `1 / rate` seconds apart, in the order `wait` is called (no burst)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._next = 0.0  # when the next event may go

    def reserve(self, count: int) -> float:
        """Reserve a turn for `count` events; returns how long to wait for it."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + count / self.rate
        return start - now

    async def wait(self, count: int) -> None:
        delay = self.reserve(count)
        if delay > 0:
            await asyncio.sleep(delay)


class Pacers:
    """One `Pacer` per subscription, rebuilt when its rate changes."""

    def __init__(self) -> None:
        self._pacers: dict[tuple[str, str], Pacer] = {}

    def get(self, key: tuple[str, str], rate: float) -> Pacer:
        pacer = self._pacers.get(key)
        if pacer is None or pacer.rate != rate:
            pacer = self._pacers[key] = Pacer(rate)
        return pacer
