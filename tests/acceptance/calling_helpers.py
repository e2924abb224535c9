"""Helpers for the calling tests: a server with an owned number, the official Call Automation client, the
simulation API (the caller's side), and callback events read back as CloudEvents."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from azure.communication.callautomation import CallAutomationClient
from azure.core.messaging import CloudEvent
from azure.core.pipeline.transport import RequestsTransport

from tests.acceptance.acs_helpers import Acs
from tests.acceptance.receiver import Receiver

IVR_NUMBER = "+18005550100"
CALLER = "+14255550123"
SAMPLES = json.loads((Path(__file__).parent / "samples" / "calling_events.json").read_text())


def sample(short: str) -> dict[str, Any]:
    return next(e for e in SAMPLES if e["eventType"] == f"Microsoft.Communication.{short}")


@contextmanager
def automation(acs: Acs) -> Iterator[CallAutomationClient]:
    """The official client from the connection string; our transport, closed at the end (keep-alive TLS
    connections would hold up the server's shutdown)."""
    transport = RequestsTransport(connection_verify=acs.ca)
    try:
        yield CallAutomationClient.from_connection_string(acs.connection_string, transport=transport)
    finally:
        transport.close()


class Sim:
    """The other end of the line, through commgrid's simulation API."""

    def __init__(self, acs: Acs) -> None:
        self.acs = acs
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=acs.ca),
                                   headers={"x-commgrid-access-key": acs.key}, timeout=10)

    def close(self) -> None:
        self.client.close()

    def _post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        response = self.client.post(self.acs.endpoint + path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    def dial(self, from_: str, to: str, **extra: Any) -> dict[str, Any]:
        return self._post("/commgrid/calls", {"from": from_, "to": to} | extra, 201)

    def step(self, call_id: str, action: str, **body: Any) -> dict[str, Any]:
        return self._post(f"/commgrid/calls/{call_id}:{action}", body)

    def call(self, call_id: str) -> dict[str, Any]:
        response = self.client.get(f"{self.acs.endpoint}/commgrid/calls/{call_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def party(self, raw_id: str, answer: str) -> None:
        response = self.client.put(f"{self.acs.endpoint}/commgrid/calls/parties/{raw_id}", json={"answer": answer})
        assert response.status_code == 200, response.text

    def group(self, group_id: str, action: str, user: str, **extra: Any) -> dict[str, Any]:
        return self._post(f"/commgrid/calls/groups/{group_id}:{action}", {"user": user} | extra)

    def wait_state(self, call_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0,
                   ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call = self.call(call_id)
            if check(call):
                return call
            time.sleep(0.05)
        raise AssertionError(f"call {call_id} did not reach the expected state: {self.call(call_id)}")


def callbacks(rx: Receiver, path: str) -> list[CloudEvent]:
    """Every callback event posted to `path`, in arrival order, each request checked to hold a JSON array."""
    events = []
    for request in rx.received(path, kind="*"):
        assert request.headers["content-type"].startswith("application/json")
        body = request.json()
        assert isinstance(body, list) and len(body) == 1, body
        events += [CloudEvent.from_dict(e) for e in body]
    return events


def wait_callback(rx: Receiver, path: str, short: str, count: int = 1, timeout: float = 10.0) -> list[CloudEvent]:
    """Wait until `count` callbacks `Microsoft.Communication.<short>` reached `path`; return all of them."""
    name = f"Microsoft.Communication.{short}"
    rx.wait(lambda: len([e for e in callbacks(rx, path) if e.type == name]) >= count, timeout,
            f"{count} {short} at /{path}")
    return callbacks(rx, path)


def names(events: list[CloudEvent]) -> list[str]:
    return [e.type.removeprefix("Microsoft.Communication.") for e in events]
