"""Delivery policy: how an attempt's result is named, when it is retried, and when an endpoint is on probation.

Everything here follows https://learn.microsoft.com/azure/event-grid/delivery-and-retry and works in Azure's
(unscaled) seconds; the delivery worker divides by `Settings.time_scale`.

| result                                  | lastDeliveryOutcome | retried | minimum delay |
|-----------------------------------------|---------------------|---------|---------------|
| 200-204                                 | (success)           |         |               |
| 400                                     | BadRequest          | no      |               |
| 413                                     | PayloadTooLarge     | no      |               |
| 401                                     | Unauthorized        | no      |               |
| 403                                     | Forbidden           | no      |               |
| 404, 410                                | NotFound            | yes     | 5 min (404)   |
| 408, no response within the timeout     | TimedOut            | yes     | 2 min (408)   |
| 429, 5xx                                | Busy                | yes     | 30 s (503)    |
| connection refused or reset             | SocketError         | yes     | 10 s          |
| host name not resolved                  | ResolutionError     | yes     | 10 s          |
| anything else (3xx, other 2xx/4xx)      | Aborted             | yes     | 10 s          |

Non-retried results are dead-lettered at once with reason `UndeliverableDueToClientError`. Retries follow
the ladder 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h, each delay at least
the result's minimum and randomised upwards by up to 20 %. Which outcome names Azure uses for statuses the
reference does not list (500 → Busy, 3xx → Aborted) is commgrid's choice.
"""

from __future__ import annotations

import functools
import random
import re
import socket
from dataclasses import dataclass

import aiohttp

SUCCESS_STATUSES = frozenset(range(200, 205))

RETRY_LADDER = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0)
LATER_RETRIES = 43200.0  # every 12 h after the ladder
JITTER = 0.2
RESPONSE_TIMEOUT = 30.0

# delivery-and-retry: Webhook endpoints; Azure-resource endpoints would drop 401 from this set.
NOT_RETRIED = {400: "BadRequest", 413: "PayloadTooLarge", 401: "Unauthorized", 403: "Forbidden"}
MINIMUM_DELAY = {401: 300.0, 404: 300.0, 408: 120.0, 503: 30.0}
DEFAULT_MINIMUM_DELAY = 10.0

# delivery-and-retry "Delayed delivery": probation length by the outcome that caused it.
PROBATION_AFTER = 10  # consecutive failed attempts
PROBATION = {
    "Busy": 10.0, "NotFound": 300.0, "SocketError": 30.0, "ResolutionError": 300.0, "Disabled": 300.0,
    "Full": 300.0, "TimedOut": 10.0, "Unauthorized": 300.0, "Forbidden": 300.0,
}
DEFAULT_PROBATION = 10.0

# Dead-letter reasons (delivery-and-retry)
MAX_ATTEMPTS_EXCEEDED = "MaxDeliveryAttemptsExceeded"
TTL_EXCEEDED = "TimeToLiveExceeded"
CLIENT_ERROR = "UndeliverableDueToClientError"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one delivery attempt."""

    name: str  # "Succeeded" or a lastDeliveryOutcome value
    status: int | None = None
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.name == "Succeeded"

    @property
    def retried(self) -> bool:
        return not self.succeeded and self.status not in NOT_RETRIED

    @property
    def minimum_delay(self) -> float:
        return MINIMUM_DELAY.get(self.status or 0, DEFAULT_MINIMUM_DELAY)


@functools.lru_cache(maxsize=1024)  # statuses have three digits; an Outcome is immutable, so one serves all
def outcome_of_status(status: int) -> Outcome:
    """Classify an HTTP response status (the table above)."""
    if status in SUCCESS_STATUSES:
        return Outcome("Succeeded", status)
    if status in NOT_RETRIED:
        name = NOT_RETRIED[status]
    elif status in (404, 410):
        name = "NotFound"
    elif status == 408:
        name = "TimedOut"
    elif status == 429 or status >= 500:
        name = "Busy"
    else:
        name = "Aborted"
    return Outcome(name, status, f"HTTP {status}")


_URL_QUERY = re.compile(r"(\w+://[^\s?#'\"]*)[?#][^\s'\"]*")


def redact_urls(text: str) -> str:
    """`text` with the query string and fragment of every URL in it removed: webhook queries hold secrets."""
    return _URL_QUERY.sub(r"\1", text)


def outcome_of_error(exc: BaseException) -> Outcome:
    """Classify a request that got no response: timeouts, refused connections, unresolvable hosts."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return Outcome("TimedOut", None, "no response within the timeout")
    detail = redact_urls(str(exc)) or type(exc).__name__  # aiohttp's messages may quote the full URL
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(exc.os_error, socket.gaierror):
            return Outcome("ResolutionError", None, detail)
        return Outcome("SocketError", None, detail)
    if isinstance(exc, socket.gaierror):
        return Outcome("ResolutionError", None, detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | OSError):  # TLS failures too
        return Outcome("SocketError", None, detail)
    return Outcome("Aborted", None, detail)


