"""Run every benchmark and write the results table into bench/README.md (between its table markers).

    python -m bench                      # everything, full length (about 10 minutes)
    python -m bench --quick              # shorter runs, for a first look (about 4 minutes)
    python -m bench --only ingest,match  # a subset: ingest, latency, delivery, match, workers, multinode
    python -m bench --no-write           # print the table only

Each figure stands beside its reference measured in the same run (see bench/README.md for what each is).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import delivery, ingest, match, multinode, workers
from bench._harness import LOAD_CPU, PostgresDatabase, Row, machine, pin_self, postgres_available

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
PARTS = ("ingest", "latency", "delivery", "match", "workers", "multinode")
HEADER = ["figure", "commgrid", "reference (same run)", "ratio", "goal", "met"]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def results_block(rows: list[Row], command: str, minutes: float, load: float) -> str:
    m = machine()
    return "\n".join([
        BEGIN,
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']};"
        f" load average {load:.1f} at the start (other work on the machine makes absolute figures and ratios"
        f" noisy); `{command}` took {minutes:.1f} min.",
        "",
        table(rows),
        END,
    ])


def write_readme(block: str) -> None:
    text = README.read_text()
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def plan(args: argparse.Namespace) -> dict[str, Callable[[], list[Row]]]:
    seconds = 3.0 if args.quick else args.seconds
    events = 5_000 if args.quick else args.events

    def multinode_rows() -> list[Row]:
        if not postgres_available():
            return [Row("PostgreSQL two nodes", "not measured: no PostgreSQL at COMMGRID_BENCH_POSTGRES")]
        with PostgresDatabase() as url:
            return multinode.run(seconds, multinode.BACKLOG_FACTOR * events, url)

    return {
        "ingest": lambda: ingest.run(seconds),
        "latency": lambda: delivery.run_latency(500.0, seconds * 2),
        "delivery": lambda: delivery.run_throughput(events),
        "match": lambda: match.run(100_000, 2_000 if args.quick else 10_000, repeats=9 if args.quick else 15),
        "workers": lambda: workers.run(seconds),
        "multinode": multinode_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="3 s loads, 5,000-event backlogs, fewer passes")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load")
    parser.add_argument("--events", type=int, default=20_000, help="delivery backlog size")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/README.md alone")
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    pin_self(LOAD_CPU)
    load = os.getloadavg()[0]
    started = time.monotonic()
    rows: list[Row] = []
    runs = plan(args)
    for part in chosen:
        print(f"== {part}", flush=True)
        try:
            part_rows = runs[part]()
        except (Exception, SystemExit) as exc:  # one broken part must not lose the others' figures
            part_rows = [Row(f"{part}: failed", f"{type(exc).__name__}: {exc}"[:200])]
        for row in part_rows:
            print("   " + " | ".join(row.cells()), flush=True)
        rows += part_rows
    command = "python -m bench " + " ".join(sys.argv[1:])
    block = results_block(rows, command.strip(), (time.monotonic() - started) / 60, load)
    print(block)
    if not args.no_write:
        write_readme(block)
        print(f"written to {README}")


if __name__ == "__main__":
    main()
