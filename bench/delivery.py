"""Push delivery: publish → webhook latency at a steady rate, and draining a backlog, against references.

The webhook receiver is aiohttp on uvloop in its own process on core 1 (its own ceiling is measured with
`wrk` from core 0 and printed, to show it is not the bottleneck); `commgrid serve` runs on core 0.

1. Latency: one event per request at a constant `--rate` (default 500/s) from an asyncio publisher on core 1
   that keeps its schedule (each send is a task started at its slot, whatever earlier ones are doing); each
   event carries its send time, the receiver subtracts it from its arrival time: p50 / p99 / max.
2. Throughput: a backlog of `--events` events is stored while the server is down, then the server starts and
   drains it into the receiver: rate = events / (last arrival - first arrival), at maxEventsPerBatch 1 and 10.
3. Reference: a plain aiohttp client on core 0 POSTing one-event bodies to the same receiver with the delivery
   worker's per-endpoint concurrency.

    python -m bench.delivery [--rate 500] [--seconds 10] [--events 20000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench._harness import (
    LOAD_CPU,
    SERVER_CPU,
    Row,
    Server,
    cpu_seconds,
    free_port,
    get_json,
    make_events,
    pin_self,
    pinned,
    ratio_row,
    remove,
    temp_dir,
    wait_until,
    wrk,
)

CONCURRENCY = 64  # grid/delivery.py ENDPOINT_CONCURRENCY


# ------------------------------------------------------------------------------------------------------------
# The receiver process


def run_receiver(port: int) -> None:
    """A no-op webhook: answers the validation handshake, counts events, records latencies."""
    state: dict[str, Any] = {"count": 0, "requests": 0, "first": None, "last": None, "latencies": []}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        events = orjson.loads(body)
        events = events if isinstance(events, list) else [events]
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return web.json_response({"validationResponse": events[0]["data"]["validationCode"]})
        state["requests"] += 1
        state["count"] += len(events)
        state["first"] = state["first"] or now
        state["last"] = now
        for event in events:
            sent = (event.get("data") or {}).get("sentAt")
            if sent:
                state["latencies"].append(now - sent)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(state), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        state.update(count=0, requests=0, first=None, last=None, latencies=[])
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    import uvloop

    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class Receiver:
    def __init__(self, cpu: int = LOAD_CPU) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "bench.delivery", "--receiver", str(self.port)]
        self.process = subprocess.Popen(pinned(cpu, args))
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: get_json(f"{self.url}/stats") is not None, "receiver")

    def stats(self) -> dict[str, Any]:
        return get_json(f"{self.url}/stats")

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/reset", method="POST"), timeout=5).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# ------------------------------------------------------------------------------------------------------------
# Loads


def sent_event(i: int) -> dict[str, Any]:
    event = make_events(1, pad=0)[0]
    event["data"] = {"n": i, "sentAt": time.time()}
    return event


async def publish_at_rate(endpoint: str, key: str, rate: float, seconds: float) -> tuple[int, float]:
    """Publish one event per request at `rate`/s; returns (failures, worst lag behind the schedule in ms)."""
    count, interval = int(rate * seconds), 1.0 / rate
    failures, worst_lag = 0, 0.0
    headers = {"aeg-sas-key": key, "Content-Type": "application/json"}

    async def send(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal failures
        try:
            async with session.post(endpoint, data=orjson.dumps([sent_event(i)]), headers=headers) as response:
                await response.read()
                failures += response.status != 200
        except aiohttp.ClientError:  # counted: a refused publish is never delivered, so it adds no latency
            failures += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start, tasks = time.monotonic(), []
        for i in range(count):
            slot = start + i * interval
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, time.monotonic() - slot)
            tasks.append(asyncio.create_task(send(session, i)))
        await asyncio.gather(*tasks)
    return failures, worst_lag * 1000


async def store_backlog(data_dir: Path, store: str | None, topic: str, count: int) -> None:
    """Store `count` events with their deliveries while no server runs (the same path as publishing)."""
    from commgrid.config import Settings
    from commgrid.runtime import Runtime

    async with Runtime(Settings.for_data_dir(data_dir, store_url=store)) as runtime:
        for start in range(0, count, 1000):
            await runtime.grid.publish(topic, make_events(min(1000, count - start), pad=0))


async def plain_client(url: str, count: int) -> tuple[float, float]:
    """Requests/s of one-event POSTs by a plain aiohttp client with the delivery worker's concurrency, and its
    CPU time per request in µs."""
    body = orjson.dumps(make_events(1, pad=0))
    headers = {"Content-Type": "application/json; charset=utf-8", "aeg-event-type": "Notification"}
    queue = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


def plain_client_rate(url: str, count: int) -> tuple[float, float]:
    """`plain_client` in a process of its own on the server's core: requests/s, CPU µs per request."""
    args = [sys.executable, "-m", "bench.delivery", "--plain", url, "--events", str(count)]
    out = subprocess.run(pinned(SERVER_CPU, args), capture_output=True, text=True, check=True).stdout
    rate, cpu = orjson.loads(out)
    return rate, cpu