def retry_delay(attempts: int, outcome: Outcome, rng: random.Random | None = None) -> float:
    """Seconds (unscaled) until the next try after `attempts` failed attempts, the last one `outcome`."""
    step = RETRY_LADDER[attempts - 1] if 0 < attempts <= len(RETRY_LADDER) else LATER_RETRIES
    return max(step, outcome.minimum_delay) * (1.0 + (rng or random).random() * JITTER)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with deliveries after a failed attempt: retry after `delay` seconds, or dead-letter."""

    dead_letter_reason: str | None = None
    delay: float = 0.0


def decide(attempts: int, outcome: Outcome, max_attempts: int, rng: random.Random | None = None) -> Decision:
    """After `attempts` failed attempts (this one included) ending in `outcome`: retry or dead-letter."""
    if not outcome.retried:
        return Decision(CLIENT_ERROR)
    if attempts >= max_attempts:
        return Decision(MAX_ATTEMPTS_EXCEEDED)
    return Decision(None, retry_delay(attempts, outcome, rng))


def expired(published_at: float, ttl_minutes: float, now: float, time_scale: float = 1.0) -> bool:
    """Whether an event's time to live has passed (checked when its next attempt is due, delivery-and-retry)."""
    return now >= published_at + ttl_minutes * 60.0 / time_scale


class EndpointHealth:
    """Consecutive failures per endpoint and the probation they lead to (delivery-and-retry "Delayed delivery").

    After `PROBATION_AFTER` failed attempts in a row an endpoint is on probation for the duration its last
    outcome calls for (scaled); while on probation nothing is sent to it. A success clears the count.
    """

    def __init__(self, time_scale: float = 1.0, threshold: int = PROBATION_AFTER) -> None:
        self._scale = time_scale
        self._threshold = threshold
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def probation_until(self, endpoint: str, now: float) -> float | None:
        """When the endpoint's probation ends, or None if it is not on probation."""
        until = self._until.get(endpoint)
        if until is None:
            return None
        if until <= now:
            del self._until[endpoint]
            return None
        return until

    def failed(self, endpoint: str, outcome: Outcome, now: float) -> float | None:
        """Count a failed attempt; returns the end of a probation that starts now, if one does."""
        count = self._failures.get(endpoint, 0) + 1
        self._failures[endpoint] = count
        if count < self._threshold:
            return None
        until = now + PROBATION.get(outcome.name, DEFAULT_PROBATION) / self._scale
        self._until[endpoint] = until
        return until

    def succeeded(self, endpoint: str) -> None:
        self._failures.pop(endpoint, None)
        self._until.pop(endpoint, None)

    def on_probation(self, now: float) -> dict[str, float]:
        """Every endpoint now on probation, with its end."""
        return {e: u for e in list(self._until) if (u := self.probation_until(e, now)) is not None}
