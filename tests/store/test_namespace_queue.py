"""The store contract for namespace resources and queue (pull) subscriptions, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.store import Store
from commgrid.store.base import (
    LOCK_EXPIRED,
    LOCK_OK,
    LOCK_UNKNOWN,
    AlreadyExists,
    Missing,
    NamespaceResource,
    NewEvent,
    Route,
    Subscription,
    Topic,
)
from tests.store.test_contract import open_nodes

QUEUE_PROPS = SubscriptionProperties(WebHookDestination(""))  # a queue subscription has no destination

NOW = 1_700_000_000.0
TOPIC = "ns1/orders"


def resource(namespace: str, topic: str = "", name: str = "", **props: object) -> NamespaceResource:
    return NamespaceResource(namespace, topic, name, dict(props), created_at=NOW, updated_at=NOW)


async def queue(store: Store, count: int, subscription: str = "q") -> None:
    """A namespace topic's shadow topic with one queue subscription holding `count` events."""
    try:
        await store.create_topic(Topic(name=TOPIC, arm_id="/x", kind="namespace", created_at=NOW))
        await store.create_subscription(Subscription(topic=TOPIC, name=subscription, properties=QUEUE_PROPS,
                                                     status="Queue", created_at=NOW, updated_at=NOW))
    except AlreadyExists:
        pass
    events = [NewEvent(TOPIC, f"e{i}", "T", "", "", b'{"id":"e%d"}' % i) for i in range(count)]
    await store.append_events(events, [Route(i, subscription) for i in range(count)], NOW)


async def test_namespace_resources_crud(store: Store) -> None:
    await store.put_namespace_resource(resource("ns1", display="NS1"), create=True)
    await store.put_namespace_resource(resource("ns1", "orders"), create=True)
    await store.put_namespace_resource(resource("ns1", "orders", "q"), create=True)
    await store.put_namespace_resource(resource("ns2"), create=True)
    with pytest.raises(AlreadyExists):
        await store.put_namespace_resource(resource("ns1"), create=True)
    assert [r.namespace for r in await store.list_namespace_resources()] == ["ns1", "ns2"]
    assert [r.topic for r in await store.list_namespace_resources("ns1")] == ["orders"]
    assert [r.name for r in await store.list_namespace_resources("ns1", "orders")] == ["q"]
    await store.put_namespace_resource(resource("ns1", display="changed"), create=False)
    assert (await store.get_namespace_resource("ns1")).properties == {"display": "changed"}
    with pytest.raises(Missing):
        await store.put_namespace_resource(resource("nope"), create=False)
    await store.delete_namespace_resources("ns1")
    assert [r.namespace for r in await store.list_namespace_resources()] == ["ns2"]
    with pytest.raises(Missing):
        await store.get_namespace_resource("ns1", "orders", "q")
    with pytest.raises(Missing):
        await store.delete_namespace_resources("ns1")


async def test_lock_acknowledge_and_unknown_token(store: Store) -> None:
    await queue(store, 3)
    locked = await store.lock_events(TOPIC, "q", NOW, 2, NOW + 60, max_deliveries=10, published_after=0)
    assert [e.event.id for e in locked] == ["e0", "e1"]
    assert [e.delivery_count for e in locked] == [1, 1]
    again = await store.lock_events(TOPIC, "q", NOW + 1, 5, NOW + 61, max_deliveries=10, published_after=0)
    assert [e.event.id for e in again] == ["e2"]
    tokens = [locked[0].lock_token, "nope"]
    assert await store.settle_locks(TOPIC, "q", tokens, "acknowledge", NOW + 2) == {
        locked[0].lock_token: LOCK_OK, "nope": LOCK_UNKNOWN}
    assert (await store.settle_locks(TOPIC, "q", [locked[0].lock_token], "acknowledge", NOW + 2)
            == {locked[0].lock_token: LOCK_UNKNOWN})
    assert await store.count_pending_deliveries(TOPIC, "q") == 2


