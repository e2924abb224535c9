"""Soak benchmark: minutes of publishing while receivers fail, hang and dawdle, and the server is killed.

- Publishers post batches of 10 events at `--rate` events/s; an event counts as acknowledged when its request
  got a 200.
- Five subscriptions get every event: two healthy receivers, one failing 30 % of requests with a 500, one
  hanging 20 % of them (until the response timeout), one answering after 0-0.8 s.
- Every `--kill-every` seconds a node gets SIGKILL and is started again. With `--store postgresql://…` and
  `--nodes 2`, two nodes share the database and are killed in turn.
- Afterwards publishing stops and the run waits (at most `--drain` s) until every acknowledged event reached
  every subscription (or its dead-letter record).

- With `--retention-minutes M` the topic keeps events M minutes (scaled: M seconds at the soak's time scale
  60), and the store's size and retained events are sampled every 5 s: the size must level off once the store
  holds its window, and the report gives the steady-state bytes per retained event (and per million).

Reported: acknowledged, delivered, still pending (in the store, waiting for a retry), lost (acknowledged but
neither delivered, dead-lettered nor pending: must be 0),
duplicates (at-least-once re-sends after kills), publish-to-delivery latency of the healthy subscriptions,
and each node's RSS over time. Runs at `--time-scale 60` (retries after 0.17 s, 1 s response timeout).

    python -m bench.soak [--seconds 120] [--rate 300] [--kill-every 20] [--store URL --nodes 2] [--retention-minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench._harness import free_port
from bench._load import wait_http

ROOT = Path(__file__).resolve().parent.parent
HEALTHY = ("healthy-a", "healthy-b")
ENDPOINTS = (*HEALTHY, "flaky", "hanging", "slow")
TIME_SCALE = 60
BATCH = 10


# ------------------------------------------------------------------------------------------------------------
# The receiver process


def run_receiver(port: int, seed: int) -> None:
    """Webhooks with the five behaviours; records every delivered event id and the healthy latencies."""
    rng = random.Random(seed)
    seen: dict[str, Counter[str]] = {name: Counter() for name in ENDPOINTS}
    latencies: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        events = orjson.loads(await request.read())
        events = events if isinstance(events, list) else [events]
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return web.json_response({"validationResponse": events[0]["data"]["validationCode"]})
        if name == "flaky" and rng.random() < 0.3:
            return web.Response(status=500)
        if name == "hanging" and rng.random() < 0.2:
            await asyncio.sleep(3600)
        if name == "slow":
            await asyncio.sleep(rng.uniform(0, 0.8))  # inside the 1 s response timeout
        now = time.time()
        for event in events:
            seen[name][event["id"]] += 1
            if name in HEALTHY:
                latencies.append(now - event["data"]["sentAt"])
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"seen": seen, "latencies": latencies}),
                            content_type="application/json")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/hook/{name}", hook)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ------------------------------------------------------------------------------------------------------------
# Nodes


class Node:
    def __init__(self, data_dir: Path, store: str | None, log_level: str = "warning") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.args = [sys.executable, "-m", "commgrid.cli", "serve", "--data-dir", str(data_dir), "--port",
                     str(self.port), "--tls-port", "0", "--time-scale", str(TIME_SCALE), "--log-level", log_level,
                     *(["--store", store] if store else [])]
        self.process: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def rss_mb(self) -> float | None:
        if not self.process or self.process.poll() is not None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kb / 1024

    def cli(self, *args: str) -> str:
        command = [sys.executable, "-m", "commgrid.cli", *args, "--data-dir", str(self.data_dir)]
        store = self.args[self.args.index("--store") + 1] if "--store" in self.args else None
        done = subprocess.run([*command, *(["--store", store] if store else [])], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"commgrid {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout


# ------------------------------------------------------------------------------------------------------------
# Load


async def publish(nodes: list[Node], key: str, rate: float, seconds: float, acked: set[str]) -> int:
    """Post batches at `rate` events/s, round-robin over the nodes; returns how many requests failed."""
    failed = 0
    interval = BATCH / rate
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        sent = 0
        tasks: set[asyncio.Task[None]] = set()

        async def post(node: Node, ids: list[str]) -> None:
            nonlocal failed
            now = time.time()
            body = orjson.dumps([{"id": i, "subject": f"/soak/{i[:4]}", "eventType": "Soak", "dataVersion": "1",
                                  "eventTime": "2026-01-01T00:00:00Z", "data": {"sentAt": now}} for i in ids])
            try:
                async with session.post(f"http://127.0.0.1:{node.port}/topics/soak/api/events", data=body,
                                        headers={"aeg-sas-key": key, "content-type": "application/json"}) as r:
                    if r.status == 200:
                        acked.update(ids)
                    else:
                        failed += 1
            except (aiohttp.ClientError, TimeoutError, OSError):
                failed += 1  # the node is down: not acknowledged, so not expected

        while time.monotonic() - started < seconds:
            node = nodes[sent % len(nodes)]
            tasks.add(asyncio.create_task(post(node, [str(uuid.uuid4()) for _ in range(BATCH)])))
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * interval - time.monotonic()))
            tasks = {t for t in tasks if not t.done()}
        await asyncio.gather(*tasks)
    return failed


async def killer(nodes: list[Node], every: float, seconds: float) -> None:
    started = time.monotonic()
    turn = 0
    while time.monotonic() - started + every < seconds:
        await asyncio.sleep(every)
        node = nodes[turn % len(nodes)]
        turn += 1
        node.kill()
        await asyncio.to_thread(node.start)


async def sample_rss(nodes: list[Node], samples: list[tuple[float, list[float | None]]]) -> None:
    """Every node's RSS every 5 s, until cancelled."""
    started = time.monotonic()
    while True:
        samples.append((time.monotonic() - started, [n.rss_mb() for n in nodes]))
        await asyncio.sleep(5)


