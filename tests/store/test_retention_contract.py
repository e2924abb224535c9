"""The store's retention, replay, dedupe and stats contract; runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from commgrid.grid.topic_options import TopicOptions
from commgrid.store import Store
from commgrid.store.base import Attempt, NewEvent, Route
from tests.store.test_console_contract import attempt
from tests.store.test_contract import NOW, event, open_nodes, topic, with_subscription

WINDOW = 600.0


def dedupe(e: NewEvent, seconds: float = WINDOW) -> NewEvent:
    return replace(e, dedupe_seconds=seconds)


async def seqs(store: Store, name: str = "orders") -> list[int]:
    return [e.seq for e in await store.events_in_order(name, 0, 1000)]


async def test_topic_options_round_trip(store: Store) -> None:
    await store.create_topic(replace(topic(), options=TopicOptions(retention_minutes=60)))
    assert (await store.get_topic("orders")).options == TopicOptions(retention_minutes=60)
    changed = replace(await store.get_topic("orders"), options=TopicOptions(dedupe_window_minutes=5))
    await store.update_topic(changed)
    assert (await store.list_topics())[0].options == TopicOptions(dedupe_window_minutes=5)


async def test_dedupe_drops_ids_seen_in_the_window_and_in_the_same_batch(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    batch = [dedupe(event(1)), dedupe(event(2)), dedupe(event(1))]
    await store.append_events(batch, [Route(0, "sub"), Route(1, "sub"), Route(2, "sub")], NOW)
    assert [e.id for e in await store.events_in_order("orders", 0, 10)] == ["id-1", "id-2"]
    assert await store.count_pending_deliveries() == 2
    await store.append_events([dedupe(event(2)), dedupe(event(3))], [Route(0, "sub"), Route(1, "sub")], NOW + 1)
    assert [e.id for e in await store.events_in_order("orders", 0, 10)] == ["id-1", "id-2", "id-3"]
    assert await store.count_pending_deliveries() == 3
    # after the window the id is new again
    await store.append_events([dedupe(event(1))], [Route(0, "sub")], NOW + WINDOW + 1)
    assert await store.count_events("orders") == 4


async def test_dedupe_is_per_topic_and_off_by_default(store: Store) -> None:
    await store.create_topic(topic())
    await store.create_topic(topic("other"))
    await store.append_events([event(1), event(1)], [], NOW)
    await store.append_events([dedupe(event(1)), dedupe(event(1, "other"))], [], NOW)
    assert await store.count_events("orders") == 3
    assert await store.count_events("other") == 1


async def test_dedupe_records_are_forgotten_after_their_window(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([dedupe(event(i), 10 * (i + 1)) for i in range(3)], [], NOW)
    assert await store.forget_published_ids(NOW + 15, 100) == 1
    assert await store.forget_published_ids(NOW + 100, 1) == 1
    assert await store.forget_published_ids(NOW + 100, 100) == 1
    assert await store.forget_published_ids(NOW + 100, 100) == 0


async def test_dedupe_holds_between_two_connections_racing(store_url: str) -> None:
    """Two nodes publishing the same ids at once store each id once."""
    async with open_nodes(store_url, 2) as nodes:
        await nodes[0].create_topic(topic())
        for _ in range(5):
            batch = [dedupe(event(i)) for i in range(20)]
            await asyncio.gather(*(node.append_events(batch, [], NOW) for node in nodes))
        assert await nodes[0].count_events("orders") == 20


async def test_sweep_deletes_old_events_but_keeps_pending_and_dead_lettered_ones(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.append_events([event(i) for i in range(6)], [Route(1, "sub"), Route(2, "sub")], NOW)
    await store.append_events([event(9)], [], NOW + 100)
    pending = await store.claim_due_deliveries("w", NOW, 10, 30)
    dead = next(d for d in pending if d.event.id == "id-2")
    await store.dead_letter_deliveries([dead.id], "MaxDeliveryAttempts", NOW + 5, Attempt("Busy", 503, NOW + 5))
    swept = await store.sweep_retention("orders", NOW + 50, NOW, limit=2)
    assert (swept.events, swept.dead_letters) == (2, 0)
    swept = await store.sweep_retention("orders", NOW + 50, NOW, limit=100)
    assert swept.events == 2
    left = [e.id for e in await store.events_in_order("orders", 0, 10)]
    assert left == ["id-1", "id-2", "id-9"]  # pending (leased, too), dead-lettered, recent
    # once its dead letter is swept, the dead-lettered event goes too
    swept = await store.sweep_retention("orders", NOW + 50, NOW + 10, limit=100)
    assert (swept.events, swept.dead_letters) == (1, 1)
    assert [e.id for e in await store.events_in_order("orders", 0, 10)] == ["id-1", "id-9"]


async def test_sweep_forgets_delivery_attempts_older_than_the_cutoff(store: Store) -> None:
    await store.create_topic(topic())
    await store.create_topic(topic("other"))
    await store.append_events([event(0), event(1, "other")], [], NOW)
    mine, theirs = [e.seq for e in await store.events_after(0)]
    await store.record_attempts([attempt(mine, n) for n in (1, 2, 30)] + [attempt(theirs, 1, topic="other")],
                                keep=1000)
    swept = await store.sweep_retention("orders", NOW + 10, NOW, limit=1)
    assert swept.attempts == 1
    swept = await store.sweep_retention("orders", NOW + 10, NOW, limit=100)
    assert swept.attempts == 1
    assert [a.attempt for a in await store.list_attempts(mine)] == [30]  # newer than the cutoff
    assert len(await store.list_attempts(theirs)) == 1  # another topic's history is its own


async def test_space_is_reclaimed_after_a_sweep(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([replace(event(i), body=b'{"pad":"%s"}' % (b"x" * 2000)) for i in range(2000)], [], NOW)
    assert (await store.sweep_retention("orders", NOW + 1, NOW + 1, 5000)).events == 2000
    before = (await store.stats()).size_bytes
    await store.reclaim_space()  # outside any transaction on PostgreSQL (VACUUM), complete on SQLite
    await store.append_events([event(1)], [], NOW)
    assert (await store.stats()).size_bytes <= before


async def test_sweep_keeps_queue_locked_events(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store, "queue", status="Queue")
    await store.append_events([event(1)], [Route(0, "queue")], NOW)
    locked = await store.lock_events("orders", "queue", NOW, 5, NOW + 60, max_deliveries=10, published_after=0)
    assert len(locked) == 1
    assert (await store.sweep_retention("orders", NOW + 10, NOW + 10, 100)).events == 0
    await store.settle_locks("orders", "queue", [locked[0].lock_token], "acknowledge", NOW + 1)
    assert (await store.sweep_retention("orders", NOW + 10, NOW + 10, 100)).events == 1


async def test_replay_queues_marked_deliveries_in_order(store: Store) -> None:
    await store.create_topic(topic())
    await with_subscription(store)
    await store.append_events([event(i) for i in range(5)], [], NOW)
    order = await seqs(store)
    assert [e.id for e in await store.events_in_order("orders", order[0], 2, until_seq=order[3])] == ["id-1", "id-2"]
    assert await store.queue_replay("orders", "sub", [*order[1:4], 10**9], "r-1", NOW + 10) == 3
    claimed = await store.claim_due_deliveries("w", NOW + 11, 2, 30)
    assert [(d.event.id, d.replay_id) for d in claimed] == [("id-1", "r-1"), ("id-2", "r-1")]
    assert [d.replay_id for d in await store.claim_due_deliveries("w", NOW + 11, 5, 30)] == ["r-1"]


async def test_events_in_order_bounds_by_publish_time(store: Store) -> None:
    await store.create_topic(topic())
    for i in range(4):
        await store.append_events([event(i)], [], NOW + i)
    found = await store.events_in_order("orders", 0, 10, published_from=NOW + 1, published_to=NOW + 2)
    assert [e.id for e in found] == ["id-1", "id-2"]


async def test_stats_count_per_topic_and_measure_the_store(store: Store) -> None:
    await store.create_topic(topic())
    await store.create_topic(topic("other"))
    await with_subscription(store)
    await store.append_events([event(1), event(2)], [Route(0, "sub")], NOW)
    await store.append_events([event(3, "other")], [], NOW + 5)
    stats = await store.stats()
    by_topic = {t.topic: t for t in stats.topics}
    assert (by_topic["orders"].events, by_topic["orders"].pending_deliveries, by_topic["orders"].dead_letters) \
        == (2, 1, 0)
    assert by_topic["orders"].oldest_event_at == NOW
    assert by_topic["other"].events == 1
    assert stats.size_bytes > 0


async def test_deleting_a_topic_forgets_its_published_ids(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([dedupe(event(1))], [], NOW)
    await store.delete_topic("orders")
    await store.create_topic(topic())
    await store.append_events([dedupe(event(1))], [], NOW)
    assert await store.count_events("orders") == 1
