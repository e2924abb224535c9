"""Prometheus metrics named after Event Grid's Azure Monitor metrics.

Azure Monitor's Event Grid metrics (https://learn.microsoft.com/azure/event-grid/metrics) become counters and
histograms labelled by topic (and subscription where Azure splits by it), exposed at `/metrics`:

| Azure Monitor metric               | Prometheus name                                      |
|------------------------------------|------------------------------------------------------|
| PublishSuccessCount                | eventgrid_publish_success_count_total{topic}        |
| PublishFailCount                   | eventgrid_publish_fail_count_total{topic,error}     |
| PublishSuccessLatencyInMs          | eventgrid_publish_success_latency_ms{topic}         |
| MatchedEventCount                  | eventgrid_matched_event_count_total{topic,subscription} |
| DeliverySuccessCount               | eventgrid_delivery_success_count_total{topic,subscription} |
| DeliveryAttemptFailCount           | eventgrid_delivery_attempt_fail_count_total{topic,subscription,outcome} |
| DeadLetteredCount                  | eventgrid_dead_lettered_count_total{topic,subscription,reason} |
| DroppedEventCount                  | eventgrid_dropped_event_count_total{topic,subscription,reason} |
| DestinationProcessingDurationInMs  | eventgrid_destination_processing_duration_ms{topic,subscription} |

plus two gauges read from the store when scraped: `eventgrid_delivery_queue_depth` and
`eventgrid_oldest_undelivered_event_age_seconds`.

Under `serve --workers N` every worker keeps its counters and histograms in files of one directory
(prometheus_client's multiprocess mode, which its supervisor turns on with `PROMETHEUS_MULTIPROC_DIR`), and a
scrape, whichever worker answers it, reports their sums.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Backlog:
    """The two gauges read from the store, as of the scrape being rendered."""

    def __init__(self) -> None:
        self.depth, self.age = 0, 0.0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("eventgrid_delivery_queue_depth", "Deliveries not yet completed or dead-lettered.",
                                value=self.depth)
        yield GaugeMetricFamily("eventgrid_oldest_undelivered_event_age_seconds",
                                "Age of the oldest event with a pending delivery (0 when none).", value=self.age)


class Metrics:
    """One process's metrics; every method is cheap enough for the publish and delivery paths.

    `shared_dir`: where the workers of `serve --workers N` keep theirs (see the module docstring).
    """

    def __init__(self, shared_dir: Path | None = None) -> None:
        self.shared_dir = shared_dir
        self.registry = CollectorRegistry()
        r = self.registry
        self.publish_success = Counter("eventgrid_publish_success_count", "Events published successfully.",
                                       ["topic"], registry=r)
        self.publish_fail = Counter("eventgrid_publish_fail_count", "Events whose publish failed.",
                                    ["topic", "error"], registry=r)
        self.publish_latency = Histogram("eventgrid_publish_success_latency_ms",
                                         "Time to accept a successful publish request, in milliseconds.",
                                         ["topic"], buckets=LATENCY_BUCKETS_MS, registry=r)
        self.matched = Counter("eventgrid_matched_event_count", "Events that matched a subscription's filter.",
                               ["topic", "subscription"], registry=r)
        self.delivery_success = Counter("eventgrid_delivery_success_count", "Events delivered successfully.",
                                        ["topic", "subscription"], registry=r)
        self.attempt_fail = Counter("eventgrid_delivery_attempt_fail_count", "Events whose delivery attempt failed.",
                                    ["topic", "subscription", "outcome"], registry=r)
        self.dead_lettered = Counter("eventgrid_dead_lettered_count", "Events dead-lettered.",
                                     ["topic", "subscription", "reason"], registry=r)
        self.dropped = Counter("eventgrid_dropped_event_count",
                               "Events given up without a dead-letter destination (Azure drops them; commgrid keeps"
                               " a dead-letter record).", ["topic", "subscription", "reason"], registry=r)
        self.destination_duration = Histogram("eventgrid_destination_processing_duration_ms",
                                              "Time the destination took to answer a delivery, in milliseconds.",
                                              ["topic", "subscription"], buckets=LATENCY_BUCKETS_MS, registry=r)
        self._backlog = _Backlog()
        r.register(self._backlog)
        # Children by label values: `labels()` costs more than the update itself, on every publish and delivery.
        self._publishing: dict[str, tuple[Any, Any]] = {}  # topic → success counter, latency histogram
        self._matched: dict[tuple[str, str], Any] = {}  # (topic, subscription) → matched counter
        self._delivering: dict[tuple[str, str], tuple[Any, Any]] = {}  # → success counter, duration histogram

    # publishing ------------------------------------------------------------------------------------------
    def published(self, topic: str, count: int, seconds: float, subscriptions: list[str]) -> None:
        children = self._publishing.get(topic)
        if children is None:
            children = self._publishing[topic] = (self.publish_success.labels(topic),
                                                  self.publish_latency.labels(topic))
        children[0].inc(count)
        children[1].observe(seconds * 1000)
        if subscriptions:
            for name, matched in Tally(subscriptions).items():
                child = self._matched.get((topic, name))
                if child is None:
                    child = self._matched[(topic, name)] = self.matched.labels(topic, name)
                child.inc(matched)

    def publish_failed(self, topic: str, count: int, error: str) -> None:
        self.publish_fail.labels(topic, error).inc(count)

    # delivering ------------------------------------------------------------------------------------------
    def attempted(self, topic: str, subscription: str, count: int, outcome: str, seconds: float | None) -> None:
        children = self._delivering.get((topic, subscription))
        if children is None:
            children = self._delivering[(topic, subscription)] = (
                self.delivery_success.labels(topic, subscription),
                self.destination_duration.labels(topic, subscription))
        if seconds is not None:
            children[1].observe(seconds * 1000)
        if outcome == "Succeeded":
            children[0].inc(count)
        else:
            self.attempt_fail.labels(topic, subscription, outcome).inc(count)

    def gave_up(self, topic: str, subscription: str, count: int, reason: str, *, has_destination: bool) -> None:
        counter = self.dead_lettered if has_destination else self.dropped
        counter.labels(topic, subscription, reason).inc(count)

    # exposition ------------------------------------------------------------------------------------------
    def render(self, backlog: tuple[int, float | None], now: float | None = None) -> bytes:
        depth, oldest = backlog
        self._backlog.depth = depth
        self._backlog.age = 0.0 if oldest is None else max((now or time.time()) - oldest, 0.0)
        if self.shared_dir is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, str(self.shared_dir))
        every_worker.register(self._backlog)
        return generate_latest(every_worker)
