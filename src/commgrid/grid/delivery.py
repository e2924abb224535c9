"""Push delivery to webhooks, as Event Grid does it (https://learn.microsoft.com/azure/event-grid/delivery-and-retry).

How one delivery flows:

1. `Grid.publish` stores each event with one delivery row per matching Active subscription, in the same
   transaction. The rows this worker can take at once (known, unordered subscriptions whose endpoint is not
   skipped, within its capacity) are stored already leased to it and handed over after the commit
   (`lease_routes`/`take`, called by the `GroupCommitter`): no claim lies between a publish and its POST. A
   commit that left rows for a claim wakes the worker (a `GroupCommitter` listener). Otherwise it sleeps until
   the store's next due delivery, at most `POLL` seconds (other processes and nodes add deliveries too).
2. The worker claims due deliveries under a short lease (`Timing.lease`, 6 s), which it renews every third of
   a lease for as long as it holds them: a live node keeps its deliveries through the longest request, a
   killed node's deliveries go to another node within one lease. It claims them skipping subscriptions whose endpoint
   already holds its share of deliveries or is on probation, so a slow or failing endpoint never crowds out
   healthy ones. An endpoint's share is the worker's capacity divided among the busy endpoints (at most
   `ENDPOINT_BACKLOG`), so any number of hung endpoints together leave room for the others; when the worker is
   full it still claims a little for endpoints below their share.
3. Claimed deliveries are grouped per subscription and attempt count and cut into batches that honour
   `maxEventsPerBatch` and `preferredBatchSizeInKilobytes` (measured on the stored events; an event larger
   than the preferred size goes alone). A batch succeeds or fails as a whole.
4. A delivery whose TTL has passed is dead-lettered without a try (the TTL is checked when an attempt is
   due). The rest is converted to the delivery schema and POSTed through one shared `WebhookClient`
   (kept-alive HTTP/1.1 connections, grid/webhook_client.py), at most `ENDPOINT_CONCURRENCY` requests at once
   per endpoint, each given the (scaled) 30 s timeout. A batch whose lease lapsed before it could start
   (renewals failing) is left for another claim, never sent twice at once.
5. 200-204 completes the deliveries (written in bulk with the attempt records, grid/attempts.py); anything
   else goes through `retry.decide`: rescheduled on the ladder or dead-lettered (store record, plus a file for
   a LocalDirectory destination). Ten failures in a row put an endpoint on probation (`retry.EndpointHealth`);
   deliveries claimed for it meanwhile count a `Probation` attempt and wait for the probation to end.

A crash loses nothing: unfinished deliveries stay in the store and are claimed again once their lease
expires (at-least-once; a receiver may see an event twice).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from commgrid import __version__
from commgrid.config import Settings
from commgrid.events.envelope import CLOUDEVENT_BATCH_JSON, CLOUDEVENT_JSON, CLOUDEVENTS, EVENTGRID_JSON, convert
from commgrid.grid.attempts import AttemptLog
from commgrid.grid.autodisable import FailureClock, disable
from commgrid.grid.deadletter import dead_letter_event, local_directory, write_file
from commgrid.grid.properties import ACTIVE, DISABLED
from commgrid.grid.ratelimit import Pacers
from commgrid.grid.retry import (
    TTL_EXCEEDED,
    EndpointHealth,
    Outcome,
    decide,
    expired,
    outcome_of_error,
    outcome_of_status,
)
from commgrid.grid.routing import Catalog
from commgrid.grid.signing import secret_key, signature_headers
from commgrid.grid.timing import Timing
from commgrid.grid.unusable import mark_unusable
from commgrid.grid.webhook_client import WebhookClient
from commgrid.store import Store
from commgrid.store.base import Attempt, Delivery, Lease, NewEvent, Route, Subscription, Topic

log = logging.getLogger("commgrid.delivery")

ENDPOINT_CONCURRENCY = 64  # requests in flight per endpoint (capped by Settings.delivery_concurrency)
ENDPOINT_BACKLOG = 512  # most deliveries claimed per endpoint before its subscriptions are skipped
MIN_BACKLOG = 16  # least share of an endpoint, however many are busy
CLAIM_LIMIT = 500
POLL = 0.25  # longest idle sleep: deliveries may come from other processes
ORDERED_RECHECK = 1.0  # how often ordered deliveries are looked for when no subscription is ordered
LEASE_MARGIN = 1.0
DELIVERY_RESPONSE_EXCERPT = 4096
REPLAY_HEADER = "commgrid-replay"  # names the replay that queued a delivery (grid/replay.py)
T = TypeVar("T")
Announce = Callable[[str, str, float, str], Awaitable[None]]


# ------------------------------------------------------------------------------------------------------------
# What to send


@dataclass(frozen=True, slots=True)
class Target:
    """One subscription as the worker needs it."""

    topic: str
    name: str
    url: str
    endpoint: str  # the URL without its query: the unit of concurrency and probation
    input_schema: str
    schema: str
    max_events: int
    preferred_bytes: int
    static_headers: tuple[tuple[str, str], ...]
    dynamic_headers: tuple[tuple[str, tuple[str, ...]], ...]
    max_attempts: int
    ttl_minutes: int
    dead_letter_dir: Path | None
    #: commgrid's options (see grid/options.py): Standard Webhooks keys with when each stops signing,
    signing: tuple[tuple[bytes, float | None], ...] = ()
    rate: float | None = None  # events per second
    disable_after: float | None = None  # Azure seconds of failures without a success
    ordered: bool = False  # deliveries carry an ordering key: claimed one per key (grid/ordering.py)

    @classmethod
    def of(cls, sub: Subscription, topic: Topic) -> Target:
        props = sub.properties
        dest = props.destination
        attributes = dest.delivery_attributes
        return cls(
            topic=sub.topic, name=sub.name, url=dest.endpoint_url, endpoint=dest.endpoint_base_url,
            input_schema=topic.input_schema, schema=props.event_delivery_schema,
            max_events=dest.max_events_per_batch, preferred_bytes=dest.preferred_batch_size_kb * 1024,
            static_headers=tuple((a.name, a.value or "") for a in attributes if a.kind == "Static"),
            dynamic_headers=tuple((a.name, a.source_path) for a in attributes if a.kind == "Dynamic"),
            max_attempts=props.retry_policy.max_delivery_attempts,
            ttl_minutes=props.retry_policy.event_ttl_minutes,
            dead_letter_dir=local_directory(props.dead_letter_destination),
            signing=tuple((secret_key(s.secret), None if i == 0 else s.expires_at)
                          for i, s in enumerate(props.commgrid.signing_secrets)),
            rate=props.commgrid.max_events_per_second, disable_after=props.commgrid.disable_after_seconds,
            ordered=props.commgrid.ordering_key is not None,
        )

    @property
    def batched(self) -> bool:
        return self.max_events > 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.topic, self.name)

    def signature_headers(self, batch: Sequence[Delivery], body: bytes, now: float) -> dict[str, str]:
        """Standard Webhooks headers; the id is the same on every retry of this batch."""
        keys = [key for key, until in self.signing if until is None or until > now]
        message_id = f"msg_{batch[0].id}" + (f"_{len(batch)}" if len(batch) > 1 else "")
        return signature_headers(keys, message_id, int(now), body)

    def delivered_form(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event (parsed, in the topic's schema) as this subscription receives it."""
        return convert(event, self.input_schema, self.schema)


