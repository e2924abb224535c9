"""The namespace service: namespace resources, publishing to namespace topics, and pull delivery with locks.

The CLI, the data plane and (later) ARM routes all go through `Namespaces`. Each namespace topic is backed by
a topic of kind `namespace` (named `{namespace}/{topic}`) and each of its event subscriptions by a subscription
of that topic, so publishing, filtering, push delivery, retries and dead-lettering take the one existing path
(`Grid.publish`, `Catalog`, `DeliveryWorker`). A Push subscription is an ordinary Active webhook subscription.
A Queue subscription has status `Queue`: it is routed but never pushed; its pending deliveries are what
consumers receive, under durable locks (`Store.lock_events`, `Store.settle_locks`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from commgrid.arm_ids import EVENTGRID_NAMESPACES, resource_id
from commgrid.config import Settings
from commgrid.deployment import Deployment, new_key
from commgrid.errors import BadRequest, Conflict, Detail, InvalidInput, NotFound, from_store
from commgrid.events.envelope import CLOUDEVENTS
from commgrid.grid.namespaces.auth import authenticate_namespace
from commgrid.grid.namespaces.models import (
    PUSH,
    QUEUE,
    RELEASE_DELAYS,
    Namespace,
    NamespaceSubscription,
    NamespaceTopic,
    check_name,
    validate_namespace,
    validate_subscription,
    validate_topic,
)
from commgrid.grid.namespaces.waker import Waker
from commgrid.grid.properties import ACTIVE, SubscriptionProperties, WebHookDestination
from commgrid.grid.properties import QUEUE as QUEUE_ROUTED
from commgrid.grid.service import Grid
from commgrid.grid.subscriptions import Saved, Subscriptions
from commgrid.grid.timing import Timing
from commgrid.grid.validation import parse_filter
from commgrid.store import Store
from commgrid.store.base import (
    LOCK_EXPIRED,
    LOCK_OK,
    AlreadyExists,
    DeadLetter,
    Missing,
    NamespaceResource,
    Subscription,
    Topic,
)

log = logging.getLogger("commgrid.namespaces")

QUEUE_STATUS = QUEUE_ROUTED  # routed, never pushed: received by pull consumers
NAMESPACE_TOPIC_KIND = "namespace"
MAX_EVENTS = (1, 100)
MAX_WAIT = (10, 120)
POLL = 1.0  # how often a waiting receive looks for events committed by other nodes or whose lock lapsed
CACHE_SECONDS = 1.0
# The failure codes Azure returns per lock token: BadToken (not a token) and TokenLost (no longer locked).
_EXPIRED = ("TokenLost", "The lock on this event expired; receive it again.")
_SETTLED = ("TokenLost", "The lock was lost: its event was already acknowledged, released or rejected, or"
            " received again after the lock expired.")
_BAD = ("BadToken", "The lock token is malformed.")


@dataclass(slots=True)
class Received:
    """One received event: its lock token, how often it was delivered, and the CloudEvent JSON."""

    lock_token: str
    delivery_count: int
    event: bytes


@dataclass(slots=True)
class LockResults:
    """Per-token outcome of acknowledge, release, reject and renewLock, as the data plane returns it."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_body(self) -> dict[str, Any]:
        return {"failedLockTokens": self.failed, "succeededLockTokens": self.succeeded}


def shadow_topic(namespace: str, topic: str) -> str:
    """The name of the topic backing a namespace topic."""
    return f"{namespace.lower()}/{topic.lower()}"


