"""Publish throughput with the operator console open on a live stream, against the same load without it.

Runs `commgrid serve` (SQLite by default, or `--store postgresql://…`), fills it with `--prefill` stored events,
then alternates runs of closed-loop publishing (batches of `--batch` ~1 KB events) with and without the
dashboard open in headless Chromium (Debian's chromium, driven by Playwright) showing the live stream. Prints
each run, the median of each side and their ratio, and how long the console's reads take over that many events.

    python -m bench.console [--store URL] [--prefill 200000] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Page, sync_playwright

from bench._harness import make_events
from bench._load import Result, closed_loop
from tests.support import ServerProcess

CHROMIUM = "/usr/bin/chromium"


def make_bodies(batch: int, count: int) -> list[bytes]:
    return [orjson.dumps(make_events(batch)) for _ in range(count)]


def publish(topic: dict[str, Any], batch: int, seconds: float, concurrency: int) -> Result:
    """Closed-loop publishing, on its own thread (Playwright's sync API holds an event loop on this one)."""
    headers = {"aeg-sas-key": topic["key1"], "content-type": "application/json"}
    load = closed_loop(topic["httpEndpoint"], make_bodies(batch, 200), headers, seconds, concurrency)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, load).result()


def prefill(topic: dict[str, Any], count: int) -> None:
    headers = {"aeg-sas-key": topic["key1"], "content-type": "application/json"}
    bodies = make_bodies(500, 40)

    async def go() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            for i in range(0, count, 500):
                async with session.post(topic["httpEndpoint"], data=bodies[(i // 500) % 40], headers=headers) as r:
                    assert r.status == 200, await r.text()

    asyncio.run(go())


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


@contextmanager
def browser_tab():
    """One headless Chromium tab for the whole run, so its start-up never overlaps a measurement."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def open_dashboard(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.http}/dashboard")
    page.wait_for_function("document.getElementById('live').classList.contains('on')", timeout=15_000)
    time.sleep(1.0)  # let the first render settle


def close_dashboard(page: Page) -> int:
    rows = page.locator("#events tbody tr").count()
    page.goto("about:blank")
    time.sleep(1.0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="store URL (default: SQLite in a temp data dir)")
    parser.add_argument("--prefill", type=int, default=200_000, help="events stored before measuring")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="commgrid-bench-"))
    server = ServerProcess(data_dir, store=args.store)
    try:
        server.start()
        topic = json.loads(server.cli("topic", "create", "bench", "--json").stdout)
        began = time.perf_counter()
        prefill(topic, args.prefill)
        print(f"commgrid console benchmark  store={server.info()['store']}  prefilled {args.prefill:,} events in"
              f" {time.perf_counter() - began:.0f}s; batches of {args.batch}, {args.concurrency} clients,"
              f" {args.seconds:.0f}s per run")
        reads = {"overview": "/dashboard/api/overview", "newest page": "/dashboard/api/events",
                 "search by type": "/dashboard/api/events?type=Bench.Event&subject=/bench/4",
                 "search by id (absent)": "/dashboard/api/events?id=nope",
                 "journey": "/dashboard/api/events/1", "metrics": "/metrics"}
        for label, path in reads.items():
            ms = statistics.median(timed_get(server.http + path) for _ in range(5))
            print(f"  console read {label:<24} {ms:8.1f} ms (median of 5)")
        publish(topic, args.batch, 1.0, args.concurrency)  # warm-up
        without, with_page = [], []
        with browser_tab() as page:
            for round_ in range(args.rounds):
                r = publish(topic, args.batch, args.seconds, args.concurrency)
                without.append(r.rate * args.batch)
                print(f"  round {round_ + 1} without dashboard {without[-1]:>10,.0f} events/s  p50 {r.p50:6.2f} ms"
                      f"  p99 {r.pct(99):6.2f} ms  errors {r.errors}")
                open_dashboard(page, server)
                r = publish(topic, args.batch, args.seconds, args.concurrency)
                rows = close_dashboard(page)
                with_page.append(r.rate * args.batch)
                print(f"  round {round_ + 1} with dashboard    {with_page[-1]:>10,.0f} events/s  p50 {r.p50:6.2f} ms"
                      f"  p99 {r.pct(99):6.2f} ms  errors {r.errors}  (live rows on the page: {rows})")
        a, b = statistics.median(without), statistics.median(with_page)
        print(f"median without {a:,.0f} events/s, with the dashboard open {b:,.0f} events/s: ratio {b / a:.3f}")
    finally:
        if server.process:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
