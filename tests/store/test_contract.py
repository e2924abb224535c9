"""The contract every Store backend honours; runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.store import Store, store_from_url
from commgrid.store.base import (
    AlreadyExists,
    Attempt,
    Delivery,
    Document,
    DocumentWrite,
    EventQuery,
    Lease,
    Missing,
    NewEvent,
    Route,
    StoreNotOpen,
    Subscription,
    Topic,
    VersionConflict,
)

NOW = 1_700_000_000.0
PROPS = SubscriptionProperties(WebHookDestination("http://127.0.0.1:9/hook?code=s"))


def topic(name: str = "orders") -> Topic:
    return Topic(name=name, arm_id=f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/{name}",
                 key1="k1", key2="k2", created_at=NOW)


def event(i: int, topic_name: str = "orders") -> NewEvent:
    return NewEvent(topic=topic_name, id=f"id-{i}", type="Order.Created", subject=f"/orders/{i}",
                    time="2024-01-01T00:00:00Z", body=b'{"id":"id-%d"}' % i)


async def with_subscription(store: Store, name: str = "sub", status: str = "Active") -> None:
    await store.create_subscription(Subscription(topic="orders", name=name, properties=PROPS,
                                                 status=status, created_at=NOW, updated_at=NOW))


@contextlib.asynccontextmanager
async def open_nodes(store_url: str, count: int) -> AsyncIterator[list[Store]]:
    """`count` stores open on one database, as `count` nodes would have them; closed on the way out."""
    stores = [store_from_url(store_url) for _ in range(count)]
    for s in stores:
        await s.open()
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


async def one_claimed_delivery(store: Store) -> Delivery:
    """Topic `orders` with subscription `sub` and one event (`id-0`), its delivery claimed at NOW."""
    await store.create_topic(topic())
    await with_subscription(store)
    await store.append_events([event(0)], [Route(0, "sub")], NOW)
    (claimed,) = await store.claim_due_deliveries("n", NOW, 10, 30)
    return claimed


async def test_settings_roundtrip(store: Store) -> None:
    assert await store.get_setting("a") is None
    assert await store.set_setting("a", "1") == "1"
    assert await store.set_setting("a", "2", only_if_absent=True) == "1"
    assert await store.set_setting("a", "3") == "3"
    assert await store.get_setting("a") == "3"


async def test_announced_settings_move_the_change_counter(store: Store) -> None:
    v0 = await store.subscriptions_version()
    await store.set_setting("quiet", "1")
    assert await store.subscriptions_version() == v0
    await store.set_setting("loud", "1", announce=True)
    assert await store.subscriptions_version() > v0


async def test_watchers_hear_changes_or_are_told_to_poll(store: Store) -> None:
    heard = asyncio.Event()
    stop = await store.watch_changes(heard.set)
    if stop is None:  # a backend that cannot push changes: callers poll the counter
        assert store.url.startswith("sqlite:")  # one file, shared with the CLI
        return
    try:
        await store.set_setting("k", "v", announce=True)
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await stop()


async def test_topic_location_and_tags_persist(store: Store) -> None:
    t = topic("Tagged")
    t.location, t.tags = "westeurope", {"team": "a"}
    await store.create_topic(t)
    got = await store.get_topic("tagged")
    assert (got.location, got.tags) == ("westeurope", {"team": "a"})
    got.tags = {"team": "b", "env": "ci"}
    await store.update_topic(got)
    assert (await store.get_topic("Tagged")).tags == {"team": "b", "env": "ci"}


async def test_topics_crud_case_insensitive(store: Store) -> None:
    await store.create_topic(topic("Orders"))
    with pytest.raises(AlreadyExists):
        await store.create_topic(topic("orders"))
    got = await store.get_topic("ORDERS")
    assert got.name == "Orders" and got.key1 == "k1"
    got.key1 = "new"
    await store.update_topic(got)
    assert (await store.get_topic("orders")).key1 == "new"
    assert [t.name for t in await store.list_topics()] == ["Orders"]
    await store.delete_topic("orders")
    with pytest.raises(Missing):
        await store.get_topic("Orders")
    with pytest.raises(Missing):
        await store.delete_topic("Orders")


async def test_append_and_list_events(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([event(i) for i in range(5)], [], NOW)
    await store.append_events([event(5)], [], NOW + 1)
    listed = await store.list_events("orders", limit=3)
    assert [e.id for e in listed] == ["id-5", "id-4", "id-3"]
    older = await store.list_events("orders", limit=10, before_seq=listed[-1].seq)
    assert [e.id for e in older] == ["id-2", "id-1", "id-0"]
    got = await store.get_event("orders", "id-5")
    assert got.body == b'{"id":"id-5"}' and got.published_at == NOW + 1 and got.subject == "/orders/5"
    assert await store.count_events("orders") == 6
    assert await store.count_events() == 6
    with pytest.raises(Missing):
        await store.get_event("orders", "nope")


async def test_an_event_is_found_by_id_among_thousands_the_newest_when_repeated(store: Store) -> None:
    """Lookups by id reach every stored event, oldest to newest, and the newest of a repeated id (SQLite indexes
    ids per block of 2,048 events, so these span several blocks)."""
    await store.create_topic(topic())
    await store.create_topic(topic("other"))
    for start in range(0, 5000, 500):
        await store.append_events([event(i) for i in range(start, start + 500)], [], NOW)
    await store.append_events([replace(event(7), subject="/again"), event(3, "other")], [], NOW + 1)
    for i in (0, 2047, 2048, 4999):
        assert (await store.get_event("orders", f"id-{i}")).subject == f"/orders/{i}"
    again = await store.get_event("orders", "id-7")
    assert again.subject == "/again"
    assert [e.subject for e in await store.search_events(EventQuery(id="id-7"))] == ["/again", "/orders/7"]
    assert (await store.get_event("other", "id-3")).seq == again.seq + 1
    assert [e.topic for e in await store.search_events(EventQuery(id="id-3", topic="orders"))] == ["orders"]
    with pytest.raises(Missing):
        await store.get_event("other", "id-4")


async def test_concurrent_appends_all_land_with_distinct_seqs(store: Store) -> None:
    await store.create_topic(topic())
    await asyncio.gather(*(store.append_events([event(i * 10 + j) for j in range(10)], [], NOW) for i in range(20)))
    events = await store.list_events("orders", limit=1000)
    assert len(events) == 200
    assert len({e.seq for e in events}) == 200


async def test_subscriptions_crud_and_version(store: Store) -> None:
    await store.create_topic(topic())
    v0 = await store.subscriptions_version()
    await with_subscription(store, "Sub1")
    assert await store.subscriptions_version() > v0
    with pytest.raises(AlreadyExists):
        await with_subscription(store, "Sub1")
    sub = await store.get_subscription("orders", "Sub1")
    sub.properties = replace(PROPS, labels=("a",))
    sub.status = "AwaitingManualAction"
    await store.update_subscription(sub)
    again = await store.get_subscription("orders", "Sub1")
    assert again.properties == sub.properties and again.status == "AwaitingManualAction"
    assert [s.name for s in await store.list_subscriptions("orders")] == ["Sub1"]
    assert [s.name for s in await store.list_subscriptions()] == ["Sub1"]
    await store.delete_subscription("orders", "Sub1")
    with pytest.raises(Missing):
        await store.get_subscription("orders", "Sub1")


async def test_routes_create_deliveries_that_are_claimed_once(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await with_subscription(store, "b")
    routes = [Route(0, "a"), Route(0, "b"), Route(1, "a")]
    await store.append_events([event(0), event(1)], routes, NOW)
    assert await store.count_pending_deliveries() == 3
    assert await store.next_due_at(NOW) == NOW
    first = await store.claim_due_deliveries("node1", NOW, 2, lease=30)
    second = await store.claim_due_deliveries("node2", NOW, 10, lease=30)
    assert len(first) == 2 and len(second) == 1
    assert {d.id for d in first}.isdisjoint({d.id for d in second})
    claimed = first + second
    assert sorted((d.subscription, d.event.id) for d in claimed) == [("a", "id-0"), ("a", "id-1"), ("b", "id-0")]
    assert await store.claim_due_deliveries("node3", NOW, 10, lease=30) == []
    # an expired lease makes the delivery claimable again
    again = await store.claim_due_deliveries("node3", NOW + 31, 10, lease=30)
    assert len(again) == 3
    await store.complete_deliveries([d.id for d in again])
    assert await store.count_pending_deliveries() == 0


async def test_leased_routes_are_stored_claimed_and_returned(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await with_subscription(store, "b")
    routes = [Route(0, "a", leased=True), Route(0, "b"), Route(1, "a", leased=True)]
    taken = await store.append_events([event(0), event(1)], routes, NOW, Lease("node1", NOW + 30))
    assert sorted((d.subscription, d.event.id) for d in taken) == [("a", "id-0"), ("a", "id-1")]
    first = min(taken, key=lambda d: d.event.seq)
    stored = await store.get_event("orders", "id-0")
    assert (first.topic, first.attempts, first.next_attempt_at, first.replay_id) == ("orders", 0, NOW, None)
    assert first.event == stored  # as a claim would have read it back
    assert await store.count_pending_deliveries() == 3
    # the leased ones are another node's until the lease ends; the rest waits for a claim
    (waiting,) = await store.claim_due_deliveries("node2", NOW, 10, 30)
    assert (waiting.subscription, waiting.event.id) == ("b", "id-0")
    await store.complete_deliveries([waiting.id])
    assert await store.renew_leases("node1", [d.id for d in taken], NOW + 60) == 2
    assert await store.claim_due_deliveries("node2", NOW + 31, 10, 30) == []
    again = await store.claim_due_deliveries("node2", NOW + 61, 10, 30)
    assert sorted(d.id for d in again) == sorted(d.id for d in taken)
    await store.complete_deliveries([d.id for d in taken])
    assert await store.count_pending_deliveries("orders", "a") == 0


async def test_without_a_lease_leased_routes_wait_for_a_claim(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    assert await store.append_events([event(0)], [Route(0, "sub", leased=True)], NOW) == []
    assert len(await store.claim_due_deliveries("n", NOW, 10, 30)) == 1


async def test_a_deduplicated_event_leases_nothing(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    once = replace(event(0), dedupe_seconds=60.0)
    lease = Lease("n", NOW + 30)
    taken = await store.append_events([once, replace(event(1), dedupe_seconds=60.0), once],
                                      [Route(0, "sub", leased=True), Route(1, "sub", leased=True),
                                       Route(2, "sub", leased=True)], NOW, lease)
    assert sorted(d.event.id for d in taken) == ["id-0", "id-1"]
    assert await store.append_events([once], [Route(0, "sub", leased=True)], NOW + 1, lease) == []
    assert await store.count_pending_deliveries() == 2


async def test_parallel_claimers_never_share_a_delivery(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.append_events([event(i) for i in range(60)], [Route(i, "sub") for i in range(60)], NOW)
    batches = await asyncio.gather(*(store.claim_due_deliveries(f"n{i}", NOW, 7, 30) for i in range(12)))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_claim_skips_the_given_subscriptions(store: Store) -> None:
    await store.create_topic(topic())
    for name in ("busy", "calm", "other"):
        await with_subscription(store, name)
    await store.append_events([event(0)], [Route(0, "busy"), Route(0, "calm"), Route(0, "other")], NOW)
    claimed = await store.claim_due_deliveries("n", NOW, 10, 30, skip=[("orders", "busy"), ("orders", "other")])
    assert [d.subscription for d in claimed] == ["calm"]
    rest = await store.claim_due_deliveries("n", NOW, 10, 30, skip=[("elsewhere", "busy")])
    assert sorted(d.subscription for d in rest) == ["busy", "other"]


async def test_inactive_subscription_holds_its_deliveries(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "held", status="AwaitingManualAction")
    await store.append_events([event(0)], [Route(0, "held")], NOW)
    assert await store.claim_due_deliveries("n", NOW, 10, 30) == []
    assert await store.next_due_at(NOW) is None
    sub = await store.get_subscription("orders", "held")
    sub.status = "Active"
    await store.update_subscription(sub)
    assert len(await store.claim_due_deliveries("n", NOW, 10, 30)) == 1


async def test_reschedule_records_the_attempt(store: Store) -> None:
    d = await one_claimed_delivery(store)
    await store.reschedule_deliveries([d.id], Attempt("Busy", 503, NOW + 1), NOW + 10)
    assert await store.claim_due_deliveries("n", NOW + 5, 10, 30) == []
    assert await store.next_due_at(NOW + 5) == NOW + 10
    (d2,) = await store.claim_due_deliveries("n", NOW + 10, 10, 30)
    assert (d2.attempts, d2.last_outcome, d2.last_status, d2.last_attempt_at) == (1, "Busy", 503, NOW + 1)


async def test_dead_letter_and_redeliver(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.append_events([event(0), event(1)], [Route(0, "sub"), Route(1, "sub")], NOW)
    d0, d1 = await store.claim_due_deliveries("n", NOW, 10, 30)
    failed = Attempt("BadRequest", 400, NOW + 1)
    await store.dead_letter_deliveries([d0.id], "UndeliverableDueToClientError", NOW + 2, failed)
    await store.dead_letter_deliveries([d1.id], "TimeToLiveExceeded", NOW + 3)
    assert await store.count_pending_deliveries() == 0
    letters = await store.list_dead_letters("orders", "sub")
    assert [x.reason for x in letters] == ["TimeToLiveExceeded", "UndeliverableDueToClientError"]
    bad = letters[1]
    assert (bad.attempts, bad.last_outcome, bad.last_status, bad.last_attempt_at) == (1, "BadRequest", 400, NOW + 1)
    assert bad.dead_lettered_at == NOW + 2 and bad.event.id == "id-0"
    assert letters[0].attempts == 0 and letters[0].last_status is None
    assert (await store.get_dead_letter(bad.id)).event.body == b'{"id":"id-0"}'
    assert await store.redeliver_dead_letters([bad.id], NOW + 5) == 1
    assert [x.id for x in await store.list_dead_letters()] == [letters[0].id]
    (again,) = await store.claim_due_deliveries("n", NOW + 5, 10, 30)
    assert again.event.id == "id-0" and again.attempts == 0
    with pytest.raises(Missing):
        await store.get_dead_letter(bad.id)


async def test_a_last_attempt_without_a_status_leaves_none_behind(store: Store) -> None:
    d = await one_claimed_delivery(store)
    await store.reschedule_deliveries([d.id], Attempt("HttpError", 500, NOW + 1), NOW + 2)
    (d,) = await store.claim_due_deliveries("n", NOW + 2, 10, 30)
    await store.dead_letter_deliveries([d.id], "MaxDeliveryAttemptsExceeded", NOW + 4, Attempt("SocketError", None,
                                                                                               NOW + 3))
    (letter,) = await store.list_dead_letters("orders", "sub")
    assert (letter.last_outcome, letter.last_status, letter.attempts) == ("SocketError", None, 2)


async def test_deleting_subscription_drops_its_deliveries(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await with_subscription(store, "b")
    await store.append_events([event(0)], [Route(0, "a"), Route(0, "b")], NOW)
    await store.delete_subscription("orders", "a")
    assert await store.count_pending_deliveries("orders", "a") == 0
    assert await store.count_pending_deliveries("orders", "b") == 1


async def test_documents_with_optimistic_versions(store: Store) -> None:
    doc = await store.put_document(Document("threads", "t1", {"topic": "hi"}), expect_version=0)
    assert doc.version == 1
    with pytest.raises(VersionConflict):
        await store.put_document(Document("threads", "t1", {"topic": "x"}), expect_version=0)
    doc2 = await store.put_document(Document("threads", "t1", {"topic": "bye"}), expect_version=1)
    assert doc2.version == 2
    assert (await store.get_document("threads", "t1")).value == {"topic": "bye"}
    for k in ("b", "a", "c", "B"):
        await store.put_document(Document("col", k, {"k": k}))
    assert [d.key for d in await store.list_documents("col")] == ["B", "a", "b", "c"]
    assert [d.key for d in await store.list_documents("col", after_key="a", limit=1)] == ["b"]
    await store.delete_document("col", "a")
    with pytest.raises(Missing):
        await store.get_document("col", "a")
    with pytest.raises(Missing):
        await store.delete_document("col", "a")


async def test_scanning_documents_reads_a_prefix_in_key_order_page_by_page(store: Store) -> None:
    for key in ("t1/3", "t1/1", "t2/1", "t1/2", "t0/9", "t1/4"):
        await store.put_document(Document("scan", key, {}))

    async def keys(prefix: str = "", after: str | None = None) -> list[str]:
        return [d.key async for d in store.scan_documents("scan", prefix, after=after, batch=2)]

    assert await keys("t1/") == ["t1/1", "t1/2", "t1/3", "t1/4"]
    assert await keys("t1/", after="t1/2") == ["t1/3", "t1/4"]
    assert await keys() == ["t0/9", "t1/1", "t1/2", "t1/3", "t1/4", "t2/1"]
    assert await keys("t3/") == []


async def test_concurrent_creates_of_one_document_let_exactly_one_win(store: Store) -> None:
    async def create(i: int) -> bool:
        try:
            await store.put_document(Document("race", "k", {"i": i}), expect_version=0)
        except VersionConflict:
            return False
        return True

    assert sum(await asyncio.gather(*(create(i) for i in range(8)))) == 1
    with pytest.raises(VersionConflict):
        await store.put_document(Document("race", "absent", {}), expect_version=3)


async def test_a_change_writes_documents_events_and_deliveries_together(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.put_document(Document("threads", "t1", {"n": 1}))
    await store.put_document(Document("reports", "r1", {"due": 1}))
    await store.write_change(
        [DocumentWrite("threads", "t1", {"n": 2}, expect_version=1), DocumentWrite("messages", "m1", {"n": 1}, 0),
         DocumentWrite("reports", "r1", None, expect_version=1)],
        [event(0), event(1)], [Route(0, "sub"), Route(1, "sub")], NOW,
    )
    assert (await store.get_document("threads", "t1")) == Document("threads", "t1", {"n": 2}, 2)
    assert (await store.get_document("messages", "m1")).version == 1
    with pytest.raises(Missing):
        await store.get_document("reports", "r1")
    assert await store.count_events("orders") == 2
    claimed = await store.claim_due_deliveries("w", NOW, 10, 30)
    assert sorted(d.event.id for d in claimed) == ["id-0", "id-1"]


async def test_a_change_stores_leased_routes_claimed(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    taken = await store.write_change([DocumentWrite("threads", "t1", {"n": 1}, 0)], [event(0), event(1)],
                                     [Route(0, "sub", leased=True), Route(1, "sub")], NOW, Lease("w", NOW + 30))
    assert [(d.event.id, d.event.seq) for d in taken] == [("id-0", (await store.get_event("orders", "id-0")).seq)]
    assert [d.event.id for d in await store.claim_due_deliveries("other", NOW, 10, 30)] == ["id-1"]


@pytest.mark.parametrize("stale", [
    DocumentWrite("threads", "t1", {"n": 9}, expect_version=1),  # changed since it was read
    DocumentWrite("threads", "t1", {"n": 9}, expect_version=0),  # created since
    DocumentWrite("reports", "r1", None, expect_version=1),  # deleting what changed since
])
async def test_a_conflicting_change_writes_nothing(store: Store, stale: DocumentWrite) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.put_document(Document("threads", "t1", {"n": 1}))
    await store.put_document(Document("threads", "t1", {"n": 2}))
    await store.put_document(Document("reports", "r1", {"due": 1}))
    await store.put_document(Document("reports", "r1", {"due": 2}))
    with pytest.raises(VersionConflict):
        await store.write_change([DocumentWrite("messages", "m1", {"n": 1}), stale], [event(0)], [Route(0, "sub")],
                                 NOW)
    with pytest.raises(Missing):
        await store.get_document("messages", "m1")
    assert (await store.get_document("threads", "t1")).value == {"n": 2}
    assert (await store.get_document("reports", "r1")).value == {"due": 2}
    assert await store.count_events() == 0
    assert await store.count_pending_deliveries() == 0


async def test_a_change_may_write_documents_alone(store: Store) -> None:
    await store.write_change([DocumentWrite("a", "1", {"x": 1}, 0), DocumentWrite("b", "1", {"y": 1})], [], [], NOW)
    assert [(await store.get_document(c, "1")).version for c in ("a", "b")] == [1, 1]
    with pytest.raises(Missing):
        await store.write_change([DocumentWrite("a", "1", {"x": 2}), DocumentWrite("a", "gone", None)], [], [], NOW)
    assert (await store.get_document("a", "1")).value == {"x": 1}


async def test_concurrent_changes_of_one_document_let_exactly_one_win(store: Store) -> None:
    await store.put_document(Document("threads", "t1", {"n": 0}))

    async def change(i: int) -> bool:
        try:
            await store.write_change([DocumentWrite("threads", "t1", {"n": i}, expect_version=1)],
                                     [event(i, "events-only")], [], NOW)
        except VersionConflict:
            return False
        return True

    assert sum(await asyncio.gather(*(change(i) for i in range(8)))) == 1
    assert await store.count_events() == 1


async def test_reopen_keeps_data_and_migrations_are_idempotent(store_url: str) -> None:
    first = store_from_url(store_url)
    await first.open()
    await first.create_topic(topic())
    await first.append_events([event(0)], [], NOW)
    await first.close()
    second = store_from_url(store_url)
    await second.open()
    try:
        assert (await second.get_event("orders", "id-0")).id == "id-0"
    finally:
        await second.close()


async def test_reset_forgets_everything(store_url: str) -> None:
    first = store_from_url(store_url)
    await first.open()
    await first.create_topic(topic("Gone"))
    await first.set_setting("deployment.access_key", "k")
    await first.reset()
    await first.close()
    again = store_from_url(store_url)
    await again.open()
    try:
        assert await again.list_topics() == [] and await again.get_setting("deployment.access_key") is None
    finally:
        await again.close()


async def test_use_before_open_fails_clearly(store_url: str) -> None:
    s = store_from_url(store_url)
    with pytest.raises(StoreNotOpen):
        await s.get_topic("x")


async def test_renewed_leases_keep_deliveries_from_other_claimers(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await store.append_events([event(0), event(1)], [Route(0, "a"), Route(1, "a")], NOW)
    held = await store.claim_due_deliveries("node1", NOW, 10, lease=6)
    assert len(held) == 2
    # node1 renews one of them; another node may not renew what it does not hold
    assert await store.renew_leases("node1", [held[0].id], NOW + 20) == 1
    assert await store.renew_leases("node2", [held[1].id], NOW + 20) == 0
    assert await store.renew_leases("node1", [], NOW + 20) == 0
    taken = await store.claim_due_deliveries("node2", NOW + 10, 10, lease=6)
    assert [d.id for d in taken] == [held[1].id]  # only the lapsed lease
    assert await store.renew_leases("node1", [held[1].id], NOW + 30) == 0  # now node2's
    assert await store.claim_due_deliveries("node3", NOW + 21, 10, lease=6) != []


async def test_release_makes_a_subscriptions_waiting_deliveries_due_now(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "a")
    await with_subscription(store, "b")
    await store.append_events([event(0), event(1), event(2)], [Route(0, "a"), Route(1, "a"), Route(2, "b")], NOW)
    claimed = await store.claim_due_deliveries("n", NOW, 10, 30)
    waiting = [d.id for d in claimed if d.event.id != "id-1"]
    await store.reschedule_deliveries(waiting, Attempt("Busy", 503, NOW), NOW + 100)  # a's id-0 and b's
    # a's id-1 is still leased: release leaves it to its holder
    assert await store.release_deliveries("orders", "a", NOW + 1) == 1
    (due,) = await store.claim_due_deliveries("n", NOW + 1, 10, 30)
    assert (due.subscription, due.event.id, due.attempts) == ("a", "id-0", 1)
    assert await store.next_due_at(NOW + 1) == NOW + 100  # b's keeps its schedule


async def test_ordered_claims_take_the_oldest_pending_event_of_each_key(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "ordered")
    keys = ["a", "b", "a", None, "b", "a"]
    await store.append_events([event(i) for i in range(6)], [Route(i, "ordered", k) for i, k in enumerate(keys)], NOW)
    assert [d.event.id for d in await store.claim_due_deliveries("n", NOW, 10, 30)] == ["id-3"]  # unordered only
    first = await store.claim_ordered_deliveries("n", NOW, 10, 30)
    assert sorted(d.event.id for d in first) == ["id-0", "id-1"]  # one per key: its oldest
    assert await store.claim_ordered_deliveries("n2", NOW, 10, 30) == []  # both keys are in flight
    a0, b1 = sorted(first, key=lambda d: d.event.id)
    await store.reschedule_deliveries([a0.id], Attempt("Busy", 503, NOW), NOW + 100)  # a fails: a holds back
    await store.complete_deliveries([b1.id])
    (b4,) = await store.claim_ordered_deliveries("n", NOW + 1, 10, 30)
    assert b4.event.id == "id-4"
    await store.complete_deliveries([b4.id])
    assert await store.claim_ordered_deliveries("n", NOW + 1, 10, 30) == []
    (again,) = await store.claim_ordered_deliveries("n", NOW + 100, 10, 30)
    assert (again.event.id, again.attempts) == ("id-0", 1)
    await store.dead_letter_deliveries([again.id], "MaxDeliveryAttemptsExceeded", NOW + 100)
    (a2,) = await store.claim_ordered_deliveries("n", NOW + 100, 10, 30)
    assert a2.event.id == "id-2"


async def test_parallel_ordered_claimers_never_hold_two_events_of_one_key(store_url: str) -> None:
    async with open_nodes(store_url, 3) as stores:
        await stores[0].create_topic(topic())
        await with_subscription(stores[0], "ordered")
        await stores[0].append_events([event(i) for i in range(40)],
                                      [Route(i, "ordered", f"k{i % 4}") for i in range(40)], NOW)
        claims = await asyncio.gather(*(s.claim_ordered_deliveries(f"n{i}", NOW, 10, 30)
                                        for i, s in enumerate(stores)))
        held = [d.event.id for claim in claims for d in claim]
        assert sorted(held) == ["id-0", "id-1", "id-2", "id-3"]


async def test_a_write_is_read_back_while_other_reads_run(store: Store) -> None:
    """Read-your-writes under concurrent reads: a read must not share the snapshot of another read in progress."""
    await store.create_topic(topic())
    await store.append_events([event(i) for i in range(200)], [], NOW)
    await with_subscription(store, status="Creating")
    stop = asyncio.Event()

    async def reading() -> None:
        while not stop.is_set():
            await store.list_events("orders", limit=200)

    readers = [asyncio.create_task(reading()) for _ in range(3)]
    try:
        for i in range(100):
            current = await store.get_subscription("orders", "sub")
            current.status, current.updated_at = f"state-{i}", NOW + i
            await store.update_subscription(current)
            assert (await store.get_subscription("orders", "sub")).status == f"state-{i}"
    finally:
        stop.set()
        await asyncio.gather(*readers)
