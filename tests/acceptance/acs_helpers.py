"""Helpers for the Communication Services acceptance tests: signed raw requests, the system topic's stored
events, and the shape comparison of an emitted event with a seed sample."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from commgrid.acs.hmac_auth import sign_request
from tests.support import ServerProcess

SEEDS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)$")
SMS_MESSAGE_ID = re.compile(rf"^(Outgoing|Incoming)_\d{{14}}{GUID}$")


class Acs:
    """The Communication Services resource of a running server, for raw (signed) HTTP requests."""

    def __init__(self, server: ServerProcess) -> None:
        info = server.info()
        acs = info["communicationServices"]
        self.server = server
        self.endpoint = acs["endpoint"].rstrip("/")
        self.key = acs["accessKey"]
        self.connection_string = acs["connectionString"]
        self.system_topic = acs["systemTopic"]["name"]
        self.ca = info["caCertificate"]

    def request(self, method: str, path: str, body: Any = None, *, key: str | None = None, sign: bool = True,
                headers: dict[str, str] | None = None, raw: bytes | None = None, **sign_kwargs: Any) -> httpx.Response:
        """`path` includes the query, percent-encoded as it goes on the wire."""
        url = self.endpoint + path
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"}
        if sign:
            sent |= sign_request(method, url, content, key or self.key, **sign_kwargs)
        sent |= headers or {}
        with httpx.Client(verify=ssl.create_default_context(cafile=self.ca)) as client:
            return client.request(method, url, content=content, headers=sent)

    def events(self, limit: int = 500) -> list[dict[str, Any]]:
        """The system topic's stored events (newest first), as published."""
        out = self.server.cli("events", "list", "--topic", self.system_topic, "--limit", str(limit), "--json")
        return [e["event"] for e in json.loads(out.stdout)]

    def wait_events(self, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 15.0,
                    ) -> list[dict[str, Any]]:
        """Poll the stored events until `count` of them match."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = [e for e in self.events() if match(e)]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"expected {count} matching events within {timeout}s, found {len(found)}: {found}")


def of_type(short: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """Match events of `Microsoft.Communication.<short>` whose data has these values (either key casing)."""

    def match(event: dict[str, Any]) -> bool:
        d = event["data"]
        return event["eventType"] == f"Microsoft.Communication.{short}" and all(
            d.get(k, d.get(k[:1].upper() + k[1:])) == v for k, v in data.items())

    return match


def now_rfc1123() -> str:
    return datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


# --- seed samples -----------------------------------------------------------------------------------------


def seed_samples() -> dict[str, dict[str, Any]]:
    """The first sample of each event type in the seed documents (hand-written JSON: trailing commas allowed)."""
    assert SEEDS_DIR.is_dir(), f"seed documents missing: {SEEDS_DIR}"
    samples: dict[str, dict[str, Any]] = {}
    for path in sorted(SEEDS_DIR.glob("*.txt")):
        for block in re.findall(r"```json\s*\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            if '"eventType"' in block:
                for event in json.loads(re.sub(r",(\s*[}\]])", r"\1", block)):
                    samples.setdefault(event["eventType"], event)
    return samples


def value_format(value: Any) -> str:
    """The format class of a JSON value: its type, and for strings the kind of id or time it is."""
    if not isinstance(value, str):
        return type(value).__name__
    for name, pattern in (("timestamp", TIMESTAMP), ("sms-message-id", SMS_MESSAGE_ID),
                          ("e164", re.compile(r"^\+\d+$")), ("digits", re.compile(r"^\d+$")),
                          ("phonenumber-subject", re.compile(r"^/phonenumber/\d+$"))):
        if pattern.match(value):
            if name == "timestamp":  # whole seconds, trimmed milliseconds, or 7-digit ticks
                digits = len(TIMESTAMP.match(value).group(1) or "")  # type: ignore[union-attr]
                return f"timestamp/{'s' if digits == 0 else 'ms' if digits <= 3 else 'ticks'}"
            return name
    return "text"


def assert_same_shape(event: Any, sample: Any, where: str = "$") -> None:
    """Same keys in the same order, same nesting, same value formats (ids, timestamps, numbers vs strings)."""
    if isinstance(sample, dict):
        assert isinstance(event, dict), f"{where}: {event!r} is not an object"
        assert list(event) == list(sample), f"{where}: keys {list(event)} vs {list(sample)}"
        for key in sample:
            assert_same_shape(event[key], sample[key], f"{where}.{key}")
    elif isinstance(sample, list):
        assert isinstance(event, list) and len(event) == len(sample), f"{where}: {event!r} vs {sample!r}"
        for index, (e, s) in enumerate(zip(event, sample, strict=True)):
            assert_same_shape(e, s, f"{where}[{index}]")
    elif where.endswith(".topic") or where == "$.topic":
        assert event.startswith("/subscriptions/") and "communicationServices/" in event, where
    else:
        got, want = value_format(event), value_format(sample)
        if want == "timestamp/ms":  # .NET trims trailing zeros: .32Z can be .3Z, .320Z or a whole second
            assert got in ("timestamp/ms", "timestamp/s"), f"{where}: {event!r} vs {sample!r}"
        else:
            assert got == want, f"{where}: {event!r} ({got}) vs {sample!r} ({want})"