@dataclass
class Drained:
    """A drained backlog: deliveries/s, requests, and the servers' CPU µs per request in the middle 80 %."""

    rate: float
    requests: int
    cpu_us_per_request: float


def drain(servers: list[Server], receiver: Receiver, topic: str, count: int) -> Drained:
    """Deliveries/s of `servers` draining a backlog of `count` events stored while they were down."""
    for server in servers:
        server.stop()
    receiver.reset()
    asyncio.run(store_backlog(servers[0].data_dir, servers[0].store, topic, count))
    for server in servers:
        server.start()
    marks = []  # (requests, CPU seconds of the servers) at 10 % and 90 % of the events
    for share in (0.1, 0.9):
        wait_until(lambda s=share: receiver.stats()["count"] >= count * s, f"{share:.0%} of the deliveries",
                   timeout=600)
        marks.append((receiver.stats()["requests"], sum(cpu_seconds(s.pid) for s in servers)))
    wait_until(lambda: receiver.stats()["count"] >= count, f"{count} deliveries", timeout=600)
    stats = receiver.stats()
    (r0, c0), (r1, c1) = marks
    cpu = (c1 - c0) / (r1 - r0) * 1e6 if r1 > r0 else float("nan")
    return Drained(count / (stats["last"] - stats["first"]), stats["requests"], cpu)


def subscribe(server: Server, receiver: Receiver, topics: dict[str, int]) -> dict[str, dict[str, Any]]:
    created = {}
    for name, batch in topics.items():
        created[name] = server.create_topic(name)
        server.cli("subscription", "create", "--topic", name, "--name", f"{name}-sub", "--endpoint",
                   f"{receiver.url}/hook", "--max-events-per-batch", str(batch))
    return created


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------------------------------
# Runs


def run_latency(rate: float, seconds: float, store: str | None = None) -> list[Row]:
    receiver = Receiver()
    data_dir = temp_dir()
    server = Server(data_dir, store).start()
    try:
        topic = subscribe(server, receiver, {"latency": 1})["latency"]
        time.sleep(0.6)
        asyncio.run(publish_at_rate(topic["httpEndpoint"], topic["key1"], rate, 1.0))  # warm-up
        wait_until(lambda: receiver.stats()["count"] >= int(rate), "warm-up deliveries")
        receiver.reset()
        failures, lag = asyncio.run(publish_at_rate(topic["httpEndpoint"], topic["key1"], rate, seconds))
        expected = int(rate * seconds) - failures
        wait_until(lambda: receiver.stats()["count"] >= expected, "latency deliveries")
        ms = [x * 1000 for x in receiver.stats()["latencies"]]
    finally:
        server.stop()
        receiver.stop()
        remove(data_dir)
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    return [Row(f"publish → webhook at {rate:.0f} events/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
                f" max {max(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms",
                f"publisher's worst lag behind schedule {lag:.1f} ms; failures {failures}", None,
                "p50 ≤ 5 ms, p99 ≤ 20 ms", p50 <= 5 and p99 <= 20)]


def run_throughput(events: int, store: str | None = None) -> list[Row]:
    receiver = Receiver()
    data_dir = temp_dir()
    server = Server(data_dir, store).start()
    rows = []
    try:
        receiver_ceiling = wrk(f"{receiver.url}/hook", orjson.dumps(make_events(1, pad=0)), seconds=3,
                               connections=CONCURRENCY, cpu=SERVER_CPU).requests_per_s
        baseline, baseline_cpu = plain_client_rate(f"{receiver.url}/hook", events)
        subscribe(server, receiver, {"batch1": 1, "batch10": 10})
        time.sleep(0.6)
        for name, batch in (("batch1", 1), ("batch10", 10)):
            drained = drain([server], receiver, name, events)
            rows.append(ratio_row(f"deliveries/s, maxEventsPerBatch {batch}", drained.rate, "/s",
                                  "plain aiohttp client", baseline, 0.8 if batch == 1 else 0.0))
            rows[-1].value += f" ({drained.requests:,} requests)"
            if batch != 1:
                rows[-1].goal, rows[-1].met = "–", None
                continue
            rows.append(Row("  the same by CPU time per request (robust to other load)",
                            f"{drained.cpu_us_per_request:,.0f} µs", f"plain client {baseline_cpu:,.0f} µs",
                            baseline_cpu / drained.cpu_us_per_request))
        rows.append(Row("  reference: the receiver's own ceiling (wrk, 64 connections)",
                        f"{receiver_ceiling:,.0f} requests/s"))
    finally:
        server.stop()
        receiver.stop()
        remove(data_dir)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=500.0, help="latency run: events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run: duration")
    parser.add_argument("--events", type=int, default=20000, help="throughput runs: backlog size")
    parser.add_argument("--store", help="store URL (default: SQLite in a temporary data dir)")
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return
    if args.plain:
        print(orjson.dumps(asyncio.run(plain_client(args.plain, args.events))).decode())
        return
    pin_self(LOAD_CPU)
    for row in run_latency(args.rate, args.seconds, args.store) + run_throughput(args.events, args.store):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
