"""Timestamps as commgrid reads and writes them: Azure's wire formats, the console's, and ISO 8601 input.

Azure formats times .NET-style: UTC, up to seven fractional digits (100 ns ticks), `Z` or `+00:00`. Which
precision a field uses depends on the service and field, so writers pick a `Precision`; the named helpers
below are the combinations commgrid writes in more than one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum


class Precision(Enum):
    """How a timestamp field is written. The service formats .NET-style with trailing zeros trimmed; the
    samples show whole seconds (SMS `eventTime`), milliseconds (chat compose/create/message-edit times, which
    match the epoch-ms ids and versions, and SMSReceived's `receivedTimestamp`) or 100 ns ticks (the rest)."""

    SECONDS = "seconds"
    MILLIS = "millis"  # trimmed like .NET: `.91Z`, `.14Z`, `.988Z`
    TICKS = "ticks"  # always 7 digits, the common case; Python has no 7th digit to trim


def format_timestamp(moment: datetime, precision: Precision, suffix: str = "Z") -> str:
    """`2020-09-18T00:22:14.9315918Z`-style text; `suffix` is `Z` or `+00:00` (thread-level samples)."""
    moment = moment.astimezone(UTC)
    fraction = {
        Precision.SECONDS: "",
        Precision.MILLIS: f"{moment.microsecond // 1000:03d}".rstrip("0"),
        Precision.TICKS: f"{moment.microsecond:06d}0",
    }[precision]
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "") + suffix


def azure_time(ts: float | None) -> str | None:
    """A POSIX time as Event Grid writes times: UTC with seven fractional digits, e.g. `...:13.1647262Z`."""
    return None if ts is None else format_timestamp(datetime.fromtimestamp(ts, UTC), Precision.TICKS)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def ms_wire_time(ms: int) -> str:
    """Epoch ms as the Chat API's examples write them: `2020-06-25T17:44:37.6830000Z`; whole seconds as
    `1970-01-01T00:00:00Z`."""
    moment = from_ms(ms)
    if ms % 1000 == 0:
        return f"{moment:%Y-%m-%dT%H:%M:%S}Z"
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}0000Z"


def console_time(at: float | None) -> str | None:
    """A POSIX time for the console and CLI output: ISO 8601 with milliseconds and `+00:00`."""
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def parse_time(value: str) -> datetime:
    """An ISO 8601 / RFC 3339 date or date-time (offsets, fractions); without an offset it is UTC.

    Raises `ValueError` for anything else; callers word the error as their API does."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
