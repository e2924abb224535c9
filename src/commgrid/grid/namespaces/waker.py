"""Wakes long-polling receivers when this node commits events; other nodes are noticed by a bounded poll."""

from __future__ import annotations

import asyncio
import contextlib


class Waker:
    """A generation of waiters: `wake()` releases everyone waiting on the current one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Take before checking for work, so a wake between the check and the wait is not lost."""
        return self._event

    def wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(timeout, 0.0))
