"""Store contract for delivery attempts and the console's reads; runs against SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from commgrid.store import Store
from commgrid.store.base import Attempt, AttemptRecord, EventQuery, Missing, Route, StoreError
from tests.store.test_contract import NOW, event, one_claimed_delivery, open_nodes, topic, with_subscription


def attempt(seq: int, n: int, *, sub: str = "sub", outcome: str = "Succeeded", status: int | None = 200,
            response: str = "ok", topic: str = "orders") -> AttemptRecord:
    return AttemptRecord(topic=topic, subscription=sub, event_seq=seq, attempt=n, at=NOW + n, outcome=outcome,
                         status=status, duration=0.25, error=None if status else "refused", response=response)


async def test_attempts_are_listed_per_event_and_per_subscription(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([event(0), event(1)], [], NOW)
    first, second = [e.seq for e in await store.events_after(0)]
    await store.record_attempts([attempt(first, 1, outcome="BadRequest", status=400, response="no" * 400),
                                 attempt(second, 1, sub="other")], keep=1000)
    await store.record_attempts([attempt(first, 2, status=None, outcome="ConnectionRefused")], keep=1000)
    listed = await store.list_attempts(first)
    assert [(a.attempt, a.outcome, a.status) for a in listed] == [(1, "BadRequest", 400),
                                                                  (2, "ConnectionRefused", None)]
    assert len(listed[0].response) == 512 and listed[1].error == "refused" and listed[0].duration == 0.25
    recent = await store.recent_attempts("orders", "sub", limit=5)
    assert [a.attempt for a in recent] == [2, 1]
    assert [a.event_seq for a in await store.recent_attempts("orders", "other")] == [second]


async def test_attempts_beyond_the_retention_limit_are_forgotten(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([event(0)], [], NOW)
    seq = (await store.events_after(0))[0].seq
    for batch in range(4):
        await store.record_attempts([attempt(seq, batch * 5 + i + 1) for i in range(5)], keep=6)
    kept = [a.attempt for a in await store.list_attempts(seq)]
    assert kept == list(range(15, 21))  # the newest `keep`


async def test_a_completion_and_its_attempt_are_recorded_together(store: Store, store_url: str) -> None:
    delivery = await one_claimed_delivery(store)
    seq = delivery.event.seq
    # an attempt the store refuses (no outcome) takes the completion with it: the delivery stays, to be sent again
    with pytest.raises(StoreError):
        await store.record_outcomes([delivery.id], [replace(attempt(seq, 1), outcome=None)], keep=1000)
    assert await store.count_pending_deliveries() == 1 and await store.list_attempts(seq) == []
    await store.record_outcomes([delivery.id], [attempt(seq, 1)], keep=1000)
    async with open_nodes(store_url, 1) as (other,):  # committed: another connection sees both
        assert await other.count_pending_deliveries() == 0
        assert [(a.attempt, a.outcome) for a in await other.list_attempts(seq)] == [(1, "Succeeded")]
    await store.record_outcomes([], [], keep=1000)  # nothing to write


async def test_search_events_by_topic_type_subject_and_id_with_paging(store: Store) -> None:
    await store.create_topic(topic())
    await store.create_topic(topic("billing"))
    created = [event(i) for i in range(6)]
    created[4].type = "Order.Shipped"
    await store.append_events([*created, event(9, "billing")], [], NOW)
    everything = await store.search_events(EventQuery(), limit=100)
    assert [e.id for e in everything] == ["id-9", "id-5", "id-4", "id-3", "id-2", "id-1", "id-0"]
    assert [e.id for e in await store.search_events(EventQuery(topic="billing"))] == ["id-9"]
    assert [e.id for e in await store.search_events(EventQuery(type="Order.Shipped"))] == ["id-4"]
    assert [e.id for e in await store.search_events(EventQuery(subject="/orders/3"))] == ["id-3"]
    assert [e.id for e in await store.search_events(EventQuery(id="id-2"))] == ["id-2"]
    page = await store.search_events(EventQuery(topic="orders"), limit=2)
    older = await store.search_events(EventQuery(topic="orders", before_seq=page[-1].seq), limit=2)
    assert [e.id for e in page + older] == ["id-5", "id-4", "id-3", "id-2"]
    after = await store.events_after(everything[2].seq)
    assert [e.id for e in after] == ["id-5", "id-9"]
    assert (await store.event_by_seq(everything[0].seq)).id == "id-9"
    with pytest.raises(Missing):
        await store.event_by_seq(10**9)


async def test_an_events_pending_deliveries_dead_letters_and_the_backlog(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await with_subscription(store, "b")
    assert await store.delivery_backlog() == (0, None)
    await store.append_events([event(0)], [Route(0, "a"), Route(0, "b")], NOW)
    await store.append_events([event(1)], [Route(0, "a")], NOW + 5)
    seq = (await store.events_after(0))[0].seq
    pending = await store.event_deliveries(seq)
    assert sorted(d.subscription for d in pending) == ["a", "b"]
    assert await store.delivery_backlog() == (3, NOW)
    dead = next(d for d in pending if d.subscription == "b")
    await store.dead_letter_deliveries([dead.id], "MaxDeliveryAttemptsExceeded", NOW + 1, Attempt("BadRequest", 400,
                                                                                                  NOW + 1))
    assert [d.subscription for d in await store.event_deliveries(seq)] == ["a"]
    letters = await store.event_dead_letters(seq)
    assert [(x.subscription, x.reason, x.last_status) for x in letters] == [("b", "MaxDeliveryAttemptsExceeded", 400)]
    assert await store.delivery_backlog() == (2, NOW)


