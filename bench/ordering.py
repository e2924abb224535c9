"""Ordered delivery benchmark: draining a backlog with `commgrid.orderingKey` vs without.

A backlog of N events spread over K keys (`data.key`, default 1,000 keys) is stored while the server is down,
then the server starts and drains it into a no-op receiver process; rate = N / (last arrival - first arrival).
The same backlog is drained once by an unordered subscription and once by one ordered on `data.key` (one event
per key in flight). Goal: ordered ≥ 0.5 × unordered with 1,000 keys.

    python -m bench.ordering [--events 20000] [--keys 1000] [--batch 1] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from bench._harness import Server, remove, temp_dir, wait_until
from bench.delivery import Receiver


def keyed_event(i: int, keys: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "subject": f"/bench/{i}", "eventType": "Bench.Event",
            "eventTime": "2024-01-01T00:00:00Z", "data": {"n": i, "key": f"k{i % keys}"}, "dataVersion": "1"}


async def publish_backlog(data_dir: Path, store: str | None, topic: str, count: int, keys: int) -> None:
    from commgrid.config import Settings
    from commgrid.runtime import Runtime

    async with Runtime(Settings.for_data_dir(data_dir, store_url=store)) as runtime:
        for start in range(0, count, 1000):
            await runtime.grid.publish(topic, [keyed_event(i, keys) for i in range(start, min(start + 1000, count))])


def drain(server: Server, receiver: Receiver, data_dir: Path, store: str | None, topic: str, count: int,
          keys: int) -> float:
    server.stop()
    receiver.reset()
    asyncio.run(publish_backlog(data_dir, store, topic, count, keys))
    server.start()
    wait_until(lambda: receiver.stats()["count"] >= count, f"{count} deliveries", timeout=600)
    stats = receiver.stats()
    return count / (stats["last"] - stats["first"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="backlog size")
    parser.add_argument("--keys", type=int, default=1000, help="distinct ordering keys")
    parser.add_argument("--batch", type=int, default=1, help="maxEventsPerBatch of both subscriptions")
    parser.add_argument("--store", help="store URL (default: SQLite in a temporary data dir)")
    args = parser.parse_args()

    receiver = Receiver()
    data_dir = temp_dir()
    server = Server(data_dir, args.store).start()
    try:
        for name, flags in (("unordered", ()), ("ordered", ("--ordering-key", "data.key"))):
            server.create_topic(name)
            server.cli("subscription", "create", "--topic", name, "--name", f"{name}-sub", "--endpoint",
                       f"{receiver.url}/hook", "--max-events-per-batch", str(args.batch), *flags)
        time.sleep(0.6)
        print(f"draining {args.events} events over {args.keys} keys, maxEventsPerBatch {args.batch}")
        rates = {name: drain(server, receiver, data_dir, args.store, name, args.events, args.keys)
                 for name in ("unordered", "ordered")}
        for name, rate in rates.items():
            print(f"  {name:>9}: {rate:8.0f} deliveries/s")
        print(f"  ordered / unordered: {rates['ordered'] / rates['unordered']:.2f}  (goal >= 0.5)")
    finally:
        server.stop()
        receiver.stop()
        remove(data_dir)


if __name__ == "__main__":
    main()
