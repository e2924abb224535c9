"""`Grid.publish_change`: documents and events commit together, on each backend, through the publish path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from commgrid.config import Settings
from commgrid.errors import InvalidInput
from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.metrics import Metrics
from commgrid.runtime import Runtime
from commgrid.store.base import Document, DocumentWrite, Missing, Subscription, VersionConflict

HOOK = SubscriptionProperties(WebHookDestination("https://127.0.0.1:9/hook"))


@pytest.fixture
async def runtime(tmp_path, store_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path, store_url=store_url))
    await rt.open()
    topic = rt.deployment.system_topic_name
    await rt.store.create_subscription(Subscription(topic=topic, name="all", properties=HOOK))
    rt.grid.catalog.invalidate()
    rt.grid.metrics = rt.metrics
    try:
        yield rt
    finally:
        await rt.close()


def _event(rt: Runtime, n: int) -> dict[str, Any]:
    return {"id": f"e{n}", "eventType": "Microsoft.Communication.Test", "subject": f"test/{n}",
            "eventTime": "2024-01-01T00:00:00Z", "data": {"n": n}, "dataVersion": "1.0",
            "topic": rt.deployment.acs_arm_id}


def _counted(metrics: Metrics, name: str) -> float:
    """The sum of a counter over its labels."""
    return sum(s.value for m in metrics.registry.collect() if m.name == name for s in m.samples
               if s.name.endswith("_total"))


async def test_a_change_is_routed_counted_and_wakes_the_worker(runtime: Runtime) -> None:
    woken: list[int] = []
    runtime.grid.committer.listeners.append(lambda: woken.append(1))
    await runtime.grid.publish_change(runtime.deployment.system_topic_name, [_event(runtime, 1)],
                                      [DocumentWrite("things", "a", {"v": 1}, expect_version=0)])
    assert (await runtime.store.get_document("things", "a")).version == 1
    assert await runtime.store.count_pending_deliveries(runtime.deployment.system_topic_name, "all") == 1
    assert woken == [1]
    assert _counted(runtime.metrics, "eventgrid_publish_success_count") == 1


async def test_a_conflicting_change_publishes_nothing_and_is_not_a_failure(runtime: Runtime) -> None:
    topic = runtime.deployment.system_topic_name
    await runtime.store.put_document(Document("things", "a", {"v": 1}))
    with pytest.raises(VersionConflict):
        await runtime.grid.publish_change(topic, [_event(runtime, 1)],
                                          [DocumentWrite("things", "b", {"v": 1}),
                                           DocumentWrite("things", "a", {"v": 2}, expect_version=0)])
    with pytest.raises(Missing):
        await runtime.store.get_document("things", "b")
    assert await runtime.store.count_events(topic) == 0
    assert await runtime.store.count_pending_deliveries() == 0
    assert _counted(runtime.metrics, "eventgrid_publish_fail_count") == 0


async def test_invalid_events_fail_before_anything_is_written(runtime: Runtime) -> None:
    bad = _event(runtime, 1) | {"subject": None}
    with pytest.raises(InvalidInput):
        await runtime.grid.publish_change(runtime.deployment.system_topic_name, [bad],
                                          [DocumentWrite("things", "a", {"v": 1})])
    with pytest.raises(Missing):
        await runtime.store.get_document("things", "a")
