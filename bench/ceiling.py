"""The raw SQLite ceiling: orjson parse + insert of 100 ~1 KB events per transaction, WAL, synchronous=FULL.

One Python process, one plain `sqlite3` connection, nothing else around it. Two tables: a bare one (the
reference the ingest goal is a ratio of) and one shaped and indexed like commgrid's `events` table (what any
store of these events must also maintain). Prints JSON: events/s for each.

    taskset -c 0 python -m bench.ceiling [--seconds 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

import orjson

from bench._harness import make_events, remove, temp_dir

BARE = ("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, type TEXT, body BLOB)",)
BARE_INSERT = "INSERT INTO events (id, type, body) VALUES (?, ?, ?)"
SHAPED = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,"
    " subject TEXT NOT NULL, time TEXT NOT NULL, published_at REAL NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX events_topic_seq ON events (topic, seq)",
    "CREATE INDEX events_id_block ON events (seq >> 11, id)",
)
SHAPED_INSERT = "INSERT INTO events (topic, id, type, subject, time, published_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"


def run(path: Path, schema: tuple[str, ...], shaped: bool, bodies: list[bytes], seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in schema:
            conn.execute(statement)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            body = bodies[count // 100 % len(bodies)]
            events = orjson.loads(body)
            if shaped:
                now = time.time()
                rows = [("bench", e["id"], e["eventType"], e["subject"], e["eventTime"], now, orjson.dumps(e))
                        for e in events]
            else:
                rows = [(e["id"], e["eventType"], orjson.dumps(e)) for e in events]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SHAPED_INSERT if shaped else BARE_INSERT, rows)
            conn.execute("COMMIT")
            count += len(rows)
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    bodies = [orjson.dumps(make_events(100)) for _ in range(20)]
    directory = temp_dir()
    try:
        bare = run(directory / "bare.db", BARE, False, bodies, args.seconds)
        shaped = run(directory / "shaped.db", SHAPED, True, bodies, args.seconds)
    finally:
        remove(directory)
    print(orjson.dumps({"bare": bare, "shaped": shaped}).decode())


if __name__ == "__main__":
    main()
