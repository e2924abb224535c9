"""Delivery policy: outcome classification, the retry ladder, dead-letter decisions, TTL, probation."""

from __future__ import annotations

import random
import socket

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from commgrid.grid.retry import (
    CLIENT_ERROR,
    MAX_ATTEMPTS_EXCEEDED,
    RETRY_LADDER,
    EndpointHealth,
    Outcome,
    decide,
    expired,
    outcome_of_error,
    outcome_of_status,
    retry_delay,
)
from commgrid.grid.timing import Timing


@pytest.mark.parametrize("status", [200, 201, 202, 203, 204])
def test_only_200_to_204_succeed(status: int) -> None:
    assert outcome_of_status(status).succeeded


@pytest.mark.parametrize(
    ("status", "name", "retried"),
    [
        (205, "Aborted", True),
        (301, "Aborted", True),
        (400, "BadRequest", False),
        (401, "Unauthorized", False),
        (403, "Forbidden", False),
        (404, "NotFound", True),
        (408, "TimedOut", True),
        (409, "Aborted", True),
        (410, "NotFound", True),
        (413, "PayloadTooLarge", False),
        (429, "Busy", True),
        (500, "Busy", True),
        (503, "Busy", True),
    ],
)
def test_status_classification(status: int, name: str, retried: bool) -> None:
    outcome = outcome_of_status(status)
    assert (outcome.name, outcome.status, outcome.retried, outcome.succeeded) == (name, status, retried, False)


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = ConnectionKey("example.invalid", 80, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


def test_errors_without_a_response() -> None:
    assert outcome_of_error(TimeoutError()).name == "TimedOut"
    assert outcome_of_error(_connector_error(ConnectionRefusedError(111, "refused"))).name == "SocketError"
    unresolved = _connector_error(socket.gaierror(-2, "Name or service not known"))
    assert outcome_of_error(unresolved).name == "ResolutionError"
    assert outcome_of_error(aiohttp.ServerDisconnectedError()).name == "SocketError"
    assert all(outcome_of_error(e).retried for e in (TimeoutError(), aiohttp.ServerDisconnectedError()))


def test_ladder_is_azures_schedule_then_every_12_hours() -> None:
    rng = random.Random(1)
    busy = Outcome("Busy", 500)
    expected = [10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200, 43200]
    assert list(RETRY_LADDER) + [43200] * 3 == expected
    for attempts, step in enumerate(expected, start=1):
        delay = retry_delay(attempts, busy, rng)
        assert step <= delay <= step * 1.2, (attempts, delay)


def test_delays_are_randomised() -> None:
    rng = random.Random(7)
    delays = {retry_delay(1, Outcome("Busy", 500), rng) for _ in range(20)}
    assert len(delays) > 10


@pytest.mark.parametrize(("status", "minimum"), [(404, 300), (408, 120), (503, 30), (500, 10)])
def test_status_specific_minimum_delays(status: int, minimum: float) -> None:
    delay = retry_delay(1, outcome_of_status(status), random.Random(3))
    assert minimum <= delay <= max(minimum, 10) * 1.2


def test_status_minimum_never_shortens_a_later_step() -> None:
    assert retry_delay(6, outcome_of_status(503), random.Random(3)) >= 1800


def test_decisions() -> None:
    rng = random.Random(5)
    assert decide(1, outcome_of_status(400), 30, rng).dead_letter_reason == CLIENT_ERROR
    assert decide(1, outcome_of_status(413), 30, rng).dead_letter_reason == CLIENT_ERROR
    assert decide(1, outcome_of_status(401), 30, rng).dead_letter_reason == CLIENT_ERROR
    assert decide(3, outcome_of_status(500), 3, rng).dead_letter_reason == MAX_ATTEMPTS_EXCEEDED
    retry = decide(2, outcome_of_status(500), 3, rng)
    assert retry.dead_letter_reason is None and 30 <= retry.delay <= 36
    assert decide(1, Outcome("TimedOut"), 1, rng).dead_letter_reason == MAX_ATTEMPTS_EXCEEDED


def test_ttl_is_scaled() -> None:
    published = 1000.0
    assert not expired(published, 1, published + 59, 1)
    assert expired(published, 1, published + 60, 1)
    assert not expired(published, 1440, published + 143, 600)
    assert expired(published, 1440, published + 144, 600)


def test_probation_after_ten_failures_for_the_outcomes_duration() -> None:
    health = EndpointHealth(time_scale=10)
    busy, refused = Outcome("Busy", 503), Outcome("SocketError")
    for _ in range(9):
        assert health.failed("http://a", busy, 100.0) is None
    assert health.probation_until("http://a", 100.0) is None
    assert health.failed("http://a", refused, 100.0) == pytest.approx(103.0)  # SocketError 30 s / 10
    assert health.on_probation(101.0) == {"http://a": pytest.approx(103.0)}
    assert health.probation_until("http://b", 101.0) is None
    assert health.probation_until("http://a", 103.5) is None
    assert health.failed("http://a", Outcome("NotFound", 404), 104.0) == pytest.approx(134.0)
    health.succeeded("http://a")
    assert health.on_probation(105.0) == {}
    assert health.failed("http://a", busy, 105.0) is None


def test_timing_scales_everything_but_keeps_a_usable_timeout() -> None:
    real, fast = Timing(1.0), Timing(600.0)
    assert (real.response_timeout, real.validation_window, real.handshake_retry) == (30.0, 600.0, 5.0)
    assert fast.validation_window == 1.0 and fast.scaled(600) == 1.0
    assert fast.response_timeout == 1.0  # floor
    assert real.lease == 6.0 and fast.lease == 6.0  # not scaled: renewed while held
    assert Timing(1.0, 0.1).lease == 1.5  # floor
    with pytest.raises(ValueError):
        Timing(0)
