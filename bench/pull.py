"""Pull benchmark: receive + acknowledge throughput from a namespace queue subscription, in batches of 100.

Fills a 20,000-event backlog, then consumers each loop `:receive?maxEvents=100` → `:acknowledge` over HTTP
until it is empty, against `commgrid serve` on SQLite and on PostgreSQL. Each figure is printed in events/s and
as a ratio to the machine's SQLite ceiling measured in the same run: orjson parse + insert of 100 events per
transaction into a WAL file with synchronous=FULL, from one thread, with nothing else around it.

    python -m bench.pull [--events 20000] [--consumers 4] [--postgres postgresql://…/postgres] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from tests.support import ServerProcess

API = "api-version=2024-06-01"
BATCH = 100


def make_batches(count: int) -> list[bytes]:
    pad = "x" * 400
    events = [{"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench", "type": "Bench.Event",
               "subject": f"/bench/{i}", "time": "2024-01-01T00:00:00Z", "data": {"n": i, "pad": pad}}
              for i in range(count)]
    return [orjson.dumps(events[i:i + BATCH]) for i in range(0, count, BATCH)]


def sqlite_ceiling(batches: list[bytes]) -> float:
    """Events/s of parse + insert of 100 events per durable transaction on this machine's disk."""
    directory = Path(tempfile.mkdtemp(prefix="commgrid-ceiling-"))
    conn = sqlite3.connect(directory / "ceiling.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, type TEXT, body BLOB)")
        started = time.perf_counter()
        count = 0
        for body in batches:
            rows = [(e["id"], e["type"], orjson.dumps(e)) for e in orjson.loads(body)]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events (id, type, body) VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
            count += len(rows)
        return count / (time.perf_counter() - started)
    finally:
        conn.close()
        shutil.rmtree(directory, ignore_errors=True)


async def fill(base: str, key: str, batches: list[bytes]) -> None:
    headers = {"Authorization": f"SharedAccessKey {key}", "Content-Type": "application/cloudevents-batch+json"}
    async with aiohttp.ClientSession() as session:
        for i in range(0, len(batches), 8):
            async def post(body: bytes) -> None:
                async with session.post(f"{base}/topics/orders:publish?{API}", data=body, headers=headers) as r:
                    if r.status != 200:
                        raise SystemExit(f"publish failed: {r.status} {await r.text()}")
            await asyncio.gather(*(post(b) for b in batches[i:i + 8]))


async def drain(base: str, key: str, consumers: int) -> tuple[int, float, int]:
    """(events acknowledged, seconds, lock-token failures) with `consumers` concurrent receive/ack loops."""
    headers = {"Authorization": f"SharedAccessKey {key}", "Content-Type": "application/json"}
    sub = f"{base}/topics/orders/eventsubscriptions/bench"
    done = failures = 0
    last_ack = 0.0
    async with aiohttp.ClientSession() as session:

        async def consume() -> None:
            nonlocal done, failures, last_ack
            while True:
                url = f"{sub}:receive?{API}&maxEvents={BATCH}&maxWaitTime=10"
                async with session.post(url, headers=headers) as r:
                    received = orjson.loads(await r.read())["value"]
                if not received:
                    return
                tokens = [d["brokerProperties"]["lockToken"] for d in received]
                async with session.post(f"{sub}:acknowledge?{API}", data=orjson.dumps({"lockTokens": tokens}),
                                        headers=headers) as r:
                    result = orjson.loads(await r.read())
                done += len(result["succeededLockTokens"])
                failures += len(result["failedLockTokens"])
                last_ack = time.perf_counter()

        started = time.perf_counter()
        await asyncio.gather(*(consume() for _ in range(consumers)))
    # timed to the last acknowledge: each consumer's final empty receive (a long poll) is not work
    return done, last_ack - started, failures


def run_store(label: str, store: str | None, batches: list[bytes], consumers: int, ceiling: float) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="commgrid-pull-"))
    server = ServerProcess(data_dir, store=store)
    try:
        server.start()
        ns = json.loads(server.cli("namespace", "create", "bench", "--json").stdout)
        server.cli("namespace", "topic", "create", "bench", "orders")
        server.cli("namespace", "subscription", "create", "bench", "orders", "bench", "--lock-duration", "300")
        base = f"{server.http}/namespaces/bench"
        started = time.perf_counter()
        asyncio.run(fill(base, ns["key1"], batches))
        filled = time.perf_counter() - started
        done, elapsed, failures = asyncio.run(drain(base, ns["key1"], consumers))
        rate = done / elapsed
        print(f"{label:<10} backlog {done:,} events (filled at {done / filled:,.0f} events/s)  receive+ack"
              f" {rate:>9,.0f} events/s  ratio to SQLite ceiling {rate / ceiling:5.2f}  token failures {failures}")
    finally:
        if server.process:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL; the benchmark creates and drops its own database")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    batches = make_batches(args.events)
    ceiling = sqlite_ceiling(batches)
    print(f"commgrid pull benchmark  {args.events:,} events, batches of {BATCH}, {args.consumers} consumers")
    print(f"{'ceiling':<10} SQLite parse + insert of {BATCH} events per transaction (synchronous=FULL):"
          f" {ceiling:,.0f} events/s")
    run_store("sqlite", None, batches, args.consumers, ceiling)
    if not args.no_postgres:
        name = f"commgrid_pull_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{name}"'))
        try:
            run_store("postgresql", args.postgres.rsplit("/", 1)[0] + f"/{name}", batches, args.consumers, ceiling)
        finally:
            asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
