"""The delivery worker in process, to a real aiohttp webhook on loopback: batching, the retry ladder,
dead-lettering and redelivery. The Runtime runs at time scale 600 (the 10 s first retry takes 17 ms)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from commgrid.grid.timing import MIN_LEASE, Timing
from commgrid.runtime import Runtime
from commgrid.store.base import AttemptRecord, DeadLetter, StoreError
from tests.acceptance.receiver import Receiver
from tests.inprocess.conftest import create_topic, eventually


@pytest.fixture
async def orders(runtime: Runtime) -> dict[str, Any]:
    return await create_topic(runtime, "orders")


def eg(prefix: str, n: int = 0, **data: Any) -> dict[str, Any]:
    """An event as azure-eventgrid's EventGridEvent sends it."""
    return {"id": str(uuid.uuid4()), "subject": f"/{prefix}/{n}", "eventType": "Order.Created",
            "eventTime": "2024-01-01T00:00:00Z", "data": {"n": n, **data}, "dataVersion": "2.0"}


async def subscribe(runtime: Runtime, name: str, endpoint: str, prefix: str, *,
                    destination: dict[str, Any] | None = None, **properties: Any) -> None:
    """An Active webhook subscription to `orders` for subjects under `/prefix/`."""
    body = {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": endpoint, **(destination or {})}},
            "filter": {"subjectBeginsWith": f"/{prefix}/"}, **properties}
    saved = await runtime.subscriptions.create("orders", name, body)
    assert saved.subscription.status == "Active", saved.message
    await settle_catalog(runtime)


async def settle_catalog(runtime: Runtime) -> None:
    """Wait until the node's catalog reflects every stored change (as `/healthz` shows it)."""
    version = await runtime.store.subscriptions_version()

    async def caught_up() -> bool:
        return runtime.grid.catalog.version >= version

    await eventually(caught_up, what="the catalog to reflect the new subscription")


async def settled(runtime: Runtime) -> None:
    """Wait until no delivery is pending: then nothing more (a retry, a duplicate) can arrive."""

    async def none_pending() -> bool:
        return await runtime.store.count_pending_deliveries() == 0

    await eventually(none_pending, what="every delivery done")


async def publish(client: httpx.AsyncClient, topic: dict[str, Any], events: list[dict[str, Any]]) -> None:
    response = await client.post(topic["httpEndpoint"], json=events, headers={"aeg-sas-key": topic["key1"]})
    assert response.status_code == 200, response.text


async def test_batches_honour_count_and_size(runtime: Runtime, client: httpx.AsyncClient, webhook: Receiver,
                                             orders: dict) -> None:
    rx = webhook
    await subscribe(runtime, "batch", rx.endpoint("batch"), "batch",
                    destination={"maxEventsPerBatch": 3, "preferredBatchSizeInKilobytes": 1})
    await publish(client, orders, [eg("batch", i) for i in range(7)] + [eg("batch", 99, blob="x" * 3000)])
    await rx.until(lambda: len(rx.events("batch")) >= 8, what="8 events at /batch")
    events = rx.events("batch")
    sizes = [len(r.events()) for r in rx.received("batch")]
    assert sorted(e["data"]["n"] for e in events) == [*range(7), 99]
    assert max(sizes) == 3 and sum(sizes) == 8
    for request in rx.received("batch"):
        assert isinstance(request.json(), list)
        if len(request.events()) > 1:
            assert len(request.body) <= 1024 + 2
        else:
            assert request.events()[0]["data"]["n"] == 99 or len(request.body) <= 1024
    big = next(r for r in rx.received("batch") if any(e["data"]["n"] == 99 for e in r.events()))
    assert len(big.events()) == 1  # larger than the preferred size: alone


async def test_retries_follow_the_ladder_then_succeed(runtime: Runtime, client: httpx.AsyncClient,
                                                      webhook: Receiver, orders: dict) -> None:
    rx = webhook
    await subscribe(runtime, "flaky", rx.endpoint("flaky", statuses=[500, 500, 503, 404]), "flaky")
    sent = eg("flaky", 1)
    await publish(client, orders, [sent])
    await rx.until(lambda: len(rx.received("flaky")) >= 5, timeout=15, what="five attempts")
    attempts = rx.received("flaky")
    assert [r.headers["aeg-delivery-count"] for r in attempts] == ["0", "1", "2", "3", "4"]
    assert {r.events()[0]["id"] for r in attempts} == {sent["id"]}
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # ladder 10 s, 30 s, 1 min, 5 min; 503 waits at least 30 s, 404 at least 5 min; all divided by 600
    for gap, minimum in zip(gaps, [10 / 600, 30 / 600, 60 / 600, 300 / 600], strict=True):
        assert gap >= minimum * 0.9, gaps
    await settled(runtime)
    assert len(rx.received("flaky")) == 5 and await runtime.subscriptions.dead_letters("orders", "flaky") == []


