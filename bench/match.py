"""How matching one event scales with the number of subscriptions on a topic.

Builds a `SubscriptionIndex` with 10 and with 100,000 subscriptions whose filters look like a multi-tenant
app's (varied `includedEventTypes`, `subjectBeginsWith` per tenant and resource, some case-sensitive, some
suffixes and advanced filters), matches the same number of events against each, and prints µs/event and
the ratio. The goal is a ratio of at most 2.0: cost should follow the few filters an event can match, not
the topic's size.

Method. Each side's events are drawn the same way, for its own tenants: any of the large index's 33,333, so
nearly every event meets parts of it that no recent event touched, as on a large server; the small topics'
few tenants stay in the CPU caches. A round times one pass over the large index's events and one over each
of `--small-topics` small topics' (ten filters drawn at random can be unusually cheap or dear, so the small
side is their mean), `--events` events a pass, in this thread's CPU time, so that time spent switched out for
other work on a busy machine is not counted, with the garbage collector off as timeit does. Rounds alternate
which side goes first; the figures are the medians over `--repeats` rounds of each side's µs/event and of
each round's ratio, whose two sides ran within the same fraction of a second.

It also states the memory the index takes: the process's RSS grown by building the large index, per 10,000
subscriptions (the compiled filters and the index over them, as a serving node's catalog holds them).

    python -m bench.match [--subscriptions 100000] [--events N] [--seed S] [--repeats R]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import string
import time
from typing import Any

from bench._harness import Row
from commgrid.grid.filter_index import SubscriptionIndex
from commgrid.grid.filters import compile_filter

SCHEMA = "EventGridSchema"
EVENT_TYPES = [
    "Microsoft.Communication.SMSReceived",
    "Microsoft.Communication.SMSDeliveryReportReceived",
    "Microsoft.Communication.ChatMessageReceived",
    "Microsoft.Communication.ChatMessageEdited",
    "Microsoft.Communication.ChatThreadCreated",
    "Microsoft.Communication.CallStarted",
    "Microsoft.Communication.CallEnded",
    "Microsoft.Communication.EmailDeliveryReportReceived",
    *(
        f"Contoso.{area}.{verb}"
        for area in ("Orders", "Invoices", "Users", "Shipments")
        for verb in ("Created", "Updated", "Deleted", "Archived")
    ),
]
RESOURCES = ["orders", "invoices", "phonenumbers", "chats", "users", "shipments"]
REGIONS = ["westeurope", "eastus", "northeurope", "westus2"]
STATUSES = ["open", "paid", "cancelled", "shipped"]


def tenant_name(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(6, 12)))


def subscription_filter(rng: random.Random, tenant: str) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rng.random() < 0.8:
        spec["includedEventTypes"] = rng.sample(EVENT_TYPES, rng.randint(1, 3))
    depth = rng.random()
    resource = rng.choice(RESOURCES)
    if depth < 0.5:
        spec["subjectBeginsWith"] = f"/tenants/{tenant}/"
    elif depth < 0.9:
        spec["subjectBeginsWith"] = f"/tenants/{tenant}/{resource}/"
    else:
        spec["subjectBeginsWith"] = f"/tenants/{tenant}/{resource}/{rng.randint(1, 9)}"
    if rng.random() < 0.1:
        spec["isSubjectCaseSensitive"] = True
    if rng.random() < 0.05:
        spec["subjectEndsWith"] = rng.choice(["0", "5", "9"])
    if rng.random() < 0.3:
        spec["advancedFilters"] = rng.sample(
            [
                {"operatorType": "NumberGreaterThan", "key": "data.amount", "value": rng.randint(0, 500)},
                {"operatorType": "StringIn", "key": "data.status", "values": rng.sample(STATUSES, 2)},
                {"operatorType": "BoolEquals", "key": "data.priority", "value": rng.random() < 0.5},
                {"operatorType": "StringBeginsWith", "key": "data.region", "values": ["west"]},
            ],
            rng.randint(1, 3),
        )
    return spec


def build(count: int, rng: random.Random) -> tuple[SubscriptionIndex[int], list[str]]:
    """An index of `count` subscriptions, about three per tenant, and the tenants they watch."""
    tenants = [tenant_name(rng) for _ in range(max(1, count // 3))]
    index: SubscriptionIndex[int] = SubscriptionIndex()
    for key in range(count):
        index.add(key, compile_filter(subscription_filter(rng, rng.choice(tenants)), SCHEMA))
    return index, tenants


def make_events(tenants: list[str], n: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/app",
            "subject": f"/tenants/{rng.choice(tenants)}/{rng.choice(RESOURCES)}/{rng.randint(1, 99999)}",
            "eventType": rng.choice(EVENT_TYPES),
            "eventTime": "2024-05-01T12:00:00Z",
            "data": {
                "amount": rng.randint(0, 1000),
                "status": rng.choice(STATUSES),
                "priority": rng.random() < 0.5,
                "region": rng.choice(REGIONS),
            },
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }
        for i in range(n)
    ]


def time_pass(index: SubscriptionIndex[int], events: list[dict[str, Any]]) -> float:
    """µs of this thread's CPU time per event, matching every event once."""
    match, clock = index.match, time.thread_time
    start = clock()
    for event in events:
        match(event, SCHEMA)
    return (clock() - start) / len(events) * 1e6


