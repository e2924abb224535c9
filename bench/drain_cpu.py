"""CPU time per push delivery, per thread, while `commgrid serve` drains a stored backlog (maxEventsPerBatch 1).

For A/B comparisons of the delivery path: each `--src LABEL=DIR` names a commgrid source tree (`DIR/src` goes
first on the server's PYTHONPATH); the drains alternate between them `--rounds` times and the medians are
printed, and the minima (other work on the machine only adds time). The server runs on core 0, the receiver
(`bench.delivery`'s) on core 1. A thread's figure is its on-CPU time
(`/proc/PID/task/TID/schedstat`, ns) between 10 % and 90 % of the deliveries, per delivery: `loop` is the main
thread (the event loop), `busiest` the busiest other thread (the SQLite writer), `rest` all other threads.

    python -m bench.drain_cpu --src main=/tmp/main --src new=. [--events 30000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from bench._harness import LOAD_CPU, Server, pin_self, remove, temp_dir, wait_until
from bench.delivery import Receiver, store_backlog, subscribe

TOPIC = "drain"


def thread_ns(pid: int) -> dict[int, int]:
    """On-CPU nanoseconds of each thread of `pid`."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return times


def per_thread(pid: int, before: dict[int, int], after: dict[int, int], count: int) -> dict[str, float]:
    """µs per delivery: the event loop, the busiest other thread, the rest."""
    used = {tid: after[tid] - before.get(tid, 0) for tid in after}
    loop = used.pop(pid, 0)
    busiest = max(used.values(), default=0)
    rest = sum(used.values()) - busiest
    return {name: ns / count / 1000 for name, ns in
            (("loop", loop), ("busiest", busiest), ("rest", rest), ("total", loop + busiest + rest))}


def drain_once(src: Path, receiver: Receiver, events: int, profile: str | None = None,
               spy_args: str = "--gil") -> dict[str, float]:
    os.environ["PYTHONPATH"] = str(src / "src")
    data_dir = temp_dir()
    server = Server(data_dir).start()
    try:
        subscribe(server, receiver, {TOPIC: 1})
        server.stop()
        receiver.reset()
        asyncio.run(store_backlog(data_dir, None, TOPIC, events))
        server.start()
        marks, spy = [], None
        for share in (0.1, 0.9):
            wait_until(lambda s=share: receiver.stats()["count"] >= events * s, f"{share:.0%}", timeout=600)
            marks.append((receiver.stats()["count"], thread_ns(server.pid), time.monotonic()))
            if profile and spy is None:  # py-spy's own sampling shares core 1 with the receiver
                spy = subprocess.Popen(["taskset", "-c", str(LOAD_CPU), "py-spy", "record", *spy_args.split(),
                                        "-r", "500", "-f", "raw", "-o", profile, "-p", str(server.pid)])
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        wait_until(lambda: receiver.stats()["count"] >= events, "the whole backlog", timeout=600)
        (c0, t0, s0), (c1, t1, s1) = marks
        result = per_thread(server.pid, t0, t1, c1 - c0)
        result["rate"] = (c1 - c0) / (s1 - s0)
        return result
    finally:
        server.stop()
        remove(data_dir)


def ab_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of an A/B run over source trees: `--src LABEL=DIR` (repeated) and `--rounds`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", action="append", required=True, help="LABEL=DIR, a commgrid checkout")
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def source_trees(specs: list[str]) -> list[tuple[str, Path]]:
    return [(label, Path(path).resolve()) for label, path in (s.split("=", 1) for s in specs)]


def main() -> None:
    parser = ab_parser(__doc__)
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--profile", help="py-spy raw output over the middle 80 %% of the first drain")
    parser.add_argument("--spy-args", default="--gil", help="py-spy record's options (default: --gil)")
    args = parser.parse_args()
    trees = source_trees(args.src)
    pin_self(LOAD_CPU)
    receiver = Receiver()
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    try:
        for _ in range(args.rounds):
            for label, src in trees:
                result = drain_once(src, receiver, args.events, args.profile, args.spy_args)
                args.profile = None
                results[label].append(result)
                print(label, orjson.dumps({k: round(v, 1) for k, v in result.items()}).decode(), flush=True)
    finally:
        receiver.stop()
    for label, runs in results.items():
        for name, pick in (("median", statistics.median), ("min", min)):  # other load only adds time: min too
            picked = {key: round(pick(r[key] for r in runs), 1) for key in runs[0] if key != "rate"}
            print(name, label, orjson.dumps(picked).decode(), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
