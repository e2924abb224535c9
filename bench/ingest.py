"""Durable ingest through the real HTTP endpoint, loaded by `wrk`, beside the references of the same run.

The server (`commgrid serve`, SQLite by default) runs on core 0, `wrk` on core 1 with 32 keep-alive
connections. Three rounds of `--seconds` / 3 (at least 2 s) per load, each round measuring in turn:

- the no-op stack (bench/_noop.py: Starlette on uvicorn, httptools, uvloop, a route that reads the body)
  and commgrid with one ~1 KB event per request: the single-event goal is a ratio of the two;
- the raw SQLite ceiling (bench/ceiling.py on core 0) and commgrid with 100 events per request;

with commgrid first in each pair every other round. Each figure is the median over the rounds and each ratio
the median of the rounds' ratios, whose two sides ran seconds apart: on a machine whose speed drifts, that
holds better than one long run of each. Then bytes on disk per stored event (the SQLite file after a
checkpoint, over the events it holds).

    python -m bench.ingest [--seconds 10] [--store URL]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench._harness import (
    LOAD_CPU,
    SERVER_CPU,
    Row,
    Server,
    WrkResult,
    make_events,
    pin_self,
    pinned,
    ratio_row,
    remove,
    start_noop,
    temp_dir,
    wrk,
)


def sqlite_ceiling(seconds: float) -> dict[str, float]:
    args = [sys.executable, "-m", "bench.ceiling", "--seconds", str(seconds)]
    out = subprocess.run(pinned(SERVER_CPU, args), capture_output=True, text=True, check=True).stdout
    return orjson.loads(out)


def bytes_per_event(data_dir: Path) -> tuple[float, int]:
    """Size of the SQLite database after a checkpoint, over the events stored in it (server stopped)."""
    path = data_dir / "commgrid.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return page_count * page_size / max(count, 1), count


ROUNDS = 3


@dataclass
class Round:
    """One round's loads, each side beside its reference within seconds of it."""

    noop1: WrkResult
    ours1: WrkResult
    ceiling: dict[str, float]
    ours100: WrkResult


def measure_round(n: int, each: float, noop: tuple[int, str], ours: tuple[int, str, str],
                  bodies: tuple[bytes, bytes]) -> Round:
    """Single events on the no-op and on commgrid, then the ceiling and commgrid's batches; odd rounds put
    commgrid first in each pair, so neither side always runs into the other's leftovers (WAL, page cache)."""
    (noop_pid, noop_url), (pid, url, key), (single, hundred) = noop, ours, bodies
    pairs: list[list[Callable[[], Any]]] = [
        [lambda: wrk(noop_url, single, seconds=each, pid=noop_pid),
         lambda: wrk(url, single, key, seconds=each, pid=pid)],
        [lambda: sqlite_ceiling(each), lambda: wrk(url, hundred, key, seconds=each)],
    ]
    results = [[f() for f in (pair if n % 2 == 0 else pair[::-1])] for pair in pairs]
    if n % 2:
        results = [r[::-1] for r in results]
    (noop1, ours1), (ceiling, ours100) = results
    return Round(noop1, ours1, ceiling, ours100)


def run(seconds: float, store: str | None = None) -> list[Row]:
    """`ROUNDS` rounds of `seconds / ROUNDS` (at least 2 s) per load; each figure is the median over the rounds
    and each ratio the median of the rounds' ratios."""
    each = max(2.0, round(seconds / ROUNDS))
    single = orjson.dumps(make_events(1))
    hundred = orjson.dumps(make_events(100))
    noop, noop_url = start_noop()
    data_dir = temp_dir()
    server = Server(data_dir, store).start()
    try:
        topic = server.create_topic("bench")
        url, key = topic["httpEndpoint"], topic["key1"]
        wrk(noop_url, single, seconds=1)  # warm-up
        wrk(url, single, key, seconds=1)
        noop100 = wrk(noop_url, hundred, seconds=each)
        rounds = [measure_round(n, each, (noop.pid, noop_url), (server.pid, url, key), (single, hundred))
                  for n in range(ROUNDS)]
    finally:
        server.stop()
        noop.terminate()
        noop.wait()
    rows = _rows(rounds, noop100, "SQLite" if store is None else "PostgreSQL")
    if store is None:
        per_event, count = bytes_per_event(data_dir)
        rows.append(Row("bytes on disk per stored ~1 KB event (SQLite)", f"{per_event:,.0f} B ({count:,} events)"))
    remove(data_dir)
    return rows


def _rows(rounds: list[Round], noop100: WrkResult, label: str) -> list[Row]:
    def median(values: Iterable[float]) -> float:
        return statistics.median(values)

    ours1, noop1 = median(r.ours1.requests_per_s for r in rounds), median(r.noop1.requests_per_s for r in rounds)
    rows = [ratio_row(f"single-event publishes/s ({label})", ours1, "req/s", "no-op", noop1, 0.4,
                      ratio=median(r.ours1.requests_per_s / r.noop1.requests_per_s for r in rounds))]
    rows[-1].value += (f" (p50 {median(r.ours1.p50_ms for r in rounds):.1f} ms,"
                       f" p99 {median(r.ours1.p99_ms for r in rounds):.1f} ms,"
                       f" errors {sum(r.ours1.errors for r in rounds)})")
    rows.append(Row("  the same by CPU time per request (robust to other load)",
                    f"{median(r.ours1.cpu_us_per_request for r in rounds):,.0f} µs",
                    f"no-op {median(r.noop1.cpu_us_per_request for r in rounds):,.0f} µs",
                    median(r.noop1.cpu_us_per_request / r.ours1.cpu_us_per_request for r in rounds)))
    ours100 = median(r.ours100.events_per_s(100) for r in rounds)
    rows.append(ratio_row(f"batch-100 ingest events/s ({label})", ours100, "events/s", "SQLite ceiling",
                          median(r.ceiling["bare"] for r in rounds), 0.8,
                          ratio=median(r.ours100.events_per_s(100) / r.ceiling["bare"] for r in rounds)))
    rows[-1].value += f" (errors {sum(r.ours100.errors for r in rounds)})"
    rows.append(Row("  references: no-op with 100-event bodies; ceiling with commgrid's indexes",
                    f"{noop100.events_per_s(100):,.0f} events/s",
                    f"indexed ceiling {median(r.ceiling['shaped'] for r in rounds):,.0f} events/s",
                    median(r.ours100.events_per_s(100) / r.ceiling["shaped"] for r in rounds)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--store", help="store URL (default: SQLite in a temporary data dir)")
    args = parser.parse_args()
    pin_self(LOAD_CPU)
    for row in run(args.seconds, args.store):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