def plan_batches(items: Sequence[T], sizes: Sequence[int], max_events: int, preferred_bytes: int) -> list[list[T]]:
    """Cut `items` (in order) into batches of at most `max_events` and about `preferred_bytes` (delivery-and-retry).

    The byte size is a target: a batch is closed before an item that would take it past the target, and an
    item larger than the target travels alone.
    """
    batches: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item, size in zip(items, sizes, strict=True):
        if current and (len(current) >= max_events or used + size > preferred_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        batches.append(current)
    return batches


def event_ids(batch: Sequence[Delivery], shown: int = 5) -> str:
    """The batch's event ids for a log line (the first few, and how many more)."""
    ids = ",".join(d.event.id for d in batch[:shown])
    return ids + (f",+{len(batch) - shown}" if len(batch) > shown else "")


def _lookup(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = event
    for name in path:
        if not isinstance(node, dict):
            return None
        value = node.get(name)
        if value is None:  # property names are matched case-insensitively, as in filters
            value = next((v for k, v in node.items() if k.lower() == name.lower()), None)
        node = value
    return node


def _header_value(value: Any) -> str | None:
    """Dynamic delivery attributes take strings, numbers and booleans only (delivery-properties)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def render(target: Target, deliveries: Sequence[Delivery]) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery request (wire-facts: deliveries)."""
    if target.schema == target.input_schema:
        bodies = [d.event.body for d in deliveries]  # stored JSON goes out as it is
        first = orjson.loads(deliveries[0].event.body)  # for the headers taken from the event
    else:
        events = [orjson.loads(d.event.body) for d in deliveries]
        bodies = [orjson.dumps(target.delivered_form(e)) for e in events]
        first = events[0]
    headers = {"aeg-event-type": "Notification", "aeg-subscription-name": target.name.upper(),
               "aeg-delivery-count": str(deliveries[0].attempts)}
    if target.schema == CLOUDEVENTS:
        headers["aeg-metadata-version"] = "1.0"  # the CloudEvents spec version (wire-facts: deliveries)
        if target.batched:
            body, headers["Content-Type"] = b"[" + b",".join(bodies) + b"]", CLOUDEVENT_BATCH_JSON
        else:
            body, headers["Content-Type"] = bodies[0], CLOUDEVENT_JSON
    else:
        body, headers["Content-Type"] = b"[" + b",".join(bodies) + b"]", EVENTGRID_JSON
        headers["aeg-metadata-version"] = "1"
        headers["aeg-data-version"] = str(first.get("dataVersion") or "")
    if deliveries[0].replay_id is not None:  # a batch holds one replay's deliveries, or none
        headers[REPLAY_HEADER] = deliveries[0].replay_id
    headers.update(target.static_headers)
    for name, path in target.dynamic_headers:
        value = _header_value(_lookup(first, path))
        if value is not None:
            headers[name] = value
    return body, headers


# ------------------------------------------------------------------------------------------------------------
# The worker


class _Endpoint:
    __slots__ = ("held", "queued", "semaphore", "senders")

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.held = 0
        self.senders = 0  # tasks sending its batches (`DeliveryWorker._send`)
        self.queued: collections.deque[tuple[Target, list[Delivery], float]] = collections.deque()


class DeliveryWorker:
    """Claims due deliveries and pushes them to their webhooks; one per serving process."""

    def __init__(self, store: Store, settings: Settings, *, catalog: Catalog | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 attempts: AttemptLog | None = None, announce: Announce | None = None) -> None:
        self.store = store
        self.attempts = attempts or AttemptLog(store)
        self.attempts.written = self._completed
        self.catalog = catalog or Catalog(store, clock=clock)
        self.timing = Timing(settings.time_scale, settings.delivery_lease)
        self.owner = settings.node_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.health = EndpointHealth(settings.time_scale)
        self._clock = clock
        self._rng = rng or random.Random()
        self._per_endpoint = max(1, min(ENDPOINT_CONCURRENCY, settings.delivery_concurrency))
        self._max_held = max(16 * settings.delivery_concurrency, 4 * CLAIM_LIMIT)
        self._held = 0
        self._busy = 0  # endpoints holding deliveries
        self._endpoints: dict[str, _Endpoint] = {}
        self._saturated: set[str] = set()
        self._targets: dict[tuple[str, str], Target] = {}
        self._leasable: set[tuple[str, str]] = set()  # subscriptions whose deliveries a claim would give it
        self._replaying: dict[tuple[str, str], int] = {}  # replay chunks being sent, per subscription
        self._generation = -1
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_hand: set[int] = set()  # ids of the deliveries this worker holds (leases renewed)
        self._renewed_until = 0.0  # every delivery in hand at the last renewal is leased until then
        self._renewer: asyncio.Task[None] | None = None
        self._client: WebhookClient | None = None  # None until started; closed once stopped
        self._loop: asyncio.Task[None] | None = None
        self._pacers = Pacers()
        self._statuses: dict[tuple[str, str], str] = {}
        self._ordered = 0  # how many targets deliver in order per key
        self._ordered_left = False
        self._ordered_checked_at = 0.0
        self._failures = FailureClock()
        #: Tells the system topic that a subscription was disabled: (topic, name, failing since, why).
        self._announce = announce

    # life cycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        # connections are not limited: the per-endpoint semaphores are
        self._client = WebhookClient(f"commgrid/{__version__} (Event Grid delivery)", self.timing.response_timeout)
        self._loop = asyncio.create_task(self._run())
        self._renewer = asyncio.create_task(self._renew())
        log.info("delivery worker started", extra={"action": "delivery_worker_started", "owner": self.owner,
                                                   "time_scale": self.timing.scale})

    def wake(self) -> None:
        """Look for due deliveries now (called after a commit that created some)."""
        self._wakeup.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let requests in flight finish (up to `grace` seconds), record their outcomes."""
        self._stopping = True
        self._wakeup.set()
        if self._loop is not None:
            await self._loop
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.attempts.drain()
        if self._client is not None:
            self._client.close()
        log.info("delivery worker stopped", extra={"action": "delivery_worker_stopped", "owner": self.owner})

    # the loop --------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                short = await self._claim()
            except Exception:
                log.exception("claiming deliveries failed", extra={"action": "delivery_claim_failed"})
                short = 1
                await asyncio.sleep(POLL)
            if short > 0 and not self._stopping:
                await self._idle()

    async def _claim(self) -> int:
        """Claim and dispatch due deliveries; returns how many fewer than asked for were due (0: look again)."""
        await self._refresh()
        now = self._clock()
        free = self._max_held - self._held
        # Full: endpoints holding more than their share (hung ones) are skipped, the others get a little more.
        limit = min(CLAIM_LIMIT, free) if free > 0 else MIN_BACKLOG
        lease = self.timing.lease
        skip = self._skipped(now)
        deliveries: list[Delivery] = []
        if self._ordered or self._ordered_left or now >= self._ordered_checked_at + ORDERED_RECHECK:
            # The oldest pending event of each key (grid/ordering.py); also, now and then, what a subscription
            # no longer ordered left behind.
            share = limit if self._ordered == len(self._targets) else max(1, limit // 2)
            deliveries = await self.store.claim_ordered_deliveries(self.owner, now, share, lease, skip=skip)
            self._ordered_left, self._ordered_checked_at = bool(deliveries), now
        if len(deliveries) < limit:
            deliveries += await self.store.claim_due_deliveries(self.owner, now, limit - len(deliveries), lease,
                                                                skip=skip)
        if deliveries:
            log.debug("deliveries claimed", extra={"action": "deliveries_claimed", "count": len(deliveries)})
            await self._dispatch(deliveries, now + lease)
        return limit - len(deliveries)

    # deliveries stored already leased (grid/committer.py) -------------------------------------------------
    def lease_routes(self, events: Sequence[NewEvent], routes: Sequence[Route]) -> Lease | None:
        """Take, as they are stored, the deliveries a claim would give this worker now: those of Active, unordered
        subscriptions whose endpoint is not skipped, up to the worker's free capacity (a namespace's queue
        subscription, a Disabled one, keeps its deliveries for their own readers)."""
        free = self._max_held - self._held
        if self._stopping or self._client is None or free <= 0 or self.catalog.generation != self._generation:
            return None  # stale targets: the next claim refreshes them first
        now = self._clock()
        skip = self._skipped(now)
        taken = 0
        for route in routes:
            key = (events[route.event_index].topic, route.subscription)
            if route.order_key is None and key in self._leasable and key not in skip:
                route.leased = True
                taken += 1
                if taken == free:
                    break
        return Lease(self.owner, now + self.timing.lease) if taken else None

    def take(self, deliveries: list[Delivery], lease: Lease) -> None:
        """Send deliveries a commit stored leased to this worker (once stopped, their lease lapses instead and
        a claim takes them)."""
        if self._client is None or self._client.closed:
            return
        log.debug("deliveries taken as stored", extra={"action": "deliveries_claimed", "count": len(deliveries)})
        self._start(self._dispatch(deliveries, lease.until))

    async def _renew(self) -> None:
        """Renew the leases of the deliveries in hand every third of a lease (also while their requests run)."""
        every = self.timing.lease / 3
        while not self._stopping:
            await asyncio.sleep(every)
            ids = list(self._in_hand)
            if not ids:
                continue
            until = self._clock() + self.timing.lease
            try:
                await self.store.renew_leases(self.owner, ids, until)
            except Exception:
                log.exception("renewing delivery leases failed", extra={"action": "lease_renewal_failed",
                                                                          "count": len(ids)})
                continue
            self._renewed_until = until

    def _completed(self, ids: list[int]) -> None:
        """Completions written (or failed: their leases lapse): held and renewed until then."""
        self._in_hand.difference_update(ids)
        if self._ordered:  # the next event of each completed key is claimable now
            self.wake()

    async def _idle(self) -> None:
        now = self._clock()
        timeout = POLL
        due = await self.store.next_due_at(now)
        if due is not None and due > now:
            timeout = min(timeout, due - now)
        probation = self.health.on_probation(now)
        if probation:
            timeout = min(timeout, max(min(probation.values()) - now, 0.0))
        if not self._wakeup.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _share(self) -> int:
        """How many deliveries one endpoint may hold: the worker's capacity divided among the busy endpoints."""
        return max(MIN_BACKLOG, min(ENDPOINT_BACKLOG, self._max_held // (self._busy + 1)))

    def _skipped(self, now: float) -> list[tuple[str, str]]:
        """Subscriptions not to claim for: their endpoint holds its share or is on probation."""
        share = self._share()
        self._saturated = {key for key, e in self._endpoints.items() if e.held >= share}
        blocked = self._saturated | set(self.health.on_probation(now))
        replaying = [key for key, count in self._replaying.items() if count]  # one replay chunk at a time: in order
        if not blocked:
            return replaying
        return [key for key, target in self._targets.items() if target.endpoint in blocked] + replaying

    async def _refresh(self, *, force: bool = False) -> None:
        """Rebuild the targets when the catalog (shared with routing) has reloaded."""
        if force:
            await self.catalog.refresh(force=True)
        else:
            await self.catalog.fresh()
        if self.catalog.generation == self._generation:
            return
        self._generation = self.catalog.generation
        targets = {}
        for sub, topic in self.catalog.subscriptions():
            try:
                targets[(sub.topic, sub.name)] = Target.of(sub, topic)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:  # Failed: its deliveries stop
                if sub.status == ACTIVE:
                    await mark_unusable(self.store, sub, f"its delivery properties are incomplete ({exc!r}).")
        self._targets = targets
        self._ordered = sum(1 for t in targets.values() if t.ordered)
        statuses = {(sub.topic, sub.name): sub.status for sub, _ in self.catalog.subscriptions()}
        self._leasable = {key for key, t in targets.items() if not t.ordered and statuses.get(key) == ACTIVE}
        for key, status in statuses.items():  # enabled again: its endpoint starts afresh
            if status == ACTIVE and self._statuses.get(key) == DISABLED and key in targets:
                self.health.succeeded(targets[key].endpoint)
        self._statuses = statuses

    async def _dispatch(self, deliveries: list[Delivery], lease_until: float) -> None:
        groups: dict[tuple[str, str, int, str | None], list[Delivery]] = {}
        for d in deliveries:
            groups.setdefault((d.topic, d.subscription, d.attempts, d.replay_id), []).append(d)
        if any((topic, name) not in self._targets for topic, name, *_ in groups):
            await self._refresh(force=True)
        for (topic, name, _, replay_id), group in groups.items():
            target = self._targets.get((topic, name))
            if target is None:  # deleted meanwhile (its deliveries went with it), or unusable: let the lease lapse
                continue
            self._in_hand.update(d.id for d in group)
            endpoint = self._endpoint(target.endpoint)
            self._busy += endpoint.held == 0
            endpoint.held += len(group)
            self._held += len(group)
            batches = [[d] for d in group] if target.max_events == 1 else plan_batches(
                group, [len(d.event.body) for d in group], target.max_events, target.preferred_bytes)
            if replay_id is not None:
                self._start(self._deliver_in_order(target, batches, lease_until))
                continue
            for batch in batches:
                self._send(endpoint, target, batch, lease_until)

    def _send(self, endpoint: _Endpoint, target: Target, batch: list[Delivery], lease_until: float) -> None:
        """Send `batch` in a task of its own while the endpoint has fewer than its concurrency, else queue it for
        the next of those tasks to finish: a claim of hundreds of batches for one endpoint starts as many tasks
        as can send at once, not one per batch waiting for the semaphore. A paced subscription's batches get a
        task each, as their wait for the pace must not hold up the endpoint's other subscriptions."""
        if target.rate is not None:
            self._start(self._deliver(target, batch, lease_until))
        elif endpoint.senders < self._per_endpoint:
            endpoint.senders += 1
            self._start(self._sender(endpoint, target, batch, lease_until))
        else:
            endpoint.queued.append((target, batch, lease_until))

    async def _sender(self, endpoint: _Endpoint, target: Target, batch: list[Delivery], lease_until: float) -> None:
        """Deliver `batch`, then the endpoint's queued batches until none is left."""
        try:
            while True:
                await self._deliver(target, batch, lease_until)
                if not endpoint.queued:
                    return
                target, batch, lease_until = endpoint.queued.popleft()
        finally:
            endpoint.senders -= 1

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_in_order(self, target: Target, batches: list[list[Delivery]], lease_until: float) -> None:
        """A replay's batches one after another (publish order); its subscription is not claimed for meanwhile."""
        key = (target.topic, target.name)
        self._replaying[key] = self._replaying.get(key, 0) + 1
        try:
            for batch in batches:
                await self._deliver(target, batch, lease_until)
        finally:
            self._replaying[key] -= 1
            if not self._replaying[key]:
                del self._replaying[key]
                self._wakeup.set()

    def _endpoint(self, key: str) -> _Endpoint:
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint(self._per_endpoint)
        return endpoint

    def _release(self, target: Target, count: int) -> None:
        endpoint = self._endpoints[target.endpoint]
        endpoint.held -= count
        self._held -= count
        self._busy -= endpoint.held == 0
        if target.endpoint in self._saturated and endpoint.held < self._share() // 2:
            self._saturated.discard(target.endpoint)
            self._wakeup.set()

    # one batch -------------------------------------------------------------------------------------------
    async def _deliver(self, target: Target, batch: list[Delivery], lease_until: float) -> None:
        completed: set[int] = set()  # ids handed to the bulk writer, which releases them once written
        try:
            now = self._clock()
            scale = self.timing.scale
            stale = [d for d in batch if expired(d.event.published_at, target.ttl_minutes, now, scale)]
            live = [d for d in batch if d not in stale] if stale else batch
            if stale:
                await self._dead_letter(target, stale, TTL_EXCEEDED, None)
            if not live:
                return
            probation = self.health.probation_until(target.endpoint, now)
            if probation is not None:
                self.attempts.attempted(target.topic, target.name, live, now, "Probation", None, 0.0,
                                        "endpoint on probation")
                await self._failed(target, live, Outcome("Probation", None, "endpoint on probation"), probation)
                return
            if target.rate is not None:  # waits with its deliveries leased: queued, not failed
                await self._pacers.get(target.key, target.rate).wait(len(live))
            async with self._endpoints[target.endpoint].semaphore:
                if self._clock() + LEASE_MARGIN > max(lease_until, self._renewed_until):
                    log.info("lease lapsed before sending; left for the next claim", extra={
                        "action": "delivery_abandoned", "subscription": target.name, "count": len(live)})
                    return
                body, headers = render(target, live)
                started, clock = self._clock(), time.perf_counter()
                if target.signing:
                    headers.update(target.signature_headers(live, body, started))
                outcome, answer = await self._post(target.url, body, headers)
                self.attempts.attempted(target.topic, target.name, live, started, outcome.name, outcome.status,
                                        time.perf_counter() - clock, outcome.detail, answer)
            if outcome.succeeded:
                self.health.succeeded(target.endpoint)
                self._failures.succeeded(target.key)
                self.attempts.completed([d.id for d in live])
                completed = {d.id for d in live}
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("delivered", extra={"action": "delivery_succeeded", "subscription": target.name,
                                                  "count": len(live), "status": outcome.status,
                                                  "events": event_ids(live)})
            else:
                await self._failed(target, live, outcome, None)
        except Exception:
            log.exception("delivery failed unexpectedly; the lease will expire and it will be retried",
                          extra={"action": "delivery_error", "subscription": target.name})
        finally:
            self._in_hand.difference_update(d.id for d in batch if d.id not in completed)
            self._release(target, len(batch))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[Outcome, bytes]:
        """The outcome and the response body (for the attempt log)."""
        assert self._client is not None
        try:
            status, answer = await self._client.post(url, body, headers, DELIVERY_RESPONSE_EXCERPT)
        except (TimeoutError, OSError, ValueError) as exc:  # ValueError: a URL or header that cannot be sent
            return outcome_of_error(exc), b""
        return outcome_of_status(status), answer

    async def _failed(self, target: Target, batch: list[Delivery], outcome: Outcome, not_before: float | None) -> None:
        now = self._clock()
        if outcome.name != "Probation":
            probation = self.health.failed(target.endpoint, outcome, now)
            if probation is not None:
                log.warning("endpoint on probation", extra={
                    "action": "endpoint_probation", "endpoint": target.endpoint, "outcome": outcome.name,
                    "seconds": round(probation - now, 3)})
        if target.disable_after is not None:
            await self._disable_if_failing(target, outcome, now)
        attempts = batch[0].attempts + 1
        decision = decide(attempts, outcome, target.max_attempts, self._rng)
        attempt = Attempt(outcome.name, outcome.status, now)
        log.info("delivery attempt failed", extra={
            "action": "delivery_failed", "subscription": target.name, "count": len(batch), "attempt": attempts,
            "outcome": outcome.name, "status": outcome.status, "detail": outcome.detail, "events": event_ids(batch)})
        if decision.dead_letter_reason:
            await self._dead_letter(target, batch, decision.dead_letter_reason, attempt)
            return
        next_at = now + self.timing.scaled(decision.delay)
        if not_before is not None:
            next_at = max(next_at, not_before)
        await self.store.reschedule_deliveries([d.id for d in batch], attempt, next_at)
        if next_at - now < POLL:  # sooner than the idle loop would look again
            asyncio.get_running_loop().call_later(max(next_at - self._clock(), 0.0), self.wake)
        log.info("delivery rescheduled", extra={"action": "delivery_rescheduled", "subscription": target.name,
                                                "count": len(batch), "in_seconds": round(next_at - now, 3),
                                                "events": event_ids(batch)})

    async def _disable_if_failing(self, target: Target, outcome: Outcome, now: float) -> None:
        """Disable the subscription once its endpoint has failed, without a success, for `disable_after`."""
        assert target.disable_after is not None
        since = self._failures.failed(target.key, now)
        if now - since < self.timing.scaled(target.disable_after):
            return
        reason = (f"Every delivery since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))} failed (last:"
                  f" {outcome.name}{f' {outcome.status}' if outcome.status else ''}); disabled after failing for"
                  f" {target.disable_after:g} s (time scale {self.timing.scale:g}). Its events stay queued:"
                  " `commgrid subscription enable` delivers them.")
        self._failures.succeeded(target.key)  # a new run of failures starts after it is enabled again
        if not await disable(self.store, target.topic, target.name, reason):
            return
        self.catalog.invalidate()
        if self._announce is not None:
            try:
                await self._announce(target.topic, target.name, since, reason)
            except Exception:
                log.exception("could not publish the SubscriptionDisabled event", extra={
                    "action": "subscription_disabled_event_failed", "subscription": target.name})

    async def _dead_letter(self, target: Target, batch: list[Delivery], reason: str, attempt: Attempt | None) -> None:
        now = self._clock()
        await self.store.dead_letter_deliveries([d.id for d in batch], reason, now, attempt)
        if target.ordered:
            self.wake()
        self.attempts.gave_up(target.topic, target.name, len(batch), reason,
                              has_destination=target.dead_letter_dir is not None)
        log.warning("dead-lettered", extra={"action": "delivery_dead_lettered", "subscription": target.name,
                                            "count": len(batch), "reason": reason, "events": event_ids(batch)})
        if target.dead_letter_dir is None:
            return
        events = [dead_letter_event(
            target.delivered_form(orjson.loads(d.event.body)), target.schema, reason=reason,
            attempts=d.attempts + (1 if attempt else 0),
            last_outcome=attempt.outcome if attempt else d.last_outcome,
            last_status=attempt.status if attempt else d.last_status, published_at=d.event.published_at,
            last_attempt_at=attempt.at if attempt else d.last_attempt_at) for d in batch]
        try:
            path = await asyncio.to_thread(write_file, target.dead_letter_dir, target.name, now, events)
        except OSError as exc:
            log.error("could not write the dead-letter file", extra={
                "action": "dead_letter_write_failed", "subscription": target.name, "error": str(exc)})
            return
        log.info("dead-letter file written", extra={"action": "dead_letter_written", "subscription": target.name,
                                                    "path": str(path)})


__all__ = ["DeliveryWorker", "Target", "plan_batches", "render"]
