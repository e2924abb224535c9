"""Where a serving process spends its time under `wrk` load: py-spy samples, summarised.

Starts `commgrid serve` (SQLite) on core 0, loads it with `wrk` from core 1 (one event per request, or
`--batch N` events), records the server with `py-spy record --format raw` for `--seconds`, and prints the
share of samples by layer (HTTP stack, SQLite and its thread hand-offs, commgrid's own code) and the top
frames by own time. py-spy is not a dependency: `pip install py-spy` first (it needs ptrace rights).

    python -m bench.profile [--batch 1] [--seconds 10] [--out profile.txt]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import threading
from pathlib import Path

import orjson

from bench._harness import LOAD_CPU, Server, make_events, pin_self, remove, temp_dir, wrk

LAYERS = [  # the first that matches a stack's innermost frames names its layer
    ("SQLite (statements, commit, fsync)", re.compile(r"sqlite3|\(aiosqlite/core.py\)|run_transaction")),
    ("thread hand-offs and event loop", re.compile(r"\((?:asyncio|uvloop|concurrent|threading|queue)/")),
    ("HTTP (uvicorn, httptools, Starlette)", re.compile(r"\((?:uvicorn|httptools|starlette)/")),
    ("JSON (orjson)", re.compile(r"orjson")),
    ("commgrid", re.compile(r"\(commgrid/")),
]


def frame_name(frame: str) -> str:
    """`fn (path/to/module.py:12)` shortened to `fn (package/module.py)`."""
    match = re.match(r"(.*?) \((?:.*/(?:site-packages|src|lib/python3\.\d+)/)?(.*?)(?::\d+)?\)$", frame.strip())
    return f"{match.group(1)} ({match.group(2)})" if match else frame.strip()


def summarise(raw: str, top: int = 25) -> str:
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames[1:]):
            if "(commgrid/" in name or "(starlette/" in name or "(uvicorn/" in name:
                inclusive[name] += count
        threads[re.sub(r"\(\d+\)|_\d+$", "", frames[0]).strip()] += count
        for name, pattern in LAYERS:
            if any(pattern.search(f) for f in frames[-3:]):
                layers[name] += count
                break
        else:
            layers["other (Python runtime, libraries)"] += count
    lines = [f"{total} samples", "", "by thread:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common()]
    lines += ["", "by layer (innermost frames):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    lines += ["", "top frames by own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "commgrid, Starlette and uvicorn frames by inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="also write the summary here")
    args = parser.parse_args()
    pin_self(LOAD_CPU)
    body = orjson.dumps(make_events(args.batch))
    data_dir = temp_dir()
    server = Server(data_dir).start()
    try:
        topic = server.create_topic("bench")
        url, key = topic["httpEndpoint"], topic["key1"]
        wrk(url, body, key, seconds=1)
        load = threading.Thread(target=wrk, args=(url, body, key), kwargs={"seconds": args.seconds + 2})
        load.start()
        raw_path = data_dir / "profile.raw"
        subprocess.run(["py-spy", "record", "--pid", str(server.pid), "--duration", str(int(args.seconds)),
                        "--format", "raw", "--output", str(raw_path), "--threads", "--nonblocking"],
                       check=True, capture_output=True)
        load.join()
        summary = summarise(raw_path.read_text())
    finally:
        server.stop()
        remove(data_dir)
    print(summary)
    if args.out:
        args.out.write_text(summary + "\n")


if __name__ == "__main__":
    main()
