"""Several serving processes on one store: PostgreSQL two nodes against one, and what the second core buys.

One node: `commgrid serve` on core 0, loaded by `wrk` on core 1. Two nodes: the same database served by two
`commgrid serve` processes, one per core, each loaded by its own `wrk` (half the connections each) pinned to
the other core; their rates add up. The PostgreSQL server itself is not pinned. Delivery: a backlog stored
while the nodes are down is drained by one node, then by two, into the receiver of bench/delivery.py; three times
the delivery part's backlog, since a short drain mostly measures the second node's start (20,000 events gave
0.56–0.72 where 60,000 gave 0.94–0.97, on a machine where one node drains ~15,000/s).

This is also commgrid's way to use every core of one machine: several `serve` processes on one PostgreSQL
store behind a load balancer (each node runs its own delivery worker; leases keep them from delivering twice).

    python -m bench.multinode [--seconds 10] [--events 60000]
"""

from __future__ import annotations

import argparse
import time

import orjson

from bench._harness import (
    LOAD_CPU,
    SERVER_CPU,
    PostgresDatabase,
    Row,
    Server,
    finish_wrk,
    make_events,
    pin_self,
    remove,
    start_wrk,
    temp_dir,
)
from bench.delivery import Receiver, drain, subscribe

BACKLOG_FACTOR = 3  # times the delivery part's backlog (see above)


def ingest(servers: list[Server], key: str, body: bytes, seconds: float, connections: int = 32) -> float:
    """Requests/s of all `servers` together, each loaded by a `wrk` on the core it does not use."""
    loads = [start_wrk(f"{s.url}/topics/bench/api/events", body, key, seconds=seconds,
                       connections=connections // len(servers),
                       cpu=LOAD_CPU if len(servers) == 1 else (SERVER_CPU if s.cpu == LOAD_CPU else LOAD_CPU))
             for s in servers]
    return sum(finish_wrk(load).requests_per_s for load in loads)


def run(seconds: float, events: int, store: str) -> list[Row]:
    data_dir = temp_dir()
    one = Server(data_dir, store, cpu=SERVER_CPU)
    two = Server(data_dir, store, cpu=LOAD_CPU)
    receiver = Receiver()
    rows = []
    try:
        one.start()
        key = one.create_topic("bench")["key1"]
        subscribe(one, receiver, {"drain": 1})
        two.start()
        time.sleep(0.6)
        for batch in (1, 100):
            body = orjson.dumps(make_events(batch))
            ingest([one], key, body, 1)  # warm-up
            single = ingest([one], key, body, seconds)
            double = ingest([one, two], key, body, seconds)
            label = "single-event publishes/s" if batch == 1 else "batch-100 ingest events/s"
            rows.append(Row(f"PostgreSQL two nodes: {label}", f"{double * batch:,.0f}",
                            f"one node {single * batch:,.0f}", double / single, "≥ 1.6", double / single >= 1.6))
        receiver.reset()  # the publishes above were delivered too
        rate1 = drain([one], receiver, "drain", events).rate
        two.stop()
        rate2 = drain([one, two], receiver, "drain", events).rate
        rows.append(Row("PostgreSQL two nodes: deliveries/s, maxEventsPerBatch 1", f"{rate2:,.0f}",
                        f"one node {rate1:,.0f}", rate2 / rate1, "≥ 1.6", rate2 / rate1 >= 1.6))
    finally:
        one.stop()
        two.stop()
        receiver.stop()
        remove(data_dir)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=BACKLOG_FACTOR * 20000)
    args = parser.parse_args()
    pin_self(LOAD_CPU)
    with PostgresDatabase() as url:
        for row in run(args.seconds, args.events, url):
            print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