async def test_lapsed_lock_returns_with_higher_count_and_old_token_expires(store: Store) -> None:
    await queue(store, 1)
    first = await store.lock_events(TOPIC, "q", NOW, 1, NOW + 60, max_deliveries=10, published_after=0)
    assert await store.lock_events(TOPIC, "q", NOW + 59, 1, NOW + 119, max_deliveries=10, published_after=0) == []
    token = first[0].lock_token
    assert await store.settle_locks(TOPIC, "q", [token], "renew", NOW + 61, until=NOW + 200) == {token: LOCK_EXPIRED}
    second = await store.lock_events(TOPIC, "q", NOW + 61, 1, NOW + 121, max_deliveries=10, published_after=0)
    assert second[0].delivery_count == 2 and second[0].lock_token != token
    assert await store.settle_locks(TOPIC, "q", [token], "acknowledge", NOW + 62) == {token: LOCK_UNKNOWN}


async def test_release_with_delay_and_renew(store: Store) -> None:
    await queue(store, 1)
    token = (await store.lock_events(TOPIC, "q", NOW, 1, NOW + 60, max_deliveries=10, published_after=0))[0].lock_token
    assert await store.settle_locks(TOPIC, "q", [token], "renew", NOW + 30, until=NOW + 90) == {token: LOCK_OK}
    assert await store.settle_locks(TOPIC, "q", [token], "release", NOW + 70, until=NOW + 80) == {token: LOCK_OK}
    assert await store.lock_events(TOPIC, "q", NOW + 79, 1, NOW + 139, max_deliveries=10, published_after=0) == []
    back = await store.lock_events(TOPIC, "q", NOW + 80, 1, NOW + 140, max_deliveries=10, published_after=0)
    assert back[0].delivery_count == 2


async def test_reject_max_deliveries_and_ttl_dead_letter(store: Store) -> None:
    await queue(store, 3)
    locked = await store.lock_events(TOPIC, "q", NOW, 3, NOW + 60, max_deliveries=1, published_after=0)
    await store.settle_locks(TOPIC, "q", [locked[0].lock_token], "reject", NOW + 1, reason="Rejected")
    await store.settle_locks(TOPIC, "q", [locked[2].lock_token], "release", NOW + 1, until=NOW + 1)
    # e1's lock lapses after its one delivery; e2 was released but also used its one delivery
    assert await store.lock_events(TOPIC, "q", NOW + 61, 3, NOW + 121, max_deliveries=1, published_after=0) == []
    reasons = {d.event.id: d.reason for d in await store.list_dead_letters(TOPIC, "q")}
    assert reasons == {"e0": "Rejected", "e1": "MaxDeliveryCountExceeded", "e2": "MaxDeliveryCountExceeded"}
    await queue(store, 1)
    assert await store.lock_events(TOPIC, "q", NOW + 62, 3, NOW + 122, max_deliveries=5, published_after=NOW) == []
    assert (await store.list_dead_letters(TOPIC, "q", limit=1))[0].reason == "TimeToLiveExceeded"
    assert await store.count_pending_deliveries(TOPIC, "q") == 0


async def test_concurrent_lockers_never_share_an_event(store_url: str) -> None:
    """Two store instances (two nodes) lock one backlog concurrently: every event goes to exactly one."""
    async with open_nodes(store_url, 2) as stores:
        await queue(stores[0], 300)

        async def drain(s: Store) -> list[str]:
            got: list[str] = []
            for _ in range(100):
                batch = await s.lock_events(TOPIC, "q", NOW, 7, NOW + 60, max_deliveries=10, published_after=0)
                if not batch:
                    return got
                got += [e.event.id for e in batch]
            return got

        a, b = await asyncio.gather(drain(stores[0]), drain(stores[1]))
        assert not set(a) & set(b)
        assert len(a) + len(b) == 300


async def test_a_token_settles_only_in_its_own_subscription(store: Store) -> None:
    await queue(store, 1, "a")
    await store.create_subscription(Subscription(topic=TOPIC, name="b", properties=QUEUE_PROPS, status="Queue",
                                                 created_at=NOW, updated_at=NOW))
    token = (await store.lock_events(TOPIC, "a", NOW, 1, NOW + 60, max_deliveries=10, published_after=0))[0].lock_token
    assert await store.settle_locks(TOPIC, "b", [token], "acknowledge", NOW + 1) == {token: LOCK_UNKNOWN}
    assert await store.settle_locks(TOPIC, "A", [token], "acknowledge", NOW + 1) == {token: LOCK_OK}
