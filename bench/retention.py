"""Retention benchmark: what the store costs per retained event, and that sweeping keeps it flat.

Each cycle appends `--per-cycle` events (about the size of a small Event Grid event, each with one delivery
that is then completed), then sweeps what is older than the last `--window` cycles, as the retention sweep
does, in batches of 500. Once the store holds its window, the size must stop growing: freed pages are reused
(SQLite, with `auto_vacuum=INCREMENTAL` for giving a surplus back) or vacuumed (PostgreSQL autovacuum).

Reported per cycle: retained events, size on disk, pages free for reuse; then bytes per retained event and the
size a million retained events take.

    python -m bench.retention [--cycles 12] [--per-cycle 100000] [--window 3] [--store postgresql://…/db]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from commgrid.grid.properties import SubscriptionProperties, WebHookDestination
from commgrid.store import Store, store_from_url
from commgrid.store.base import NewEvent, Route, Subscription, Topic

CHUNK = 5000  # events per append, as the group committer batches them under load


def body(n: int) -> bytes:
    return orjson.dumps({"id": str(uuid.uuid4()), "subject": f"/orders/{n}", "eventType": "Order.Created",
                         "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "1", "metadataVersion": "1",
                         "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/bench",
                         "data": {"orderId": n, "customer": "c-1234", "total": 42.5, "lines": 3}})


async def fill(store: Store, count: int, now: float, start: int) -> None:
    for first in range(start, start + count, CHUNK):
        events = [NewEvent("bench", f"e-{n}", "Order.Created", f"/orders/{n}", "2026-01-01T00:00:00Z", body(n))
                  for n in range(first, min(first + CHUNK, start + count))]
        await store.append_events(events, [Route(i, "hook") for i in range(len(events))], now)
        claimed = await store.claim_due_deliveries("bench", now, len(events), 60)
        await store.complete_deliveries([d.id for d in claimed])


async def run(args: argparse.Namespace) -> None:
    url = args.store or f"sqlite:///{Path(tempfile.mkdtemp(prefix='commgrid-retention-')) / 'commgrid.db'}"
    store = store_from_url(url)
    await store.open()
    try:
        await store.create_topic(Topic("bench", "/topics/bench", created_at=0))
        hook = SubscriptionProperties(WebHookDestination("http://127.0.0.1:9/hook"))
        await store.create_subscription(Subscription("bench", "hook", hook))
        print(f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}: {args.cycles} cycles of"
              f" {args.per_cycle} events, retaining the last {args.window}")
        print(f"{'cycle':>5} {'retained':>10} {'MB':>8} {'free MB':>8} {'sweep s':>8}")
        sizes = []
        for cycle in range(args.cycles):
            await fill(store, args.per_cycle, float(cycle), cycle * args.per_cycle)
            started = time.perf_counter()
            cutoff = cycle - args.window + 1
            while max((s := await store.sweep_retention("bench", cutoff, cutoff, 500)).events, s.dead_letters) == 500:
                pass
            await store.reclaim_space()
            swept_in = time.perf_counter() - started
            stats = await store.stats()
            retained = sum(t.events for t in stats.topics)
            sizes.append((retained, stats.size_bytes))
            print(f"{cycle:>5} {retained:>10} {stats.size_bytes / 2**20:>8.1f} {stats.free_bytes / 2**20:>8.1f}"
                  f" {swept_in:>8.2f}")
        steady = sizes[args.window:]
        held = steady[0][0] + args.per_cycle  # at its peak the store holds the window and the next cycle
        per_event = max(size for _, size in steady) / held
        print(f"steady state: {min(s for _, s in steady) / 2**20:.1f}-{max(s for _, s in steady) / 2**20:.1f} MB"
              f" holding up to {held} events: {per_event:.0f} bytes each, {per_event * 1e6 / 2**30:.2f} GB"
              " per million")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--per-cycle", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=3, help="cycles retained")
    parser.add_argument("--store", help="postgresql://… (an existing, empty database); default SQLite")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
