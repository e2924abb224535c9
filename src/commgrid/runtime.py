"""Wiring: the objects one commgrid process runs, opened and closed together.

The server's lifespan and the CLI both build a `Runtime`; only the server starts background workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from commgrid.acs.calling.service import CallingService
from commgrid.acs.chat import ChatService
from commgrid.acs.config import own_configured_numbers, resolve_event_profile
from commgrid.acs.identity import IdentityService
from commgrid.acs.resource import CommunicationResource
from commgrid.acs.sms import SmsService, SmsWorker
from commgrid.config import Settings
from commgrid.console.feed import EventFeed
from commgrid.deployment import Deployment, load_deployment, read_deployment
from commgrid.grid.attempts import AttemptLog
from commgrid.grid.autodisable import disabled_event
from commgrid.grid.delivery import DeliveryWorker
from commgrid.grid.namespaces import Namespaces
from commgrid.grid.replay import Replayer
from commgrid.grid.retention import RetentionSweeper
from commgrid.grid.service import Grid
from commgrid.grid.subscriptions import Subscriptions
from commgrid.grid.timing import Timing
from commgrid.metrics import Metrics
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
        self.subscriptions: Subscriptions
        self.replays: Replayer
        self.namespaces: Namespaces
        self.delivery: DeliveryWorker | None = None
        self.acs: CommunicationResource
        self.identities: IdentityService
        self.sms: SmsService
        self.chat: ChatService
        self.calling: CallingService
        self.metrics = Metrics(settings.metrics_dir)  # filled by a serving node's publish and delivery paths
        self.feed: EventFeed

    async def open(self, *, workers: bool = False) -> None:
        """Open the store and services; with `workers`, also start background delivery."""
        await self.store.open()
        self._stack.push_async_callback(self.store.close)
        self.deployment = await load_deployment(self.store, self.settings)
        self.grid = Grid(self.store, self.deployment, time_scale=self.settings.time_scale)
        self.replays = Replayer(self.store, self.grid)
        await self.grid.start()
        self.subscriptions = Subscriptions(self.store, self.grid, self.settings)
        self.namespaces = Namespaces(self.store, self.grid, self.subscriptions, self.settings)
        self.grid.committer.listeners.append(self.namespaces.waker.wake)  # wakes long-polling receivers
        profile = await resolve_event_profile(self.store, self.settings.event_profile)
        self.acs = CommunicationResource(self.grid, self.deployment, event_profile=profile,
                                         time_scale=self.settings.time_scale)
        self.identities = IdentityService(self.acs)
        self.sms = SmsService(self.acs)
        self.chat = ChatService(self.acs)
        self.calling = CallingService(self.acs, recording_base_url=self.settings.recording_base)
        self.grid.catalog.on_reload(self._reload_deployment)
        self.feed = EventFeed(self.store)  # the operator console's live stream
        self._stack.push_async_callback(self.feed.close)
        if workers:
            await self._start_workers()

    async def _reload_deployment(self) -> None:
        """Pick up regenerated keys or a new management token (they move the catalog's change counter)."""
        deployment = await read_deployment(self.store)
        if deployment != self.deployment:
            self.deployment = self.grid.deployment = self.acs.deployment = deployment

    async def _start_workers(self) -> None:
        """Background work of a serving node (delivery); extended as services are added."""
        watcher = asyncio.create_task(self.grid.catalog.watch())
        self._stack.push_async_callback(_cancel, watcher)
        self.grid.metrics = self.metrics
        self.delivery = DeliveryWorker(self.store, self.settings, catalog=self.grid.catalog,
                                       attempts=AttemptLog(self.store, self.metrics), announce=self._announce_disabled)
        await self.delivery.start()
        self._stack.push_async_callback(self.delivery.stop)  # stops before the store closes
        self.grid.committer.listeners.append(self.delivery.wake)
        self.grid.committer.claimer = self.delivery  # a publish's deliveries go out without a claim
        sweeper = RetentionSweeper(self.store, Timing(self.settings.time_scale))
        sweeper.start()
        self._stack.push_async_callback(sweeper.stop)
        await own_configured_numbers(self.store, self.settings.phone_numbers, self.acs.now().isoformat())
        sms_worker = SmsWorker(self.sms)  # emits delivery reports when due
        await sms_worker.start()
        self._stack.push_async_callback(sms_worker.stop)
        await self.calling.start()  # call timers and callback events; finishes changes a crash interrupted
        self._stack.push_async_callback(self.calling.stop)

    async def _announce_disabled(self, topic: str, name: str, since: float, reason: str) -> None:
        """The system topic's `Commgrid.EventGrid.SubscriptionDisabled` event (see grid/autodisable.py)."""
        now = self.acs.now().timestamp()
        await self.acs.emit([disabled_event(self.deployment.acs_arm_id, topic, name, since, now, reason)])

    async def close(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
