"""Helpers for subscription and delivery tests: subscribe through the CLI, publish with the SDK, read dead letters."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient

from tests.support import ServerProcess


def subscribe(server: ServerProcess, topic: str, name: str, endpoint: str, *flags: str, check: bool = True,
              settle: bool = True) -> subprocess.CompletedProcess:
    """`commgrid subscription create … --json`; with `settle`, wait until the server routes to it.

    The CLI writes to the store directly; the server's catalog notices the change counter move (`/healthz`
    reports the version it reflects), so the wait ends as soon as the subscription is live.
    """
    done = server.cli("subscription", "create", "--topic", topic, "--name", name, "--endpoint", endpoint, *flags,
                      "--json", check=check)
    if settle:
        server.wait_catalog()
    return done


def shown(done: subprocess.CompletedProcess) -> dict[str, Any]:
    return json.loads(done.stdout)


def publish(topic: dict[str, Any], events: Any) -> None:
    """Publish with the official SDK over the topic's plain-HTTP endpoint."""
    EventGridPublisherClient(topic["httpEndpoint"], AzureKeyCredential(topic["key1"])).send(events)


def dead_letters(server: ServerProcess, *args: str) -> list[dict[str, Any]]:
    return json.loads(server.cli("deadletter", "list", "--json", *args).stdout)


def wait_dead_letters(server: ServerProcess, subscription: str, count: int = 1, timeout: float = 10.0,
                      topic: str = "orders") -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = dead_letters(server, "--topic", topic, "--subscription", subscription)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"expected {count} dead letters for {subscription}, found {found}"
            return found
        time.sleep(0.1)