def open_store(node: Node) -> Any:
    from commgrid.store import store_from_url

    store_flag = node.args[node.args.index("--store") + 1] if "--store" in node.args else None
    return store_from_url(store_flag or f"sqlite:///{node.data_dir / 'commgrid.db'}")


async def sample_store(node: Node, samples: list[tuple[float, int, int]]) -> None:
    """(seconds, events retained, bytes on disk) every 5 s, until cancelled."""
    store = open_store(node)
    await store.open()
    started = time.monotonic()
    try:
        while True:
            await asyncio.sleep(5)
            stats = await store.stats()
            samples.append((time.monotonic() - started, sum(t.events for t in stats.topics), stats.size_bytes))
    finally:
        await store.close()


def receiver_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=30) as response:
        return orjson.loads(response.read())


def dead_lettered(node: Node) -> dict[str, set[str]]:
    letters = json.loads(node.cli("deadletter", "list", "--topic", "soak", "--json", "--limit", "100000"))
    out: dict[str, set[str]] = {name: set() for name in ENDPOINTS}
    for letter in letters:
        out.setdefault(letter["subscription"], set()).add(letter["event"]["id"])
    return out


async def pending(node: Node) -> dict[str, int]:
    """Deliveries still in the store per subscription (retrying after failures): late, not lost."""
    store = open_store(node)
    await store.open()
    try:
        return {name: await store.count_pending_deliveries("soak", name) for name in ENDPOINTS}
    finally:
        await store.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def soak(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="commgrid-soak-"))
    rx_port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.soak", "--receiver", str(rx_port)],
                                cwd=ROOT)
    nodes = [Node(root / f"node{i}", args.store) for i in range(args.nodes)]
    try:
        wait_http(f"http://127.0.0.1:{rx_port}/stats")
        for node in nodes:
            node.start()
        retention = ["--retention-minutes", str(args.retention_minutes)] if args.retention_minutes else []
        key = json.loads(nodes[0].cli("topic", "create", "soak", *retention, "--json"))["key1"]
        for name in ENDPOINTS:
            nodes[0].cli("subscription", "create", "--topic", "soak", "--name", name,
                         "--endpoint", f"http://127.0.0.1:{rx_port}/hook/{name}")
        await asyncio.sleep(1.0)  # every node routes to the new subscriptions
        acked: set[str] = set()
        rss: list[tuple[float, list[float | None]]] = []
        print(f"soak: {args.seconds:g} s at {args.rate:g} events/s, {args.nodes} node(s)"
              f" ({'PostgreSQL' if args.store else 'SQLite'}), kill -9 every {args.kill_every:g} s", flush=True)
        sampler = asyncio.create_task(sample_rss(nodes, rss))
        sizes: list[tuple[float, int, int]] = []
        size_sampler = asyncio.create_task(sample_store(nodes[0], sizes)) if args.retention_minutes else None
        failed, _ = await asyncio.gather(publish(nodes, key, args.rate, args.seconds, acked),
                                         killer(nodes, args.kill_every, args.seconds))
        drained_at = time.monotonic()
        while True:
            stats = receiver_stats(rx_port)
            missing = {name: acked - set(stats["seen"][name]) for name in ENDPOINTS}
            if not any(missing.values()) or time.monotonic() - drained_at > args.drain:
                break
            await asyncio.sleep(2)
        sampler.cancel()
        if size_sampler is not None:
            size_sampler.cancel()
            await asyncio.gather(size_sampler, return_exceptions=True)
        letters = dead_lettered(nodes[0])
        waiting = await pending(nodes[0])
        report(args, nodes, acked, failed, stats, letters, waiting, rss, time.monotonic() - drained_at)
        if sizes:
            report_sizes(sizes, args.seconds)
    finally:
        for node in nodes:
            node.stop()
        receiver.kill()  # its hanging requests would hold a graceful stop
        receiver.wait(10)


