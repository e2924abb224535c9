"""Wiring: the objects one commgrid process runs, opened and closed together.

The server's lifespan and the CLI both build a `Runtime`; only the server starts background workers.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from commgrid.acs.resource import CommunicationResource
from commgrid.config import Settings
from commgrid.deployment import Deployment, load_deployment
from commgrid.grid.service import Grid
from commgrid.store import Store, store_from_url

log = logging.getLogger("commgrid")


class Runtime:
    """Store, deployment identity and services of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Store = store_from_url(settings.effective_store_url)
        self._stack = AsyncExitStack()
        self.deployment: Deployment
        self.grid: Grid
        self.acs: CommunicationResource

    async def open(self, *, workers: bool = False) -> None:
        """Open the store and services; with `workers`, also start background delivery."""
        await self.store.open()
        self._stack.push_async_callback(self.store.close)
        self.deployment = await load_deployment(self.store, self.settings)
        self.grid = Grid(self.store, self.deployment)
        await self.grid.start()
        self.acs = CommunicationResource(self.grid, self.deployment, event_profile=self.settings.event_profile,
                                         time_scale=self.settings.time_scale)
        if workers:
            await self._start_workers()

    async def _start_workers(self) -> None:
        """Background work of a serving node (delivery); extended as services are added."""

    async def close(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
