"""Using the second core on the embedded store: `commgrid serve --workers 2` against one serving process.

One process: `commgrid serve` (SQLite) on core 0, `wrk` on core 1, as in bench/ingest.py. Two workers:
`commgrid serve --workers 2` on the same kind of data dir, its workers and `wrk` free to use both cores. The same
loads as bench/ingest.py (one ~1 KB event per request, and 100, over 32 connections), and single events over 128
connections as well: the workers' commits still go one at a time, so what they gain at single events grows with
the requests in flight. Alternating rounds (two workers first every other round); each figure is the median over
the rounds and each ratio the median of the rounds' ratios.

    python -m bench.workers [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics

import orjson

from bench._harness import BOTH_CPUS, LOAD_CPU, SERVER_CPU, Row, Server, make_events, pin_self, remove, temp_dir, wrk

ROUNDS = 3
LOADS = ((1, 32, "single-event publishes/s"), (1, 128, "single-event publishes/s, 128 connections"),
         (100, 32, "batch-100 ingest events/s"))


def rate(workers: int, body: bytes, batch: int, connections: int, seconds: float) -> float:
    """Events/s of a fresh `serve --workers N` under `wrk`."""
    data_dir = temp_dir()
    server = Server(data_dir, cpu=SERVER_CPU if workers == 1 else BOTH_CPUS, workers=workers).start()
    load_cpu = LOAD_CPU if workers == 1 else BOTH_CPUS
    try:
        topic = server.create_topic("bench")
        url, key = topic["httpEndpoint"], topic["key1"]
        wrk(url, body, key, seconds=1, cpu=load_cpu, connections=connections)  # warm-up
        return wrk(url, body, key, seconds=seconds, cpu=load_cpu, connections=connections).events_per_s(batch)
    finally:
        server.stop()
        remove(data_dir)


def run(seconds: float) -> list[Row]:
    each = max(2.0, round(seconds / ROUNDS))
    rows = []
    for batch, connections, label in LOADS:
        body = orjson.dumps(make_events(batch))
        one, two = [], []
        for n in range(ROUNDS):
            order = (1, 2) if n % 2 == 0 else (2, 1)
            measured = {workers: rate(workers, body, batch, connections, each) for workers in order}
            one.append(measured[1])
            two.append(measured[2])
        ratio = statistics.median(b / a for a, b in zip(one, two, strict=True))
        rows.append(Row(f"using the second core: `serve --workers 2` (SQLite), {label}",
                        f"{statistics.median(two):,.0f}", f"one process {statistics.median(one):,.0f}", ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    pin_self(LOAD_CPU)
    for row in run(args.seconds):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