class Namespaces:
    """Namespaces, namespace topics, their event subscriptions, publishing and pull delivery."""

    def __init__(
        self, store: Store, grid: Grid, subscriptions: Subscriptions, settings: Settings, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.grid = grid
        self.subscriptions = subscriptions
        self.deployment: Deployment = grid.deployment
        self.timing = Timing(settings.time_scale)
        self.clock = clock
        self.waker = Waker()
        self._cache: dict[tuple[str, str, str], tuple[float, NamespaceResource]] = {}

    # ids -------------------------------------------------------------------------------------------------
    def arm_id(self, namespace: str, topic: str | None = None, subscription: str | None = None) -> str:
        d = self.deployment
        path = resource_id(d.subscription_id, d.resource_group, EVENTGRID_NAMESPACES, namespace)
        if topic is not None:
            path += f"/topics/{topic}"
        if subscription is not None:
            path += f"/eventSubscriptions/{subscription}"
        return path

    # reading resources -----------------------------------------------------------------------------------
    async def _resource(
        self, namespace: str, topic: str = "", name: str = "", *, cached: bool = False
    ) -> NamespaceResource:
        key = (namespace.lower(), topic.lower(), name.lower())
        hit = self._cache.get(key)
        if cached and hit and self.clock() - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            found = await self.store.get_namespace_resource(*key)
        except Missing:
            what = ("Event subscription" if name else "Namespace topic" if topic else "Namespace")
            shown = name or topic or namespace
            raise NotFound(f"{what} '{shown}' was not found.", code="ResourceNotFound") from None
        self._cache[key] = (self.clock(), found)
        return found

    def _forget(self, namespace: str, topic: str = "", name: str = "") -> None:
        prefix = (namespace.lower(), topic.lower(), name.lower())
        for key in [k for k in self._cache if all(not p or p == q for p, q in zip(prefix, k, strict=True))]:
            del self._cache[key]

    async def get_namespace(self, name: str) -> Namespace:
        return _namespace((await self._resource(name)).properties)

    async def list_namespaces(self) -> list[Namespace]:
        return [_namespace(r.properties) for r in await self.store.list_namespace_resources()]

    async def get_topic(self, namespace: str, name: str) -> NamespaceTopic:
        await self._resource(namespace)
        return _topic(namespace, (await self._resource(namespace, name)).properties)

    async def list_topics(self, namespace: str) -> list[NamespaceTopic]:
        ns = await self.get_namespace(namespace)
        return [_topic(ns.name, r.properties) for r in await self.store.list_namespace_resources(ns.name.lower())]

    async def get_subscription(self, namespace: str, topic: str, name: str) -> NamespaceSubscription:
        t = await self.get_topic(namespace, topic)
        return _subscription(t, (await self._resource(namespace, topic, name)).properties)

    async def list_subscriptions(self, namespace: str, topic: str) -> list[NamespaceSubscription]:
        t = await self.get_topic(namespace, topic)
        found = await self.store.list_namespace_resources(namespace.lower(), topic.lower())
        return [_subscription(t, r.properties) for r in found]

    # namespaces ------------------------------------------------------------------------------------------
    async def create_or_update_namespace(self, name: str, body: Any = None) -> tuple[Namespace, bool]:
        """Create a namespace with two new keys, or update its location, capacity and tags; (it, created)."""
        check_name("Namespace", name)
        location, capacity, tags = validate_namespace(body, self.deployment.location)
        try:
            current = await self.get_namespace(name)
        except NotFound:
            ns = Namespace(name=name, location=location, key1=new_key(), key2=new_key(), capacity=capacity,
                           tags=tags)
            await self._put(ns.stored(), create=True, keys=(name, "", ""))
            log.info("namespace created", extra={"action": "namespace_created", "namespace": name})
            return ns, True
        ns = Namespace(name=current.name, location=location, key1=current.key1, key2=current.key2,
                       capacity=capacity, tags=tags)
        await self._put(ns.stored(), create=False, keys=(name, "", ""))
        return ns, False

    async def delete_namespace(self, name: str) -> None:
        """Delete a namespace with its topics, their subscriptions and their events."""
        for topic in await self.list_topics(name):
            await self.delete_topic(name, topic.name)
        await self._delete_resources(name)
        self._forget(name)
        log.info("namespace deleted", extra={"action": "namespace_deleted", "namespace": name})

    async def list_keys(self, name: str) -> dict[str, str]:
        ns = await self.get_namespace(name)
        return {"key1": ns.key1, "key2": ns.key2}

    async def regenerate_key(self, name: str, key_name: str) -> dict[str, str]:
        if key_name not in ("key1", "key2"):
            raise InvalidInput.from_problems([Detail("InvalidRequest", f"keyName '{key_name}' is invalid; use key1"
                                                     " or key2.")])
        ns = await self.get_namespace(name)
        setattr(ns, key_name, new_key())
        await self._put(ns.stored(), create=False, keys=(name, "", ""))
        return {"key1": ns.key1, "key2": ns.key2}

    # namespace topics ------------------------------------------------------------------------------------
    async def create_or_update_topic(
        self, namespace: str, name: str, properties: Any = None
    ) -> tuple[NamespaceTopic, bool]:
        """Create or update a namespace topic; (it, created)."""
        ns = await self.get_namespace(namespace)
        check_name("Namespace topic", name)
        days = validate_topic(properties)
        try:
            current = await self.get_topic(ns.name, name)
        except NotFound:
            current = None
        if current is not None:
            for sub in await self.list_subscriptions(ns.name, name):
                _check_ttl_fits(sub, days)
        topic = NamespaceTopic(namespace=ns.name, name=current.name if current else name, event_retention_days=days)
        # The backing topic first: a namespace topic is never without one, even if this is interrupted.
        shadow = Topic(name=shadow_topic(ns.name, name), arm_id=self.arm_id(ns.name, name),
                       input_schema=CLOUDEVENTS, kind=NAMESPACE_TOPIC_KIND, created_at=self.clock())
        try:
            await self.store.create_topic(shadow)
        except AlreadyExists:
            if current is None:  # left by an interrupted create or delete: its events go with it
                await self.store.delete_topic(shadow.name)
                await self.store.create_topic(shadow)
        self.grid.catalog.invalidate()
        await self._put(topic.stored(), create=current is None, keys=(ns.name, name, ""))
        return topic, current is None

    async def delete_topic(self, namespace: str, name: str) -> None:
        """Delete a namespace topic with its subscriptions, events and pending deliveries."""
        topic = await self.get_topic(namespace, name)
        with contextlib.suppress(Missing):
            await self.store.delete_topic(shadow_topic(topic.namespace, topic.name))
        await self._delete_resources(namespace, name)
        self._forget(namespace, name)
        self.grid.catalog.invalidate()

    # event subscriptions ---------------------------------------------------------------------------------
    async def create_or_update_subscription(
        self, namespace: str, topic: str, name: str, properties: Any
    ) -> tuple[NamespaceSubscription, bool]:
        """Create or replace a namespace topic event subscription; (it, created).

        A Push subscription's webhook is validated (CloudEvents handshake) before this returns; if it fails,
        the subscription is not kept and the handshake's message is raised.
        """
        t = await self.get_topic(namespace, topic)
        if not 3 <= len(name) <= 50 or not name.replace("-", "").isalnum():
            check_name("Event subscription", name)
        props = validate_subscription(properties, t.event_retention_days)
        try:
            current = await self.get_subscription(namespace, topic, name)
        except NotFound:
            current = None
        sub = NamespaceSubscription(t.namespace, t.name, current.name if current else name, props)
        if current is None:
            await self._drop_backing(t, sub.name)  # one left by an interrupted create or delete
            await self._back(t, sub)
        elif current.delivery_mode != sub.delivery_mode:
            raise InvalidInput.from_problems([Detail("InvalidRequest", f"deliveryMode cannot change from"
                                                     f" {current.delivery_mode} to {sub.delivery_mode}; delete the"
                                                     " event subscription and create it again.")])
        else:
            await self._rebind(t, sub)  # keeps the events already queued or pending for it
        await self._put(props | {"name": sub.name}, create=current is None, keys=(t.namespace, t.name, name))
        log.info("namespace subscription saved", extra={"action": "namespace_subscription_saved",
                                                        "namespace": t.namespace, "topic": t.name,
                                                        "subscription": sub.name, "mode": sub.delivery_mode})
        return sub, current is None

    async def delete_subscription(self, namespace: str, topic: str, name: str) -> None:
        sub = await self.get_subscription(namespace, topic, name)
        t = await self.get_topic(namespace, topic)
        await self._drop_backing(t, sub.name)
        await self._delete_resources(namespace, topic, name)
        self._forget(namespace, topic, name)

    async def _back(self, topic: NamespaceTopic, sub: NamespaceSubscription) -> None:
        """Create the subscription of the backing topic that routes (and for Push, delivers) its events."""
        shadow = shadow_topic(topic.namespace, topic.name)
        if sub.delivery_mode == QUEUE:
            now = self.clock()
            await self.store.create_subscription(Subscription(
                topic=shadow, name=sub.name.lower(), status=QUEUE_STATUS, created_at=now, updated_at=now,
                properties=_queue_properties(sub)))
            self.grid.catalog.invalidate()
            return
        saved = await self.subscriptions.create(shadow, sub.name.lower(), self._push_properties(sub))
        if saved.subscription.status != ACTIVE:
            await self.store.delete_subscription(shadow, saved.subscription.name)
            self.grid.catalog.invalidate()
        self._check_handshake(sub, saved)

    async def _rebind(self, topic: NamespaceTopic, sub: NamespaceSubscription) -> None:
        """Apply changed properties to the backing subscription in place."""
        shadow = shadow_topic(topic.namespace, topic.name)
        try:
            backing = await self.store.get_subscription(shadow, sub.name.lower())
        except Missing:  # lost to an interrupted delete
            await self._back(topic, sub)
            return
        if sub.delivery_mode == QUEUE:
            backing.properties = _queue_properties(sub)
            backing.updated_at = self.clock()
            await self.store.update_subscription(backing)
            self.grid.catalog.invalidate()
            return
        saved = await self.subscriptions.update(shadow, sub.name.lower(), self._push_properties(sub))
        self._check_handshake(sub, saved)

    def _push_properties(self, sub: NamespaceSubscription) -> dict[str, Any]:
        """The backing webhook subscription's properties: retries up to maxDeliveryCount, within the TTL."""
        push = sub.properties["deliveryConfiguration"]["push"]
        minutes = max(1, min(1440, int(sub.ttl_seconds // 60)))
        return {"destination": push["destination"], "filter": sub.classic_filter(), "eventDeliverySchema": CLOUDEVENTS,
                "retryPolicy": {"maxDeliveryAttempts": sub.max_delivery_count, "eventTimeToLiveInMinutes": minutes}}

    @staticmethod
    def _check_handshake(sub: NamespaceSubscription, saved: Saved) -> None:
        if saved.subscription.status != ACTIVE:
            push = sub.properties["deliveryConfiguration"]["push"]
            endpoint = str(push["destination"]["properties"].get("endpointUrl", "")).split("?", 1)[0]
            raise BadRequest(f"Webhook validation handshake failed for {endpoint}: {saved.message}")

    async def _drop_backing(self, topic: NamespaceTopic, name: str) -> None:
        with contextlib.suppress(Missing):
            await self.store.delete_subscription(shadow_topic(topic.namespace, topic.name), name.lower())
        self.grid.catalog.invalidate()

    async def _delete_resources(self, *keys: str) -> None:
        try:
            await self.store.delete_namespace_resources(*(k.lower() for k in keys))
        except Missing as exc:  # deleted concurrently
            raise from_store(exc) from None

    async def _put(self, properties: dict[str, Any], *, create: bool, keys: tuple[str, str, str]) -> None:
        now = self.clock()
        namespace, topic, name = (k.lower() for k in keys)
        try:
            created_at = now if create else (
                await self.store.get_namespace_resource(namespace, topic, name)).created_at
            resource = NamespaceResource(namespace, topic, name, properties, created_at, now)
            await self.store.put_namespace_resource(resource, create=create)
        except AlreadyExists:
            raise Conflict(f"'{'/'.join(filter(None, keys))}' already exists.", code="ResourceAlreadyExists") from None
        self._forget(*keys)

    # data plane: publishing ------------------------------------------------------------------------------
    async def authorize(self, namespace: str, url: str, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Accept a data-plane request carrying one of the namespace's keys or a SAS token (401 otherwise)."""
        try:
            props = (await self._resource(namespace, cached=True)).properties
        except NotFound:
            raise NotFound(f"The namespace '{namespace}' was not found.", code="NotFound") from None
        authenticate_namespace(url, headers, query, (props["key1"], props["key2"]))

    async def publish(self, namespace: str, topic: str, events: list[dict[str, Any]]) -> None:
        """Validate, store and route CloudEvents; returns once they are durable."""
        await self._resource(namespace, topic, cached=True)
        try:
            shadow = await self.grid.catalog.topic(shadow_topic(namespace, topic))
        except Missing:
            raise NotFound(f"Namespace topic '{topic}' was not found.", code="NotFound") from None
        await self.grid.publish(shadow, events)

    # data plane: pull delivery ---------------------------------------------------------------------------
    async def _queue(self, namespace: str, topic: str, name: str) -> tuple[str, NamespaceSubscription]:
        await self._resource(namespace, topic, cached=True)
        props = (await self._resource(namespace, topic, name, cached=True)).properties
        sub = NamespaceSubscription(namespace, topic, props.get("name", name), props)
        if sub.delivery_mode != QUEUE:
            raise BadRequest(f"Event subscription '{name}' delivers by {PUSH}; only Queue subscriptions can be"
                             " received from.", code="BadRequest")
        return shadow_topic(namespace, topic), sub

    async def receive(
        self, namespace: str, topic: str, subscription: str, max_events: int = 1, max_wait: float = 60
    ) -> list[Received]:
        """Lock and return up to `max_events` events, waiting up to `max_wait` seconds for the first."""
        problems = []
        if not MAX_EVENTS[0] <= max_events <= MAX_EVENTS[1]:
            problems.append(Detail("BadRequest", f"maxEvents must be between 1 and 100; got {max_events}."))
        if not MAX_WAIT[0] <= max_wait <= MAX_WAIT[1]:
            problems.append(Detail("BadRequest", f"maxWaitTime must be between 10 and 120 seconds; got {max_wait}."))
        if problems:
            raise InvalidInput.from_problems(problems)
        shadow, sub = await self._queue(namespace, topic, subscription)
        deadline = time.monotonic() + max_wait
        while True:
            woken = self.waker.current()
            now = self.clock()
            locked = await self.store.lock_events(
                shadow, sub.name.lower(), now, max_events, now + self.timing.scaled(sub.lock_seconds),
                max_deliveries=sub.max_delivery_count, published_after=now - self.timing.scaled(sub.ttl_seconds))
            left = deadline - time.monotonic()
            if locked or left <= 0:
                return [Received(e.lock_token, e.delivery_count, e.event.body) for e in locked]
            await Waker.wait(woken, min(POLL, left))

    async def acknowledge(self, namespace: str, topic: str, subscription: str, tokens: list[str]) -> LockResults:
        return await self._settle(namespace, topic, subscription, tokens, "acknowledge")

    async def release(
        self, namespace: str, topic: str, subscription: str, tokens: list[str], delay_seconds: int = 0
    ) -> LockResults:
        """Unlock events; they can be received again after `delay_seconds` (0, 10, 60, 600 or 3600)."""
        if delay_seconds not in RELEASE_DELAYS:
            raise InvalidInput.from_problems([Detail("BadRequest", f"releaseDelayInSeconds must be one of"
                                                     f" {', '.join(map(str, RELEASE_DELAYS))}; got {delay_seconds}.")])
        results = await self._settle(namespace, topic, subscription, tokens, "release",
                                     until=self.clock() + self.timing.scaled(delay_seconds))
        self.waker.wake()
        return results

    async def reject(self, namespace: str, topic: str, subscription: str, tokens: list[str]) -> LockResults:
        """Dead-letter events at once (reason `Rejected`)."""
        return await self._settle(namespace, topic, subscription, tokens, "reject", reason="Rejected")

    async def renew_locks(self, namespace: str, topic: str, subscription: str, tokens: list[str]) -> LockResults:
        """Extend locks by the subscription's lock duration from now."""
        _, sub = await self._queue(namespace, topic, subscription)
        until = self.clock() + self.timing.scaled(sub.lock_seconds)
        return await self._settle(namespace, topic, subscription, tokens, "renew", until=until)

    async def _settle(
        self, namespace: str, topic: str, subscription: str, tokens: list[str], action: str, *,
        until: float = 0.0, reason: str = "",
    ) -> LockResults:
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise InvalidInput.from_problems([Detail("BadRequest", "lockTokens must be a non-empty list of"
                                                     " strings.")])
        if len(tokens) > MAX_EVENTS[1]:
            raise InvalidInput.from_problems([Detail("BadRequest", f"At most {MAX_EVENTS[1]} lock tokens may be"
                                                     f" sent at once; got {len(tokens)}.")])
        shadow, sub = await self._queue(namespace, topic, subscription)
        outcomes = await self.store.settle_locks(shadow, sub.name.lower(), tokens, action, self.clock(),
                                                 until=until, reason=reason)
        results = LockResults()
        for token, outcome in outcomes.items():
            if outcome == LOCK_OK:
                results.succeeded.append(token)
            else:
                code, message = _EXPIRED if outcome == LOCK_EXPIRED else _SETTLED if _is_token(token) else _BAD
                results.failed.append({"lockToken": token, "error": {"code": code, "message": message}})
        return results

    # dead letters ----------------------------------------------------------------------------------------
    async def dead_letters(self, namespace: str, topic: str, subscription: str, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered events of a subscription (rejected, out of deliveries or past their TTL), newest first."""
        sub = await self.get_subscription(namespace, topic, subscription)
        return await self.store.list_dead_letters(shadow_topic(namespace, topic), sub.name.lower(), limit)


def _is_token(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _namespace(p: dict[str, Any]) -> Namespace:
    return Namespace(name=p["name"], location=p["location"], key1=p["key1"], key2=p["key2"],
                     capacity=p.get("capacity", 1), tags=p.get("tags", {}))


def _topic(namespace: str, p: dict[str, Any]) -> NamespaceTopic:
    return NamespaceTopic(namespace=namespace, name=p["name"], event_retention_days=p["eventRetentionInDays"])


def _subscription(topic: NamespaceTopic, p: dict[str, Any]) -> NamespaceSubscription:
    props = {k: v for k, v in p.items() if k != "name"}
    return NamespaceSubscription(topic.namespace, topic.name, p["name"], props)


def _check_ttl_fits(sub: NamespaceSubscription, retention_days: int) -> None:
    if sub.ttl_seconds > retention_days * 86400:
        raise InvalidInput.from_problems([Detail("InvalidRequest", f"eventRetentionInDays {retention_days} is shorter"
                                                 f" than the eventTimeToLive of event subscription '{sub.name}'.")])


def _queue_properties(sub: NamespaceSubscription) -> SubscriptionProperties:
    """A queue subscription's backing properties: its filter; no destination, since consumers pull."""
    return SubscriptionProperties(WebHookDestination(""), parse_filter(sub.classic_filter(), CLOUDEVENTS),
                                  event_delivery_schema=CLOUDEVENTS)