def timed_rounds(
    large: tuple[SubscriptionIndex[int], list[dict[str, Any]]],
    smalls: list[tuple[SubscriptionIndex[int], list[dict[str, Any]]]],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """Per round: µs/event on the large index and the mean over the small ones; sides alternate going first."""
    large_times, small_times = [], []
    gc.collect()
    gc.disable()  # as timeit does: a collection traversing every object would land in whichever pass ran
    try:
        for n in range(rounds):
            if n % 2:
                small_times.append(statistics.fmean(time_pass(*run) for run in smalls))
                large_times.append(time_pass(*large))
            else:
                large_times.append(time_pass(*large))
                small_times.append(statistics.fmean(time_pass(*run) for run in smalls))
    finally:
        gc.enable()
    return large_times, small_times


def matches_per_event(index: SubscriptionIndex[int], events: list[dict[str, Any]]) -> float:
    return sum(len(index.match(event, SCHEMA)) for event in events) / len(events)


def rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def run(subscriptions: int = 100_000, events: int = 10_000, seed: int = 7, repeats: int = 15,
        small_topics: int = 8) -> list[Row]:
    rng = random.Random(seed)
    gc.collect()
    before = rss()
    large, tenants = build(subscriptions, rng)
    gc.collect()
    grown = rss() - before
    spread = make_events(tenants, events, rng)  # the measured case: any tenant, uniformly
    # Ten filters drawn at random can be unusually cheap or dear, so the small case averages several topics.
    smalls = []
    for k in range(small_topics):
        small_rng = random.Random(seed + 1 + k)
        index, small_tenants = build(10, small_rng)
        smalls.append((index, make_events(small_tenants, events, small_rng)))
    large_times, small_times = timed_rounds((large, spread), smalls, repeats)
    large_time, small_time = statistics.median(large_times), statistics.median(small_times)
    ratio = statistics.median(big / small for big, small in zip(large_times, small_times, strict=True))
    small_matches = statistics.fmean(matches_per_event(index, evs) for index, evs in smalls)
    return [
        Row(f"matching: {subscriptions:,} vs 10 subscriptions per event",
            f"{large_time:.2f} µs/event ({matches_per_event(large, spread):.2f} matches)",
            f"10 subscriptions {small_time:.2f} µs/event ({small_matches:.2f} matches)", ratio, "≤ 2.0",
            ratio <= 2.0),
        Row("memory per 10,000 subscriptions (compiled filters + index, RSS)",
            f"{grown / subscriptions * 10_000 / 2**20:.1f} MiB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000, help="events matched per pass")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=15, help="rounds; each figure is the median over them")
    parser.add_argument("--small-topics", type=int, default=8, help="10-subscription topics to average over")
    args = parser.parse_args()
    for row in run(args.subscriptions, args.events, args.seed, args.repeats, args.small_topics):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    main()
