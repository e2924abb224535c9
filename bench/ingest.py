"""Durable ingest through the real HTTP endpoint, loaded by `wrk`, beside the references of the same run.

The server (`commgrid serve`, SQLite by default) runs on core 0, `wrk` on core 1 with 32 keep-alive
connections. Measured in turn, each for `--seconds`:

- the no-op stack (bench/_noop.py: Starlette on uvicorn, httptools, uvloop, a route that reads the body)
  and commgrid with one ~1 KB event per request: the single-event goal is a ratio of the two;
- the raw SQLite ceiling (bench/ceiling.py on core 0) and commgrid with 100 events per request;
- bytes on disk per stored event (the SQLite file after a checkpoint, over the events it holds).

    python -m bench.ingest [--seconds 10] [--store URL]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson

from bench._harness import (
    LOAD_CPU,
    SERVER_CPU,
    Row,
    Server,
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


def run(seconds: float, store: str | None = None) -> list[Row]:
    single = orjson.dumps(make_events(1))
    hundred = orjson.dumps(make_events(100))
    rows: list[Row] = []

    noop, noop_url = start_noop()
    try:
        wrk(noop_url, single, seconds=1)  # warm-up
        noop1 = wrk(noop_url, single, seconds=seconds, pid=noop.pid)
        noop100 = wrk(noop_url, hundred, seconds=seconds)
    finally:
        noop.terminate()
        noop.wait()
    ceiling = sqlite_ceiling(seconds)

    data_dir = temp_dir()
    server = Server(data_dir, store).start()
    try:
        topic = server.create_topic("bench")
        url, key = topic["httpEndpoint"], topic["key1"]
        wrk(url, single, key, seconds=1)  # warm-up
        ours1 = wrk(url, single, key, seconds=seconds, pid=server.pid)
        ours100 = wrk(url, hundred, key, seconds=seconds)
    finally:
        server.stop()
    label = "SQLite" if store is None else "PostgreSQL"
    rows.append(ratio_row(f"single-event publishes/s ({label})", ours1.requests_per_s, "req/s", "no-op",
                          noop1.requests_per_s, 0.4))
    rows[-1].value += f" (p50 {ours1.p50_ms:.1f} ms, p99 {ours1.p99_ms:.1f} ms, errors {ours1.errors})"
    rows.append(Row("  the same by CPU time per request (robust to other load)",
                    f"{ours1.cpu_us_per_request:,.0f} µs", f"no-op {noop1.cpu_us_per_request:,.0f} µs",
                    noop1.cpu_us_per_request / ours1.cpu_us_per_request))
    rows.append(ratio_row(f"batch-100 ingest events/s ({label})", ours100.events_per_s(100), "events/s",
                          "SQLite ceiling", ceiling["bare"], 0.8))
    rows[-1].value += f" (errors {ours100.errors})"
    rows.append(Row("  references: no-op with 100-event bodies; ceiling with commgrid's indexes",
                    f"{noop100.events_per_s(100):,.0f} events/s",
                    f"indexed ceiling {ceiling['shaped']:,.0f} events/s",
                    ours100.events_per_s(100) / ceiling["shaped"]))
    if store is None:
        per_event, count = bytes_per_event(data_dir)
        rows.append(Row("bytes on disk per stored ~1 KB event (SQLite)", f"{per_event:,.0f} B ({count:,} events)"))
    remove(data_dir)
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
