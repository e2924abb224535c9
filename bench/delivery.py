"""Push delivery benchmark: end-to-end latency and delivery throughput against a local no-op receiver.

1. Latency: events published one per request at a fixed rate (default 500/s) to a running `commgrid serve`;
   the receiver subtracts each event's `data.sentAt` from its arrival time: p50 / p99 / max.
2. Throughput: a backlog of N events is stored while the server is down, then the server starts and drains
   it into the receiver; rate = N / (last arrival - first arrival), at maxEventsPerBatch 1 and 10.
3. Baseline: a plain aiohttp client POSTing N one-event bodies to the same receiver, with the same
   per-endpoint concurrency as the delivery worker; commgrid's rate is printed beside it as a ratio.

The receiver runs in its own process (aiohttp on uvloop), as does the server. Goals (issue 6): p99 < 50 ms,
≥ 5,000 deliveries/s at batch size 1.

    python bench/delivery.py [--rate 500] [--seconds 10] [--events 20000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 64  # grid/delivery.py ENDPOINT_CONCURRENCY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        return web.json_response(state)

    async def reset(request: web.Request) -> web.Response:
        state.update(count=0, requests=0, first=None, last=None, latencies=[])
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class ReceiverProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--receiver", str(self.port)])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: _get(f"{self.url}/stats") is not None, "receiver")

    def stats(self) -> dict[str, Any]:
        return _get(f"{self.url}/stats")

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/reset", method="POST"), timeout=5).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, data_dir: Path, store: str | None) -> None:
        self.data_dir, self.store = data_dir, store
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def _args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        return args + (["--store", self.store] if self.store else [])

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMGRID_")}
        log = (self.data_dir / "server.log").open("ab") if self.data_dir.exists() else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "commgrid.cli", "serve", "--port", str(self.port), "--tls-port", "0",
             *self._args()], stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: _get(f"http://127.0.0.1:{self.port}/healthz") is not None, "commgrid serve")

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "commgrid.cli", *args, *self._args()], capture_output=True,
                              text=True, check=False)
        if done.returncode:
            raise SystemExit(f"commgrid {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout


def event(i: int, sent_at: float | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"n": i}
    if sent_at is not None:
        data["sentAt"] = sent_at
    return {"id": str(uuid.uuid4()), "subject": f"/bench/{i}", "eventType": "Bench.Event",
            "eventTime": "2024-01-01T00:00:00Z", "data": data, "dataVersion": "1"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------------------------------
# Measurements


async def measure_latency(endpoint: str, key: str, rate: float, seconds: float) -> None:
    count = int(rate * seconds)
    interval = 1.0 / rate
    failures = 0

    async def send(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal failures
        body = orjson.dumps([event(i, time.time())])
        async with session.post(endpoint, data=body, headers={"aeg-sas-key": key,
                                                              "Content-Type": "application/json"}) as response:
            if response.status != 200:
                failures += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = time.monotonic()
        tasks = []
        for i in range(count):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(session, i)))
        await asyncio.gather(*tasks)
    if failures:
        print(f"  {failures} publish requests failed")


async def publish_backlog(data_dir: Path, store: str | None, topic: str, count: int) -> None:
    """Store `count` events with their deliveries while no server runs (the same path as publishing)."""
    sys.path.insert(0, str(ROOT / "src"))
    from commgrid.config import Settings
    from commgrid.runtime import Runtime

    async with Runtime(Settings.for_data_dir(data_dir, store_url=store)) as runtime:
        for start in range(0, count, 1000):
            await runtime.grid.publish(topic, [event(i) for i in range(start, min(start + 1000, count))])


async def plain_client_rate(url: str, count: int) -> float:
    body = orjson.dumps([event(0)])
    headers = {"Content-Type": "application/json; charset=utf-8", "aeg-event-type": "Notification"}
    queue = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)


def drain(server: Server, receiver: ReceiverProcess, data_dir: Path, store: str | None, topic: str,
          count: int) -> tuple[float, int]:
    server.stop()
    receiver.reset()
    asyncio.run(publish_backlog(data_dir, store, topic, count))
    server.start()
    wait_until(lambda: receiver.stats()["count"] >= count, f"{count} deliveries", timeout=300)
    stats = receiver.stats()
    return count / (stats["last"] - stats["first"]), stats["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=500.0, help="latency run: events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run: duration")
    parser.add_argument("--events", type=int, default=20000, help="throughput runs: backlog size")
    parser.add_argument("--store", help="store URL (default: SQLite in a temporary data dir)")
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return

    receiver = ReceiverProcess()
    with tempfile.TemporaryDirectory(prefix="commgrid-bench-") as tmp:
        data_dir = Path(tmp)
        server = Server(data_dir, args.store)
        server.start()
        try:
            topics = {name: json.loads(server.cli("topic", "create", name, "--json")) for name in
                      ("latency", "batch1", "batch10")}
            for name, batch in (("latency", 1), ("batch1", 1), ("batch10", 10)):
                server.cli("subscription", "create", "--topic", name, "--name", f"{name}-sub", "--endpoint",
                           f"{receiver.url}/hook", "--max-events-per-batch", str(batch))
            time.sleep(0.6)

            print(f"latency: publish -> webhook, {args.rate:.0f} events/s for {args.seconds:.0f} s (one per request)")
            receiver.reset()
            latency = topics["latency"]
            asyncio.run(measure_latency(latency["httpEndpoint"], latency["key1"], args.rate, args.seconds))
            expected = int(args.rate * args.seconds)
            wait_until(lambda: receiver.stats()["count"] >= expected, "latency deliveries")
            ms = [x * 1000 for x in receiver.stats()["latencies"]]
            print(f"  p50 {percentile(ms, 50):.1f} ms   p99 {percentile(ms, 99):.1f} ms   max {max(ms):.1f} ms"
                  f"   mean {statistics.fmean(ms):.1f} ms   ({len(ms)} events)")

            baseline = asyncio.run(plain_client_rate(f"{receiver.url}/hook", args.events))
            print(f"throughput: draining a backlog of {args.events} events into the receiver")
            for name, batch in (("batch1", 1), ("batch10", 10)):
                rate, requests = drain(server, receiver, data_dir, args.store, name, args.events)
                print(f"  maxEventsPerBatch {batch:>2}: {rate:8.0f} deliveries/s  ({requests} requests)"
                      f"   plain aiohttp client {baseline:8.0f} requests/s   ratio {rate / baseline:.2f}")
        finally:
            server.stop()
            receiver.stop()


if __name__ == "__main__":
    main()
