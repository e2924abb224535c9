"""The group committer over a real SQLite store: concurrent commits share one transaction, a failed
transaction fails every request in it, and listeners hear of commits that created deliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from commgrid.grid.committer import GroupCommitter
from commgrid.store import Store, store_from_url
from commgrid.store.base import Delivery, Lease, NewEvent, Route
from tests.store.test_contract import event, topic, with_subscription


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    s = store_from_url(sqlite_url)
    await s.open()
    await s.create_topic(topic())
    await with_subscription(s)
    try:
        yield s
    finally:
        await s.close()


class Transactions:
    """Counts `append_events` transactions of a real store, and can make the next ones fail."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        self.failure: Exception | None = None
        append = store.append_events

        async def counted(events: list[NewEvent], routes: list[Route], now: float,
                          lease: Lease | None = None) -> list[Delivery]:
            self.batches.append([e.id for e in events])
            if self.failure is not None:
                raise self.failure
            return await append(events, routes, now, lease)

        monkeypatch.setattr(store, "append_events", counted)


async def test_concurrent_commits_share_one_transaction(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    transactions = Transactions(store, monkeypatch)
    committer = GroupCommitter(store)
    await asyncio.gather(*(committer.commit([event(i)], [Route(0, "sub")]) for i in range(50)))
    assert transactions.batches == [[f"id-{i}" for i in range(50)]]
    assert await store.count_events("orders") == 50
    assert await store.count_pending_deliveries("orders", "sub") == 50


async def test_a_commit_made_in_the_turn_after_the_first_shares_its_transaction(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose body was read in the event loop's next turn still joins the flush the first started."""
    transactions = Transactions(store, monkeypatch)
    committer = GroupCommitter(store)

    async def later() -> None:
        await asyncio.sleep(0)
        await committer.commit([event(1)], [])

    await asyncio.gather(committer.commit([event(0)], []), later())
    assert transactions.batches == [["id-0", "id-1"]]


async def test_a_batch_is_cut_at_max_events(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    transactions = Transactions(store, monkeypatch)
    committer = GroupCommitter(store, max_events=4)
    await asyncio.gather(*(committer.commit([event(2 * i), event(2 * i + 1)], []) for i in range(5)))
    assert [len(b) for b in transactions.batches] == [4, 4, 2]
    assert await store.count_events("orders") == 10


async def test_a_store_failure_fails_every_waiter_and_the_next_commit_succeeds(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = Transactions(store, monkeypatch)
    transactions.failure = OSError("disk full")
    committer = GroupCommitter(store)
    results = await asyncio.gather(*(committer.commit([event(i)], []) for i in range(10)), return_exceptions=True)
    assert len(transactions.batches) == 1
    assert all(r is transactions.failure for r in results)
    assert await store.count_events("orders") == 0
    transactions.failure = None
    await committer.commit([event(99)], [])
    assert await store.count_events("orders") == 1


async def test_listeners_hear_of_commits_that_created_deliveries(store: Store) -> None:
    committer = GroupCommitter(store)
    heard: list[int] = []
    committer.listeners.append(lambda: heard.append(len(heard)))
    await committer.commit([event(1)], [])  # no subscription matched: no delivery to wake anyone for
    assert heard == []
    await asyncio.gather(committer.commit([event(2)], [Route(0, "sub")]), committer.commit([event(3)], []))
    assert heard == [0]  # once per transaction
    await committer.commit([event(4)], [Route(0, "sub")])
    assert heard == [0, 1]


class LeasingAll:
    """A claimer taking every route (a delivery worker with room for everything)."""

    def __init__(self) -> None:
        self.taken: list[tuple[list[Delivery], Lease]] = []

    def lease_routes(self, events: Sequence[NewEvent], routes: Sequence[Route]) -> Lease | None:
        for route in routes:
            route.leased = route.subscription == "sub"
        return Lease("this-node", time.time() + 30)

    def take(self, deliveries: list[Delivery], lease: Lease) -> None:
        self.taken.append((deliveries, lease))


async def test_a_claimer_takes_the_deliveries_it_leased_as_they_are_committed(store: Store) -> None:
    await with_subscription(store, "other")
    committer = GroupCommitter(store)
    claimer = committer.claimer = LeasingAll()
    heard: list[int] = []
    committer.listeners.append(lambda: heard.append(len(heard)))
    await asyncio.gather(*(committer.commit([event(i)], [Route(0, "sub")]) for i in range(3)))
    ((deliveries, lease),) = claimer.taken  # one transaction, one hand-over
    assert sorted(d.event.id for d in deliveries) == ["id-0", "id-1", "id-2"]
    assert lease.owner == "this-node"
    assert heard == []  # nothing left for a claim: the worker is not woken
    assert await store.claim_due_deliveries("elsewhere", time.time(), 10, 30) == []
    await committer.commit([event(5)], [Route(0, "sub"), Route(0, "other")])
    assert [d.subscription for d in claimer.taken[1][0]] == ["sub"]
    assert heard == [0]  # "other" waits for a claim
    assert [d.subscription for d in await store.claim_due_deliveries("elsewhere", time.time(), 10, 30)] == ["other"]
