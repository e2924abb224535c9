"""Durable ingest benchmark: batches of 100 ~1 KB events, and single events, through the real HTTP endpoint.

Runs `commgrid serve` (SQLite by default, or `--store postgresql://…`) and a no-op server on the same HTTP
stack, loads each in turn from this process, and prints commgrid's figures as ratios to the no-op's.

    python -m bench.ingest [--store URL] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import uuid
from pathlib import Path

import orjson

from bench._load import Result, closed_loop, start_noop_server, wait_http
from tests.support import ServerProcess, free_port


def make_bodies(batch: int, count: int) -> list[bytes]:
    pad = "x" * 800
    return [orjson.dumps([{"id": str(uuid.uuid4()), "subject": f"/bench/{i}", "eventType": "Bench.Event",
                           "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1.0",
                           "data": {"n": i, "pad": pad}} for i in range(batch)]) for _ in range(count)]


def line(label: str, result: Result, batch: int, baseline: Result | None) -> str:
    events = result.rate * batch
    text = (f"{label:<34} {events:>10,.0f} events/s {result.rate:>9,.0f} req/s"
            f"  p50 {result.p50:6.2f} ms  p99 {result.pct(99):6.2f} ms  errors {result.errors}")
    if baseline:
        text += f"  ratio to no-op {result.rate / baseline.rate:5.2f}"
    return text


async def measure(url: str, headers: dict[str, str], batch: int, seconds: float, concurrency: int) -> Result:
    await closed_loop(url, make_bodies(batch, 20), headers, 1.0, concurrency)  # warm-up
    return await closed_loop(url, make_bodies(batch, 200), headers, seconds, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="store URL (default: SQLite in a temp data dir)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    noop_port = free_port()
    noop = start_noop_server(noop_port)
    data_dir = Path(tempfile.mkdtemp(prefix="commgrid-bench-"))
    server = ServerProcess(data_dir, store=args.store)
    try:
        wait_http(f"http://127.0.0.1:{noop_port}/healthz")
        server.start()
        topic = json.loads(server.cli("topic", "create", "bench", "--json").stdout)
        headers = {"aeg-sas-key": topic["key1"], "content-type": "application/json"}
        noop_url = f"http://127.0.0.1:{noop_port}/topics/bench/api/events"
        print(f"commgrid ingest benchmark  store={server.info()['store']}  {args.seconds:.0f}s per run, "
              f"{args.concurrency} concurrent clients")
        for batch in (100, 1):
            base = asyncio.run(measure(noop_url, headers, batch, args.seconds, args.concurrency))
            ours = asyncio.run(measure(topic["httpEndpoint"], headers, batch, args.seconds, args.concurrency))
            print(line(f"no-op Starlette, batch {batch}", base, batch, None))
            print(line(f"commgrid durable, batch {batch}", ours, batch, base))
        stored = json.loads(server.cli("info", "--json").stdout)
        print(f"stored in {stored['store']}")
    finally:
        noop.terminate()
        if server.process:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
