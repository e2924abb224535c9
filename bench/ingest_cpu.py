"""Alternate `wrk` publish loads on several source trees (A/B) and print each thread's CPU time per event.

Each round starts `commgrid serve` from each tree in turn (core 0, fresh data dir), loads it with `wrk` (core 1)
posting `--batch` ~1 KB events per request, and reads the threads' on-CPU time over the load: the event loop,
the busiest other thread (SQLite's writer) and the rest, in µs per event, with events/s.

    python -m bench.ingest_cpu --src A=/path/to/one --src B=/path/to/other [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import orjson

from bench._harness import LOAD_CPU, Server, make_events, pin_self, remove, temp_dir, wrk
from bench.drain_cpu import ab_parser, per_thread, source_trees, thread_ns


def ingest_once(src: Path, body: bytes, batch: int, seconds: float) -> dict[str, float]:
    os.environ["PYTHONPATH"] = str(src / "src")
    data_dir = temp_dir()
    server = Server(data_dir).start()
    try:
        topic = server.create_topic("bench")
        url, key = topic["httpEndpoint"], topic["key1"]
        wrk(url, body, key, seconds=1)  # warm-up
        before = thread_ns(server.pid)
        result = wrk(url, body, key, seconds=seconds)
        events = result.requests * batch
        measured = per_thread(server.pid, before, thread_ns(server.pid), events)
        measured["rate"] = result.events_per_s(batch)
        return measured
    finally:
        server.stop()
        remove(data_dir)


def main() -> None:
    parser = ab_parser(__doc__)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    trees = source_trees(args.src)
    pin_self(LOAD_CPU)
    body = orjson.dumps(make_events(args.batch))
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for n in range(args.rounds):
        for label, src in trees if n % 2 == 0 else trees[::-1]:
            result = ingest_once(src, body, args.batch, args.seconds)
            results[label].append(result)
            print(label, orjson.dumps({k: round(v, 2) for k, v in result.items()}).decode(), flush=True)
    for label, runs in results.items():
        picked = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
        print("median", label, orjson.dumps(picked).decode(), flush=True)


if __name__ == "__main__":
    main()