def report(args: argparse.Namespace, nodes: list[Node], acked: set[str], failed: int, stats: dict[str, Any],
           letters: dict[str, set[str]], waiting: dict[str, int], rss: list[tuple[float, list[float | None]]],
           drain: float) -> None:
    print(f"\nacknowledged events: {len(acked)} (publish requests refused or cut by kills: {failed})")
    print(f"kills: {sum(n.kills for n in nodes)}; drained in {drain:.1f} s after publishing stopped")
    print(f"{'subscription':<12} {'delivered':>10} {'dead-lettered':>14} {'pending':>8} {'lost':>6}"
          f" {'duplicates':>11}")
    total_lost = 0
    for name in ENDPOINTS:
        seen = Counter(stats["seen"][name])
        delivered = acked & set(seen)
        lost = max(0, len(acked - delivered - letters.get(name, set())) - waiting[name])
        total_lost += lost
        duplicates = sum(count - 1 for event_id, count in seen.items() if event_id in acked)
        print(f"{name:<12} {len(delivered):>10} {len(letters.get(name, set()) & acked):>14} {waiting[name]:>8}"
              f" {lost:>6}"
              f" {duplicates:>11}")
    latencies = stats["latencies"]
    print(f"healthy publish-to-delivery latency: p50 {pct(latencies, 50):.0f} ms, p99 {pct(latencies, 99):.0f} ms,"
          f" max {max(latencies, default=0) * 1000:.0f} ms (kills included)")
    print("RSS (MB) over time: " + ", ".join(
        f"{t:.0f}s " + "/".join("-" if v is None else f"{v:.0f}" for v in values) for t, values in rss))
    print(f"LOST: {total_lost}")


def report_sizes(sizes: list[tuple[float, int, int]], seconds: float) -> None:
    """The store's size over time, and what a retained event costs once the size has levelled off."""
    print("store over time (retained events / MB): " + ", ".join(
        f"{t:.0f}s {n}/{size / 2**20:.1f}" for t, n, size in sizes))
    loaded = [(n, size) for t, n, size in sizes if seconds / 2 <= t <= seconds]  # steady state, still publishing
    if loaded:
        per_event = max(size for _, size in loaded) / max(1, min(n for n, _ in loaded))
        first_half = max((size for t, _, size in sizes if t < seconds / 2), default=0)
        low, high = min(s for _, s in loaded), max(s for _, s in loaded)
        print(f"steady state: {low / 2**20:.1f}-{high / 2**20:.1f} MB in the second half"
              f" (first half peak {first_half / 2**20:.1f} MB); about {per_event:.0f} bytes per retained event,"
              f" {per_event * 1e6 / 2**30:.2f} GB per million")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=90.0, help="longest wait for stragglers afterwards")
    parser.add_argument("--store", help="postgresql://… (default: SQLite in a temporary data dir)")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retention-minutes", type=int, help="the topic's retention (scaled: seconds here)")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver, args.seed)
        return
    if args.nodes > 1 and not args.store:
        raise SystemExit("several nodes need a shared PostgreSQL store (--store postgresql://…)")
    asyncio.run(soak(args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
