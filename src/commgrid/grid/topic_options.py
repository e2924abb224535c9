"""A topic's commgrid options: the `commgrid` object beside ARM's `properties` (`retentionMinutes`,
`dedupeWindowMinutes`), off unless given, so a topic without them behaves exactly as Event Grid's.

Durations are whole minutes, as Event Grid's own `eventTimeToLiveInMinutes`. Azure SDKs ignore unknown top-level
members, so a client reading such a topic through azure-mgmt-eventgrid is unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commgrid.errors import InvalidInput
from commgrid.jsonfields import fields

EXTENSION = "commgrid"
MAX_RETENTION_MINUTES = 525_600  # a year
MAX_DEDUPE_MINUTES = 10_080  # a week
_KEYS = {"retentionminutes": "retentionMinutes", "dedupewindowminutes": "dedupeWindowMinutes"}


@dataclass(frozen=True, slots=True)
class TopicOptions:
    """None: the option is not set (the default retention; no dedupe)."""

    retention_minutes: int | None = None
    dedupe_window_minutes: int | None = None

    def to_json(self) -> dict[str, int]:
        """The `commgrid` object as clients give and read it: only the options that are set."""
        shown = {"retentionMinutes": self.retention_minutes, "dedupeWindowMinutes": self.dedupe_window_minutes}
        return {k: v for k, v in shown.items() if v is not None}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TopicOptions:
        """Options as stored (already validated)."""
        return cls(value.get("retentionMinutes"), value.get("dedupeWindowMinutes"))

    def merged(self, change: dict[str, int | None]) -> TopicOptions:
        """These options with `change` applied (a None value unsets an option)."""
        return TopicOptions.from_json({**self.to_json(), **change})


def parse_options(value: Any) -> dict[str, int | None]:
    """The options a client's `commgrid` object sets or unsets (`null` unsets); 400 listing every problem."""
    if not isinstance(value, dict):
        raise InvalidInput(f"'{EXTENSION}' must be a JSON object.", code="InvalidRequestContent")
    problems, parsed = [], {}
    for key, given in fields(value).items():
        name = _KEYS.get(key)
        if name is None:
            problems.append(f"'{EXTENSION}.{key}' is not a commgrid topic option; use {' or '.join(_KEYS.values())}.")
            continue
        limit = MAX_RETENTION_MINUTES if name == "retentionMinutes" else MAX_DEDUPE_MINUTES
        if given is not None and (isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= limit):
            problems.append(f"'{EXTENSION}.{name}' must be a whole number of minutes from 1 to {limit}; got {given!r}.")
            continue
        parsed[name] = given
    if problems:
        raise InvalidInput(" ".join(problems), code="InvalidCommgridOptions")
    return parsed
