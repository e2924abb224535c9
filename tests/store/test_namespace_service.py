"""The Namespaces service on a real store of each backend: resources, recovery from interrupted changes, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from commgrid.config import Settings
from commgrid.errors import BadRequest, InvalidInput, NotFound
from commgrid.grid.namespaces.service import shadow_topic
from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.runtime import Runtime
from commgrid.store.base import Subscription, Topic

QUEUE_PROPS = SubscriptionProperties(WebHookDestination(""))  # a queue subscription has no destination


@pytest.fixture
async def runtime(tmp_path, store_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path, store_url=store_url))
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()


async def test_resources_keys_and_cascading_delete(runtime: Runtime) -> None:
    svc = runtime.namespaces
    ns, created = await svc.create_or_update_namespace("Shop", {"sku": {"capacity": 2}, "tags": {"team": "a"}})
    assert created and ns.capacity == 2
    _, created = await svc.create_or_update_namespace("shop", {"tags": {}})
    assert not created and (await svc.get_namespace("SHOP")).name == "Shop"
    old = await svc.list_keys("shop")
    new = await svc.regenerate_key("shop", "key2")
    assert new["key1"] == old["key1"] and new["key2"] != old["key2"]
    await svc.create_or_update_topic("shop", "orders", {"eventRetentionInDays": 2})
    await svc.create_or_update_subscription("shop", "orders", "fulfil", {})
    assert [t.name for t in await svc.list_topics("shop")] == ["orders"]
    assert [s.name for s in await svc.list_subscriptions("shop", "orders")] == ["fulfil"]
    assert "shop/orders" not in [t.name for t in await runtime.grid.list_topics()], "backing topics stay hidden"
    with pytest.raises(InvalidInput):
        await svc.create_or_update_topic("shop", "orders", {"eventRetentionInDays": 0})
    await svc.delete_namespace("shop")
    assert await svc.list_namespaces() == []
    with pytest.raises(NotFound):
        await svc.get_topic("shop", "orders")
    assert await runtime.store.list_subscriptions(shadow_topic("shop", "orders")) == []


async def test_a_topic_shorter_than_a_subscription_ttl_is_refused(runtime: Runtime) -> None:
    svc = runtime.namespaces
    await svc.create_or_update_namespace("shop")
    await svc.create_or_update_topic("shop", "orders", {"eventRetentionInDays": 7})
    await svc.create_or_update_subscription("shop", "orders", "long", {"deliveryConfiguration": {
        "deliveryMode": "Queue", "queue": {"eventTimeToLive": "P5D"}}})
    with pytest.raises(InvalidInput, match="eventTimeToLive"):
        await svc.create_or_update_topic("shop", "orders", {"eventRetentionInDays": 3})


async def test_leftovers_of_interrupted_changes_are_replaced(runtime: Runtime) -> None:
    svc, store = runtime.namespaces, runtime.store
    await svc.create_or_update_namespace("shop")
    await store.create_topic(Topic(name=shadow_topic("shop", "orders"), arm_id="/x", kind="namespace"))
    await svc.create_or_update_topic("shop", "orders")  # a backing topic without its resource
    await store.create_subscription(Subscription(topic=shadow_topic("shop", "orders"), name="fulfil",
                                                 properties=QUEUE_PROPS, status="Queue"))
    await svc.create_or_update_subscription("shop", "orders", "fulfil", {})  # a backing subscription alone
    await store.delete_subscription(shadow_topic("shop", "orders"), "fulfil")
    await svc.create_or_update_subscription("shop", "orders", "fulfil", {})  # a resource without its backing
    await svc.publish("shop", "orders", [{"specversion": "1.0", "id": "1", "source": "/s", "type": "T"}])
    got = await svc.receive("shop", "orders", "fulfil", 10, 10)
    assert [r.delivery_count for r in got] == [1]


async def test_data_plane_limits(runtime: Runtime) -> None:
    svc = runtime.namespaces
    await svc.create_or_update_namespace("shop")
    await svc.create_or_update_topic("shop", "orders")
    await svc.create_or_update_subscription("shop", "orders", "fulfil", {})
    with pytest.raises(InvalidInput) as caught:
        await svc.receive("shop", "orders", "fulfil", 0, 121)
    assert len(caught.value.details) == 2
    with pytest.raises(InvalidInput):
        await svc.acknowledge("shop", "orders", "fulfil", [])
    with pytest.raises(InvalidInput):
        await svc.release("shop", "orders", "fulfil", ["t"], delay_seconds=30)
    with pytest.raises(NotFound):
        await svc.receive("shop", "orders", "nope", 1, 10)
    with pytest.raises(BadRequest):
        await svc.regenerate_key("shop", "key3")