async def test_max_attempts_dead_letter_then_redeliver(runtime: Runtime, client: httpx.AsyncClient,
                                                       webhook: Receiver, orders: dict) -> None:
    rx = webhook
    await subscribe(runtime, "down", rx.endpoint("down", status=500), "down", retryPolicy={"maxDeliveryAttempts": 3})
    sent = eg("down", 1)
    await publish(client, orders, [sent])

    async def dead() -> list[DeadLetter]:
        return await runtime.subscriptions.dead_letters("orders", "down")

    (letter,) = await eventually(dead, what="a dead letter")
    assert letter.event.id == sent["id"] and letter.event.subject == "/down/1"
    assert (letter.reason, letter.attempts) == ("MaxDeliveryAttemptsExceeded", 3)
    assert (letter.last_outcome, letter.last_status) == ("Busy", 500)
    assert len(rx.received("down")) == 3
    rx.behave("down", status=200)
    assert await runtime.subscriptions.redeliver([letter.id]) == 1
    await rx.until(lambda: len(rx.received("down")) == 4, what="the redelivery")
    assert rx.received("down")[-1].headers["aeg-delivery-count"] == "0"
    assert await dead() == []


async def test_a_publish_goes_out_without_a_claim(runtime: Runtime, client: httpx.AsyncClient, webhook: Receiver,
                                                  orders: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    rx = webhook
    await subscribe(runtime, "direct", rx.endpoint("direct"), "direct")
    await publish(client, orders, [eg("direct", 0)])  # the worker's first claim also reads the new subscription
    await rx.until(lambda: len(rx.events("direct")) == 1, what="the first event at /direct")
    claimed: list[Any] = []
    claim = runtime.store.claim_due_deliveries

    async def recorded(*args: Any, **kwargs: Any) -> list[Any]:
        found = await claim(*args, **kwargs)
        claimed.extend(found)
        return found

    monkeypatch.setattr(runtime.store, "claim_due_deliveries", recorded)
    for n in range(1, 4):
        await publish(client, orders, [eg("direct", n)])
    await rx.until(lambda: len(rx.events("direct")) == 4, what="4 events at /direct")
    await settled(runtime)
    assert sorted(e["data"]["n"] for e in rx.events("direct")) == [0, 1, 2, 3]
    assert claimed == []  # stored leased to the worker, handed over by the commit


async def test_a_success_and_its_attempt_are_written_together(runtime: Runtime, client: httpx.AsyncClient,
                                                              webhook: Receiver, orders: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One write per batch of outcomes; when it fails, the delivery's lease lapses and it is sent again."""
    rx = webhook
    await subscribe(runtime, "twice", rx.endpoint("twice"), "twice")
    assert runtime.delivery is not None
    monkeypatch.setattr(runtime.delivery, "timing", Timing(runtime.settings.time_scale, MIN_LEASE))
    writes: list[tuple[list[int], list[AttemptRecord]]] = []
    record = runtime.store.record_outcomes

    async def failing_once(completed: Sequence[int], attempts: Sequence[AttemptRecord], keep: int) -> None:
        writes.append((list(completed), list(attempts)))
        if len(writes) == 1:
            raise StoreError("disk full")
        await record(completed, attempts, keep)

    monkeypatch.setattr(runtime.store, "record_outcomes", failing_once)
    await publish(client, orders, [eg("twice", 1)])
    await rx.until(lambda: len(rx.received("twice")) == 2, timeout=10, what="the delivery sent again")
    await settled(runtime)
    (first_ids, first_attempts), (second_ids, second_attempts) = writes
    assert first_ids == second_ids and len(first_ids) == 1  # the same stored delivery, claimed again
    assert [a.outcome for a in first_attempts + second_attempts] == ["Succeeded", "Succeeded"]
    seq = first_attempts[0].event_seq
    assert [a.outcome for a in await runtime.store.list_attempts(seq)] == ["Succeeded"]  # the written one


async def test_an_endpoint_gets_as_many_tasks_as_it_takes_requests_at_once(
        runtime: Runtime, client: httpx.AsyncClient, webhook: Receiver, orders: dict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches beyond the endpoint's concurrency wait in its queue (not as tasks) and all go out, in order."""
    rx = webhook
    await subscribe(runtime, "slow", rx.endpoint("slow", delay=0.05), "slow")
    assert runtime.delivery is not None
    monkeypatch.setattr(runtime.delivery, "_per_endpoint", 2)  # before the endpoint's first delivery
    most = 0

    async def count_tasks() -> None:
        nonlocal most
        while True:
            most = max(most, len(runtime.delivery._tasks))  # type: ignore[union-attr]
            await asyncio.sleep(0.005)

    counting = asyncio.create_task(count_tasks())
    await publish(client, orders, [eg("slow", n) for n in range(12)])
    await rx.until(lambda: len(rx.events("slow")) == 12, what="12 events at /slow")
    await settled(runtime)
    counting.cancel()
    assert 2 <= most <= 3  # two senders (and the hand-over's dispatch)
    arrivals = [r.events()[0]["data"]["n"] for r in rx.received("slow")]
    assert sorted(arrivals) == list(range(12)) and arrivals[:2] in ([0, 1], [1, 0])
    assert rx.received("slow")[-1].at - rx.received("slow")[0].at >= 0.05 * 5 * 0.9  # two at a time
