"""The console's live feed over a real store: new events reach every watcher; a burst shows its newest."""

from __future__ import annotations

import asyncio

from commgrid.console.feed import WINDOW, EventFeed
from commgrid.store import Store
from tests.store.test_contract import NOW, event, topic


async def test_watchers_get_new_events_and_a_burst_says_what_it_skipped(store: Store) -> None:
    await store.create_topic(topic())
    await store.append_events([event(0)], [], NOW)  # before anyone watched: not streamed
    feed = EventFeed(store, poll=0.01)
    first, second = feed.watch(), feed.watch()
    await asyncio.sleep(0.05)  # the feed takes its starting point
    await store.append_events([event(1), event(2)], [], NOW)
    update = await asyncio.wait_for(first.get(), 5)
    assert [e["id"] for e in update["events"]] == ["id-1", "id-2"] and update["skipped"] == 0
    assert (await asyncio.wait_for(second.get(), 5)) == update
    feed.unwatch(second)
    await store.append_events([event(100 + i) for i in range(WINDOW + 30)], [], NOW)
    burst = await asyncio.wait_for(first.get(), 5)
    assert len(burst["events"]) == WINDOW and burst["skipped"] == 30
    assert burst["events"][-1]["id"] == f"id-{100 + WINDOW + 29}"
    assert second.empty()
    await feed.close()
